-- Freshness: contact 2 upgrades from trial to vip; the worker moves it.
\set ON_ERROR_STOP 1
\pset footer off
\echo '== Freshness: contact 2 upgrades from trial to vip'
UPDATE public.contacts SET plan = 'vip' WHERE id = 2;
SELECT segments.wait('30 s') AS caught_up;
SELECT segments.segment_is_member(2, 'Trial users') AS trial,
       segments.segment_is_member(2, 'VIP customers') AS vip;
SELECT name AS action FROM public.actions WHERE segments.filter_restricted(2, restricted_to) ORDER BY id;
\echo '== Worker'
SELECT * FROM segments.worker;

-- The demo's printed summary.
\set ON_ERROR_STOP 1
\pset footer off
\echo
\echo '== Segments and their members'
SELECT name, member_count, status, description FROM segments.segments ORDER BY name;

\echo '== Actions a VIP contact (id 1) may use'
SELECT name AS action FROM public.actions WHERE segments.filter_restricted(1, restricted_to) ORDER BY id;
\echo '== Actions a trial contact (id 2) may use'
SELECT name AS action FROM public.actions WHERE segments.filter_restricted(2, restricted_to) ORDER BY id;
\echo '== Actions an anonymous visitor (no contact id) may use'
SELECT name AS action FROM public.actions WHERE segments.filter_restricted(NULL, restricted_to) ORDER BY id;

\echo '== Segments contact 1 is in'
SELECT name FROM segments.contact_segments(1);
\echo '== Is contact 2 a trial user? Is it a VIP?'
SELECT segments.segment_is_member(2, 'Trial users') AS trial,
       segments.segment_is_member(2, 'VIP customers') AS vip;

\echo '== CSAT by segment (a report joining segments.membership)'
SELECT s.name AS segment, count(*) AS contacts,
       round(avg((c.custom_data ->> 'csat')::numeric), 2) AS avg_csat
  FROM segments.membership m
  JOIN segments.segments s ON s.id = m.segment_id
  JOIN public.contacts c ON c.id = m.contact_id
 GROUP BY s.name ORDER BY s.name;

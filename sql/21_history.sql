-- Membership history and change feed: every entry and exit recorded with
-- its cause (refresh, refresh_contacts, configure, dropped, failed, other),
-- the feed and its per-consumer cursor (two consumers, a rollback delivers
-- again), point-in-time reads (was_member before, inside and after a
-- membership; membership_history; segment_counts), segments.history = off,
-- tenancy and privileges, with the roles deployments use.  Runs in a
-- database of its own with the worker off: membership changes only through
-- the calls made here.  (Worker causes, retention and NOTIFY:
-- test/worker/41_history.sh; commit order: specs/history_order.spec.)
\set VERBOSITY terse
SET client_min_messages = warning;
DROP DATABASE IF EXISTS segments_history;
DROP ROLE IF EXISTS hist_owner, hist_a, hist_b, hist_none, hist_admin, hist_public;
RESET client_min_messages;
CREATE DATABASE segments_history;
ALTER DATABASE segments_history SET segments.enabled = off;
CREATE ROLE hist_owner LOGIN;
CREATE ROLE hist_a LOGIN IN ROLE segments_read;
CREATE ROLE hist_b LOGIN IN ROLE segments_read;
CREATE ROLE hist_none LOGIN IN ROLE segments_read;
CREATE ROLE hist_admin LOGIN IN ROLE segments_admin;
CREATE ROLE hist_public LOGIN;
ALTER ROLE hist_a SET segments.tenant = '1';
ALTER ROLE hist_b SET segments.tenant = '2';

\c segments_history
CREATE EXTENSION segments;
GRANT CREATE ON SCHEMA public TO hist_owner;
-- Runs a statement; returns 'ok' or its error with SQLSTATE and hint.
CREATE FUNCTION public.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text; m text; h text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, m = MESSAGE_TEXT, h = PG_EXCEPTION_HINT;
    RETURN st || ': ' || m || coalesce(E'\nHINT: ' || nullif(h, ''), '');
END
$$;
GRANT EXECUTE ON FUNCTION public.try(text) TO PUBLIC;

-- Before configure(): nothing to read yet.
SELECT to_regclass('segments.membership_changes') IS NULL AS no_feed_before_configure;

\c - hist_owner
CREATE TABLE contacts (id integer PRIMARY KEY, org_id integer, plan text);
INSERT INTO contacts SELECT g, CASE WHEN g <= 5 THEN 1 ELSE 2 END,
                            CASE WHEN g % 2 = 0 THEN 'vip' ELSE 'free' END
  FROM generate_series(1, 10) g;           -- 1-5 tenant 1, 6-10 tenant 2
GRANT SELECT ON contacts TO hist_admin;

\c - postgres
SELECT segments.configure('public.contacts', 'id', tenant_column => 'org_id');
\c - hist_admin
SELECT segments.create_segment('VIP', '{"type":"attribute","field":"plan","op":"eq","value":"vip"}') AS vip \gset
SELECT segments.create_segment('Free', '{"type":"attribute","field":"plan","op":"eq","value":"free"}') AS free \gset

-- refresh(): the first evaluation records one entry per member.
SELECT clock_timestamp() AS before_entry \gset
SELECT segments.refresh();
SELECT clock_timestamp() AS inside \gset
SELECT s.name, c.contact_id, c.entered, c.cause, c.at = c2.at AS same_at
  FROM segments.membership_changes c
  JOIN segments.segments s ON s.id = c.segment_id
  CROSS JOIN LATERAL (SELECT max(at) AS at FROM segments.membership_changes) c2
 ORDER BY c.change_id;
-- ids follow the order of recording, with no duplicate
SELECT count(*) = count(DISTINCT change_id) AS no_duplicate_id,
       min(change_id) > 0 AS ids_positive FROM segments.membership_changes;
-- a second refresh changes nothing, records nothing
SELECT max(change_id) AS last_id FROM segments.membership_changes \gset
SELECT segments.refresh();
SELECT count(*) AS recorded_by_idle_refresh FROM segments.membership_changes WHERE change_id > :last_id;

-- refresh_contacts(): contact 2 leaves VIP and enters Free; since is kept
-- as the exit's record of when the membership began.
\c - hist_owner
UPDATE contacts SET plan = 'free' WHERE id = 2;
\c - hist_admin
SELECT segments.refresh_contacts(ARRAY[2]);
SELECT clock_timestamp() AS after_exit \gset
SELECT s.name, c.contact_id, c.entered, c.cause
  FROM segments.membership_changes c JOIN segments.segments s ON s.id = c.segment_id
 WHERE c.change_id > :last_id ORDER BY c.change_id;
SELECT at AS exit_at FROM segments.membership_changes
 WHERE contact_id = 2 AND segment_id = :'vip' AND NOT entered \gset
SELECT at AS entry_at FROM segments.membership_changes
 WHERE contact_id = 2 AND segment_id = :'vip' AND entered \gset

-- Point in time: before, at, inside, at the exit (exclusive), after.
SELECT segments.was_member(2, :'vip', :'before_entry') AS before_entry,
       segments.was_member(2, :'vip', :'entry_at') AS at_entry,
       segments.was_member(2, :'vip', :'inside') AS inside,
       segments.was_member(2, :'vip', :'exit_at') AS at_exit,
       segments.was_member(2, :'vip', :'after_exit') AS after_exit,
       segments.was_member(4, :'vip', :'after_exit') AS still_member,
       segments.was_member(3, :'vip', :'inside') AS never_member;
-- the contact as text or bigint, the segment by name
SELECT segments.was_member('2', 'VIP', :'inside') AS text_and_name,
       segments.was_member(2::bigint, :'vip'::uuid, :'inside') AS bigint_and_uuid,
       segments.was_member(2::smallint, 'VIP', :'after_exit') AS smallint_after;
SELECT segments.was_member(2, '00000000-0000-0000-0000-000000000000'::uuid, now()) AS unknown_segment;
SELECT try($$SELECT segments.was_member(2, 'No such segment', now())$$) AS unknown_name;
-- periods of membership
SELECT s.name, h.contact_id,
       h.valid_from = :'entry_at' AS from_entry,
       CASE WHEN h.valid_to IS NULL THEN 'open' WHEN h.valid_to = :'exit_at' THEN 'exit' ELSE 'other' END AS valid_to
  FROM segments.membership_history h JOIN segments.segments s ON s.id = h.segment_id
 WHERE h.contact_id IN (2, 4)
 ORDER BY s.name, h.contact_id, h.valid_from;

-- Daily counts: today's is the current count; yesterday's comes before
-- every recorded entry (all today).  Days are UTC days; pg_regress's
-- sessions are in PST8PDT, whose current_date differs for 8 hours a day.
SELECT (now() AT TIME ZONE 'UTC')::date AS utc_today \gset
SELECT day = :'utc_today'::date AS today, members
  FROM segments.segment_counts(:'vip', :'utc_today'::date - 1, :'utc_today'::date) ORDER BY day;
SELECT count(*) AS days FROM segments.segment_counts('VIP', :'utc_today'::date - 29, :'utc_today'::date);
SELECT try($$SELECT * FROM segments.segment_counts('VIP', '2026-01-02', '2026-01-01')$$) AS from_after_to;
SELECT try($$SELECT * FROM segments.segment_counts('VIP', '2015-01-01', '2025-12-31')$$) AS too_many_days;
SELECT count(*) AS unknown_segment_days
  FROM segments.segment_counts('00000000-0000-0000-0000-000000000000'::uuid, :'utc_today'::date, :'utc_today'::date);

-- The feed with cursors: two consumers, each its own cursor; max bounds a batch.
SELECT contact_id, entered FROM segments.consume_changes('mailer', 3);
SELECT contact_id, entered FROM segments.consume_changes('mailer', 3);
SELECT count(*) AS crm_gets_everything FROM segments.consume_changes('crm', 1000);
SELECT count(*) AS crm_again_nothing FROM segments.consume_changes('crm', 1000);
-- a rollback delivers the same changes again (at-least-once)
BEGIN;
SELECT array_agg(contact_id ORDER BY change_id) AS first_delivery FROM segments.consume_changes('mailer', 2);
ROLLBACK;
SELECT array_agg(contact_id ORDER BY change_id) AS delivered_again FROM segments.consume_changes('mailer', 2);
-- bad arguments
SELECT try($$SELECT * FROM segments.consume_changes('', 10)$$) AS empty_name;
SELECT try($$SELECT * FROM segments.consume_changes(NULL, 10)$$) AS null_name;
SELECT try($$SELECT * FROM segments.consume_changes('mailer', 0)$$) AS max_zero;
SELECT try($$SELECT * FROM segments.consume_changes('mailer', 100001)$$) AS max_too_big;

-- Tenancy: a tenant sees changes of its own contacts only, in the global
-- segments it sees; its cursor is its own, even under the same name.
\c - hist_a
SELECT contact_id, entered FROM segments.membership_changes ORDER BY change_id, entered;
SELECT count(*) AS a_consumes FROM segments.consume_changes('mailer', 1000);
SELECT count(*) AS a_history_rows, bool_and(contact_id <= 5) AS a_own_contacts FROM segments.membership_history;
SELECT segments.was_member(8, 'VIP', now()) AS other_tenants_contact;
SELECT segments.was_member(4, 'VIP', now()) AS own_contact;
SELECT members FROM segments.segment_counts('VIP', :'utc_today'::date, :'utc_today'::date);
\c - hist_b
SELECT count(*) AS b_changes, bool_and(contact_id > 5) AS b_own_contacts FROM segments.membership_changes;
\c - hist_none
SELECT count(*) AS no_tenant_sees_nothing FROM segments.membership_changes;
-- it has no cursor of its own: one of tenant NULL is the admins', which a
-- call that sees nothing would move past every change (refused)
\c - postgres
SELECT last_change_id AS mailer_at, last_offset AS mailer_off FROM segments.change_cursor
 WHERE tenant IS NULL AND consumer = 'mailer' \gset
\c - hist_none
SELECT try($$SELECT count(*) FROM segments.consume_changes('mailer', 10)$$) AS no_tenant_consumes;
\c - postgres
SELECT last_change_id = :'mailer_at' AND last_offset IS NOT DISTINCT FROM nullif(:'mailer_off', '')::integer
       AS admins_cursor_kept
  FROM segments.change_cursor WHERE tenant IS NULL AND consumer = 'mailer';
SELECT tenant, consumer FROM segments.change_cursor ORDER BY tenant NULLS FIRST, consumer;

-- Privileges: a role without segments_read can read nothing of it.
\c - hist_public
SELECT try('SELECT count(*) FROM segments.membership_changes') AS public_feed;
SELECT try('SELECT count(*) FROM segments.membership_history') AS public_history;
SELECT try($$SELECT * FROM segments.consume_changes('x', 1)$$) AS public_consume;
SELECT try($$SELECT segments.was_member(2, 'VIP', now())$$) AS public_was_member;
SELECT try($$SELECT * FROM segments.segment_counts('VIP', current_date, current_date)$$) AS public_counts;
SELECT try('SELECT count(*) FROM segments.change_log') AS public_log;
\c - hist_a
SELECT try('SELECT count(*) FROM segments.change_log') AS reader_log_table;
SELECT try('SELECT segments.trim_history()') AS reader_trim;
SELECT try('SET segments.history = off') AS reader_turns_history_off;

-- Failing closed: a segment that no longer compiles loses its members,
-- each exit recorded as 'failed'.
\c - postgres
SELECT max(change_id) AS last_id FROM segments.change_log \gset
UPDATE segments.segment SET definition = '{"type":"attribute","field":"no_such_column","op":"eq","value":1}' WHERE id = :'free';
SELECT segments.refresh(:'free');
SELECT count(*) AS exits, bool_and(NOT entered) AS all_exits, min(cause) AS cause
  FROM segments.membership_changes WHERE change_id > :last_id;
UPDATE segments.segment SET definition = '{"type":"attribute","field":"plan","op":"eq","value":"free"}' WHERE id = :'free';
SELECT segments.refresh(:'free');

-- Dropping a segment: an exit for each member, cause 'dropped'; the feed
-- still names the dropped segment; its periods are closed.
SELECT max(change_id) AS last_id FROM segments.change_log \gset
SELECT segments.drop_segment(:'vip');
SELECT segment_id = :'vip' AS dropped_id, array_agg(contact_id ORDER BY contact_id) AS exits, min(cause) AS cause
  FROM segments.membership_changes WHERE change_id > :last_id GROUP BY 1;
SELECT count(*) AS open_periods_of_dropped
  FROM segments.membership_history WHERE segment_id = :'vip' AND valid_to IS NULL;
SELECT segments.was_member(4, :'vip'::uuid, :'inside') AS dropped_was_member_then,
       segments.was_member(4, :'vip'::uuid, now()) AS dropped_not_now;

-- A write by hand (superuser): recorded as 'other'.
SELECT max(change_id) AS last_id FROM segments.change_log \gset
DELETE FROM segments.member WHERE contact_id = 1;
SELECT contact_id, entered, cause FROM segments.membership_changes WHERE change_id > :last_id;
SELECT segments.refresh();

-- segments.history = off: membership changes, nothing is recorded.
SELECT max(change_id) AS last_id FROM segments.change_log \gset
SET segments.history = off;
UPDATE contacts SET plan = 'vip' WHERE id IN (1, 3);
SELECT segments.refresh();
SELECT count(*) AS recorded_while_off FROM segments.change_log WHERE change_id > :last_id;
SELECT count(*) AS membership_changed FROM segments.membership m
  JOIN segments.segments s ON s.id = m.segment_id WHERE s.name = 'Free';
RESET segments.history;

-- configure(NULL): every membership ends, recorded as 'configure'.
SELECT max(change_id) AS last_id FROM segments.change_log \gset
SELECT segments.configure(NULL);
SELECT count(*) AS exits, bool_and(NOT entered) AS all_exits, min(cause) AS cause
  FROM segments.membership_changes WHERE change_id > :last_id;
-- configure() again: recorded as 'configure' too
SELECT segments.configure('public.contacts', 'id', tenant_column => 'org_id');
SELECT count(*) > 0 AS entries, min(cause) AS cause
  FROM segments.membership_changes WHERE change_id > :last_id AND entered;

-- Retention: trim_history() deletes changes older than the retention only.
SELECT count(*) AS before_trim FROM segments.change_log \gset
SELECT segments.trim_history() AS trimmed_none;
UPDATE segments.change_log SET at = at - interval '100 days' WHERE change_id <= 3;
SELECT segments.trim_history() AS trimmed_old;
SELECT count(*) = :before_trim - 3 AS three_gone FROM segments.change_log;
SELECT try('SELECT segments.trim_history(0)') AS trim_zero;
-- internal functions used wrongly
SELECT try($$SELECT segments._history_cause('nope')$$) AS unknown_cause;
CREATE TABLE not_member (x int);
CREATE TRIGGER wrong AFTER INSERT ON not_member FOR EACH ROW EXECUTE FUNCTION segments._member_history();
SELECT try('INSERT INTO not_member VALUES (1)') AS row_trigger;
DROP TABLE not_member;

-- Another key type starts the history afresh (the log holds keys).
\c - hist_owner
CREATE TABLE tcontacts (id text PRIMARY KEY, plan text);
INSERT INTO tcontacts VALUES ('a', 'vip'), ('b', 'free');
\c - postgres
SELECT segments.configure('public.tcontacts', 'id');
SELECT pg_typeof(contact_id) AS key_type, count(*) AS changes
  FROM segments.membership_changes GROUP BY 1;
SELECT segments.was_member('b', 'Free', now()) AS text_key_was_member;

\c contrib_regression postgres
SET client_min_messages = warning;
DROP DATABASE segments_history;
DROP ROLE hist_owner, hist_a, hist_b, hist_none, hist_admin, hist_public;

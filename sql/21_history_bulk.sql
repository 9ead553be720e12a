-- Membership history in bulk rows: a statement changing many contacts (a
-- first pass, a bulk refresh_contacts(), deleted contacts) is recorded in
-- rows of up to 256 contacts each.  Checks that every change is recorded
-- exactly once with its cause (against membership itself), that bulk rows
-- hold the range of their keys, that was_member() finds a contact in them
-- at the ends of the range and at the boundaries of a membership, that
-- polling by change_id and was_member() can use an index, that the
-- feed, consume_changes(), membership_history and segment_counts() read
-- bulk rows as tenants and readers see them, and text keys.  The writer
-- is a segments_admin login role, the readers segments_read ones; the
-- worker is off in this database.
\set VERBOSITY terse
SET client_min_messages = warning;
DROP DATABASE IF EXISTS segments_history_bulk;
DROP ROLE IF EXISTS histb_owner, histb_admin, histb_a, histb_b, histb_reader, histb_public;
RESET client_min_messages;
CREATE DATABASE segments_history_bulk;
ALTER DATABASE segments_history_bulk SET segments.enabled = off;
CREATE ROLE histb_owner LOGIN;
CREATE ROLE histb_admin LOGIN IN ROLE segments_admin;
CREATE ROLE histb_a LOGIN IN ROLE segments_read;
CREATE ROLE histb_b LOGIN IN ROLE segments_read;
CREATE ROLE histb_reader LOGIN IN ROLE segments_read;
CREATE ROLE histb_public LOGIN;
ALTER ROLE histb_a SET segments.tenant = '1';
ALTER ROLE histb_b SET segments.tenant = '2';

\c segments_history_bulk
CREATE EXTENSION segments;
GRANT CREATE ON SCHEMA public TO histb_owner;
-- Does the plan of a query use an index of segments.change_log?
CREATE FUNCTION public.uses_index(sql text, idx text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    line text;
BEGIN
    SET LOCAL enable_seqscan = off;
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || sql LOOP
        IF line LIKE '%' || idx || '%' THEN
            RETURN true;
        END IF;
    END LOOP;
    RETURN false;
END
$$;
GRANT EXECUTE ON FUNCTION public.uses_index(text, text) TO PUBLIC;
-- The scans of segments.change_log in a query's plan, "Seq Scan" or the
-- index used (EXPLAIN (FORMAT JSON), every node), with sequential scans
-- priced out: a Seq Scan then means no index could serve.
CREATE FUNCTION public.change_log_scans(sql text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    plan jsonb;
BEGIN
    SET LOCAL enable_seqscan = off;
    EXECUTE 'EXPLAIN (FORMAT JSON) ' || sql INTO plan;
    RETURN ARRAY(
        WITH RECURSIVE n(node) AS (
            SELECT plan -> 0 -> 'Plan'
            UNION ALL
            SELECT c FROM n CROSS JOIN LATERAL jsonb_array_elements(coalesce(n.node -> 'Plans', '[]')) AS c)
        SELECT DISTINCT CASE WHEN node ->> 'Node Type' = 'Seq Scan' THEN 'Seq Scan' ELSE node ->> 'Index Name' END
          FROM n
         WHERE (node ->> 'Node Type' = 'Seq Scan' AND node ->> 'Relation Name' = 'change_log')
            OR node ->> 'Index Name' LIKE 'change_log%'
         ORDER BY 1);
END
$$;
GRANT EXECUTE ON FUNCTION public.change_log_scans(text) TO PUBLIC;

\c - histb_owner
-- 1-1000 tenant 1, 1001-2000 tenant 2; every third contact a vip
CREATE TABLE contacts (id integer PRIMARY KEY, org_id integer, plan text);
INSERT INTO contacts SELECT g, CASE WHEN g <= 1000 THEN 1 ELSE 2 END,
                            CASE WHEN g % 3 = 0 THEN 'vip' ELSE 'free' END
  FROM generate_series(1, 2000) g;
GRANT SELECT ON contacts TO histb_admin;
\c - postgres
SELECT segments.configure('public.contacts', 'id', tenant_column => 'org_id');
\c - histb_admin
SELECT segments.create_segment('VIP', '{"type":"attribute","field":"plan","op":"eq","value":"vip"}') AS vip \gset
SELECT segments.create_segment('Free', '{"type":"attribute","field":"plan","op":"eq","value":"free"}') AS free \gset

-- The first pass: 2000 entries in eight bulk rows (7 of 256 contacts, 208),
-- each holding the range of its keys.
SELECT clock_timestamp() AS before_pass \gset
SELECT segments.refresh();
SELECT clock_timestamp() AS after_pass \gset
\c - postgres
SELECT count(*) FILTER (WHERE contacts IS NULL) AS single_rows,
       array_agg(cardinality(contacts) ORDER BY change_id) AS bulk_sizes,
       bool_and(contact_lo = (SELECT min(k) FROM unnest(contacts) k)
                AND contact_hi = (SELECT max(k) FROM unnest(contacts) k)) AS ranges_hold_keys,
       bool_and(cardinality(tenants) = cardinality(contacts) AND cardinality(entereds) = cardinality(contacts)
                AND cardinality(exiteds) = cardinality(contacts)) AS arrays_aligned
  FROM segments.change_log;
-- every membership entered exactly once, cause refresh, and nothing else
SELECT count(*) AS changes, bool_and(entered) AS all_entries, min(cause) AS cause, max(cause) AS same_cause
  FROM segments.membership_changes;
SELECT (SELECT count(*) FROM (SELECT segment_id, contact_id FROM segments.membership_changes
                              EXCEPT ALL SELECT segment_id, contact_id FROM segments.membership) x) AS recorded_not_member,
       (SELECT count(*) FROM (SELECT segment_id, contact_id FROM segments.membership
                              EXCEPT ALL SELECT segment_id, contact_id FROM segments.membership_changes) x) AS member_not_recorded;

-- A bulk refresh_contacts(): 600 contacts change plan, each leaves one
-- segment and enters the other, recorded once each with cause refresh_contacts.
SELECT max(change_id) AS last_id FROM segments.change_log \gset
\c - histb_owner
UPDATE contacts SET plan = CASE plan WHEN 'vip' THEN 'free' ELSE 'vip' END WHERE id <= 600;
\c - histb_admin
SELECT clock_timestamp() AS before_flip \gset
SELECT segments.refresh_contacts(ARRAY(SELECT g FROM generate_series(1, 600) g));
SELECT clock_timestamp() AS after_flip \gset
\c - postgres
SELECT count(*) AS changes, count(*) FILTER (WHERE entered) AS entries, min(cause) AS cause, max(cause) AS same_cause,
       count(DISTINCT contact_id) AS contacts
  FROM segments.membership_changes WHERE change_id > :last_id;
-- the entries are exactly the new memberships of those contacts, the exits the old ones
SELECT count(*) AS wrong_changes FROM segments.membership_changes c
 WHERE c.change_id > :last_id
   AND c.entered <> EXISTS (SELECT 1 FROM segments.membership m
                             WHERE m.segment_id = c.segment_id AND m.contact_id = c.contact_id);
SELECT count(*) AS bulk_rows_of_flip FROM segments.change_log WHERE change_id > :last_id AND contacts IS NOT NULL;
SELECT at AS flip_at FROM segments.change_log WHERE change_id > :last_id LIMIT 1 \gset
SELECT at AS pass_at FROM segments.change_log ORDER BY change_id LIMIT 1 \gset

-- Point in time, through bulk rows: contact 3 was a vip from the pass to
-- the flip; contact 1 the other way round; the ends of the first bulk
-- row's range (1 and 256), of the second (257) and of the last (2000).  Read by
-- an admin (every tenant); tenants below.
\c - histb_admin
SELECT segments.was_member(3, :'vip', :'before_pass') AS before_entry,
       segments.was_member(3, :'vip', :'pass_at') AS at_entry,
       segments.was_member(3, :'vip', :'before_flip') AS inside,
       segments.was_member(3, :'vip', :'flip_at') AS at_exit,
       segments.was_member(3, :'vip', :'after_flip') AS after_exit,
       segments.was_member(1, :'vip', :'before_flip') AS one_not_yet,
       segments.was_member(1, :'vip', :'after_flip') AS one_now;
SELECT segments.was_member(1, :'free', :'before_flip') AS lo_of_first_row,
       segments.was_member(256, :'free', :'after_pass') AS hi_of_first_row,
       segments.was_member(256, :'vip', :'after_pass') AS hi_not_vip,
       segments.was_member(257, :'free', :'after_pass') AS lo_of_second_row,
       segments.was_member(2000, :'free', :'after_pass') AS hi_of_last_row,
       segments.was_member(2001, :'free', :'after_pass') AS past_every_range,
       segments.was_member(0, :'free', :'after_pass') AS before_every_range;
-- the periods of contacts 1 and 3 in VIP
SELECT h.contact_id, h.valid_from = :'pass_at' AS from_pass, h.valid_from = :'flip_at' AS from_flip,
       CASE WHEN h.valid_to IS NULL THEN 'open' WHEN h.valid_to = :'flip_at' THEN 'flip' ELSE 'other' END AS valid_to
  FROM segments.membership_history h
 WHERE h.segment_id = :'vip' AND h.contact_id IN (1, 3) ORDER BY 1;
-- one open period per current membership
SELECT (SELECT count(*) FROM segments.membership_history WHERE valid_to IS NULL)
     = (SELECT count(*) FROM segments.membership) AS open_periods_match;
SELECT (now() AT TIME ZONE 'UTC')::date AS utc_today \gset
SELECT members = (SELECT count(*) FROM segments.membership WHERE segment_id = :'vip') AS counts_today
  FROM segments.segment_counts(:'vip', :'utc_today'::date, :'utc_today'::date);
SELECT members AS yesterday FROM segments.segment_counts(:'vip', :'utc_today'::date - 1, :'utc_today'::date - 1);

-- Reads use indexes: polling by change_id the primary key, was_member()'s
-- bulk rows the range index.
SELECT uses_index('SELECT * FROM segments.membership_changes WHERE change_id > 5', 'change_log_pkey') AS poll_by_pkey;
\c - postgres
SELECT uses_index('SELECT change_id FROM segments.change_log c WHERE c.contacts IS NOT NULL
                      AND c.contact_lo <= 7 AND c.contact_hi >= 7', 'change_log_range_idx') AS range_index;

-- consume_changes() in batches of 100 by a tenant: every change of its
-- contacts once, in id order, at most 100 a call (a batch ends inside a
-- bulk row of 256 contacts, and the next one goes on from there).
\c - histb_a
CREATE TEMP TABLE got (seq serial, call_no integer, change_id bigint, segment_id uuid, contact_id integer, entered boolean);
DO $$
DECLARE
    n integer;
    k integer := 0;
BEGIN
    LOOP
        k := k + 1;
        INSERT INTO got (call_no, change_id, segment_id, contact_id, entered)
        SELECT k, change_id, segment_id, contact_id, entered FROM segments.consume_changes('bulk', 100);
        GET DIAGNOSTICS n = ROW_COUNT;
        EXIT WHEN n = 0;
    END LOOP;
END
$$;
SELECT count(*) AS consumed,
       (SELECT count(*) FROM (SELECT change_id, segment_id, contact_id, entered FROM got
                              EXCEPT ALL SELECT change_id, segment_id, contact_id, entered FROM segments.membership_changes) x) AS extra,
       (SELECT count(*) FROM (SELECT change_id, segment_id, contact_id, entered FROM segments.membership_changes
                              EXCEPT ALL SELECT change_id, segment_id, contact_id, entered FROM got) x) AS missed,
       (SELECT count(*) FROM (SELECT change_id < lag(change_id) OVER (ORDER BY seq) AS back FROM got) x WHERE back) AS out_of_order
  FROM got;
SELECT max(n) AS largest_batch, count(*) FILTER (WHERE n < 100) AS short_batches
  FROM (SELECT call_no, count(*) AS n FROM got GROUP BY call_no) x;
SELECT count(*) > 0 AS batches_resumed_inside_a_row
  FROM (SELECT call_no, max(change_id) AS last_id FROM got GROUP BY call_no) a
  JOIN (SELECT call_no, min(change_id) AS first_id FROM got GROUP BY call_no) b
    ON b.call_no = a.call_no + 1 AND b.first_id = a.last_id;
-- a rollback inside a row delivers the same changes again, then the
-- cursor goes on from the end of what was delivered: the first 300 in
-- the feed's order
BEGIN;
CREATE TEMP TABLE first_try AS SELECT * FROM segments.consume_changes('bulk2', 150);
ROLLBACK;
CREATE TEMP TABLE first_try AS SELECT * FROM segments.consume_changes('bulk2', 150);
CREATE TEMP TABLE second_try AS SELECT * FROM segments.consume_changes('bulk2', 150);
SELECT (SELECT count(*) FROM first_try) AS first, (SELECT count(*) FROM second_try) AS second,
       (SELECT count(*) FROM (SELECT * FROM first_try INTERSECT SELECT * FROM second_try) x) AS overlap,
       (SELECT count(*) FROM (SELECT * FROM first_try UNION ALL SELECT * FROM second_try
                              EXCEPT ALL
                              (SELECT * FROM segments.membership_changes
                                ORDER BY change_id, contact_id, entered, segment_id LIMIT 300)) x) AS not_the_first_300;
\c - postgres
SELECT last_offset IS NOT NULL AS cursor_inside_a_row FROM segments.change_cursor WHERE consumer = 'bulk2';

-- Tenancy: a tenant reads its own contacts out of bulk rows, and nothing
-- of the other tenant's.
\c - histb_a
SELECT count(*) AS a_changes, bool_and(contact_id <= 1000) AS a_own_contacts FROM segments.membership_changes;
SELECT count(*) AS a_consumes, bool_and(contact_id <= 1000) AS a_own FROM segments.consume_changes('other', 100000);
SELECT segments.was_member(1501, 'Free', now()) AS other_tenants_contact,
       segments.was_member(700, 'Free', now()) AS own_contact,
       segments.was_member(3, 'VIP', :'before_flip') AS own_then,
       segments.was_member(3, 'VIP', :'after_flip') AS own_not_now;
SELECT count(*) AS a_periods, bool_and(contact_id <= 1000) AS a_own_periods FROM segments.membership_history;
SELECT members FROM segments.segment_counts('Free', :'utc_today'::date, :'utc_today'::date);
\c - histb_b
SELECT count(*) AS b_changes, bool_and(contact_id > 1000) AS b_own_contacts FROM segments.membership_changes;
SELECT segments.was_member(3, 'VIP', :'before_flip') AS other_tenants_then,
       segments.was_member(1501, 'Free', now()) AS own_contact;
-- a reader without a tenant sees nothing in a database with tenants
\c - histb_reader
SELECT count(*) AS no_tenant_changes FROM segments.membership_changes;
\c - histb_public
SELECT count(*) FROM segments.membership_changes;
SELECT segments.was_member(1, 'Free', now());

-- Deleted contacts: 100 exits (a bulk row), once each; dropping a segment:
-- an exit per member, cause dropped.
\c - postgres
SELECT max(change_id) AS last_id FROM segments.change_log \gset
DELETE FROM contacts WHERE id > 1900;
SELECT segments.refresh();
SELECT count(*) AS exits, count(DISTINCT contact_id) AS contacts, bool_and(NOT entered) AS all_exits,
       min(contact_id) AS first, min(cause) AS cause
  FROM segments.membership_changes WHERE change_id > :last_id;
SELECT segments.was_member(1951, 'Free', now()) AS deleted_not_now,
       segments.was_member(1951, 'Free', :'after_flip') AS deleted_was_then;
SELECT max(change_id) AS last_id FROM segments.change_log \gset
SELECT count(*) AS vip_members FROM segments.membership WHERE segment_id = :'vip';
SELECT segments.drop_segment(:'vip');
SELECT count(*) AS exits, count(DISTINCT contact_id) AS contacts, bool_and(NOT entered) AS all_exits, min(cause) AS cause
  FROM segments.membership_changes WHERE change_id > :last_id;
SELECT count(*) FILTER (WHERE contacts IS NOT NULL) AS bulk_rows, count(*) FILTER (WHERE contacts IS NULL) AS single_rows
  FROM segments.change_log WHERE change_id > :last_id;
-- contact 603 was a vip until the drop
SELECT segments.was_member(603, :'vip'::uuid, :'after_flip') AS dropped_was_member_then,
       segments.was_member(603, :'vip'::uuid, now()) AS dropped_not_now;

-- membership_history for one contact reads its rows through indexes (its
-- own rows by contact_id, bulk rows by their range), not the whole log;
-- and gives, for every contact (deleted ones and members of the dropped
-- segment among them), the periods a computation over the whole log gives.
\c - histb_admin
SELECT public.change_log_scans('SELECT * FROM segments.membership_history WHERE contact_id = 603') AS one_contact_scans;
\c - postgres
CREATE TEMP TABLE brute AS
SELECT s.id AS segment_id, w.contact_id,
       CASE WHEN w.entered THEN w.at ELSE w.since END AS valid_from,
       CASE WHEN w.entered THEN w.next_at ELSE w.at END AS valid_to
  FROM (SELECT x.num, p.contact_id, x.entered, c.at, x.since,
               lead(c.at) OVER w AS next_at, lag(x.entered) OVER w AS prev_entered
          FROM segments.change_log c
         CROSS JOIN LATERAL (SELECT c.contact_id AS k, c.entered AS e, c.exited AS x WHERE c.contacts IS NULL
                             UNION ALL
                             SELECT u.k, u.e, u.x FROM ROWS FROM (unnest(c.contacts), unnest(c.entereds), unnest(c.exiteds)) AS u(k, e, x)) AS q
         CROSS JOIN LATERAL (SELECT q.k AS contact_id) AS p
         CROSS JOIN LATERAL segments._history_rows(q.e, q.x) AS x
        WINDOW w AS (PARTITION BY x.num, p.contact_id ORDER BY c.change_id)) w
  JOIN segments._history_segments s ON s.num = w.num
 WHERE w.entered OR w.prev_entered IS NOT TRUE
UNION ALL
SELECT s.id, m.contact_id, u.since, NULL
  FROM segments.member m CROSS JOIN LATERAL segments._member_rows(m.data) AS u
  JOIN segments.segment s ON s.num = u.num
 WHERE (SELECT bool_or(true) FROM segments.change_log c
         WHERE c.contact_id = m.contact_id OR m.contact_id = ANY (c.contacts)) IS NULL;
CREATE TEMP TABLE looked_up AS
SELECT h.* FROM generate_series(0, 2001) g
 CROSS JOIN LATERAL (SELECT * FROM segments.membership_history h WHERE h.contact_id = g) h;
SELECT (SELECT count(*) FROM brute) AS periods,
       (SELECT count(*) FROM brute WHERE contact_id > 1900) AS of_deleted_contacts,
       (SELECT count(*) FROM brute WHERE segment_id = :'vip') AS of_dropped_segment,
       (SELECT count(*) FROM (SELECT * FROM looked_up EXCEPT ALL SELECT * FROM brute) x) AS extra,
       (SELECT count(*) FROM (SELECT * FROM brute EXCEPT ALL SELECT * FROM looked_up) x) AS missed,
       (SELECT count(*) FROM (SELECT * FROM segments.membership_history EXCEPT ALL SELECT * FROM brute) x) AS whole_extra,
       (SELECT count(*) FROM (SELECT * FROM brute EXCEPT ALL SELECT * FROM segments.membership_history) x) AS whole_missed;
-- a deleted contact's exits are rows of its own (contact_id), so that its
-- bulk rows are found
SELECT count(*) AS own_rows_of_deleted, count(*) FILTER (WHERE exited IS NULL) AS without_change
  FROM segments.change_log WHERE contact_id > 1900;
-- a tenant's lookup: its own contact, and nothing of the other tenant's
\c - histb_a
SELECT count(*) AS own_periods FROM segments.membership_history WHERE contact_id = 603;
SELECT count(*) AS other_tenants_periods FROM segments.membership_history WHERE contact_id = 1501;

-- a contact in the dropped segment only leaves membership storage with no
-- change to record: a row of its own all the same (no change), and its
-- period in the dropped segment is still found
\c - histb_owner
DELETE FROM contacts WHERE id = 603;
\c - histb_admin
SELECT segments.refresh();
SELECT segment_id = :'vip' AS in_dropped_segment, valid_to IS NOT NULL AS closed
  FROM segments.membership_history WHERE contact_id = 603;
\c - postgres
SELECT count(*) AS rows_without_change FROM segments.change_log
 WHERE contact_id = 603 AND entered IS NULL AND exited IS NULL;

-- Text keys: bulk rows in the key type's order; was_member() at both ends.
-- The session records a change with integer keys first: the inserts it
-- prepared for the old change log are not used for the new one.
\c - histb_owner
CREATE TABLE tcontacts (id text PRIMARY KEY, plan text);
INSERT INTO tcontacts SELECT 'k' || g, 'free' FROM generate_series(1, 300) g;
UPDATE contacts SET plan = 'free' WHERE id = 1500;
\c - postgres
SELECT segments.refresh_contacts(ARRAY[1500]) AS recorded_with_integer_keys;
SELECT segments.configure('public.tcontacts', 'id');
SELECT pg_typeof(contact_lo) AS key_type, contact_lo, contact_hi, cardinality(contacts) AS contacts
  FROM segments.change_log WHERE contacts IS NOT NULL;
SELECT segments.was_member('k1', 'Free', now()) AS lo_free, segments.was_member('k99', 'Free', now()) AS hi_free,
       segments.was_member('k0', 'Free', now()) AS not_a_contact,
       (SELECT count(*) FROM segments.membership_changes) AS changes;

\c contrib_regression postgres
SET client_min_messages = warning;
DROP DATABASE segments_history_bulk;
DROP ROLE histb_owner, histb_admin, histb_a, histb_b, histb_reader, histb_public;

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
-- contacts once, in id order (a bulk row comes whole).
\c - histb_a
CREATE TEMP TABLE got (seq serial, change_id bigint, segment_id uuid, contact_id integer, entered boolean);
DO $$
BEGIN
    LOOP
        INSERT INTO got (change_id, segment_id, contact_id, entered)
        SELECT change_id, segment_id, contact_id, entered FROM segments.consume_changes('bulk', 100);
        EXIT WHEN NOT FOUND;
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

-- Text keys: bulk rows in the key type's order; was_member() at both ends.
\c - histb_owner
CREATE TABLE tcontacts (id text PRIMARY KEY, plan text);
INSERT INTO tcontacts SELECT 'k' || g, 'free' FROM generate_series(1, 300) g;
\c - postgres
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

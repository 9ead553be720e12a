-- segments.membership as reports read it: one segment through the GIN
-- index, with the segment's member count as the planner's estimate; every
-- segment without unnesting a stored row; the same pairs (and since) as
-- segment_members() and the stored rows; a tenant only its own contacts,
-- even to a leaky function of its own; a reader without a tenant nothing;
-- a role without segments_read no access.  Runs in a database of its own,
-- with its worker off, as the application (an owner role writing contacts
-- and conversations) and reader roles.
\set VERBOSITY terse
SELECT current_user AS superuser \gset
SET client_min_messages = warning;
DROP DATABASE IF EXISTS segments_report;
DROP ROLE IF EXISTS rep_owner, rep_a, rep_b, rep_reader, rep_admin, rep_nobody;
RESET client_min_messages;
CREATE DATABASE segments_report;
ALTER DATABASE segments_report SET segments.enabled = off;
CREATE ROLE rep_owner LOGIN;
CREATE ROLE rep_a LOGIN IN ROLE segments_read;
CREATE ROLE rep_b LOGIN IN ROLE segments_read;
CREATE ROLE rep_reader LOGIN IN ROLE segments_read;
CREATE ROLE rep_admin LOGIN IN ROLE segments_read, segments_admin;
CREATE ROLE rep_nobody LOGIN;
ALTER ROLE rep_a SET segments.tenant = 'a';
ALTER ROLE rep_b SET segments.tenant = 'b';

\c segments_report
CREATE EXTENSION segments;
GRANT CREATE ON SCHEMA public TO rep_owner;
-- The plan of a query, segment ids masked (they differ from run to run).
CREATE FUNCTION public.plan_of(sql text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    line text;
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || sql LOOP
        RETURN NEXT regexp_replace(line, '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>', 'g');
    END LOOP;
END
$$;
-- The planner's row estimate of a query over the rows it returns.
CREATE FUNCTION public.estimate_ratio(sql text) RETURNS numeric
LANGUAGE plpgsql AS $$
DECLARE
    plan   json;
    actual bigint;
BEGIN
    EXECUTE 'EXPLAIN (FORMAT JSON) ' || sql INTO plan;
    EXECUTE 'SELECT count(*) FROM (' || sql || ') q' INTO actual;
    RETURN round((plan -> 0 -> 'Plan' ->> 'Plan Rows')::numeric / greatest(actual, 1), 2);
END
$$;
GRANT EXECUTE ON FUNCTION public.plan_of(text), public.estimate_ratio(text) TO PUBLIC;

\c - rep_owner
-- 20,000 contacts of tenants a and b; 100,000 conversations, 5 a contact
CREATE TABLE contacts (id bigint PRIMARY KEY, tenant text NOT NULL, n int NOT NULL);
INSERT INTO contacts SELECT g, CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END, g FROM generate_series(1, 20000) g;
CREATE TABLE conversation (id bigint PRIMARY KEY, contact_id bigint NOT NULL, csat int NOT NULL);
INSERT INTO conversation SELECT g, 1 + g % 20000, 1 + g % 5 FROM generate_series(1, 100000) g;
CREATE INDEX conversation_contact_idx ON conversation (contact_id);
GRANT SELECT ON conversation TO rep_a, rep_b, rep_reader, rep_admin;
ANALYZE contacts, conversation;
\c - :superuser
SELECT segments.configure('public.contacts', 'id', tenant_column => 'tenant');
SELECT segments.create_segment('rare', '{"type": "attribute", "field": "n", "op": "lte", "value": 40}') AS rare \gset
SELECT segments.create_segment('half', '{"type": "attribute", "field": "n", "op": "lte", "value": 10000}') AS half \gset
SELECT segments.create_segment('most', '{"type": "attribute", "field": "n", "op": "gt", "value": 100}') AS most \gset
SELECT segments.create_segment('of a', '{"type": "attribute", "field": "n", "op": "lte", "value": 1000}', tenant => 'a') AS of_a \gset
SELECT segments.refresh();
VACUUM ANALYZE segments.member;

-- The view reads the same pairs as segment_members(), by one segment and
-- grouped, and the same since as the stored rows.
SELECT s.name, (SELECT count(*) FROM segments.membership m WHERE m.segment_id = s.id) AS one_segment,
       g.n AS grouped, (SELECT count(*) FROM segments.segment_members(s.id)) AS segment_members
  FROM segments.segment s
  LEFT JOIN (SELECT segment_id, count(*) AS n FROM segments.membership GROUP BY 1) g ON g.segment_id = s.id
 ORDER BY s.name;
SELECT s.name,
       (SELECT count(*) FROM ((SELECT contact_id FROM segments.membership WHERE segment_id = s.id)
                              EXCEPT (SELECT * FROM segments.segment_members(s.id))) d) AS only_in_view,
       (SELECT count(*) FROM ((SELECT * FROM segments.segment_members(s.id))
                              EXCEPT (SELECT contact_id FROM segments.membership WHERE segment_id = s.id)) d) AS only_in_members
  FROM segments.segment s ORDER BY s.name;
SELECT count(*) AS pairs, count(*) FILTER (WHERE v.since IS DISTINCT FROM u.since) AS since_differs,
       count(*) FILTER (WHERE v.contact_id IS NULL) AS missing_from_view
  FROM segments.member m
 CROSS JOIN LATERAL segments._member_rows(m.data) u
  JOIN segments.segment s ON s.num = u.num
  LEFT JOIN segments.membership v ON v.segment_id = s.id AND v.contact_id = m.contact_id;

-- One segment: its members come from the GIN index (the join's index
-- condition), and the planner expects as many as the segment has.
SELECT * FROM plan_of(format('SELECT contact_id FROM segments.membership WHERE segment_id = %L', :'rare'));
SELECT estimate_ratio(format('SELECT contact_id FROM segments.membership WHERE segment_id = %L', :'rare')) AS rare,
       estimate_ratio(format('SELECT contact_id FROM segments.membership WHERE segment_id = %L', :'half')) AS half,
       estimate_ratio(format('SELECT contact_id FROM segments.membership WHERE segment_id = %L', :'most')) AS most,
       estimate_ratio('SELECT * FROM segments.membership') AS all_pairs;
-- A report on a small segment probes the fact table's index per member;
-- the view is no closed subquery, so the join reaches into it.
SELECT * FROM plan_of(format('SELECT count(*), avg(c.csat) FROM conversation c JOIN segments.membership m ON m.contact_id = c.contact_id WHERE m.segment_id = %L', :'rare'));
-- A segment that does not exist has no members, and no estimate of any.
SELECT count(*) AS unknown_segment FROM segments.membership WHERE segment_id = '00000000-0000-0000-0000-000000000000';
SELECT estimate_ratio('SELECT contact_id FROM segments.membership WHERE segment_id = ''00000000-0000-0000-0000-000000000000''') AS unknown_estimate;

-- A tenant: its own contacts of the global segments and its own segment,
-- the same as segment_members() gives it, through the index as well.
\c - rep_a
SELECT s.name, (SELECT count(*) FROM segments.membership m WHERE m.segment_id = s.id) AS one_segment,
       (SELECT count(*) FROM segments.membership m WHERE m.segment_id = s.id AND m.contact_id % 2 = 1) AS of_b,
       g.n AS grouped, (SELECT count(*) FROM segments.segment_members(s.id)) AS segment_members
  FROM segments.segments s
  LEFT JOIN (SELECT segment_id, count(*) AS n FROM segments.membership GROUP BY 1) g ON g.segment_id = s.id
 ORDER BY s.name;
SELECT count(*) AS report_rows, sum(c.csat) AS csat
  FROM conversation c JOIN segments.membership m ON m.contact_id = c.contact_id WHERE m.segment_id = :'half';
SELECT * FROM plan_of(format('SELECT contact_id FROM segments.membership WHERE segment_id = %L', :'half'));
SELECT estimate_ratio(format('SELECT contact_id FROM segments.membership WHERE segment_id = %L', :'half'))
       BETWEEN 0.5 AND 2 AS tenant_estimate_within_2x;
-- A function of the tenant's own, cheaper than the view's conditions and
-- not leakproof, sees only rows the tenant may see: the tenancy conditions
-- run first, in the scan and in a join.
CREATE FUNCTION pg_temp.peek(contact bigint) RETURNS boolean
LANGUAGE plpgsql COST 0.0001 AS $$
BEGIN
    IF contact % 2 = 1 THEN
        RAISE NOTICE 'saw contact % of tenant b', contact;
    END IF;
    RETURN true;
END
$$;
SELECT count(*) AS seen FROM segments.membership WHERE pg_temp.peek(contact_id) AND segment_id = :'rare';
SELECT count(*) AS seen FROM segments.membership WHERE pg_temp.peek(contact_id);
SELECT count(*) AS seen FROM conversation c JOIN segments.membership m
    ON m.contact_id = c.contact_id AND pg_temp.peek(m.contact_id + 0 * c.id) WHERE m.segment_id = :'rare';
-- The stored rows stay out of reach.
SELECT count(*) FROM segments.member;
\c - rep_b
SELECT count(*) AS of_a_segment FROM segments.membership WHERE segment_id = :'of_a';
SELECT count(*) AS of_a_contacts FROM segments.membership WHERE contact_id % 2 = 0;
SELECT count(*) AS rare_b, count(*) = (SELECT count(*) FROM segments.segment_members(:'rare'::uuid)) AS same
  FROM segments.membership WHERE segment_id = :'rare';
-- Without a tenant, a reader sees nothing; an admin everything.
\c - rep_reader
SELECT count(*) AS reader_rows, (SELECT count(*) FROM segments.segment_members(:'half'::uuid)) AS reader_members
  FROM segments.membership;
\c - rep_admin
SELECT count(*) = (SELECT sum(member_count) FROM segments.segments) AS admin_sees_all FROM segments.membership;
-- Without segments_read: no access.
\c - rep_nobody
SELECT count(*) FROM segments.membership;
\c - :superuser

-- The functions of the view's join raise no error for any input (they are
-- LEAKPROOF: the join may run before the tenancy conditions).
SELECT segments._member_in(ARRAY[1, NULL, 3], 3) AS with_null, segments._member_in(ARRAY[1, NULL], 2) AS null_not_two,
       segments._member_in(ARRAY[[1, 2], [3, 4]], 4) AS two_dims, segments._member_in('{}', 1) AS empty,
       segments._member_in(ARRAY[5, 1, 3], 1) AS unsorted;
SELECT segments._member_segs('\xff'::bytea) AS malformed, segments._member_segs('\x'::bytea) AS empty;
SELECT segments._member_since(m.data, 999999) IS NULL AS not_a_member,
       segments._member_since(m.data, s.num) IS NOT NULL AS member
  FROM segments.member m, segments.segment s WHERE s.name = 'rare' AND m.contact_id = 1;
SELECT p.proname, p.proleakproof FROM pg_proc p
 WHERE p.pronamespace = 'segments'::regnamespace AND p.proname IN ('_member_in', '_member_segs', '_member_since')
 ORDER BY 1;

\c postgres
DROP DATABASE segments_report;
DROP ROLE rep_owner, rep_a, rep_b, rep_reader, rep_admin, rep_nobody;

-- Stored membership as written and read: a pass rewrites only the rows whose
-- membership changed, repeated passes reuse the space of the versions they
-- replaced, and segments.membership, by one segment or by all, shows a
-- tenant only its own contacts.  Runs in a database of its own, with its
-- worker off, as the application (an owner role writing contacts) and
-- tenant roles.
\set VERBOSITY terse
SELECT current_user AS superuser \gset
SET client_min_messages = warning;
DROP DATABASE IF EXISTS segments_storage;
DROP ROLE IF EXISTS sto_owner, sto_a, sto_b;
RESET client_min_messages;
CREATE DATABASE segments_storage;
ALTER DATABASE segments_storage SET segments.enabled = off;
CREATE ROLE sto_owner LOGIN;
CREATE ROLE sto_a LOGIN IN ROLE segments_read;
CREATE ROLE sto_b LOGIN IN ROLE segments_read;
ALTER ROLE sto_a SET segments.tenant = 'a';
ALTER ROLE sto_b SET segments.tenant = 'b';

\c segments_storage
CREATE EXTENSION segments;
GRANT CREATE ON SCHEMA public TO sto_owner;
\c - sto_owner
-- 20,000 contacts of tenants a and b; "rare" holds 40 of them, "half" 2,000
CREATE TABLE contacts (id bigint PRIMARY KEY, tenant text NOT NULL, n int NOT NULL);
INSERT INTO contacts SELECT g, CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END, g FROM generate_series(1, 20000) g;
\c - :superuser
SELECT segments.configure('public.contacts', 'id', tenant_column => 'tenant');
SELECT segments.create_segment('rare', '{"type": "attribute", "field": "n", "op": "lte", "value": 40}') IS NOT NULL AS created;
SELECT segments.create_segment('half', '{"type": "attribute", "field": "n", "op": "lte", "value": 2000}') IS NOT NULL AS created;
SELECT segments.create_segment('most', '{"type": "attribute", "field": "n", "op": "gt", "value": 100}') IS NOT NULL AS created;
SELECT segments.refresh();
-- No VACUUM but this file's own: what the passes leave shows as it is.
ALTER TABLE segments.member SET (autovacuum_enabled = off);

-- A pass with nothing changed writes nothing: every stored row keeps its
-- version (ctid and xmin).
CREATE TABLE public.before AS SELECT contact_id, ctid::text AS tid, xmin::text AS xid FROM segments.member;
SELECT segments.refresh();
SELECT count(*) AS rows, count(*) FILTER (WHERE m.ctid::text = b.tid AND m.xmin::text = b.xid) AS unchanged
  FROM before b JOIN segments.member m USING (contact_id);
-- One contact changed: only its row is rewritten.
\c - sto_owner
UPDATE contacts SET n = 5000 WHERE id = 7;
\c - :superuser
SELECT segments.refresh();
SELECT count(*) FILTER (WHERE m.ctid::text <> b.tid OR m.xmin::text <> b.xid) AS rewritten,
       string_agg(contact_id::text, ',') FILTER (WHERE m.ctid::text <> b.tid OR m.xmin::text <> b.xid) AS which
  FROM before b JOIN segments.member m USING (contact_id);
-- Nor does a first evaluation of segments whose membership is stored
-- already (as after an upgrade): the rows come out the same.
DROP TABLE public.before;
CREATE TABLE public.before AS SELECT contact_id, ctid::text AS tid, xmin::text AS xid FROM segments.member;
UPDATE segments.segment_state SET state = 'pending';
SELECT segments.refresh();
SELECT count(*) FILTER (WHERE m.ctid::text <> b.tid OR m.xmin::text <> b.xid) AS rewritten
  FROM before b JOIN segments.member m USING (contact_id);

-- Passes that rewrite every row reuse the space of the versions the one
-- before replaced, without VACUUM: after six, the heap is about three
-- times its size after one (each pass needs room for its own versions, and
-- pages run out of line pointers until VACUUM), where it grew by a copy
-- per pass (five times).
SELECT pg_relation_size('segments.member') AS one_pass \gset
SELECT segments.update_segment((SELECT id FROM segments.segment WHERE name = 'most'), definition => '{"type": "attribute", "field": "n", "op": "lt", "value": 0}') IS NOT NULL AS updated;
SELECT segments.refresh();
SELECT segments.update_segment((SELECT id FROM segments.segment WHERE name = 'most'), definition => '{"type": "attribute", "field": "n", "op": "gt", "value": 0}') IS NOT NULL AS updated;
SELECT segments.refresh();
SELECT segments.update_segment((SELECT id FROM segments.segment WHERE name = 'most'), definition => '{"type": "attribute", "field": "n", "op": "lt", "value": 0}') IS NOT NULL AS updated;
SELECT segments.refresh();
SELECT segments.update_segment((SELECT id FROM segments.segment WHERE name = 'most'), definition => '{"type": "attribute", "field": "n", "op": "gt", "value": 0}') IS NOT NULL AS updated;
SELECT segments.refresh();
SELECT segments.update_segment((SELECT id FROM segments.segment WHERE name = 'most'), definition => '{"type": "attribute", "field": "n", "op": "lt", "value": 0}') IS NOT NULL AS updated;
SELECT segments.refresh();
SELECT segments.update_segment((SELECT id FROM segments.segment WHERE name = 'most'), definition => '{"type": "attribute", "field": "n", "op": "gt", "value": 0}') IS NOT NULL AS updated;
SELECT segments.refresh();
SELECT pg_relation_size('segments.member') <= 4 * :one_pass AS heap_bounded,
       pg_relation_size('segments.member') > 0 AS heap_used;

-- Reading: by one segment or by all, the pairs segment_members() reads.
SELECT s.name, (SELECT count(*) FROM segments.membership m WHERE m.segment_id = s.id) AS one_segment,
       g.n AS grouped, (SELECT count(*) FROM segments.segment_members(s.id)) AS segment_members
  FROM segments.segment s
  LEFT JOIN (SELECT segment_id, count(*) AS n FROM segments.membership GROUP BY 1) g ON g.segment_id = s.id
 ORDER BY s.name;
SELECT (SELECT array_agg(contact_id ORDER BY contact_id) FROM segments.membership
         WHERE segment_id = (SELECT id FROM segments.segment WHERE name = 'rare'))
     = (SELECT array_agg(c ORDER BY c) FROM segments.segment_members('rare') c) AS same_members;

-- A tenant sees its own contacts only.
\c - sto_a
SELECT count(*) AS rare_a, count(*) FILTER (WHERE contact_id % 2 = 1) AS of_b
  FROM segments.membership WHERE segment_id = (SELECT id FROM segments.segments WHERE name = 'rare');
SELECT segment_id IS NOT NULL AS seen, count(*) AS n, count(*) FILTER (WHERE contact_id % 2 = 1) AS of_b
  FROM segments.membership GROUP BY 1;
\c - sto_b
SELECT count(*) AS rare_b, count(*) FILTER (WHERE contact_id % 2 = 0) AS of_a
  FROM segments.membership WHERE segment_id = (SELECT id FROM segments.segments WHERE name = 'rare');
-- The stored rows themselves stay out of reach.
SELECT count(*) FROM segments.member;
-- The worker's vacuum of segments.member (member_vacuum.c) is a server
-- setting: no session changes it, and a fraction out of range is refused.
SHOW segments.member_vacuum_scale_factor;
SET segments.member_vacuum_scale_factor = 0.5;
\c - :superuser
SET segments.member_vacuum_scale_factor = 0.5;
ALTER SYSTEM SET segments.member_vacuum_scale_factor = -1;
ALTER SYSTEM SET segments.member_vacuum_scale_factor = 'often';
SHOW segments.member_vacuum_scale_factor;
-- So is the rebuild of its indexes (segments.member_reindex_factor), by a
-- session too.
SHOW segments.member_reindex_factor;
SET segments.member_reindex_factor = 0;
ALTER SYSTEM SET segments.member_reindex_factor = -1;
ALTER SYSTEM SET segments.member_reindex_factor = 'never';
SHOW segments.member_reindex_factor;
-- And the moves that give pages back (segments.member_compact_fraction):
-- a fraction of the table, at most all of it.
SHOW segments.member_compact_fraction;
SET segments.member_compact_fraction = 0;
ALTER SYSTEM SET segments.member_compact_fraction = 1.5;
ALTER SYSTEM SET segments.member_compact_fraction = 'sometimes';
SHOW segments.member_compact_fraction;
DROP TABLE public.before;
\c postgres
DROP DATABASE segments_storage;
DROP ROLE sto_owner, sto_a, sto_b;

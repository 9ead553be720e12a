-- 24: refresh(), the worker's chunks and the incremental path (the
-- worker's changes, refresh_contacts()) evaluate contacts in batches of
-- 256 (src/eval_batch.c: each distinct condition into a bitmap, the trees
-- combined per batch).  Every contact's result must be the one the
-- contact-by-contact walk of the trees gives (verify() evaluates that way)
-- and the one of the SQL predicate: with a contact count that is not a
-- multiple of the batch size (the last batch partly filled), batches that
-- mix tenants (segments of one tenant, global ones, contacts of no
-- tenant), NULL columns and absent or JSON-null traits, segments reading
-- segments (in and not_in, across tenants), negations, and conditions
-- shared by several segments.  (The worker's chunks take the same path:
-- test/worker.)  A database of its own, the worker off.
\set VERBOSITY terse
SET client_min_messages = warning;
DROP DATABASE IF EXISTS segments_batch;
DROP ROLE IF EXISTS batch_owner, batch_admin;
RESET client_min_messages;
CREATE DATABASE segments_batch;
ALTER DATABASE segments_batch SET segments.enabled = off;
CREATE ROLE batch_owner LOGIN;
CREATE ROLE batch_admin LOGIN IN ROLE segments_admin;

\c segments_batch
CREATE EXTENSION segments;
GRANT CREATE ON SCHEMA public TO batch_owner;

-- The application owns and writes its contacts: 1,000 of them (3 full
-- batches and one of 232), tenants 1 and 2 interleaved, and no tenant.
\c - batch_owner
CREATE TABLE contacts (id bigint PRIMARY KEY, org_id integer, plan text, seats int,
                       tags text[], traits jsonb);
INSERT INTO contacts
SELECT g,
       CASE WHEN g % 7 = 0 THEN NULL ELSE g % 2 + 1 END,
       CASE WHEN g % 11 = 0 THEN NULL ELSE (ARRAY['vip', 'free', 'pro'])[g % 3 + 1] END,
       CASE WHEN g % 13 = 0 THEN NULL ELSE g % 50 END,
       CASE WHEN g % 5 = 0 THEN NULL WHEN g % 5 = 1 THEN '{beta}'::text[] ELSE '{}' END,
       CASE WHEN g % 17 = 0 THEN NULL
            WHEN g % 17 = 1 THEN '{"score": null}'::jsonb
            WHEN g % 17 = 2 THEN '{"score": "9"}'::jsonb
            ELSE jsonb_build_object('score', g % 10) END
  FROM generate_series(1, 1000) g;
GRANT SELECT ON contacts TO batch_admin;

\c - postgres
SELECT segments.configure('public.contacts', 'id', traits_column => 'traits', tenant_column => 'org_id');

-- name, tenant, definition, and the SQL predicate over contacts
CREATE TABLE batch_case (n int PRIMARY KEY, name text, tenant text, def jsonb, pred text);
INSERT INTO batch_case VALUES
 (1,  'vip',             NULL, '{"type":"attribute","field":"plan","op":"eq","value":"vip"}', $$plan = 'vip'$$),
 (2,  'not vip',         NULL, '{"type":"attribute","field":"plan","op":"neq","value":"vip"}', $$plan IS DISTINCT FROM 'vip'$$),
 (3,  'vip negated',     NULL, '{"type":"attribute","field":"plan","op":"eq","value":"vip","negate":true}', $$plan IS DISTINCT FROM 'vip'$$),
 (4,  'neq negated',     NULL, '{"type":"attribute","field":"plan","op":"neq","value":"vip","negate":true}', $$plan = 'vip'$$),
 (5,  'no plan',         NULL, '{"type":"attribute","field":"plan","op":"is_not_set"}', $$plan IS NULL$$),
 (6,  'seats 10-20',     NULL, '{"type":"attribute","field":"seats","op":"between","value":[10,20]}', $$seats BETWEEN 10 AND 20$$),
 (7,  'vip or seats',    NULL, '{"or":[{"type":"attribute","field":"plan","op":"eq","value":"vip"},{"type":"attribute","field":"seats","op":"gte","value":40}]}', $$plan = 'vip' OR seats >= 40$$),
 (8,  'not (vip and seats)', NULL, '{"not":{"and":[{"type":"attribute","field":"plan","op":"eq","value":"vip"},{"type":"attribute","field":"seats","op":"gte","value":40}]}}', $$NOT coalesce(plan = 'vip' AND seats >= 40, false)$$),
 (9,  'beta',            NULL, '{"type":"attribute","field":"tags","op":"contains","value":"beta"}', $$'beta' = ANY (tags)$$),
 (10, 'not beta',        NULL, '{"type":"attribute","field":"tags","op":"not_contains","value":"beta"}', $$NOT coalesce('beta' = ANY (tags), false)$$),
 (11, 'score gte 5',     NULL, '{"type":"trait","key":"score","op":"gte","value":5}', $$jsonb_typeof(traits->'score') = 'number' AND (traits->>'score')::numeric >= 5$$),
 (12, 'score set',       NULL, '{"type":"trait","key":"score","op":"is_set"}', $$jsonb_typeof(traits->'score') <> 'null'$$),
 (13, 'in vip',          NULL, '{"type":"segment","op":"in","value":"vip"}', $$plan = 'vip'$$),
 (14, 'not in vip',      NULL, '{"type":"segment","op":"not_in","value":"vip"}', $$plan IS DISTINCT FROM 'vip'$$),
 (15, 'empty and',       NULL, '{"and":[]}', $$true$$),
 (16, 'empty or',        NULL, '{"or":[]}', $$false$$),
 (17, 't1 vip',          '1',  '{"type":"attribute","field":"plan","op":"eq","value":"vip"}', $$org_id = 1 AND plan = 'vip'$$),
 (18, 't2 not vip',      '2',  '{"type":"attribute","field":"plan","op":"neq","value":"vip"}', $$org_id = 2 AND plan IS DISTINCT FROM 'vip'$$),
 (19, 't1 in t1 vip',    '1',  '{"type":"segment","op":"in","value":"t1 vip"}', $$org_id = 1 AND plan = 'vip'$$),
 (20, 't2 everyone',     '2',  '{"and":[]}', $$org_id = 2$$),
 (21, 't1 not beta',     '1',  '{"type":"attribute","field":"tags","op":"not_contains","value":"beta"}', $$org_id = 1 AND NOT coalesce('beta' = ANY (tags), false)$$),
 (22, 'pct 30',          NULL, '{"type":"percentage","op":"lt","value":30,"salt":"s"}', $$(('x' || left(md5('s:' || id::text), 8))::bit(32)::bigint % 10000) / 100.0 < 30$$),
 (23, 'in vip or beta',  NULL, '{"type":"segment","op":"in","value":["vip","beta"]}', $$plan = 'vip' OR 'beta' = ANY (tags)$$),
 (24, 'in neither',      NULL, '{"type":"segment","op":"not_in","value":["vip","beta"]}', $$NOT coalesce(plan = 'vip' OR 'beta' = ANY (tags), false)$$);
-- Members of a segment, and of a predicate, as sorted arrays.
CREATE FUNCTION seg_members(seg text, ten text) RETURNS bigint[] LANGUAGE sql AS $$
    SELECT coalesce(array_agg(m.contact_id ORDER BY m.contact_id), '{}')
      FROM segments.membership m JOIN segments.segments s ON s.id = m.segment_id
     WHERE s.name = seg AND s.tenant IS NOT DISTINCT FROM ten
$$;
CREATE FUNCTION pred_members(pred text) RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE result bigint[];
BEGIN
    EXECUTE format('SELECT coalesce(array_agg(id ORDER BY id), ''{}'') FROM contacts WHERE %s', pred)
       INTO result;
    RETURN result;
END $$;
GRANT SELECT ON batch_case TO batch_admin;

\c - batch_admin
-- references in a second statement: they name segments created before it
SELECT count(segments.create_segment(name, def, tenant => tenant))
  FROM (SELECT * FROM batch_case WHERE def->>'type' IS DISTINCT FROM 'segment' ORDER BY n) s;
SELECT count(segments.create_segment(name, def, tenant => tenant))
  FROM (SELECT * FROM batch_case WHERE def->>'type' = 'segment' ORDER BY n) s;
SELECT count(*) AS segments FROM segments.segments;
SELECT segments.refresh();
-- each segment: its member count, equal to the SQL predicate's members
SELECT c.n, c.name, c.tenant, cardinality(seg_members(c.name, c.tenant)) AS members,
       seg_members(c.name, c.tenant) = pred_members(c.pred) AS same_as_sql
  FROM batch_case c ORDER BY c.n;
-- and the contact-by-contact evaluation agrees on every contact
SELECT count(*) AS segments_verified, sum(missing) AS missing, sum(extra) AS extra
  FROM segments.verify();
-- a second pass with nothing changed rewrites no stored row
\c - postgres
BEGIN;
SELECT segments.refresh();
SELECT count(*) AS rows_rewritten FROM segments.member WHERE xmin = pg_current_xact_id()::xid;
COMMIT;

-- Contacts change (tenants swap, values become NULL) in the middle of
-- batches: the next pass rewrites exactly their rows.
\c - batch_owner
UPDATE contacts SET org_id = CASE WHEN org_id = 1 THEN 2 ELSE 1 END, plan = NULL, traits = NULL
 WHERE id % 97 = 0;
\c - postgres
BEGIN;
SELECT segments.refresh();
SELECT array_agg(contact_id ORDER BY contact_id) AS rows_rewritten
  FROM segments.member WHERE xmin = pg_current_xact_id()::xid;
COMMIT;
\c - batch_admin
SELECT c.n, c.name FROM batch_case c
 WHERE seg_members(c.name, c.tenant) IS DISTINCT FROM pred_members(c.pred)
 ORDER BY c.n;  -- none differs
SELECT sum(missing) AS missing, sum(extra) AS extra FROM segments.verify();

-- The incremental path (refresh_contacts(), the worker's changes) takes
-- its contacts through the same batches: 300 changed contacts in one call
-- (more than a batch of 256, the last partly filled), tenants swapped,
-- a deleted contact and a key that never was one among them.
\c - batch_owner
UPDATE contacts SET org_id = CASE WHEN org_id = 1 THEN 2 ELSE 1 END,
                    plan = (ARRAY['vip', 'free', NULL])[id % 3 + 1], seats = id % 41,
                    tags = CASE WHEN id % 2 = 0 THEN '{beta}'::text[] END,
                    traits = jsonb_build_object('score', id % 9)
 WHERE id % 3 = 0 AND id <= 900;
DELETE FROM contacts WHERE id = 998;
\c - batch_admin
SELECT segments.refresh_contacts(array_agg(k ORDER BY k)) AS contacts_changed
  FROM (SELECT g AS k FROM generate_series(3, 900, 3) g UNION ALL VALUES (998), (5000)) s;
SELECT c.n, c.name FROM batch_case c
 WHERE seg_members(c.name, c.tenant) IS DISTINCT FROM pred_members(c.pred)
 ORDER BY c.n;  -- none differs
SELECT sum(missing) AS missing, sum(extra) AS extra FROM segments.verify();
SELECT count(*) AS departed_rows FROM segments.membership WHERE contact_id = '998';

\c contrib_regression postgres
DROP DATABASE segments_batch WITH (FORCE);
DROP ROLE batch_owner, batch_admin;

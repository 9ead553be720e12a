-- 17: segments.explain(contact, segment) RETURNS jsonb and
-- segments.explain_text(contact, segment) RETURNS text.  Every node kind and
-- operator family, with the values read and the missing-value rules; nested
-- segment references; stored membership that disagrees; tenants (a contact
-- or segment of another tenant "does not exist", the same error as one that
-- does not); column values redacted for a caller who may not SELECT them.
-- Run as LOGIN roles that are no superusers: an author (segments_write,
-- tenant acme), readers (segments_read), an admin without a tenant.
\set VERBOSITY default
\set SHOW_CONTEXT never
\set ON_ERROR_STOP 0
SET client_min_messages = warning;
SELECT current_user AS superuser \gset

CREATE ROLE explain_author LOGIN IN ROLE segments_write;
CREATE ROLE explain_reader LOGIN IN ROLE segments_read;
CREATE ROLE explain_globex LOGIN IN ROLE segments_read;
CREATE ROLE explain_admin LOGIN IN ROLE segments_admin;
CREATE ROLE explain_none LOGIN IN ROLE segments_read;
CREATE ROLE explain_outsider LOGIN;
ALTER ROLE explain_author SET segments.tenant = 'acme';
ALTER ROLE explain_reader SET segments.tenant = 'acme';
ALTER ROLE explain_globex SET segments.tenant = 'globex';

-- The conditions of an explanation, one row each: what was read and why.
CREATE FUNCTION explain_conds(e jsonb)
RETURNS TABLE (path text, type text, op text, result boolean, value jsonb, read_as text,
               raw text, missing text, why text, extra jsonb)
LANGUAGE sql AS $$
    SELECT c->>'path', c->>'type', c->>'op', (c->>'result')::boolean, c->'value', c->>'as',
           coalesce(c->>'column', c->>'json'), c->>'missing', c->>'why',
           c - ARRAY['path','type','op','result','value','as','column','json','missing','why',
                     'node','rule','field','trait','segments']
      FROM jsonb_path_query(e, 'strict $.** ? (@.node == "condition")') AS c
$$;

-- The application grants: the author reads everything; the reader (a
-- support desk) may not read email, name nor the traits.
\c - regress_app
GRANT SELECT ON contacts TO explain_author, explain_globex, explain_admin;
GRANT SELECT (id, org_id, plan, country, seats, tags, signup_at) ON contacts TO explain_reader;

-- The conditions of each family of operators, one segment per family.
\c - explain_author
SET client_min_messages = warning;
SELECT segments.create_segment('Ex equality', '{"or": [
  {"type":"attribute","field":"plan","op":"eq","value":"vip"},
  {"type":"attribute","field":"plan","op":"neq","value":"vip"},
  {"type":"attribute","field":"country","op":"in","value":["US","DE"]},
  {"type":"attribute","field":"country","op":"not_in","value":["US"]},
  {"type":"attribute","field":"plan","op":"eq","value":"VIP","case_sensitive":false},
  {"type":"attribute","field":"seats","op":"eq","value":10},
  {"type":"attribute","field":"is_active","op":"eq","value":true},
  {"type":"trait","key":"n","op":"eq","value":42},
  {"type":"trait","key":"n","op":"eq","value":42,"as":"number"},
  {"type":"trait","path":["company","size"],"op":"in","value":[50,1000]},
  {"type":"trait","key":"b","op":"eq","value":true,"as":"boolean"},
  {"type":"trait","key":"nul","op":"neq","value":"x"}]}') IS NOT NULL AS created;
SELECT segments.create_segment('Ex ordering', '{"or": [
  {"type":"attribute","field":"lifetime_value","op":"gt","value":1000},
  {"type":"attribute","field":"seats","op":"gte","value":10},
  {"type":"attribute","field":"name","op":"lt","value":"B"},
  {"type":"attribute","field":"birthday","op":"lte","value":"1990-05-01"},
  {"type":"attribute","field":"seats","op":"between","value":[1,5]},
  {"type":"attribute","field":"app_version","as":"semver","op":"gte","value":"1.2.0"},
  {"type":"attribute","field":"ip","op":"gt","value":"10.0.0.1"},
  {"type":"trait","key":"ver","as":"semver","op":"lt","value":"1.0.0"},
  {"type":"trait","key":"n","op":"between","value":[40,50]}]}') IS NOT NULL AS created;
SELECT segments.create_segment('Ex text', '{"or": [
  {"type":"attribute","field":"email","op":"contains","value":"acme"},
  {"type":"attribute","field":"email","op":"not_contains","value":"acme"},
  {"type":"attribute","field":"tags","op":"contains","value":"beta"},
  {"type":"attribute","field":"tags","op":"not_contains","value":"BETA","case_sensitive":false},
  {"type":"attribute","field":"email","op":"starts_with","value":"ALICE","case_sensitive":false},
  {"type":"attribute","field":"email","op":"ends_with","value":"@acme.com"},
  {"type":"attribute","field":"email","op":"regex","value":"^[a-z]+@"},
  {"type":"attribute","field":"name","op":"not_regex","value":"^a","case_sensitive":false},
  {"type":"trait","key":"s","op":"contains","value":"world"},
  {"type":"trait","key":"arr","op":"contains","value":"x"}]}') IS NOT NULL AS created;
SELECT segments.create_segment('Ex misc', '{"or": [
  {"type":"attribute","field":"email","op":"is_set"},
  {"type":"attribute","field":"country","op":"is_not_set"},
  {"type":"attribute","field":"tags","op":"is_set"},
  {"type":"attribute","field":"seats","op":"modulo","value":[3,1]},
  {"type":"attribute","field":"ip","op":"in_cidr","value":["10.0.0.0/8","192.168.0.0/16"]},
  {"type":"attribute","field":"tags","as":"length","op":"gte","value":2},
  {"type":"attribute","field":"name","as":"length","op":"eq","value":5},
  {"type":"trait","key":"arr","as":"length","op":"eq","value":2},
  {"type":"trait","key":"company","op":"is_set"},
  {"type":"trait","key":"n","as":"number","op":"is_set"},
  {"type":"attribute","field":"plan","op":"eq","value":"vip","negate":true},
  {"type":"percentage","salt":"explain","op":"lt","value":50},
  {"type":"percentage","salt":"explain","op":"between","value":[10,20]}]}') IS NOT NULL AS created;
SELECT segments.create_segment('Ex time', '{"or": [
  {"type":"attribute","field":"signup_at","op":"before","value":"2023-06-01"},
  {"type":"attribute","field":"signup_at","op":"after","value":"2023-01-15T10:00:00Z"},
  {"type":"attribute","field":"signup_at","op":"within_last","value":"100 years"},
  {"type":"attribute","field":"signup_at","op":"not_within_last","value":"100 years"},
  {"type":"attribute","field":"signup_at","op":"within_next","value":"1 day"},
  {"type":"attribute","field":"birthday","op":"before","value":"2000-01-01"},
  {"type":"trait","key":"ts","op":"after","value":"2023-12-31"}]}') IS NOT NULL AS created;
-- Groups of every kind, and segment references (one segment twice).
SELECT segments.create_segment('Ex groups', '{"and": [
  {"any": [{"type":"segment","op":"in","value":"Ex equality"},
           {"type":"segment","op":"not_in","value":["Ex text","Ex time"]}]},
  {"none": [{"type":"attribute","field":"plan","op":"eq","value":"nobody"}]},
  {"not": {"or": []}},
  {"all": []},
  {"type":"segment","op":"in","value":"Ex equality","negate":true}]}') IS NOT NULL AS created;
SELECT segments.create_segment('Ex vip', '{"type":"attribute","field":"plan","op":"eq","value":"vip"}') IS NOT NULL AS created;
SELECT segments.create_segment('Ex nested', '{"type":"segment","op":"in","value":"Ex groups"}') IS NOT NULL AS created;
SELECT segments.refresh();

-- The traced evaluation (every child of a group evaluated) decides as the
-- pass did: for every contact of the tenant and every segment, the fresh
-- evaluation equals the stored membership the pass wrote.
SELECT count(*) AS explained,
       count(*) FILTER (WHERE (segments.explain(c.id, s.id)->'agrees')::boolean) AS agreeing,
       count(*) FILTER (WHERE (segments.explain(c.id, s.id)->'evaluated')::boolean) AS members
  FROM generate_series(1, 20) AS c(id), segments.segments s WHERE s.name LIKE 'Ex %';

-- Each family for a contact with values (1) and one with NULLs and no
-- traits (4): what was read, as what, and why a missing value decides.
SELECT segments.explain_text(1, 'Ex equality');
SELECT segments.explain_text(4, 'Ex equality');
-- traits of other JSON types (strict readings), unreadable values
SELECT segments.explain_text(2, 'Ex equality');
SELECT segments.explain_text(11, 'Ex equality');
SELECT segments.explain_text(1, 'Ex ordering');
SELECT segments.explain_text(4, 'Ex ordering');
SELECT segments.explain_text(11, 'Ex ordering');
SELECT segments.explain_text(1, 'Ex text');
SELECT segments.explain_text(4, 'Ex text');
SELECT segments.explain_text(1, 'Ex misc');
SELECT segments.explain_text(4, 'Ex misc');
SELECT segments.explain_text(7, 'Ex misc');
SELECT segments.explain_text(1, 'Ex time');
SELECT segments.explain_text(4, 'Ex time');
-- Nested references: each referenced segment's own explanation under its
-- condition; a segment referenced again is not repeated.
SELECT segments.explain_text(1, 'Ex nested');
SELECT segments.explain_text(4, 'Ex groups');

-- The jsonb form: the top level, and one row per condition with what it read.
SELECT e->>'contact' AS contact, e->>'contact_tenant' AS contact_tenant, e->>'segment' AS segment,
       e->>'tenant' AS tenant, e->>'state' AS state, e->'stored' AS stored,
       e->'evaluated' AS evaluated, e->'agrees' AS agrees,
       e->>'id' = (SELECT id::text FROM segments.segments WHERE name = 'Ex misc') AS id_ok,
       (e->>'at')::timestamptz = now() AS at_now,
       e->'rule'->>'node' AS root
  FROM segments.explain(1, 'Ex misc') AS e;
SELECT * FROM explain_conds(segments.explain(1, 'Ex misc'));
SELECT * FROM explain_conds(segments.explain(4, 'Ex misc'));
SELECT * FROM explain_conds(segments.explain(2, 'Ex equality'));
SELECT * FROM explain_conds(segments.explain(1, 'Ex time'));
-- groups: kind, result, number of children
SELECT g->>'node' AS node, g->'result' AS result, jsonb_array_length(g->'children') AS children
  FROM jsonb_path_query(segments.explain(1, 'Ex groups'), 'strict $.rule.** ? (@.node != "condition")') AS g;
-- a referenced segment nests its explanation; the second reference says so
SELECT s->>'segment' AS segment, s->'evaluated' AS evaluated, s->'stored' AS stored,
       s ? 'rule' AS explained, s->'explained_above' AS explained_above
  FROM jsonb_path_query(segments.explain(1, 'Ex nested'), 'strict $.** ? (@.node == "condition" && @.type == "segment").segments[*]') AS s;

-- Every argument form: the contact as any integer type, text or an untyped
-- literal; the segment by id or name.  NULL gives NULL.
SELECT segments.explain(1::smallint, 'Ex time') = segments.explain(1::bigint, 'Ex time') AS smallint_bigint,
       segments.explain(1::integer, 'Ex time') = segments.explain('1', 'Ex time') AS integer_untyped,
       segments.explain('1'::text, (SELECT id FROM segments.segments WHERE name = 'Ex time'))
         = segments.explain(1, 'Ex time') AS by_id;
SELECT segments.explain(NULL::bigint, 'Ex time') IS NULL AS null_contact,
       segments.explain_text(1, NULL::text) IS NULL AS null_segment;
SELECT segments.explain('abc', 'Ex time');
-- Unknown contacts and segments: 42704.
SELECT segments.explain(999, 'Ex time');
SELECT segments.explain_text(1, 'No such segment');
SELECT segments.explain(1, '00000000-0000-0000-0000-000000000001'::uuid);

-- Stored membership that disagrees with the rules: a change not yet applied
-- (the worker is off in this database).
\c - regress_app
UPDATE contacts SET plan = 'trial' WHERE id = 10;
\c - explain_author
SET client_min_messages = warning;
SELECT segments.explain_text(10, 'Ex vip');
SELECT e->'stored' AS stored, e->'evaluated' AS evaluated, e->'agrees' AS agrees
  FROM segments.explain(10, 'Ex vip') AS e;
SELECT segments.refresh();
SELECT e->'stored' AS stored, e->'evaluated' AS evaluated, e->'agrees' AS agrees
  FROM segments.explain(10, 'Ex vip') AS e;
\c - regress_app
UPDATE contacts SET plan = 'vip' WHERE id = 10;
\c - explain_author
SET client_min_messages = warning;
SELECT segments.refresh();
-- explain writes nothing: it works in a read-only transaction
BEGIN READ ONLY;
SELECT segments.explain(1, 'Ex nested')->'agrees' AS read_only_agrees;
COMMIT;

-- A reader who may not SELECT email, name nor the traits: those conditions
-- show their result (as membership shows the segment's) but nothing read.
\c - explain_reader
SET client_min_messages = warning;
SELECT segments.explain_text(1, 'Ex text');
SELECT path, type, result, extra, value IS NULL AND raw IS NULL AND missing IS NULL AS nothing_read
  FROM explain_conds(segments.explain(4, 'Ex text'));
-- the same segment explained by its author shows what was read
\c - explain_author
SET client_min_messages = warning;
SELECT path, result, extra, raw, missing
  FROM explain_conds(segments.explain(4, 'Ex text')) WHERE type = 'attribute' AND path IN ('$.or[0]', '$.or[7]');

-- Tenants: globex sees its own contacts and the global segments only.
\c - :superuser
SELECT id AS ex_equality FROM segments.segment WHERE name = 'Ex equality' \gset
\c - explain_admin
SET client_min_messages = warning;
SELECT segments.create_segment('Ex everyone', '{"and": []}') IS NOT NULL AS created_global;
SELECT segments.refresh();
\c - explain_globex
SET client_min_messages = warning;
SELECT segments.explain_text(21, 'Ex everyone');
SELECT e->>'contact_tenant' AS contact_tenant, e->>'tenant' AS segment_tenant, e->'agrees' AS agrees
  FROM segments.explain(21, 'Ex everyone') AS e;
-- an acme contact: the same error as a contact that does not exist
SELECT segments.explain(1, 'Ex everyone');
SELECT segments.explain(999, 'Ex everyone');
SELECT try($$SELECT segments.explain(1, 'Ex everyone')$$)
       = replace(try($$SELECT segments.explain(999, 'Ex everyone')$$), '999', '1') AS contact_errors_alike;
-- acme's segment, by name and by id: the same error as one that does not exist
SELECT segments.explain_text(21, 'Ex equality');
SELECT try(format('SELECT segments.explain(21, %L::uuid)', :'ex_equality')) AS acme_segment_by_id;
SELECT try(format('SELECT segments.explain(21, %L::uuid)', gen_random_uuid())) AS unknown_segment_by_id;
SELECT try(format('SELECT segments.explain(21, %L::uuid)', :'ex_equality'))
       = try(format('SELECT segments.explain(21, %L::uuid)', gen_random_uuid())) AS segment_errors_alike;

-- An admin without a tenant sees every tenant: a globex contact in acme's
-- segment is not evaluated (a tenant's segment holds its own contacts).
\c - explain_admin
SET client_min_messages = warning;
SELECT segments.explain_text(21, :'ex_equality'::uuid);
SELECT e->'stored' AS stored, e->'evaluated' AS evaluated, e->'agrees' AS agrees, e->>'reason' AS reason
  FROM segments.explain(21, :'ex_equality'::uuid) AS e;
SELECT segments.explain(1, 'Ex nested')->'agrees' AS admin_agrees;

-- No tenant and not an admin: told to set one; no reading role: no access.
\c - explain_none
SET client_min_messages = warning;
SELECT segments.explain(1, 'Ex everyone');
\c - explain_outsider
SET client_min_messages = warning;
SELECT segments.explain(1, 'Ex everyone');
SELECT segments.explain_text(1, 'Ex everyone');

-- Clean up.
\c - explain_admin
SET client_min_messages = warning;
SELECT segments.drop_segment('Ex everyone');
\c - explain_author
SET client_min_messages = warning;
SELECT segments.drop_segment(s) FROM unnest(ARRAY['Ex nested', 'Ex groups', 'Ex vip', 'Ex equality', 'Ex ordering',
                                                  'Ex text', 'Ex misc', 'Ex time']) AS s;
\c - regress_app
REVOKE ALL ON contacts FROM explain_author, explain_reader, explain_globex, explain_admin;
\c - :superuser
SET client_min_messages = warning;
DROP FUNCTION explain_conds(jsonb);
DROP ROLE explain_author, explain_reader, explain_globex, explain_admin, explain_none, explain_outsider;
SELECT count(*) AS segments_left FROM segments.segments;

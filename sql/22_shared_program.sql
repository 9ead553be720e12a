-- 22: a pass evaluates its segments as one program (src/eval_program.c):
-- a condition held by several segments is evaluated once per contact, and
-- the results of a column's or trait's conditions are remembered per
-- distinct value.  Segments whose conditions differ only by one option
-- (negate, a negative operator, case_sensitive, as, strict typing, salt,
-- interval, operands, path) must never share a result: every segment
-- evaluated together with the others has the members of the same
-- segment evaluated alone, and of the SQL predicate written for it.
\set VERBOSITY default
\set SHOW_CONTEXT never
\set ON_ERROR_STOP 0
SET client_min_messages = warning;

-- The percentage bucket of docs/rules.md.
CREATE FUNCTION shared_bucket(salt text, contact bigint) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
    SELECT (('x' || left(md5(salt || ':' || contact::text), 8))::bit(32)::bigint % 10000) / 100.0
$$;

-- A trait's number when it is a JSON number (strict reading), else NULL.
CREATE FUNCTION jnum(j jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(j) = 'number' THEN j::numeric END
$$;

-- name, definition, and the same rule in SQL over contacts ({id}: the
-- segment's id; NULL: no SQL form, checked against the evaluation alone).
CREATE TABLE shared_case (n int PRIMARY KEY, name text, def jsonb, pred text);
INSERT INTO shared_case VALUES
 (1,  'plan eq',            '{"type":"attribute","field":"plan","op":"eq","value":"vip"}', $$plan = 'vip'$$),
 (2,  'plan eq ci',         '{"type":"attribute","field":"plan","op":"eq","value":"vip","case_sensitive":false}', $$lower(plan) = 'vip'$$),
 (3,  'plan eq negate',     '{"type":"attribute","field":"plan","op":"eq","value":"vip","negate":true}', $$NOT coalesce(plan = 'vip', false)$$),
 (4,  'plan neq',           '{"type":"attribute","field":"plan","op":"neq","value":"vip"}', $$NOT coalesce(plan = 'vip', false)$$),
 (5,  'plan neq negate',    '{"type":"attribute","field":"plan","op":"neq","value":"vip","negate":true}', $$coalesce(plan = 'vip', false)$$),
 (6,  'plan in',            '{"type":"attribute","field":"plan","op":"in","value":["vip","pro"]}', $$plan IN ('vip', 'pro')$$),
 (7,  'plan in reordered',  '{"type":"attribute","field":"plan","op":"in","value":["pro","vip"]}', $$plan IN ('vip', 'pro')$$),
 (8,  'plan not_in ci',     '{"type":"attribute","field":"plan","op":"not_in","value":["VIP"],"case_sensitive":false}', $$NOT coalesce(lower(plan) = 'vip', false)$$),
 (9,  'plan eq VIP',        '{"type":"attribute","field":"plan","op":"eq","value":"VIP"}', $$plan = 'VIP'$$),
 (10, 'n eq 42',            '{"type":"trait","key":"n","op":"eq","value":42}', $$jnum(custom_data->'n') = 42$$),
 (11, 'n eq 42 as number',  '{"type":"trait","key":"n","as":"number","op":"eq","value":42}', NULL),
 (12, 'n eq 42 both ways',  '{"and":[{"type":"trait","key":"n","op":"eq","value":42},{"type":"trait","key":"n","as":"number","op":"eq","value":42}]}', NULL),
 (13, 'n eq "42"',          '{"type":"trait","key":"n","op":"eq","value":"42"}', $$custom_data->'n' = '"42"'$$),
 (14, 'n gte 1',            '{"type":"trait","key":"n","op":"gte","value":1}', $$jnum(custom_data->'n') >= 1$$),
 (15, 'n gte 1.0',          '{"type":"trait","key":"n","op":"gte","value":1.0}', $$jnum(custom_data->'n') >= 1$$),
 (16, 'n lt 1',             '{"type":"trait","key":"n","op":"lt","value":1}', $$jnum(custom_data->'n') < 1$$),
 (17, 'n is_set',           '{"type":"trait","key":"n","op":"is_set"}', $$jsonb_typeof(custom_data->'n') <> 'null'$$),
 (18, 'n is_set as number', '{"type":"trait","key":"n","as":"number","op":"is_set"}', NULL),
 (19, 'company.size path',  '{"type":"trait","path":["company","size"],"op":"gte","value":50}', $$jnum(custom_data->'company'->'size') >= 50$$),
 (20, 'a.b key',            '{"type":"trait","key":"a.b","op":"gte","value":1}', $$jnum(custom_data->'a.b') >= 1$$),
 (21, 'a b path',           '{"type":"trait","path":["a","b"],"op":"gte","value":1}', $$jnum(custom_data->'a'->'b') >= 1$$),
 (22, 'email regex',        '{"type":"attribute","field":"email","op":"regex","value":"@acme\\.com$"}', $$email ~ '@acme\.com$'$$),
 (23, 'email regex ci',     '{"type":"attribute","field":"email","op":"regex","value":"@acme\\.com$","case_sensitive":false}', $$email ~* '@acme\.com$'$$),
 (24, 'email not_regex',    '{"type":"attribute","field":"email","op":"not_regex","value":"@acme\\.com$"}', $$NOT coalesce(email ~ '@acme\.com$', false)$$),
 (25, 'email ends_with ci', '{"type":"attribute","field":"email","op":"ends_with","value":"@ACME.COM","case_sensitive":false}', $$lower(email) LIKE '%@acme.com'$$),
 (26, 'tags contains',      '{"type":"attribute","field":"tags","op":"contains","value":"beta"}', $$'beta' = ANY (tags)$$),
 (27, 'tags contains ci',   '{"type":"attribute","field":"tags","op":"contains","value":"beta","case_sensitive":false}', $$EXISTS (SELECT FROM unnest(tags) t WHERE lower(t) = 'beta')$$),
 (28, 'tags not_contains',  '{"type":"attribute","field":"tags","op":"not_contains","value":"beta"}', $$NOT coalesce('beta' = ANY (tags), false)$$),
 (29, 'tags length gte 2',  '{"type":"attribute","field":"tags","as":"length","op":"gte","value":2}', $$cardinality(tags) >= 2$$),
 (30, 'tags is_set',        '{"type":"attribute","field":"tags","op":"is_set"}', $$tags IS NOT NULL$$),
 (31, 'seen 7 days',        '{"type":"attribute","field":"last_seen_at","op":"within_last","value":"7 days"}', $$last_seen_at >= now() - interval '7 days'$$),
 (32, 'seen 30 days',       '{"type":"attribute","field":"last_seen_at","op":"within_last","value":"30 days"}', $$last_seen_at >= now() - interval '30 days'$$),
 (33, 'not seen 30 days',   '{"type":"attribute","field":"last_seen_at","op":"not_within_last","value":"30 days"}', $$NOT coalesce(last_seen_at >= now() - interval '30 days', false)$$),
 (34, 'seats mod 2 = 0',    '{"type":"attribute","field":"seats","op":"modulo","value":[2,0]}', $$mod(seats, 2) = 0$$),
 (35, 'seats mod 2 = 1',    '{"type":"attribute","field":"seats","op":"modulo","value":[2,1]}', $$mod(seats, 2) = 1$$),
 (36, 'seats mod 3 = -1',   '{"type":"attribute","field":"seats","op":"modulo","value":[3,-1]}', $$mod(seats, 3) = -1$$),
 (37, 'seats mod 2.5 = 0',  '{"type":"attribute","field":"seats","op":"modulo","value":[2.5,0]}', $$mod(seats, 2.5) = 0$$),
 (38, 'score mod 2 = 0',    '{"type":"trait","key":"score","op":"modulo","value":[2,0]}', $$mod(jnum(custom_data->'score'), 2) = 0$$),
 (39, 'version text gte',   '{"type":"attribute","field":"app_version","op":"gte","value":"1.2.0"}', $$app_version >= '1.2.0' COLLATE "C"$$),
 (40, 'version semver gte', '{"type":"attribute","field":"app_version","as":"semver","op":"gte","value":"1.2.0"}', NULL),
 (41, 'pct salt a',         '{"type":"percentage","op":"lt","value":50,"salt":"a"}', $$shared_bucket('a', id) < 50$$),
 (42, 'pct salt b',         '{"type":"percentage","op":"lt","value":50,"salt":"b"}', $$shared_bucket('b', id) < 50$$),
 (43, 'pct salt a gte',     '{"type":"percentage","op":"gte","value":50,"salt":"a"}', $$shared_bucket('a', id) >= 50$$),
 (44, 'pct default 1',      '{"type":"percentage","op":"lt","value":50}', $$shared_bucket('{id}', id) < 50$$),
 (45, 'pct default 2',      '{"type":"percentage","op":"lt","value":50}', $$shared_bucket('{id}', id) < 50$$),
 (46, 'seg in plan eq',     '{"type":"segment","op":"in","value":"plan eq"}', $$plan = 'vip'$$),
 (47, 'seg not_in plan eq', '{"type":"segment","op":"not_in","value":"plan eq"}', $$NOT coalesce(plan = 'vip', false)$$),
 (48, 'nested groups',      '{"or":[{"type":"attribute","field":"plan","op":"eq","value":"vip"},{"and":[{"type":"attribute","field":"country","op":"eq","value":"US"},{"not":{"type":"attribute","field":"plan","op":"eq","value":"vip"}}]}]}', $$plan = 'vip' OR (country = 'US' AND NOT coalesce(plan = 'vip', false))$$),
 (49, 'none of plan',       '{"none":[{"type":"attribute","field":"plan","op":"eq","value":"vip"},{"type":"attribute","field":"plan","op":"eq","value":"pro"}]}', $$NOT coalesce(plan IN ('vip', 'pro'), false)$$),
 (50, 'lifetime numeric',   '{"type":"attribute","field":"lifetime_value","op":"gte","value":100}', $$lifetime_value >= 100$$),
 (51, 'lifetime 100.0',     '{"type":"attribute","field":"lifetime_value","op":"gte","value":100.0}', $$lifetime_value >= 100$$),
 (52, 'ip in_cidr',         '{"type":"attribute","field":"ip","op":"in_cidr","value":"10.0.0.0/8"}', $$family(ip) = 4 AND ip <<= '10.0.0.0/8'$$),
 (53, 'trait ip in_cidr',   '{"type":"trait","key":"ip","op":"in_cidr","value":"10.0.0.0/8"}', NULL),
 (54, 'trait ip 192',       '{"type":"trait","key":"ip","op":"in_cidr","value":"192.168.0.0/16"}', NULL);

-- Every segment created at once; then one pass evaluates them together.
SELECT count(segments.create_segment(name, def)) FROM (SELECT name, def FROM shared_case ORDER BY n) s;
SELECT segments.refresh();
CREATE TEMP TABLE together AS
SELECT c.n, c.name, members(c.name) AS members FROM shared_case c;

-- Members of a SQL predicate.
CREATE FUNCTION sql_members(pred text, seg text) RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    result bigint[];
BEGIN
    EXECUTE format('SELECT coalesce(array_agg(id ORDER BY id), ''{}'') FROM contacts WHERE %s',
                   replace(pred, '{id}', (SELECT id::text FROM segments.segments WHERE name = seg)))
       INTO result;
    RETURN result;
END
$$;

-- Each evaluated alone: a pass that rewrites only that segment evaluates
-- nothing else, so nothing is shared.
CREATE FUNCTION alone(seg text) RETURNS bigint[]
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM segments.refresh((SELECT id FROM segments.segments WHERE name = seg));
    RETURN members(seg);
END
$$;

-- (A default salt is the segment's id, new at every run: members not shown.)
SELECT t.n, t.name,
       CASE WHEN c.def->>'type' = 'percentage' AND NOT c.def ? 'salt' THEN '(by the id)'
            ELSE t.members::text END AS members,
       t.members = alone(t.name) AS same_alone,
       CASE WHEN c.pred IS NULL THEN NULL ELSE t.members = sql_members(c.pred, t.name) END AS same_as_sql
  FROM together t JOIN shared_case c USING (n)
 ORDER BY t.n;

-- The two default salts are the segments' own ids: different buckets.
SELECT (SELECT members FROM together WHERE n = 44) <> (SELECT members FROM together WHERE n = 45)
       AS default_salts_differ;

-- Thousands of contacts: values remembered up to a bound, and no longer
-- looked up for a column whose values rarely repeat (a unique email);
-- low-cardinality columns keep their remembered results.  In a
-- transaction rolled back: the other files' contacts stay as they were.
BEGIN;
SET LOCAL ROLE regress_app;
INSERT INTO contacts (id, org_id, email, plan, country, last_seen_at, seats, tags, lifetime_value, app_version, custom_data)
SELECT 1000 + g, 'acme',
       'u' || g || CASE WHEN g % 3 = 0 THEN '@ACME.com' ELSE '@example.org' END,
       (ARRAY['vip', 'pro', 'free', 'VIP', NULL])[g % 5 + 1],
       (ARRAY['US', 'DE', 'FR'])[g % 3 + 1],
       now() - (g % 60) * interval '1 day',
       g % 97 - 10,
       CASE WHEN g % 4 = 0 THEN '{beta}'::text[] WHEN g % 4 = 1 THEN ARRAY['Beta', 'x' || g % 1500] END,
       g % 2000 / 10.0,
       (g % 3) || '.' || (g % 5) || '.0',
       jsonb_build_object('n', CASE WHEN g % 2 = 0 THEN to_jsonb(g % 50) ELSE to_jsonb((g % 50)::text) END,
                          'score', g % 7, 'company', jsonb_build_object('size', g % 3000),
                          'ip', '10.' || (g % 256) || '.0.' || (g % 200))
  FROM generate_series(1, 6000) g;
RESET ROLE;
SELECT segments.refresh();
SELECT c.n, c.name, cardinality(members(c.name)) AS members
  FROM shared_case c
 WHERE c.pred IS NOT NULL AND members(c.name) IS DISTINCT FROM sql_members(c.pred, c.name)
 ORDER BY c.n;  -- none differs
SELECT count(*) AS checked_against_sql,
       sum(cardinality(members(name))) FILTER (WHERE pred NOT LIKE '%{id}%') AS memberships
  FROM shared_case WHERE pred IS NOT NULL;
ROLLBACK;

SELECT count(segments.drop_segment(id)) FROM segments.segments s
 WHERE s.name IN (SELECT name FROM shared_case) AND s.name <> 'plan eq';
SELECT segments.drop_segment('plan eq');
DROP FUNCTION alone(text);
DROP FUNCTION sql_members(text, text);
DROP TABLE shared_case;
DROP FUNCTION shared_bucket(text, bigint);
DROP FUNCTION jnum(jsonb);

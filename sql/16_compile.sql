-- 16: what segments.compile() shows, asserted for every operator and every
-- modifier: the comparison type of each field ("(number)": strict JSON type;
-- "as number": read across types; "(integer)": the column's type), names as
-- JSON strings, values as SQL literals, groups and their aliases.  Written
-- by a login role that is not a superuser.
\set VERBOSITY default
\set SHOW_CONTEXT never
\set ON_ERROR_STOP 0

CREATE ROLE compile_writer LOGIN;
GRANT segments_write TO compile_writer;
GRANT SELECT ON contacts TO compile_writer;
ALTER ROLE compile_writer SET segments.tenant = 'acme';
\c - compile_writer
SELECT current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser;

CREATE TEMP TABLE cases (n serial, label text, def jsonb);
INSERT INTO cases (label, def) VALUES
-- Every operator, on attributes of each column kind.
('eq text',            '{"type":"attribute","field":"plan","op":"eq","value":"vip"}'),
('neq text',           '{"type":"attribute","field":"plan","op":"neq","value":"vip"}'),
('gt integer',         '{"type":"attribute","field":"seats","op":"gt","value":5}'),
('gte integer',        '{"type":"attribute","field":"seats","op":"gte","value":5}'),
('lt numeric',         '{"type":"attribute","field":"lifetime_value","op":"lt","value":99.5}'),
('lte numeric',        '{"type":"attribute","field":"lifetime_value","op":"lte","value":"1e3"}'),
('between integer',    '{"type":"attribute","field":"seats","op":"between","value":[1, 10]}'),
('in text',            '{"type":"attribute","field":"country","op":"in","value":["US", "DE"]}'),
('not_in integer',     '{"type":"attribute","field":"seats","op":"not_in","value":[1, 2]}'),
('in empty',           '{"type":"attribute","field":"country","op":"in","value":[]}'),
('contains text',      '{"type":"attribute","field":"email","op":"contains","value":"@acme"}'),
('not_contains array', '{"type":"attribute","field":"tags","op":"not_contains","value":"beta"}'),
('starts_with',        '{"type":"attribute","field":"email","op":"starts_with","value":"a"}'),
('ends_with',          '{"type":"attribute","field":"email","op":"ends_with","value":".com"}'),
('regex',              '{"type":"attribute","field":"email","op":"regex","value":"^[a-z]+@"}'),
('not_regex',          '{"type":"attribute","field":"email","op":"not_regex","value":"\\.org$"}'),
('is_set',             '{"type":"attribute","field":"email","op":"is_set"}'),
('is_not_set',         '{"type":"attribute","field":"birthday","op":"is_not_set"}'),
('modulo integer',     '{"type":"attribute","field":"seats","op":"modulo","value":[3, 1]}'),
('before timestamptz', '{"type":"attribute","field":"signup_at","op":"before","value":"2024-01-01T12:30:00+02:00"}'),
('after date',         '{"type":"attribute","field":"birthday","op":"after","value":"2000-02-29"}'),
('within_last',        '{"type":"attribute","field":"last_seen_at","op":"within_last","value":"30 days"}'),
('not_within_last',    '{"type":"attribute","field":"last_seen_at","op":"not_within_last","value":"1 hour"}'),
('within_next',        '{"type":"attribute","field":"last_seen_at","op":"within_next","value":"2 weeks"}'),
('in_cidr',            '{"type":"attribute","field":"ip","op":"in_cidr","value":"10.1.1.1/8"}'),
('in_cidr list',       '{"type":"attribute","field":"ip","op":"in_cidr","value":["10.0.0.0/8", "::1/128"]}'),
('eq boolean',         '{"type":"attribute","field":"is_active","op":"eq","value":"off"}'),
('eq inet',            '{"type":"attribute","field":"ip","op":"eq","value":"::ffff:10.0.0.1"}'),
('eq bigint key',      '{"type":"attribute","field":"id","op":"eq","value":"7"}'),
('gt timestamptz',     '{"type":"attribute","field":"signup_at","op":"gt","value":"2024-01-01"}'),
-- Traits: strict without "as", or read as the operator's type.
('trait eq number',    '{"type":"trait","key":"n","op":"eq","value":42}'),
('trait eq text',      '{"type":"trait","key":"n","op":"eq","value":"42"}'),
('trait eq boolean',   '{"type":"trait","key":"b","op":"eq","value":true}'),
('trait neq boolean',  '{"type":"trait","key":"b","op":"neq","value":false}'),
('trait gt decimal',   '{"type":"trait","key":"score","op":"gt","value":1.50}'),
('trait gte 1e3',      '{"type":"trait","key":"score","op":"gte","value":1e3}'),
('trait lt text',      '{"type":"trait","key":"s","op":"lt","value":"m"}'),
('trait lte',          '{"type":"trait","key":"score","op":"lte","value":-7}'),
('trait between',      '{"type":"trait","key":"score","op":"between","value":[1, 2.5]}'),
('trait in',           '{"type":"trait","key":"plan_t","op":"in","value":["Gold", "Silver"]}'),
('trait not_in',       '{"type":"trait","key":"n","op":"not_in","value":[1, 2]}'),
('trait contains',     '{"type":"trait","key":"arr","op":"contains","value":"x"}'),
('trait contains num', '{"type":"trait","key":"arr","op":"contains","value":2}'),
('trait not_contains', '{"type":"trait","key":"s","op":"not_contains","value":"hello"}'),
('trait starts_with',  '{"type":"trait","key":"s","op":"starts_with","value":"he"}'),
('trait ends_with',    '{"type":"trait","key":"s","op":"ends_with","value":"lo"}'),
('trait regex',        '{"type":"trait","key":"s","op":"regex","value":"^h\\y"}'),
('trait not_regex',    '{"type":"trait","key":"s","op":"not_regex","value":"x"}'),
('trait is_set',       '{"type":"trait","key":"s","op":"is_set"}'),
('trait is_not_set',   '{"type":"trait","key":"s","op":"is_not_set"}'),
('trait modulo',       '{"type":"trait","key":"score","op":"modulo","value":[2, 0.5]}'),
('trait before',       '{"type":"trait","key":"ts","op":"before","value":"2024-01-01"}'),
('trait after',        '{"type":"trait","key":"ts","op":"after","value":"2024-01-01T00:00:00.000001Z"}'),
('trait within_last',  '{"type":"trait","key":"ts","op":"within_last","value":"1 year 2 mons"}'),
('trait not_within',   '{"type":"trait","key":"ts","op":"not_within_last","value":"3 days"}'),
('trait within_next',  '{"type":"trait","key":"ts","op":"within_next","value":"90 minutes"}'),
('trait in_cidr',      '{"type":"trait","key":"ip","op":"in_cidr","value":["192.168.0.0/16"]}'),
-- "as", each type, on traits and on a text column.
('as text',            '{"type":"trait","key":"n","as":"text","op":"eq","value":"42"}'),
('as number',          '{"type":"trait","key":"n","as":"number","op":"in","value":[" +1 ", "2"]}'),
('as boolean',         '{"type":"trait","key":"b","as":"boolean","op":"eq","value":"TRUE"}'),
('as timestamp',       '{"type":"trait","key":"ts","as":"timestamp","op":"gte","value":"2024-01-01T00:00"}'),
('as semver',          '{"type":"trait","key":"ver","as":"semver","op":"lt","value":"1.0.0-rc.1+build.5"}'),
('as inet',            '{"type":"trait","key":"ip","as":"inet","op":"gt","value":"10.0.0.1"}'),
('as timestamp set',   '{"type":"trait","key":"ts","as":"timestamp","op":"is_set"}'),
('as number contains', '{"type":"trait","key":"arr","as":"number","op":"contains","value":2}'),
('as length trait',    '{"type":"trait","key":"arr","as":"length","op":"gte","value":2}'),
('as length array',    '{"type":"attribute","field":"tags","as":"length","op":"between","value":[1, 3]}'),
('as length text',     '{"type":"attribute","field":"name","as":"length","op":"eq","value":0}'),
('as semver column',   '{"type":"attribute","field":"app_version","as":"semver","op":"gte","value":"1.2.0"}'),
('as number column',   '{"type":"attribute","field":"app_version","as":"number","op":"eq","value":1.2}'),
('as text column',     '{"type":"attribute","field":"plan","as":"text","op":"eq","value":"vip"}'),
('implied timestamp',  '{"type":"attribute","field":"app_version","op":"before","value":"2024-01-01"}'),
-- case_sensitive, true and false.
('ci eq',              '{"type":"trait","key":"plan_t","op":"eq","value":"GOLD","case_sensitive":false}'),
('ci in',              '{"type":"attribute","field":"plan","op":"in","value":["VIP", "Pro"],"case_sensitive":false}'),
('ci contains array',  '{"type":"attribute","field":"tags","op":"contains","value":"BETA","case_sensitive":false}'),
('ci starts_with',     '{"type":"trait","key":"s","op":"starts_with","value":"HE","case_sensitive":false}'),
('ci regex',           '{"type":"attribute","field":"email","op":"regex","value":"^A","case_sensitive":false}'),
('ci not_regex',       '{"type":"attribute","field":"email","op":"not_regex","value":"^A","case_sensitive":false}'),
('cs true',            '{"type":"attribute","field":"plan","op":"eq","value":"vip","case_sensitive":true}'),
-- negate, true and false.
('negate',             '{"type":"attribute","field":"plan","op":"eq","value":"vip","negate":true}'),
('negate false',       '{"type":"attribute","field":"plan","op":"eq","value":"vip","negate":false}'),
('negate not_in',      '{"type":"trait","key":"n","op":"not_in","value":[1],"negate":true}'),
-- key and path: names as JSON strings, so a key with a dot and a path differ.
('key with dot',       '{"type":"trait","key":"a.b","op":"eq","value":1}'),
('path of two',        '{"type":"trait","path":["a","b"],"op":"eq","value":1}'),
('path of one',        '{"type":"trait","path":["a.b"],"op":"eq","value":1}'),
('quoted names',       '{"type":"trait","path":["say \"hi\"","back\\slash","new\nline"],"op":"is_set"}'),
('quoted values',      '{"type":"attribute","field":"plan","op":"in","value":["it''s", "a\\b", "tab\there", "nul\u0001"]}'),
('sql in values',      '{"type":"attribute","field":"plan","op":"eq","value":"x''); DROP TABLE contacts; --"}'),
('unicode',            '{"type":"trait","key":"名前","op":"eq","value":"Zoë"}'),
-- Groups: aliases, not, none, empty, one child, nesting; a bare condition.
('and',                '{"and":[{"type":"attribute","field":"plan","op":"eq","value":"vip"},{"type":"trait","key":"n","op":"gt","value":1}]}'),
('or',                 '{"or":[{"type":"attribute","field":"plan","op":"eq","value":"vip"},{"type":"trait","key":"n","op":"gt","value":1}]}'),
('all',                '{"all":[{"type":"attribute","field":"plan","op":"eq","value":"vip"},{"type":"trait","key":"n","op":"gt","value":1}]}'),
('any',                '{"any":[{"type":"attribute","field":"plan","op":"eq","value":"vip"},{"type":"trait","key":"n","op":"gt","value":1}]}'),
('none',               '{"none":[{"type":"attribute","field":"plan","op":"eq","value":"vip"},{"type":"trait","key":"n","op":"gt","value":1}]}'),
('none of one',        '{"none":[{"type":"attribute","field":"plan","op":"eq","value":"vip"}]}'),
('not',                '{"not":{"type":"attribute","field":"plan","op":"eq","value":"vip"}}'),
('not of group',       '{"not":{"or":[{"type":"attribute","field":"plan","op":"eq","value":"vip"},{"type":"attribute","field":"plan","op":"eq","value":"pro"}]}}'),
('empty and',          '{"and":[]}'),
('empty or',           '{"or":[]}'),
('one child',          '{"or":[{"and":[{"type":"attribute","field":"plan","op":"eq","value":"vip"}]}]}'),
('dnf',                '{"or":[{"and":[{"type":"attribute","field":"plan","op":"eq","value":"vip"},{"type":"attribute","field":"country","op":"eq","value":"US"}]},{"and":[{"type":"trait","key":"n","op":"eq","value":1},{"not":{"type":"trait","key":"b","op":"eq","value":true}}]}]}'),
('bare condition',     '{"type":"attribute","field":"plan","op":"eq","value":"vip"}'),
-- percentage, every op, with and without salt.
('pct lt',             '{"type":"percentage","op":"lt","value":10}'),
('pct lte salt',       '{"type":"percentage","op":"lte","value":10.5,"salt":"exp-1"}'),
('pct gt',             '{"type":"percentage","op":"gt","value":0}'),
('pct gte',            '{"type":"percentage","op":"gte","value":99.99}'),
('pct between',        '{"type":"percentage","op":"between","value":[25, 50],"salt":"a''b"}'),
('pct negate',         '{"type":"percentage","op":"lt","value":50,"negate":true}');

SELECT n, label, segments.compile(def) AS compiled FROM cases ORDER BY n;

-- Segment conditions show the referenced ids (masked here).
SELECT segments.create_segment('Compile base', '{"type":"attribute","field":"plan","op":"eq","value":"vip"}') AS base \gset
SELECT segments.create_segment('Compile other', '{"type":"attribute","field":"plan","op":"eq","value":"pro"}') AS other \gset
SELECT replace(replace(segments.compile(def), :'base', '<base>'), :'other', '<other>') AS compiled
  FROM (VALUES ('{"type":"segment","op":"in","value":"Compile base"}'::jsonb),
               (jsonb_build_object('type', 'segment', 'op', 'not_in', 'value', :'base')),
               ('{"type":"segment","op":"in","value":["Compile base", "Compile other"],"negate":true}')) AS d(def);
SELECT segments.drop_segment(:'base');
SELECT segments.drop_segment(:'other');

-- The text names what is compared: definitions that behave differently never
-- compile to the same text (left out: the cases above that mean the same as
-- another, such as a path of one key, "all" for "and", "not" for "negate").
SELECT count(DISTINCT def) AS definitions, count(DISTINCT segments.compile(def)) AS texts
  FROM cases WHERE label NOT IN ('negate false', 'cs true', 'path of one', 'as text column', 'one child',
                                 'bare condition', 'all', 'any', 'none of one', 'not');   -- equal

\c - postgres
DROP OWNED BY compile_writer;
DROP ROLE compile_writer;

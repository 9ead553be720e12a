-- 14: the resource limits of docs/rules.md, each at its boundary (the limit itself
-- accepted, one more refused at save with the JSON path and a hint):
-- 256 kB of jsonb text, 10,000 values in an in/not_in list, regexes of
-- 1,000 characters without back-references.  Depth (32 levels) and node
-- count (1,000) are at their boundaries in 07_groups.  Runs as a login role
-- that is not a superuser, as an application's dashboard would.
\set VERBOSITY default
\set SHOW_CONTEXT never
\set ON_ERROR_STOP 0

CREATE ROLE limits_writer LOGIN;
GRANT segments_write TO limits_writer;
GRANT SELECT ON contacts TO limits_writer;
ALTER ROLE limits_writer SET segments.tenant = 'acme';
\c - limits_writer
SELECT current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser;

-- Size: the definition's jsonb text, in bytes; 262,144 (256 kB) is allowed.
CREATE TEMP TABLE big AS
SELECT n, jsonb_build_object('type', 'attribute', 'field', 'plan', 'op', 'eq',
                             'value', repeat('x', n - base)) AS def
  FROM (SELECT octet_length('{"type":"attribute","field":"plan","op":"eq","value":""}'::jsonb::text) AS base) b,
       unnest(ARRAY[262144, 262145]) AS n;
SELECT n, octet_length(def::text) AS jsonb_text_bytes FROM big ORDER BY n;   -- exactly 262144 and 262145
SELECT length(segments.compile(def)) > 262000 AS size_at_limit_compiles FROM big WHERE n = 262144; -- t
SELECT segments.compile(def) FROM big WHERE n = 262145;                     -- error at $
SELECT segments.create_segment('Big', def) AS big_id FROM big WHERE n = 262144 \gset
SELECT count(*) AS size_at_limit_saved FROM segments.segments WHERE id = :'big_id';   -- 1
SELECT segments.create_segment('Big 2', def) FROM big WHERE n = 262145;     -- error at $
SELECT segments.update_segment(:'big_id', definition => def) FROM big WHERE n = 262145; -- error at $
SELECT octet_length(definition::text) AS big_unchanged FROM segments.segments WHERE id = :'big_id'; -- 262144
SELECT segments.drop_segment(:'big_id');
-- Multibyte text and escapes count as jsonb prints them: 2 bytes per é, 2 per \".
SELECT segments.compile(jsonb_build_object('type', 'trait', 'key', 'k', 'op', 'eq', 'value',
       repeat('é', (262145 - octet_length('{"type":"trait","key":"k","op":"eq","value":""}'::jsonb::text)) / 2 + 1)));  -- error at $
SELECT segments.compile(jsonb_build_object('and', jsonb_build_array(jsonb_build_object('type', 'trait', 'key', 'k', 'op', 'eq', 'value',
       repeat('"', 131100))))) ;                                             -- error at $ (262,200 bytes escaped)

-- in / not_in: 10,000 values allowed, 10,001 refused, whatever their type.
SELECT segments.compile(jsonb_build_object('type', 'trait', 'key', 'k', 'op', 'in',
       'value', (SELECT jsonb_agg(g) FROM generate_series(1, 10000) g))) IS NOT NULL AS in_10000;  -- t
SELECT segments.compile(jsonb_build_object('type', 'trait', 'key', 'k', 'op', 'in',
       'value', (SELECT jsonb_agg(g) FROM generate_series(1, 10001) g)));  -- error at $
SELECT segments.compile(jsonb_build_object('or', jsonb_build_array(
       '{"type":"attribute","field":"plan","op":"eq","value":"vip"}'::jsonb,
       jsonb_build_object('and', jsonb_build_array(jsonb_build_object('type', 'attribute', 'field', 'plan', 'op', 'not_in',
       'value', (SELECT jsonb_agg('p' || g) FROM generate_series(1, 10001) g)))))));  -- error at $.or[1].and[0]
SELECT segments.compile(jsonb_build_object('type', 'attribute', 'field', 'seats', 'op', 'not_in',
       'value', (SELECT jsonb_agg(g) FROM generate_series(1, 10000) g))) IS NOT NULL AS not_in_10000; -- t
SELECT segments.compile(jsonb_build_object('type', 'segment', 'op', 'in',
       'value', (SELECT jsonb_agg('s' || g) FROM generate_series(1, 10001) g)));  -- error at $: too long before any is looked up
-- A list at the limit evaluates as any other (seats 1..10000 by tenant acme: every seat >= 1).
SELECT t(jsonb_build_object('type', 'attribute', 'field', 'seats', 'op', 'in',
       'value', (SELECT jsonb_agg(g) FROM generate_series(1, 10000) g))) AS seats_in_10000;  -- {1,2,3,6,7,8,10,11,13,14,15,16,17,18,19,20}
SELECT t(jsonb_build_object('type', 'trait', 'key', 'k', 'op', 'not_in',
       'value', (SELECT jsonb_agg(g) FROM generate_series(1, 10000) g WHERE g <> 18))) AS k_not_in_10000; -- {1,...,16,18}: no k, or k = 18

-- Regular expressions: 1,000 characters allowed (characters, not bytes), 1,001 refused.
SELECT segments.compile(jsonb_build_object('type', 'attribute', 'field', 'email', 'op', 'regex',
       'value', repeat('é', 1000))) IS NOT NULL AS regex_1000_chars;   -- t: 2,000 bytes
SELECT segments.compile(jsonb_build_object('type', 'attribute', 'field', 'email', 'op', 'regex',
       'value', repeat('é', 1001)));                                   -- error at $
SELECT segments.compile(jsonb_build_object('any', jsonb_build_array(jsonb_build_object('type', 'trait', 'key', 's', 'op', 'not_regex',
       'value', repeat('a', 1001)))));                                 -- error at $.any[0]
-- Back-references, in every flavour the regex engine offers, are refused.
SELECT segments.compile('{"type":"attribute","field":"email","op":"regex","value":"(a)\\1"}');                 -- error at $
SELECT segments.compile('{"and":[{"type":"trait","key":"s","op":"regex","value":"([a-z]+) \\1"}]}');           -- error at $.and[0]
SELECT segments.compile('{"type":"attribute","field":"email","op":"not_regex","value":"(a)(b)(c)\\3"}');       -- error at $
SELECT segments.compile('{"type":"attribute","field":"email","op":"regex","value":"(x)\\1","case_sensitive":false}'); -- error at $
SELECT segments.compile('{"type":"attribute","field":"email","op":"regex","value":"(?b)\\(a\\)\\1"}');         -- error at $: basic syntax
SELECT segments.compile('{"type":"attribute","field":"email","op":"regex","value":"\\1"}');                    -- error at $: no group to refer to
-- What looks like one but is not is allowed: an escaped backslash before a digit, octal, word boundaries, lookahead.
SELECT segments.compile('{"type":"attribute","field":"email","op":"regex","value":"(a)\\\\1"}') IS NOT NULL AS escaped_backslash; -- t
SELECT segments.compile('{"type":"attribute","field":"email","op":"regex","value":"\\y(a|b)\\M"}') IS NOT NULL AS word_boundaries;  -- t
SELECT segments.compile('{"type":"attribute","field":"email","op":"regex","value":"(?=a)(a)"}') IS NOT NULL AS lookahead;           -- t
SELECT segments.compile('{"type":"attribute","field":"email","op":"regex","value":"\\0101"}') IS NOT NULL AS octal_escape;          -- t
SELECT t('{"type":"attribute","field":"email","op":"regex","value":"(a)\\\\1"}') AS escaped_backslash_matches; -- {}

\c - postgres
SELECT count(*) AS segments_left FROM segments.segments;
DROP OWNED BY limits_writer;
DROP ROLE limits_writer;

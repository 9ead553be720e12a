-- 12: rejected definitions.  Each error names the JSON path of the offending
-- node and carries a HINT; a rejected create or update changes nothing.
-- segments.compile() validates without saving; create_segment and
-- update_segment are used where the catalog matters.
\set VERBOSITY default
\set SHOW_CONTEXT never
\set ON_ERROR_STOP 0

-- The issue's example: the path names the node, the HINT lists the operators.
SELECT segments.compile('{"or":[{"and":[{"type":"attribute","field":"plan","op":"eq","value":"vip"},{"type":"trait","key":"n","op":"gt","value":1},{"type":"attribute","field":"plan","op":"equals","value":"vip"}]}]}');

-- Shape of the definition.
SELECT segments.compile('[]');
SELECT segments.compile('"vip"');
SELECT segments.compile('42');
SELECT segments.compile('null');
SELECT segments.compile('{}');
SELECT segments.compile('{"and":[],"or":[]}');
SELECT segments.compile('{"xor":[]}');
SELECT segments.compile('{"and":{}}');
SELECT segments.compile('{"or":"x"}');
SELECT segments.compile('{"not":[]}');
SELECT segments.compile('{"none":{"type":"attribute","field":"plan","op":"is_set"}}');
SELECT segments.compile('{"and":[1]}');
SELECT segments.compile('{"and":[{"and":[]},[]]}');
SELECT segments.compile('{"and":[{"field":"plan","op":"eq","value":"x"}]}');
SELECT segments.compile('{"any":[{"all":[{"type":"attribute","field":"plan","op":"is_set"},{"not":{"type":"nope"}}]}]}');

-- Unknown type, operator, field, modifier.
SELECT segments.compile('{"type":"attr","field":"plan","op":"eq","value":"x"}');
SELECT segments.compile('{"type":1,"field":"plan","op":"eq","value":"x"}');
SELECT segments.compile('{"and":[{"type":"attribute","field":"plan","op":"like","value":"x"}]}');
SELECT segments.compile('{"and":[{"type":"attribute","field":"plan","value":"x"}]}');
SELECT segments.compile('{"and":[{"type":"attribute","field":"nope","op":"eq","value":"x"}]}');
SELECT segments.compile('{"and":[{"type":"attribute","op":"eq","value":"x"}]}');
SELECT segments.compile('{"and":[{"type":"attribute","field":1,"op":"eq","value":"x"}]}');
SELECT segments.compile('{"and":[{"type":"attribute","field":"plan","op":"eq","value":"x","foo":true}]}');
SELECT segments.compile('{"and":[{"type":"attribute","field":"plan","op":"eq","value":"x","as":"integer"}]}');
SELECT segments.compile('{"and":[{"type":"attribute","field":"plan","op":"eq","value":"x","negate":"yes"}]}');
SELECT segments.compile('{"and":[{"type":"attribute","field":"plan","op":"eq","value":"x","case_sensitive":"no"}]}');
SELECT segments.compile('{"and":[{"type":"trait","op":"eq","value":"x"}]}');
SELECT segments.compile('{"and":[{"type":"trait","key":"a","field":"plan","op":"eq","value":"x"}]}');
SELECT segments.compile('{"and":[{"type":"percentage","op":"lt","value":10,"field":"plan"}]}');

-- value missing where needed, present where not, or JSON null.
SELECT segments.compile('{"type":"attribute","field":"plan","op":"eq"}');
SELECT segments.compile('{"type":"attribute","field":"plan","op":"eq","value":null}');
SELECT segments.compile('{"type":"attribute","field":"plan","op":"is_set","value":true}');
SELECT segments.compile('{"type":"attribute","field":"plan","op":"is_not_set","value":null}');
SELECT segments.compile('{"type":"trait","key":"n","op":"in"}');
SELECT segments.compile('{"type":"percentage","op":"lt"}');
-- Wrong value shapes.
SELECT segments.compile('{"type":"attribute","field":"plan","op":"eq","value":["vip"]}');
SELECT segments.compile('{"type":"trait","key":"plan_t","op":"eq","value":{"a":1}}');
SELECT segments.compile('{"type":"attribute","field":"plan","op":"in","value":"vip"}');
SELECT segments.compile('{"type":"attribute","field":"plan","op":"in","value":["vip",null]}');
SELECT segments.compile('{"type":"trait","key":"n","op":"in","value":[[1],[2]]}');
SELECT segments.compile('{"type":"attribute","field":"plan","op":"starts_with","value":5}');
SELECT segments.compile('{"type":"trait","key":"s","op":"ends_with","value":true}');
SELECT segments.compile('{"type":"attribute","field":"plan","op":"regex","value":["a"]}');
SELECT segments.compile('{"type":"attribute","field":"last_seen_at","op":"within_last","value":30}');
SELECT segments.compile('{"type":"attribute","field":"signup_at","op":"before","value":1704067200}');
-- in / not_in lists mixing JSON types (integers and decimals may mix), whatever as says.
SELECT segments.compile('{"type":"trait","key":"n","op":"in","value":["a", 1]}');
SELECT segments.compile('{"type":"trait","key":"n","op":"not_in","value":[true, "true"]}');
SELECT segments.compile('{"type":"trait","key":"n","op":"in","value":["1", 1],"as":"text"}');
SELECT segments.compile('{"type":"trait","key":"n","op":"in","value":[1, "2"],"as":"number"}');
SELECT segments.compile('{"type":"trait","key":"n","op":"in","value":[1, 2.5, -3, 1e3]}') IS NOT NULL AS ints_and_decimals_mix;
-- between: two elements, low <= high, one JSON type.
SELECT segments.compile('{"type":"attribute","field":"seats","op":"between","value":[1]}');
SELECT segments.compile('{"type":"attribute","field":"seats","op":"between","value":[1, 2, 3]}');
SELECT segments.compile('{"type":"attribute","field":"seats","op":"between","value":"1..2"}');
SELECT segments.compile('{"type":"attribute","field":"seats","op":"between","value":[5, 1]}');
SELECT segments.compile('{"type":"trait","key":"score","op":"between","value":[5.5, 5.25]}');
SELECT segments.compile('{"type":"attribute","field":"name","op":"between","value":["b", "a"]}');
SELECT segments.compile('{"type":"attribute","field":"name","op":"between","value":["a", "B"]}');
SELECT segments.compile('{"type":"attribute","field":"signup_at","op":"between","value":["2024-01-02", "2024-01-01T23:59:59Z"]}');
SELECT segments.compile('{"type":"trait","key":"ver","as":"semver","op":"between","value":["1.0.0", "1.0.0-rc.1"]}');
SELECT segments.compile('{"type":"trait","key":"n","op":"between","value":[1, "2"]}');
SELECT segments.compile('{"type":"attribute","field":"seats","op":"between","value":[1, null]}');
SELECT segments.compile('{"type":"attribute","field":"seats","op":"between","value":[3, 3]}') IS NOT NULL AS equal_bounds_ok;
-- modulo: two JSON numbers, divisor not 0.
SELECT segments.compile('{"type":"attribute","field":"seats","op":"modulo","value":[0, 1]}');
SELECT segments.compile('{"type":"trait","key":"score","op":"modulo","value":[0.0, 0]}');
SELECT segments.compile('{"type":"attribute","field":"seats","op":"modulo","value":[3]}');
SELECT segments.compile('{"type":"attribute","field":"seats","op":"modulo","value":[3, 1, 2]}');
SELECT segments.compile('{"type":"attribute","field":"seats","op":"modulo","value":["3", 1]}');
SELECT segments.compile('{"type":"attribute","field":"seats","op":"modulo","value":3}');

-- Values that cannot be read as the condition's type.
SELECT segments.compile('{"type":"trait","key":"ver","as":"semver","op":"eq","value":"v2"}');
SELECT segments.compile('{"type":"attribute","field":"app_version","as":"semver","op":"gte","value":"1.0"}');
SELECT segments.compile('{"type":"attribute","field":"seats","op":"eq","value":10.5}');
SELECT segments.compile('{"type":"attribute","field":"seats","op":"in","value":[1, 2, 3.5]}');
SELECT segments.compile('{"type":"attribute","field":"seats","op":"eq","value":"ten"}');
SELECT segments.compile('{"type":"attribute","field":"seats","op":"eq","value":3000000000}');
SELECT segments.compile('{"type":"attribute","field":"lifetime_value","op":"gt","value":"abc"}');
SELECT segments.compile('{"type":"attribute","field":"is_active","op":"eq","value":"maybe"}');
SELECT segments.compile('{"type":"attribute","field":"birthday","op":"eq","value":"2023-02-29"}');
SELECT segments.compile('{"type":"attribute","field":"ip","op":"eq","value":"300.1.1.1"}');
SELECT segments.compile('{"type":"trait","key":"n","as":"number","op":"eq","value":"abc"}');
SELECT segments.compile('{"type":"trait","key":"n","as":"number","op":"eq","value":"NaN"}');
SELECT segments.compile('{"type":"trait","key":"b","as":"boolean","op":"eq","value":"yes"}');
SELECT segments.compile('{"type":"trait","key":"ip","as":"inet","op":"eq","value":"garbage"}');
SELECT segments.compile('{"type":"trait","key":"ts","as":"timestamp","op":"eq","value":"soon"}');
SELECT segments.compile('{"type":"attribute","field":"tags","op":"eq","value":"beta"}');
-- Ordering operators on booleans.
SELECT segments.compile('{"type":"attribute","field":"is_active","op":"gt","value":false}');
SELECT segments.compile('{"type":"trait","key":"b","op":"lte","value":true}');
SELECT segments.compile('{"type":"trait","key":"b","as":"boolean","op":"between","value":[false, true]}');
-- Time operators: bad timestamps (only the ISO profile) and intervals.
SELECT segments.compile('{"type":"attribute","field":"signup_at","op":"before","value":"yesterday"}');
SELECT segments.compile('{"type":"attribute","field":"signup_at","op":"before","value":"2024-13-01"}');
SELECT segments.compile('{"type":"attribute","field":"signup_at","op":"before","value":"2024-02-30"}');
SELECT segments.compile('{"type":"attribute","field":"signup_at","op":"before","value":"2024-01-01 00:00:00"}');
SELECT segments.compile('{"type":"attribute","field":"signup_at","op":"after","value":"2024-01-01T00:00:00.1234567Z"}');
SELECT segments.compile('{"type":"attribute","field":"signup_at","op":"after","value":"2024-01-01T00:00:00+0200"}');
SELECT segments.compile('{"type":"attribute","field":"signup_at","op":"after","value":"2024-01-01T25:00"}');
SELECT segments.compile('{"type":"attribute","field":"signup_at","op":"after","value":"2024-01-01T10"}');
SELECT segments.compile('{"type":"attribute","field":"signup_at","op":"eq","value":"2023-01-15 10:00:00+00"}');
SELECT segments.compile('{"type":"attribute","field":"signup_at","op":"gt","value":"now"}');
SELECT segments.compile('{"type":"trait","key":"ts","op":"before","value":"Jan 1 2024"}');
SELECT segments.compile('{"type":"attribute","field":"signup_at","op":"after","value":"2024-01-01T00:00:00.123456+05:30"}') IS NOT NULL AS profile_ok;
SELECT segments.compile('{"type":"attribute","field":"last_seen_at","op":"within_last","value":"soon"}');
SELECT segments.compile('{"type":"attribute","field":"last_seen_at","op":"within_next","value":""}');
SELECT segments.compile('{"type":"attribute","field":"last_seen_at","op":"not_within_last","value":"30 parsecs"}');
-- CIDR.
SELECT segments.compile('{"type":"attribute","field":"ip","op":"in_cidr","value":"10.0.0.0/33"}');
SELECT segments.compile('{"type":"attribute","field":"ip","op":"in_cidr","value":"garbage"}');
SELECT segments.compile('{"type":"attribute","field":"ip","op":"in_cidr","value":[]}');
SELECT segments.compile('{"type":"attribute","field":"ip","op":"in_cidr","value":["10.0.0.0/8", 5]}');
SELECT segments.compile('{"type":"trait","key":"ip","op":"in_cidr","value":10}');
-- Regular expressions are checked when saved.
SELECT segments.compile('{"type":"attribute","field":"email","op":"regex","value":"("}');
SELECT segments.compile('{"type":"attribute","field":"email","op":"not_regex","value":"[a-"}');
SELECT segments.compile('{"type":"trait","key":"s","op":"regex","value":"a{3,1}"}');
-- Operators on columns of the wrong type.
SELECT segments.compile('{"type":"attribute","field":"seats","op":"in_cidr","value":"10.0.0.0/8"}');
SELECT segments.compile('{"type":"attribute","field":"seats","op":"before","value":"2024-01-01"}');

-- Trait addressing: key or path, not both; a non-empty path of strings.
SELECT segments.compile('{"type":"trait","key":"a","path":["a"],"op":"is_set"}');
SELECT segments.compile('{"type":"trait","path":[],"op":"is_set"}');
SELECT segments.compile('{"type":"trait","path":["a", 1],"op":"is_set"}');
SELECT segments.compile('{"type":"trait","path":"a.b","op":"is_set"}');
SELECT segments.compile('{"type":"trait","key":["a"],"op":"is_set"}');

-- as conflicting with the type an operator implies, or misplaced.
SELECT segments.compile('{"type":"trait","key":"ts","op":"before","value":"2024-01-01","as":"text"}');
SELECT segments.compile('{"type":"trait","key":"s","op":"regex","value":"^1","as":"number"}');
SELECT segments.compile('{"type":"trait","key":"s","op":"starts_with","value":"1","as":"boolean"}');
SELECT segments.compile('{"type":"trait","key":"ip","op":"in_cidr","value":"10.0.0.0/8","as":"text"}');
SELECT segments.compile('{"type":"trait","key":"score","op":"modulo","value":[2, 0],"as":"timestamp"}');
SELECT segments.compile('{"type":"trait","key":"ts","op":"within_last","value":"1 day","as":"number"}');
SELECT segments.compile('{"type":"attribute","field":"seats","op":"eq","value":1,"as":"number"}');
SELECT segments.compile('{"type":"attribute","field":"signup_at","op":"is_set","as":"timestamp"}');
SELECT segments.compile('{"type":"attribute","field":"seats","as":"length","op":"gt","value":1}');
SELECT segments.compile('{"type":"trait","key":"s","as":"length","op":"starts_with","value":"1"}');
SELECT segments.compile('{"type":"segment","op":"in","value":"x","as":"text"}');
SELECT segments.compile('{"type":"percentage","op":"lt","value":10,"as":"number"}');
-- case_sensitive (true or false) on ordering operators or non-text conditions.
SELECT segments.compile('{"type":"attribute","field":"name","op":"gt","value":"a","case_sensitive":false}');
SELECT segments.compile('{"type":"attribute","field":"name","op":"between","value":["a","b"],"case_sensitive":true}');
SELECT segments.compile('{"type":"attribute","field":"seats","op":"eq","value":1,"case_sensitive":false}');
SELECT segments.compile('{"type":"attribute","field":"is_active","op":"eq","value":true,"case_sensitive":false}');
SELECT segments.compile('{"type":"trait","key":"n","op":"eq","value":1,"case_sensitive":false}');
SELECT segments.compile('{"type":"trait","key":"n","as":"number","op":"in","value":[1],"case_sensitive":true}');
SELECT segments.compile('{"type":"trait","key":"score","op":"modulo","value":[2, 0],"case_sensitive":false}');
SELECT segments.compile('{"type":"attribute","field":"signup_at","op":"before","value":"2024-01-01","case_sensitive":false}');
SELECT segments.compile('{"type":"attribute","field":"ip","op":"in_cidr","value":"10.0.0.0/8","case_sensitive":false}');
SELECT segments.compile('{"type":"segment","op":"in","value":"x","case_sensitive":false}');
SELECT segments.compile('{"type":"percentage","op":"lt","value":10,"case_sensitive":false}');
SELECT segments.compile('{"type":"trait","key":"s","op":"contains","value":"a","case_sensitive":false}') IS NOT NULL AS ci_contains_ok;

-- percentage: values in [0, 100], ops lt/lte/gt/gte/between.
SELECT segments.compile('{"type":"percentage","op":"lt","value":101}');
SELECT segments.compile('{"type":"percentage","op":"gte","value":-1}');
SELECT segments.compile('{"type":"percentage","op":"lt","value":100.01}');
SELECT segments.compile('{"type":"percentage","op":"between","value":[-1, 50]}');
SELECT segments.compile('{"type":"percentage","op":"between","value":[50, 101]}');
SELECT segments.compile('{"type":"percentage","op":"between","value":[60, 50]}');
SELECT segments.compile('{"type":"percentage","op":"eq","value":10}');
SELECT segments.compile('{"type":"percentage","op":"in","value":[10]}');
SELECT segments.compile('{"type":"percentage","op":"lt","value":"10"}');
SELECT segments.compile('{"type":"percentage","op":"lt","value":10,"salt":5}');
SELECT segments.compile('{"type":"percentage","op":"between","value":[0, 100]}') IS NOT NULL AS full_range_ok;

-- Nothing from a definition is pasted into SQL: quotes and SQL in names and values are data.
SELECT segments.compile('{"type":"attribute","field":"plan\"; DROP TABLE contacts; --","op":"eq","value":"x"}');
SELECT segments.compile('{"type":"attribute","field":"PLAN","op":"eq","value":"x"}');
SELECT t('{"type":"attribute","field":"plan","op":"eq","value":"vip'' OR ''1''=''1"}') AS quoted_value;         -- {}
SELECT t('{"type":"attribute","field":"plan","op":"in","value":["x\\\"); DROP TABLE contacts; --"]}') AS quoted_list; -- {}
SELECT excluded(t('{"type":"trait","key":"x''); DROP TABLE contacts; --","op":"is_not_set"}')) AS quoted_key_excludes; -- {}
SELECT t('{"type":"trait","path":["a''b","c\"d"],"op":"is_set"}') AS quoted_path;                          -- {}
SELECT t('{"type":"attribute","field":"email","op":"regex","value":"''; SELECT pg_sleep(10); --"}') AS quoted_regex; -- {}
SELECT t('{"type":"percentage","op":"lt","value":50,"salt":"''); DROP TABLE contacts; --"}') IS NOT NULL AS quoted_salt;
SELECT count(*) AS contacts_intact FROM contacts;                                                         -- 30

-- segment conditions: in / not_in only, a known segment of the same tenant.
SELECT segments.create_segment('Err Base', '{"type":"attribute","field":"plan","op":"eq","value":"vip"}') AS base \gset
SELECT segments.create_segment('Err A', '{"type":"segment","op":"in","value":"No such segment"}');
SELECT segments.create_segment('Err A', '{"type":"segment","op":"in","value":"00000000-0000-0000-0000-000000000000"}');
SELECT segments.create_segment('Err A', '{"type":"segment","op":"eq","value":"Err Base"}');
SELECT segments.create_segment('Err A', '{"type":"segment","op":"in"}');
SELECT segments.create_segment('Err A', '{"type":"segment","op":"in","value":5}');
SELECT segments.create_segment('Err A', '{"or":[{"and":[{"type":"segment","op":"in","value":"Err Base"},{"type":"segment","op":"not_in","value":"Err Missing"}]}]}');
SELECT segments.create_segment('Err A', '{"type":"segment","op":"in","value":"Err Base"}', tenant => 'acme');
-- A cycle.
SELECT segments.create_segment('Err B', '{"type":"segment","op":"in","value":"Err Base"}') AS b \gset
SELECT segments.update_segment(:'base', definition => '{"or":[{"type":"segment","op":"not_in","value":"Err B"}]}');
-- Too deep, too many nodes.
SELECT segments.create_segment('Err A', (repeat('{"and":[', 33) || repeat(']}', 33))::jsonb);
SELECT segments.create_segment('Err A', ('{"and":[' || (SELECT string_agg('{"or":[]}', ',') FROM generate_series(1, 1000)) || ']}')::jsonb);
-- A bare condition's own errors name $.
SELECT segments.create_segment('Err A', '{"type":"attribute","field":"plan","op":"equals","value":"vip"}');
SELECT count(*) AS no_err_a FROM segments.segments WHERE name = 'Err A';   -- 0

-- A rejected create or update leaves everything as it was.
SELECT segments.refresh();
SELECT name, definition, status, member_count FROM segments.segments WHERE id = :'base';
SELECT segments.update_segment(:'base', name => 'Err Renamed', definition => '{"type":"attribute","field":"plan","op":"eq","value":["vip"]}');
SELECT segments.update_segment(:'base', definition => '{"type":"attribute","field":"nope","op":"eq","value":"vip"}', description => 'changed');
SELECT name, description, definition, status, member_count FROM segments.segments WHERE id = :'base';
SELECT members_of(:'base') AS base_members;                                -- {1,10,18,22,26,30}
SELECT segments.create_segment('Err New', '{"type":"attribute","field":"plan","op":"eq","value":null}');
SELECT count(*) AS err_new FROM segments.segments WHERE name = 'Err New';  -- 0
SELECT name FROM segments.segments ORDER BY name;

SELECT segments.drop_segment(:'b');
SELECT segments.drop_segment(:'base');
-- Every check of docs/rules.md's "Checked when a segment is saved" names
-- the offending node's path, wherever it sits (here the second node of an
-- "all" inside an "any": keys as written, aliases included), SQLSTATE 22023.
SELECT check_name,
       try(format('SELECT segments.compile(%L)', jsonb_build_object('any', jsonb_build_array(
           '{"type":"attribute","field":"plan","op":"is_set"}'::jsonb,
           jsonb_build_object('all', jsonb_build_array('{"type":"attribute","field":"plan","op":"is_set"}'::jsonb, bad))))))
         LIKE '22023: invalid segment definition at $.any[1].all[1]: %' AS names_path
  FROM (VALUES
    ('value missing',            '{"type":"attribute","field":"plan","op":"eq"}'::jsonb),
    ('value not taken',          '{"type":"attribute","field":"plan","op":"is_set","value":"x"}'),
    ('value null',               '{"type":"trait","key":"n","op":"eq","value":null}'),
    ('unreadable as semver',     '{"type":"trait","key":"ver","as":"semver","op":"eq","value":"v2"}'),
    ('10.5 for integer',         '{"type":"attribute","field":"seats","op":"eq","value":10.5}'),
    ('ordering booleans',        '{"type":"trait","key":"b","op":"gt","value":true}'),
    ('between low > high',       '{"type":"trait","key":"n","op":"between","value":[2, 1]}'),
    ('between one element',      '{"type":"trait","key":"n","op":"between","value":[1]}'),
    ('between two JSON types',   '{"type":"trait","key":"n","op":"between","value":[1, "2"]}'),
    ('modulo divisor 0',         '{"type":"trait","key":"n","op":"modulo","value":[0, 0]}'),
    ('modulo not numbers',       '{"type":"trait","key":"n","op":"modulo","value":["2", "0"]}'),
    ('key and path',             '{"type":"trait","key":"n","path":["n"],"op":"is_set"}'),
    ('empty path',               '{"type":"trait","path":[],"op":"is_set"}'),
    ('non-string path element',  '{"type":"trait","path":["a", 1],"op":"is_set"}'),
    ('unknown segment',          '{"type":"segment","op":"in","value":"No such segment"}'),
    ('segment op',               '{"type":"segment","op":"eq","value":"x"}'),
    ('percentage over 100',      '{"type":"percentage","op":"lt","value":100.5}'),
    ('percentage op',            '{"type":"percentage","op":"eq","value":10}'),
    ('in mixing types',          '{"type":"trait","key":"n","op":"in","value":[1, "1"]}'),
    ('in mixing types with as',  '{"type":"trait","key":"n","as":"text","op":"not_in","value":[1, "1"]}'),
    ('in_cidr empty list',       '{"type":"trait","key":"ip","op":"in_cidr","value":[]}'),
    ('as conflicts (before)',    '{"type":"trait","key":"ts","as":"text","op":"before","value":"2024-01-01"}'),
    ('as conflicts (regex)',     '{"type":"trait","key":"s","as":"number","op":"regex","value":"1"}'),
    ('case_sensitive ordering',  '{"type":"trait","key":"s","op":"gt","value":"a","case_sensitive":true}'),
    ('case_sensitive non-text',  '{"type":"attribute","field":"seats","op":"eq","value":1,"case_sensitive":false}'),
    ('as on segment',            '{"type":"segment","op":"in","value":"x","as":"text"}'),
    ('case_sensitive on pct',    '{"type":"percentage","op":"lt","value":1,"case_sensitive":false}'),
    ('timestamp outside ISO',    '{"type":"trait","key":"ts","op":"after","value":"2024-01-01 10:00"}'),
    ('bad interval',             '{"type":"trait","key":"ts","op":"within_last","value":"soon"}'),
    ('bad regex',                '{"type":"trait","key":"s","op":"regex","value":"("}'),
    ('bad CIDR',                 '{"type":"trait","key":"ip","op":"in_cidr","value":"10.0.0.0/33"}'),
    ('unknown operator',         '{"type":"trait","key":"s","op":"equals","value":"x"}'),
    ('unknown modifier value',   '{"type":"trait","key":"s","as":"integer","op":"eq","value":"x"}'),
    ('unknown key',              '{"type":"trait","key":"s","op":"eq","value":"x","flag":true}'),
    ('unknown field',            '{"type":"attribute","field":"nope","op":"eq","value":"x"}')
  ) AS c(check_name, bad)
 ORDER BY check_name;

SELECT count(*) AS segments_left FROM segments.segments;

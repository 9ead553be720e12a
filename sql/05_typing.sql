-- 05: how values are read.  Traits without "as" are strict (the JSON type of
-- the value; another JSON type is missing), text operators read numbers and
-- booleans by their JSON text, operators that imply a type and "as" read
-- across JSON types; unreadable = missing; 1 = 1.0; attribute values are
-- converted by the column type.
\set VERBOSITY default
\set SHOW_CONTEXT never
\set ON_ERROR_STOP 0

-- n: 1 42, 2 "42", 3 " +1 ", 6 ".5", 7 "1e3", 8 "NaN", 9 1.0, 10 1, 11 "abc", 12 true,
-- 13 [1], 14 {"a":1}, 15 "Infinity", 16 1000; missing elsewhere.
-- as number: JSON numbers and numeric literals in strings (spaces, +1, .5, 1e3), not NaN/Infinity.
SELECT t('{"type":"trait","key":"n","as":"number","op":"eq","value":1}') AS num_1;            -- {3,9,10}
SELECT t('{"type":"trait","key":"n","as":"number","op":"eq","value":1.0}') AS num_1_0;        -- {3,9,10}
SELECT t('{"type":"trait","key":"n","as":"number","op":"eq","value":1000}') AS num_1000;      -- {7,16}
SELECT t('{"type":"trait","key":"n","as":"number","op":"eq","value":0.5}') AS num_half;       -- {6}
SELECT t('{"type":"trait","key":"n","as":"number","op":"eq","value":42}') AS num_42;          -- {1,2}
SELECT t('{"type":"trait","key":"n","as":"number","op":"gt","value":0}') AS num_positive;     -- {1,2,3,6,7,9,10,16}: not NaN, not Infinity
SELECT excluded(t('{"type":"trait","key":"n","as":"number","op":"neq","value":1}')) AS num_neq_excludes; -- {3,9,10}
-- Without as, the JSON type of the value decides and reading is strict, as
-- jsonb's own = is: a trait of another JSON type is missing for eq, in,
-- ordering and between (so neq and not_in are true there).
SELECT t('{"type":"trait","key":"n","op":"eq","value":42}') AS strict_number;                -- {1}: not the string "42" of 2
SELECT t('{"type":"trait","key":"n","op":"eq","value":1}') AS strict_number_1;               -- {9,10}: 1.0 = 1
SELECT t('{"type":"trait","key":"n","op":"gte","value":1000}') AS strict_number_gte;         -- {16}: not "1e3" of 7
SELECT t('{"type":"trait","key":"n","op":"gt","value":0}') AS strict_number_gt;              -- {1,9,10,16}: numbers only
SELECT t('{"type":"trait","key":"n","op":"between","value":[0, 50]}') AS strict_number_between; -- {1,9,10}
SELECT t('{"type":"trait","key":"n","op":"in","value":[1, 0.5]}') AS strict_number_in;       -- {9,10}: not " +1 " or ".5"
SELECT excluded(t('{"type":"trait","key":"n","op":"neq","value":42}')) AS strict_number_neq_excludes;       -- {1}: "42" of 2 is not 42
SELECT excluded(t('{"type":"trait","key":"n","op":"not_in","value":[42, 1]}')) AS strict_number_not_in_excludes; -- {1,9,10}
SELECT t('{"type":"trait","key":"n","op":"eq","value":"42"}') AS strict_text;                -- {2}: not the number 42 of 1
SELECT t('{"type":"trait","key":"n","op":"eq","value":"1"}') AS strict_text_1;               -- {}: the numbers 1 and 1.0 are not text
SELECT t('{"type":"trait","key":"n","op":"eq","value":"true"}') AS strict_text_true;         -- {}: the boolean true of 12 is not text
SELECT t('{"type":"trait","key":"n","op":"in","value":["42", "abc"]}') AS strict_text_in;    -- {2,11}
SELECT t('{"type":"trait","key":"n","op":"gt","value":""}') AS strict_text_gt;               -- {2,3,6,7,8,11,15}: strings only
SELECT t('{"type":"trait","key":"n","op":"between","value":["+", "9"]}') AS strict_text_between; -- {2,6,7}: by code point " +1 " < "+" < ".5", "1e3", "42" < "9" < "NaN"
SELECT t('{"type":"trait","key":"n","op":"eq","value":"42","case_sensitive":false}') AS strict_text_ci; -- {2}
SELECT excluded(t('{"type":"trait","key":"n","op":"neq","value":"42"}')) AS strict_text_neq_excludes;      -- {2}
SELECT t('{"type":"trait","key":"score","op":"eq","value":"1000"}') AS strict_text_not_number;  -- {}: 1e3 of 13 is a number
SELECT t('{"type":"trait","key":"company","op":"eq","value":"big"}') AS text_vs_object;      -- {7}: objects are never equal to text
SELECT t('{"type":"trait","key":"ip","op":"gt","value":"10.0.0.1"}') AS ip_as_text_gt;      -- {2,3,6,7,9,11}: strings by code point; 10's number is missing
-- With as, a trait is read across JSON types ("What as accepts").
SELECT t('{"type":"trait","key":"n","as":"number","op":"eq","value":42}') AS as_number_42;   -- {1,2}
SELECT t('{"type":"trait","key":"n","as":"text","op":"eq","value":"1"}') AS as_text_1;       -- {10}: 1.0 reads "1.0"
SELECT t('{"type":"trait","key":"n","as":"text","op":"eq","value":"1.0"}') AS as_text_1_0;   -- {9}
SELECT t('{"type":"trait","key":"n","as":"text","op":"eq","value":"1000"}') AS as_text_1000; -- {16}: "1e3" is a different string
SELECT t('{"type":"trait","key":"n","as":"text","op":"eq","value":"true"}') AS as_text_true; -- {12}
SELECT t('{"type":"trait","key":"score","as":"text","op":"eq","value":"1000"}') AS as_text_jsonb_rendering; -- {13}: 1e3 renders as 1000
SELECT t('{"type":"trait","key":"n","as":"text","op":"eq","value":"42"}') AS as_text_42;     -- {1,2}
SELECT t('{"type":"trait","key":"n","as":"text","op":"is_set"}') AS as_text_set;             -- {1,2,3,6,7,8,9,10,11,12,15,16}: not [1], not {"a":1}
SELECT t('{"type":"trait","key":"arr","as":"text","op":"eq","value":"x"}') AS as_text_array; -- {6}

-- Strict equality is jsonb's own: for every key and value below, eq matches
-- exactly the contacts whose trait = the value as jsonb, neq the others
-- (missing traits included), and numbers order as jsonb numbers do.
CREATE TEMP TABLE strict_cases AS
SELECT k, v FROM unnest(ARRAY['n','b','s','score','plan_t','ip','ver','k','plain']) AS k,
       unnest(ARRAY['42','"42"','1','1.0','"1"','true','"true"','"TRUE"','false','"false"',
                    '1000','"1000"','"hello world"','""','10','"10.0.0.1"','"1.0.0"','"Gold"','0','-7']::jsonb[]) AS v;
SELECT count(*) AS strict_cases,
       count(*) FILTER (WHERE t(jsonb_build_object('type','trait','key',k,'op','eq','value',v))
                        IS DISTINCT FROM (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM contacts
                                           WHERE custom_data -> k = v)) AS eq_mismatches,
       count(*) FILTER (WHERE t(jsonb_build_object('type','trait','key',k,'op','neq','value',v))
                        IS DISTINCT FROM (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM contacts
                                           WHERE (custom_data -> k = v) IS NOT TRUE)) AS neq_mismatches,
       count(*) FILTER (WHERE jsonb_typeof(v) = 'number' AND
                        t(jsonb_build_object('type','trait','key',k,'op','gte','value',v))
                        IS DISTINCT FROM (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM contacts
                                           WHERE jsonb_typeof(custom_data -> k) = 'number'
                                             AND custom_data -> k >= v)) AS gte_mismatches
  FROM strict_cases;                                                         -- 180, 0, 0, 0
-- in / not_in strictly, with both JSON types on the contacts' side.
SELECT t('{"type":"trait","key":"b","op":"in","value":["false"]}') AS strict_in_false_text;  -- {3}: the boolean false of 6 is not "false"
SELECT excluded(t('{"type":"trait","key":"b","op":"not_in","value":["false"]}')) AS strict_not_in_false_text_excludes; -- {3}
SELECT t('{"type":"trait","key":"b","op":"in","value":[false]}') AS strict_in_false;         -- {6}: not the string "false" of 3
SELECT t('{"type":"trait","key":"b","op":"eq","value":"TRUE","case_sensitive":false}') AS strict_ci_not_boolean; -- {2,10,11}: not the boolean true of 1

-- contains on an array compares elements of the value's JSON type (arr: 3 [1,2,3]);
-- on anything else it is a text operator, reading numbers and booleans by their JSON text.
SELECT t('{"type":"trait","key":"arr","op":"contains","value":2}') AS strict_contains_number;    -- {3}
SELECT t('{"type":"trait","key":"arr","op":"contains","value":"2"}') AS strict_contains_text;    -- {}: elements 1, 2, 3 are numbers
SELECT excluded(t('{"type":"trait","key":"arr","op":"not_contains","value":"2"}')) AS strict_not_contains_excludes; -- {}
SELECT t('{"type":"trait","key":"arr","as":"text","op":"contains","value":"2"}') AS as_text_contains; -- {3}: as text reads the elements
SELECT t('{"type":"trait","key":"s","op":"contains","value":23}') AS text_op_number_value;        -- {8}: 123 by its JSON text
SELECT t('{"type":"trait","key":"s","op":"contains","value":"ru"}') AS text_op_boolean;           -- {9}: true by its JSON text
SELECT t('{"type":"trait","key":"n","op":"starts_with","value":"1"}') AS text_op_starts_number;   -- {7,9,10,16}: "1e3", 1.0, 1, 1000
SELECT t('{"type":"trait","key":"n","op":"ends_with","value":"ue"}') AS text_op_ends_boolean;     -- {12}
SELECT t('{"type":"trait","key":"n","op":"regex","value":"^4"}') AS text_op_regex_both;           -- {1,2}: 42 and "42"
SELECT t('{"type":"trait","key":"n","op":"regex","value":"1"}') AS text_op_regex_not_containers;  -- {3,7,9,10,16}: not [1] or {"a":1}
SELECT t('{"type":"trait","key":"company","op":"contains","value":"Acme"}') AS text_op_object;    -- {}: objects are unreadable as text

-- Operators that imply a type read the field as that type without as.
SELECT t('{"type":"trait","key":"score","op":"modulo","value":[2, 1]}') AS implied_number_modulo;  -- {7}: "3" reads as 3
SELECT t('{"type":"trait","key":"n","op":"modulo","value":[7, 0]}') AS implied_number_modulo_n;    -- {1,2}: 42 and "42"
SELECT t('{"type":"trait","key":"ts","op":"before","value":"2024-01-01T00:00:00.000001Z"}') AS implied_timestamp; -- {1,2,3,6,11,13,14}: epoch 1704067200 of 3 too
SELECT t('{"type":"trait","key":"ip","op":"in_cidr","value":"10.0.0.0/8"}') AS implied_inet;        -- {1,8,9}: strings only, not 10's number
SELECT t('{"type":"trait","key":"ip","op":"in_cidr","value":["::/0"]}') AS implied_inet_v6;          -- {2,3}

-- as boolean: JSON booleans and "true"/"false" in any case (b: 1 true, 2 "TRUE",
-- 3 "false", 6 false, 7 "yes", 8 1, 9 null, 10 "True", 11 "tRuE").
SELECT t('{"type":"trait","key":"b","as":"boolean","op":"eq","value":true}') AS bool_true;    -- {1,2,10,11}
SELECT t('{"type":"trait","key":"b","as":"boolean","op":"eq","value":false}') AS bool_false;  -- {3,6}
SELECT t('{"type":"trait","key":"b","op":"eq","value":true}') AS strict_boolean;             -- {1}: not "TRUE", "True", "tRuE"
SELECT excluded(t('{"type":"trait","key":"b","op":"neq","value":false}')) AS strict_boolean_neq_excludes; -- {6}: "false" of 3 is not false
SELECT t('{"type":"trait","key":"b","op":"eq","value":"true"}') AS strict_text_not_boolean; -- {}: "TRUE" and "tRuE" differ, true is not text
SELECT t('{"type":"trait","key":"b","as":"boolean","op":"in","value":[true, false]}') AS bool_in; -- {1,2,3,6,10,11}

-- as timestamp: ISO strings (no offset = UTC, date = midnight UTC) and epoch seconds.
-- ts: 1 2024-01-01T00:00:00Z, 2 2024-01-01, 3 1704067200, 6 02:00+02:00, 7 "not a date",
-- 8 2024-13-01, 9 "2024-01-01 00:00:00", 10 1704067200.5, 11 2024-01-01T00:00,
-- 12 +1 µs, 13 -1 µs, 14 01:00+01:00, 15 00:00-05:00, 16 true.
SELECT t('{"type":"trait","key":"ts","as":"timestamp","op":"eq","value":"2024-01-01T00:00:00Z"}') AS ts_eq;     -- {1,2,3,6,11,14}
SELECT t('{"type":"trait","key":"ts","as":"timestamp","op":"eq","value":"2024-01-01"}') AS ts_eq_date;          -- {1,2,3,6,11,14}
SELECT t('{"type":"trait","key":"ts","as":"timestamp","op":"eq","value":"2024-01-01T00:00:00.5Z"}') AS ts_epoch_frac; -- {10}
SELECT t('{"type":"trait","key":"ts","as":"timestamp","op":"is_set"}') AS ts_readable;     -- {1,2,3,6,10,11,12,13,14,15}
SELECT t('{"type":"trait","key":"ts","op":"eq","value":"2024-01-01"}') AS ts_eq_as_text;   -- {2}: without as, text
SELECT t('{"type":"trait","key":"ts","op":"eq","value":1704067200}') AS ts_eq_as_number;   -- {3}: without as, a number
SELECT t('{"type":"trait","key":"ts","as":"timestamp","op":"eq","value":"2024-01-01T05:00:00Z"}') AS ts_eq_offset; -- {15}

-- as semver (strings only).
SELECT t('{"type":"trait","key":"ver","as":"semver","op":"eq","value":"1.0.0"}') AS semver_eq;  -- {1,7}: build metadata ignored
SELECT t('{"type":"trait","key":"ver","op":"eq","value":"1.0.0"}') AS semver_eq_as_text;         -- {1}
SELECT t('{"type":"trait","key":"ver","as":"semver","op":"is_set"}') AS semver_readable;         -- {1,2,3,6,7,8,9,13,14,16}
SELECT excluded(t('{"type":"trait","key":"ver","as":"semver","op":"neq","value":"1.0.0+other"}')) AS semver_neq_excludes; -- {1,7}
SELECT t('{"type":"attribute","field":"app_version","as":"semver","op":"eq","value":"1.2.3"}') AS attr_semver_eq; -- {1,6}
SELECT t('{"type":"attribute","field":"app_version","as":"semver","op":"in","value":["1.2.3-alpha","10.0.0"]}') AS attr_semver_in; -- {3,10}

-- as inet (strings only).
SELECT t('{"type":"trait","key":"ip","as":"inet","op":"eq","value":"0:0:0:0:0:0:0:1"}') AS inet_eq_v6; -- {2}
SELECT t('{"type":"trait","key":"ip","as":"inet","op":"is_set"}') AS inet_readable;            -- {1,2,3,7,8,9}
SELECT t('{"type":"trait","key":"ip","as":"inet","op":"eq","value":"10.0.0.1/32"}') AS inet_eq_host; -- {1}

-- as length: elements of an array, characters (not bytes) of a string.
SELECT t('{"type":"attribute","field":"tags","as":"length","op":"gte","value":3}') AS tags_len_gte3; -- {7,10}
SELECT t('{"type":"attribute","field":"tags","as":"length","op":"eq","value":0}') AS tags_len_0;    -- {2}
SELECT t('{"type":"attribute","field":"tags","as":"length","op":"eq","value":2}') AS tags_len_2;    -- {1,6,8,12,14}
SELECT t('{"type":"attribute","field":"name","as":"length","op":"eq","value":3}') AS name_len_3;    -- {2,6,7,13,14,15,16}
SELECT t('{"type":"attribute","field":"name","as":"length","op":"eq","value":0}') AS name_len_0;    -- {5}
SELECT t('{"type":"attribute","field":"name","as":"length","op":"between","value":[12, 12]}') AS name_len_12; -- {9}
SELECT t('{"type":"trait","key":"arr","as":"length","op":"gte","value":2}') AS arr_len_gte2;       -- {1,3,7}
SELECT t('{"type":"trait","key":"arr","as":"length","op":"eq","value":1}') AS arr_len_1;           -- {6,8}
SELECT t('{"type":"trait","key":"arr","as":"length","op":"eq","value":0}') AS arr_len_0;           -- {2}
SELECT t('{"type":"trait","key":"s","as":"length","op":"eq","value":5}') AS s_len_5;               -- {10,12,13,16}
SELECT t('{"type":"trait","key":"s","as":"length","op":"eq","value":6}') AS s_len_6;               -- {11,15}

-- Attributes: the column's type decides; values go through its input function.
SELECT t('{"type":"attribute","field":"lifetime_value","op":"eq","value":"1e3"}') AS numeric_input;  -- {7,11}
SELECT t('{"type":"attribute","field":"lifetime_value","op":"eq","value":0.50}') AS numeric_scale2; -- {12}
SELECT t('{"type":"attribute","field":"is_active","op":"eq","value":"false"}') AS bool_input;       -- {2,7,9,12,15,17,19,21,23,25,27,29}
SELECT t('{"type":"attribute","field":"seats","op":"gt","value":"99"}') AS int_input;               -- {11}
SELECT t('{"type":"attribute","field":"ip","op":"eq","value":"::ffff:10.0.0.1"}') AS inet_input;    -- {9}
SELECT t('{"type":"attribute","field":"id","op":"in","value":[1, 2, 30]}') AS key_column;         -- {1,2,30}
SELECT t('{"type":"attribute","field":"org_id","op":"eq","value":"globex"}') AS tenant_column;     -- {21..30}
-- as on a text column reads its text as that type.
SELECT t('{"type":"attribute","field":"app_version","as":"number","op":"eq","value":1.2}') AS attr_as_number; -- {9}
SELECT t('{"type":"attribute","field":"plan","as":"text","op":"eq","value":"vip"}') AS attr_as_text; -- {1,10,18,22,26,30}
SELECT t('{"type":"attribute","field":"email","as":"number","op":"is_set"}') AS attr_as_number_unreadable; -- {}

SELECT count(*) AS segments_left FROM segments.segments;

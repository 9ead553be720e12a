-- 05: how values are read: as number / boolean / text / timestamp / semver /
-- inet / length; unreadable = missing; 1 = 1.0; JSON text of numbers;
-- attribute values converted by the column type.
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
-- Without as, a number value makes the trait read as a number.
SELECT t('{"type":"trait","key":"n","op":"eq","value":42}') AS implied_number;               -- {1,2}
SELECT t('{"type":"trait","key":"n","op":"gte","value":1000}') AS implied_number_gte;        -- {7,16}
SELECT t('{"type":"trait","key":"n","op":"in","value":[1, 0.5]}') AS implied_number_in;      -- {3,6,9,10}
-- A string value makes it text: numbers and booleans by their JSON text.
SELECT t('{"type":"trait","key":"n","op":"eq","value":"42"}') AS text_42;                    -- {1,2}
SELECT t('{"type":"trait","key":"n","op":"eq","value":"1"}') AS text_1;                      -- {10}: 1.0 reads "1.0"
SELECT t('{"type":"trait","key":"n","op":"eq","value":"1.0"}') AS text_1_0;                  -- {9}
SELECT t('{"type":"trait","key":"n","op":"eq","value":"1000"}') AS text_1000;                -- {16}: "1e3" is a different string
SELECT t('{"type":"trait","key":"n","op":"eq","value":"true"}') AS text_true;                -- {12}
SELECT t('{"type":"trait","key":"score","op":"eq","value":"1000"}') AS text_jsonb_rendering; -- {13}: 1e3 renders as 1000
SELECT t('{"type":"trait","key":"n","as":"text","op":"eq","value":"42"}') AS as_text_42;     -- {1,2}
SELECT t('{"type":"trait","key":"n","as":"text","op":"is_set"}') AS as_text_set;             -- {1,2,3,6,7,8,9,10,11,12,15,16}: not [1], not {"a":1}
SELECT t('{"type":"trait","key":"arr","as":"text","op":"eq","value":"x"}') AS as_text_array; -- {6}
SELECT t('{"type":"trait","key":"company","op":"eq","value":"big"}') AS text_vs_object;      -- {7}
-- Text comparison without as: an address compared as text.
SELECT t('{"type":"trait","key":"ip","op":"gt","value":"10.0.0.1"}') AS ip_as_text_gt;      -- {2,3,6,7,9,10,11}

-- as boolean: JSON booleans and "true"/"false" in any case (b: 1 true, 2 "TRUE",
-- 3 "false", 6 false, 7 "yes", 8 1, 9 null, 10 "True", 11 "tRuE").
SELECT t('{"type":"trait","key":"b","as":"boolean","op":"eq","value":true}') AS bool_true;    -- {1,2,10,11}
SELECT t('{"type":"trait","key":"b","as":"boolean","op":"eq","value":false}') AS bool_false;  -- {3,6}
SELECT t('{"type":"trait","key":"b","op":"eq","value":true}') AS implied_boolean;            -- {1,2,10,11}
SELECT excluded(t('{"type":"trait","key":"b","op":"neq","value":false}')) AS implied_boolean_neq_excludes; -- {3,6}
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

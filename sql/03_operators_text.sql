-- 03: contains / not_contains (text and arrays), starts_with, ends_with,
-- regex / not_regex (PostgreSQL ARE), case_sensitive false.
\set VERBOSITY default
\set SHOW_CONTEXT never
\set ON_ERROR_STOP 0

-- email: 1 alice@acme.com, 2 bob@acme.com, 3 CAROL@ACME.COM, 4 NULL, 5 '', 6 zoë@acme.com,
-- 7 eve@example.org, 8 frank@Example.ORG, 9 grace@acme.io, 10 heidi+test@acme.com,
-- 11 ivan@acme.com, 12 judy@ACME.com, 13-16 x@acme.com, 17-30 userN@example.com.
SELECT t('{"type":"attribute","field":"email","op":"contains","value":"acme"}') AS contains;     -- {1,2,6,9,10,11,13,14,15,16}
SELECT t('{"type":"attribute","field":"email","op":"contains","value":"ACME","case_sensitive":false}') AS contains_ci; -- {1,2,3,6,9,10,11,12,13,14,15,16}
SELECT excluded(t('{"type":"attribute","field":"email","op":"not_contains","value":"acme"}')) AS not_contains_excludes; -- {1,2,6,9,10,11,13,14,15,16}
SELECT excluded(t('{"type":"attribute","field":"email","op":"not_contains","value":"acme","case_sensitive":false}')) AS not_contains_ci_excludes; -- {1,2,3,6,9,10,11,12,13,14,15,16}
SELECT t('{"type":"attribute","field":"email","op":"contains","value":"+"}') AS contains_plus;   -- {10}
-- LIKE wildcards are plain characters.
SELECT t('{"type":"attribute","field":"email","op":"contains","value":"%"}') AS contains_percent; -- {}
SELECT t('{"type":"attribute","field":"email","op":"contains","value":"_"}') AS contains_underscore; -- {}
SELECT t('{"type":"attribute","field":"email","op":"starts_with","value":"_"}') AS starts_underscore; -- {}
SELECT t('{"type":"attribute","field":"email","op":"ends_with","value":"%"}') AS ends_percent;    -- {}
SELECT t('{"type":"attribute","field":"email","op":"contains","value":"\\"}') AS contains_backslash; -- {}
SELECT t('{"type":"attribute","field":"email","op":"ends_with","value":"@acme.com"}') AS ends_with; -- {1,2,6,10,11,13,14,15,16}
SELECT t('{"type":"attribute","field":"email","op":"ends_with","value":"@acme.com","case_sensitive":false}') AS ends_with_ci; -- {1,2,3,6,10,11,12,13,14,15,16}
SELECT t('{"type":"attribute","field":"email","op":"starts_with","value":"user"}') AS starts_with; -- {17..30}
SELECT t('{"type":"attribute","field":"email","op":"starts_with","value":"FRANK@example","case_sensitive":false}') AS starts_with_ci; -- {8}
SELECT excluded(t('{"type":"attribute","field":"email","op":"starts_with","value":""}')) AS starts_with_empty_excludes; -- {4}
SELECT t('{"type":"attribute","field":"email","op":"starts_with","value":"zoë"}') AS starts_with_unicode; -- {6}
SELECT t('{"type":"attribute","field":"name","op":"ends_with","value":"語"}') AS ends_with_cjk;   -- {16}

-- Array column: contains means "is an element" (tags: 1 {vip,beta}, 2 {}, 3 {beta}, 4 NULL,
-- 5 {""}, 6 {VIP,Beta}, 7 {beta,alpha,gamma}, 8 {alpha,NULL}, 9 {"beta tester"}, 10 {x,y,z,w},
-- 11 {ALPHA}, 12 {a,b}, 13 {gamma}, 14 {beta,beta}, 15 {Beta}, 16 {日本}, 17-30 {plain}).
SELECT t('{"type":"attribute","field":"tags","op":"contains","value":"beta"}') AS tags_contains;  -- {1,3,7,14}
SELECT t('{"type":"attribute","field":"tags","op":"contains","value":"BETA","case_sensitive":false}') AS tags_contains_ci; -- {1,3,6,7,14,15}
SELECT excluded(t('{"type":"attribute","field":"tags","op":"not_contains","value":"beta"}')) AS tags_not_contains_excludes; -- {1,3,7,14}
SELECT excluded(t('{"type":"attribute","field":"tags","op":"not_contains","value":"beta","case_sensitive":false}')) AS tags_not_contains_ci_excludes; -- {1,3,6,7,14,15}
SELECT t('{"type":"attribute","field":"tags","op":"contains","value":""}') AS tags_contains_empty; -- {5}
SELECT t('{"type":"attribute","field":"tags","op":"contains","value":"alpha"}') AS tags_alpha;     -- {7,8}
SELECT t('{"type":"attribute","field":"tags","op":"contains","value":"alpha","case_sensitive":false}') AS tags_alpha_ci; -- {7,8,11}
SELECT t('{"type":"attribute","field":"tags","op":"contains","value":"bet"}') AS tags_no_substring; -- {}
SELECT t('{"type":"attribute","field":"tags","op":"contains","value":"日本"}') AS tags_cjk;        -- {16}

-- Trait arrays (arr: 1 ["x","y"], 2 [], 3 [1,2,3], 6 "x", 7 ["X","Y"], 8 [["x"]], 9 null).
SELECT t('{"type":"trait","key":"arr","op":"contains","value":"x"}') AS arr_contains;             -- {1,6}
SELECT t('{"type":"trait","key":"arr","op":"contains","value":"x","case_sensitive":false}') AS arr_contains_ci; -- {1,6,7}
SELECT t('{"type":"trait","key":"arr","op":"contains","value":2}') AS arr_contains_number;        -- {3}
SELECT excluded(t('{"type":"trait","key":"arr","op":"not_contains","value":"x"}')) AS arr_not_contains_excludes; -- {1,6}

-- Trait text (s: 1 "hello world", 2 "Hello World", 3 "say hello", 6 "", 7 "helloworld",
-- 8 123, 9 true, 10 "HELLO", 11 "Straße", 12 "ÉCOLE", 13 "a.b*c", 15 "xhello", 16 "Hello").
SELECT t('{"type":"trait","key":"s","op":"contains","value":"hello"}') AS s_contains;           -- {1,3,7,15}
SELECT t('{"type":"trait","key":"s","op":"contains","value":"HeLLo","case_sensitive":false}') AS s_contains_ci; -- {1,2,3,7,10,15,16}
SELECT excluded(t('{"type":"trait","key":"s","op":"not_contains","value":"hello"}')) AS s_not_contains_excludes; -- {1,3,7,15}
SELECT t('{"type":"trait","key":"s","op":"starts_with","value":"hello"}') AS s_starts;          -- {1,7}
SELECT t('{"type":"trait","key":"s","op":"starts_with","value":"hello","case_sensitive":false}') AS s_starts_ci; -- {1,2,7,10,16}
SELECT t('{"type":"trait","key":"s","op":"ends_with","value":"world"}') AS s_ends;              -- {1,7}
SELECT t('{"type":"trait","key":"s","op":"ends_with","value":"WORLD","case_sensitive":false}') AS s_ends_ci; -- {1,2,7}
SELECT t('{"type":"trait","key":"s","op":"ends_with","value":"hello","case_sensitive":false}') AS s_ends_hello_ci; -- {3,10,15,16}
-- Non-ASCII text is lowered by the collation (ASCII text may take a byte-wise short cut).
SELECT t('{"type":"trait","key":"s","op":"eq","value":"école","case_sensitive":false}') AS s_eq_ci_accent; -- {12}
SELECT t('{"type":"trait","key":"s","op":"starts_with","value":"éc","case_sensitive":false}') AS s_starts_ci_accent; -- {12}
SELECT t('{"type":"trait","key":"s","op":"contains","value":"STRAß","case_sensitive":false}') AS s_contains_ci_sharp_s; -- {11}
SELECT t('{"type":"trait","key":"s","op":"eq","value":"ECOLE","case_sensitive":false}') AS s_eq_ci_no_accent; -- {}
SELECT t('{"type":"trait","key":"s","op":"contains","value":"."}') AS s_contains_dot;          -- {13}
SELECT t('{"type":"trait","key":"s","op":"contains","value":"b*"}') AS s_contains_star;        -- {13}
SELECT t('{"type":"trait","key":"s","op":"contains","value":"_"}') AS s_contains_underscore;   -- {}
SELECT t('{"type":"trait","key":"s","op":"contains","value":"ß"}') AS s_contains_sharp_s;      -- {11}
-- Numbers and booleans are read by their JSON text.
SELECT t('{"type":"trait","key":"s","op":"contains","value":"12"}') AS s_number_contains;      -- {8}
SELECT t('{"type":"trait","key":"s","op":"ends_with","value":"23"}') AS s_number_ends;         -- {8}
SELECT t('{"type":"trait","key":"s","op":"starts_with","value":"tr"}') AS s_bool_starts;       -- {9}
SELECT t('{"type":"trait","key":"n","op":"starts_with","value":"1."}') AS n_json_text;         -- {9}: 1.0 reads "1.0"
SELECT t('{"type":"trait","key":"score","op":"starts_with","value":"100"}') AS score_jsonb_text; -- {13}: 1e3 reads "1000"
SELECT t('{"type":"trait","key":"s","op":"contains","value":""}') AS s_contains_empty;         -- {1,2,3,6,7,8,9,10,11,12,13,15,16}

-- Regular expressions: PostgreSQL ARE; \y is a word boundary, \b a backspace.
SELECT t('{"type":"trait","key":"s","op":"regex","value":"^hello\\y"}') AS re_word;            -- {1}
SELECT t('{"type":"trait","key":"s","op":"regex","value":"^hello\\y","case_sensitive":false}') AS re_word_ci; -- {1,2,10,16}
SELECT t('{"type":"trait","key":"s","op":"regex","value":"\\bhello"}') AS re_backspace;        -- {}
SELECT t('{"type":"trait","key":"s","op":"regex","value":"\\mhello"}') AS re_word_start;       -- {1,3,7}
SELECT t('{"type":"trait","key":"s","op":"regex","value":"^\\d{3}$"}') AS re_digits;           -- {8}
SELECT t('{"type":"trait","key":"s","op":"regex","value":"^(true|false)$"}') AS re_bool_text;  -- {9}
SELECT t('{"type":"trait","key":"s","op":"regex","value":"(ß|ss)e$"}') AS re_unicode;           -- {11}: Straße
SELECT t('{"type":"trait","key":"s","op":"regex","value":""}') AS re_empty;                    -- {1,2,3,6,7,8,9,10,11,12,13,15,16}
SELECT t('{"type":"trait","key":"s","op":"regex","value":"a\\.b\\*c"}') AS re_escaped;         -- {13}
SELECT excluded(t('{"type":"trait","key":"s","op":"not_regex","value":"^hello"}')) AS not_re_excludes; -- {1,7}
SELECT excluded(t('{"type":"trait","key":"s","op":"not_regex","value":"^hello","case_sensitive":false}')) AS not_re_ci_excludes; -- {1,2,7,10,16}
SELECT t('{"type":"attribute","field":"email","op":"regex","value":"^[a-z]+@acme\\.com$"}') AS re_attr; -- {1,2,11,13,14,15,16}
SELECT t('{"type":"attribute","field":"email","op":"regex","value":"^[a-z]+@acme\\.com$","case_sensitive":false}') AS re_attr_ci; -- {1,2,3,11,12,13,14,15,16}
SELECT excluded(t('{"type":"attribute","field":"email","op":"not_regex","value":"@acme\\."}')) AS not_re_attr_excludes; -- {1,2,6,9,10,11,13,14,15,16}
SELECT t('{"type":"attribute","field":"app_version","op":"regex","value":"^\\d+\\.\\d+\\.\\d+$"}') AS re_versions; -- {1,2,10,17..30}

SELECT count(*) AS segments_left FROM segments.segments;

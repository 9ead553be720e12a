-- 01: eq, neq, in, not_in on attributes (text, numeric, integer, boolean,
-- date, timestamptz, inet) and traits, with case_sensitive false and empty lists.
-- Each query prints the members of a throw-away segment; for negative
-- operators excluded(...) prints the contacts that are NOT members.
\set VERBOSITY default
\set SHOW_CONTEXT never
\set ON_ERROR_STOP 0

-- Attribute, text column.  plan: 1 vip, 4 VIP, 5 '', 11 NULL, 12 Vip; plain rows 18,22,26,30 vip.
SELECT t('{"type":"attribute","field":"plan","op":"eq","value":"vip"}') AS eq_vip;             -- {1,10,18,22,26,30}
SELECT t('{"type":"attribute","field":"plan","op":"eq","value":"VIP","case_sensitive":false}') AS eq_vip_ci; -- {1,4,10,12,18,22,26,30}
SELECT t('{"type":"attribute","field":"plan","op":"eq","value":"VIP","case_sensitive":true}') AS eq_vip_cs; -- {4}
SELECT t('{"type":"attribute","field":"plan","op":"eq","value":""}') AS eq_empty;              -- {5}
SELECT excluded(t('{"type":"attribute","field":"plan","op":"neq","value":"vip"}')) AS neq_vip_excludes; -- {1,10,18,22,26,30}: NULL plan (11) is a member
SELECT excluded(t('{"type":"attribute","field":"plan","op":"neq","value":"vip","case_sensitive":false}')) AS neq_vip_ci_excludes; -- {1,4,10,12,18,22,26,30}
SELECT t('{"type":"attribute","field":"plan","op":"in","value":["vip","pro"]}') AS in_vip_pro; -- {1,6,7,10,13,16,17,18,21,22,25,26,29,30}
SELECT t('{"type":"attribute","field":"plan","op":"in","value":["VIP","Pro"],"case_sensitive":false}') AS in_ci; -- {1,4,6,7,10,12,13,16,17,18,21,22,25,26,29,30}
SELECT t('{"type":"attribute","field":"plan","op":"in","value":[]}') AS in_empty;              -- {}
SELECT excluded(t('{"type":"attribute","field":"plan","op":"not_in","value":[]}')) AS not_in_empty_excludes; -- {} (everyone, NULL plan included)
SELECT excluded(t('{"type":"attribute","field":"plan","op":"not_in","value":["free","trial"]}')) AS not_in_excludes; -- {2,3,8,9,14,15,19,20,23,24,27,28}
SELECT excluded(t('{"type":"attribute","field":"plan","op":"not_in","value":["FREE"],"case_sensitive":false}')) AS not_in_ci_excludes; -- {2,8,14,20,24,28}
SELECT t('{"type":"attribute","field":"country","op":"eq","value":"us","case_sensitive":false}') AS country_us_ci; -- {1,2,8,10,11,18,20,22,24,26,28,30}
SELECT t('{"type":"attribute","field":"email","op":"eq","value":"carol@acme.com","case_sensitive":false}') AS email_ci; -- {3}
SELECT t('{"type":"attribute","field":"email","op":"eq","value":""}') AS email_empty;         -- {5}
SELECT excluded(t('{"type":"attribute","field":"email","op":"neq","value":""}')) AS email_neq_empty_excludes; -- {5}
SELECT t('{"type":"attribute","field":"name","op":"eq","value":"Zoë"}') AS name_unicode;      -- {6}
SELECT t('{"type":"attribute","field":"name","op":"eq","value":"日本語"}') AS name_cjk;        -- {16}
SELECT t('{"type":"attribute","field":"name","op":"in","value":["Éve","Léo","nobody"]}') AS name_in_unicode; -- {7,14}

-- Attribute, numeric column: 1 = 1.0, strings converted by numeric's input function.
SELECT t('{"type":"attribute","field":"lifetime_value","op":"eq","value":10}') AS ltv_10;      -- {8,9}
SELECT t('{"type":"attribute","field":"lifetime_value","op":"eq","value":1000}') AS ltv_1000;  -- {7,11}
SELECT t('{"type":"attribute","field":"lifetime_value","op":"eq","value":"1000"}') AS ltv_1000_str; -- {7,11}
SELECT t('{"type":"attribute","field":"lifetime_value","op":"eq","value":1e3}') AS ltv_1e3;    -- {7,11}
SELECT excluded(t('{"type":"attribute","field":"lifetime_value","op":"neq","value":0}')) AS ltv_neq_0_excludes; -- {2}
SELECT t('{"type":"attribute","field":"lifetime_value","op":"in","value":[0, 0.5, 42]}') AS ltv_in; -- {2,12,14}
-- Attribute, integer column.
SELECT t('{"type":"attribute","field":"seats","op":"eq","value":10}') AS seats_10;           -- {1}
SELECT t('{"type":"attribute","field":"seats","op":"eq","value":"10"}') AS seats_10_str;     -- {1}
SELECT t('{"type":"attribute","field":"seats","op":"in","value":[1,2,3]}') AS seats_in;      -- {2,3,8}
SELECT excluded(t('{"type":"attribute","field":"seats","op":"not_in","value":[1,2,3]}')) AS seats_not_in_excludes; -- {2,3,8}
-- Attribute, boolean column (4 is NULL).
SELECT t('{"type":"attribute","field":"is_active","op":"eq","value":true}') AS active;        -- {1,3,5,6,8,10,11,13,14,16,18,20,22,24,26,28,30}
SELECT t('{"type":"attribute","field":"is_active","op":"eq","value":false}') AS inactive;     -- {2,7,9,12,15,17,19,21,23,25,27,29}
SELECT excluded(t('{"type":"attribute","field":"is_active","op":"neq","value":true}')) AS not_active_excludes; -- {1,3,5,6,8,10,11,13,14,16,18,20,22,24,26,28,30}
SELECT t('{"type":"attribute","field":"is_active","op":"in","value":[false]}') AS in_false;   -- {2,7,9,12,15,17,19,21,23,25,27,29}
-- Attribute, date and timestamptz columns (no offset means UTC).
SELECT t('{"type":"attribute","field":"birthday","op":"eq","value":"2024-02-29"}') AS bday;   -- {10}
SELECT t('{"type":"attribute","field":"birthday","op":"in","value":["1970-01-01","2000-01-01"]}') AS bday_in; -- {5,6}
SELECT t('{"type":"attribute","field":"signup_at","op":"eq","value":"2023-01-15T10:00:00Z"}') AS signup_z; -- {1,5,10}
SELECT t('{"type":"attribute","field":"signup_at","op":"eq","value":"2023-01-15T12:00:00+02:00"}') AS signup_offset; -- {1,5,10}
SELECT t('{"type":"attribute","field":"signup_at","op":"eq","value":"2023-01-15T10:00:00"}') AS signup_no_offset; -- {1,5,10}
-- Attribute, inet column.
SELECT t('{"type":"attribute","field":"ip","op":"eq","value":"10.0.0.5"}') AS ip_eq;           -- {1,12}
SELECT t('{"type":"attribute","field":"ip","op":"eq","value":"10.0.0.0/8"}') AS ip_eq_net;     -- {8}
SELECT t('{"type":"attribute","field":"ip","op":"in","value":["2001:db8::1","fe80::1"]}') AS ip_in; -- {5,13}

-- Traits, strings.  plan_t: 1 Gold, 2 gold, 3 GOLD, 6 silver, 7 "", 8 null, 9 "Gold ", 10 gōld, 11 Silver.
SELECT t('{"type":"trait","key":"plan_t","op":"eq","value":"Gold"}') AS tr_eq;                -- {1}
SELECT t('{"type":"trait","key":"plan_t","op":"eq","value":"gold","case_sensitive":false}') AS tr_eq_ci; -- {1,2,3}
SELECT t('{"type":"trait","key":"plan_t","op":"eq","value":""}') AS tr_eq_empty;              -- {7}
SELECT excluded(t('{"type":"trait","key":"plan_t","op":"neq","value":"Gold"}')) AS tr_neq_excludes; -- {1}
SELECT excluded(t('{"type":"trait","key":"plan_t","op":"neq","value":"GOLD","case_sensitive":false}')) AS tr_neq_ci_excludes; -- {1,2,3}
SELECT t('{"type":"trait","key":"plan_t","op":"in","value":["Gold","silver"]}') AS tr_in;     -- {1,6}
SELECT t('{"type":"trait","key":"plan_t","op":"in","value":["gold","SILVER"],"case_sensitive":false}') AS tr_in_ci; -- {1,2,3,6,11}
SELECT excluded(t('{"type":"trait","key":"plan_t","op":"not_in","value":["Gold","silver"]}')) AS tr_not_in_excludes; -- {1,6}
SELECT excluded(t('{"type":"trait","key":"plan_t","op":"not_in","value":["gold","silver"],"case_sensitive":false}')) AS tr_not_in_ci_excludes; -- {1,2,3,6,11}
SELECT t('{"type":"trait","key":"plan_t","op":"in","value":[]}') AS tr_in_empty;              -- {}
SELECT excluded(t('{"type":"trait","key":"plan_t","op":"not_in","value":[]}')) AS tr_not_in_empty_excludes; -- {}
-- Traits, numbers (score: 1 10, 2 10.0, 6 7.5) and booleans read as boolean.
SELECT t('{"type":"trait","key":"score","op":"eq","value":10}') AS score_10;                  -- {1,2}
SELECT t('{"type":"trait","key":"score","op":"eq","value":10.0}') AS score_10_0;              -- {1,2}
SELECT t('{"type":"trait","key":"score","op":"in","value":[10, 7.5]}') AS score_in_mixed;     -- {1,2,6}
SELECT t('{"type":"trait","key":"k","op":"in","value":[17, 30, 99]}') AS k_in;                -- {17,30}
SELECT t('{"type":"trait","key":"b","op":"eq","value":true,"as":"boolean"}') AS b_true;       -- {1,2,10,11}
SELECT t('{"type":"trait","key":"b","op":"eq","value":false,"as":"boolean"}') AS b_false;     -- {3,6}
SELECT excluded(t('{"type":"trait","key":"b","op":"neq","value":true,"as":"boolean"}')) AS b_neq_true_excludes; -- {1,2,10,11}
-- Traits: nested path, a key containing a dot, a path element containing a dot.
SELECT t('{"type":"trait","path":["company","name"],"op":"eq","value":"Acme"}') AS path_eq;   -- {1}
SELECT t('{"type":"trait","key":"a.b","op":"eq","value":1}') AS dotted_key;                  -- {1}
SELECT t('{"type":"trait","path":["a","b"],"op":"eq","value":1}') AS path_a_b;                -- {2}
SELECT t('{"type":"trait","path":["a.b"],"op":"eq","value":1}') AS path_dotted;               -- {1}
SELECT t('{"type":"trait","path":["company","size"],"op":"eq","value":1000}') AS path_num;    -- {3}

SELECT count(*) AS segments_left FROM segments.segments;

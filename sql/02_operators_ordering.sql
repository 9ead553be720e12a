-- 02: gt, gte, lt, lte, between on numbers, text (by code point),
-- timestamps, dates, semver and inet, on attributes and traits.
\set VERBOSITY default
\set SHOW_CONTEXT never
\set ON_ERROR_STOP 0

-- Numbers (lifetime_value: 1 1500.50, 2 0, 3 99.99, 4 NULL, 5 -5, 6 250, 7 1000,
-- 8 10, 9 10.0, 10 -7.5, 11 1000.00, 12 0.5, 13 333, 14 42, 15 7, 16 8, 17-30 100g).
SELECT t('{"type":"attribute","field":"lifetime_value","op":"gt","value":100}') AS ltv_gt;     -- {1,6,7,11,13,17..30}
SELECT t('{"type":"attribute","field":"lifetime_value","op":"gte","value":1000}') AS ltv_gte;  -- {1,7,11,17..30}
SELECT t('{"type":"attribute","field":"lifetime_value","op":"lt","value":0}') AS ltv_lt;       -- {5,10}
SELECT t('{"type":"attribute","field":"lifetime_value","op":"lte","value":0}') AS ltv_lte;     -- {2,5,10}
SELECT t('{"type":"attribute","field":"lifetime_value","op":"between","value":[0, 10]}') AS ltv_between; -- {2,8,9,12,15,16}
SELECT t('{"type":"attribute","field":"lifetime_value","op":"between","value":[10, 10]}') AS ltv_between_point; -- {8,9}
SELECT t('{"type":"attribute","field":"lifetime_value","op":"between","value":[-7.5, -5]}') AS ltv_between_neg; -- {5,10}
SELECT t('{"type":"attribute","field":"lifetime_value","op":"gt","value":"99.98"}') AS ltv_gt_str; -- {1,3,6,7,11,13,17..30}
-- seats: 1 10, 2 1, 3 3, 4 NULL, 5 0, 6 5, 7 25, 8 2, 9 -3, 10 7, 11 100, 12 -10, 13 4, 14 6, 15 9, 16 12, 17-30 g.
SELECT t('{"type":"attribute","field":"seats","op":"gt","value":5}') AS seats_gt;              -- {1,7,10,11,14,15,16,17..30}
SELECT t('{"type":"attribute","field":"seats","op":"lt","value":0}') AS seats_lt;              -- {9,12}
SELECT t('{"type":"attribute","field":"seats","op":"between","value":[-10, -3]}') AS seats_between; -- {9,12}
SELECT t('{"type":"attribute","field":"seats","op":"lte","value":1}') AS seats_lte;            -- {2,5,9,12}
-- Trait numbers (score: 1 10, 2 10.0, 3 -7, 6 7.5, 7 "3", 8 0, 9 -0.5, 10 2, 11 "x", 13 1000, 14 12).
SELECT t('{"type":"trait","key":"score","op":"gt","value":5}') AS score_gt;                    -- {1,2,6,13,14}
SELECT t('{"type":"trait","key":"score","op":"lt","value":0}') AS score_lt;                    -- {3,9}
SELECT t('{"type":"trait","key":"score","op":"between","value":[-1, 2]}') AS score_between;    -- {8,9,10}
SELECT t('{"type":"trait","key":"score","op":"between","value":[2.5, 3]}') AS score_between_str; -- {}: "3" is a string, not a number
SELECT t('{"type":"trait","key":"score","as":"number","op":"between","value":[2.5, 3]}') AS score_between_as_number; -- {7}: as number reads "3"
SELECT t('{"type":"trait","key":"k","op":"gte","value":29}') AS k_gte;                          -- {29,30}

-- Text by code point (collation "C"): upper case sorts before lower case,
-- non-ASCII after ASCII, and a prefix before its extensions.
-- names: 1 Alice, 2 Bob, 3 Carol, 4 Dave, 5 '', 6 Zoë, 7 Éve, 8 frank, 9 Grace Hopper,
-- 10 HEIDI, 11 NULL, 12 judy, 13 Ken, 14 Léo, 15 Mia, 16 日本語, 17-30 'User g'.
SELECT t('{"type":"attribute","field":"name","op":"gt","value":"Z"}') AS name_gt_z;            -- {6,7,8,12,16}
SELECT t('{"type":"attribute","field":"name","op":"lt","value":"B"}') AS name_lt_b;            -- {1,5}
SELECT t('{"type":"attribute","field":"name","op":"gte","value":"User 29"}') AS name_gte;      -- {6,7,8,12,16,29,30}
SELECT t('{"type":"attribute","field":"name","op":"between","value":["Bob","Dave"]}') AS name_between; -- {2,3,4}
SELECT t('{"type":"attribute","field":"name","op":"lte","value":""}') AS name_lte_empty;       -- {5}
SELECT t('{"type":"attribute","field":"name","op":"gt","value":"Zz"}') AS name_gt_zz;          -- {7,8,12,16}
-- Trait text (plan_t: 1 Gold, 2 gold, 3 GOLD, 6 silver, 7 "", 8 null, 9 "Gold ", 10 gōld, 11 Silver).
SELECT t('{"type":"trait","key":"plan_t","op":"gt","value":"Gold"}') AS plan_t_gt;             -- {2,6,9,10,11}
SELECT t('{"type":"trait","key":"plan_t","op":"lt","value":"Gold"}') AS plan_t_lt;             -- {3,7}
SELECT t('{"type":"trait","key":"plan_t","op":"between","value":["GOLD","Gold "]}') AS plan_t_between; -- {1,3,9}

-- Timestamps (signup_at: 1 and 5 2023-01-15 10:00 UTC, 10 12:00+02 = 10:00 UTC,
-- 7 10:00:01, 9 09:59:59.999999, 2 2023-06-01, 3 2024-02-29, 6 2022-12-31 23:59:59,
-- 8 2021-07-04, 11 2025-01-01, 12 2019-03-10, 13-16 2020-06-15, 17-30 2020-01-01..14).
SELECT t('{"type":"attribute","field":"signup_at","op":"gt","value":"2023-01-15T10:00:00Z"}') AS signup_gt;    -- {2,3,7,11}
SELECT t('{"type":"attribute","field":"signup_at","op":"gte","value":"2023-01-15T10:00:00Z"}') AS signup_gte;  -- {1,2,3,5,7,10,11}
SELECT t('{"type":"attribute","field":"signup_at","op":"lt","value":"2020-06-15"}') AS signup_lt;              -- {12,17..30}
SELECT t('{"type":"attribute","field":"signup_at","op":"lte","value":"2020-06-15"}') AS signup_lte;            -- {12,13,14,15,16,17..30}
SELECT t('{"type":"attribute","field":"signup_at","op":"between","value":["2023-01-15T09:59:59.999999Z","2023-01-15T10:00:00Z"]}') AS signup_between; -- {1,5,9,10}
SELECT t('{"type":"attribute","field":"signup_at","op":"between","value":["2023-01-15T11:00+01:00","2023-01-15T10:00:00.5"]}') AS signup_between_mixed; -- {1,5,10}
-- Dates (birthday: 5 2000-01-01, 8 2001-02-03, 10 2024-02-29, 7 1999-12-31).
SELECT t('{"type":"attribute","field":"birthday","op":"gt","value":"2000-01-01"}') AS bday_gt;   -- {8,10}
SELECT t('{"type":"attribute","field":"birthday","op":"gte","value":"2000-01-01"}') AS bday_gte; -- {5,8,10}
SELECT t('{"type":"attribute","field":"birthday","op":"between","value":["1999-12-31","2000-01-01"]}') AS bday_between; -- {5,7}
-- Trait timestamps: strings in the ISO profile and epoch numbers (see 10_time for more).
SELECT t('{"type":"trait","key":"ts","op":"gt","value":"2024-01-01T00:00:00Z","as":"timestamp"}') AS ts_gt; -- {10,12,15}
-- Without as, a string value makes the comparison textual (type = JSON type of value).
SELECT t('{"type":"trait","key":"ts","op":"gt","value":"2024-01-01T00:00:00Z"}') AS ts_gt_as_text; -- {6,7,8,14}: strings only (16 is true)
SELECT t('{"type":"trait","key":"ts","op":"lt","value":"2024-01-01T00:00:00Z","as":"timestamp"}') AS ts_lt; -- {13}

-- Semver on a text column with as: semver (app_version: 3 1.2.3-alpha < 13 -alpha.2 <
-- 12 -alpha.10 < 14 -alpha.beta < 5 -beta.2 < 15 -rc.1 < 1 1.2.3 = 6 1.2.3+build.5 <
-- 2 1.10.0 < 7 2.0.0-rc.1 < 10 10.0.0; 17-30 1.0.0; invalid: 8 v1.2.3, 9 1.2, 11 '', 16 '1.2.3 ').
SELECT t('{"type":"attribute","field":"app_version","as":"semver","op":"gte","value":"1.2.3"}') AS semver_gte; -- {1,2,6,7,10}
SELECT t('{"type":"attribute","field":"app_version","as":"semver","op":"lt","value":"1.2.3"}') AS semver_lt;   -- {3,5,12,13,14,15,17..30}
SELECT t('{"type":"attribute","field":"app_version","as":"semver","op":"gt","value":"1.2.3-alpha"}') AS semver_gt_pre; -- {1,2,5,6,7,10,12,13,14,15}
SELECT t('{"type":"attribute","field":"app_version","as":"semver","op":"between","value":["1.2.3-alpha.2","1.2.3-beta.2"]}') AS semver_between; -- {5,12,13,14}
SELECT t('{"type":"attribute","field":"app_version","as":"semver","op":"lte","value":"1.2.3-alpha.2"}') AS semver_lte_numeric_pre; -- {3,13,17..30}
SELECT t('{"type":"attribute","field":"app_version","as":"semver","op":"gt","value":"2.0.0"}') AS semver_gt_major; -- {10}
SELECT t('{"type":"attribute","field":"app_version","as":"semver","op":"lt","value":"2.0.0"}') AS semver_lt_pre_major; -- {1,2,3,5,6,7,12,13,14,15,17..30}
-- Trait semver (ver: 2 1.0.0-alpha < 3 -alpha.1 < 6 -beta < 14 -beta.2 < 13 -beta.11 <
-- 16 -rc.1 < 1 1.0.0 = 7 1.0.0+build.7 < 9 1.10.0 < 8 2.0.0; unreadable: 10 1.2, 11 v1.0.0, 12 01.0.0, 15 100).
SELECT t('{"type":"trait","key":"ver","as":"semver","op":"gte","value":"1.0.0"}') AS ver_gte;        -- {1,7,8,9}
SELECT t('{"type":"trait","key":"ver","as":"semver","op":"lt","value":"1.0.0"}') AS ver_lt;          -- {2,3,6,13,14,16}
SELECT t('{"type":"trait","key":"ver","as":"semver","op":"lt","value":"1.0.0-beta.11"}') AS ver_lt_beta11; -- {2,3,6,14}
SELECT t('{"type":"trait","key":"ver","as":"semver","op":"gt","value":"1.0.0-alpha"}') AS ver_gt_alpha;   -- {1,3,6,7,8,9,13,14,16}
SELECT t('{"type":"trait","key":"ver","as":"semver","op":"between","value":["1.0.0-beta","1.0.0-rc.1"]}') AS ver_between; -- {6,13,14,16}
SELECT t('{"type":"trait","key":"ver","as":"semver","op":"gt","value":"1.9.0"}') AS ver_gt_minor; -- {8,9}

-- inet order is PostgreSQL's (IPv4 before IPv6; a /8 network before its hosts).
-- ip: 1 10.0.0.5, 2 10.1.2.3, 3 192.168.1.10, 5 2001:db8::1, 6 10.255.255.255, 7 11.0.0.1,
-- 8 10.0.0.0/8, 9 ::ffff:10.0.0.1, 10 192.168.1.255, 11 192.168.2.1, 12 10.0.0.5, 13 fe80::1,
-- 14 10.0.0.6, 15 10.0.1.1, 16 192.168.1.0, 17-30 172.16.0.g.
SELECT t('{"type":"attribute","field":"ip","op":"lt","value":"10.0.0.6"}') AS ip_lt;          -- {1,8,12}
SELECT t('{"type":"attribute","field":"ip","op":"gte","value":"192.168.1.255"}') AS ip_gte;   -- {5,9,10,11,13}
SELECT t('{"type":"attribute","field":"ip","op":"between","value":["10.0.0.0","10.255.255.255"]}') AS ip_between; -- {1,2,6,12,14,15}
-- Trait inet (ip: 1 10.0.0.1, 2 ::1, 3 2001:db8::5, 6 garbage, 7 192.168.0.1, 8 10.0.0.0/8,
-- 9 10.200.0.1, 10 a number, 11 10.0.0.256).
SELECT t('{"type":"trait","key":"ip","as":"inet","op":"gt","value":"10.0.0.1"}') AS trait_ip_gt;  -- {2,3,7,9}
SELECT t('{"type":"trait","key":"ip","as":"inet","op":"lte","value":"10.0.0.1"}') AS trait_ip_lte; -- {1,8}

SELECT count(*) AS segments_left FROM segments.segments;

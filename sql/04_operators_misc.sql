-- 04: is_set / is_not_set, modulo (negative dividend, non-integers), in_cidr
-- (host bits in the network, lists, IPv6).
\set VERBOSITY default
\set SHOW_CONTEXT never
\set ON_ERROR_STOP 0

-- is_set: present and not null; '' and '{}' count as set.
SELECT excluded(t('{"type":"attribute","field":"email","op":"is_set"}')) AS email_set_excludes; -- {4}
SELECT t('{"type":"attribute","field":"email","op":"is_not_set"}') AS email_not_set;             -- {4}
SELECT t('{"type":"attribute","field":"name","op":"is_not_set"}') AS name_not_set;               -- {11}
SELECT excluded(t('{"type":"attribute","field":"tags","op":"is_set"}')) AS tags_set_excludes;    -- {4}: {} and {""} are set
SELECT t('{"type":"attribute","field":"tags","op":"is_not_set"}') AS tags_not_set;               -- {4}
-- The traits column is jsonb, not a type attribute conditions read (see 15_column_types).
SELECT t('{"type":"attribute","field":"custom_data","op":"is_not_set"}') AS traits_col_not_set;  -- error 0A000
-- Traits (plan_t: set on 1,2,3,6,7,9,10,11; null on 8; custom_data NULL on 4, {} on 5).
SELECT t('{"type":"trait","key":"plan_t","op":"is_set"}') AS plan_t_set;                       -- {1,2,3,6,7,9,10,11}
SELECT excluded(t('{"type":"trait","key":"plan_t","op":"is_not_set"}')) AS plan_t_not_set_excludes; -- {1,2,3,6,7,9,10,11}
SELECT t('{"type":"trait","key":"nul","op":"is_set"}') AS json_null_set;                       -- {}
SELECT excluded(t('{"type":"trait","key":"nul","op":"is_not_set"}')) AS json_null_not_set_excludes; -- {}
SELECT t('{"type":"trait","key":"arr","op":"is_set"}') AS arr_set;                              -- {1,2,3,6,7,8}: [] is set, null is not
SELECT t('{"type":"trait","key":"company","op":"is_set"}') AS object_set;                       -- {1,2,3,6,7,8,9}
SELECT t('{"type":"trait","path":["company","size"],"op":"is_set"}') AS path_set;               -- {1,2,3,8,9}
SELECT t('{"type":"trait","path":["company","size","x"],"op":"is_set"}') AS deep_path_set;      -- {9}
SELECT t('{"type":"trait","key":"k","op":"is_set"}') AS plain_rows_set;                         -- {17..30}
-- is_set with as: an unreadable value is not set.
SELECT t('{"type":"trait","key":"n","op":"is_set","as":"number"}') AS n_set_as_number;         -- {1,2,3,6,7,9,10,16}
SELECT excluded(t('{"type":"trait","key":"n","op":"is_not_set","as":"number"}')) AS n_not_set_as_number_excludes; -- {1,2,3,6,7,9,10,16}
SELECT t('{"type":"trait","key":"arr","op":"is_set","as":"text"}') AS arr_set_as_text;         -- {6}: arrays are unreadable as text
SELECT t('{"type":"trait","key":"b","op":"is_set","as":"boolean"}') AS b_set_as_boolean;       -- {1,2,3,6,10,11}
SELECT t('{"type":"attribute","field":"app_version","op":"is_set","as":"semver"}') AS attr_set_as_semver; -- {1,2,3,5,6,7,10,12,13,14,15,17..30}

-- modulo: PostgreSQL mod(), the remainder takes the dividend's sign.
-- seats: 1 10, 2 1, 3 3, 4 NULL, 5 0, 6 5, 7 25, 8 2, 9 -3, 10 7, 11 100, 12 -10, 13 4, 14 6, 15 9, 16 12, 17-30 g.
SELECT t('{"type":"attribute","field":"seats","op":"modulo","value":[5, 0]}') AS seats_mod5;     -- {1,5,6,7,11,12,20,25,30}
SELECT t('{"type":"attribute","field":"seats","op":"modulo","value":[4, 1]}') AS seats_mod4_1;   -- {2,6,7,15,17,21,25,29}
SELECT t('{"type":"attribute","field":"seats","op":"modulo","value":[4, -3]}') AS seats_mod4_neg; -- {9}
SELECT t('{"type":"attribute","field":"seats","op":"modulo","value":[-4, 1]}') AS seats_neg_divisor; -- {2,6,7,15,17,21,25,29}
SELECT t('{"type":"attribute","field":"seats","op":"modulo","value":[4, 3]}') AS seats_mod4_3;   -- {3,10,19,23,27}
-- numeric column with non-integers (lifetime_value: 1 1500.50, 10 -7.5, 12 0.5, 3 99.99).
SELECT t('{"type":"attribute","field":"lifetime_value","op":"modulo","value":[1, 0.5]}') AS ltv_mod_half; -- {1,12}
SELECT t('{"type":"attribute","field":"lifetime_value","op":"modulo","value":[1, -0.5]}') AS ltv_mod_neg_half; -- {10}
SELECT excluded(t('{"type":"attribute","field":"lifetime_value","op":"modulo","value":[0.25, 0]}')) AS ltv_mod_quarter_excludes; -- {3,4}
-- Traits (score: 1 10, 2 10.0, 3 -7, 6 7.5, 7 "3", 8 0, 9 -0.5, 10 2, 11 "x", 13 1000, 14 12).
SELECT t('{"type":"trait","key":"score","op":"modulo","value":[3, 1]}') AS score_mod3_1;        -- {1,2,13}
SELECT t('{"type":"trait","key":"score","op":"modulo","value":[3, -1]}') AS score_mod3_neg;     -- {3}
SELECT t('{"type":"trait","key":"score","op":"modulo","value":[2, 1.5]}') AS score_mod2_frac;   -- {6}
SELECT t('{"type":"trait","key":"score","op":"modulo","value":[3, 0]}') AS score_mod3_0;        -- {7,8,14}
SELECT t('{"type":"trait","key":"score","op":"modulo","value":[0.5, -0.5]}') AS score_mod_never; -- {}
SELECT t('{"type":"trait","key":"k","op":"modulo","value":[10, 0]}') AS k_mod10;                -- {20,30}
SELECT t('{"type":"trait","key":"n","op":"modulo","value":[2, 0]}') AS n_mod2;                  -- {1,2,7,16}: 42, "42", "1e3", 1000

-- in_cidr: inside or equal (<<=); host bits in the network are ignored.
SELECT t('{"type":"attribute","field":"ip","op":"in_cidr","value":"10.0.0.0/8"}') AS cidr;      -- {1,2,6,8,12,14,15}
SELECT t('{"type":"attribute","field":"ip","op":"in_cidr","value":"10.1.1.1/8"}') AS cidr_host_bits; -- {1,2,6,8,12,14,15}
SELECT t('{"type":"attribute","field":"ip","op":"in_cidr","value":"10.0.0.5"}') AS cidr_host; -- {1,12}
SELECT t('{"type":"attribute","field":"ip","op":"in_cidr","value":"10.0.0.0/30"}') AS cidr_30; -- {}
SELECT t('{"type":"attribute","field":"ip","op":"in_cidr","value":"10.0.0.4/30"}') AS cidr_30b; -- {1,12,14}
SELECT t('{"type":"attribute","field":"ip","op":"in_cidr","value":["192.168.1.0/24","2001:db8::/32"]}') AS cidr_list; -- {3,5,10,16}
SELECT t('{"type":"attribute","field":"ip","op":"in_cidr","value":["fe80::/10"]}') AS cidr_v6;  -- {13}
SELECT t('{"type":"attribute","field":"ip","op":"in_cidr","value":"0.0.0.0/0"}') AS cidr_all_v4; -- {1,2,3,6,7,8,10,11,12,14,15,16,17..30}
SELECT t('{"type":"attribute","field":"ip","op":"in_cidr","value":"::/0"}') AS cidr_all_v6;     -- {5,9,13}
SELECT t('{"type":"attribute","field":"ip","op":"in_cidr","value":"172.16.0.16/28","negate":true}') AS cidr_negate; -- {1..16}: NULL (4) and IPv6 included
-- Traits read as inet (ip: 1 10.0.0.1, 2 ::1, 3 2001:db8::5, 6 garbage, 7 192.168.0.1,
-- 8 "10.0.0.0/8", 9 10.200.0.1, 10 a number, 11 10.0.0.256).
SELECT t('{"type":"trait","key":"ip","op":"in_cidr","value":"10.0.0.0/8"}') AS trait_cidr;      -- {1,8,9}
SELECT t('{"type":"trait","key":"ip","op":"in_cidr","value":["::/0"]}') AS trait_cidr_v6;     -- {2,3}
SELECT t('{"type":"trait","key":"ip","op":"in_cidr","value":"0.0.0.0/0"}') AS trait_cidr_v4;   -- {1,7,8,9}
SELECT t('{"type":"trait","key":"ip","op":"in_cidr","value":["10.0.0.1/32","192.168.0.0/16"]}') AS trait_cidr_list; -- {1,7}

SELECT count(*) AS segments_left FROM segments.segments;

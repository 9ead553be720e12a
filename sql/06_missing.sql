-- 06: missing and NULL values.  Every positive operator is false on a missing
-- or NULL field; neq, not_in, not_contains, not_regex, not_within_last and
-- is_not_set are their exact negations (true there); negate inverts the result.
\set VERBOSITY default
\set SHOW_CONTEXT never
\set ON_ERROR_STOP 0

-- A trait key no contact has: positive operators match nobody ...
SELECT t('{"type":"trait","key":"zz","op":"eq","value":"x"}') AS eq; -- {}
SELECT t('{"type":"trait","key":"zz","op":"eq","value":1}') AS eq_number; -- {}
SELECT t('{"type":"trait","key":"zz","op":"in","value":["x"]}') AS in_; -- {}
SELECT t('{"type":"trait","key":"zz","op":"gt","value":0}') AS gt; -- {}
SELECT t('{"type":"trait","key":"zz","op":"lte","value":0}') AS lte; -- {}
SELECT t('{"type":"trait","key":"zz","op":"between","value":[-1000, 1000]}') AS between_; -- {}
SELECT t('{"type":"trait","key":"zz","op":"contains","value":""}') AS contains; -- {}
SELECT t('{"type":"trait","key":"zz","op":"starts_with","value":""}') AS starts_with; -- {}
SELECT t('{"type":"trait","key":"zz","op":"ends_with","value":""}') AS ends_with; -- {}
SELECT t('{"type":"trait","key":"zz","op":"regex","value":""}') AS regex; -- {}
SELECT t('{"type":"trait","key":"zz","op":"is_set"}') AS is_set; -- {}
SELECT t('{"type":"trait","key":"zz","op":"modulo","value":[1, 0]}') AS modulo; -- {}
SELECT t('{"type":"trait","key":"zz","op":"before","value":"9999-01-01"}') AS before; -- {}
SELECT t('{"type":"trait","key":"zz","op":"after","value":"0001-01-01"}') AS after; -- {}
SELECT t('{"type":"trait","key":"zz","op":"within_last","value":"100 years"}') AS within_last; -- {}
SELECT t('{"type":"trait","key":"zz","op":"within_next","value":"100 years"}') AS within_next; -- {}
SELECT t('{"type":"trait","key":"zz","op":"in_cidr","value":["0.0.0.0/0","::/0"]}') AS in_cidr; -- {}
SELECT t('{"type":"trait","key":"zz","as":"length","op":"gte","value":0}') AS length_gte_0; -- {}
SELECT t('{"type":"trait","path":["zz","deeper"],"op":"eq","value":"x"}') AS path_eq; -- {}
-- ... and negative operators match everybody (excluded: nobody).
SELECT excluded(t('{"type":"trait","key":"zz","op":"neq","value":"x"}')) AS neq_excludes; -- {}
SELECT excluded(t('{"type":"trait","key":"zz","op":"not_in","value":["x"]}')) AS not_in_excludes; -- {}
SELECT excluded(t('{"type":"trait","key":"zz","op":"not_contains","value":""}')) AS not_contains_excludes; -- {}
SELECT excluded(t('{"type":"trait","key":"zz","op":"not_regex","value":""}')) AS not_regex_excludes; -- {}
SELECT excluded(t('{"type":"trait","key":"zz","op":"is_not_set"}')) AS is_not_set_excludes; -- {}
SELECT excluded(t('{"type":"trait","key":"zz","op":"not_within_last","value":"100 years"}')) AS not_within_last_excludes; -- {}
-- negate inverts: a negated positive matches everybody, a negated negative nobody.
SELECT excluded(t('{"type":"trait","key":"zz","op":"eq","value":"x","negate":true}')) AS negated_eq_excludes; -- {}
SELECT excluded(t('{"type":"trait","key":"zz","op":"gt","value":0,"negate":true}')) AS negated_gt_excludes; -- {}
SELECT t('{"type":"trait","key":"zz","op":"neq","value":"x","negate":true}') AS negated_neq; -- {}
SELECT t('{"type":"trait","key":"zz","op":"is_not_set","negate":true}') AS negated_is_not_set; -- {}

-- SQL NULL in attribute columns (contact 4 has NULL everywhere but name and plan;
-- 3 has a NULL birthday; 11 a NULL name and plan).
SELECT excluded(t('{"type":"attribute","field":"seats","op":"gt","value":-1000}')) AS null_gt_excludes;          -- {4}
SELECT excluded(t('{"type":"attribute","field":"seats","op":"lt","value":-1000,"negate":true}')) AS null_negated_lt_excludes; -- {}
SELECT excluded(t('{"type":"attribute","field":"seats","op":"neq","value":0}')) AS null_neq_excludes;            -- {5}
SELECT excluded(t('{"type":"attribute","field":"seats","op":"not_in","value":[0]}')) AS null_not_in_excludes;    -- {5}
SELECT excluded(t('{"type":"attribute","field":"seats","op":"modulo","value":[1, 0]}')) AS null_modulo_excludes; -- {4}
SELECT excluded(t('{"type":"attribute","field":"seats","op":"between","value":[-1000, 1000]}')) AS null_between_excludes; -- {4}
SELECT excluded(t('{"type":"attribute","field":"ip","op":"in_cidr","value":["0.0.0.0/0","::/0"]}')) AS null_cidr_excludes; -- {4}
SELECT excluded(t('{"type":"attribute","field":"email","op":"contains","value":""}')) AS null_contains_excludes; -- {4}
SELECT t('{"type":"attribute","field":"email","op":"not_contains","value":""}') AS null_not_contains;            -- {4}
SELECT excluded(t('{"type":"attribute","field":"email","op":"regex","value":""}')) AS null_regex_excludes;       -- {4}
SELECT t('{"type":"attribute","field":"email","op":"not_regex","value":""}') AS null_not_regex;                  -- {4}
SELECT excluded(t('{"type":"attribute","field":"email","op":"ends_with","value":""}')) AS null_ends_with_excludes; -- {4}
SELECT excluded(t('{"type":"attribute","field":"last_seen_at","op":"within_last","value":"1000 days"}')) AS null_within_last_excludes; -- {4}
SELECT t('{"type":"attribute","field":"last_seen_at","op":"not_within_last","value":"1000 days"}') AS null_not_within_last; -- {4}
SELECT excluded(t('{"type":"attribute","field":"birthday","op":"before","value":"3000-01-01"}')) AS null_before_excludes; -- {3,4}
SELECT excluded(t('{"type":"attribute","field":"birthday","op":"after","value":"1000-01-01"}')) AS null_after_excludes;   -- {3,4}
SELECT excluded(t('{"type":"attribute","field":"tags","op":"not_contains","value":"nope"}')) AS null_array_not_contains_excludes; -- {}
SELECT t('{"type":"attribute","field":"tags","op":"contains","value":"beta","negate":true}') = excluded(ARRAY[1,3,7,14]) AS negate_contains; -- t
SELECT excluded(t('{"type":"attribute","field":"is_active","op":"eq","value":false,"negate":true}')) AS negate_eq_false_excludes; -- {2,7,9,12,15,17,19,21,23,25,27,29}
SELECT excluded(t('{"type":"attribute","field":"plan","op":"in","value":["vip"],"negate":true}')) AS negate_in_excludes; -- {1,10,18,22,26,30}
SELECT t('{"type":"attribute","field":"plan","op":"neq","value":"vip","negate":true}') AS negate_neq;             -- {1,10,18,22,26,30}
SELECT t('{"type":"attribute","field":"plan","op":"neq","value":"vip","negate":false}') = excluded(ARRAY[1,10,18,22,26,30]) AS negate_false; -- t
SELECT t('{"type":"attribute","field":"name","op":"is_set","negate":true}') AS negate_is_set;                     -- {11}

-- JSON null counts as missing (plan_t is null on 8; nul is null on 1; company.size null on 6).
SELECT t('{"type":"trait","key":"nul","op":"eq","value":"null"}') AS json_null_eq_text;                         -- {}
SELECT excluded(t('{"type":"trait","key":"nul","op":"neq","value":"null"}')) AS json_null_neq_excludes;         -- {}
SELECT excluded(t('{"type":"trait","key":"plan_t","op":"not_in","value":["Gold"]}')) AS not_in_null_excludes;   -- {1}
SELECT excluded(t('{"type":"trait","path":["company","size"],"op":"lt","value":1000000,"negate":true}')) AS path_negate_excludes; -- {1,3,8}: 2's "50" is a string
-- Unreadable counts as missing: NaN, Infinity, "abc", true, [1], {"a":1} as number.
SELECT excluded(t('{"type":"trait","key":"n","as":"number","op":"not_in","value":[42]}')) AS unreadable_not_in_excludes; -- {1,2}
SELECT t('{"type":"trait","key":"n","as":"number","op":"is_not_set"}') AS unreadable_not_set; -- {4,5,8,11,12,13,14,15,17..30}
-- A path through a non-object is missing (company is a string on 7, size an object on 9).
SELECT t('{"type":"trait","path":["company","size"],"op":"gte","value":0}') AS through_non_object; -- {1,3,8}

SELECT count(*) AS segments_left FROM segments.segments;

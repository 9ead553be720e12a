-- 07: groups and/or/not and their aliases all/any/none; empty groups;
-- nesting; a bare condition; depth 32 ok / 33 rejected; 1,000 nodes ok /
-- 1,001 rejected.
\set VERBOSITY default
\set SHOW_CONTEXT never
\set ON_ERROR_STOP 0

-- FREE {2,8,14,20,24,28}; TRIAL {3,9,15,19,23,27};
-- ACTIVE {1,3,5,6,8,10,11,13,14,16,18,20,22,24,26,28,30}; US {1,8,10,11,18,20,22,24,26,28,30}.
\set FREE '{"type":"attribute","field":"plan","op":"eq","value":"free"}'
\set TRIAL '{"type":"attribute","field":"plan","op":"eq","value":"trial"}'
\set ACTIVE '{"type":"attribute","field":"is_active","op":"eq","value":true}'
\set US '{"type":"attribute","field":"country","op":"eq","value":"US"}'

SELECT t(:'FREE') AS bare_condition;                                                   -- {2,8,14,20,24,28}
SELECT t(format('{"and":[%s,%s]}', :'FREE', :'ACTIVE')::jsonb) AS and_;                -- {8,14,20,24,28}
SELECT t(format('{"all":[%s,%s]}', :'FREE', :'ACTIVE')::jsonb) AS all_;                -- {8,14,20,24,28}
SELECT t(format('{"or":[%s,%s]}', :'FREE', :'TRIAL')::jsonb) AS or_;                   -- {2,3,8,9,14,15,19,20,23,24,27,28}
SELECT t(format('{"any":[%s,%s]}', :'FREE', :'TRIAL')::jsonb) AS any_;                 -- {2,3,8,9,14,15,19,20,23,24,27,28}
SELECT excluded(t(format('{"not":%s}', :'FREE')::jsonb)) AS not_excludes;              -- {2,8,14,20,24,28}
SELECT excluded(t(format('{"none":[%s,%s]}', :'FREE', :'TRIAL')::jsonb)) AS none_excludes; -- {2,3,8,9,14,15,19,20,23,24,27,28}
SELECT t(format('{"not":{"not":%s}}', :'FREE')::jsonb) AS not_not;                     -- {2,8,14,20,24,28}
SELECT excluded(t(format('{"not":{"or":[%s,%s]}}', :'FREE', :'TRIAL')::jsonb)) AS not_or_excludes; -- {2,3,8,9,14,15,19,20,23,24,27,28}
SELECT t(format('{"and":[%s]}', :'FREE')::jsonb) AS and_single;                        -- {2,8,14,20,24,28}
SELECT t(format('{"or":[%s,%s]}', :'FREE', :'FREE')::jsonb) AS or_duplicate;           -- {2,8,14,20,24,28}

-- Empty groups: and matches everyone, or nobody.
SELECT excluded(t('{"and":[]}')) AS empty_and_excludes;                                -- {}
SELECT excluded(t('{"all":[]}')) AS empty_all_excludes;                                -- {}
SELECT t('{"or":[]}') AS empty_or;                                                     -- {}
SELECT t('{"any":[]}') AS empty_any;                                                   -- {}
SELECT t('{"not":{"and":[]}}') AS not_empty_and;                                       -- {}
SELECT excluded(t('{"not":{"or":[]}}')) AS not_empty_or_excludes;                     -- {}
SELECT excluded(t('{"none":[]}')) AS empty_none_excludes;                              -- {}
SELECT t(format('{"and":[%s,{"or":[]}]}', :'FREE')::jsonb) AS and_with_empty_or;       -- {}
SELECT t(format('{"or":[%s,{"and":[]}]}', :'FREE')::jsonb) = excluded('{}') AS or_with_empty_and_is_everyone; -- t

-- Nesting: disjunctive normal form, and groups inside groups, aliases mixed.
SELECT t(format('{"or":[{"and":[%s,%s]},{"and":[%s,{"not":%s}]}]}', :'FREE', :'ACTIVE', :'TRIAL', :'ACTIVE')::jsonb) AS dnf; -- {8,9,14,15,19,20,23,24,27,28}
SELECT t(format('{"and":[%s,{"or":[%s,%s]}]}', :'US', :'FREE', :'TRIAL')::jsonb) AS and_of_or; -- {8,20,24,28}
SELECT t(format('{"all":[{"any":[%s,%s]},%s]}', :'FREE', :'TRIAL', :'US')::jsonb) AS all_of_any; -- {8,20,24,28}
SELECT t(format('{"and":[%s,{"none":[%s]}]}', :'US', :'ACTIVE')::jsonb) AS and_none;   -- {}
SELECT t(format('{"and":[{"not":%s},{"none":[%s,%s]},%s]}', :'US', :'FREE', :'TRIAL', :'ACTIVE')::jsonb) AS mixed; -- {5,6,13,16}

-- Depth: the root is level 1; 32 levels are allowed, 33 are not.
SELECT t((repeat('{"and":[', 31) || :'FREE' || repeat(']}', 31))::jsonb) AS depth_32_condition; -- {2,8,14,20,24,28}
SELECT segments.compile((repeat('{"and":[', 32) || :'FREE' || repeat(']}', 32))::jsonb) IS NOT NULL AS depth_33_condition; -- error at $.and[0] x 32
SELECT excluded(t((repeat('{"and":[', 32) || repeat(']}', 32))::jsonb)) AS depth_32_empty_group_excludes; -- {}
SELECT segments.compile((repeat('{"and":[', 33) || repeat(']}', 33))::jsonb) IS NOT NULL AS depth_33_empty_group; -- error at $.and[0] x 32
SELECT excluded(t((repeat('{"not":', 31) || :'FREE' || repeat('}', 31))::jsonb)) AS depth_32_not_excludes; -- {2,8,14,20,24,28}
SELECT segments.compile((repeat('{"not":', 32) || :'FREE' || repeat('}', 32))::jsonb) IS NOT NULL AS depth_33_not; -- error at $.not x 32
SELECT segments.compile((repeat('{"any":[' || :'US' || ',', 32) || :'FREE' || repeat(']}', 32))::jsonb) IS NOT NULL AS depth_33_alias; -- error at $.any[1] x 31 then .any[0] (first node at level 33)
SELECT segments.compile((repeat('{"and":[', 40) || :'FREE' || repeat(']}', 40))::jsonb) IS NOT NULL AS depth_41; -- error at the node at level 33

-- Nodes: every group and condition counts; 1,000 are allowed, 1,001 are not.
SELECT t(('{"or":[' || (SELECT string_agg(:'FREE', ',') FROM generate_series(1, 999)) || ']}')::jsonb) AS nodes_1000_flat; -- {2,8,14,20,24,28}
SELECT segments.compile(('{"or":[' || (SELECT string_agg(:'FREE', ',') FROM generate_series(1, 1000)) || ']}')::jsonb) IS NOT NULL AS nodes_1001_flat; -- error at $
SELECT t(('{"and":[' || (SELECT string_agg('{"or":[' || (SELECT string_agg(:'FREE', ',') FROM generate_series(1, CASE WHEN g = 10 THEN 98 ELSE 99 END)) || ']}', ',') FROM generate_series(1, 10) AS g) || ']}')::jsonb) AS nodes_1000_grouped; -- {2,8,14,20,24,28}
SELECT segments.compile(('{"and":[' || (SELECT string_agg('{"or":[' || (SELECT string_agg(:'FREE', ',') FROM generate_series(1, 99)) || ']}', ',') FROM generate_series(1, 10)) || ']}')::jsonb) IS NOT NULL AS nodes_1001_grouped; -- error at $
SELECT segments.compile(('{"or":[' || (SELECT string_agg('{"and":[]}', ',') FROM generate_series(1, 1000)) || ']}')::jsonb) IS NOT NULL AS nodes_1001_empty_groups; -- error at $
SELECT segments.compile(('{"or":[' || (SELECT string_agg('{"and":[]}', ',') FROM generate_series(1, 999)) || ']}')::jsonb) IS NOT NULL AS nodes_1000_empty_groups; -- t

SELECT count(*) AS segments_left FROM segments.segments;

-- 23: regex patterns that are sets of literal strings are matched without
-- the regex engine (src/regex_literal.c); every pattern here must give
-- the members of PostgreSQL's own `~` on the same texts, whether it takes
-- that path or not (a dot, a quantifier, an escape like \d, a range, a
-- non-ASCII character, an escaped final $, case-insensitive matching are
-- left to the engine).  Texts include multibyte characters, a newline
-- ("$" and "^" anchor to the ends of the whole text), backslashes, the
-- empty string and NULL.  In a transaction rolled back.
\set VERBOSITY default
\set SHOW_CONTEXT never
\set ON_ERROR_STOP 0
SET client_min_messages = warning;
BEGIN;
SET LOCAL ROLE regress_app;
INSERT INTO contacts (id, org_id, email)
VALUES (9001, 'lit', 'ann@acme.io'), (9002, 'lit', 'bob@globex.com'),
       (9003, 'lit', 'x@initech.net.evil'), (9004, 'lit', 'zoë@acme.io'),
       (9005, 'lit', 'acme.io'), (9006, 'lit', E'line1\nend@acme.io'),
       (9007, 'lit', E'a\\b$c'), (9008, 'lit', 'SKU-15'), (9009, 'lit', 'sku-20'),
       (9010, 'lit', ''), (9011, 'lit', NULL), (9012, 'lit', 'ac'),
       (9013, 'lit', 'bd@x'), (9014, 'lit', 'ëa5'), (9015, 'lit', 'x\'),
       (9016, 'lit', 'ANN@ACME.IO'), (9017, 'lit', '@acme.io@globex.com'),
       (9018, 'lit', 'verb'), (9019, 'lit', 'a-'), (9020, 'lit', 'abc');
RESET ROLE;
CREATE TEMP TABLE lit_case (n int PRIMARY KEY, pattern text, ci bool DEFAULT false);
INSERT INTO lit_case (n, pattern, ci) VALUES
 (1,  '@(acme\.io|globex\.com|initech\.net)$', false),
 (2,  '[05]$', false),
 (3,  '^SKU-', false),
 (4,  '^(a|b)(c|d)', false),
 (5,  'acme', false),
 (6,  '^$', false),
 (7,  '^', false),
 (8,  '$', false),
 (9,  '', false),
 (10, '(x|)@', false),
 (11, '^end', false),
 (12, 'line1$', false),
 (13, E'\\$c$', false),          -- an escaped $ inside, an anchor at the end
 (14, E'x\\\\$', false),         -- a backslash, then the end
 (15, E'b\\$', false),           -- an escaped final $: the engine
 (16, 'a.c', false),             -- a dot: the engine
 (17, 'ë', false),               -- non-ASCII: the engine
 (18, '[a-c]$', false),          -- a range: the engine
 (19, E'\\d$', false),           -- an escape: the engine
 (20, '@acme\.io$', true),       -- case-insensitive: the engine
 (21, '^(ann|bob)@(acme|globex)\.(io|com)$', false),
 (22, '[2][0]$', false),
 (23, '(|@)acme', false),
 (24, '^acme\.io$', false),
 (25, 'SKU-1[5]', false);
SELECT n, pattern, ci,
       t(jsonb_build_object('type', 'attribute', 'field', 'email', 'op', 'regex',
                            'value', pattern, 'case_sensitive', NOT ci)) AS members,
       t(jsonb_build_object('type', 'attribute', 'field', 'email', 'op', 'regex',
                            'value', pattern, 'case_sensitive', NOT ci))
         = (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM contacts
             WHERE CASE WHEN ci THEN email ~* pattern ELSE email ~ pattern END) AS same_as_sql,
       excluded(t(jsonb_build_object('type', 'attribute', 'field', 'email', 'op', 'not_regex',
                                     'value', pattern, 'case_sensitive', NOT ci)))
         = (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM contacts
             WHERE CASE WHEN ci THEN email ~* pattern ELSE email ~ pattern END) AS not_regex_same
  FROM lit_case ORDER BY n;
-- a trait read as text takes the same path
SELECT t('{"type":"trait","key":"s","op":"regex","value":"^hello"}')
     = (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM contacts
         WHERE jsonb_typeof(custom_data->'s') = 'string' AND custom_data->>'s' ~ '^hello') AS trait_same;
ROLLBACK;

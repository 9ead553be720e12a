-- 14: rules cannot read what their author cannot (README: Security model).  Saving or
-- compiling a definition checks that the calling role may SELECT every
-- column it reads (the traits column for trait conditions), by the source
-- table's own table and column GRANTs; otherwise 42501 naming the column.
-- The caller is the role that calls the management function, also through
-- SECURITY DEFINER functions of others; the internal functions that save
-- cannot be called to skip the check.
\set VERBOSITY default
\set SHOW_CONTEXT never
\set ON_ERROR_STOP 0
SET client_min_messages = warning;
SELECT current_user AS superuser \gset

CREATE ROLE regress_trust_author LOGIN;
GRANT segments_write TO regress_trust_author;
GRANT CREATE ON SCHEMA public TO regress_trust_author;
ALTER ROLE regress_trust_author SET segments.tenant = 'acme';
-- id, plan and org_id by column GRANTs; not email, not the traits
GRANT SELECT (id, plan, org_id) ON contacts TO regress_trust_author;
-- a SECURITY DEFINER helper of the superuser: its owner is the caller
CREATE FUNCTION su_create(def jsonb) RETURNS uuid
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
    AS $$ SELECT segments.create_segment('su made', def, tenant => 'acme') $$;

\c - regress_trust_author
SET client_min_messages = warning;
SELECT current_user AS author, segments.compile('{"type":"attribute","field":"plan","op":"eq","value":"vip"}') AS granted_column;
-- a column it may not read: named, with the condition's path and a hint
SELECT segments.compile('{"or":[{"type":"attribute","field":"plan","op":"eq","value":"vip"},{"type":"attribute","field":"email","op":"ends_with","value":"@acme.com"}]}');
-- the traits column, for a trait condition anywhere in the tree
SELECT segments.compile('{"and":[{"not":{"type":"trait","key":"plan_t","op":"eq","value":"Gold"}}]}');
SELECT try($$SELECT segments.compile('{"type":"attribute","field":"last_seen_at","op":"within_last","value":"1 day"}')$$) AS compile_time_column;
SELECT try($$SELECT segments.compile('{"type":"attribute","field":"tags","as":"length","op":"gt","value":1}')$$) AS compile_array_length;
SELECT try($$SELECT segments.compile('{"type":"attribute","field":"email","op":"is_set","negate":true}')$$) AS compile_is_set;
-- conditions that read no column need nothing
SELECT segments.compile('{"type":"percentage","op":"lt","value":10}') AS percentage_reads_no_column;

-- create_segment and update_segment check the same; nothing is saved
SELECT try($$SELECT segments.create_segment('by email', '{"type":"attribute","field":"email","op":"eq","value":"x"}')$$) AS create_unreadable;
SELECT try($$SELECT segments.create_segment('by trait', '{"type":"trait","key":"n","op":"gt","value":1}')$$) AS create_trait;
SELECT count(*) AS saved FROM segments.segments WHERE name IN ('by email', 'by trait');
SELECT segments.create_segment('by plan', '{"type":"attribute","field":"plan","op":"eq","value":"vip"}') IS NOT NULL AS create_readable;
SELECT try($$SELECT segments.update_segment((SELECT id FROM segments.segments WHERE name = 'by plan'),
                                          definition => '{"type":"attribute","field":"email","op":"eq","value":"x"}')$$) AS update_unreadable;
SELECT definition->>'field' AS definition_kept FROM segments.segments WHERE name = 'by plan';
SELECT try($$SELECT segments.update_segment((SELECT id FROM segments.segments WHERE name = 'by plan'), name => 'by plan 2')$$) AS rename_needs_no_check;

-- the internal functions that save are the owner's only
SELECT try($$SELECT segments._create_segment('direct', '{"type":"attribute","field":"email","op":"eq","value":"x"}', NULL, 'acme')$$) AS internal_create;
SELECT try($$SELECT segments._update_segment((SELECT id FROM segments.segments WHERE name = 'by plan 2'), NULL, '{"type":"attribute","field":"email","op":"eq","value":"x"}', NULL)$$) AS internal_update;
SELECT try($$SELECT segments._validate('{"type":"attribute","field":"email","op":"eq","value":"x"}', 'acme', NULL)$$) AS internal_validate;

-- through the superuser's SECURITY DEFINER function, the superuser is the caller
SELECT su_create('{"type":"attribute","field":"email","op":"eq","value":"x"}') IS NOT NULL AS definer_owner_is_caller;

-- the author's own SECURITY DEFINER function, called by a superuser: the author is the caller
CREATE FUNCTION author_compile(def jsonb) RETURNS text
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
    AS $$ SELECT segments.compile(def) $$;
CREATE FUNCTION author_create(def jsonb) RETURNS uuid
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
    AS $$ SELECT segments.create_segment('through author', def) $$;
\c - :superuser
SET client_min_messages = warning;
SELECT try($$SELECT author_compile('{"type":"attribute","field":"email","op":"eq","value":"x"}')$$) AS superuser_through_author_compile;
SELECT try($$SELECT author_create('{"type":"attribute","field":"email","op":"eq","value":"x"}')$$) AS superuser_through_author_create;

-- a table-level GRANT covers every column, the traits too
GRANT SELECT ON contacts TO regress_trust_author;
\c - regress_trust_author
SET client_min_messages = warning;
SELECT segments.compile('{"type":"trait","key":"n","op":"gt","value":1}') IS NOT NULL AS table_grant_traits;
SELECT try($$SELECT segments.create_segment('by email', '{"type":"attribute","field":"email","op":"eq","value":"x"}')$$) AS table_grant_create;

\c - :superuser
SET client_min_messages = warning;
SELECT segments.drop_segment(id) FROM segments.segments WHERE name IN ('by plan 2', 'by email', 'su made');
DROP FUNCTION su_create(jsonb), author_compile(jsonb), author_create(jsonb);
REVOKE ALL ON contacts FROM regress_trust_author;
REVOKE segments_write FROM regress_trust_author;
REVOKE CREATE ON SCHEMA public FROM regress_trust_author;
DROP ROLE regress_trust_author;
SELECT count(*) AS segments_left FROM segments.segments;

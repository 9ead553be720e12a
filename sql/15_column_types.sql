-- 15: attribute conditions read columns of built-in types only (README: Security model):
-- text, varchar, char, citext (recognised by its extension, not by its
-- name), the integer, numeric, float, boolean, date/time, uuid, inet and
-- cidr types and arrays of them.  Any other column type is refused when a
-- definition is compiled or saved (SQLSTATE 0A000, naming the column): a
-- domain's CHECK or a composite's input would otherwise run as the
-- extension's owner.  The columns are added for this file and dropped at
-- its end; definitions are written by a login role that is not a superuser.
\set VERBOSITY default
\set SHOW_CONTEXT never
\set ON_ERROR_STOP 0

CREATE EXTENSION citext;
CREATE SCHEMA lookalike;
CREATE TYPE lookalike.citext AS ENUM ('a', 'b');      -- named citext, an enum
CREATE SCHEMA lookalike2;
CREATE DOMAIN lookalike2.citext AS text;              -- named citext, a domain
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE DOMAIN textlist AS text[];
-- A function that records every call: if a type's input ever ran it while a
-- definition is checked, side_effects would show it.
CREATE TABLE side_effects (what text, by_user name DEFAULT current_user);
GRANT INSERT ON side_effects TO PUBLIC;
CREATE FUNCTION record_check(v text) RETURNS boolean LANGUAGE plpgsql AS
$$ BEGIN INSERT INTO public.side_effects (what) VALUES (v); RETURN true; END $$;
CREATE DOMAIN checked_text AS text CHECK (record_check(VALUE));
CREATE TYPE wrapped AS (inner_value checked_text, n integer);

ALTER TABLE contacts
    ADD COLUMN c_varchar varchar(10), ADD COLUMN c_char char(3), ADD COLUMN c_int2 smallint,
    ADD COLUMN c_int8 bigint, ADD COLUMN c_real real, ADD COLUMN c_float8 double precision,
    ADD COLUMN c_time time, ADD COLUMN c_timetz timetz, ADD COLUMN c_timestamp timestamp,
    ADD COLUMN c_interval interval, ADD COLUMN c_uuid uuid, ADD COLUMN c_cidr cidr,
    ADD COLUMN c_int_arr integer[], ADD COLUMN c_uuid_arr uuid[], ADD COLUMN c_citext citext,
    ADD COLUMN c_citext_arr citext[],
    ADD COLUMN c_name name, ADD COLUMN c_money money, ADD COLUMN c_bytea bytea,
    ADD COLUMN c_range int4range, ADD COLUMN c_point point, ADD COLUMN c_mood mood,
    ADD COLUMN c_posint posint, ADD COLUMN c_checked checked_text,
    ADD COLUMN c_checked_arr checked_text[], ADD COLUMN c_textlist textlist,
    ADD COLUMN c_wrapped wrapped, ADD COLUMN c_fake_citext lookalike.citext,
    ADD COLUMN c_fake_citext2 lookalike2.citext;
UPDATE contacts SET c_citext = 'Vip', c_citext_arr = '{Alpha,beta}', c_interval = interval '2 days',
                    c_time = '10:30', c_uuid_arr = '{00000000-0000-0000-0000-00000000000a}',
                    c_int_arr = '{1,2,3}', c_char = 'ab', c_cidr = '10.0.0.0/8'
 WHERE id IN (1, 2);
-- Adding c_checked checked every row's NULL through the domain: start counting now.
SELECT count(*) > 0 AS domain_check_ran_for_add_column FROM side_effects;  -- t
TRUNCATE side_effects;

CREATE ROLE types_writer LOGIN;
GRANT segments_write TO types_writer;
GRANT SELECT ON contacts TO types_writer;
ALTER ROLE types_writer SET segments.tenant = 'acme';
\c - types_writer
SELECT current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser;

-- Every supported type compiles and saves (is_set, and a comparison where the type has one).
SELECT col, try(format('SELECT segments.compile(%L)', jsonb_build_object('type', 'attribute', 'field', col, 'op', 'is_set'))) AS is_set,
       try(format('SELECT segments.compile(%L)', jsonb_build_object('type', 'attribute', 'field', col, 'op', op, 'value', v))) AS compare
  FROM (VALUES ('c_varchar', 'eq', '"x"'::jsonb), ('c_char', 'eq', '"ab"'), ('c_int2', 'gt', '1'),
               ('c_int8', 'in', '[1, 2]'), ('c_real', 'lt', '1.5'), ('c_float8', 'between', '[1, 2]'),
               ('c_time', 'gte', '"10:00"'), ('c_timetz', 'eq', '"10:00+02"'), ('c_timestamp', 'before', '"2024-01-01"'),
               ('c_interval', 'gt', '"1 day"'), ('c_uuid', 'eq', '"00000000-0000-0000-0000-00000000000a"'),
               ('c_cidr', 'in_cidr', '"10.0.0.0/8"'), ('c_int_arr', 'contains', '2'),
               ('c_uuid_arr', 'contains', '"00000000-0000-0000-0000-00000000000a"'),
               ('c_citext', 'eq', '"vip"'), ('c_citext_arr', 'contains', '"beta"'),
               ('seats', 'eq', '1'), ('lifetime_value', 'gt', '1'), ('is_active', 'eq', 'true'),
               ('birthday', 'after', '"2000-01-01"'), ('signup_at', 'before', '"2024-01-01"'),
               ('ip', 'in_cidr', '"10.0.0.0/8"'), ('tags', 'contains', '"x"'), ('email', 'eq', '"x"')) AS c(col, op, v)
 ORDER BY col;
SELECT t('{"type":"attribute","field":"c_citext","op":"eq","value":"Vip"}') AS citext_eq;               -- {1,2}
SELECT t('{"type":"attribute","field":"c_citext_arr","op":"contains","value":"Alpha"}') AS citext_arr;  -- {1,2}
SELECT t('{"type":"attribute","field":"c_interval","op":"gt","value":"1 day"}') AS interval_gt;        -- {1,2}
SELECT t('{"type":"attribute","field":"c_time","op":"between","value":["10:00", "11:00"]}') AS time_between; -- {1,2}
SELECT t('{"type":"attribute","field":"c_int_arr","op":"contains","value":3}') AS int_arr;              -- {1,2}
SELECT t('{"type":"attribute","field":"c_char","op":"eq","value":"ab"}') AS char_padded;                -- {1,2}
-- char(n)'s own = and < ignore trailing spaces, in the definition's values too
-- ('ab'::char(3) = 'ab ' is true); text operators read the column as text.
SELECT t('{"type":"attribute","field":"c_char","op":"eq","value":"ab "}') AS char_eq_trailing;         -- {1,2}
SELECT t('{"type":"attribute","field":"c_char","op":"in","value":["ab  ", "x"]}') AS char_in_trailing; -- {1,2}
SELECT t('{"type":"attribute","field":"c_char","op":"gte","value":"ab "}') AS char_gte_trailing;       -- {1,2}
SELECT t('{"type":"attribute","field":"c_char","op":"neq","value":"AB ","case_sensitive":false}') AS char_neq_ci_trailing; -- {3..20}: acme's contacts but 1, 2
SELECT t('{"type":"attribute","field":"c_char","op":"starts_with","value":"ab "}') AS char_starts_with_space; -- {}
SELECT t('{"type":"attribute","field":"c_citext","as":"length","op":"eq","value":3}') AS citext_length; -- {1,2}
-- A value compared with a cidr column goes through cidr's input function:
-- host bits right of the mask are refused (no cidr value could equal it);
-- in_cidr's networks accept them (10.1.1.1/8 is 10.0.0.0/8).
SELECT t('{"type":"attribute","field":"c_cidr","op":"eq","value":"10.0.0.0/8"}') AS cidr_eq;           -- {1,2}
SELECT t('{"type":"attribute","field":"c_cidr","op":"in_cidr","value":"10.1.1.1/8"}') AS cidr_in_host_bits; -- {1,2}
SELECT segments.compile('{"or":[{"type":"attribute","field":"c_cidr","op":"in","value":["10.0.0.0/8","10.1.1.1/8"]}]}');
SELECT segments.compile('{"type":"attribute","field":"c_cidr","op":"gt","value":"10.1.1.1/8"}');

-- Every other type is refused, whatever the operator, naming the column and the path.
SELECT col, try(format('SELECT segments.compile(%L)', jsonb_build_object('type', 'attribute', 'field', col, 'op', 'is_set'))) AS is_set
  FROM unnest(ARRAY['c_name', 'c_money', 'c_bytea', 'c_range', 'c_point', 'c_mood', 'c_posint', 'c_checked',
                    'c_checked_arr', 'c_textlist', 'c_wrapped', 'c_fake_citext', 'c_fake_citext2', 'custom_data']) AS col
 ORDER BY col;
SELECT segments.compile('{"or":[{"type":"attribute","field":"plan","op":"eq","value":"vip"},{"and":[{"type":"attribute","field":"c_mood","op":"eq","value":"happy"}]}]}');
SELECT segments.compile('{"type":"attribute","field":"c_fake_citext","op":"eq","value":"a","case_sensitive":false}');
SELECT segments.compile('{"type":"attribute","field":"c_checked_arr","op":"contains","value":"x"}');
-- The composite whose field is a domain whose CHECK calls record_check(), and
-- the domain itself: refused by compile, create and update, and the function never ran.
SELECT segments.compile('{"type":"attribute","field":"c_wrapped","op":"eq","value":"(x,1)"}');
SELECT segments.create_segment('Wrapped', '{"type":"attribute","field":"c_wrapped","op":"eq","value":"(x,1)"}');
SELECT segments.create_segment('Checked', '{"type":"attribute","field":"c_checked","op":"in","value":["x", "y"]}');
SELECT segments.create_segment('Plain', '{"type":"attribute","field":"plan","op":"eq","value":"vip"}') AS plain_id \gset
SELECT segments.update_segment(:'plain_id', definition => '{"type":"attribute","field":"c_wrapped","op":"neq","value":"(x,1)"}');
SELECT definition FROM segments.segments WHERE id = :'plain_id';          -- unchanged
SELECT count(*) AS segments_with_unsupported_types FROM segments.segments WHERE name IN ('Wrapped', 'Checked'); -- 0

\c - postgres
SELECT count(*) AS side_effects_while_checking FROM side_effects;        -- 0
-- The function does record when the type's input runs (so 0 above means it never ran).
SELECT '(x,1)'::wrapped IS NOT NULL AS input_ran;
SELECT what, by_user FROM side_effects;                                  -- x, postgres

SELECT segments.drop_segment(:'plain_id');
SELECT count(*) AS segments_left FROM segments.segments;
ALTER TABLE contacts
    DROP COLUMN c_varchar, DROP COLUMN c_char, DROP COLUMN c_int2, DROP COLUMN c_int8, DROP COLUMN c_real,
    DROP COLUMN c_float8, DROP COLUMN c_time, DROP COLUMN c_timetz, DROP COLUMN c_timestamp,
    DROP COLUMN c_interval, DROP COLUMN c_uuid, DROP COLUMN c_cidr, DROP COLUMN c_int_arr,
    DROP COLUMN c_uuid_arr, DROP COLUMN c_citext, DROP COLUMN c_citext_arr, DROP COLUMN c_name,
    DROP COLUMN c_money, DROP COLUMN c_bytea, DROP COLUMN c_range, DROP COLUMN c_point, DROP COLUMN c_mood,
    DROP COLUMN c_posint, DROP COLUMN c_checked, DROP COLUMN c_checked_arr, DROP COLUMN c_textlist,
    DROP COLUMN c_wrapped, DROP COLUMN c_fake_citext, DROP COLUMN c_fake_citext2;
DROP OWNED BY types_writer;
DROP ROLE types_writer;
DROP TYPE wrapped;
DROP DOMAIN checked_text, posint, textlist;
DROP TYPE mood;
DROP FUNCTION record_check(text);
DROP TABLE side_effects;
DROP SCHEMA lookalike, lookalike2 CASCADE;
DROP EXTENSION citext;

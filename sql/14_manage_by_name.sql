-- 14: management by name.  update_segment, drop_segment, refresh and
-- schedule take a segment as a uuid or as text (a name, or an id as text);
-- a name resolves in the session's tenant first, then among global
-- segments.  Untyped literals resolve to the text functions with no "not
-- unique" error; segment_members('Typo') is an error, as a typo should be.
\set VERBOSITY default
\set SHOW_CONTEXT never
\set ON_ERROR_STOP 0

-- The dashboard's login role: segments_write, fixed to tenant acme.
CREATE ROLE byname_dash LOGIN IN ROLE segments_write;
ALTER ROLE byname_dash SET segments.tenant = 'acme';

-- Fixtures, as an administrator: the same name in acme, in globex and
-- globally ("Dup"), and a global name shadowed in acme ("Shadow").
SELECT segments.create_segment('ByName Dup', '{"type":"attribute","field":"plan","op":"eq","value":"vip"}', tenant => 'acme') AS dup_acme \gset
SELECT segments.create_segment('ByName Dup', '{"type":"attribute","field":"plan","op":"eq","value":"vip"}', tenant => 'globex') AS dup_globex \gset
SELECT segments.create_segment('ByName Shadow', '{"and":[]}') AS shadow_global \gset
SELECT segments.create_segment('ByName Shadow', '{"and":[]}', tenant => 'acme') AS shadow_acme \gset
SELECT segments.create_segment('ByName Global', '{"or":[]}') AS global_only \gset

-- The signatures: uuid and text for each, refresh() with no argument only once.
SELECT p.oid::regprocedure AS function, pg_get_function_arguments(p.oid) AS arguments
  FROM pg_proc p
 WHERE p.pronamespace = 'segments'::regnamespace
   AND p.proname IN ('update_segment', 'drop_segment', 'refresh', 'schedule')
 ORDER BY 1::text;

\c - byname_dash
SELECT current_user, current_setting('segments.tenant') AS tenant;

-- schedule, update_segment and refresh by name act on acme's segment.
SELECT segments.schedule('ByName Dup', '1 hour');
SELECT segments.update_segment('ByName Dup', description => 'acme, by name');
SELECT name, tenant, description FROM segments.segments WHERE name = 'ByName Dup';
SELECT segments.refresh('ByName Dup');
SELECT array_agg(m ORDER BY m) AS acme_dup_members FROM segments.segment_members('ByName Dup') AS m;  -- {1,10,18}
SELECT segments.update_segment('ByName Dup', name => 'ByName Dup 2');
SELECT segments.update_segment('ByName Dup 2', name => 'ByName Dup');
-- The id as an untyped literal (text) works too; so does a uuid value.
SELECT segments.schedule(:'dup_acme', '2 hours');
SELECT segments.schedule(:'dup_acme'::uuid, '3 hours');
SELECT segments.refresh(:'dup_acme');
SELECT tenant, schedule FROM segments.status WHERE name = 'ByName Dup';         -- acme, 3 hours
-- refresh() with no argument and refresh(NULL): every visible segment, no ambiguity.
SELECT segments.refresh();
SELECT segments.refresh(NULL);

-- Errors: unknown name (case-sensitive), NULL, another tenant's id given as text.
SELECT segments.drop_segment('byname dup');
SELECT segments.update_segment('No such segment', description => 'x');
SELECT segments.refresh('No such segment');
SELECT segments.schedule('No such segment', '1 hour');
SELECT segments.drop_segment(NULL);
SELECT segments.schedule(NULL::text, '1 hour');
SELECT try(format($$SELECT segments.drop_segment(%L)$$, :'dup_globex')) AS drop_other_tenant_id;
-- Management errors from the functions behind the names still come through.
SELECT segments.schedule('ByName Dup', '-1 hour');
SELECT segments.update_segment('ByName Dup', name => '');
SELECT segments.update_segment('ByName Dup', definition => '{"type":"attribute","field":"plan","op":"equals","value":"vip"}');

-- segment_members: an unknown name is an error (an export of a typo must not
-- be empty by accident); an unknown id gives no rows, as
-- segment_is_member gives false; NULL gives no rows.
SELECT * FROM segments.segment_members('ByName Typo');
SELECT count(*) AS unknown_id_members FROM segments.segment_members('00000000-0000-0000-0000-000000000000'::uuid);
SELECT count(*) AS null_members FROM segments.segment_members(NULL::text);
SELECT segments.segment_is_member(1, 'ByName Typo') AS typo_is_member;           -- f

-- drop_segment by name drops acme's segment only.
SELECT segments.drop_segment('ByName Dup');
SELECT segments.drop_segment('ByName Dup');
SELECT segments.drop_segment('ByName Shadow');

\c - postgres
-- What the dashboard did, seen by the administrator: acme's "Dup" was
-- scheduled, described and dropped; globex's is untouched; acme's "Shadow"
-- went, the global one stayed.
SELECT s.name, s.tenant, s.description, st.schedule FROM segments.status st
  JOIN segments.segments s ON s.id = st.segment_id
 WHERE s.name LIKE 'ByName%' ORDER BY s.name, s.tenant NULLS FIRST;
SELECT :'shadow_global'::uuid IN (SELECT id FROM segments.segments) AS global_shadow_kept,
       :'shadow_acme'::uuid IN (SELECT id FROM segments.segments) AS acme_shadow_dropped;

-- An administrator without a tenant: a global segment wins; a name held by
-- several tenants and no global segment is ambiguous (HINT: the id).
SELECT segments.schedule('ByName Shadow', '4 hours');
SELECT schedule FROM segments.status WHERE segment_id = :'shadow_global';
SELECT segments.create_segment('ByName Dup', '{"or":[]}', tenant => 'initech') AS dup_initech \gset
SELECT segments.drop_segment('ByName Dup');
SELECT segments.drop_segment(:'dup_initech');
-- The only segment of a name, whatever its tenant, resolves.
SELECT segments.drop_segment('ByName Dup');
SELECT count(*) AS dup_left FROM segments.segments WHERE name = 'ByName Dup';

-- A reader may not manage segments by name either.
CREATE ROLE byname_reader LOGIN IN ROLE segments_read;
\c - byname_reader
SELECT segments.drop_segment('ByName Global');
SELECT segments.refresh('ByName Global');
SELECT segments.schedule('ByName Global', '1 hour');
SELECT segments.update_segment('ByName Global', description => 'x');
\c - postgres
SELECT count(*) AS global_kept FROM segments.segments WHERE name = 'ByName Global' AND description IS NULL;

-- Clean up.
SELECT segments.drop_segment('ByName Shadow');
SELECT segments.drop_segment('ByName Global');
DROP ROLE byname_dash, byname_reader;

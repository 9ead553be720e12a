-- pgTAP: every object of the SQL interface (README: SQL reference) exists with the
-- promised signature.  Runs in its own database where the harness has already
-- run CREATE EXTENSION pgtap and CREATE EXTENSION segments.
BEGIN;
SELECT plan(62);

-- A contact source with a bigint key, so the key-typed objects exist.
CREATE TABLE public.tap_contacts (id bigint PRIMARY KEY, org_id text, plan text, custom_data jsonb);
SELECT lives_ok($$SELECT segments.configure(source => 'public.tap_contacts', key_column => 'id',
                                           tenant_column => 'org_id', traits_column => 'custom_data')$$,
                'configure() accepts a bigint-keyed table with tenant and traits columns');

SELECT has_schema('segments');
SELECT has_extension('segments');
SELECT has_role('segments_read');
SELECT has_role('segments_write');
SELECT has_role('segments_admin');

-- Set-up.
SELECT has_function('segments', 'configure', ARRAY['regclass', 'name', 'name', 'name']);
SELECT function_returns('segments', 'configure', ARRAY['regclass', 'name', 'name', 'name'], 'void');

-- Management.
SELECT has_function('segments', 'create_segment', ARRAY['text', 'jsonb', 'text', 'text']);
SELECT function_returns('segments', 'create_segment', ARRAY['text', 'jsonb', 'text', 'text'], 'uuid');
SELECT has_function('segments', 'update_segment', ARRAY['uuid', 'text', 'jsonb', 'text']);
SELECT function_returns('segments', 'update_segment', ARRAY['uuid', 'text', 'jsonb', 'text'], 'void');
SELECT has_function('segments', 'drop_segment', ARRAY['uuid']);
SELECT function_returns('segments', 'drop_segment', ARRAY['uuid'], 'void');
SELECT has_function('segments', 'refresh', ARRAY['uuid']);
SELECT function_returns('segments', 'refresh', ARRAY['uuid'], 'void');
SELECT has_function('segments', 'compile', ARRAY['jsonb']);
SELECT function_returns('segments', 'compile', ARRAY['jsonb'], 'text');
SELECT has_function('segments', 'schedule', ARRAY['uuid', 'interval']);
SELECT function_returns('segments', 'schedule', ARRAY['uuid', 'interval'], 'void');

-- Defaults: the optional arguments may be left out or named.
SELECT lives_ok($$SELECT segments.create_segment('tap one', '{"and":[]}')$$, 'create_segment(name, definition)');
SELECT lives_ok($$SELECT segments.create_segment(name => 'tap two', definition => '{"or":[]}', description => 'd', tenant => 't')$$,
                'create_segment with named arguments');
SELECT lives_ok($$SELECT segments.update_segment((SELECT id FROM segments.segments WHERE name = 'tap one'), description => 'x')$$,
                'update_segment(segment, description => ...)');
SELECT lives_ok($$SELECT segments.refresh()$$, 'refresh() without argument');

-- Reading.
SELECT has_view('segments', 'segments', 'view segments.segments');
SELECT columns_are('segments', 'segments',
                   ARRAY['id', 'tenant', 'name', 'description', 'definition', 'created_at',
                         'updated_at', 'member_count', 'evaluated_at', 'status']);
SELECT col_type_is('segments', 'segments', 'id', 'uuid', 'segments.segments.id is uuid');
SELECT col_type_is('segments', 'segments', 'definition', 'jsonb', 'segments.segments.definition is jsonb');
SELECT col_type_is('segments', 'segments', 'created_at', 'timestamp with time zone', 'segments.segments.created_at is timestamp with time zone');
SELECT col_type_is('segments', 'segments', 'member_count', 'bigint', 'segments.segments.member_count is bigint');
SELECT has_view('segments', 'status', 'view segments.status');
SELECT has_column('segments', 'status', 'state', 'status.state');
SELECT has_column('segments', 'status', 'member_count', 'status.member_count');
SELECT has_column('segments', 'status', 'evaluated_at', 'status.evaluated_at');
SELECT has_column('segments', 'status', 'last_duration', 'status.last_duration');
SELECT has_column('segments', 'status', 'last_error', 'status.last_error');
SELECT has_column('segments', 'status', 'next_refresh', 'status.next_refresh');
SELECT ok(EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = 'segments' AND c.relname = 'membership' AND c.relkind IN ('r', 'v', 'm', 'p')),
          'relation segments.membership exists');
SELECT col_type_is('segments', 'membership', 'segment_id', 'uuid', 'segments.membership.segment_id is uuid');
SELECT col_type_is('segments', 'membership', 'contact_id', 'bigint', 'segments.membership.contact_id is bigint');
SELECT col_type_is('segments', 'membership', 'since', 'timestamp with time zone', 'segments.membership.since is timestamp with time zone');

SELECT has_function('segments', 'contact_segments', ARRAY['bigint']);
SELECT function_returns('segments', 'contact_segments', ARRAY['bigint'], 'setof segments.segments');
SELECT has_function('segments', 'segment_is_member', ARRAY['bigint', 'uuid']);
SELECT function_returns('segments', 'segment_is_member', ARRAY['bigint', 'uuid'], 'boolean');
SELECT has_function('segments', 'segment_is_member', ARRAY['bigint', 'text']);
SELECT function_returns('segments', 'segment_is_member', ARRAY['bigint', 'text'], 'boolean');
SELECT has_function('segments', 'segment_members', ARRAY['uuid']);
SELECT function_returns('segments', 'segment_members', ARRAY['uuid'], 'setof bigint');
SELECT has_function('segments', 'filter_restricted', ARRAY['bigint', 'uuid[]']);
SELECT function_returns('segments', 'filter_restricted', ARRAY['bigint', 'uuid[]'], 'boolean');
SELECT has_function('segments', 'wait', ARRAY['interval']);
SELECT function_returns('segments', 'wait', ARRAY['interval'], 'boolean');

-- Untyped literals and parameters resolve.
SELECT lives_ok($$SELECT segments.segment_is_member('1', 'tap one')$$, 'segment_is_member with untyped literals');
SELECT lives_ok($$SELECT segments.filter_restricted('1', '{}')$$, 'filter_restricted with untyped literals');
SELECT lives_ok($$SELECT * FROM segments.contact_segments('1')$$, 'contact_segments with an untyped literal');
SELECT lives_ok($$PREPARE tap_is_member AS SELECT segments.segment_is_member($1, $2)$$, 'segment_is_member with untyped parameters');
SELECT lives_ok($$PREPARE tap_filter AS SELECT segments.filter_restricted($1, $2)$$, 'filter_restricted with untyped parameters');
SELECT is(segments.filter_restricted(NULL::bigint, NULL), true, 'filter_restricted(NULL, NULL) is true');
SELECT is(segments.wait(), true, 'wait() (default timeout) is true when nothing committed before it is pending');

-- Settings.
SELECT is((SELECT context FROM pg_settings WHERE name = 'segments.tenant'), 'superuser',
          'segments.tenant may be changed only by superusers and roles granted SET on it');
SELECT is((SELECT reset_val FROM pg_settings WHERE name = 'segments.tenant'), '', 'segments.tenant is empty by default');

SELECT * FROM finish();
ROLLBACK;

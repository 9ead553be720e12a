-- pgTAP: roles, privileges, tenant isolation and read-only transactions
-- (README: SQL reference, Security model).  Self-contained: configures its own source.
BEGIN;
SELECT plan(73);

CREATE TABLE public.tap_priv_contacts (id bigint PRIMARY KEY, org_id text, plan text, custom_data jsonb);
-- a definition may read only what its author may SELECT
GRANT SELECT ON public.tap_priv_contacts TO segments_write;
INSERT INTO public.tap_priv_contacts VALUES
  (1, 't1', 'vip', '{}'), (2, 't1', 'free', '{}'), (3, 't2', 'vip', '{}'), (4, 't2', 'free', NULL);
SELECT segments.configure(source => 'public.tap_priv_contacts', key_column => 'id',
                          tenant_column => 'org_id', traits_column => 'custom_data');
CREATE TEMP TABLE ids (name text PRIMARY KEY, id uuid);
GRANT SELECT, INSERT ON ids TO PUBLIC;
INSERT INTO ids VALUES
  ('t1', segments.create_segment('VIP', '{"type":"attribute","field":"plan","op":"eq","value":"vip"}', tenant => 't1')),
  ('t2', segments.create_segment('VIP', '{"type":"attribute","field":"plan","op":"eq","value":"vip"}', tenant => 't2'));
SELECT segments.refresh();

SELECT has_role('segments_read');
SELECT has_role('segments_write');
SELECT has_role('segments_admin');
SELECT ok(pg_has_role('segments_write', 'segments_read', 'MEMBER'), 'segments_write is a member of segments_read');
SELECT ok(pg_has_role('segments_admin', 'segments_write', 'MEMBER'), 'segments_admin is a member of segments_write');

-- segments_read: the reading interface only, for a session of tenant t1
-- (set by the superuser, as ALTER ROLE ... SET would).
SET segments.tenant = 't1';
SET ROLE segments_read;
SELECT lives_ok($$SELECT * FROM segments.segments$$, 'read: select segments.segments');
SELECT lives_ok($$SELECT * FROM segments.status$$, 'read: select segments.status');
SELECT lives_ok($$SELECT * FROM segments.membership$$, 'read: select segments.membership');
SELECT is(segments.segment_is_member(1, (SELECT id FROM ids WHERE name = 't1')), true, 'read: segment_is_member by id');
SELECT is(segments.segment_is_member(1, 'VIP'), true, 'read: segment_is_member by name');
SELECT is(segments.segment_is_member('3', 'VIP'), false, 'read: segment_is_member by name, other tenant''s contact');
SELECT is(segments.filter_restricted(1, ARRAY[(SELECT id FROM ids WHERE name = 't1')]), true, 'read: filter_restricted');
SELECT is(segments.filter_restricted(2, ARRAY[(SELECT id FROM ids WHERE name = 't1')]), false, 'read: filter_restricted, not a member');
SELECT is((SELECT array_agg(name) FROM segments.contact_segments(1)), ARRAY['VIP'], 'read: contact_segments');
SELECT is((SELECT array_agg(m) FROM segments.segment_members((SELECT id FROM ids WHERE name = 't1')) AS m), ARRAY[1::bigint], 'read: segment_members');
SELECT is(segments.wait('1 second'), true, 'read: wait() is true at once when nothing is queued or pending');
SELECT throws_ok($$SELECT segments.create_segment('x', '{"and":[]}')$$, '42501', NULL, 'read: create_segment is denied');
SELECT throws_ok($$SELECT segments.update_segment((SELECT id FROM ids WHERE name = 't1'), name => 'x')$$, '42501', NULL, 'read: update_segment is denied');
SELECT throws_ok($$SELECT segments.drop_segment((SELECT id FROM ids WHERE name = 't1'))$$, '42501', NULL, 'read: drop_segment is denied');
SELECT throws_ok($$SELECT segments.refresh()$$, '42501', NULL, 'read: refresh is denied');
SELECT throws_ok($$SELECT segments.refresh((SELECT id FROM ids WHERE name = 't1'))$$, '42501', NULL, 'read: refresh(segment) is denied');
SELECT throws_ok($$SELECT segments.compile('{"and":[]}')$$, '42501', NULL, 'read: compile is denied');
SELECT throws_ok($$SELECT segments.schedule((SELECT id FROM ids WHERE name = 't1'), '1 hour')$$, '42501', NULL, 'read: schedule is denied');
SELECT throws_ok($$SELECT segments.configure('public.tap_priv_contacts', 'id')$$, '42501', NULL, 'read: configure is denied');
RESET ROLE;

-- segments_write: manages segments too, but does not configure.
SET ROLE segments_write;
SELECT lives_ok($$SELECT * FROM segments.segments$$, 'write: select segments.segments');
SELECT is(segments.segment_is_member(1, 'VIP'), true, 'write: segment_is_member');
SELECT lives_ok($$INSERT INTO ids VALUES ('w', segments.create_segment('W', '{"type":"attribute","field":"plan","op":"eq","value":"free"}', tenant => 't1'))$$,
                'write: create_segment');
SELECT lives_ok($$SELECT segments.update_segment((SELECT id FROM ids WHERE name = 'w'), description => 'free ones')$$, 'write: update_segment');
SELECT lives_ok($$SELECT segments.compile('{"and":[]}')$$, 'write: compile');
SELECT lives_ok($$SELECT segments.refresh((SELECT id FROM ids WHERE name = 'w'))$$, 'write: refresh(segment)');
SELECT lives_ok($$SELECT segments.refresh()$$, 'write: refresh()');
SELECT is(segments.segment_is_member(2, (SELECT id FROM ids WHERE name = 'w')), true, 'write: refreshed membership is visible');
SELECT lives_ok($$SELECT segments.schedule((SELECT id FROM ids WHERE name = 'w'), '1 hour')$$, 'write: schedule');
SELECT lives_ok($$SELECT segments.drop_segment((SELECT id FROM ids WHERE name = 'w'))$$, 'write: drop_segment');
SELECT throws_ok($$SELECT segments.configure('public.tap_priv_contacts', 'id')$$, '42501', NULL, 'write: configure is denied');
-- the changes set aside hold any tenant's contact keys: the DBA's (segments_admin)
SELECT throws_ok($$SELECT * FROM segments.change_queue_failed$$, '42501', NULL, 'write: change_queue_failed is denied (any tenant''s keys)');
SELECT throws_ok($$SELECT segments.retry_failed_changes()$$, '42501', NULL, 'write: retry_failed_changes is denied');

-- Tenant isolation with segments.tenant set (still t1).
SELECT throws_ok($$SET segments.tenant = 't2'$$, '42501', NULL, 'tenant: segments_write may not change its tenant');
SELECT throws_ok($$SELECT set_config('segments.tenant', 't2', true)$$, '42501', NULL, 'tenant: nor through set_config()');
SELECT is((SELECT array_agg(tenant ORDER BY tenant) FROM segments.segments), ARRAY['t1'], 'tenant: segments view shows only t1');
SELECT is((SELECT count(*) FROM segments.status), 1::bigint, 'tenant: status view shows only the t1 segment');
SELECT is((SELECT count(*) FROM segments.membership WHERE segment_id = (SELECT id FROM ids WHERE name = 't2')), 0::bigint, 'tenant: no t2 membership rows');
SELECT is(segments.segment_is_member(3, (SELECT id FROM ids WHERE name = 't2')), false, 'tenant: t2 segment by id is unknown');
SELECT is(segments.segment_is_member(3, 'VIP'), false, 'tenant: t2 contact, name looked up in t1 only');
SELECT is(segments.filter_restricted(3, ARRAY[(SELECT id FROM ids WHERE name = 't2')]), false, 'tenant: t2 segment never grants');
SELECT is((SELECT count(*) FROM segments.contact_segments(3)), 0::bigint, 'tenant: contact_segments hides t2 segments');
SELECT is((SELECT count(*) FROM segments.segment_members((SELECT id FROM ids WHERE name = 't2'))), 0::bigint, 'tenant: segment_members of a t2 segment is empty');
SELECT throws_ok($$SELECT segments.update_segment((SELECT id FROM ids WHERE name = 't2'), name => 'x')$$, '42704', NULL, 'tenant: cannot update a t2 segment');
SELECT throws_ok($$SELECT segments.drop_segment((SELECT id FROM ids WHERE name = 't2'))$$, '42704', NULL, 'tenant: cannot drop a t2 segment');
SELECT throws_ok($$SELECT segments.refresh((SELECT id FROM ids WHERE name = 't2'))$$, '42704', NULL, 'tenant: cannot refresh a t2 segment');
SELECT throws_ok($$SELECT segments.schedule((SELECT id FROM ids WHERE name = 't2'), '1 hour')$$, '42704', NULL, 'tenant: cannot schedule a t2 segment');
SELECT throws_ok($$SELECT segments.create_segment('x', '{"and":[]}', tenant => 't2')$$, '42501', NULL, 'tenant: cannot create a t2 segment');
SELECT throws_ok($$SELECT segments.create_segment('x', ('{"type":"segment","op":"in","value":"' || (SELECT id FROM ids WHERE name = 't2') || '"}')::jsonb)$$,
                 '22023', NULL, 'tenant: cannot reference a t2 segment');
SELECT lives_ok($$SELECT segments.refresh()$$, 'tenant: refresh() of the visible segments');
SELECT is((SELECT count(*) FROM segments.segments), 1::bigint, 'tenant: still one visible segment');
RESET ROLE;

-- Without a tenant, only admins see segments; management fails closed.
RESET segments.tenant;
SET ROLE segments_write;
SELECT is((SELECT count(*) FROM segments.segments), 0::bigint, 'no tenant: segments_write sees no segments');
SELECT is(segments.segment_is_member(1, (SELECT id FROM ids WHERE name = 't1')), false, 'no tenant: no membership');
SELECT throws_ok($$SELECT segments.create_segment('x', '{"and":[]}', tenant => 't1')$$, '42501',
                 'segments.tenant is not set', 'no tenant: create_segment fails closed');
SELECT throws_ok($$SELECT segments.refresh()$$, '42501', 'segments.tenant is not set', 'no tenant: refresh() fails closed');
RESET ROLE;
SET ROLE segments_admin;
SELECT is((SELECT count(*) FROM segments.segments), 2::bigint, 'no tenant: segments_admin sees both tenants');
SELECT lives_ok($$SELECT * FROM segments.change_queue_failed$$, 'admin: reads change_queue_failed');
SELECT lives_ok($$SELECT segments.retry_failed_changes()$$, 'admin: retry_failed_changes');
SELECT throws_ok($$DROP EXTENSION segments$$, '42501', 'must be owner of extension segments',
                 'admin: DROP EXTENSION is the owner''s, refused with PostgreSQL''s own error');
RESET ROLE;

-- Nothing in schema segments is executable by PUBLIC but the helpers the
-- views call as their reader (granted TO PUBLIC in sql/install/09_roles.sql):
-- the internal functions are the owner's (a function created after
-- 09_roles.sql's REVOKE keeps PostgreSQL's default EXECUTE for PUBLIC unless
-- its file revokes it).  Configured, so configure()'s functions count too.
SELECT set_eq(
    $$SELECT p.oid::regprocedure::text FROM pg_proc p
       WHERE p.pronamespace = 'segments'::regnamespace
         AND EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                      WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')$$,
    ARRAY['segments._tenant_visible(text)', 'segments._member_rows(bytea)',
          'segments._member_segs(bytea)', 'segments._member_in(integer[],integer)',
          'segments._member_since(bytea,integer)', 'segments._contact_visible(text)',
          'segments._contact_tenant()', 'segments._session_tenant()', 'segments._is_admin()',
          'segments._history_rows(bytea,bytea)', 'segments._history_kept()',
          'segments._history_contacts(anyelement,text,bytea,bytea,anyarray,text[],bytea[],bytea[])'],
    'public: only the views'' helpers are executable by PUBLIC');
SET ROLE segments_read;
SELECT throws_ok($$SELECT segments._citus_sync()$$, '42501',
                 'permission denied for function _citus_sync', 'read: the Citus catalog copy (_citus_sync) is denied');
SELECT throws_ok($$SELECT segments._citus_load_catalog('{}')$$, '42501',
                 'permission denied for function _citus_load_catalog', 'read: loading a Citus catalog (_citus_load_catalog) is denied');
RESET ROLE;
SET ROLE segments_write;
SELECT throws_ok($$SELECT segments._citus_drop_storage(true)$$, '42501',
                 'permission denied for function _citus_drop_storage', 'write: dropping the Citus storage (_citus_drop_storage) is denied');
RESET ROLE;

-- Read functions run inside a read-only transaction; management does not.
SET LOCAL transaction_read_only = on;
SELECT is(segments.segment_is_member(1, 'VIP'), true, 'read-only: segment_is_member');
SELECT is(segments.filter_restricted(1, ARRAY[(SELECT id FROM ids WHERE name = 't1')]), true, 'read-only: filter_restricted');
SELECT lives_ok($$SELECT * FROM segments.contact_segments(1)$$, 'read-only: contact_segments');
SELECT lives_ok($$SELECT * FROM segments.segment_members((SELECT id FROM ids WHERE name = 't1'))$$, 'read-only: segment_members');
SELECT lives_ok($$SELECT * FROM segments.membership$$, 'read-only: membership');
SELECT throws_ok($$SELECT segments.create_segment('ro', '{"and":[]}')$$, '25006', NULL, 'read-only: create_segment fails');

SELECT * FROM finish();
ROLLBACK;

-- Tenancy as a boundary (README: Security model), tested as deployments run:
-- an app role owning the contacts, tenant login roles whose tenant is fixed
-- by ALTER ROLE ... SET, a role without a tenant, a connection pool role
-- granted SET on segments.tenant, and an admin.  The tenant column is an
-- integer.  Runs in a database of its own, with its worker off (membership
-- changes only through refresh(), so what each role's refresh() touched
-- shows).
\set VERBOSITY terse
SET client_min_messages = warning;
DROP DATABASE IF EXISTS segments_tenancy;
DROP ROLE IF EXISTS ten_owner, ten_a, ten_b, ten_none, ten_admin;
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ten_pool') THEN
    REVOKE SET ON PARAMETER segments.tenant FROM ten_pool;
    DROP ROLE ten_pool;
  END IF;
END $$;
RESET client_min_messages;
CREATE DATABASE segments_tenancy;
ALTER DATABASE segments_tenancy SET segments.enabled = off;
CREATE ROLE ten_owner LOGIN;
CREATE ROLE ten_a LOGIN IN ROLE segments_write;
CREATE ROLE ten_b LOGIN IN ROLE segments_write;
CREATE ROLE ten_none LOGIN IN ROLE segments_write;
CREATE ROLE ten_admin LOGIN IN ROLE segments_admin;
CREATE ROLE ten_pool LOGIN IN ROLE segments_read;
GRANT SET ON PARAMETER segments.tenant TO ten_pool;
-- An administrator binds each tenant role to its tenant.
ALTER ROLE ten_a SET segments.tenant = '1';
ALTER ROLE ten_b SET segments.tenant = '2';

\c segments_tenancy
CREATE EXTENSION segments;
GRANT CREATE ON SCHEMA public TO ten_owner;
-- Runs a statement as the caller; returns 'ok' or its error with SQLSTATE,
-- detail and hint (ids replaced: they differ from run to run).
CREATE FUNCTION public.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text; m text; d text; h text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, m = MESSAGE_TEXT,
                            d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    RETURN regexp_replace(st || ': ' || m || coalesce(E'\nDETAIL: ' || nullif(d, ''), '')
                          || coalesce(E'\nHINT: ' || nullif(h, ''), ''),
                          '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<uuid>', 'g');
END
$$;

-- The application owns and writes its contacts.
\c - ten_owner
CREATE TABLE contacts (id integer PRIMARY KEY, org_id integer, plan text);
INSERT INTO contacts SELECT g, CASE WHEN g <= 10 THEN 1 WHEN g <= 20 THEN 2 END,
                            CASE WHEN g % 2 = 0 THEN 'vip' ELSE 'free' END
  FROM generate_series(1, 24) g;          -- 1-10 tenant 1, 11-20 tenant 2, 21-24 none
-- Rules may read only what their author may: the dashboard roles may read the contacts.
GRANT SELECT ON contacts TO ten_a, ten_b, ten_none, ten_admin;

\c - postgres
SELECT segments.configure('public.contacts', 'id', tenant_column => 'org_id');

-- The admin creates global segments (tenant NULL) and segments of each tenant.
\c - ten_admin
SHOW segments.tenant;
SELECT segments.create_segment('VIP', '{"type":"attribute","field":"plan","op":"eq","value":"vip"}') AS global_vip \gset
SELECT segments.create_segment('Everyone', '{"and":[]}') AS global_all \gset
SELECT segments.create_segment('VIP', '{"type":"attribute","field":"plan","op":"eq","value":"vip"}', tenant => '1') AS a_vip \gset
-- A tenant is given in the tenant column's type; '02' is tenant 2.
SELECT segments.create_segment('Secret B', '{"type":"attribute","field":"plan","op":"eq","value":"free"}', tenant => '02') AS b_secret \gset
SELECT try($$SELECT segments.create_segment('Bad', '{"and":[]}', tenant => 'acme')$$) AS bad_tenant;
SELECT segments.refresh();
SELECT name, tenant, member_count, status FROM segments.segments ORDER BY tenant NULLS FIRST, name;
SELECT count(*) AS memberships FROM segments.membership;        -- 12 + 24 + 5 + 5
SELECT count(*) AS worker_rows FROM segments._worker_status();  -- this database's only (worker off: 0 or 1)

-- Tenant 1, fixed by ALTER ROLE: its own segments and the global ones,
-- and in every segment only its own contacts.
\c - ten_a
SHOW segments.tenant;
SELECT name, tenant, member_count, status FROM segments.segments ORDER BY tenant NULLS FIRST, name;
SELECT name, tenant, member_count FROM segments.status ORDER BY tenant NULLS FIRST, name;
SELECT count(*) AS memberships, min(contact_id), max(contact_id) FROM segments.membership;
SELECT array_agg(m ORDER BY m) AS global_vip_members FROM segments.segment_members(:'global_vip'::uuid) m;
SELECT array_agg(m ORDER BY m) AS vip_by_name FROM segments.segment_members('VIP') m;    -- tenant 1's VIP
SELECT array_agg(m ORDER BY m) AS everyone_by_name FROM segments.segment_members('Everyone') m; -- global, tenant 1's contacts
SELECT count(*) AS secret_b_members FROM segments.segment_members(:'b_secret'::uuid) m;
SELECT segments.segment_is_member(2, :'global_vip'::uuid) AS own_contact_global,   -- t
       segments.segment_is_member(12, :'global_vip'::uuid) AS b_contact_global,    -- f
       segments.segment_is_member(22, 'Everyone') AS tenantless_contact,           -- f
       segments.segment_is_member(2, 'VIP') AS own_by_name,                         -- t
       segments.segment_is_member(11, :'b_secret'::uuid) AS b_segment;              -- f
SELECT segments.filter_restricted(2, ARRAY[:'global_vip'::uuid]) AS own_contact,    -- t
       segments.filter_restricted(12, ARRAY[:'global_vip'::uuid]) AS b_contact,     -- f
       segments.filter_restricted(11, ARRAY[:'b_secret'::uuid]) AS b_segment;       -- f
SELECT name, tenant, member_count FROM segments.contact_segments(2);
SELECT count(*) AS b_contact_segments FROM segments.contact_segments(12);
SELECT pending_segments, last_error FROM segments.worker;
-- It may not change its tenant, by any means.
SET segments.tenant = '2';
SELECT set_config('segments.tenant', '2', false);
ALTER ROLE ten_a SET segments.tenant = '2';
SHOW segments.tenant;
-- It manages its own segments only: another tenant's "do not exist", global
-- ones are the admin's, and messages never name another tenant's segments.
SELECT try(format($$SELECT segments.update_segment(%L, name => 'Mine now')$$, :'b_secret')) AS update_b;
SELECT try(format($$SELECT segments.drop_segment(%L)$$, :'b_secret')) AS drop_b;
SELECT try(format($$SELECT segments.schedule(%L, '1 hour')$$, :'b_secret')) AS schedule_b;
SELECT try(format($$SELECT segments.refresh(%L)$$, :'b_secret')) AS refresh_b;
SELECT try(format($$SELECT segments.update_segment(%L, name => 'Mine now')$$, :'global_vip')) AS update_global;
SELECT try(format($$SELECT segments.drop_segment(%L)$$, :'global_all')) AS drop_global;
SELECT try(format($$SELECT segments.schedule(%L, '1 hour')$$, :'global_all')) AS schedule_global;
SELECT try($$SELECT segments.create_segment('Sneaky', '{"and":[]}', tenant => '2')$$) AS create_for_b;
SELECT try($$SELECT segments.create_segment('Sneaky', '{"and":[]}', tenant => NULL)$$) AS create_no_tenant; -- its own tenant's
SELECT tenant FROM segments.segments WHERE name = 'Sneaky';
SELECT try($$SELECT segments.create_segment('Sneaky 2', '{"type":"segment","op":"in","value":"Secret B"}')$$) AS reference_b;
SELECT try(format($$SELECT segments.create_segment('Sneaky 3', '{"type":"segment","op":"in","value":"%s"}')$$, :'b_secret')) AS reference_b_by_id;
SELECT segments.create_segment('Mine', '{"type":"attribute","field":"plan","op":"eq","value":"free"}', tenant => '01') AS a_mine \gset
SELECT name, tenant, status FROM segments.segments WHERE id = :'a_mine';

-- refresh() refreshes what the session sees, nothing else: the admin adds a
-- segment of tenant 2, and tenant 1's refresh() leaves it pending.
\c - ten_admin
SELECT segments.create_segment('Later B', '{"and":[]}', tenant => '2') AS b_later \gset
\c - ten_a
SELECT segments.refresh();
SELECT name, status FROM segments.segments WHERE id = :'a_mine';
\c - ten_admin
SELECT name, tenant, state FROM segments.status WHERE segment_id IN (:'a_mine', :'b_later') ORDER BY name;

-- A leaky function in a caller's WHERE clause sees only visible rows: the
-- views are security barriers.
\c - ten_a
CREATE FUNCTION pg_temp.leak(a text, b text) RETURNS boolean
  LANGUAGE plpgsql COST 0.0000001 AS
$$ BEGIN RAISE NOTICE 'leak: % %', a, b; RETURN true; END $$;
SELECT count(*) FROM segments.segments WHERE pg_temp.leak(name, coalesce(tenant, 'global'));
SELECT count(*) FROM segments.status WHERE pg_temp.leak(name, coalesce(tenant, 'global'));
SELECT count(*) FROM segments.membership WHERE contact_id > 8 AND pg_temp.leak(contact_id::text, 'member');
SELECT count(*) FROM segments.worker WHERE pg_temp.leak(pending_segments::text, coalesce(last_error, 'no error'));

-- Tenant 2 sees its side; a contact that moves to tenant 2 moves with it
-- once re-evaluated.
\c - ten_b
SELECT name, tenant, member_count FROM segments.segments ORDER BY tenant NULLS FIRST, name;
SELECT array_agg(m ORDER BY m) AS global_vip_members FROM segments.segment_members(:'global_vip'::uuid) m;
\c - ten_owner
UPDATE contacts SET org_id = 2 WHERE id = 2;
\c - ten_admin
SELECT segments.refresh();
\c - ten_b
SELECT array_agg(m ORDER BY m) AS global_vip_members FROM segments.segment_members(:'global_vip'::uuid) m;
SELECT member_count FROM segments.segments WHERE id = :'global_vip';
SELECT segments.segment_is_member(2, :'global_vip'::uuid) AS moved_in;
\c - ten_a
SELECT segments.segment_is_member(2, :'global_vip'::uuid) AS moved_out,
       segments.filter_restricted(2, ARRAY[:'global_vip'::uuid]) AS gate_moved_out;
SELECT member_count FROM segments.segments WHERE id = :'global_vip';

-- verify() compares only the contacts the session may see: contacts of
-- both tenants and one of none change without a refresh (worker off), and
-- each tenant sees its own differences, in the global segments too, never
-- another tenant's count or key; the admin sees them all.  Then undone.
\c - ten_owner
UPDATE contacts SET plan = 'vip' WHERE id IN (3, 13);      -- tenant 1 and 2: join VIP, leave Secret B
UPDATE contacts SET plan = 'free' WHERE id IN (4, 22);     -- tenant 1 and none: leave VIP
DELETE FROM contacts WHERE id = 16;                        -- tenant 2: gone from VIP and Everyone
\c - ten_a
SELECT v.name, s.tenant, v.missing, v.extra, v.missing_sample, v.extra_sample
  FROM segments.verify() v JOIN segments.segments s ON s.id = v.segment_id
 ORDER BY s.tenant NULLS FIRST, v.name;
\c - ten_b
SELECT v.name, s.tenant, v.missing, v.extra, v.missing_sample, v.extra_sample
  FROM segments.verify() v JOIN segments.segments s ON s.id = v.segment_id
 ORDER BY s.tenant NULLS FIRST, v.name;
SELECT missing, extra, missing_sample, extra_sample FROM segments.verify(:'global_vip'::uuid);
\c - ten_admin
SELECT v.name, s.tenant, v.missing, v.extra, v.missing_sample, v.extra_sample
  FROM segments.verify() v JOIN segments.segments s ON s.id = v.segment_id
 ORDER BY s.tenant NULLS FIRST, v.name;
\c - ten_owner
UPDATE contacts SET plan = 'free' WHERE id IN (3, 13);
UPDATE contacts SET plan = 'vip' WHERE id IN (4, 22);
INSERT INTO contacts VALUES (16, 2, 'vip');
\c - ten_admin
SELECT count(*) AS differences FROM segments.verify() WHERE missing + extra > 0;

-- refresh_contacts() in a tenant's session applies every key it is given,
-- as the worker would, and counts the changed contacts of its own tenant
-- only: no count of another tenant's contacts.
\c - ten_owner
UPDATE contacts SET plan = 'vip' WHERE id IN (5, 15);      -- tenant 1 and tenant 2
\c - ten_a
SELECT segments.refresh_contacts(ARRAY[5, 15]) AS changed_of_tenant_1;
\c - ten_admin
SELECT count(*) AS differences FROM segments.verify() WHERE missing + extra > 0;
\c - ten_owner
UPDATE contacts SET plan = 'free' WHERE id IN (5, 15);
\c - ten_b
SELECT segments.refresh_contacts(ARRAY[5, 15]) AS changed_of_tenant_2;
\c - ten_admin
SELECT count(*) AS differences FROM segments.verify() WHERE missing + extra > 0;

-- No tenant, not an admin: sees nothing, manages nothing (fail closed).
\c - ten_none
SHOW segments.tenant;
SELECT (SELECT count(*) FROM segments.segments) AS segments,
       (SELECT count(*) FROM segments.status) AS status,
       (SELECT count(*) FROM segments.membership) AS memberships,
       (SELECT count(*) FROM segments.segment_members(:'global_vip'::uuid)) AS members,
       (SELECT count(*) FROM segments.contact_segments(4)) AS contact_segments,
       segments.segment_is_member(4, :'global_vip'::uuid) AS is_member,
       segments.filter_restricted(4, ARRAY[:'global_vip'::uuid]) AS gate;
SELECT pending_segments, last_error FROM segments.worker;
SELECT try($$SELECT segments.create_segment('Mine', '{"and":[]}')$$) AS create_segment;
SELECT call, split_part(try(sql), E'\n', 1) AS error FROM (VALUES
  ('update_segment', format($$SELECT segments.update_segment(%L, description => 'x')$$, :'global_vip')),
  ('drop_segment', format($$SELECT segments.drop_segment(%L)$$, :'global_vip')),
  ('schedule', format($$SELECT segments.schedule(%L, '1 hour')$$, :'global_vip')),
  ('refresh()', 'SELECT segments.refresh()'),
  ('refresh(segment)', format($$SELECT segments.refresh(%L)$$, :'global_vip')),
  ('refresh_contacts', 'SELECT segments.refresh_contacts(ARRAY[1])'),
  ('verify', 'SELECT count(*) FROM segments.verify()'),
  ('compile', $$SELECT segments.compile('{"and":[]}')$$)) AS v(call, sql);
SET segments.tenant = '1';

-- A connection pool granted SET on segments.tenant picks the tenant per
-- session; a value the integer tenant column cannot hold is refused.
\c - ten_pool
SELECT count(*) AS no_tenant_yet FROM segments.segments;
SET segments.tenant = '002';
SELECT segments._session_tenant();
SELECT name, tenant FROM segments.segments ORDER BY tenant NULLS FIRST, name;
SET segments.tenant = 'acme';
SELECT try('SELECT count(*) FROM segments.segments') AS segments_view;
SELECT segments.segment_is_member(1, :'global_vip'::uuid);
RESET segments.tenant;

-- The admin without a tenant still sees every tenant, and tenants' names
-- resolve to the contact's tenant's segment.
\c - ten_admin
SELECT name, tenant, member_count FROM segments.segments ORDER BY tenant NULLS FIRST, name;
SELECT segments.segment_is_member(4, 'VIP') AS a_contact_a_vip,  -- tenant 1's VIP: t
       segments.segment_is_member(12, 'VIP') AS b_contact_vip;   -- no tenant 2 VIP: global, t

\c contrib_regression postgres
DROP DATABASE segments_tenancy;
REVOKE SET ON PARAMETER segments.tenant FROM ten_pool;
DROP ROLE ten_owner, ten_a, ten_b, ten_none, ten_admin, ten_pool;

-- 13: the catalog: create / update / drop / refresh / compile / schedule, the
-- segments.segments and segments.status views, timestamps, member counts,
-- status pending -> ready, unknown ids, duplicate names, configure re-pointing.
\set VERBOSITY default
\set SHOW_CONTEXT never
\set ON_ERROR_STOP 0

-- The views' columns.
SELECT column_name, data_type FROM information_schema.columns
 WHERE table_schema = 'segments' AND table_name = 'segments' ORDER BY ordinal_position;
SELECT column_name, data_type FROM information_schema.columns
 WHERE table_schema = 'segments' AND table_name = 'status'
   AND column_name IN ('segment_id', 'state', 'member_count', 'evaluated_at', 'last_duration', 'last_error', 'next_refresh')
 ORDER BY column_name;
SELECT column_name, data_type FROM information_schema.columns
 WHERE table_schema = 'segments' AND table_name = 'membership' ORDER BY ordinal_position;

-- create_segment returns the id; the segment is pending until evaluated.
-- (One transaction, so that the background worker cannot evaluate it first.)
BEGIN;
SELECT segments.create_segment('Cat VIP', '{"type":"attribute","field":"plan","op":"eq","value":"vip"}', 'Paying customers') AS vip \gset
SELECT id = :'vip' AS same_id, tenant, name, description, definition, member_count, evaluated_at IS NULL AS not_evaluated, status,
       created_at = now() AND updated_at = now() AS fresh_timestamps
  FROM segments.segments WHERE name = 'Cat VIP';
SELECT state, member_count, evaluated_at IS NULL AS not_evaluated, last_error, next_refresh
  FROM segments.status WHERE segment_id = :'vip';
SELECT members_of(:'vip') AS before_refresh;                               -- {}
SELECT segments.refresh(:'vip');
SELECT status, member_count, evaluated_at IS NOT NULL AS evaluated FROM segments.segments WHERE id = :'vip';
SELECT state, member_count, last_duration >= interval '0' AS has_duration, last_error FROM segments.status WHERE segment_id = :'vip';
SELECT members_of(:'vip') AS after_refresh;                                -- {1,10,18,22,26,30}
COMMIT;

-- Names are unique within a tenant, not across tenants.
SELECT segments.create_segment('Cat VIP', '{"and":[]}');
SELECT segments.create_segment('Cat VIP', '{"and":[]}', tenant => 'acme') AS vip_acme \gset
SELECT segments.create_segment('Cat VIP', '{"and":[]}', tenant => 'acme');
SELECT segments.create_segment('', '{"and":[]}');
SELECT segments.create_segment(NULL, '{"and":[]}');
SELECT segments.create_segment('Cat Null', NULL);
SELECT name, tenant FROM segments.segments WHERE name LIKE 'Cat%' ORDER BY name, tenant NULLS FIRST;

-- update_segment: NULL arguments keep the current value; updated_at moves.
SELECT segments.update_segment(:'vip', description => 'VIPs, any tenant');
SELECT name, description, definition, updated_at > created_at AS updated_later, status FROM segments.segments WHERE id = :'vip';
SELECT segments.update_segment(:'vip', name => 'Cat VIP 2');
SELECT name, description FROM segments.segments WHERE id = :'vip';
SELECT segments.update_segment(:'vip', name => 'Cat VIP');
-- A new definition sets the status back to pending; readers keep the old
-- membership until it is re-evaluated.
BEGIN;
SELECT segments.update_segment(:'vip', definition => '{"type":"attribute","field":"plan","op":"eq","value":"free"}');
SELECT status, definition FROM segments.segments WHERE id = :'vip';
SELECT state FROM segments.status WHERE segment_id = :'vip';
SELECT members_of(:'vip') AS old_members_until_refresh;                  -- {1,10,18,22,26,30}
SELECT segments.segment_is_member(1, :'vip'::uuid) AS old_member_1;      -- t
SELECT segments.refresh();
SELECT status, member_count FROM segments.segments WHERE id = :'vip';
SELECT members_of(:'vip') AS new_members;                                -- {2,8,14,20,24,28}
COMMIT;
SELECT segments.update_segment(:'vip', name => 'Cat VIP', definition => NULL, description => NULL);
SELECT name, description, status FROM segments.segments WHERE id = :'vip';
SELECT segments.create_segment('Cat Other', '{"or":[]}') AS other \gset
SELECT segments.update_segment(:'other', name => 'Cat VIP');
SELECT segments.update_segment(:'vip', name => '');
SELECT segments.update_segment(:'vip_acme', name => 'Cat Other');
SELECT name, tenant FROM segments.segments WHERE name LIKE 'Cat%' ORDER BY name, tenant NULLS FIRST;
SELECT segments.drop_segment(:'other');

-- Membership follows the source after a refresh (the application writes).
SET ROLE regress_app;
UPDATE contacts SET plan = 'free' WHERE id = 1;
RESET ROLE;
SELECT segments.refresh(:'vip');
SELECT members_of(:'vip') AS after_source_change, -- {1,2,8,14,20,24,28}
       (SELECT member_count FROM segments.segments WHERE id = :'vip') AS member_count;
SET ROLE regress_app;
UPDATE contacts SET plan = 'vip' WHERE id = 1;
RESET ROLE;
SELECT segments.refresh();
SELECT members_of(:'vip') AS restored;

-- compile shows what a definition compiles to (and validates it).
SELECT segments.compile('{"type":"attribute","field":"plan","op":"eq","value":"vip"}') IS NOT NULL AS compiles;
SELECT segments.compile('{"or":[{"and":[{"type":"attribute","field":"plan","op":"in","value":["vip","pro"]},{"type":"trait","path":["company","size"],"op":"gte","value":50}]},{"type":"percentage","op":"lt","value":10,"salt":"s"}]}') IS NOT NULL AS compiles_dnf;

-- schedule: an interval of at least 10 seconds, or NULL to clear it.
SELECT segments.schedule(:'vip', '1 hour');
SELECT next_refresh IS NOT NULL AS scheduled FROM segments.status WHERE segment_id = :'vip';
SELECT segments.schedule(:'vip', NULL);
SELECT next_refresh IS NULL AS cleared FROM segments.status WHERE segment_id = :'vip';
SELECT segments.schedule(:'vip', '-5 minutes');
SELECT segments.schedule(:'vip', '0 seconds');
SELECT segments.schedule(:'vip', '1 microsecond');
SELECT segments.schedule(:'vip', '9.999999 seconds');
SELECT schedule IS NULL AS refused_left_it_cleared FROM segments.status WHERE segment_id = :'vip';
SELECT segments.schedule(:'vip', '10 seconds');
SELECT schedule AS shortest_schedule FROM segments.status WHERE segment_id = :'vip';
SELECT segments.schedule(:'vip', NULL);

-- Unknown segment ids.
SELECT segments.update_segment('00000000-0000-0000-0000-000000000000', name => 'x');
SELECT segments.drop_segment('00000000-0000-0000-0000-000000000000');
SELECT segments.refresh('00000000-0000-0000-0000-000000000000');
SELECT segments.schedule('00000000-0000-0000-0000-000000000000', '1 hour');
SELECT segments.drop_segment(:'vip_acme');
SELECT try(format('SELECT segments.drop_segment(%L)', :'vip_acme')) AS dropped_twice;

-- configure re-points the extension and re-evaluates everything.
CREATE TABLE contacts2 (LIKE contacts INCLUDING ALL);
INSERT INTO contacts2 (id, org_id, plan) VALUES (101, 'acme', 'free'), (102, 'globex', 'free'), (103, 'acme', 'vip');
SELECT segments.configure(source => 'public.contacts2', key_column => 'id', tenant_column => 'org_id', traits_column => 'custom_data');
SELECT members_of(:'vip') AS repointed, status FROM segments.segments WHERE id = :'vip';   -- {101,102} ready
SELECT segments.segment_is_member(101, :'vip'::uuid) AS member_101, segments.segment_is_member(2, :'vip'::uuid) AS member_2;
SELECT segments.configure(source => 'public.contacts', key_column => 'id', tenant_column => 'org_id', traits_column => 'custom_data');
SELECT members_of(:'vip') AS back, status FROM segments.segments WHERE id = :'vip';         -- {2,8,14,20,24,28} ready
DROP TABLE contacts2;
-- configure errors.
SELECT segments.configure(source => 'public.contacts', key_column => 'nope');
SELECT segments.configure(source => 'public.contacts', key_column => 'email');
SELECT segments.configure(source => 'public.contacts', key_column => 'id', traits_column => 'email');
SELECT segments.configure(source => 'public.nope', key_column => 'id');
SELECT segments.refresh();
SELECT members_of(:'vip') AS still_configured;                          -- {2,8,14,20,24,28}

-- A source that no longer fits a segment's rules: the segment fails, with the reason.
CREATE TABLE contacts3 (id bigint PRIMARY KEY, org_id text, custom_data jsonb);
INSERT INTO contacts3 VALUES (1, 'acme', '{}');
SELECT segments.configure(source => 'public.contacts3', key_column => 'id', tenant_column => 'org_id', traits_column => 'custom_data');
SELECT status FROM segments.segments WHERE id = :'vip';                   -- failed
SELECT state, last_error FROM segments.status WHERE segment_id = :'vip';       -- the column the rule reads is missing
SELECT segments.configure(source => 'public.contacts', key_column => 'id', tenant_column => 'org_id', traits_column => 'custom_data');
SELECT status, member_count FROM segments.segments WHERE id = :'vip';     -- ready 6
SELECT state, last_error FROM segments.status WHERE segment_id = :'vip';
DROP TABLE contacts3;

-- A uuid-keyed source: untyped literals and parameters are read as uuids.
CREATE TABLE ucontacts (id uuid PRIMARY KEY, org_id text, plan text);
INSERT INTO ucontacts VALUES ('6f1c0000-0000-4000-8000-000000000001', 'acme', 'vip'),
                             ('6f1c0000-0000-4000-8000-000000000002', 'acme', 'free');
SELECT segments.configure(source => 'public.ucontacts', key_column => 'id', tenant_column => 'org_id');
SELECT array_agg(contact_id) AS uuid_members FROM segments.membership WHERE segment_id = :'vip'; -- {6f1c...0002}
SELECT pg_typeof(contact_id) AS uuid_key_type FROM segments.membership LIMIT 1;
SELECT segments.segment_is_member('6f1c0000-0000-4000-8000-000000000002', 'Cat VIP') AS untyped_uuid,
       segments.segment_is_member('6f1c0000-0000-4000-8000-000000000001', 'Cat VIP') AS untyped_uuid_not_member,
       segments.segment_is_member('6f1c0000-0000-4000-8000-000000000002'::uuid, :'vip'::uuid) AS typed_uuid,
       segments.filter_restricted('6f1c0000-0000-4000-8000-000000000002', ARRAY[:'vip']::uuid[]) AS filter_untyped;
SELECT segments.segment_is_member('not-a-uuid', 'Cat VIP') AS bad_key;
PREPARE umember AS SELECT segments.segment_is_member($1, $2);
EXECUTE umember('6f1c0000-0000-4000-8000-000000000002', 'Cat VIP');
SELECT array_agg(m) AS uuid_segment_members FROM segments.segment_members(:'vip'::uuid) AS m;
SELECT name FROM segments.contact_segments('6f1c0000-0000-4000-8000-000000000002');
DEALLOCATE umember;
SELECT segments.configure(source => 'public.contacts', key_column => 'id', tenant_column => 'org_id', traits_column => 'custom_data');
DROP TABLE ucontacts;
SELECT members_of(:'vip') AS back_to_bigint;                              -- {2,8,14,20,24,28}

-- The worker is off in this database (00_setup): a change waits for
-- refresh(), and wait() does not pretend it was applied.  (The worker
-- applying changes is tested by test/worker/01_capture.sh.)
SET ROLE regress_app;  -- the application writes contacts
UPDATE contacts SET plan = 'free' WHERE id = 1;
RESET ROLE;
SELECT segments.wait('1 s') AS waited_without_worker;                   -- f
SELECT segments.segment_is_member(1, :'vip'::uuid) AS not_applied_yet;   -- f
SELECT segments.refresh();
SELECT segments.segment_is_member(1, :'vip'::uuid) AS refreshed_change;  -- t
SET ROLE regress_app;
UPDATE contacts SET plan = 'vip' WHERE id = 1;
RESET ROLE;
SELECT segments.refresh();
SELECT segments.segment_is_member(1, :'vip'::uuid) AS refreshed_revert;  -- f
SELECT members_of(:'vip') AS final;                                      -- {2,8,14,20,24,28}

SELECT segments.drop_segment(:'vip');
SELECT count(*) AS segments_left FROM segments.segments;

-- NULL arguments: reading functions answer false / nothing, management
-- functions name the missing segment, compile(NULL) is NULL.
SELECT segments.segment_is_member(NULL::bigint, 'Cat VIP') AS null_contact,
       segments.segment_is_member(1, NULL::text) AS null_segment_name,
       segments.segment_is_member(1, NULL::uuid) AS null_segment_id;
SELECT count(*) AS null_contact_segments FROM segments.contact_segments(NULL::bigint);
SELECT count(*) AS null_segment_members FROM segments.segment_members(NULL::uuid);
SELECT segments.drop_segment(NULL);
SELECT segments.compile(NULL) IS NULL AS compile_null;

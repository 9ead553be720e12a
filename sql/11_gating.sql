-- 11: the reading interface: filter_restricted (gating), segment_is_member by
-- id and by name, contact_segments, segment_members, the membership relation,
-- untyped literals and parameters, read-only transactions, segments.tenant.
\set VERBOSITY default
\set SHOW_CONTEXT never
\set ON_ERROR_STOP 0

-- Gold: plan vip.  acme Gold {1,10,18}; globex Gold {22,26,30};
-- acme Active {1,3,5,6,8,10,11,13,14,16,18,20}.
SELECT segments.create_segment('Gold', '{"type":"attribute","field":"plan","op":"eq","value":"vip"}', 'acme VIPs', 'acme') AS acme_gold \gset
SELECT segments.create_segment('Gold', '{"type":"attribute","field":"plan","op":"eq","value":"vip"}', 'globex VIPs', 'globex') AS globex_gold \gset
SELECT segments.create_segment('Active', '{"type":"attribute","field":"is_active","op":"eq","value":true}', tenant => 'acme') AS acme_active \gset
SELECT segments.create_segment('Soon dropped', '{"and":[]}', tenant => 'acme') AS dropped \gset
SELECT segments.refresh();
SELECT members_of(:'acme_gold') AS acme_gold, members_of(:'globex_gold') AS globex_gold;
SELECT members_of(:'acme_active') AS acme_active;
SELECT segments.segment_is_member(1, :'dropped'::uuid) AS member_before_drop;
SELECT segments.drop_segment(:'dropped');

-- filter_restricted: NULL or empty list lets everyone through, anonymous included.
SELECT segments.filter_restricted(NULL::bigint, NULL) AS anon_null,
       segments.filter_restricted(NULL::bigint, '{}') AS anon_empty,
       segments.filter_restricted(1, NULL) AS c1_null,
       segments.filter_restricted(2, '{}') AS c2_empty,
       segments.filter_restricted(999999, NULL) AS unknown_contact_null,
       segments.filter_restricted(999999, '{}') AS unknown_contact_empty;
-- Anonymous with a non-empty list: false.
SELECT segments.filter_restricted(NULL::bigint, ARRAY[:'acme_gold']::uuid[]) AS anon_listed,
       segments.filter_restricted(NULL::bigint, ARRAY[NULL]::uuid[]) AS anon_null_element;
-- Otherwise: member of at least one listed segment.
SELECT segments.filter_restricted(1, ARRAY[:'acme_gold']::uuid[]) AS c1_gold,                 -- t
       segments.filter_restricted(2, ARRAY[:'acme_gold']::uuid[]) AS c2_gold,                 -- f
       segments.filter_restricted(2, ARRAY[:'acme_gold', :'acme_active']::uuid[]) AS c2_any,  -- f
       segments.filter_restricted(3, ARRAY[:'acme_gold', :'acme_active']::uuid[]) AS c3_any,  -- t
       segments.filter_restricted(10, ARRAY[:'acme_active', :'acme_gold']::uuid[]) AS c10_both; -- t
-- Fail closed: unknown ids, NULL elements, dropped segments, other tenants' segments.
SELECT segments.filter_restricted(1, ARRAY['00000000-0000-0000-0000-000000000000']::uuid[]) AS unknown_id,
       segments.filter_restricted(1, ARRAY[NULL]::uuid[]) AS null_element,
       segments.filter_restricted(1, ARRAY[NULL, :'acme_gold']::uuid[]) AS null_and_gold,
       segments.filter_restricted(1, ARRAY[:'dropped']::uuid[]) AS dropped_segment,
       segments.filter_restricted(1, ARRAY[:'globex_gold']::uuid[]) AS other_tenant,
       segments.filter_restricted(22, ARRAY[:'acme_gold']::uuid[]) AS globex_contact_acme_seg,
       segments.filter_restricted(22, ARRAY[:'globex_gold']::uuid[]) AS globex_contact_globex_seg,
       segments.filter_restricted(999999, ARRAY[:'acme_gold']::uuid[]) AS unknown_contact;
-- Contact given as integer, untyped literal or text.
SELECT segments.filter_restricted(1::int, ARRAY[:'acme_gold']::uuid[]) AS as_int,
       segments.filter_restricted('1', ARRAY[:'acme_gold']::uuid[]) AS untyped,
       segments.filter_restricted('2', ARRAY[:'acme_gold']::uuid[]) AS untyped_2,
       segments.filter_restricted('1'::text, ARRAY[:'acme_gold']::uuid[]) AS as_text;

-- The typical query: which actions may this contact use?
CREATE TEMP TABLE actions (name text, restricted_to uuid[]);
INSERT INTO actions VALUES
  ('open', NULL), ('empty list', '{}'),
  ('gold', ARRAY[:'acme_gold']::uuid[]),
  ('gold or active', ARRAY[:'acme_gold', :'acme_active']::uuid[]),
  ('globex gold', ARRAY[:'globex_gold']::uuid[]),
  ('ghost', ARRAY['00000000-0000-0000-0000-000000000000']::uuid[]),
  ('null element', ARRAY[NULL]::uuid[]),
  ('dropped', ARRAY[:'dropped']::uuid[]);
SELECT c AS contact, (SELECT array_agg(name ORDER BY name) FROM actions a
                       WHERE segments.filter_restricted(c, a.restricted_to)) AS allowed
  FROM unnest(ARRAY[1, 2, 3, 22, 999999, NULL]::bigint[]) WITH ORDINALITY AS u(c, o) ORDER BY o;
PREPARE allowed_actions AS
  SELECT array_agg(name ORDER BY name) AS allowed FROM actions WHERE segments.filter_restricted($1, restricted_to);
EXECUTE allowed_actions('1');
EXECUTE allowed_actions('22');
EXECUTE allowed_actions(NULL);
PREPARE allowed_actions_typed(bigint) AS
  SELECT array_agg(name ORDER BY name) AS allowed FROM actions WHERE segments.filter_restricted($1, restricted_to);
EXECUTE allowed_actions_typed(3);
EXECUTE allowed_actions_typed(NULL);

-- segment_is_member by id, by name (looked up in the contact's tenant), by id as text.
SELECT segments.segment_is_member(1, :'acme_gold'::uuid) AS c1_id,            -- t
       segments.segment_is_member(2, :'acme_gold'::uuid) AS c2_id,            -- f
       segments.segment_is_member(1, 'Gold') AS c1_name,                      -- t (acme Gold)
       segments.segment_is_member(22, 'Gold') AS c22_name,                    -- t (globex Gold)
       segments.segment_is_member(2, 'Gold') AS c2_name,                      -- f
       segments.segment_is_member(17, 'Gold') AS c17_name,                    -- f
       segments.segment_is_member(1, :'globex_gold'::uuid) AS c1_other_tenant, -- f
       segments.segment_is_member(22, :'acme_gold'::uuid) AS c22_other_tenant, -- f
       segments.segment_is_member(1, :'acme_gold'::text) AS c1_id_text;        -- t
SELECT segments.segment_is_member(1, 'gold') AS wrong_case,                   -- f
       segments.segment_is_member(1, 'Nope') AS unknown_name,                 -- f
       segments.segment_is_member(1, 'Soon dropped') AS dropped_name,         -- f
       segments.segment_is_member(1, :'dropped'::uuid) AS dropped_id,         -- f
       segments.segment_is_member(1, '00000000-0000-0000-0000-000000000000'::uuid) AS unknown_id, -- f
       segments.segment_is_member(999999, 'Gold') AS unknown_contact;         -- f
SELECT segments.segment_is_member('1', 'Gold') AS untyped,                   -- t
       segments.segment_is_member('18', 'Active') AS untyped_18,             -- t
       segments.segment_is_member('2', 'Active') AS untyped_2,               -- f
       segments.segment_is_member(1::int, 'Gold') AS as_int,                 -- t
       segments.segment_is_member('1'::text, :'acme_gold'::uuid) AS text_uuid; -- t
PREPARE is_member AS SELECT segments.segment_is_member($1, $2);
EXECUTE is_member('1', 'Gold');
EXECUTE is_member('2', 'Gold');
EXECUTE is_member('22', 'Gold');
EXECUTE is_member('10', :'acme_gold');
PREPARE is_member_typed(bigint, uuid) AS SELECT segments.segment_is_member($1, $2);
EXECUTE is_member_typed(10, :'acme_gold');
EXECUTE is_member_typed(10, :'globex_gold');

-- contact_segments: rows of segments.segments.
SELECT name, tenant, description, member_count, status FROM segments.contact_segments(1) ORDER BY name;
SELECT name, tenant FROM segments.contact_segments(22) ORDER BY name;
SELECT name, tenant FROM segments.contact_segments('3') ORDER BY name;
SELECT count(*) AS none_for_2 FROM segments.contact_segments(2);
SELECT count(*) AS none_for_unknown FROM segments.contact_segments(999999);

-- segment_members and the membership relation.
SELECT array_agg(m ORDER BY m) AS members_by_id FROM segments.segment_members(:'acme_gold'::uuid) AS m;       -- {1,10,18}
SELECT array_agg(m ORDER BY m) AS members_by_id_text FROM segments.segment_members(:'globex_gold'::text) AS m; -- {22,26,30}
SELECT count(*) AS members_unknown FROM segments.segment_members('00000000-0000-0000-0000-000000000000'::uuid);
SELECT s.name, s.tenant, c.country, count(*) AS contacts
  FROM segments.membership m
  JOIN contacts c ON c.id = m.contact_id
  JOIN segments.segments s ON s.id = m.segment_id
 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
SELECT bool_and(since IS NOT NULL AND since <= now()) AS since_ok,
       count(*) FILTER (WHERE segment_id = :'dropped') AS dropped_rows
  FROM segments.membership;
SELECT pg_typeof(contact_id) AS contact_id_type, pg_typeof(segment_id) AS segment_id_type, pg_typeof(since) AS since_type
  FROM segments.membership LIMIT 1;

-- Read functions work inside a read-only transaction.
BEGIN TRANSACTION READ ONLY;
SELECT segments.segment_is_member(1, 'Gold') AS ro_is_member,
       segments.filter_restricted(1, ARRAY[:'acme_gold']::uuid[]) AS ro_filter,
       (SELECT count(*) FROM segments.contact_segments(1)) AS ro_contact_segments,
       (SELECT count(*) FROM segments.segment_members(:'acme_gold'::uuid)) AS ro_members,
       (SELECT count(*) FROM segments.membership) AS ro_membership,
       (SELECT count(*) FROM segments.segments) AS ro_segments,
       (SELECT count(*) FROM segments.status) AS ro_status;
COMMIT;

-- segments.tenant limits a session to one tenant.
SET segments.tenant = 'acme';
SELECT name, tenant FROM segments.segments ORDER BY name;
SELECT count(*) AS acme_status_rows FROM segments.status;                      -- 2
SELECT count(DISTINCT segment_id) AS acme_segments_in_membership, bool_and(segment_id IN (:'acme_gold', :'acme_active')) AS only_acme
  FROM segments.membership;
SELECT segments.segment_is_member(1, 'Gold') AS acme_name,                         -- t
       segments.segment_is_member(22, :'globex_gold'::uuid) AS globex_hidden,     -- f
       segments.segment_is_member(22, 'Gold') AS globex_name_hidden,              -- f
       segments.filter_restricted(22, ARRAY[:'globex_gold']::uuid[]) AS filter_hidden, -- f
       segments.filter_restricted(1, ARRAY[:'acme_gold']::uuid[]) AS filter_own;  -- t
SELECT count(*) AS globex_contact_segments FROM segments.contact_segments(22);    -- 0
SELECT array_agg(m ORDER BY m) AS gold_members FROM segments.segment_members('Gold') AS m; -- {1,10,18}
SELECT count(*) AS globex_members_hidden FROM segments.segment_members(:'globex_gold'::uuid); -- 0
-- ... and cannot change another tenant's segments.
SELECT segments.create_segment('Sneaky', '{"and":[]}', tenant => 'globex');
SELECT try(format($$SELECT segments.update_segment(%L, name => 'Renamed')$$, :'globex_gold')) AS update_other,
       try(format($$SELECT segments.drop_segment(%L)$$, :'globex_gold')) AS drop_other;
SELECT try(format($$SELECT segments.refresh(%L)$$, :'globex_gold')) AS refresh_other,
       try(format($$SELECT segments.schedule(%L, '1 hour')$$, :'globex_gold')) AS schedule_other;
-- A segment created without a tenant belongs to the session's tenant.
SELECT segments.create_segment('Acme implicit', '{"or":[]}') AS implicit \gset
SELECT tenant FROM segments.segments WHERE id = :'implicit';
SELECT segments.drop_segment(:'implicit');
SET segments.tenant = 'globex';
SELECT name, tenant FROM segments.segments ORDER BY name;
SELECT array_agg(m ORDER BY m) AS gold_members FROM segments.segment_members('Gold') AS m; -- {22,26,30}
SELECT segments.filter_restricted(22, ARRAY[:'globex_gold']::uuid[]) AS filter_own, -- t
       segments.segment_is_member(1, 'Gold') AS acme_contact_globex_gold;           -- f
RESET segments.tenant;
SELECT name, tenant FROM segments.segments ORDER BY name, tenant;
SELECT segments.segment_is_member(22, 'Gold') AS after_reset;                      -- t

-- The per-query cache of filter_restricted follows changes: a PL/pgSQL
-- loop that gates (the same expression each time), changes membership and
-- gates again sees the change.
CREATE FUNCTION gate_twice(contact bigint, segs uuid[]) RETURNS text LANGUAGE plpgsql AS $$
DECLARE seen text := '';
BEGIN
    FOR i IN 1..2 LOOP
        seen := seen || segments.filter_restricted(contact, segs) || ' ';
        SET ROLE regress_app;  -- the application writes contacts
        UPDATE contacts SET plan = CASE WHEN plan = 'vip' THEN 'free' ELSE 'vip' END WHERE id = contact;
        RESET ROLE;
        PERFORM segments.refresh_contacts(ARRAY[contact]);
    END LOOP;
    RETURN seen;
END $$;
SELECT gate_twice(1, ARRAY[:'acme_gold']::uuid[]) AS vip_then_not,  -- true false
       gate_twice(2, ARRAY[:'acme_gold']::uuid[]) AS not_then_vip;  -- false true
SELECT segments.filter_restricted(1, ARRAY[:'acme_gold']::uuid[]) AS restored; -- t
DROP FUNCTION gate_twice(bigint, uuid[]);

SELECT segments.drop_segment(:'acme_gold');
SELECT segments.drop_segment(:'globex_gold');
SELECT segments.drop_segment(:'acme_active');
SELECT count(*) AS segments_left FROM segments.segments;

-- 08: segment conditions: in / not_in by name and by id, negate, evaluation in
-- dependency order, cycles rejected (update_segment), references limited to
-- the same tenant, and dropping a referenced segment refused naming the
-- segments that reference it.
\set VERBOSITY default
\set SHOW_CONTEXT never
\set ON_ERROR_STOP 0

\set FREE '{"type":"attribute","field":"plan","op":"eq","value":"free"}'
\set TRIAL '{"type":"attribute","field":"plan","op":"eq","value":"trial"}'
\set ACTIVE '{"type":"attribute","field":"is_active","op":"eq","value":true}'

SELECT segments.create_segment('Ref Free', :'FREE') AS free_id \gset
SELECT segments.create_segment('Ref Active', :'ACTIVE') AS active_id \gset
-- by name and by id
SELECT segments.create_segment('Ref Both',
         format('{"and":[{"type":"segment","op":"in","value":"Ref Free"},{"type":"segment","op":"in","value":"%s"}]}', :'active_id')::jsonb) AS both_id \gset
SELECT segments.create_segment('Ref Not Free',
         format('{"type":"segment","op":"not_in","value":"%s"}', :'free_id')::jsonb) AS not_free_id \gset
SELECT segments.create_segment('Ref Not Free By Name',
         '{"type":"segment","op":"not_in","value":"Ref Free"}') AS not_free_name_id \gset
SELECT segments.create_segment('Ref Negated',
         '{"type":"segment","op":"in","value":"Ref Free","negate":true}') AS negated_id \gset
-- a chain three deep
SELECT segments.create_segment('Ref Chain',
         '{"or":[{"type":"segment","op":"in","value":"Ref Both"}]}') AS chain_id \gset
SELECT segments.refresh();

SELECT members('Ref Free') AS free;                            -- {2,8,14,20,24,28}
SELECT members('Ref Active') AS active;                        -- {1,3,5,6,8,10,11,13,14,16,18,20,22,24,26,28,30}
SELECT members('Ref Both') AS both_;                           -- {8,14,20,24,28}
SELECT excluded(members('Ref Not Free')) AS not_free_excludes; -- {2,8,14,20,24,28}
SELECT excluded(members('Ref Not Free By Name')) AS not_free_name_excludes; -- {2,8,14,20,24,28}
SELECT excluded(members('Ref Negated')) AS negated_excludes;   -- {2,8,14,20,24,28}
SELECT members('Ref Chain') AS chain;                          -- {8,14,20,24,28}

-- Dependency order: make the oldest segment depend on a newer one, then a
-- single refresh of everything must evaluate the newer one first.
-- (In one transaction, so that the background worker cannot do it for us.)
BEGIN;
SELECT segments.create_segment('Ref Trial', :'TRIAL') AS trial_id \gset
SELECT segments.update_segment(:'free_id', definition =>
         '{"or":[{"type":"attribute","field":"plan","op":"eq","value":"free"},{"type":"segment","op":"in","value":"Ref Trial"}]}');
SELECT segments.refresh();
SELECT members('Ref Trial') AS trial;                          -- {3,9,15,19,23,27}
SELECT members('Ref Free') AS free_or_trial;                   -- {2,3,8,9,14,15,19,20,23,24,27,28}
SELECT members('Ref Both') AS both_after;                      -- {3,8,14,20,24,28}
SELECT members('Ref Chain') AS chain_after;                    -- {3,8,14,20,24,28}
SELECT excluded(members('Ref Not Free')) AS not_free_after_excludes; -- {2,3,8,9,14,15,19,20,23,24,27,28}
COMMIT;

-- Refreshing one segment also refreshes the segments that reference it.
BEGIN;
SELECT segments.update_segment(:'trial_id', definition => '{"or":[]}');
SELECT segments.refresh(:'trial_id');
SELECT members('Ref Trial') AS trial_empty;                    -- {}
SELECT members('Ref Chain') AS chain_follows;                  -- {8,14,20,24,28}
COMMIT;

-- Renaming a referenced segment keeps the reference.
SELECT segments.update_segment(:'active_id', name => 'Ref Active Renamed');
SELECT segments.refresh();
SELECT members('Ref Both') AS both_after_rename;               -- {8,14,20,24,28}

-- Cycles are rejected, directly or through a chain, by id or by name.
SELECT segments.update_segment(:'free_id', definition => '{"type":"segment","op":"in","value":"Ref Free"}');
SELECT try(format($$SELECT segments.update_segment(%L, definition => '{"type":"segment","op":"in","value":"%s"}')$$, :'free_id', :'free_id')) AS self_by_id;
SELECT segments.update_segment(:'free_id', definition => '{"and":[{"type":"segment","op":"in","value":"Ref Chain"}]}');
SELECT try(format($$SELECT segments.update_segment(%L, definition => '{"or":[{"type":"segment","op":"not_in","value":"%s"}]}')$$, :'trial_id', :'chain_id')) AS chain_by_id;
-- ... and a rejected update leaves the segment as it was.
SELECT definition FROM segments.segments WHERE id = :'free_id';
SELECT members('Ref Free') AS free_unchanged;                  -- {2,8,14,20,24,28}
-- A new segment cannot reference itself: its name is not known yet.
SELECT segments.create_segment('Ref Selfish', '{"type":"segment","op":"in","value":"Ref Selfish"}');

-- Dropping a referenced segment is refused, naming its dependents.
SELECT segments.drop_segment(:'free_id');
SELECT segments.drop_segment(:'trial_id');
SELECT segments.drop_segment(:'both_id');
SELECT count(*) AS still_there FROM segments.segments WHERE name LIKE 'Ref %';   -- 8

-- References stay within a tenant.
SELECT segments.create_segment('Acme Free', :'FREE', tenant => 'acme') AS acme_free_id \gset
SELECT segments.create_segment('Acme Free Active',
         '{"and":[{"type":"segment","op":"in","value":"Acme Free"},{"type":"attribute","field":"is_active","op":"eq","value":true}]}',
         tenant => 'acme') AS acme_free_active_id \gset
SELECT segments.create_segment('Globex Ref', '{"type":"segment","op":"in","value":"Acme Free"}', tenant => 'globex');
SELECT try(format($$SELECT segments.create_segment('Globex Ref', '{"type":"segment","op":"in","value":"%s"}', tenant => 'globex')$$, :'acme_free_id')) AS other_tenant_by_id;
SELECT segments.create_segment('Global Ref', '{"type":"segment","op":"in","value":"Acme Free"}');
SELECT segments.create_segment('Acme Ref Global', '{"type":"segment","op":"in","value":"Ref Free"}', tenant => 'acme');
SELECT segments.refresh();
SELECT members('Acme Free') AS acme_free;                      -- {2,8,14,20}
SELECT members('Acme Free Active') AS acme_free_active;        -- {8,14,20}

-- Clean up, dependents first.
SELECT segments.drop_segment(:'acme_free_active_id');
SELECT segments.drop_segment(:'acme_free_id');
SELECT segments.drop_segment(:'chain_id');
SELECT segments.drop_segment(:'both_id');
SELECT segments.drop_segment(:'not_free_id');
SELECT segments.drop_segment(:'not_free_name_id');
SELECT segments.drop_segment(:'negated_id');
SELECT segments.drop_segment(:'free_id');
SELECT segments.drop_segment(:'trial_id');
SELECT segments.drop_segment(:'active_id');
SELECT count(*) AS segments_left FROM segments.segments;

-- segments install script, part 13: preview() on Citus (docs/citus.md).
-- The coordinator validates the definition as on one node (preview.c),
-- then every worker evaluates it over the shards of the source placed on
-- it, and the coordinator adds the counts up and keeps the smallest of the
-- workers' sample keys.

-- A worker's part: the counts and smallest member keys of its own shards.
-- The extension's owner only: the tenant is an argument here, checked on
-- the coordinator.
CREATE FUNCTION segments._citus_preview_local(definition jsonb, tenant text,
                                             filter_contacts boolean, sample integer)
RETURNS jsonb
LANGUAGE c
AS 'MODULE_PATHNAME', 'segments_citus_preview_local';
COMMENT ON FUNCTION segments._citus_preview_local(jsonb, text, boolean, integer) IS
    'Internal: on a Citus node, preview() of a validated definition over the shards of the source placed on it.';
REVOKE ALL ON FUNCTION segments._citus_preview_local(jsonb, text, boolean, integer) FROM PUBLIC;

-- The coordinator's side: every worker in parallel (run_command_on_workers,
-- the definition and tenant quoted as literals), again if a shard moved
-- meanwhile (it could have been counted on both nodes, or on neither).
-- Returns the sums and every worker's sample; preview() keeps the
-- smallest keys in the key type's order.
CREATE FUNCTION segments._citus_preview(definition jsonb, tenant text,
                                       filter_contacts boolean, sample integer,
                                       OUT members bigint, OUT contacts bigint,
                                       OUT sample_keys text[])
RETURNS record
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_source regclass := (SELECT c.source FROM segments.config c);
    v_placed text;
    v_rounds integer := 0;
    v_result jsonb;
    r        record;
BEGIN
    -- The workers read their committed copy of the catalog: a segment
    -- created or changed in this transaction is not there yet.
    IF current_setting('segments_citus.catalog_written', true) = 'on' THEN
        RAISE EXCEPTION 'preview() on Citus cannot run in the transaction that changed segments'
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Commit the change first: the workers evaluate the definition against the committed segments.';
    END IF;
    LOOP
        members := 0;
        contacts := 0;
        sample_keys := '{}';
        v_placed := segments._citus_placements(v_source);
        FOR r IN EXECUTE 'SELECT nodename, nodeport, success, result'
                         '  FROM pg_catalog.run_command_on_workers($1)'
                 USING format('SELECT segments._citus_preview_local(%L::jsonb, %L::text, %L::boolean, %s)',
                              definition, tenant, filter_contacts, sample)
        LOOP
            IF NOT r.success THEN
                RAISE EXCEPTION 'preview on node %:% failed: %', r.nodename, r.nodeport, r.result
                    USING ERRCODE = 'object_not_in_prerequisite_state',
                          HINT = 'Every worker must be up and hold the segment catalog (segments.wait() returns true once it does).';
            END IF;
            v_result := r.result::jsonb;
            members := members + (v_result ->> 'members')::bigint;
            contacts := contacts + (v_result ->> 'contacts')::bigint;
            sample_keys := sample_keys
                || ARRAY(SELECT jsonb_array_elements_text(v_result -> 'sample'));
        END LOOP;
        EXIT WHEN v_placed = segments._citus_placements(v_source);
        v_rounds := v_rounds + 1;
        IF v_rounds >= 3 THEN
            RAISE EXCEPTION 'shards of % kept moving during the preview', v_source
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Call segments.preview() again once the rebalance is over (citus_rebalance_wait()).';
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION segments._citus_preview(jsonb, text, boolean, integer) IS
    'Internal: preview() of a distributed source on the Citus coordinator, every worker evaluating its own shards.';
REVOKE ALL ON FUNCTION segments._citus_preview(jsonb, text, boolean, integer) FROM PUBLIC;

-- segments install script, part 12: the worker's chunked pass on Citus
-- (docs/citus.md, "Passes").  The coordinator's worker does not scan: it
-- asks every worker node to evaluate the pass's segments, and each node's
-- own worker runs a chunked pass over the shards placed on it
-- (pass_chunked.c), applying the changes captured there between chunks and
-- resuming after a crash.  The coordinator polls until every node is done,
-- then counts members.

-- Where the shards of the source are: one text that changes whenever a
-- shard moves (citus_move_shard_placement, a rebalance, a split).  A pass
-- that saw it change evaluates again: a shard moved to a node whose pass
-- had gone past it would otherwise be left out.
CREATE FUNCTION segments._citus_placements(source regclass)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_placements text;
BEGIN
    EXECUTE 'SELECT pg_catalog.md5(coalesce(pg_catalog.string_agg(s.shardid::text || '':'' || p.groupid::text,'
            '                                                     '','' ORDER BY s.shardid, p.groupid), ''''))'
            '  FROM pg_catalog.pg_dist_shard s JOIN pg_catalog.pg_dist_placement p'
            '    ON p.shardid OPERATOR(pg_catalog.=) s.shardid'
            ' WHERE s.logicalrelid OPERATOR(pg_catalog.=) $1'
       INTO v_placements USING source;
    RETURN v_placements;
END
$$;
COMMENT ON FUNCTION segments._citus_placements(regclass) IS
    'Internal: a digest of where the shards of a distributed table are placed.';

-- A worker node's side of a coordinator's pass request: the committed
-- catalog, then these segments pending (anew, also one in a pass already:
-- it leaves that pass), so that this node's worker evaluates them in a
-- chunked pass over its shards.
CREATE FUNCTION segments._citus_pass_request(ids uuid[])
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_payload jsonb;
    v_n       integer;
BEGIN
    IF to_regclass('segments.citus_catalog') IS NOT NULL THEN
        EXECUTE 'SELECT payload FROM segments.citus_catalog' INTO v_payload;
        IF v_payload IS NOT NULL THEN
            PERFORM segments._citus_load_catalog(v_payload);
        END IF;
    END IF;
    UPDATE segments.segment_state
       SET state = 'pending', requested_at = clock_timestamp(), retry_at = NULL,
           attempts = 0, last_error = NULL
     WHERE segment_id = ANY (ids);
    GET DIAGNOSTICS v_n = ROW_COUNT;
    PERFORM segments._notify_worker();
    RETURN v_n;
END
$$;
COMMENT ON FUNCTION segments._citus_pass_request(uuid[]) IS
    'Internal: on a Citus worker node, has its own worker evaluate these segments over its shards.';

-- A worker node's side of the coordinator's poll: how many of these
-- segments its worker has still to evaluate (busy), and those it failed.
-- A request can miss: Citus commits a catalog change on the coordinator
-- before it commits it on the nodes (two-phase commit), so a request can
-- arrive before the node has the segment, which then arrives ready and
-- unevaluated.  A segment missing here counts as busy; one ready but not
-- evaluated since it was requested (evaluated_at before requested_at) is
-- requested again here.
CREATE FUNCTION segments._citus_pass_poll(ids uuid[])
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_again uuid[];
    v_poll  jsonb;
BEGIN
    SELECT coalesce(array_agg(i), '{}') INTO v_again
      FROM unnest(ids) i LEFT JOIN segments.segment_state st ON st.segment_id = i
     WHERE st.segment_id IS NULL
        OR (st.state = 'ready' AND (st.evaluated_at IS NULL OR st.evaluated_at < st.requested_at));
    IF cardinality(v_again) > 0 THEN
        PERFORM segments._citus_pass_request(v_again);
    END IF;
    SELECT jsonb_build_object(
             'busy', count(*) FILTER (WHERE st.segment_id IS NULL OR st.state = ANY ('{pending,evaluating}')),
             'failed', coalesce(jsonb_agg(jsonb_build_object('id', st.segment_id, 'error', st.last_error))
                                FILTER (WHERE st.state = 'failed'), '[]'))
      INTO v_poll
      FROM unnest(ids) i LEFT JOIN segments.segment_state st ON st.segment_id = i;
    RETURN v_poll;
END
$$;
COMMENT ON FUNCTION segments._citus_pass_poll(uuid[]) IS
    'Internal: on a Citus worker node, whether these segments are evaluated since the coordinator asked (requested again when a request missed).';

-- One step of the coordinator's chunked pass (the cursor of its
-- segments.pass row): without a request yet, or with shards moved since
-- it (the placement digest differs), asks every worker node to evaluate
-- the segments and returns the new cursor; otherwise polls the nodes:
-- the same cursor while any is still evaluating (or cannot answer: a node
-- restarting resumes its pass), NULL once all are done, after counting
-- members (in parallel, on the workers) and failing on the coordinator the
-- segments a node failed.
CREATE FUNCTION segments._citus_pass_step(ids uuid[], step text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_source  regclass := (SELECT c.source FROM segments.config c);
    v_cursor  text := 'requested:' || segments._citus_placements(v_source);
    v_busy    boolean := false;
    v_failed  jsonb := '[]';
    v_counts  jsonb;
    r         record;
BEGIN
    IF step IS DISTINCT FROM v_cursor THEN
        FOR r IN EXECUTE 'SELECT nodename, nodeport, success, result'
                         '  FROM pg_catalog.run_command_on_workers($1)'
                 USING format('SELECT segments._citus_pass_request(%L::uuid[])', ids)
        LOOP
            IF NOT r.success THEN
                RAISE EXCEPTION 'the pass could not start on node %:%: %', r.nodename, r.nodeport, r.result
                    USING ERRCODE = 'object_not_in_prerequisite_state',
                          HINT = 'Every worker node must be up; the pass is tried again.';
            END IF;
        END LOOP;
        RETURN v_cursor;
    END IF;
    FOR r IN EXECUTE 'SELECT nodename, nodeport, success, result'
                     '  FROM pg_catalog.run_command_on_workers($1)'
             USING format('SELECT segments._citus_pass_poll(%L::uuid[])', ids)
    LOOP
        IF NOT r.success THEN
            v_busy := true;     -- down or restarting: its pass resumes
        ELSIF (r.result::jsonb ->> 'busy')::bigint > 0 THEN
            v_busy := true;
        ELSE
            v_failed := v_failed || (r.result::jsonb -> 'failed');
        END IF;
    END LOOP;
    IF v_busy THEN
        RETURN step;
    END IF;
    -- counted on the workers, in parallel
    SELECT coalesce(jsonb_object_agg(c.num, c.n), '{}') INTO v_counts
      FROM (SELECT u.num, pg_catalog.count(*) AS n
              FROM segments.member m
             CROSS JOIN LATERAL pg_catalog.unnest(segments._member_segs(m.data)) AS u(num)
             GROUP BY u.num) c;
    UPDATE segments.segment_state st
       SET member_count = coalesce((v_counts ->> s.num::text)::bigint, 0)
      FROM segments.segment s
     WHERE st.segment_id = s.id AND s.id = ANY (ids);
    -- a segment a node could not evaluate fails closed there: failed here
    UPDATE segments.segment_state st
       SET state = 'failed', member_count = 0, last_error = f.error,
           attempts = st.attempts + 1,
           retry_at = now() + segments._retry_after(st.attempts, false)
      FROM (SELECT DISTINCT ON (e ->> 'id') (e ->> 'id')::uuid AS id, e ->> 'error' AS error
              FROM jsonb_array_elements(v_failed) e) f
     WHERE st.segment_id = f.id AND st.state = ANY ('{evaluating,ready}');
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION segments._citus_pass_step(uuid[], text) IS
    'Internal: one step of the coordinator''s chunked pass on Citus: asks the worker nodes, then polls them.';

-- Internal (the coordinator's worker and the nodes', as the owner): not
-- PUBLIC's, as 09_roles.sql made the functions before it.
REVOKE ALL ON FUNCTION
    segments._citus_placements(regclass), segments._citus_pass_request(uuid[]),
    segments._citus_pass_poll(uuid[]), segments._citus_pass_step(uuid[], text)
    FROM PUBLIC;

-- segments install script, part 11: Citus, a contact source distributed over
-- several nodes (docs/citus.md).  Nothing here runs on plain PostgreSQL:
-- configure() calls these only for a source Citus distributes.

-- Is rel a Citus table (distributed, reference, or a Citus local table)?
-- With partmethod, only one of that method ('h': hash-distributed).
-- False without Citus.
CREATE FUNCTION segments._citus_table(rel regclass, partmethod "char" DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_found boolean;
BEGIN
    IF rel IS NULL OR to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition'
            ' WHERE logicalrelid OPERATOR(pg_catalog.=) $1'
            '   AND ($2 IS NULL OR partmethod OPERATOR(pg_catalog.=) $2))'
       INTO v_found USING rel, partmethod;
    RETURN v_found;
END
$$;
COMMENT ON FUNCTION segments._citus_table(regclass, "char") IS
    'Internal: whether a table is managed by Citus (of one partition method, if given).';

-- Is rel a hash-distributed Citus table?  (false without Citus)
CREATE FUNCTION segments._citus_distributed(rel regclass)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT segments._citus_table(rel, 'h') $$;
COMMENT ON FUNCTION segments._citus_distributed(regclass) IS
    'Internal: whether a table is distributed by Citus (hash).';

-- Is the configured source distributed (on this node's metadata)?
CREATE FUNCTION segments._citus_active()
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT coalesce((SELECT segments._citus_distributed(c.source) FROM segments.config c), false) $$;
COMMENT ON FUNCTION segments._citus_active() IS
    'Internal: whether the configured source is a Citus distributed table.';

-- Does segments.member suit the source: distributed (and colocated with
-- it) exactly when the source is?
CREATE FUNCTION segments._citus_storage_fits(source regclass)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_same boolean;
BEGIN
    IF segments._citus_distributed(to_regclass('segments.member')) IS DISTINCT FROM
       segments._citus_distributed(source) THEN
        RETURN false;
    ELSIF NOT segments._citus_distributed(source) THEN
        RETURN true;
    END IF;
    EXECUTE 'SELECT (SELECT colocationid FROM pg_catalog.pg_dist_partition WHERE logicalrelid OPERATOR(pg_catalog.=) $1)'
            '   OPERATOR(pg_catalog.=) (SELECT colocationid FROM pg_catalog.pg_dist_partition'
            '                            WHERE logicalrelid OPERATOR(pg_catalog.=) ''segments.member''::pg_catalog.regclass)'
       INTO v_same USING source;
    RETURN coalesce(v_same, false);
END
$$;
COMMENT ON FUNCTION segments._citus_storage_fits(regclass) IS
    'Internal: whether segments.member is distributed and colocated as the source requires.';

-- Is this node the Citus coordinator (or not a Citus node at all)?
CREATE FUNCTION segments._citus_coordinator()
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_group integer;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_local_group') IS NULL THEN
        RETURN true;
    END IF;
    EXECUTE 'SELECT groupid FROM pg_catalog.pg_dist_local_group' INTO v_group;
    RETURN v_group = 0;
END
$$;
COMMENT ON FUNCTION segments._citus_coordinator() IS
    'Internal: whether this node is the Citus coordinator (true without Citus).';

-- configure() of a distributed source, first: what the design supports.
-- A source distributed by another column (the tenant, as multi-tenant apps
-- do) cannot have a unique index on the key alone, so this comes before
-- configure()'s own check of that index.
CREATE FUNCTION segments._citus_check(source regclass, key_column name)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_dist_column text;
BEGIN
    IF NOT segments._citus_distributed(source) THEN
        RAISE EXCEPTION 'segments on Citus supports hash-distributed sources only, and "%" is a reference table or a Citus local table',
                        source
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Distribute the source by the contact key with create_distributed_table(), or undistribute it (undistribute_table()).';
    END IF;
    EXECUTE 'SELECT pg_catalog.column_to_column_name(logicalrelid, partkey)'
            '  FROM pg_catalog.pg_dist_partition WHERE logicalrelid OPERATOR(pg_catalog.=) $1'
       INTO v_dist_column USING source;
    IF v_dist_column IS DISTINCT FROM key_column::text THEN
        RAISE EXCEPTION 'segments on Citus needs "%" distributed by its key column "%", not by "%"',
                        source, key_column, v_dist_column
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Distribute the source by the contact key (SELECT create_distributed_table(''' || source::text || ''', ''' || key_column || ''')); sources distributed by a tenant column are not supported yet.';
    END IF;
    IF NOT segments._citus_coordinator() THEN
        RAISE EXCEPTION 'segments.configure() of a distributed source must run on the Citus coordinator'
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Connect to the coordinator and call segments.configure() there.';
    END IF;
END
$$;
COMMENT ON FUNCTION segments._citus_check(regclass, name) IS
    'Internal: refuses a distributed source segments cannot serve yet.';

-- configure() of a distributed source, then: membership distributed and
-- colocated with the source (a contact's membership lives on the node, and
-- in the shard group, of its row), capture on the shards.
CREATE FUNCTION segments._citus_configure(source regclass, key_column name,
                                          tenant_column name)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_fn text;
BEGIN

    -- membership history records statements on segments.member with
    -- transition tables, which Citus cannot run on shards: not kept here
    FOR v_fn IN SELECT t.tgname FROM pg_trigger t
                 WHERE t.tgrelid = 'segments.member'::regclass AND NOT t.tgisinternal
    LOOP
        EXECUTE format('DROP TRIGGER %I ON segments.member', v_fn);
    END LOOP;
    -- configure() built the storage with DDL propagation off: its views and
    -- functions are the coordinator's; the table's shards are made here
    PERFORM pg_catalog.set_config('citus.enable_ddl_propagation', 'on', true);
    IF NOT segments._citus_distributed('segments.member') THEN
        -- Citus leaves an extension's tables to the extension on each node,
        -- and CREATE EXTENSION on a node Citus adds later does not make this
        -- one (citus_add_node() would fail): it stays out of the extension
        -- (DROP EXTENSION segments CASCADE drops it)
        IF EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = 'segments.member'::regclass
                      AND d.deptype = 'e') THEN
            EXECUTE 'ALTER EXTENSION segments DROP TABLE segments.member';
        END IF;
        PERFORM pg_catalog.create_distributed_table('segments.member', 'contact_id',
                                                    colocate_with => source::text);
    END IF;
    -- Readers: Citus reads a shard as the connecting role, so the view's
    -- owner rights do not reach the shards.  segments_read may read the
    -- table, but only the rows segments.membership would show it (its
    -- tenant's contacts); the policy reaches every shard.
    EXECUTE 'GRANT SELECT ON segments.member TO segments_read';
    EXECUTE 'ALTER TABLE segments.member ENABLE ROW LEVEL SECURITY';
    EXECUTE 'DROP POLICY IF EXISTS member_visible ON segments.member';
    EXECUTE 'CREATE POLICY member_visible ON segments.member FOR SELECT TO segments_read'
            ' USING (segments._contact_visible(tenant))';
    -- The catalog reaches the workers through a reference table: a write
    -- of it is one transaction on every node (two-phase commit), and its
    -- trigger loads the copy there (_citus_catalog_arrived()).
    PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true);
    IF to_regclass('segments.citus_catalog') IS NULL THEN
        CREATE TABLE segments.citus_catalog (
            singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            payload   jsonb NOT NULL
        );
        REVOKE ALL ON segments.citus_catalog FROM PUBLIC;
        PERFORM pg_catalog.create_reference_table('segments.citus_catalog');
        CREATE TRIGGER citus_catalog_arrived
            AFTER INSERT OR UPDATE ON segments.citus_catalog
            FOR EACH ROW EXECUTE FUNCTION segments._citus_catalog_arrived();
    END IF;
    -- the workers' copy, committed with this configuration
    PERFORM segments._citus_sync();
    -- capture: the row trigger on every shard, on the shard's node
    PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true);
END
$$;
COMMENT ON FUNCTION segments._citus_configure(regclass, name, name) IS
    'Internal: sets up membership and capture for a source distributed by Citus.';

-- The nodes (groups) holding a copy of segments.citus_catalog: Citus
-- replicates reference tables to a node added later when shards are first
-- moved there (citus_rebalance_start), without firing triggers.
CREATE FUNCTION segments._citus_catalog_groups()
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_groups jsonb;
BEGIN
    EXECUTE 'SELECT coalesce(pg_catalog.jsonb_agg(p.groupid ORDER BY p.groupid), ''[]'')'
            '  FROM pg_catalog.pg_dist_placement p JOIN pg_catalog.pg_dist_shard s'
            '    ON s.shardid OPERATOR(pg_catalog.=) p.shardid'
            ' WHERE s.logicalrelid OPERATOR(pg_catalog.=) ''segments.citus_catalog''::pg_catalog.regclass'
       INTO v_groups;
    RETURN v_groups;
END
$$;
COMMENT ON FUNCTION segments._citus_catalog_groups() IS
    'Internal: the Citus groups holding a copy of segments.citus_catalog.';

-- The catalog (configuration and definitions) as the workers load it.
-- Segment numbers are copied as they are: stored membership names
-- segments by number on every node.
CREATE FUNCTION segments._citus_payload()
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object(
             'config', (SELECT to_jsonb(c) OPERATOR(pg_catalog.||)
                               jsonb_build_object('source', c.source::text,
                                                  'key_type', c.key_type::text)
                          FROM segments.config c),
             'segments', coalesce((SELECT jsonb_agg(to_jsonb(s) ORDER BY s.num)
                                     FROM segments.segment s), '[]'),
             'groups', segments._citus_catalog_groups())
$$;
COMMENT ON FUNCTION segments._citus_payload() IS
    'Internal: the segments catalog as Citus workers load it.';

-- Copies the catalog to every worker, in the caller's transaction: a write
-- of the reference table segments.citus_catalog, which Citus makes on every
-- node with two-phase commit (a rolled-back catalog change leaves nothing on
-- the workers; a node that cannot take it fails the change).
CREATE FUNCTION segments._citus_sync()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_error text;
BEGIN
    BEGIN
        EXECUTE 'INSERT INTO segments.citus_catalog AS c (singleton, payload) VALUES (true, $1)'
                ' ON CONFLICT (singleton) DO UPDATE SET payload = EXCLUDED.payload'
          USING segments._citus_payload();
    EXCEPTION WHEN connection_exception THEN
        -- a node down: the change fails whole (its transaction rolls back
        -- everywhere), with what to do about it
        GET STACKED DIAGNOSTICS v_error = MESSAGE_TEXT;
        RAISE EXCEPTION 'segments could not copy its catalog to every Citus node: %', v_error
            USING ERRCODE = SQLSTATE,
                  HINT = 'A change of segments is copied to every worker node in its own transaction, so it needs every node up: start the node, or remove it from the cluster (citus_remove_node()), then make the change again. Nothing was changed.';
    END;
    -- the workers' copies are locked until this transaction ends (_citus_pass)
    PERFORM pg_catalog.set_config('segments_citus.catalog_written', 'on', true);
END
$$;
COMMENT ON FUNCTION segments._citus_sync() IS
    'Internal: copies the configuration and segment definitions to every Citus worker, transactionally.';

-- On every node holding segments.citus_catalog (a reference table): a
-- worker loads the catalog written on the coordinator, in its transaction.
CREATE FUNCTION segments._citus_catalog_arrived() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT segments._citus_coordinator() THEN
        PERFORM segments._citus_load_catalog(NEW.payload);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION segments._citus_catalog_arrived() IS
    'Internal: on a Citus worker, loads the catalog copy the coordinator wrote.';

-- A worker's side of _citus_sync(): the catalog as the coordinator has it.
-- States are "ready": this node's incremental path applies changes to every
-- segment; full passes are the coordinator's to start.
CREATE FUNCTION segments._citus_load_catalog(payload jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_config   jsonb := payload -> 'config';
    v_source   regclass;
    v_busy     uuid[];
    v_changed  uuid[];
    v_inserted uuid[];
BEGIN
    -- The source by the coordinator's name for it; a name that does not
    -- resolve here is of a rename (ALTER TABLE ... RENAME TO, SET SCHEMA)
    -- not applied on this node yet, in either order: the configured table
    -- (by OID) is still the one
    IF v_config IS NOT NULL AND jsonb_typeof(v_config) <> 'null' THEN
        v_source := to_regclass(v_config ->> 'source');
        IF v_source IS NULL THEN
            v_source := (SELECT c.source FROM segments.config c);
        END IF;
        IF v_source IS NULL THEN
            RAISE EXCEPTION 'the segments source % is not on this Citus node', v_config ->> 'source'
                USING ERRCODE = 'undefined_table';
        END IF;
    END IF;
    -- segments in a pass of this node's worker (the coordinator asked for
    -- it: _citus_pass_request) stay in it
    SELECT coalesce(array_agg(segment_id), '{}') INTO v_busy
      FROM segments.segment_state WHERE state IN ('pending', 'evaluating');
    IF v_config IS NULL OR jsonb_typeof(v_config) = 'null' THEN
        DELETE FROM segments.config;
    ELSIF NOT EXISTS (SELECT 1 FROM segments.config c
                       WHERE c.source = v_source
                         AND c.key_column = v_config ->> 'key_column'
                         AND c.key_type::text = v_config ->> 'key_type'
                         AND c.tenant_column IS NOT DISTINCT FROM (v_config ->> 'tenant_column')::name
                         AND c.traits_column IS NOT DISTINCT FROM (v_config ->> 'traits_column')::name) THEN
        INSERT INTO segments.config AS c (singleton, source, key_column, key_type,
                                          tenant_column, traits_column, configured_at)
        VALUES (true, v_source, v_config ->> 'key_column',
                (v_config ->> 'key_type')::regtype, v_config ->> 'tenant_column',
                v_config ->> 'traits_column', (v_config ->> 'configured_at')::timestamptz)
        ON CONFLICT (singleton) DO UPDATE
           SET source = EXCLUDED.source, key_column = EXCLUDED.key_column,
               key_type = EXCLUDED.key_type, tenant_column = EXCLUDED.tenant_column,
               traits_column = EXCLUDED.traits_column, configured_at = EXCLUDED.configured_at;
    END IF;

    DELETE FROM segments.segment s
     WHERE s.id <> ALL (ARRAY(SELECT (e ->> 'id')::uuid
                                FROM jsonb_array_elements(payload -> 'segments') e));
    WITH loaded AS (
        INSERT INTO segments.segment AS s
        SELECT * FROM jsonb_populate_recordset(NULL::segments.segment, payload -> 'segments')
        ON CONFLICT (id) DO UPDATE
           SET num = EXCLUDED.num, tenant = EXCLUDED.tenant, name = EXCLUDED.name,
               description = EXCLUDED.description, definition = EXCLUDED.definition,
               refs = EXCLUDED.refs, depends_on = EXCLUDED.depends_on,
               uses_time = EXCLUDED.uses_time, schedule = EXCLUDED.schedule,
               created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at
         WHERE (s.*) IS DISTINCT FROM (EXCLUDED.*)
        RETURNING s.id, s.xmax OPERATOR(pg_catalog.=) 0 AS inserted)
    SELECT coalesce(array_agg(id) FILTER (WHERE NOT inserted), '{}'),
           coalesce(array_agg(id) FILTER (WHERE inserted), '{}')
      INTO v_changed, v_inserted FROM loaded;
    -- new segments wait, ready, for the coordinator's request; a failed one
    -- too.  Not by the pending states read above: a pass request committed
    -- since (_citus_pass_request) would be undone
    UPDATE segments.segment_state SET state = 'ready', last_error = NULL
     WHERE state = 'failed' OR (state = 'pending' AND segment_id = ANY (v_inserted));
    -- changed during this node's pass: evaluated again, with the new definition
    UPDATE segments.segment_state SET state = 'pending', requested_at = clock_timestamp()
     WHERE segment_id = ANY (v_busy) AND segment_id = ANY (v_changed)
       AND state IN ('pending', 'evaluating');
END
$$;
COMMENT ON FUNCTION segments._citus_load_catalog(jsonb) IS
    'Internal: on a Citus worker, replaces the catalog with the coordinator''s copy.';

-- The workers get the coordinator's catalog as it is now: after a change to
-- a definition or to the configuration (the triggers below), and after the
-- source was renamed or moved to another schema (the ddl_command_end
-- trigger, src/schema_ddl.c), in the transaction that made the change.  The
-- configuration holds the source by OID on every node, so a rename changes
-- nothing else; a worker loading the copy before the rename reaches it
-- keeps its table (_citus_load_catalog).  Off Citus, and on a worker, it
-- does nothing.
CREATE FUNCTION segments._citus_push_catalog()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF segments._citus_active() AND segments._citus_coordinator()
       AND to_regclass('segments.citus_catalog') IS NOT NULL THEN
        PERFORM segments._citus_sync();
    END IF;
END
$$;
COMMENT ON FUNCTION segments._citus_push_catalog() IS
    'Internal: on a Citus coordinator, copies the catalog to the workers.';

-- As the owner: whoever changes a segment, the copy is written with the
-- extension's rights (the reference table is the owner's).
CREATE FUNCTION segments._citus_catalog_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM segments._citus_push_catalog();
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION segments._citus_catalog_changed() IS
    'Internal: copies changed segment definitions to the Citus workers.';
CREATE TRIGGER citus_catalog_changed
    AFTER INSERT OR UPDATE OR DELETE ON segments.segment
    FOR EACH STATEMENT EXECUTE FUNCTION segments._citus_catalog_changed();
CREATE TRIGGER citus_catalog_changed
    AFTER INSERT OR UPDATE OR DELETE ON segments.config
    FOR EACH STATEMENT EXECUTE FUNCTION segments._citus_catalog_changed();

-- A full pass on the coordinator: every worker evaluates the shards placed
-- on it (in parallel: run_command_on_workers), then the coordinator counts
-- members and settles the segments' states.
CREATE FUNCTION segments._citus_pass(ids uuid[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_start  timestamptz := clock_timestamp();
    v_source regclass := (SELECT c.source FROM segments.config c);
    v_placed text;
    v_rounds integer := 0;
    v_failed jsonb := '[]';
    v_counts jsonb;
    r        record;
BEGIN
    -- The workers' passes run in their own transactions and load the
    -- committed catalog first: after a catalog change in this transaction
    -- they would wait for it to end, and it waits for them.
    IF current_setting('segments_citus.catalog_written', true) = 'on' THEN
        RAISE EXCEPTION 'a pass on Citus cannot run in the transaction that changed segments'
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Commit the change first: the segments worker evaluates new and changed segments by itself, or call segments.refresh() after the commit.';
    END IF;
    -- A node's pass holds Citus's metadata lock on its membership shards,
    -- so no shard moves under it; one moved between two nodes' passes
    -- (where the shards are changed meanwhile) is evaluated by passing again.
    LOOP
        v_placed := segments._citus_placements(v_source);
        FOR r IN EXECUTE 'SELECT nodename, nodeport, success, result'
                         '  FROM pg_catalog.run_command_on_workers($1)'
                 USING format('SELECT segments._citus_refresh_local(%L::uuid[])', ids)
        LOOP
            IF NOT r.success THEN
                RAISE EXCEPTION 'evaluation on node %:% failed: %', r.nodename, r.nodeport, r.result
                    USING ERRCODE = 'object_not_in_prerequisite_state';
            END IF;
        END LOOP;
        EXIT WHEN v_placed = segments._citus_placements(v_source);
        v_rounds := v_rounds + 1;
        IF v_rounds >= 3 THEN
            RAISE EXCEPTION 'shards of % kept moving during the pass', v_source
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Call segments.refresh() again once the rebalance is over (citus_rebalance_wait()).';
        END IF;
    END LOOP;
    -- segments a worker could not evaluate (they fail closed there)
    FOR r IN EXECUTE 'SELECT success, result FROM pg_catalog.run_command_on_workers($1)'
             USING 'SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(''id'', segment_id, ''error'', last_error)), ''[]'')'
                   '  FROM segments.segment_state WHERE state OPERATOR(pg_catalog.=) ''failed'''
    LOOP
        IF r.success THEN
            v_failed := v_failed || r.result::jsonb;
        END IF;
    END LOOP;

    -- counted on the workers, in parallel; the update is the coordinator's
    SELECT coalesce(jsonb_object_agg(c.num, c.n), '{}') INTO v_counts
      FROM (SELECT u.num, pg_catalog.count(*) AS n
              FROM segments.member m
             CROSS JOIN LATERAL pg_catalog.unnest(segments._member_segs(m.data)) AS u(num)
             GROUP BY u.num) c;
    UPDATE segments.segment_state st
       SET state = CASE WHEN f.error IS NULL THEN 'ready' ELSE 'failed' END,
           member_count = CASE WHEN f.error IS NULL
                               THEN coalesce((v_counts ->> s.num::text)::bigint, 0) ELSE 0 END,
           evaluated_at = CASE WHEN f.error IS NULL THEN now() ELSE st.evaluated_at END,
           last_duration = clock_timestamp() - v_start,
           last_error = f.error, attempts = 0, retry_at = NULL
      FROM segments.segment s
      LEFT JOIN (SELECT DISTINCT ON (e ->> 'id') (e ->> 'id')::uuid AS id, e ->> 'error' AS error
                   FROM jsonb_array_elements(v_failed) e) f ON f.id = s.id
     WHERE st.segment_id = s.id AND (ids IS NULL OR s.id = ANY (ids));
END
$$;
COMMENT ON FUNCTION segments._citus_pass(uuid[]) IS
    'Internal: a full pass of a distributed source, every worker evaluating its own shards.';

CREATE FUNCTION segments._citus_evaluate_local(ids uuid[])
RETURNS void
LANGUAGE c
AS 'MODULE_PATHNAME', 'segments_citus_refresh_local';
COMMENT ON FUNCTION segments._citus_evaluate_local(uuid[]) IS
    'Internal: on a Citus node, evaluates the segments (NULL: all) over the shards of the source placed on it.';
-- A worker's part of a coordinator's pass: the committed catalog (this
-- node's copy of segments.citus_catalog: a node that joined since the last
-- catalog change has had none loaded yet), then its shards.
CREATE FUNCTION segments._citus_refresh_local(ids uuid[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_payload jsonb;
BEGIN
    IF to_regclass('segments.citus_catalog') IS NOT NULL THEN
        EXECUTE 'SELECT payload FROM segments.citus_catalog' INTO v_payload;
        IF v_payload IS NOT NULL THEN
            PERFORM segments._citus_load_catalog(v_payload);
        END IF;
    END IF;
    PERFORM segments._citus_evaluate_local(ids);
END
$$;
COMMENT ON FUNCTION segments._citus_refresh_local(uuid[]) IS
    'Internal: on a Citus node, a full pass over the shards of the source placed on it, with the committed catalog.';

-- wait() on the coordinator: every worker's wait() too (their queues hold
-- what capture on their shards queued).
CREATE FUNCTION segments._citus_wait(timeout interval)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_done boolean;
BEGIN
    EXECUTE 'SELECT coalesce(pg_catalog.bool_and(success AND result = ''t''), true)'
            '  FROM pg_catalog.run_command_on_workers($1)'
       INTO v_done
      USING format('SELECT segments.wait(%L::interval)', timeout);
    RETURN v_done;
END
$$;
COMMENT ON FUNCTION segments._citus_wait(interval) IS
    'Internal: waits for every Citus worker''s own segments.wait().';

-- The coordinator's worker, every round: a node that got a copy of the
-- catalog table since the last copy (a node added, then shards moved to it)
-- gets the catalog now, and every segment is evaluated again, so that what
-- changed on its shards before it could capture is not missed.  A failure
-- is a warning: the next round tries again.
CREATE FUNCTION segments._citus_nodes_check()
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_had jsonb;
BEGIN
    IF to_regclass('segments.citus_catalog') IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE 'SELECT payload -> ''groups'' FROM segments.citus_catalog' INTO v_had;
    IF v_had IS NOT DISTINCT FROM segments._citus_catalog_groups() THEN
        RETURN false;
    END IF;
    BEGIN
        PERFORM segments._citus_sync();
        UPDATE segments.segment_state
           SET state = 'pending', requested_at = clock_timestamp()
         WHERE state = 'ready';
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'segments could not copy its catalog to a new Citus node yet: %', SQLERRM;
        RETURN false;
    END;
    RETURN true;
END
$$;
COMMENT ON FUNCTION segments._citus_nodes_check() IS
    'Internal: copies the catalog to Citus nodes that joined, and has every segment evaluated again.';

-- The coordinator's member counts, from the nodes' own: each node keeps
-- the count of the members on its shards (its passes set it, its
-- incremental path adds what it changed), so their sum is the segment's.
-- Run by the coordinator's worker about once a second (CitusNodesCheck()):
-- after a pass the coordinator counts members itself (_citus_pass_step(),
-- _citus_pass()); this brings the counts along with the changes the nodes
-- applied since.  A segment is left as it is while the coordinator or a
-- node has it in a pass, or when a node cannot answer (down): a partial
-- sum is never stored.  Returns how many counts changed.
CREATE FUNCTION segments._citus_counts()
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_nodes  jsonb := '[]';
    v_n      integer := 0;
    v_done   integer;
    r        record;
BEGIN
    FOR r IN EXECUTE 'SELECT success, result FROM pg_catalog.run_command_on_workers($1)'
             USING 'SELECT coalesce(pg_catalog.jsonb_object_agg(segment_id,'
                   '         pg_catalog.jsonb_build_array(state, member_count)), ''{}'')'
                   '  FROM segments.segment_state'
    LOOP
        IF NOT r.success THEN
            RETURN 0;           -- a node down or not ready: counts kept
        END IF;
        v_nodes := v_nodes || jsonb_build_array(r.result::jsonb);
        v_n := v_n + 1;
    END LOOP;
    IF v_n = 0 THEN
        RETURN 0;
    END IF;
    WITH per_node AS (
        SELECT e.key::uuid AS id, e.value ->> 0 AS state, (e.value ->> 1)::bigint AS n
          FROM jsonb_array_elements(v_nodes) node, jsonb_each(node) e),
    summed AS (
        SELECT id, sum(n)::bigint AS n
          FROM per_node GROUP BY id
         HAVING count(*) = v_n AND bool_and(state = 'ready'))
    UPDATE segments.segment_state st SET member_count = summed.n
      FROM summed
     WHERE st.segment_id = summed.id AND st.state = 'ready'
       AND st.member_count IS DISTINCT FROM summed.n;
    GET DIAGNOSTICS v_done = ROW_COUNT;
    RETURN v_done;
EXCEPTION WHEN OTHERS THEN
    -- never in the way of the worker's round: the next one tries again
    RAISE WARNING 'segments could not read the member counts of the Citus nodes: %', SQLERRM;
    RETURN 0;
END
$$;
COMMENT ON FUNCTION segments._citus_counts() IS
    'Internal: on a Citus coordinator, member counts as the sum of every worker''s own.';

-- verify() of the shards on a worker node, for the coordinator's session
-- of this tenant (NULL: none): the contacts of that tenant only.
CREATE FUNCTION segments._citus_verify_local(segment uuid, tenant text)
RETURNS TABLE (segment_id uuid, name text, state text, missing bigint, extra bigint,
               missing_sample text[], extra_sample text[])
LANGUAGE c CALLED ON NULL INPUT
AS 'MODULE_PATHNAME', 'segments_citus_verify_local';
COMMENT ON FUNCTION segments._citus_verify_local(uuid, text) IS
    'Internal: segments.verify() of the shards on a Citus worker node, for a session of this tenant.';

-- verify() on the coordinator: every worker compares the shards placed on
-- it (segments._citus_verify_local() there, for the session's tenant), and
-- the differences add up, per segment, with the coordinator's name and
-- state and a few sample keys.
CREATE FUNCTION segments._citus_verify(segment uuid, tenant text)
RETURNS TABLE (segment_id uuid, name text, state text, missing bigint, extra bigint,
               missing_sample text[], extra_sample text[])
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rows jsonb := '[]';
    r      record;
BEGIN
    FOR r IN EXECUTE 'SELECT nodename, nodeport, success, result'
                     '  FROM pg_catalog.run_command_on_workers($1)'
             USING format('SELECT coalesce(pg_catalog.jsonb_agg(v), ''[]'') FROM segments._citus_verify_local(%L::uuid, %L) v',
                          segment, tenant)
    LOOP
        IF NOT r.success THEN
            RAISE EXCEPTION 'verify() on node %:% failed: %', r.nodename, r.nodeport, r.result
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Every worker must be up and hold the segment catalog (segments.wait() returns true once it does); then call segments.verify() again.';
        END IF;
        v_rows := v_rows || r.result::jsonb;
    END LOOP;
    RETURN QUERY
    WITH v AS (SELECT (e ->> 'segment_id')::uuid AS id, e FROM jsonb_array_elements(v_rows) e)
    SELECT v.id, s.name, coalesce(st.state, 'pending'),
           sum((v.e ->> 'missing')::bigint)::bigint, sum((v.e ->> 'extra')::bigint)::bigint,
           ARRAY(SELECT k FROM v w, jsonb_array_elements_text(coalesce(nullif(w.e -> 'missing_sample', 'null'), '[]')) k
                  WHERE w.id = v.id ORDER BY k LIMIT 5),
           ARRAY(SELECT k FROM v w, jsonb_array_elements_text(coalesce(nullif(w.e -> 'extra_sample', 'null'), '[]')) k
                  WHERE w.id = v.id ORDER BY k LIMIT 5)
      FROM v JOIN segments.segment s ON s.id = v.id
      LEFT JOIN segments.segment_state st ON st.segment_id = v.id
     GROUP BY v.id, s.name, st.state
     ORDER BY s.name;
END
$$;
COMMENT ON FUNCTION segments._citus_verify(uuid, text) IS
    'Internal: segments.verify() on a Citus coordinator, the sum of every worker''s.';

-- A configuration row arriving on the coordinator (a restore loads it as
-- data; configure() writes it) for a distributed source whose membership
-- is not distributed with it yet: membership is built (DDL propagation off,
-- as configure() does) and distributed, colocated with the source.  True
-- when it did so; false elsewhere (plain PostgreSQL, a worker, storage
-- already fitting): the caller builds plain storage as usual.
CREATE FUNCTION segments._citus_config_arrived(source regclass, key_column name,
                                               tenant_column name, key_type regtype)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT segments._citus_distributed(source) OR NOT segments._citus_coordinator()
       OR segments._citus_storage_fits(source) THEN
        RETURN false;
    END IF;
    PERFORM segments._citus_check(source, key_column);
    IF to_regclass('segments.member') IS NULL
       OR (SELECT a.atttypid FROM pg_attribute a
            WHERE a.attrelid = to_regclass('segments.member') AND a.attnum = 1)
          IS DISTINCT FROM key_type THEN
        PERFORM pg_catalog.set_config('citus.enable_ddl_propagation', 'off', true);
        PERFORM segments._build_storage(key_type);
    END IF;
    PERFORM segments._citus_configure(source, key_column, tenant_column);
    RETURN true;
END
$$;
COMMENT ON FUNCTION segments._citus_config_arrived(regclass, name, name, regtype) IS
    'Internal: distributes membership with a distributed source when its configuration arrives (a restore).';

-- DROP EXTENSION segments on the coordinator (the event trigger below,
-- before the extension's objects go): segments.member and
-- segments.citus_catalog, kept out of the extension on Citus
-- (_citus_configure), are dropped first, as distributed tables: Citus
-- drops their shards and the workers' tables, in the drop's transaction
-- (a DROP EXTENSION that fails leaves them).  The extension's views over
-- segments.member leave the extension and go with it; a user's object
-- depending on them fails the drop unless it CASCADEs, as on one node.
-- Dropped as members of the extension instead, Citus would leave their
-- shards behind on the nodes.
CREATE FUNCTION segments._citus_drop_storage(cascade boolean)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rel   regclass;
    v_view  regclass;
    v_level text := current_setting('client_min_messages');
BEGIN
    IF NOT segments._citus_coordinator() THEN
        RETURN;
    END IF;
    FOREACH v_rel IN ARRAY ARRAY[to_regclass('segments.member'), to_regclass('segments.citus_catalog')] LOOP
        IF v_rel IS NULL OR NOT segments._citus_table(v_rel)
           OR EXISTS (SELECT 1 FROM pg_depend d
                       WHERE d.classid = 'pg_class'::regclass AND d.objid = v_rel
                         AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e') THEN
            CONTINUE;
        END IF;
        FOR v_view IN SELECT DISTINCT r.ev_class::regclass
                        FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
                       WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = v_rel
                         AND r.ev_class <> v_rel
                         AND EXISTS (SELECT 1 FROM pg_depend e
                                      WHERE e.classid = 'pg_class'::regclass AND e.objid = r.ev_class
                                        AND e.refclassid = 'pg_extension'::regclass AND e.deptype = 'e')
        LOOP
            -- (Citus notes that it does not propagate this: nothing to)
            PERFORM pg_catalog.set_config('client_min_messages', 'warning', true);
            EXECUTE format('ALTER EXTENSION segments DROP VIEW %s', v_view);
            PERFORM pg_catalog.set_config('client_min_messages', v_level, true);
            EXECUTE format('DROP VIEW %s%s', v_view, CASE WHEN cascade THEN ' CASCADE' ELSE '' END);
        END LOOP;
        EXECUTE format('DROP TABLE %s%s', v_rel, CASE WHEN cascade THEN ' CASCADE' ELSE '' END);
    END LOOP;
END
$$;
COMMENT ON FUNCTION segments._citus_drop_storage(boolean) IS
    'Internal: before DROP EXTENSION segments on a Citus coordinator, drops its distributed tables (and their shards).';
CREATE FUNCTION segments._citus_drop() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'segments_citus_drop';
COMMENT ON FUNCTION segments._citus_drop() IS
    'Internal: on Citus, makes DROP EXTENSION segments drop the distributed membership and catalog copy too.';
CREATE EVENT TRIGGER segments_citus_drop ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION')
    EXECUTE FUNCTION segments._citus_drop();

-- All of the above is internal, and created after 09_roles.sql revoked
-- PUBLIC's EXECUTE on the schema's functions: revoked here.  Its callers
-- run as the extension's owner: configure() and DROP EXTENSION are the
-- owner's, the worker runs as the owner, refresh(), wait(), verify() and
-- preview() switch to it in C (citus.c), _history_kept() and _ddl_end() are
-- SECURITY DEFINER, and a trigger or event trigger needs no EXECUTE when it
-- fires.  run_command_on_workers reaches the nodes as that same role.
REVOKE ALL ON FUNCTION
    segments._citus_table(regclass, "char"), segments._citus_distributed(regclass),
    segments._citus_active(), segments._citus_storage_fits(regclass),
    segments._citus_coordinator(), segments._citus_check(regclass, name),
    segments._citus_configure(regclass, name, name), segments._citus_catalog_groups(),
    segments._citus_payload(), segments._citus_sync(), segments._citus_catalog_arrived(),
    segments._citus_load_catalog(jsonb), segments._citus_push_catalog(),
    segments._citus_catalog_changed(), segments._citus_pass(uuid[]),
    segments._citus_evaluate_local(uuid[]), segments._citus_refresh_local(uuid[]),
    segments._citus_wait(interval), segments._citus_nodes_check(), segments._citus_counts(),
    segments._citus_verify(uuid, text), segments._citus_verify_local(uuid, text),
    segments._citus_config_arrived(regclass, name, name, regtype),
    segments._citus_drop_storage(boolean), segments._citus_drop()
    FROM PUBLIC;

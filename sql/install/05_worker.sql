-- segments install script, part 5: change capture, the worker's queue,
-- waiting and watching.  The background worker itself needs
-- shared_preload_libraries = 'segments'; see "The background worker" in README.md.

-- Contact changes committed on the source, waiting for the worker.  The
-- capture trigger collects the keys a transaction changed and inserts them
-- here when it commits (in it: as durable as the change itself); the
-- worker deletes a batch in the transaction that applies it.  Ids only
-- need to be unique (wait() takes the largest visible one): each backend
-- takes them 64 at a time.
CREATE SEQUENCE segments.change_queue_id_seq CACHE 64;
CREATE TABLE segments.change_queue (
    id          bigint PRIMARY KEY DEFAULT nextval('segments.change_queue_id_seq'),
    contact     text,           -- the contact key as text; NULL: every contact (TRUNCATE)
    enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp()
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000,
        autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 10000);
ALTER SEQUENCE segments.change_queue_id_seq OWNED BY segments.change_queue.id;
COMMENT ON TABLE segments.change_queue IS
    'Contact changes committed on the source and not yet applied to membership by the worker.';

-- Queue entries the worker could not apply (an error that is not
-- transient, such as a key the membership storage cannot hold), set aside
-- with the error so that they never hold back the others.
CREATE TABLE segments.change_queue_failed (
    id          bigint PRIMARY KEY,
    contact     text,           -- NULL: every contact
    enqueued_at timestamptz NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    error       text NOT NULL
);
COMMENT ON TABLE segments.change_queue_failed IS
    'Contact changes the worker could not apply, with the error; segments.retry_failed_changes() queues them again.';

CREATE FUNCTION segments.retry_failed_changes()
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    WITH moved AS (DELETE FROM segments.change_queue_failed RETURNING id, contact, enqueued_at)
    INSERT INTO segments.change_queue (id, contact, enqueued_at)
    SELECT id, contact, enqueued_at FROM moved;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM segments._notify_worker();
    RETURN n;
END
$$;
COMMENT ON FUNCTION segments.retry_failed_changes() IS
    'Queues the changes set aside in segments.change_queue_failed again; returns how many.';

-- Change capture on the source: AFTER row trigger for INSERT, UPDATE and
-- DELETE (COPY fires it too), AFTER TRUNCATE statement trigger.
CREATE FUNCTION segments._capture() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'segments_capture';
COMMENT ON FUNCTION segments._capture() IS
    'Internal: queues the keys of changed contacts for the worker (trigger on the source).';

-- Puts the capture triggers on the source (NULL: nowhere) and removes them
-- from any other table; empties the queue, since configure() re-evaluates
-- everything right after.
CREATE FUNCTION segments._install_capture(source regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT t.tgrelid::regclass AS rel, t.tgname
               FROM pg_trigger t
              WHERE t.tgfoid = 'segments._capture()'::regprocedure
                AND t.tgparentid = 0
                AND t.tgrelid IS DISTINCT FROM source::oid
    LOOP
        -- Citus drops a trigger of a distributed table (and its shards')
        -- only with unsafe triggers allowed, as configure() made it
        IF segments._citus_table(r.rel) THEN
            PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true);
        END IF;
        EXECUTE format('DROP TRIGGER %I ON %s', r.tgname, r.rel);
    END LOOP;
    IF source IS NOT NULL THEN
        IF NOT EXISTS (SELECT 1 FROM pg_trigger t
                        WHERE t.tgrelid = source AND t.tgname = 'segments_capture') THEN
            EXECUTE format('CREATE TRIGGER segments_capture'
                           ' AFTER INSERT OR UPDATE OR DELETE ON %s'
                           ' FOR EACH ROW EXECUTE FUNCTION segments._capture()', source);
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_trigger t
                        WHERE t.tgrelid = source AND t.tgname = 'segments_capture_truncate') THEN
            EXECUTE format('CREATE TRIGGER segments_capture_truncate'
                           ' AFTER TRUNCATE ON %s'
                           ' FOR EACH STATEMENT EXECUTE FUNCTION segments._capture()', source);
        END IF;
        -- fire whatever session_replication_role is: logical replication
        -- apply, pglogical and many ETL tools write as "replica"
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER segments_capture', source);
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER segments_capture_truncate', source);
    END IF;
    DELETE FROM segments.change_queue;
    PERFORM segments._notify_worker();
END
$$;
COMMENT ON FUNCTION segments._install_capture(regclass) IS
    'Internal: installs change capture on the source table (and removes it from any other).';

-- DROP EXTENSION would be blocked by the triggers on the source, which
-- depend on segments._capture(): remove them first.
CREATE FUNCTION segments._capture_drop() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'segments_capture_drop';
COMMENT ON FUNCTION segments._capture_drop() IS
    'Internal: removes the capture triggers before DROP EXTENSION segments.';
CREATE EVENT TRIGGER segments_capture_drop ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION')
    EXECUTE FUNCTION segments._capture_drop();

-- Wakes this database's worker when the calling transaction commits (or
-- has the launcher start one); a no-op without the preload.
CREATE FUNCTION segments._notify_worker() RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'segments_notify_worker';
COMMENT ON FUNCTION segments._notify_worker() IS
    'Internal: wakes the background worker of this database at commit.';

CREATE FUNCTION segments.wait(timeout interval DEFAULT '10 s')
RETURNS boolean
LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'segments_wait';
COMMENT ON FUNCTION segments.wait(interval) IS
    'Waits until every contact change and segment evaluation requested before the call is reflected in membership; false on timeout.';

CREATE FUNCTION segments._worker_status(
    OUT database_oid oid, OUT pid integer, OUT state text, OUT started_at timestamptz,
    OUT last_batch_at timestamptz, OUT last_batch_size bigint, OUT changes_applied bigint,
    OUT segments_evaluated bigint, OUT last_error text, OUT last_error_at timestamptz,
    OUT time_applied_until timestamptz)
RETURNS SETOF record
LANGUAGE c AS 'MODULE_PATHNAME', 'segments_worker_status';
COMMENT ON FUNCTION segments._worker_status() IS
    'Internal: the background worker of this database, from shared memory (empty without the preload).';

-- Pending segments are those the session may see; _worker_status() gives
-- this database's worker only, and its last_error only to a session that
-- sees every tenant.
CREATE VIEW segments.worker WITH (security_barrier) AS
    SELECT w.pid,
           pg_catalog.current_database()::name AS database,
           coalesce(w.state, CASE WHEN pg_catalog.pg_is_in_recovery() THEN 'standby'
                                  ELSE 'not running' END) AS state,
           q.pending_changes,
           st.pending_segments,
           CASE WHEN q.oldest IS NULL THEN interval '0'
                ELSE pg_catalog.clock_timestamp() - q.oldest END AS lag,
           pg_catalog.clock_timestamp() - w.time_applied_until AS time_lag,
           w.started_at, w.last_batch_at, w.last_batch_size,
           w.changes_applied, w.segments_evaluated, w.last_error, w.last_error_at,
           p.started_at AS pass_started_at, p.segments AS pass_segments,
           p.contacts_done AS pass_contacts_done, p.contacts_total AS pass_contacts_total
      FROM (SELECT count(*) AS pending_changes, min(c.enqueued_at) AS oldest
              FROM segments.change_queue c) q
      LEFT JOIN (SELECT p.started_at, p.contacts_done,
                        GREATEST(p.contacts_total, p.contacts_done) AS contacts_total,
                        (SELECT count(*) FROM segments.segment g
                          WHERE g.id = ANY (p.segment_ids)
                            AND segments._tenant_visible(g.tenant)) AS segments
                   FROM segments.pass p) p ON true
     CROSS JOIN (SELECT count(*) AS pending_segments
                   FROM segments.segment_state s
                   JOIN segments.segment g ON g.id = s.segment_id
                  WHERE s.state IN ('pending', 'evaluating')
                    AND segments._tenant_visible(g.tenant)) st
      LEFT JOIN segments._worker_status() w
             ON w.database_oid = (SELECT d.oid FROM pg_catalog.pg_database d
                                   WHERE d.datname = pg_catalog.current_database());
COMMENT ON VIEW segments.worker IS
    'The background worker of this database: pid, state, queued contact changes, pending segments, lag (age of the oldest queued change), time_lag (how far behind the re-checks of time-dependent segments are) and the progress of the evaluation pass in progress.';
-- Privileges on the worker view: sql/install/10_worker_grants.sql (the
-- roles are created by 09_roles.sql).

-- A worker for this database starts once CREATE EXTENSION commits.
SELECT segments._notify_worker();

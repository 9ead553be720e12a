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

-- Whether this database's changes may sit in a shared-memory ring of the
-- worker (capture_ring.c): small transactions hand their keys to it instead
-- of the queue.  clean is set false (committed) before a worker opens a
-- fresh ring, and true only once a clean exit moved the ring's entries into
-- the queue: a worker that opens a fresh ring (the server restarted) and
-- finds it false requests a full pass, since a crash lost the ring.
-- watermark, for hot standbys: every commit through the ring before it is
-- applied (or was moved into the queue).
CREATE TABLE segments.capture_state (
    one         boolean PRIMARY KEY DEFAULT true CHECK (one),
    clean       boolean NOT NULL DEFAULT true,
    watermark   timestamptz
);
INSERT INTO segments.capture_state DEFAULT VALUES;
COMMENT ON TABLE segments.capture_state IS
    'Whether changes may wait in the worker''s shared-memory ring (a crash then costs a full pass), and the watermark a hot standby''s wait() reads.';

-- What a freshly built index of segments.member takes, measured by the
-- worker's vacuum process right after it rebuilt the index
-- (src/member_vacuum.c): the GIN index per stored membership, the primary
-- key per row.  The worker rebuilds an index once it is
-- segments.member_reindex_factor times that; kept here so that a restarted
-- worker does not go back to the defaults (and rebuild an index that is not
-- bloated).  Rows of another member table (configure() made a new one) are
-- ignored.
CREATE TABLE segments.member_index_fresh (
    index_name   name PRIMARY KEY,
    member_relid oid NOT NULL,
    bytes_per    float8 NOT NULL CHECK (bytes_per > 0),
    measured_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE segments.member_index_fresh IS
    'Bytes a freshly built index of segments.member takes per membership (GIN) or per row (primary key), from the worker''s last rebuild.';

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

CREATE FUNCTION segments._capture_ring(OUT pending bigint, OUT oldest timestamptz,
    OUT captured bigint)
RETURNS record
LANGUAGE c AS 'MODULE_PATHNAME', 'segments_capture_ring';
COMMENT ON FUNCTION segments._capture_ring() IS
    'Internal: contact changes waiting in this database''s shared-memory ring, the commit time of the oldest, and how many it took since its worker claimed it.';

CREATE FUNCTION segments._capture_ring_keys() RETURNS SETOF text
LANGUAGE c AS 'MODULE_PATHNAME', 'segments_capture_ring_keys';
COMMENT ON FUNCTION segments._capture_ring_keys() IS
    'Internal: the contact keys waiting in this database''s shared-memory ring (for tests and diagnosis).';

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
      FROM (SELECT t.n + r.pending AS pending_changes, LEAST(t.oldest, r.oldest) AS oldest
              FROM (SELECT count(*) AS n, min(c.enqueued_at) AS oldest
                      FROM segments.change_queue c) t,
                   segments._capture_ring() r) q
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
    'The background worker of this database: pid, state, queued contact changes (in the queue table and the shared-memory ring), pending segments, lag (age of the oldest queued change), time_lag (how far behind the re-checks of time-dependent segments are) and the progress of the evaluation pass in progress.';
-- Privileges on the worker view: sql/install/10_worker_grants.sql (the
-- roles are created by 09_roles.sql).

-- A worker for this database starts once CREATE EXTENSION commits.
SELECT segments._notify_worker();

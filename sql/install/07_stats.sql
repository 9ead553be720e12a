-- segments install script, part 6: cumulative statistics, in the style of
-- PostgreSQL's pg_stat_* views (src/stats.c).  Counters count since the
-- last segments.stat_reset(); the worker's also since the server started.

CREATE FUNCTION segments._worker_stats(
    OUT database_oid oid, OUT changes_applied bigint, OUT batches bigint,
    OUT passes bigint, OUT segments_evaluated bigint, OUT evaluation_time double precision,
    OUT time_windows bigint, OUT sweeps bigint, OUT errors bigint,
    OUT last_error text, OUT last_error_at timestamptz, OUT stats_reset timestamptz)
RETURNS SETOF record
LANGUAGE c AS 'MODULE_PATHNAME', 'segments_worker_stats';
COMMENT ON FUNCTION segments._worker_stats() IS
    'Internal: the cumulative counters of this database''s workers, from shared memory (empty without the preload).';

CREATE FUNCTION segments._worker_stats_reset() RETURNS void
LANGUAGE c AS 'MODULE_PATHNAME', 'segments_worker_stats_reset';
COMMENT ON FUNCTION segments._worker_stats_reset() IS
    'Internal: zeroes the cumulative counters of this database''s workers.';

-- One row, also without a worker (then zeros).
CREATE VIEW segments.stat_worker AS
    SELECT pg_catalog.current_database()::name AS database,
           coalesce(w.changes_applied, 0) AS changes_applied,
           coalesce(w.batches, 0) AS batches,
           coalesce(w.passes, 0) AS passes,
           coalesce(w.segments_evaluated, 0) AS segments_evaluated,
           coalesce(w.evaluation_time, 0) AS evaluation_time,
           coalesce(w.time_windows, 0) AS time_windows,
           coalesce(w.sweeps, 0) AS sweeps,
           coalesce(w.errors, 0) AS errors,
           w.last_error, w.last_error_at, w.stats_reset
      FROM (SELECT 1) AS one
      LEFT JOIN segments._worker_stats() AS w ON true;
COMMENT ON VIEW segments.stat_worker IS
    'Cumulative counters of this database''s background workers since the last segments.stat_reset() or server start: changes applied, batches, evaluation passes, segments evaluated, evaluation time (ms), time windows, sweeps, errors and the last error.';

CREATE VIEW segments.stat_segments WITH (security_barrier) AS
    SELECT s.id AS segment_id, s.tenant, s.name,
           st.evaluations,
           st.evaluation_time,
           CASE WHEN st.evaluations > 0
                THEN st.evaluation_time / st.evaluations END AS mean_evaluation_time,
           st.errors,
           st.last_failure AS last_error,
           st.last_error_at,
           st.stats_reset
      FROM segments.segment s
      JOIN segments.segment_state st ON st.segment_id = s.id
     WHERE segments._tenant_visible(s.tenant);
COMMENT ON VIEW segments.stat_segments IS
    'Cumulative statistics per segment since the last segments.stat_reset(): full evaluations, their total and mean time (ms), failures and the last one.';

CREATE FUNCTION segments.stat_reset()
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE segments.segment_state
       SET evaluations = 0, evaluation_time = 0, errors = 0,
           last_error_at = NULL, last_failure = NULL, stats_reset = now();
    PERFORM segments._worker_stats_reset();
END
$$;
COMMENT ON FUNCTION segments.stat_reset() IS
    'Zeroes the counters of segments.stat_worker and segments.stat_segments (superusers and the extension owner; GRANT EXECUTE to delegate).';

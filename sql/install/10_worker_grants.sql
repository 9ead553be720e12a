-- segments install script, after the roles: watching the worker
-- (segments.worker) is part of the reading interface.
GRANT SELECT ON segments.worker TO segments_read;
GRANT EXECUTE ON FUNCTION segments._worker_status(), segments._capture_ring() TO segments_read;
-- Statistics are read like the worker view; resetting them is kept to the
-- owner (as pg_stat_reset() is), who may GRANT EXECUTE on stat_reset().
GRANT SELECT ON segments.stat_worker, segments.stat_segments TO segments_read;
GRANT EXECUTE ON FUNCTION segments._worker_stats() TO segments_read;

-- segments install script, after the roles: watching the worker
-- (segments.worker) is part of the reading interface.
GRANT SELECT ON segments.worker TO segments_read;
GRANT EXECUTE ON FUNCTION segments._worker_status() TO segments_read;

-- segments install script, part 2b: the lock that makes writers of membership take
-- turns (src/member_lock.c), for the writers written in SQL.  Not granted
-- to any role: whoever could take it could hold it and stop the worker.
CREATE FUNCTION segments._lock_member_writers() RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'segments_lock_member_writers';
COMMENT ON FUNCTION segments._lock_member_writers() IS
    'Internal: takes the lock writers of segments.member hold until they commit.';

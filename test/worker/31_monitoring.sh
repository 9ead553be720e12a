#!/usr/bin/env bash
# Monitoring: segments.stat_worker and segments.stat_segments count what the
# worker and refresh() did (changes applied, batches, passes, evaluations and
# their time, time windows, errors) across worker restarts, until
# segments.stat_reset(); last_error_at stays after a success clears
# last_error; segments.worker shows time_lag; the worker's process title
# names its database.  Contacts are written by the application role
# (common.bash), the views read by a monitoring role with segments_read only.
. "$(dirname "$0")/common.bash"

MON="mon_read_$$"
ROLES+=("$MON")                 # dropped on exit by common.bash
# Runs a query as the monitoring role.
qm() { psql -X -qAt -v ON_ERROR_STOP=1 -U "$MON" -c "$1"; }
LOCKER_PID=""
stop_locker() { [ -z "$LOCKER_PID" ] || kill "$LOCKER_PID" 2>/dev/null || true; }
EXIT_HOOKS+=(stop_locker)

q "CREATE ROLE \"$MON\" LOGIN IN ROLE segments_read"
q "CREATE TABLE contacts (id bigint PRIMARY KEY, plan text, seen_at timestamptz)"
q "GRANT SELECT, INSERT, UPDATE, DELETE ON contacts TO \"$APP\""
q "INSERT INTO contacts SELECT g, CASE WHEN g % 10 = 0 THEN 'vip' ELSE 'free' END,
     now() - g * interval '1 minute' FROM generate_series(1, 3000) g"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
q "SELECT segments.create_segment('VIP', '{\"type\":\"attribute\",\"field\":\"plan\",\"op\":\"eq\",\"value\":\"vip\"}')" >/dev/null
expect "wait() after create_segment" "SELECT segments.wait('30 s')" t
poll "worker running" "SELECT pid IS NOT NULL FROM segments.worker" t 30
expect "a worker that met no error shows none and counts none" \
    "SELECT w.last_error IS NULL AND w.last_error_at IS NULL AND s.errors = 0 AND s.last_error_at IS NULL
       FROM segments.worker w, segments.stat_worker s" t
PID=$(q "SELECT pid FROM segments.worker")

# The process title names the database, not its oid.
title=$(tr '\0' ' ' < "/proc/$PID/cmdline")
case "$title" in
    *"segments worker for database \"$DB\""*) note "ok: process title names the database ($title)";;
    *) fail "process title is '$title', expected it to name database $DB";;
esac

# The views' columns, as a monitoring role.
expect "stat_worker columns" \
    "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'segments.stat_worker'::regclass AND attnum > 0" \
    "database,changes_applied,batches,passes,segments_evaluated,evaluation_time,time_windows,sweeps,errors,last_error,last_error_at,stats_reset"
expect "stat_segments columns" \
    "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'segments.stat_segments'::regclass AND attnum > 0" \
    "segment_id,tenant,name,evaluations,evaluation_time,mean_evaluation_time,errors,last_error,last_error_at,stats_reset"
[ "$(qm "SELECT database FROM segments.stat_worker")" = "$DB" ] || fail "stat_worker does not name the database"
note "ok: a segments_read role reads stat_worker, which names the database"

# Start from zero: stat_reset() as the owner; refused to the monitoring role.
q "SELECT segments.stat_reset()" >/dev/null
expect "stat_reset zeroes the worker counters" \
    "SELECT changes_applied + batches + passes + segments_evaluated + time_windows + sweeps + errors = 0
            AND evaluation_time = 0 AND last_error IS NULL AND stats_reset > now() - interval '1 minute'
       FROM segments.stat_worker" t
expect "stat_reset zeroes the segment counters" \
    "SELECT evaluations = 0 AND errors = 0 AND last_error_at IS NULL AND stats_reset IS NOT NULL FROM segments.stat_segments WHERE name = 'VIP'" t
out=$(qm "SELECT segments.stat_reset()" 2>&1) && fail "stat_reset() allowed to a segments_read role"
case "$out" in *"permission denied for function stat_reset"*) note "ok: stat_reset() refused to segments_read";;
    *) fail "unexpected error from stat_reset() as segments_read: $out";; esac

# Changes applied: 40 contacts change plan in one statement, by the app.
qa "UPDATE contacts SET plan = 'vip' WHERE id BETWEEN 1 AND 44 AND plan = 'free'" >/dev/null
expect "wait() after 40 changes" "SELECT segments.wait('30 s')" t
expect "changes_applied counts the 40 changes" "SELECT changes_applied FROM segments.stat_worker" 40
expect "in at least one batch" "SELECT batches BETWEEN 1 AND 40 FROM segments.stat_worker" t
expect "no pass for contact changes" "SELECT passes FROM segments.stat_worker" 0

# Passes and per-segment evaluations: a new segment, evaluated by the worker.
q "SELECT segments.create_segment('Free', '{\"type\":\"attribute\",\"field\":\"plan\",\"op\":\"eq\",\"value\":\"free\"}')" >/dev/null
expect "wait() after the second segment" "SELECT segments.wait('30 s')" t
expect "one pass, one segment evaluated, time counted" \
    "SELECT passes = 1 AND segments_evaluated = 1 AND evaluation_time > 0 FROM segments.stat_worker" t
expect "stat_segments: Free evaluated once, its time counted" \
    "SELECT evaluations = 1 AND evaluation_time > 0 AND mean_evaluation_time = evaluation_time FROM segments.stat_segments WHERE name = 'Free'" t
expect "stat_segments: VIP not evaluated since the reset" \
    "SELECT evaluations FROM segments.stat_segments WHERE name = 'VIP'" 0
# refresh() counts too, in the segment's statistics.
q "SELECT segments.refresh('VIP')" >/dev/null
expect "refresh() counts an evaluation" \
    "SELECT evaluations FROM segments.stat_segments WHERE name = 'VIP'" 1

# Time: a segment on the clock; the windows are counted, time_lag shows how
# far behind they are (at most a few time_resolution periods when idle).
expect "time_lag is NULL while no segment reads the time" "SELECT time_lag IS NULL FROM segments.worker" t
q "SELECT segments.create_segment('Recent', '{\"type\":\"attribute\",\"field\":\"seen_at\",\"op\":\"within_last\",\"value\":\"30 minutes\"}')" >/dev/null
expect "wait() after the time segment" "SELECT segments.wait('30 s')" t
poll "time windows counted" "SELECT time_windows >= 2 FROM segments.stat_worker" t 30
poll "time_lag within a few seconds" \
    "SELECT time_lag BETWEEN interval '0' AND interval '10 s' FROM segments.worker" t 30

# Errors.  The worker gets a lock timeout in this database and meets a
# lock held on the stored membership: its evaluation of a changed segment
# fails.
q "ALTER DATABASE \"$DB\" SET lock_timeout = '200ms'"
q "SELECT pg_terminate_backend(pid) FROM segments.worker" >/dev/null
poll "worker restarted with the lock timeout" "SELECT pid IS NOT NULL AND pid <> $PID AND state = 'idle' FROM segments.worker" t 30
expect "counters survive the worker's restart" "SELECT changes_applied FROM segments.stat_worker" 40
psql -X -q -c "SET lock_timeout = 0" -c "BEGIN; LOCK TABLE segments.member IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60)" >/dev/null 2>&1 &
LOCKER_PID=$!
poll "lock held on the membership" \
    "SELECT count(*) FROM pg_locks l WHERE l.relation = 'segments.member'::regclass AND l.mode = 'AccessExclusiveLock' AND l.granted" 1 30
q "SET lock_timeout = 0; SELECT segments.update_segment('Free', definition => '{\"type\":\"attribute\",\"field\":\"plan\",\"op\":\"in\",\"value\":[\"free\"]}')" >/dev/null
# a lock timeout is transient: the segment stays pending and is retried
poll "the evaluation met the lock timeout (pending, to be retried)" \
    "SELECT state = 'pending' AND last_error LIKE '%lock timeout%' FROM segments.status WHERE name = 'Free'" t 30
expect "status: last_error says why, last_error_at when" \
    "SELECT last_error LIKE '%lock timeout%' AND last_error_at > now() - interval '1 minute' FROM segments.status WHERE name = 'Free'" t
expect "stat_segments counts the failure" \
    "SELECT errors >= 1 AND last_error LIKE '%lock timeout%' AND last_error_at IS NOT NULL FROM segments.stat_segments WHERE name = 'Free'" t
expect "stat_worker counts the error" \
    "SELECT errors >= 1 AND last_error LIKE '%lock timeout%' AND last_error_at > now() - interval '1 minute' FROM segments.stat_worker" t
expect "segments.worker shows it with its time" \
    "SELECT last_error LIKE '%lock timeout%' AND last_error_at IS NOT NULL FROM segments.worker" t
kill "$LOCKER_PID" 2>/dev/null || true
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%LOCK TABLE segments.member%' AND pid <> pg_backend_pid() AND datname = current_database()" >/dev/null
wait "$LOCKER_PID" 2>/dev/null || true
LOCKER_PID=""
q "ALTER DATABASE \"$DB\" RESET lock_timeout"

# A success clears last_error where it means "now", and keeps the history.
q "SELECT segments.refresh('Free')" >/dev/null
qa "UPDATE contacts SET plan = 'free' WHERE id = 1" >/dev/null
expect "wait() after recovery" "SELECT segments.wait('30 s')" t
expect "status: ready, last_error cleared, last_error_at kept" \
    "SELECT state = 'ready' AND last_error IS NULL AND last_error_at IS NOT NULL FROM segments.status WHERE name = 'Free'" t
expect "stat_segments keeps the failure" \
    "SELECT errors >= 1 AND last_error LIKE '%lock timeout%' FROM segments.stat_segments WHERE name = 'Free'" t
expect "segments.worker: last_error cleared by a successful batch, last_error_at kept" \
    "SELECT last_error IS NULL AND last_error_at IS NOT NULL FROM segments.worker" t
expect "stat_worker keeps the last error" \
    "SELECT last_error LIKE '%lock timeout%' FROM segments.stat_worker" t

# The reset clears counters and the kept errors.
q "SELECT segments.stat_reset()" >/dev/null
expect "after stat_reset: no error kept" \
    "SELECT errors = 0 AND last_error IS NULL AND changes_applied = 0 FROM segments.stat_worker" t
expect "after stat_reset: segment counters zero" \
    "SELECT bool_and(evaluations = 0 AND errors = 0 AND last_error IS NULL) FROM segments.stat_segments" t
all_passed

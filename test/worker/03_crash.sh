#!/usr/bin/env bash
# Durability: a SIGKILL of the worker in the middle of a batch, and an
# immediate shutdown followed by a restart, lose no queued change.  Leaves
# the server running for the next script.
. "$(dirname "$0")/common.bash"

LOG="$PGHOST/server.log"
q "ALTER SYSTEM SET segments.batch_size = 200" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
restore() { local rc=$?
            q "ALTER SYSTEM RESET segments.batch_size" >/dev/null 2>&1 || true
            q "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
            (exit $rc); cleanup; }
trap restore EXIT

q "CREATE TABLE contacts (id bigint PRIMARY KEY, plan text)"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
q "SELECT segments.create_segment('VIP', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}')" >/dev/null
expect "wait() after create_segment" "SELECT segments.wait('30 s')" t
VIP="SELECT id FROM contacts WHERE plan = 'vip'"

# 1. SIGKILL while the worker applies a backlog
q "INSERT INTO contacts SELECT g, CASE WHEN g % 3 = 0 THEN 'vip' ELSE 'free' END
     FROM generate_series(1, 60000) g"
poll "worker in the middle of the backlog" \
     "SELECT state = 'applying changes' AND changes_applied > 0 AND pending_changes > 0 FROM segments.worker" t 30
pid=$(q "SELECT pid FROM segments.worker")
before=$(q "SELECT pending_changes FROM segments.worker")
kill -KILL "$pid"
note "killed worker $pid with $before changes still queued"
sleep 0.5
wait_server
expect "wait() after the crash" "SELECT segments.wait('120 s')" t
expect "queue drained" "SELECT count(*) FROM segments.change_queue" 0
expect "membership exact after SIGKILL" "SELECT '$(mismatches VIP "$VIP")'" 0
expect "member_count exact after SIGKILL" \
       "SELECT member_count = (SELECT count(*) FROM contacts WHERE plan = 'vip') FROM segments.segments" t

# 2. immediate shutdown with committed, unapplied changes; then restart
q "UPDATE contacts SET plan = CASE WHEN plan = 'vip' THEN 'free' ELSE 'vip' END WHERE id % 2 = 0"
pending=$(q "SELECT pending_changes FROM segments.worker")
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null
note "immediate shutdown with $pending changes queued"
[ "$pending" -gt 0 ] || fail "the worker applied everything before the shutdown: nothing was tested"
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$LOG" -w -t 60 start >/dev/null
wait_server
expect "wait() after restart" "SELECT segments.wait('120 s')" t
expect "queue drained" "SELECT count(*) FROM segments.change_queue" 0
expect "membership exact after immediate shutdown" "SELECT '$(mismatches VIP "$VIP")'" 0
expect "member_count exact after restart" \
       "SELECT member_count = (SELECT count(*) FROM contacts WHERE plan = 'vip') FROM segments.segments" t
all_passed

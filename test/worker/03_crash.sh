#!/usr/bin/env bash
# Durability: a SIGKILL of the worker in the middle of a batch, and an
# immediate shutdown followed by a restart, lose no queued change.  Leaves
# the server running for the next script (also when a check fails while it
# is down: common.bash starts it again on exit).
. "$(dirname "$0")/common.bash"

set_system segments.batch_size 200      # reset on exit (common.bash)

qa "CREATE TABLE contacts (id bigint PRIMARY KEY, plan text)"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
q "SELECT segments.create_segment('VIP', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}')" >/dev/null
expect "wait() after create_segment" "SELECT segments.wait('30 s')" t
VIP="SELECT id FROM contacts WHERE plan = 'vip'"

# 1. SIGKILL while the worker applies a backlog
qa "INSERT INTO contacts SELECT g, CASE WHEN g % 3 = 0 THEN 'vip' ELSE 'free' END
     FROM generate_series(1, 60000) g"
poll "worker in the middle of the backlog" \
     "SELECT state = 'applying changes' AND changes_applied > 0 AND pending_changes > 0 FROM segments.worker" t 30
pid=$(q "SELECT pid FROM segments.worker")
before=$(q "SELECT pending_changes FROM segments.worker")
kill -KILL "$pid"
note "killed worker $pid with $before changes still queued"
wait_gone "$pid" 60       # reaped: the postmaster has begun its crash restart
wait_server
expect "wait() after the crash" "SELECT segments.wait('120 s')" t
expect "queue drained" "SELECT count(*) FROM segments.change_queue" 0
expect "membership exact after SIGKILL" "SELECT '$(mismatches VIP "$VIP")'" 0
expect "member_count exact after SIGKILL" \
       "SELECT member_count = (SELECT count(*) FROM contacts WHERE plan = 'vip') FROM segments.segments" t

# 2. immediate shutdown with committed, unapplied changes; then restart
qa "UPDATE contacts SET plan = CASE WHEN plan = 'vip' THEN 'free' ELSE 'vip' END WHERE id % 2 = 0"
pending=$(q "SELECT pending_changes FROM segments.worker")
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null
note "immediate shutdown with $pending changes queued"
[ "$pending" -gt 0 ] || fail "the worker applied everything before the shutdown: nothing was tested"
start_server
wait_server
expect "wait() after restart" "SELECT segments.wait('120 s')" t
expect "queue drained" "SELECT count(*) FROM segments.change_queue" 0
expect "membership exact after immediate shutdown" "SELECT '$(mismatches VIP "$VIP")'" 0
expect "member_count exact after restart" \
       "SELECT member_count = (SELECT count(*) FROM contacts WHERE plan = 'vip') FROM segments.segments" t
all_passed

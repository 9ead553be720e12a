#!/usr/bin/env bash
# segments.enabled off for a database (ALTER DATABASE ... SET): writers keep
# queueing their changes, and each commit asks for a worker, since the
# setting may have been turned on since.  The launcher starts one at most
# once a second for such a database (src/launcher.c, DISABLED_RETRY_MS), and
# a writer does not wake it again while a request is pending
# (src/shared.c): before, every commit started a worker process that found
# the setting off and exited.  Turned back on, the next committed change
# starts the worker, which applies everything queued meanwhile.
. "$(dirname "$0")/common.bash"

qa "CREATE TABLE contacts (id bigint PRIMARY KEY, plan text NOT NULL)"
qa "INSERT INTO contacts SELECT g, 'free' FROM generate_series(1, 400) g"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
q "SELECT segments.create_segment('paid', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"pro\"}')" >/dev/null
poll "the segment is evaluated" "SELECT segments.wait('1 min')" t 90

worker_off
qa "UPDATE contacts SET plan = 'free' WHERE id = 1"   # a change: the launcher starts one, which exits
poll "the worker found the setting off and exited" "SELECT state FROM segments.worker" disabled

# 300 commits by the application, one contact each; meanwhile the worker's
# start time is sampled every 50 ms (a start per commit would show dozens)
STARTS=$(mktemp); on_exit "rm -f $STARTS"
( while [ ! -e "$STARTS.stop" ]; do q "SELECT started_at FROM segments.worker" >> "$STARTS" 2>/dev/null || true; sleep 0.05; done ) &
SAMPLER=$!
t0=$(date +%s.%N)
for i in $(seq 1 300); do echo "UPDATE contacts SET plan = 'pro' WHERE id = $i;"; done \
    | psql -X -q -v ON_ERROR_STOP=1 -U "$APP" >/dev/null
secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%d", b - a + 1 }')
touch "$STARTS.stop"; wait "$SAMPLER"; rm -f "$STARTS.stop"
starts=$(sort -u "$STARTS" | grep -c . || true)
note "300 commits in about $secs s saw $starts distinct worker start times"
[ "$starts" -le $((secs + 2)) ] || fail "the worker was started $starts times during $secs s of commits (at most one a second expected)"
note "ok: commits with the worker disabled start at most one worker a second"
expect "the 300 changes were queued, none applied" \
       "SELECT (SELECT count(DISTINCT contact) FROM segments.change_queue) || ' ' || (SELECT member_count FROM segments.segments WHERE name = 'paid')" "300 0"
expect "the worker stays disabled" "SELECT state FROM segments.worker" disabled

# turned back on: the next commit (a new session sees the setting) starts it
q "ALTER DATABASE \"$DB\" RESET segments.enabled"
qa "UPDATE contacts SET plan = 'pro' WHERE id = 301"
poll "the next commit starts the worker again" "SELECT count(pid) FROM segments.worker" 1
poll "it applies everything queued while it was off" "SELECT segments.wait('1 min')" t 90
expect "membership is the contacts' plans" \
       "SELECT (SELECT member_count FROM segments.segments WHERE name = 'paid') || ' ' || (SELECT count(*) FROM contacts WHERE plan = 'pro')" "301 301"
expect "verify() finds no difference" "SELECT count(*) FROM segments.verify() WHERE missing + extra > 0" 0
all_passed

#!/usr/bin/env bash
# Memory that does not grow with the work: the membership relation read by
# a correlated subplan, rescanned once per (contact, action) as a gating
# report does it ("which actions may each of these contacts use", the naive
# SQL beside filter_restricted()).  Every rescan calls the row decoder
# segments._member_rows() once per member row; it used to build its result
# descriptor from its OUT parameters in the query's memory at every call,
# and the backend grew by about 70 MB a second until the query ended.  The
# backend's anonymous memory is sampled while the query runs: a leak of
# that size shows as hundreds of MB, a bounded query as a few.
. "$(dirname "$0")/../worker/common.bash"

q "ALTER DATABASE \"$DB\" SET segments.enabled = off"     # no worker: only the query runs
q "CREATE TABLE contacts (id bigint PRIMARY KEY, plan text, seats int)"
q "INSERT INTO contacts SELECT g, (ARRAY['free','pro','vip'])[1 + g % 3], g % 50 FROM generate_series(1, 5000) g"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
for i in $(seq 1 20); do
    q "SELECT segments.create_segment('Seats over $i', '{\"type\": \"attribute\", \"field\": \"seats\", \"op\": \"gt\", \"value\": $i}')" >/dev/null
done
q "SELECT segments.refresh()" >/dev/null
expect "20 segments, 5000 contacts" "SELECT count(*) || ' ' || (SELECT count(DISTINCT contact_id) FROM segments.membership) FROM segments.segments" "20 4800"
q "CREATE TABLE actions (id int PRIMARY KEY, restricted_to uuid[] NOT NULL)"
q "INSERT INTO actions SELECT a, ARRAY(SELECT id FROM segments.segments ORDER BY name OFFSET a % 20 LIMIT 2) FROM generate_series(1, 300) a"

# run_probe N: runs the report for N contacts in the background and
# samples the backend's anonymous memory every 0.1 s until it ends; sets
# max (kB) and samples.  (The view is planned into the query, so each
# subplan run may look up one contact's rows by the index: the report is
# quick, and N grows until it runs long enough to be watched.)
run_probe() {
    local query qpid pid=""
    query="SET jit = off; SELECT count(*) FROM (SELECT (1 + (g * 7919) % 5000)::bigint AS c FROM generate_series(1, $1) g) cs
        WHERE ARRAY(SELECT a.id FROM actions a WHERE cardinality(a.restricted_to) = 0 OR EXISTS
              (SELECT 1 FROM segments.membership m WHERE m.contact_id = cs.c AND m.segment_id = ANY (a.restricted_to))
              ORDER BY a.id) IS NOT NULL /* memory probe */"
    psql -X -qAt -c "$query" >/dev/null &
    qpid=$!
    for _ in $(seq 1 100); do
        pid=$(q "SELECT pid FROM pg_stat_activity WHERE query LIKE '%memory probe%' AND pid <> pg_backend_pid()")
        [ -n "$pid" ] && break
        kill -0 "$qpid" 2>/dev/null || break
        sleep 0.05
    done
    max=0; samples=0
    while [ -n "$pid" ] && [ -r "/proc/$pid/status" ] && kill -0 "$qpid" 2>/dev/null; do
        kb=$(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
        [ -n "$kb" ] && [ "$kb" -gt "$max" ] && max=$kb
        samples=$((samples + 1))
        sleep 0.1
    done
    wait "$qpid" || fail "the query failed"
}
n=3
run_probe "$n"
while [ "$samples" -lt 10 ] && [ "$n" -lt 30000 ]; do
    n=$((n * 10))
    run_probe "$n"
done
[ "$samples" -ge 3 ] || fail "the query ended before it could be sampled ($samples samples for $n contacts): make it longer"
[ "$max" -lt 65536 ] || fail "the backend's anonymous memory reached $((max / 1024)) MB over $samples samples"
note "ok: the backend stayed at $((max / 1024)) MB of anonymous memory through the query ($n contacts, $samples samples)"
all_passed

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

# The expression on g keeps the contact filter above the view's security
# barrier (int4mul is not leakproof): every subplan run reads all members.
QUERY="SET jit = off; SELECT count(*) FROM (SELECT (1 + (g * 7919) % 5000)::bigint AS c FROM generate_series(1, 3) g) cs
        WHERE ARRAY(SELECT a.id FROM actions a WHERE cardinality(a.restricted_to) = 0 OR EXISTS
              (SELECT 1 FROM segments.membership m WHERE m.contact_id = cs.c AND m.segment_id = ANY (a.restricted_to))
              ORDER BY a.id) IS NOT NULL /* memory probe */"
psql -X -qAt -c "$QUERY" >/dev/null &
QPID=$!
pid=""
for _ in $(seq 1 100); do
    pid=$(q "SELECT pid FROM pg_stat_activity WHERE query LIKE '%memory probe%' AND pid <> pg_backend_pid()")
    [ -n "$pid" ] && break
    sleep 0.05
done
[ -n "$pid" ] || fail "the query did not show in pg_stat_activity"
max=0; samples=0
while [ -r "/proc/$pid/status" ] && kill -0 "$QPID" 2>/dev/null; do
    kb=$(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$kb" ] && [ "$kb" -gt "$max" ] && max=$kb
    samples=$((samples + 1))
    sleep 0.1
done
wait "$QPID" || fail "the query failed"
[ "$samples" -ge 3 ] || fail "the query ended before it could be sampled ($samples samples): make it longer"
[ "$max" -lt 65536 ] || fail "the backend's anonymous memory reached $((max / 1024)) MB over $samples samples"
note "ok: the backend stayed at $((max / 1024)) MB of anonymous memory through the query ($samples samples)"
all_passed

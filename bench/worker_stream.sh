#!/usr/bin/env bash
# The worker under a stream of updates: builds and installs this tree,
# starts a private cluster (bench/common.sh), loads CONTACTS contacts of
# bench/data.sql with the 20 segments of bench/capture_setup.sql, sets
# synchronous_commit = off, and runs ROUNDS rounds of SECONDS_EACH seconds
# of ROWS-row UPDATEs of seats from 2 pgbench clients with the worker on.
# For each round: throughput, the time until segments.wait() is true after
# the load (catch-up), the worker's CPU, and what the queue's primary key
# read (index entries read against live entries fetched: the deleted head
# of the queue read again shows there).  PERF=1 records the last round's
# worker with perf (-g) into $OUT/worker.data (default /tmp).
#   CONTACTS=200000 ROWS=20 SECONDS_EACH=15 ROUNDS=2 PERF=1 bench/worker_stream.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PGDATABASE=segments_stream
. bench/common.sh
N=${CONTACTS:-200000}; ROWS=${ROWS:-20}; SECS=${SECONDS_EACH:-15}; ROUNDS=${ROUNDS:-2}
OUT=${OUT:-/tmp}
build_and_install_private >/dev/null
start_cluster
trap 'set +e; stop_cluster' EXIT
psql -X -q -d postgres -c "CREATE DATABASE $PGDATABASE"
psql -X -q -v contacts="$N" -f bench/data.sql >/dev/null
psql -X -q -f bench/segments.sql >/dev/null
psql -X -q -f bench/capture_setup.sql >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -c "ALTER SYSTEM SET synchronous_commit = off" -c "SELECT pg_reload_conf()" >/dev/null
script="$SEGMENTS_TMP/stream.sql"
printf '\\set c random(1, %s)\nUPDATE public.contacts SET seats = 1 + (random() * 50)::int WHERE id BETWEEN :c AND :c + %s;\n' \
    "$((N - ROWS + 1))" "$((ROWS - 1))" > "$script"
worker_on
qv "SELECT segments.wait('10 min')" >/dev/null
QSTATS="SELECT idx_tup_read || ' ' || idx_tup_fetch FROM pg_stat_user_indexes
         WHERE indexrelid = 'segments.change_queue_pkey'::regclass"
echo "$N contacts, $ROWS-row UPDATEs, $SECS s rounds; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$ROUNDS"); do
    read -r r0 f0 <<<"$(qv "$QSTATS")"
    c0=$(awk '{ print $14 + $15 }' "/proc/$WORKER_PID/stat")
    a0=$(qv "SELECT changes_applied FROM segments.stat_worker")
    PERF_PID=
    if [ -n "${PERF:-}" ] && [ "$round" = "$ROUNDS" ]; then
        perf record -g -o "$OUT/worker.data" -p "$WORKER_PID" >/dev/null 2>&1 & PERF_PID=$!
    fi
    tps=$("$PG_BIN/pgbench" -n -M prepared -c 2 -j 2 -T "$SECS" -f "$script" 2>&1 | awk '/^tps/ { printf "%.0f", $3 }')
    t0=$(now_s)
    qv "SELECT segments.wait('10 min')" >/dev/null
    caught=$(elapsed "$t0")
    [ -z "$PERF_PID" ] || { kill -INT "$PERF_PID"; wait "$PERF_PID" || true; }
    c1=$(awk '{ print $14 + $15 }' "/proc/$WORKER_PID/stat")
    a1=$(qv "SELECT changes_applied FROM segments.stat_worker")
    read -r r1 f1 <<<"$(qv "$QSTATS")"
    echo "round $round: $tps tps; caught up $caught s after; worker $(calc "($c1 - $c0) / 100") s of CPU for $((a1 - a0)) changes ($(calc "($c1 - $c0) * 10000 / ($a1 - $a0 + 1)") us each); queue index read $((r1 - r0)) entries for $((f1 - f0)) taken"
done
[ -z "${PERF:-}" ] || echo "perf data: $OUT/worker.data (perf report -i $OUT/worker.data --children)"

#!/usr/bin/env bash
# 100 segments created in one transaction with the worker on (the bench's
# 100 rules again under new names, over the 100 ready ones), against a
# running cluster with segments preloaded (PGHOST/PGPORT/PGUSER set, a
# superuser), on the benchmark's data (bench/data.sql, bench/segments.sql).
# Rounds alternate:
#   - baseline: the 100 created with the worker off, then one refresh()
#     (it writes the same rows);
#   - worker: the 100 created with the worker on; the time until none is
#     pending or evaluating, while the freshness probe (bench/probe.sql)
#     flips contact 1 every 2 s and measures commit-to-visible;
# the 100 dropped after each.  Prints each round, the ratio of the medians,
# the probe's p50/p99/max, and the bytes per membership after the worker's
# rounds: right when all are ready (the peak: the worker's vacuum process
# may be rebuilding an index, and the copy counts) and once its upkeep has
# settled (no such process for UPKEEP_QUIET_S = 15 s, waiting at most
# UPKEEP_MAX_S = 240 s).  make bench measures the same in its "100 segments created in one
# transaction" rows (bench/run.sh); this is the quick way.
#   CONTACTS=200000 ROUNDS=2 bench/create_at_once.sh
# KEEP_DB=1 keeps the database at exit and, when it is there already (a
# run before with KEEP_DB=1, any build: the server may have been restarted
# with another one), uses it as it is instead of loading it again: at
# 1,000,000 contacts the load and first refresh() take minutes.
# BASELINE=0 skips the refresh() rounds (the worker's rounds only; compare
# with a baseline measured on the same cluster).
set -euo pipefail
N=${CONTACTS:-200000}; ROUNDS=${ROUNDS:-2}
DB=${DB:-segments_create_bench}; KEEP_DB=${KEEP_DB:-0}; BASELINE=${BASELINE:-1}
HERE="$(cd "$(dirname "$0")" && pwd)"
if [ "$KEEP_DB" = 1 ]; then
    trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
else
    trap 'kill $(jobs -p) 2>/dev/null || true; psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
fi
export PGDATABASE=$DB
. "$HERE/common.sh"     # q, qv, now_s, elapsed, median, worker_on/off, bench_load_db, settle_with_probe

if [ "$KEEP_DB" = 1 ] && [ "$(psql -X -qAt -d postgres -c "SELECT count(*) FROM pg_database WHERE datname = '$DB'")" = 1 ] &&
   [ "$(qv "SELECT to_regclass('bench.sampling_done') IS NOT NULL")" = t ]; then
    N=$(qv "SELECT count(*) FROM public.contacts")
    echo "reusing database $DB ($N contacts)"
    worker_off
    q -c "DELETE FROM bench.samples" -c "DELETE FROM bench.sampling_done" -c "DELETE FROM bench.freshness" \
      -c "CREATE TABLE IF NOT EXISTS bench.freshness_at (run text, i int, committed_at timestamptz, latency_ms float8)" -c "DELETE FROM bench.freshness_at" \
      -c "CREATE TABLE IF NOT EXISTS bench.time_lag (run text, lag_s float8)" -c "DELETE FROM bench.time_lag"
    drop_first=$(qv "SELECT count(*) FROM segments.segments WHERE name LIKE 'New: %'")
    [ "$drop_first" = 0 ] || q -c "SELECT count(segments.drop_segment(s.id)) FROM segments.segments s WHERE s.name LIKE 'New: %'" >/dev/null
else
    bench_load_db "$N"
    qv "SELECT segments.refresh()" >/dev/null
    q -c "CREATE TABLE bench.seg_new AS SELECT n, 'New: ' || name AS name, definition FROM bench.seg_def" \
      -c "CREATE TABLE bench.freshness (run text, i int, at_s float8, latency_ms float8)" \
      -c "CREATE TABLE bench.freshness_at (run text, i int, committed_at timestamptz, latency_ms float8)" \
      -c "CREATE TABLE bench.samples (r int, at timestamptz, activity text, wait text)" -c "CREATE TABLE bench.sampling_done (r int)"
fi
PROBE_SEG=$(qv "SELECT id FROM segments.segments WHERE name = 'Plan: vip'")
echo "$N contacts, 100 ready segments, 100 created; $ROUNDS rounds; PostgreSQL $(qv 'SHOW server_version'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
create() { q -c "SELECT count(segments.create_segment(name, definition)) FROM (SELECT name, definition FROM bench.seg_new ORDER BY n) s" >/dev/null; }
drop_new() { q -c "SELECT count(segments.drop_segment(s.id)) FROM segments.segments s WHERE s.name LIKE 'New: %'" >/dev/null; }
# CPU seconds (user + system) of a process, from /proc/<pid>/stat; steadier
# than wall time on a loaded machine
cpu_s() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat"; }
# refresh() in one session, its backend's CPU seconds read before and after
refresh_cpu() {
    psql -X -qAt -v ON_ERROR_STOP=1 -c "SELECT split_part(pg_read_file('/proc/self/stat'), ' ', 14)::int + split_part(pg_read_file('/proc/self/stat'), ' ', 15)::int" \
        -c "SELECT segments.refresh()" -c "SELECT split_part(pg_read_file('/proc/self/stat'), ' ', 14)::int + split_part(pg_read_file('/proc/self/stat'), ' ', 15)::int" |
        awk 'NR == 1 { a = $1 } { b = $1 } END { printf "%.2f", (b - a) / 100 }'
}
bpm() { qv "SELECT round(pg_total_relation_size('segments.member')::numeric / sum(member_count), 2) FROM segments.segment_state"; }
# upkeep_settle: waits until the worker's vacuum process (vacuum, index
# rebuild, compaction: src/member_vacuum.c) has not run for UPKEEP_QUIET_S
upkeep_settle() {
    wait_quiet "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'segments member vacuum' AND datname = current_database()" \
        "${UPKEEP_QUIET_S:-15}" 1 "${UPKEEP_MAX_S:-240}"
}

BASE=""; WORK=""; BPMS=""; BPMS_SETTLED=""; BCPU=""; WCPU=""
for round in $(seq 1 "$ROUNDS"); do
    if [ "$BASELINE" = 1 ]; then
        worker_off
        create
        t=$(now_s); bc=$(refresh_cpu); b=$(elapsed "$t"); BASE="$BASE $b"; BCPU="$BCPU $bc"
        drop_new
    else
        b=0; bc=0
    fi
    worker_on
    qv "SELECT segments.wait('30 min')" >/dev/null
    strip_settle
    v0=$(qv "SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'segments.member'::regclass")
    # what the worker is doing, every 50 ms (its activity and wait event);
    # each sample commits: one open transaction would hold back the pruning
    # of every row version the worker replaces meanwhile, and slow it down
    psql -X -q -c "DO \$\$ DECLARE w int := (SELECT pid FROM segments.worker WHERE pid IS NOT NULL); BEGIN
        WHILE EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = w) AND NOT EXISTS (SELECT 1 FROM bench.sampling_done WHERE r = $round) LOOP
          INSERT INTO bench.samples SELECT $round, clock_timestamp(), coalesce(nullif(state, 'idle') || ': ' || query, 'between transactions'),
                 coalesce(wait_event_type || ':' || wait_event, 'on cpu') FROM pg_stat_activity WHERE pid = w;
          COMMIT; PERFORM pg_stat_clear_snapshot(); PERFORM pg_sleep(0.05);
        END LOOP; END \$\$" &
    sampler=$!
    c0=$(cpu_s "$WORKER_PID")
    t=$(now_s)
    create
    settle_with_probe "create$round" "$t"
    wc=$(calc "$(cpu_s "$WORKER_PID") - $c0"); WCPU="$WCPU $wc"
    q -c "INSERT INTO bench.sampling_done VALUES ($round)"
    wait "$sampler" || true
    WORK="$WORK $SETTLED_S"
    v1=$(qv "SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'segments.member'::regclass")
    B=$(bpm); BPMS="$BPMS $B"
    read -r n p50 p99 mx < <(freshness_stats "create$round")
    read -r ln lmean lmax < <(time_lag_stats "create$round")
    sizes=$(qv "SELECT string_agg(format('%s %s pages', c.relname, pg_relation_size(c.oid) / 8192), ', ' ORDER BY c.relname)
                 FROM pg_class c WHERE c.oid = 'segments.member'::regclass OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'segments.member'::regclass)")
    echo "round $round: sizes: $sizes; memberships $(qv "SELECT sum(member_count) FROM segments.segment_state")"
    echo "round $round: refresh() $b s ($bc s CPU); worker all ready $SETTLED_S s ($(calc "($b > 0 ? $SETTLED_S / $b : 0)")x), $wc s CPU ($(calc "($bc > 0 ? $wc / $bc : 0)")x), load $(cut -d' ' -f1 /proc/loadavg), $((v1 - v0)) vacuums of segments.member meanwhile; $B B/membership; probe: $n, p50 $p50 ms, p99 $p99 ms, max $mx ms; time_lag: mean $lmean s, max $lmax s ($ln samples)"
    t=$(now_s); upkeep_settle
    BS=$(bpm); BPMS_SETTLED="$BPMS_SETTLED $BS"
    echo "round $round: upkeep settled after $(elapsed "$t") s: $BS B/membership; sizes: $(qv "SELECT string_agg(format('%s %s pages', c.relname, pg_relation_size(c.oid) / 8192), ', ' ORDER BY c.relname)
                 FROM pg_class c WHERE c.oid = 'segments.member'::regclass OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'segments.member'::regclass)")"
    # seconds of the worker's time by what it did (a sample is 50 ms)
    qv "SELECT format('    %6s s  %-60s %s', round(count(*) * 0.05, 1), left(activity, 60), wait) FROM bench.samples
         WHERE r = $round GROUP BY activity, wait ORDER BY count(*) DESC LIMIT 8"
    drop_new
done
mb=$(echo "$BASE" | median); mw=$(echo "$WORK" | median); mbc=$(echo "$BCPU" | median); mwc=$(echo "$WCPU" | median)
read -r n p50 p99 mx < <(qv "SELECT count(*), round(percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)::numeric, 1),
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms)::numeric, 1), round(max(latency_ms)::numeric, 1)
  FROM bench.freshness" | tr '|' ' ')
echo "median: refresh() $mb s, worker $mw s: $(calc "($mb > 0 ? $mw / $mb : 0)")x (target <= 1.5x); CPU: refresh() $mbc s, worker $mwc s: $(calc "($mbc > 0 ? $mwc / $mbc : 0)")x; probe over all rounds: $n, p50 $p50 ms, p99 $p99 ms, max $mx ms (target <= 1000); B/membership after the worker's rounds:$BPMS (target <= 12), once its upkeep settled:$BPMS_SETTLED"

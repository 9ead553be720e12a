#!/usr/bin/env bash
# The scale row of the benchmark: many contacts and many segments.  The
# 1,000 segments are the 100 of bench/segments.sql and 9 variants of each
# with their constants moved (bench/vary.sql).  The 100 are evaluated first
# by one refresh() (the baseline); then the 900 others are created in one
# transaction with the worker on, as an import of definitions would be, and
# the worker evaluates them in its chunked pass.  Reported: the time until
# all are ready and the ns per (contact, segment) of both, the worker's
# peak memory during its pass, and the freshness probe meanwhile (contact 1
# changed every 2 s, commit to visible in a ready segment).
#
#   ./bench/scale.sh                                       # 10,000,000 contacts x 1,000 segments
#   ./bench/scale.sh --contacts 1000000 --segments 500     # smaller (segments: a multiple of 100)
#
# Output: the table on stdout; bench/out/scale-<contacts>x<segments>/ holds
# the details (results.tsv, table.md, the worker's memory samples, the
# freshness samples).  About an hour at 10M on the machine of BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

CONTACTS="${CONTACTS:-10000000}"
SEGMENTS="${SEGMENTS:-1000}"
while [ $# -gt 0 ]; do
    case "$1" in
        --contacts) CONTACTS="${2:-}"; shift 2 ;;
        --segments) SEGMENTS="${2:-}"; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench/scale.sh: unknown argument \"$1\" (try --help)" >&2; exit 2 ;;
    esac
done
if ! [[ "$CONTACTS" =~ ^[0-9]+$ ]] || [ "$CONTACTS" -lt 1000 ] || [ "$CONTACTS" -gt 10000000 ]; then
    echo "bench/scale.sh: --contacts must be an integer from 1000 to 10000000" >&2; exit 2
fi
if ! [[ "$SEGMENTS" =~ ^[0-9]+$ ]] || [ "$SEGMENTS" -lt 200 ] || [ $((SEGMENTS % 100)) -ne 0 ]; then
    echo "bench/scale.sh: --segments must be a multiple of 100, at least 200" >&2; exit 2
fi
VARIANTS=$((SEGMENTS / 100 - 1))
OUT="$PWD/bench/out/scale-${CONTACTS}x$SEGMENTS"
rm -rf "$OUT"
mkdir -p "$OUT/pgbench"
RES="$OUT/results.tsv"
: > "$RES"
BENCH_DIR="$PWD/bench"
CLIENTS=2

. bench/common.sh
bench_setup

log "scale: $CONTACTS contacts, $SEGMENTS segments, output in $OUT"
createdb bench
qv "ALTER DATABASE bench SET segments.enabled = off" >/dev/null
t=$(now_s)
q -v contacts="$CONTACTS" -f "$BENCH_DIR/data.sql"
LOAD_S=$(elapsed "$t")
q -c "CREATE EXTENSION segments" \
  -c "SELECT segments.configure(source => 'public.contacts', key_column => 'id', traits_column => 'custom_data')" >/dev/null
worker_off
q -f "$BENCH_DIR/segments.sql" -f "$BENCH_DIR/vary.sql"
q -c "CREATE TABLE bench.freshness (run text, i int, at_s float8, latency_ms float8)"
CONDS=$(qv "SELECT count(DISTINCT c) FILTER (WHERE v = 0) || ' ' || count(DISTINCT c)
              FROM generate_series(0, $VARIANTS) v, bench.seg_def d,
                   jsonb_path_query(bench.vary(d.definition, v), 'strict \$.** ? (exists(@.op))') c")
read -r CONDS_BASE CONDS_ALL <<< "$CONDS"

log "baseline: the 100 segments, one refresh()"
q -c "SELECT count(segments.create_segment(name, definition)) FROM (SELECT name, definition FROM bench.seg_def ORDER BY n) s" >/dev/null
q -c "CHECKPOINT" >/dev/null
BASE_S=$(query_s "SELECT segments.refresh()")
SCAN_S=$(query_s "SELECT count(*) FROM public.contacts")
echo "refresh() of 100: $BASE_S s; count(*): $SCAN_S s"

log "$((SEGMENTS - 100)) more segments created in one transaction, worker on"
PROBE_SEG=$(qv "SELECT id FROM segments.segments WHERE name = 'Plan: vip'")
worker_on
qv "SELECT segments.wait('30 min')" >/dev/null
q -c "CHECKPOINT" >/dev/null
IDLE_ANON=$(awk '/^RssAnon:/ { print $2 }' "/proc/$WORKER_PID/status")
rm -f "$OUT/worker.stop"
sample_rss "$WORKER_PID" "$OUT/rss-worker.txt" "$OUT/worker.stop" &
SAMPLER=$!
BG_PIDS+=("$SAMPLER")
t=$(now_s)
q -c "SELECT count(segments.create_segment(d.name || ' ~' || v, bench.vary(d.definition, v)))
        FROM generate_series(1, $VARIANTS) v, bench.seg_def d" >/dev/null
settle_with_probe scale "$t"
PASS_S=$SETTLED_S
touch "$OUT/worker.stop"; wait "$SAMPLER" || true
W_ANON=$(peak_col "$OUT/rss-worker.txt" 3)
NOT_READY=$(qv "SELECT count(*) FROM segments.segment_state WHERE state <> 'ready'")
read -r F_N F_P50 F_P99 F_MAX < <(freshness_stats scale)
read -r L_N L_MEAN L_MAX < <(time_lag_stats scale)
q -c "\\copy (SELECT run, i, at_s, latency_ms FROM bench.freshness ORDER BY i) TO '$OUT/freshness.csv' WITH (FORMAT csv, HEADER)"
echo "all ready after $PASS_S s ($NOT_READY not ready); worker peak RssAnon $(fmt_mb "$W_ANON"); freshness p99 $F_P99 ms, max $F_MAX ms ($F_N probes); time_lag mean $L_MEAN s, max $L_MAX s"

NEW=$((SEGMENTS - 100))
ns_base=$(calc "$BASE_S * 1e9 / ($CONTACTS * 100)")
ns_pass=$(calc "$PASS_S * 1e9 / ($CONTACTS * $NEW)")
result "scale: $NEW new segments ready, worker's chunked pass" "$(x2 "$PASS_S") s" "refresh() of the first 100" "$(x2 "$BASE_S") s" "$(x2 "$(calc "$PASS_S / $BASE_S")")x the time for $(x2 "$(calc "$NEW / 100")")x the segments" "reported" "-"
result "  per (contact, segment)" "$(x2 "$ns_pass") ns" "refresh() of the first 100" "$(x2 "$ns_base") ns" "" "reported" "-"
result "  distinct conditions" "$CONDS_ALL in $SEGMENTS segments" "in the first 100" "$CONDS_BASE" "" "reported" "-"
result "  worker memory: peak RssAnon during the pass" "$(fmt_mb "$W_ANON")" "worker before the pass" "$(fmt_mb "$IDLE_ANON")" "+$(fmt_mb $((W_ANON - IDLE_ANON)))" "bounded" "-"
result "  freshness meanwhile, a change every 2 s: worst" "max $F_MAX ms" "p50 / p99 ($F_N probes)" "$F_P50 / $F_P99 ms" "" "<= 1000 ms" "$(ratio_le "${F_MAX:-99999}" 1000)"
result "  time-dependent segments meanwhile: time_lag" "max $L_MAX s" "mean ($L_N samples, 1 s apart)" "$L_MEAN s" "" "reported" "-"
result "  plain scan of the contacts (floor)" "$(x2 "$SCAN_S") s" "" "" "" "reported" "-"
[ "$NOT_READY" = 0 ] || result "WARNING: segments not ready after the pass" "$NOT_READY" "" "" "" "0" "NO"

print_results "segments scale benchmark: $CONTACTS contacts, $SEGMENTS segments (the 100 and $VARIANTS variants of each)"
echo "details: $OUT (table.md, results.tsv, rss-worker.txt, freshness.csv)"

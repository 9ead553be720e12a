#!/usr/bin/env bash
# The benchmark: builds and installs segments, starts a throwaway
# PostgreSQL 15 (scripts/lib.sh), generates a deterministic data set and
# prints one table in which every row is a ratio against a baseline
# measured in the same run.  See BENCHMARKS.md.
#
#   ./bench/run.sh                      # 1,000,000 contacts (make bench)
#   ./bench/run.sh --contacts 10000000  # or CONTACTS=10000000
#   ./bench/run.sh --quick              # 100,000 contacts, short runs (development)
#
# Output: the table on stdout; bench/out/<contacts>/ holds the details
# (results.tsv, table.md, freshness samples and chart, pgbench logs).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
}

CONTACTS="${CONTACTS:-}"
QUICK="${QUICK:-0}"
while [ $# -gt 0 ]; do
    case "$1" in
        --contacts) CONTACTS="${2:-}"; shift 2 ;;
        --contacts=*) CONTACTS="${1#*=}"; shift ;;
        --quick) QUICK=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench/run.sh: unknown argument \"$1\" (try --help)" >&2; exit 2 ;;
    esac
done
[ "$QUICK" = 1 ] && : "${CONTACTS:=100000}"
: "${CONTACTS:=1000000}"
if ! [[ "$CONTACTS" =~ ^[0-9]+$ ]] || [ "$CONTACTS" -lt 1000 ] || [ "$CONTACTS" -gt 10000000 ]; then
    echo "bench/run.sh: --contacts must be an integer from 1000 to 10000000" >&2
    exit 2
fi

# Durations (seconds) and repetitions; quick mode is for development only.
if [ "$QUICK" = 1 ]; then
    : "${CHECK_SECONDS:=3}" "${ROUNDS:=1}" "${FRESH_SECONDS:=15}" "${TPUT_SECONDS:=5}" "${TPUT_ROUNDS:=1}"
else
    : "${CHECK_SECONDS:=10}" "${ROUNDS:=3}" "${FRESH_SECONDS:=60}" "${TPUT_SECONDS:=20}" "${TPUT_ROUNDS:=2}"
fi
# Above 2M contacts, refresh 10 of the 100 materialized views and scale by
# 10, and size the (segment, contact) table from 10 segments (per row).
if [ "$CONTACTS" -le 2000000 ]; then : "${MATVIEWS:=100}" "${PAIR_SEGMENTS:=100}"
else : "${MATVIEWS:=10}" "${PAIR_SEGMENTS:=10}"; fi
FRESH_RATE="${FRESH_RATE:-500}"
CLIENTS=2
for v in CHECK_SECONDS ROUNDS FRESH_SECONDS TPUT_SECONDS TPUT_ROUNDS MATVIEWS PAIR_SEGMENTS FRESH_RATE; do
    if ! [[ "${!v}" =~ ^[0-9]+$ ]] || [ "${!v}" -lt 1 ]; then
        echo "bench/run.sh: $v must be a positive integer" >&2; exit 2
    fi
done
[ "$MATVIEWS" -le 100 ] && [ "$PAIR_SEGMENTS" -le 100 ] || { echo "bench/run.sh: MATVIEWS and PAIR_SEGMENTS are at most 100" >&2; exit 2; }

OUT="$PWD/bench/out/$CONTACTS"
rm -rf "$OUT"
mkdir -p "$OUT/pgbench"
RES="$OUT/results.tsv"
: > "$RES"
BENCH_DIR="$PWD/bench"

. bench/common.sh
bench_setup

log "bench: $CONTACTS contacts$([ "$QUICK" = 1 ] && echo ' (quick mode)'), output in $OUT"
createdb bench
# The worker stays off until the read-path measurements are done, so that it
# takes no CPU from them (and does not evaluate the 100 new segments one by
# one: refresh() evaluates them in one pass).
qv "ALTER DATABASE bench SET segments.enabled = off" >/dev/null

# ----------------------------------------------------------------------
log "data: $CONTACTS contacts"
t=$(now_s)
q -v contacts="$CONTACTS" -f "$BENCH_DIR/data.sql"
LOAD_S=$(elapsed "$t")
echo "generated in $LOAD_S s; contacts table $(qv "SELECT pg_size_pretty(pg_total_relation_size('public.contacts'))")"

q -c "CREATE EXTENSION segments" \
  -c "SELECT segments.configure(source => 'public.contacts', key_column => 'id', traits_column => 'custom_data')" >/dev/null
worker_off
q -f "$BENCH_DIR/segments.sql"
q -c "SELECT count(segments.create_segment(name, definition)) FROM (SELECT name, definition FROM bench.seg_def ORDER BY n) s" >/dev/null
# ids of the segments, by benchmark number
q -c "CREATE TABLE bench.seg AS SELECT d.n, s.id, d.name FROM bench.seg_def d JOIN segments.segments s USING (name)"

# ----------------------------------------------------------------------
log "full evaluation"
# First refresh: membership is empty, every membership is written.  The
# backend's memory is sampled meanwhile.
rm -f "$OUT/refresh.stop"
t=$(now_s)
psql -X -q -v ON_ERROR_STOP=1 -c "SET application_name = 'bench refresh'" -c "SELECT segments.refresh()" >/dev/null &
REFRESH_JOB=$!
BG_PIDS+=("$REFRESH_JOB")
BACKEND_PID=""
for i in $(seq 1 200); do
    BACKEND_PID=$(qv "SELECT pid FROM pg_stat_activity WHERE application_name = 'bench refresh'")
    [ -n "$BACKEND_PID" ] && break
    sleep 0.02
done
[ -n "$BACKEND_PID" ] && sample_rss "$BACKEND_PID" "$OUT/rss-refresh.txt" "$OUT/refresh.stop" &
SAMPLER=$!
BG_PIDS+=("$SAMPLER")
wait "$REFRESH_JOB"
REFRESH_FIRST_S=$(elapsed "$t")
touch "$OUT/refresh.stop"; wait "$SAMPLER" || true
REFRESH_RSS_ANON=$(peak_col "$OUT/rss-refresh.txt" 3)
REFRESH_HWM=$(peak_col "$OUT/rss-refresh.txt" 4)
echo "refresh() first: $REFRESH_FIRST_S s (backend peak RssAnon $(fmt_mb "$REFRESH_RSS_ANON"), VmHWM $(fmt_mb "$REFRESH_HWM"))"

t=$(now_s); qv "SELECT segments.refresh()" >/dev/null; REFRESH_STEADY_S=$(elapsed "$t")
echo "refresh() again, nothing changed: $REFRESH_STEADY_S s"

# One SQL pass computing the 100 predicates (the counts also check the
# extension's membership).
qv "SELECT 'CREATE TABLE bench.sql_count AS SELECT u.n::int, u.c FROM unnest((SELECT ARRAY['
    || string_agg(format('count(*) FILTER (WHERE %s)', predicate), E',\n' ORDER BY n)
    || '] FROM public.contacts)) WITH ORDINALITY AS u(c, n)' FROM bench.seg_def" > "$OUT/sql_pass.sql"
t=$(now_s); q -f "$OUT/sql_pass.sql"; SQL_PASS_S=$(elapsed "$t")
echo "one SQL pass, 100 predicates: $SQL_PASS_S s"

SCANS=""
for i in 1 2 3; do
    t=$(now_s); qv "SELECT count(*) FROM public.contacts" >/dev/null; SCANS="$SCANS $(elapsed "$t")"
done
SCAN_S=$(echo "$SCANS" | median)
echo "plain count(*) scan: $SCAN_S s (median of$SCANS)"

# Correctness: every predicate counts what the extension stores.
q -c "CREATE TABLE bench.verify AS
      SELECT d.n, d.name, c.c AS sql_count, s.member_count,
             c.c IS DISTINCT FROM s.member_count AS differs
        FROM bench.seg_def d JOIN bench.sql_count c USING (n)
        LEFT JOIN segments.segments s ON s.name = d.name"
q -A -F $'\t' -c "SELECT n, name, sql_count, member_count FROM bench.verify ORDER BY n" > "$OUT/segment_counts.tsv"
MISMATCHES=$(qv "SELECT count(*) FROM bench.verify WHERE differs")
AVG_PCT=$(qv "SELECT round(100.0 * avg(member_count) / $CONTACTS, 1) FROM bench.verify")
MEMBERSHIPS=$(qv "SELECT sum(member_count) FROM bench.verify")
STATES=$(qv "SELECT string_agg(state || ' ' || n, ', ') FROM (SELECT state, count(*) n FROM segments.status GROUP BY 1) s")
echo "segments: $STATES; average membership $AVG_PCT%; $MEMBERSHIPS memberships; $MISMATCHES mismatching counts"
if [ "$MISMATCHES" != 0 ]; then
    qv "SELECT n || ' ' || name || ': SQL ' || sql_count || ', extension ' || coalesce(member_count::text, 'none') FROM bench.verify WHERE differs ORDER BY n" |
        while IFS= read -r line; do
            echo "WARNING: count differs for segment $line" >&2
            result "WARNING: count differs, segment $line" "" "" "" "" "" "NO"
        done
fi
result "correctness: SQL predicate count = member_count" "$((100 - MISMATCHES)) of 100 agree" "" "" "" "100 of 100" \
    "$([ "$MISMATCHES" = 0 ] && echo yes || echo NO)"

# Materialized views: one per segment (id with a unique index, as needed by
# REFRESH ... CONCURRENTLY and by lookups), refreshed in turn.
qv "SELECT format('CREATE MATERIALIZED VIEW bench.mv_%s AS SELECT id FROM public.contacts WHERE %s WITH NO DATA;', lpad(n::text, 3, '0'), predicate)
        || format(E'\nCREATE UNIQUE INDEX ON bench.mv_%s (id);', lpad(n::text, 3, '0'))
      FROM bench.seg_def ORDER BY n" > "$OUT/matviews_create.sql"
qv "SELECT format('REFRESH MATERIALIZED VIEW bench.mv_%s;', lpad(n::text, 3, '0')) FROM bench.seg_def WHERE n <= $MATVIEWS ORDER BY n" > "$OUT/matviews_refresh.sql"
q -f "$OUT/matviews_create.sql"
t=$(now_s); q -f "$OUT/matviews_refresh.sql"; MV_S=$(elapsed "$t")
MV_SIZE=$(qv "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = 'bench' AND c.relname LIKE 'mv\_%' AND c.relkind = 'm'")
if [ "$MATVIEWS" -lt 100 ]; then
    MV_TOTAL_S=$(calc "$MV_S * 100 / $MATVIEWS")
    MV_NOTE="100 matviews (extrapolated from $MATVIEWS)"
else
    MV_TOTAL_S="$MV_S"
    MV_NOTE="REFRESH of 100 matviews"
fi
echo "refresh of $MATVIEWS materialized views: $MV_S s (100: $MV_TOTAL_S s); their size $((MV_SIZE / 1048576)) MB"
qv "SELECT format('DROP MATERIALIZED VIEW bench.mv_%s;', lpad(n::text, 3, '0')) FROM bench.seg_def" | q -f - >/dev/null

r=$(calc "$MV_TOTAL_S / $REFRESH_FIRST_S")
result "full evaluation: refresh(), first (writes all), vs matviews" "${REFRESH_FIRST_S} s" "$MV_NOTE" "${MV_TOTAL_S} s" "$(x2 "$r")x faster" ">= 10x" "$(ratio_ge "$r" 10)"
r=$(calc "$SQL_PASS_S / $REFRESH_FIRST_S")
result "full evaluation: refresh(), first, vs one SQL pass counting" "${REFRESH_FIRST_S} s" "SQL pass" "${SQL_PASS_S} s" "$(x2 "$r")x faster" ">= 3x" "$(ratio_ge "$r" 3)"
r=$(calc "$SQL_PASS_S / $REFRESH_STEADY_S")
result "full evaluation: refresh(), nothing changed, vs SQL pass" "${REFRESH_STEADY_S} s" "SQL pass" "${SQL_PASS_S} s" "$(x2 "$r")x faster" "reported" "-"
r=$(calc "$REFRESH_FIRST_S / $SCAN_S")
result "full evaluation: refresh(), first, vs plain scan (floor)" "${REFRESH_FIRST_S} s" "count(*)" "${SCAN_S} s" "$(x2 "$r")x slower" "reported" "-"

# ----------------------------------------------------------------------
log "storage"
q -c "VACUUM (ANALYZE) segments.member" >/dev/null
MEMBER_BYTES=$(qv "SELECT pg_total_relation_size('segments.member')")
MEMBER_ROWS=$(qv "SELECT count(*) FROM segments.member")
STORED="$MEMBERSHIPS"
if [ "$CONTACTS" -le 2000000 ]; then
    # cross-check member_count against the membership view
    VIEW_ROWS=$(qv "SELECT count(*) FROM segments.membership")
    [ "$VIEW_ROWS" = "$MEMBERSHIPS" ] || { echo "WARNING: segments.membership has $VIEW_ROWS rows, member_count sums to $MEMBERSHIPS" >&2;
        result "WARNING: membership view rows differ from member_count" "$VIEW_ROWS" "" "$MEMBERSHIPS" "" "" "NO"; }
fi
BPM=$(calc "$MEMBER_BYTES / $STORED")
q -c "CREATE TABLE bench.pairs (segment_id uuid NOT NULL, contact_id bigint NOT NULL)"
t=$(now_s)
q -c "INSERT INTO bench.pairs SELECT m.segment_id, m.contact_id FROM segments.membership m
      WHERE m.segment_id IN (SELECT id FROM bench.seg WHERE n <= $PAIR_SEGMENTS)" \
  -c "SET maintenance_work_mem = '1GB'" \
  -c "ALTER TABLE bench.pairs ADD PRIMARY KEY (segment_id, contact_id)" \
  -c "CREATE INDEX pairs_contact ON bench.pairs (contact_id, segment_id)" \
  -c "VACUUM (ANALYZE) bench.pairs"
PAIRS_BYTES=$(qv "SELECT pg_total_relation_size('bench.pairs')")
PAIRS_ROWS=$(qv "SELECT count(*) FROM bench.pairs")
PAIRS_BPM=$(calc "$PAIRS_BYTES / $PAIRS_ROWS")
echo "segments.member: $MEMBER_ROWS rows, $STORED memberships, $((MEMBER_BYTES / 1048576)) MB = $BPM bytes per membership"
echo "(segment_id, contact_id) table with both indexes: $PAIRS_ROWS rows ($PAIR_SEGMENTS segments), $((PAIRS_BYTES / 1048576)) MB = $PAIRS_BPM bytes per row (built in $(elapsed "$t") s)"
q -c "DROP TABLE bench.pairs"
r=$(calc "$PAIRS_BPM / $BPM")
PAIR_NOTE="(segment_id, contact_id) + PK + reverse index"
[ "$PAIR_SEGMENTS" -lt 100 ] && PAIR_NOTE="$PAIR_NOTE ($PAIR_SEGMENTS segments)"
result "storage: bytes per membership (segments.member + indexes)" "$(x2 "$BPM") B" "$PAIR_NOTE" "$(x2 "$PAIRS_BPM") B" "$(x2 "$r")x smaller" "<= 12 B" "$(ratio_le "$BPM" 12)"

# ----------------------------------------------------------------------
log "actions"
q <<'SQL'
SELECT setseed(0.7) \g /dev/null
CREATE TABLE public.actions (
    id            int PRIMARY KEY,
    name          text NOT NULL,
    restricted_to uuid[] NOT NULL
);
-- 30% unrestricted; the others restricted to 1 to 4 of the 100 segments
INSERT INTO public.actions
SELECT a, 'action ' || a,
       CASE WHEN random() < 0.3 THEN '{}'::uuid[]
            ELSE ARRAY(SELECT s.id FROM bench.seg s
                        WHERE s.n IN (SELECT 1 + floor(random() * 100)::int
                                        FROM generate_series(1, 1 + floor(random() * 4)::int + 0 * a)))
       END
  FROM generate_series(1, 1000) AS a;
VACUUM (ANALYZE) public.actions;
SQL
echo "$(qv "SELECT count(*) FILTER (WHERE cardinality(restricted_to) = 0) || ' unrestricted, ' || count(*) FILTER (WHERE cardinality(restricted_to) > 0) || ' restricted (avg ' || round(avg(cardinality(restricted_to)) FILTER (WHERE cardinality(restricted_to) > 0), 2) || ' segments)' FROM public.actions")"

# The gating answers agree with the naive SQL for a sample of contacts.
# (OFFSET 0 keeps cs.c a plain value: the expression itself is not
# leakproof, so the security-barrier view would not take it as an index
# condition and would decode every member row for every action)
GATE_DIFF=$(qv "SELECT count(*) FROM (SELECT (1 + (g * 7919) % $CONTACTS)::bigint AS c FROM generate_series(1, 50) g OFFSET 0) cs
  WHERE ARRAY(SELECT id FROM public.actions WHERE segments.filter_restricted(cs.c, restricted_to) ORDER BY id)
        IS DISTINCT FROM
        ARRAY(SELECT a.id FROM public.actions a WHERE cardinality(a.restricted_to) = 0 OR EXISTS
               (SELECT 1 FROM segments.membership m WHERE m.contact_id = cs.c AND m.segment_id = ANY (a.restricted_to)) ORDER BY a.id)")
[ "$GATE_DIFF" = 0 ] || { echo "WARNING: filter_restricted and the naive SQL disagree for $GATE_DIFF of 50 contacts" >&2;
    result "WARNING: gating answers differ from the naive SQL" "$GATE_DIFF of 50 contacts" "" "" "" "" "NO"; }

# ----------------------------------------------------------------------
log "check and gating (pgbench -M prepared, $CLIENTS clients, ${CHECK_SECONDS}s x $ROUNDS)"
P="$OUT/pgbench"
SEG_ID=$(qv "SELECT id FROM bench.seg WHERE name = 'Paid plans'")
ACTION_R=$(qv "SELECT restricted_to FROM public.actions WHERE cardinality(restricted_to) = 2 ORDER BY id LIMIT 1")
printf 'SELECT 1;\n' > "$P/select1.sql"
printf '\\set c random(1, %s)\nSELECT plan FROM public.contacts WHERE id = :c;\n' "$CONTACTS" > "$P/pk.sql"
printf '\\set c random(1, %s)\nSELECT segments.segment_is_member(:c::bigint, :seg::uuid);\n' "$CONTACTS" > "$P/is_member.sql"
printf '\\set c random(1, %s)\nSELECT segments.filter_restricted(:c::bigint, :r::uuid[]);\n' "$CONTACTS" > "$P/filter_one.sql"
printf 'SELECT id FROM public.actions;\n' > "$P/gate_floor.sql"
printf '\\set c random(1, %s)\nSELECT id FROM public.actions WHERE segments.filter_restricted(:c::bigint, restricted_to);\n' "$CONTACTS" > "$P/gate_ext.sql"
printf '\\set c random(1, %s)\nSELECT a.id FROM public.actions a WHERE cardinality(a.restricted_to) = 0 OR EXISTS (SELECT 1 FROM segments.membership m WHERE m.contact_id = :c AND m.segment_id = ANY (a.restricted_to));\n' "$CONTACTS" > "$P/gate_naive.sql"

declare -A TPS LAT
for name in select1 pk is_member filter_one gate_floor gate_ext gate_naive; do TPS[$name]=""; LAT[$name]=""; done
for round in $(seq 1 "$ROUNDS"); do
    for name in select1 pk is_member filter_one gate_floor gate_ext gate_naive; do
        read -r tps lat < <(pgbench_run "$name-$round" "$P/$name.sql" "$CHECK_SECONDS" -D seg="$SEG_ID" -D r="$ACTION_R")
        TPS[$name]="${TPS[$name]} $tps"; LAT[$name]="${LAT[$name]} $lat"
        printf '  round %s %-11s %10.0f tps  %8.3f ms\n' "$round" "$name" "$tps" "$lat"
    done
done
declare -A MT ML
for name in "${!TPS[@]}"; do MT[$name]=$(echo "${TPS[$name]}" | median); ML[$name]=$(echo "${LAT[$name]}" | median); done
tps_s() { awk -v t="$1" 'BEGIN { printf "%.0f tps", t }'; }
for name in is_member filter_one; do
    label=$([ "$name" = is_member ] && echo "segment_is_member" || echo "filter_restricted (1 action, 2 ids)")
    r=$(calc "${MT[$name]} / ${MT[pk]}")
    result "check: $label vs PK lookup" "$(tps_s "${MT[$name]}")" "SELECT plan FROM contacts WHERE id = \$1" "$(tps_s "${MT[pk]}")" "$(x2 "$r")x" ">= 0.9x" "$(ratio_ge "$r" 0.9)"
    r=$(calc "${MT[$name]} / ${MT[select1]}")
    result "check: $label vs SELECT 1" "$(tps_s "${MT[$name]}")" "SELECT 1 (round trip)" "$(tps_s "${MT[select1]}")" "$(x2 "$r")x" "reported" "-"
done
r=$(calc "${ML[gate_ext]} / ${ML[gate_floor]}")
result "gating: actions of C (1,000), latency vs plain scan" "${ML[gate_ext]} ms" "SELECT id FROM actions" "${ML[gate_floor]} ms" "$(x2 "$r")x" "<= 1.5x" "$(ratio_le "$r" 1.5)"
r=$(calc "${MT[gate_ext]} / ${MT[gate_naive]}")
result "gating: actions of C (1,000), throughput vs naive SQL" "$(tps_s "${MT[gate_ext]}")" "naive SQL" "$(tps_s "${MT[gate_naive]}")" "$(x2 "$r")x" ">= 5x" "$(ratio_ge "$r" 5)"

# ----------------------------------------------------------------------
log "worker memory and background load"
worker_on
echo "worker pid $WORKER_PID"
qv "SELECT segments.wait('30 min')" >/dev/null
# Idle: no contact changes; segments whose rules read the clock are
# re-evaluated every segments.time_resolution regardless.  The worker was
# off during the rows above, so its first time window and sweep catch up
# on everything since (a full core for tens of seconds at 1M contacts):
# that is not the steady state, so let it finish first.
sleep "${IDLE_WARMUP_S:-60}"
read -r u0 s0 < <(awk '{ print $14, $15 }' "/proc/$WORKER_PID/stat")
EVALS0=$(qv "SELECT segments_evaluated FROM segments.worker")
sleep 20
read -r u1 s1 < <(awk '{ print $14, $15 }' "/proc/$WORKER_PID/stat")
EVALS1=$(qv "SELECT segments_evaluated FROM segments.worker")
TICK=$(getconf CLK_TCK)
IDLE_CPU=$(calc "100 * (($u1 + $s1) - ($u0 + $s0)) / $TICK / 20")
TIME_SEGS=$(qv "SELECT count(*) FROM segments.status WHERE uses_time")
echo "worker with no contact changes: ${IDLE_CPU}% of a core over 20 s, $((EVALS1 - EVALS0)) segment evaluations ($TIME_SEGS segments read the clock)"
result "background: worker CPU, no contact changes (20 s)" "${IDLE_CPU}% of a core" "$TIME_SEGS time-based segments, time_resolution $(qv "SHOW segments.time_resolution")" "$((EVALS1 - EVALS0)) evaluations" "" "reported" "-"

# A full pass by the worker: what a TRUNCATE of the source queues (one NULL
# entry in segments.change_queue); no public function asks the worker for it.
IDLE_ANON=$(awk '/^RssAnon:/ { print $2 }' "/proc/$WORKER_PID/status")
rm -f "$OUT/worker.stop"
sample_rss "$WORKER_PID" "$OUT/rss-worker.txt" "$OUT/worker.stop" &
SAMPLER=$!
BG_PIDS+=("$SAMPLER")
t=$(now_s)
q -c "BEGIN" -c "INSERT INTO segments.change_queue (contact) VALUES (NULL)" -c "SELECT segments._notify_worker()" -c "COMMIT" >/dev/null
qv "SELECT segments.wait('60 min')" >/dev/null
WORKER_PASS_S=$(elapsed "$t")
touch "$OUT/worker.stop"; wait "$SAMPLER" || true
W_ANON=$(peak_col "$OUT/rss-worker.txt" 3)
W_RSS=$(peak_col "$OUT/rss-worker.txt" 2)
W_HWM=$(peak_col "$OUT/rss-worker.txt" 4)
echo "worker full pass: $WORKER_PASS_S s; peak RssAnon $(fmt_mb "$W_ANON") (idle $(fmt_mb "$IDLE_ANON")), peak VmRSS $(fmt_mb "$W_RSS"), VmHWM $(fmt_mb "$W_HWM")"
result "worker memory: peak RssAnon, full pass ($WORKER_PASS_S s)" "$(fmt_mb "$W_ANON")" "worker before the pass" "$(fmt_mb "$IDLE_ANON")" "+$(fmt_mb $((W_ANON - IDLE_ANON)))" "bounded" "see 1M vs 10M"
result "worker memory: peak VmRSS (incl. shared buffers)" "$(fmt_mb "$W_RSS")" "" "" "" "reported" "-"
result "refresh() backend: peak RssAnon, first refresh" "$(fmt_mb "$REFRESH_RSS_ANON")" "" "" "" "reported" "-"

# ----------------------------------------------------------------------
# Freshness: pgbench updates FRESH_RATE contacts per second (activity:
# last_seen_at and lifetime_value, both read by rules) while a probe flips
# the plan of contact 1 between vip and pro, commits, and polls
# segment_is_member('Plan: vip') every millisecond until it flips.
log "freshness (pgbench -R $FRESH_RATE, probe for ${FRESH_SECONDS}s)"
printf '\\set c random(1, %s)\n\\set v random(0, 2000000)\nUPDATE public.contacts SET last_seen_at = now() - interval '"'"'12 hours'"'"', lifetime_value = :v / 100.0 WHERE id = :c;\n' "$CONTACTS" > "$P/update.sql"
q -c "CREATE TABLE bench.freshness (run text, i int, at_s float8, latency_ms float8)"
PROBE_SEG=$(qv "SELECT id FROM bench.seg WHERE name = 'Plan: vip'")

freshness_run() {
    local run="$1" pgb
    "$PGBENCH" -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$((FRESH_SECONDS + 4))" -R "$FRESH_RATE" \
        -f "$P/update.sql" > "$P/fresh-$run.log" 2>&1 &
    pgb=$!
    BG_PIDS+=("$pgb")
    sleep 2
    q -v run="$run" -v seg="$PROBE_SEG" -v secs="$FRESH_SECONDS" -f "$BENCH_DIR/probe.sql"
    wait "$pgb" || { cat "$P/fresh-$run.log" >&2; return 1; }
    FRESH_TPS=$(awk '/^tps/ { print $3 }' "$P/fresh-$run.log")
    read -r FRESH_N FRESH_P50 FRESH_P99 FRESH_MAX < <(freshness_stats "$run")
    echo "freshness ($run): $FRESH_N samples, p50 $FRESH_P50 ms, p99 $FRESH_P99 ms, max $FRESH_MAX ms; pgbench $FRESH_TPS tps"
}
qv "SELECT segments.wait('30 min')" >/dev/null
freshness_run default
result "freshness: commit to visible, $FRESH_RATE updates/s" "p99 $FRESH_P99 ms" "p50 / max ($FRESH_N probes)" "$FRESH_P50 / $FRESH_MAX ms" "" "p99 <= 200 ms" "$(ratio_le "$FRESH_P99" 200)"

# The same with the clock-driven re-evaluations spaced out (1 h), to show
# the latency of the change path alone.
TR_DEFAULT=$(qv "SHOW segments.time_resolution")
q -c "ALTER SYSTEM SET segments.time_resolution = '1h'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
qv "SELECT segments.wait('30 min')" >/dev/null
freshness_run time_resolution_1h
result "freshness, time_resolution 1h (default $TR_DEFAULT)" "p99 $FRESH_P99 ms" "p50 / max ($FRESH_N probes)" "$FRESH_P50 / $FRESH_MAX ms" "" "p99 <= 200 ms" "$(ratio_le "$FRESH_P99" 200)"
q -c "ALTER SYSTEM RESET segments.time_resolution" -c "SELECT pg_reload_conf()" >/dev/null
q -c "\\copy (SELECT run, i, at_s, latency_ms FROM bench.freshness ORDER BY run, i) TO '$OUT/freshness.csv' WITH (FORMAT csv, HEADER)"

# ----------------------------------------------------------------------
# Update throughput: the same UPDATE workload at full speed, without the
# extension (capture trigger disabled, worker stopped) and with it; two
# write patterns: the one-row UPDATE of the freshness run, and a 20-row
# UPDATE (one statement) of a column rules read (seats).
printf '\\set c random(1, %s)\nUPDATE public.contacts SET seats = 1 + (random() * 50)::int WHERE id BETWEEN :c AND :c + 19;\n' "$((CONTACTS - 19))" > "$P/update20.sql"
log "update throughput (pgbench -M prepared, $CLIENTS clients, ${TPUT_SECONDS}s x $TPUT_ROUNDS)"
for pattern in update update20; do
  label=$([ "$pattern" = update ] && echo "update throughput" || echo "update throughput, 20-row UPDATE")
  for sc in on off; do
    WITHOUT=""; WITH=""; TRIG=""; DRAIN=""
    for round in $(seq 1 "$TPUT_ROUNDS"); do
        worker_off
        q -c "ALTER TABLE public.contacts DISABLE TRIGGER segments_capture" -c "CHECKPOINT" >/dev/null
        read -r tps _ < <(PGOPTIONS="-c synchronous_commit=$sc" pgbench_run "$pattern-$sc-without-$round" "$P/$pattern.sql" "$TPUT_SECONDS")
        WITHOUT="$WITHOUT $tps"
        # capture trigger on, worker still off: the cost on the writer alone
        q -c "ALTER TABLE public.contacts ENABLE TRIGGER segments_capture" -c "CHECKPOINT" >/dev/null
        read -r tps _ < <(PGOPTIONS="-c synchronous_commit=$sc" pgbench_run "$pattern-$sc-trigger-$round" "$P/$pattern.sql" "$TPUT_SECONDS")
        TRIG="$TRIG $tps"
        worker_on
        qv "SELECT segments.wait('30 min')" >/dev/null
        q -c "CHECKPOINT" >/dev/null
        read -r tps _ < <(PGOPTIONS="-c synchronous_commit=$sc" pgbench_run "$pattern-$sc-with-$round" "$P/$pattern.sql" "$TPUT_SECONDS")
        WITH="$WITH $tps"
        t=$(now_s); qv "SELECT segments.wait('30 min')" >/dev/null; DRAIN="$DRAIN $(elapsed "$t")"
        printf '  %s, synchronous_commit=%s round %s: without %.0f tps, trigger only %.0f tps, with worker %.0f tps; worker caught up %s s later\n' \
            "$pattern" "$sc" "$round" "$(echo "$WITHOUT" | awk '{ print $NF }')" "$(echo "$TRIG" | awk '{ print $NF }')" "$tps" "$(echo "$DRAIN" | awk '{ print $NF }')"
    done
    mw=$(echo "$WITHOUT" | median); mx=$(echo "$WITH" | median); mt=$(echo "$TRIG" | median)
    r=$(calc "$mx / $mw")
    target=$([ "$sc" = on ] && echo 0.95 || echo 0.9)
    result "$label, synchronous_commit=$sc" "$(tps_s "$mx")" "without the extension" "$(tps_s "$mw")" "$(x2 "$r")x" ">= ${target}x" "$(ratio_ge "$r" "$target")"
    r=$(calc "$mt / $mw")
    result "  same, capture trigger only (worker stopped)" "$(tps_s "$mt")" "without the extension" "$(tps_s "$mw")" "$(x2 "$r")x" "reported" "-"
    result "  same, worker caught up after the load (max of rounds)" "$(echo "$DRAIN" | tr ' ' '\n' | grep -v '^$' | sort -g | tail -n 1) s" "" "" "" "<= 1 s" "$(ratio_le "$(echo "$DRAIN" | tr ' ' '\n' | grep -v '^$' | sort -g | tail -n 1)" 1)"
  done
done

# ----------------------------------------------------------------------
# 100 new segments (the same rules under new names) created in one
# transaction with the worker on: the time until all are ready, while a
# probe flips contact 1 every 2 s and measures commit-to-visible on a ready
# segment.  Baseline: the same 100 created with the worker off, then one
# refresh() (it evaluates the 100 others too, and writes the same rows).
log "100 segments created at once, worker on"
q -c "CREATE TABLE bench.seg_new AS SELECT n, 'New: ' || name AS name, definition FROM bench.seg_def"
worker_off
q -c "SELECT count(segments.create_segment(name, definition)) FROM (SELECT name, definition FROM bench.seg_new ORDER BY n) s" >/dev/null
t=$(now_s); qv "SELECT segments.refresh()" >/dev/null; CREATE100_BASE_S=$(elapsed "$t")
echo "baseline: the 100 created with the worker off, then refresh(): $CREATE100_BASE_S s"
q -c "SELECT segments.drop_segment(s.id) FROM segments.segments s WHERE s.name LIKE 'New: %'" >/dev/null
worker_on
qv "SELECT segments.wait('30 min')" >/dev/null
strip_settle
PASSES0=$(qv "SELECT passes FROM segments.stat_worker")
t=$(now_s)
q -c "SELECT count(segments.create_segment(name, definition)) FROM (SELECT name, definition FROM bench.seg_new ORDER BY n) s" >/dev/null
settle_with_probe create100 "$t"
CREATE100_S=$SETTLED_S
CREATE100_PASSES=$(( $(qv "SELECT passes FROM segments.stat_worker") - PASSES0 ))
CREATE100_FAILED=$(qv "SELECT count(*) FROM segments.status WHERE name LIKE 'New: %' AND state <> 'ready'")
# storage as the worker's passes leave it (no VACUUM of our own: the worker's and autovacuum's)
CREATE100_BPM=$(qv "SELECT round(pg_total_relation_size('segments.member')::numeric / sum(member_count), 2) FROM segments.segment_state")
read -r C_N C_P50 C_P99 C_MAX < <(freshness_stats create100)
read -r CL_N CL_MEAN CL_MAX < <(time_lag_stats create100)
echo "100 segments created at once: all settled in $CREATE100_S s ($CREATE100_PASSES passes, $CREATE100_FAILED not ready); freshness meanwhile: $C_N probes, p50 $C_P50 ms, p99 $C_P99 ms, max $C_MAX ms"
r=$(calc "$CREATE100_S / $CREATE100_BASE_S")
result "100 segments created in one transaction, worker on: all ready" "${CREATE100_S} s ($CREATE100_PASSES passes)" "created, worker off, then refresh()" "${CREATE100_BASE_S} s" "$(x2 "$r")x" "<= 1.5x" "$(ratio_le "$r" 1.5)"
result "  freshness meanwhile, a change every 2 s: worst" "max $C_MAX ms" "p50 / p99 ($C_N probes)" "$C_P50 / $C_P99 ms" "" "<= 1000 ms" "$(ratio_le "${C_MAX:-99999}" 1000)"
result "  freshness meanwhile, a change every 2 s: p99" "p99 $C_P99 ms" "" "" "" "<= 1000 ms" "$(ratio_le "${C_P99:-99999}" 1000)"
result "  time-dependent segments meanwhile: time_lag" "max $CL_MAX s" "mean ($CL_N samples, 1 s apart)" "$CL_MEAN s" "" "reported" "-"
result "storage after the 100 created at once (no VACUUM FULL)" "$(x2 "$CREATE100_BPM") B" "after one refresh()" "$(x2 "$BPM") B" "" "<= 12 B" "$(ratio_le "$CREATE100_BPM" 12)"
q -c "SELECT segments.drop_segment(s.id) FROM segments.segments s WHERE s.name LIKE 'New: %'" >/dev/null

# Membership history (segments.history, on by default): what recording
# every entry and exit costs a full pass and the worker, and its storage.
# The same work is timed with history off (the baseline) and on.
log "membership history: on vs off ($TPUT_ROUNDS rounds)"
printf '\\set c random(1, %s)\n\\set p random(1, 4)\nUPDATE public.contacts SET plan = (ARRAY['"'"'free'"'"', '"'"'trial'"'"', '"'"'pro'"'"', '"'"'vip'"'"'])[:p] WHERE id = :c;\n' "$CONTACTS" > "$P/update_plan.sql"
history_mode() {    # on | off, for the worker (ALTER SYSTEM, reload)
    q -c "ALTER SYSTEM SET segments.history = $1" -c "SELECT pg_reload_conf()" >/dev/null
}
# apply_rate MODE SCRIPT NAME: with the worker running and held back (a
# session holds the writers' lock, which the worker's batch waits for),
# queues SCRIPT's updates for TPUT_SECONDS; then lets it go and times it
# applying them, from the release to its last batch (server clock): the
# worker's start and wait()'s polling are not timed (they were most of a
# drain of a few thousand contacts).  A first batch after the setting's
# reload is not timed either.  Prints
# "contacts-per-second queued-contacts changes-recorded"
apply_rate() {
    local mode="$1" script="$2" name="$3" n before t0 drain i hold
    history_mode "$mode"
    worker_on
    qv "SELECT segments.wait('30 min')" >/dev/null
    qv "UPDATE public.contacts SET last_seen_at = now() WHERE id = 1" >/dev/null
    qv "SELECT segments.wait('30 min')" >/dev/null
    PGAPPNAME=bench_history_hold psql -X -q -c "BEGIN" -c "SELECT segments._lock_member_writers()" \
        -c "SELECT pg_sleep(3600)" >/dev/null 2>&1 &
    hold=$!
    for i in $(seq 1 100); do
        [ "$(qv "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'bench_history_hold' AND wait_event = 'PgSleep'")" = 1 ] && break
        sleep 0.1
    done
    pgbench_run "history-$name-$mode" "$script" "$TPUT_SECONDS" >/dev/null
    n=$(qv "SELECT pending_changes FROM segments.worker")   # the queue table and the ring
    before=$(qv "SELECT coalesce(max(change_id), 0) FROM segments.change_log")
    q -c "CHECKPOINT" >/dev/null
    t0=$(qv "SELECT clock_timestamp() FROM pg_stat_activity a, pg_catalog.pg_cancel_backend(a.pid) WHERE a.application_name = 'bench_history_hold'")
    wait "$hold" || true
    qv "SELECT segments.wait('30 min')" >/dev/null
    drain=$(qv "SELECT extract(epoch FROM last_batch_at - '$t0') FROM segments.worker")
    echo "$(calc "$n / $drain") $n $(qv "SELECT count(*) FROM segments.membership_changes WHERE change_id > $before")"
}
PASS_ON=""; PASS_OFF=""; ACT_ON=""; ACT_OFF=""; PLAN_ON=""; PLAN_OFF=""
for round in $(seq 1 "$TPUT_ROUNDS"); do
    worker_off
    for mode in off on; do
        # the first pass over empty membership: every membership is written
        # (and, with history, recorded as an entry)
        q -c "SET segments.history = off" -c "DELETE FROM segments.member" >/dev/null
        q -c "TRUNCATE segments.change_log" -c "VACUUM segments.member" -c "CHECKPOINT" >/dev/null
        t=$(now_s); PGOPTIONS="-c segments.history=$mode" qv "SELECT segments.refresh()" >/dev/null; s_pass=$(elapsed "$t")
        if [ "$mode" = on ]; then PASS_ON="$PASS_ON $s_pass"; else PASS_OFF="$PASS_OFF $s_pass"; fi
    done
    HIST_CHANGES=$(qv "SELECT count(*) FROM segments.membership_changes")
    HIST_BYTES=$(qv "SELECT pg_total_relation_size('segments.change_log')")
    echo "  round $round: first full pass, history off $(echo "$PASS_OFF" | awk '{ print $NF }') s, on $(echo "$PASS_ON" | awk '{ print $NF }') s; $HIST_CHANGES changes recorded, $((HIST_BYTES / 1048576)) MB"
    if [ $((round % 2)) = 1 ]; then modes="off on"; else modes="on off"; fi    # first mode alternates
    for mode in $modes; do
        read -r rate n_act c_act < <(apply_rate "$mode" "$P/update.sql" activity)
        if [ "$mode" = on ]; then ACT_ON="$ACT_ON $rate"; else ACT_OFF="$ACT_OFF $rate"; fi
        echo "  round $round, history $mode: worker applied $n_act activity updates at $(x2 "$rate") contacts/s ($c_act changes recorded)"
        read -r rate n_plan c_plan < <(apply_rate "$mode" "$P/update_plan.sql" plan)
        if [ "$mode" = on ]; then PLAN_ON="$PLAN_ON $rate"; else PLAN_OFF="$PLAN_OFF $rate"; fi
        echo "  round $round, history $mode: worker applied $n_plan plan changes at $(x2 "$rate") contacts/s ($c_plan changes recorded)"
    done
done
# With the worker on: plan changes at full speed (each changes membership,
# so each is recorded), then the freshness probe under the activity load.
TP_ON=""; TP_OFF=""
for round in $(seq 1 "$TPUT_ROUNDS"); do
    for mode in off on; do
        history_mode "$mode"
        worker_on
        qv "SELECT segments.wait('30 min')" >/dev/null
        q -c "CHECKPOINT" >/dev/null
        read -r tps _ < <(pgbench_run "history-tput-$mode-$round" "$P/update_plan.sql" "$TPUT_SECONDS")
        qv "SELECT segments.wait('30 min')" >/dev/null
        if [ "$mode" = on ]; then TP_ON="$TP_ON $tps"; else TP_OFF="$TP_OFF $tps"; fi
        echo "  round $round, history $mode: plan changes at $(x2 "$tps") tps with the worker on"
    done
done
for mode in off on; do
    history_mode "$mode"
    qv "SELECT segments.wait('30 min')" >/dev/null
    freshness_run "history_$mode"
    eval "FRESH_H_${mode}=\"$FRESH_P99 $FRESH_P50 $FRESH_MAX $FRESH_N\""
done
q -c "ALTER SYSTEM RESET segments.history" -c "SELECT pg_reload_conf()" >/dev/null
m_on=$(echo "$TP_ON" | median); m_off=$(echo "$TP_OFF" | median); r=$(calc "$m_on / $m_off")
result "history: update throughput, plan changes, worker on" "$(tps_s "$m_on")" "history off" "$(tps_s "$m_off")" "$(x2 "$r")x" ">= 0.90x" "$(ratio_ge "$r" 0.90)"
read -r p99_on p50_on max_on n_on <<< "$FRESH_H_on"
read -r p99_off p50_off max_off n_off <<< "$FRESH_H_off"
result "history: freshness, $FRESH_RATE updates/s, history on" "p99 $p99_on ms" "history off: p99 (p50 / max)" "$p99_off ms ($p50_off / $max_off ms)" "" "p99 <= 200 ms" "$(ratio_le "$p99_on" 200)"
m_on=$(echo "$PASS_ON" | median); m_off=$(echo "$PASS_OFF" | median); r=$(calc "$m_on / $m_off")
result "history: first full pass (writes every membership)" "$(x2 "$m_on") s" "history off" "$(x2 "$m_off") s" "$(x2 "$r")x the time" "<= 1.10x" "$(ratio_le "$r" 1.10)"
m_on=$(echo "$ACT_ON" | median); m_off=$(echo "$ACT_OFF" | median); r=$(calc "$m_on / $m_off")
result "history: worker applying activity updates" "$(calc "$m_on") contacts/s" "history off" "$(calc "$m_off") contacts/s" "$(x2 "$r")x" ">= 0.90x" "$(ratio_ge "$r" 0.90)"
m_on=$(echo "$PLAN_ON" | median); m_off=$(echo "$PLAN_OFF" | median); r=$(calc "$m_on / $m_off")
result "history: worker applying plan changes (a change each)" "$(calc "$m_on") contacts/s" "history off" "$(calc "$m_off") contacts/s" "$(x2 "$r")x" ">= 0.90x" "$(ratio_ge "$r" 0.90)"
result "history: storage per recorded change (first pass)" "$(calc "$HIST_BYTES / $HIST_CHANGES") bytes" "heap and indexes" "$HIST_CHANGES changes" "" "reported" "-"

# ----------------------------------------------------------------------
log "chart"
cat > "$OUT/freshness.gnuplot" <<GP
set terminal svg size 900,480 dynamic font "sans,12" background "white"
set output "$OUT/freshness.svg"
set datafile separator ","
set title "segments: commit-to-visible latency, $CONTACTS contacts, pgbench -R $FRESH_RATE updates/s"
set xlabel "seconds since the probe started"
set ylabel "latency (ms, log scale)"
set logscale y
set grid ytics mytics
set key outside right top
set termoption noenhanced
plot "< grep '^default,' $OUT/freshness.csv" using 3:4 with points pt 7 ps 0.4 lc rgb "#c0392b" title "time_resolution $TR_DEFAULT", \
     "< grep '^time_resolution_1h,' $OUT/freshness.csv" using 3:4 with points pt 7 ps 0.4 lc rgb "#2471a3" title "time_resolution 1h", \
     200 with lines dt 2 lc rgb "black" title "target p99 200 ms"
GP
gnuplot "$OUT/freshness.gnuplot" && echo "chart: $OUT/freshness.svg"
sed -e 's/^set terminal svg .*/set terminal pngcairo size 900,480 font "sans,10" background "white"/' \
    -e "s|freshness.svg|freshness.png|" "$OUT/freshness.gnuplot" | gnuplot 2>/dev/null && echo "chart: $OUT/freshness.png"

# ----------------------------------------------------------------------
print_results "segments benchmark: $CONTACTS contacts, 100 segments (average membership $AVG_PCT%), 1,000 actions"
echo "details: $OUT (table.md, results.tsv, freshness.csv, freshness.svg, pgbench/)"

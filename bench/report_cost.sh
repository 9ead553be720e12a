#!/usr/bin/env bash
# Reporting through segments.membership against a plain pair table, against
# a running cluster with segments preloaded (PGHOST/PGPORT/PGUSER set, a
# superuser): the benchmark's data (bench/data.sql) and 100 segments
# (bench/segments.sql), refresh(), then a fact table of CONVERSATIONS rows
# (contact_id indexed, a csat score) and a (segment_id, contact_id) table
# holding the same pairs with its two indexes.  The same three reports run
# over each, alternately, ROUNDS times (median; warm cache):
#   grouped: CSAT and count by segment over every conversation;
#   big:     the same for the largest segment (WHERE segment_id = $1);
#   small:   the same for the smallest segment.
# Prints the ratios, the planner's row estimate for one segment against its
# member count, whether the report's plan reads the GIN index, and writes
# the EXPLAIN (ANALYZE, BUFFERS) plans of both sides to $OUT (default
# /tmp/report_cost).
#   CONTACTS=200000 CONVERSATIONS=1000000 ROUNDS=5 bench/report_cost.sh
# KEEP=1 keeps the database; REUSE=1 runs on a kept one.
set -euo pipefail
N=${CONTACTS:-200000}; CONV=${CONVERSATIONS:-1000000}; ROUNDS=${ROUNDS:-5}
DB=${DB:-segments_report_bench}
OUT=${OUT:-/tmp/report_cost}
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$OUT"
[ -n "${KEEP:-}" ] || trap 'psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
export PGDATABASE=$DB
. "$HERE/common.sh"     # q, qv, now_s, elapsed, median, worker_on/off, bench_load_db

if [ -z "${REUSE:-}" ] || [ -z "$(qv "SELECT 1" 2>/dev/null)" ]; then
    REUSE=
    bench_load_db "$N"
    qv "SELECT segments.refresh()" >/dev/null
    q <<SQL
SELECT setseed(0.5);
CREATE TABLE bench.conversation (id bigint PRIMARY KEY, contact_id bigint NOT NULL,
                                 csat int, created_at timestamptz NOT NULL);
INSERT INTO bench.conversation
SELECT g, 1 + floor(random() * $N)::bigint, 1 + floor(random() * 5)::int,
       now() - random() * interval '365 days'
  FROM generate_series(1, $CONV) g;
CREATE INDEX ON bench.conversation (contact_id);
SET maintenance_work_mem = '512MB';
CREATE TABLE bench.pairs AS SELECT segment_id, contact_id FROM segments.membership;
ALTER TABLE bench.pairs ADD PRIMARY KEY (segment_id, contact_id);
CREATE INDEX ON bench.pairs (contact_id, segment_id);
VACUUM ANALYZE bench.conversation, bench.pairs, segments.member, segments.segment, segments.segment_state;
SQL
fi
BIG=$(qv "SELECT segment_id FROM segments.segment_state ORDER BY member_count DESC, segment_id LIMIT 1")
SMALL=$(qv "SELECT segment_id FROM segments.segment_state WHERE member_count > 0 ORDER BY member_count, segment_id LIMIT 1")
echo "$N contacts, $CONV conversations, $(qv "SELECT count(*) FROM bench.pairs") pairs; big segment $(qv "SELECT member_count FROM segments.segment_state WHERE segment_id = '$BIG'") members, small $(qv "SELECT member_count FROM segments.segment_state WHERE segment_id = '$SMALL'"); PostgreSQL $(qv 'SHOW server_version'), load $(cut -d' ' -f1-3 /proc/loadavg)"

# report REL KIND: the query over REL (segments.membership or bench.pairs)
report() {
    case $2 in
        grouped) echo "SELECT m.segment_id, count(*), avg(c.csat) FROM bench.conversation c JOIN $1 m ON m.contact_id = c.contact_id GROUP BY m.segment_id";;
        big) echo "SELECT count(*), avg(c.csat) FROM bench.conversation c JOIN $1 m ON m.contact_id = c.contact_id WHERE m.segment_id = '$BIG'";;
        small) echo "SELECT count(*), avg(c.csat) FROM bench.conversation c JOIN $1 m ON m.contact_id = c.contact_id WHERE m.segment_id = '$SMALL'";;
    esac
}
# timed SQL: milliseconds of one execution (psql's \timing, result discarded)
timed() {
    psql -X -qAt -v ON_ERROR_STOP=1 -c '\timing on' -c "$1" -o /dev/null | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1
}

declare -A R
for kind in grouped big small; do
    # the results must agree
    a=$(qv "$(report segments.membership $kind) ORDER BY 1" | md5sum)
    b=$(qv "$(report bench.pairs $kind) ORDER BY 1" | md5sum)
    [ "$a" = "$b" ] || { echo "WARNING: $kind: the view and the pair table disagree" >&2; }
    qv "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) $(report segments.membership $kind)" > "$OUT/$kind.view.plan"
    qv "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) $(report bench.pairs $kind)" > "$OUT/$kind.pairs.plan"
    timed "$(report segments.membership $kind)" >/dev/null; timed "$(report bench.pairs $kind)" >/dev/null   # warm
done
for round in $(seq 1 "$ROUNDS"); do
    for kind in grouped big small; do
        for rel in view pairs; do
            [ $rel = view ] && r=segments.membership || r=bench.pairs
            R[$kind.$rel]="${R[$kind.$rel]:-} $(timed "$(report $r $kind)")"
        done
    done
done
# the planner's view of one segment: the index, and rows expected against found
for kind in big small; do
    [ $kind = big ] && seg=$BIG || seg=$SMALL
    est=$(qv "EXPLAIN (FORMAT JSON) SELECT m.contact_id FROM segments.membership m WHERE m.segment_id = '$seg'" |
          sed -n 's/.*"Plan Rows": \([0-9]*\).*/\1/p' | head -1)
    act=$(qv "SELECT member_count FROM segments.segment_state WHERE segment_id = '$seg'")
    idx=$(grep -c "Bitmap Index Scan on member_segs_idx" "$OUT/$kind.view.plan" || true)
    echo "$kind segment: estimated $est rows, $act members ($(awk -v a="$est" -v b="$act" 'BEGIN { printf "%.2f", a / b }')x); GIN index in the report's plan: $([ "$idx" -gt 0 ] && echo yes || echo NO)"
done
printf '%-10s %12s %12s %8s\n' "report" "view ms" "pairs ms" "ratio"
for kind in grouped big small; do
    v=$(echo "${R[$kind.view]}" | median); p=$(echo "${R[$kind.pairs]}" | median)
    printf '%-10s %12s %12s %8s\n' "$kind" "$v" "$p" "$(awk -v a="$v" -v b="$p" 'BEGIN { printf "%.2fx", a / b }')"
done
echo "plans: $OUT/{grouped,big,small}.{view,pairs}.plan"

#!/usr/bin/env bash
# Speed of evaluation, against a running cluster with segments preloaded
# (PGHOST/PGPORT/PGUSER set, a superuser): the benchmark's data
# (bench/data.sql) and 100 segments (bench/segments.sql), the worker off,
# then ROUNDS rounds, interleaved, of
#   - segments.refresh() with nothing changed (evaluation, no membership
#     written: what a faster evaluator shows);
#   - one SQL pass counting the 100 predicates (bench.rule_sql(), as
#     bench/run.sh's "SQL pass" baseline);
#   - a plain count(*) of the contacts (the floor: one scan);
# and prints the medians (wall clock, and the CPU time of the backend,
# which the machine's other load disturbs less), ns per (contact, segment)
# and the ratios.  The first refresh() (every membership written) is shown
# once.  The SQL pass's counts are checked against the stored counts.
#   CONTACTS=200000 ROUNDS=3 bench/eval_speed.sh
# BASELINE_HOST and BASELINE_PORT name a second running cluster with
# another build of segments (e.g. the main branch's): the same data is
# loaded there and its refresh() is measured in the same rounds, so that
# before and after come from one run.  KEEP_DB=1 keeps (and reuses, when
# its contact count matches) the databases.
set -euo pipefail
N=${CONTACTS:-200000}; ROUNDS=${ROUNDS:-3}
DB=${DB:-segments_eval_bench}
HERE="$(cd "$(dirname "$0")" && pwd)"
tmp=$(mktemp -d)
drop() { psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"; }
trap 'rm -rf "$tmp"; [ -n "${KEEP_DB:-}" ] || { drop; [ -z "${BASELINE_PORT:-}" ] || base drop; }' EXIT
export PGDATABASE=$DB
. "$HERE/common.sh"     # q, qv, now_s, elapsed, median, worker_on/off, bench_load_db

# setup: loads the data and segments into $DB of the cluster in the
# environment (unless kept), and prints the first refresh()'s time.
setup() {
    local have t
    have=$(psql -X -qAt -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")
    if [ -n "$have" ] && [ -n "${KEEP_DB:-}" ] &&
       [ "$(qv "SELECT contacts FROM bench.meta" 2>/dev/null)" = "$N" ]; then
        echo "(database reused)"; return 0
    fi
    bench_load_db "$N"
    q -c "VACUUM ANALYZE public.contacts" >/dev/null
    t=$(now_s); qv "SELECT segments.refresh()" >/dev/null; echo "$(elapsed "$t") s"
}
base() { PGHOST="$BASELINE_HOST" PGPORT="$BASELINE_PORT" "$@"; }
FIRST=$(setup)
[ -n "${BASELINE_PORT:-}" ] && BFIRST=$(base setup)
NSEG=$(qv "SELECT count(*) FROM bench.seg_def")
echo "$N contacts, $NSEG segments, $(qv "SELECT sum(member_count) FROM segments.segments") memberships; $ROUNDS rounds; PostgreSQL $(qv 'SHOW server_version'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "refresh() first (every membership written): $FIRST${BASELINE_PORT:+; baseline: $BFIRST}"

{ echo "\\o $tmp/counts"
  qv "SELECT 'SELECT ARRAY['
    || string_agg(format('count(*) FILTER (WHERE %s)', predicate), E',\n' ORDER BY n)
    || '] FROM public.contacts;' FROM bench.seg_def"; } > "$tmp/sql.sql"
echo "SELECT segments.refresh();" > "$tmp/refresh.sql"
echo "SELECT count(*) FROM public.contacts;" > "$tmp/scan.sql"

declare -A R C
for round in $(seq 1 "$ROUNDS"); do
    line="round $round:"
    for k in refresh ${BASELINE_PORT:+baseline} sql scan; do
        if [ "$k" = baseline ]; then
            read -r wall cpu < <(base timed "$tmp/refresh.sql")
        else
            read -r wall cpu < <(timed "$tmp/$k.sql")
        fi
        R[$k]="${R[$k]:-} $wall"; C[$k]="${C[$k]:-} $cpu"
        line="$line $k $wall s (CPU $cpu s),"
    done
    echo "${line%,}"
done

# The SQL pass's counts against what the extension stores.
MISMATCHES=$(qv "SELECT count(*) FROM bench.seg_def d
    JOIN unnest('$(tr -d ' ' < "$tmp/counts")'::bigint[]) WITH ORDINALITY AS u(c, n) ON u.n = d.n
    LEFT JOIN segments.segments s ON s.name = d.name
   WHERE u.c IS DISTINCT FROM s.member_count")

med() { echo "$1" | median; }
REF=$(med "${R[refresh]}"); SQL=$(med "${R[sql]}"); SCAN=$(med "${R[scan]}")
REFC=$(med "${C[refresh]}"); SQLC=$(med "${C[sql]}"); SCANC=$(med "${C[scan]}")
ns() { awk -v t="$1" -v n="$N" -v k="$NSEG" 'BEGIN { printf "%.1f", t * 1e9 / (n * k) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
row() { printf '%-44s %9s %9s %12s %12s\n' "$@"; }
echo
row "row (median of $ROUNDS)" "wall s" "CPU s" "ns/pair wall" "ns/pair CPU"
row "refresh(), nothing changed" "$REF" "$REFC" "$(ns "$REF")" "$(ns "$REFC")"
row "one SQL pass counting the $NSEG predicates" "$SQL" "$SQLC" "$(ns "$SQL")" "$(ns "$SQLC")"
row "plain count(*) (one scan)" "$SCAN" "$SCANC" "$(ns "$SCAN")" "$(ns "$SCANC")"
if [ -n "${BASELINE_PORT:-}" ]; then
    BASE=$(med "${R[baseline]}"); BASEC=$(med "${C[baseline]}")
    row "baseline build: refresh(), nothing changed" "$BASE" "$BASEC" "$(ns "$BASE")" "$(ns "$BASEC")"
fi
echo "(ns/pair: per (contact, segment) pair, $N x $NSEG)"
echo "refresh() vs SQL pass: $(ratio "$SQL" "$REF")x faster (CPU $(ratio "$SQLC" "$REFC")x); vs count(*): $(ratio "$REF" "$SCAN")x slower (CPU $(ratio "$REFC" "$SCANC")x)"
[ -z "${BASELINE_PORT:-}" ] || echo "refresh() vs the baseline build's: $(ratio "$BASE" "$REF")x faster (CPU $(ratio "$BASEC" "$REFC")x)"
echo "SQL pass counts differing from the stored member counts: $MISMATCHES"
[ "$MISMATCHES" = 0 ]

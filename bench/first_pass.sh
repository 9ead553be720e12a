#!/usr/bin/env bash
# Cost of a first pass (every membership written), against a running
# cluster with segments preloaded (PGHOST/PGPORT/PGUSER set, a superuser):
# the benchmark's data (bench/data.sql) and 100 segments (bench/segments.sql),
# the worker off, then ROUNDS rounds, interleaved, of
#   - first:  segments.member emptied (TRUNCATE, outside the timing), then
#             segments.refresh(): every membership row written;
#   - again:  segments.refresh() with nothing changed (no row written);
#   - sql:    one SQL pass counting the 100 predicates (eval_speed.sh's);
#   - matviews (MATVIEWS=N, default 0: not run): REFRESH MATERIALIZED VIEW
#             of the first N of 100 views, one per segment with a unique
#             index on id (bench/run.sh's baseline), scaled to 100;
# timed by the CPU of the backend (which the machine's other load disturbs
# less than the wall clock; wall clock shown too), and prints the medians
# and ratios.  BASELINE_HOST/BASELINE_PORT name a second cluster with
# another build (e.g. main's): the same data is loaded there and its
# first and nothing-changed refresh() are measured in the same rounds.
#   CONTACTS=200000 ROUNDS=3 bench/first_pass.sh
# KEEP_DB=1 keeps (and reuses, when its contact count matches) the databases.
# ALONE=1 adds first_alone and again_alone: the same refresh() with
# segments.pass_helpers = 0 (no helper process), in the same rounds.  The
# CPU column counts the backend only, not its helpers: compare wall clocks.
set -euo pipefail
N=${CONTACTS:-200000}; ROUNDS=${ROUNDS:-3}
DB=${DB:-segments_first_bench}
HERE="$(cd "$(dirname "$0")" && pwd)"
tmp=$(mktemp -d)
drop() { psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"; }
trap 'rm -rf "$tmp"; [ -n "${KEEP_DB:-}" ] || { drop; [ -z "${BASELINE_PORT:-}" ] || base drop; }' EXIT
export PGDATABASE=$DB
. "$HERE/common.sh"
setup() {
    local have
    have=$(psql -X -qAt -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")
    if [ -n "$have" ] && [ -n "${KEEP_DB:-}" ] &&
       [ "$(qv "SELECT contacts FROM bench.meta" 2>/dev/null)" = "$N" ]; then
        return 0
    fi
    bench_load_db "$N"
    q -c "VACUUM ANALYZE public.contacts" >/dev/null
}
base() { PGHOST="$BASELINE_HOST" PGPORT="$BASELINE_PORT" "$@"; }
setup
[ -z "${BASELINE_PORT:-}" ] || base setup
NSEG=$(qv "SELECT count(*) FROM bench.seg_def")
echo "$N contacts, $NSEG segments; $ROUNDS rounds; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
{ echo "\\o /dev/null"
  qv "SELECT 'SELECT ARRAY['
    || string_agg(format('count(*) FILTER (WHERE %s)', predicate), E',\n' ORDER BY n)
    || '] FROM public.contacts;' FROM bench.seg_def"; } > "$tmp/sql.sql"
echo "SELECT segments.refresh();" > "$tmp/refresh.sql"
MATVIEWS=${MATVIEWS:-0}
if [ "$MATVIEWS" -gt 0 ]; then
    # (a KEEP_DB run finds them from the run before)
    { echo "SET client_min_messages = warning;"
      qv "SELECT format('DROP MATERIALIZED VIEW IF EXISTS bench.mv_%s;', lpad(n::text, 3, '0')) FROM bench.seg_def"; } | q -f - >/dev/null
    qv "SELECT format('CREATE MATERIALIZED VIEW bench.mv_%s AS SELECT id FROM public.contacts WHERE %s WITH NO DATA;', lpad(n::text, 3, '0'), predicate)
            || format(E'\nCREATE UNIQUE INDEX ON bench.mv_%s (id);', lpad(n::text, 3, '0'))
          FROM bench.seg_def ORDER BY n" | q -f - >/dev/null
    qv "SELECT format('REFRESH MATERIALIZED VIEW bench.mv_%s;', lpad(n::text, 3, '0')) FROM bench.seg_def WHERE n <= $MATVIEWS ORDER BY n" > "$tmp/matviews.sql"
fi
EMPTY="TRUNCATE segments.member; CHECKPOINT;"

declare -A R C
for round in $(seq 1 "$ROUNDS"); do
    line="round $round:"
    for k in first ${ALONE:+first_alone} ${BASELINE_PORT:+base_first} again ${ALONE:+again_alone} ${BASELINE_PORT:+base_again} sql $([ "$MATVIEWS" -gt 0 ] && echo matviews); do
        case $k in
            first) read -r wall cpu < <(timed "$tmp/refresh.sql" "$EMPTY");;
            first_alone) read -r wall cpu < <(timed "$tmp/refresh.sql" "$EMPTY SET segments.pass_helpers = 0;");;
            again_alone) read -r wall cpu < <(timed "$tmp/refresh.sql" "SET segments.pass_helpers = 0;");;
            base_first) read -r wall cpu < <(base timed "$tmp/refresh.sql" "$EMPTY");;
            again) read -r wall cpu < <(timed "$tmp/refresh.sql");;
            base_again) read -r wall cpu < <(base timed "$tmp/refresh.sql");;
            sql) read -r wall cpu < <(timed "$tmp/sql.sql");;
            matviews) read -r wall cpu < <(timed "$tmp/matviews.sql")
                      wall=$(calc "$wall * 100 / $MATVIEWS"); cpu=$(calc "$cpu * 100 / $MATVIEWS");;
        esac
        R[$k]="${R[$k]:-} $wall"; C[$k]="${C[$k]:-} $cpu"
        line="$line $k $wall s (CPU $cpu s),"
    done
    echo "${line%,}"
done
med() { echo "$1" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
row() { printf '%-44s %9s %9s %14s\n' "$@"; }
echo
row "row (median of $ROUNDS)" "wall s" "CPU s" "SQL pass / row (CPU)"
SQLC=$(med "${C[sql]}")
for k in first ${ALONE:+first_alone} ${BASELINE_PORT:+base_first} again ${ALONE:+again_alone} ${BASELINE_PORT:+base_again} sql $([ "$MATVIEWS" -gt 0 ] && echo matviews); do
    row "$k" "$(med "${R[$k]}")" "$(med "${C[$k]}")" "$(ratio "$SQLC" "$(med "${C[$k]}")")x"
done
ns() { awk -v t="$1" -v n="$N" -v k="$NSEG" 'BEGIN { printf "%.1f", t * 1e9 / (n * k) }'; }
echo "ns per (contact, segment), CPU: first $(ns "$(med "${C[first]}")"), nothing changed $(ns "$(med "${C[again]}")"), SQL pass $(ns "$SQLC")"
if [ "$MATVIEWS" -gt 0 ]; then
    echo "first refresh() vs $MATVIEWS matviews (scaled to 100): $(ratio "$(med "${R[matviews]}")" "$(med "${R[first]}")")x faster wall, $(ratio "$(med "${C[matviews]}")" "$(med "${C[first]}")")x CPU; vs SQL pass $(ratio "$(med "${R[sql]}")" "$(med "${R[first]}")")x wall"
    qv "SELECT format('DROP MATERIALIZED VIEW bench.mv_%s;', lpad(n::text, 3, '0')) FROM bench.seg_def" | q -f - >/dev/null
fi
[ -z "${ALONE:-}" ] || echo "with helpers vs alone, wall: first $(ratio "$(med "${R[first_alone]}")" "$(med "${R[first]}")")x faster, nothing changed $(ratio "$(med "${R[again_alone]}")" "$(med "${R[again]}")")x faster"
[ -z "${BASELINE_PORT:-}" ] || echo "first refresh(), this build vs baseline: $(ratio "$(med "${C[base_first]}")" "$(med "${C[first]}")")x less CPU"
[ "$(qv "SELECT count(*) FROM segments.verify() WHERE missing + extra > 0")" = 0 ] || { echo "verify() found differences" >&2; exit 1; }

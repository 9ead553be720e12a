#!/usr/bin/env bash
# What the update-throughput target leaves the extension per change, against
# what PostgreSQL alone takes to rewrite one member row, in the same run.
# Against a running cluster with segments preloaded (PGHOST/PGPORT/PGUSER
# set).  It makes a database, segments_rewrite_floor, of CONTACTS contacts
# of bench/data.sql with the 20 segments of bench/capture_setup.sql, as
# bench/capture_cost.sh does, and drops it at the end (KEEP_DB=1 keeps it,
# and reuses it next time).
#
# 1. The budget.  CLIENTS pgbench clients run bench/capture_cost.sh's
#    one-row pattern (read1: an UPDATE of columns rules read) with the
#    capture trigger disabled, synchronous_commit = off, SECONDS_EACH s per
#    round.  With the CPUs full, a throughput of TARGET x that (0.9) leaves
#    the extension CPUS / (TARGET x tps) - CPUS / tps seconds of CPU per
#    change, for everything: capture, reading the contact, evaluating it,
#    writing its membership.
# 2. The floor.  A copy of segments.member with its primary key and GIN
#    index (no extension code, no trigger), each row paired with another
#    contact's stored numbers; one UPDATE swaps them for ROWS contacts drawn
#    at random (each row changes), as a single statement: the cheapest way
#    SQL has to write a changed membership.  Backend CPU per row: the
#    UPDATE and the clean-up of the GIN pending list it left, less the same
#    join read without writing.  Plus what the worker must read for each
#    change, in the same bulk form: the contact and its stored row (a join
#    of the same random contacts with both tables).
# Prints each round, then floor / budget: above 1, the target cannot be met
# with the cores full, whatever the extension's own code costs.
#   CONTACTS=200000 ROUNDS=3 bench/rewrite_floor.sh
set -euo pipefail
CLIENTS=${CLIENTS:-2}; SECS=${SECONDS_EACH:-6}; ROUNDS=${ROUNDS:-3}
N=${CONTACTS:-200000}; ROWS=${ROWS:-50000}; TARGET=${TARGET:-0.9}
CPUS=${CPUS:-$(nproc)}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/common.sh"     # capture_db, read1_script, median
DB=segments_rewrite_floor
tmp=$(mktemp -d)
cleanup() {    # a kept database gets its capture trigger back, whatever stopped the run
    rm -rf "$tmp"
    if [ -n "${KEEP_DB:-}" ]; then
        psql -X -q -d "$DB" -c "ALTER TABLE public.contacts ENABLE ALWAYS TRIGGER segments_capture" 2>/dev/null || true
    else
        psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
    fi
}
trap cleanup EXIT

if [ -z "${KEEP_DB:-}" ] || ! psql -X -qAt -d "$DB" -c "SELECT 1 FROM segments.config" >/dev/null 2>&1; then
    capture_db "$DB" "$N"
fi
# the copy: the member table's indexes, each row with another's numbers
psql -X -q -d "$DB" -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
DROP TABLE IF EXISTS floor_member;
CREATE TABLE floor_member AS
  SELECT m.contact_id, m.data, a.data AS alt
    FROM segments.member m
    JOIN LATERAL (SELECT data FROM segments.member o
                   WHERE o.contact_id > m.contact_id AND o.data <> m.data
                   ORDER BY o.contact_id LIMIT 1) a ON true;
ALTER TABLE floor_member ADD PRIMARY KEY (contact_id);
CREATE INDEX floor_member_member_segs_idx ON floor_member USING gin (segments._member_segs(data));
VACUUM ANALYZE floor_member;
SQL
read1_script "$N" > "$tmp/read1.sql"
pair_rows=$(psql -X -qAt -d "$DB" -c "SELECT count(*) FROM floor_member")
psql -X -q -d "$DB" -c "ALTER TABLE public.contacts DISABLE TRIGGER segments_capture"

echo "clients=$CLIENTS cpus=$CPUS seconds=$SECS rounds=$ROUNDS contacts=$N rows=$ROWS of $pair_rows target=$TARGET load: $(uptime)"
budgets=""; floors=""; writes=""
for r in $(seq 1 "$ROUNDS"); do
    psql -X -q -d "$DB" -c CHECKPOINT
    tps=$(PGOPTIONS="-c synchronous_commit=off" "$PG_BIN/pgbench" -n -M prepared -c "$CLIENTS" -j "$CLIENTS" \
          -T "$SECS" -f "$tmp/read1.sql" "$DB" 2>/dev/null | awk '/^tps/ {print $3; exit}')
    budget=$(awk -v t="$tps" -v c="$CPUS" -v g="$TARGET" 'BEGIN {printf "%.2f", (c / (g * t) - c / t) * 1e6}')
    psql -X -q -d "$DB" -c CHECKPOINT
    # ROWS random pairs, swapped in one statement; CPU of the backend from
    # /proc (utime + stime, in clock ticks) around it
    floor=$(psql -X -qAt -d "$DB" -v rows="$ROWS" -v hz="$(getconf CLK_TCK)" <<'SQL' | tail -n 1
SET synchronous_commit = off;
CREATE TEMP TABLE pick AS
  SELECT contact_id FROM floor_member ORDER BY random() LIMIT :rows;
ANALYZE pick;
CREATE FUNCTION pg_temp.ticks() RETURNS bigint LANGUAGE sql AS
  $$ SELECT split_part(pg_read_file('/proc/' || pg_backend_pid() || '/stat'), ' ', 14)::bigint
          + split_part(pg_read_file('/proc/' || pg_backend_pid() || '/stat'), ' ', 15)::bigint $$;
-- the statement's reading part alone: the same join, nothing written
SELECT pg_temp.ticks() AS t0 \gset
SELECT count(f.alt) FROM floor_member f JOIN pick p ON f.contact_id = p.contact_id;
SELECT pg_temp.ticks() AS t1 \gset
UPDATE floor_member f SET data = alt, alt = data FROM pick p WHERE f.contact_id = p.contact_id;
-- the GIN entries left in the pending list are part of the write
SELECT gin_clean_pending_list('floor_member_member_segs_idx');
SELECT pg_temp.ticks() AS t2 \gset
-- what the worker must read for each change: the contact and its stored
-- row (the planner's cheapest join; through the keys one by one costs more)
SELECT count(c.plan) + count(m.data)
  FROM pick p JOIN public.contacts c ON c.id = p.contact_id
              JOIN segments.member m ON m.contact_id = p.contact_id;
SELECT pg_temp.ticks() AS t3 \gset
SELECT round(((:t2 - :t1) - (:t1 - :t0)) * 1e6 / :hz / :rows, 2) || ' ' ||
       round((:t3 - :t2) * 1e6 / :hz / :rows, 2);
SQL
)
    read -r write read <<<"$floor"
    floor=$(awk -v w="$write" -v r="$read" 'BEGIN {printf "%.2f", w + r}')
    printf '  round %s: %9.0f tps without the extension -> budget %6.2f us a change; floor %6.2f us (write %s, read %s: %.2fx the budget)\n' \
        "$r" "$tps" "$budget" "$floor" "$write" "$read" "$(awk -v f="$floor" -v b="$budget" 'BEGIN {print f / b}')"
    budgets="$budgets $budget"; floors="$floors $floor"; writes="$writes $write"
done
b=$(echo "$budgets" | median); f=$(echo "$floors" | median)
w=$(echo "$writes" | median)
printf 'median: budget %.2f us a change at %sx; floor %.2f us (the write alone %.2f): floor / budget %.2fx, the write alone %.2fx\n' \
    "$b" "$TARGET" "$f" "$w" "$(awk -v f="$f" -v b="$b" 'BEGIN {print f / b}')" "$(awk -v f="$w" -v b="$b" 'BEGIN {print f / b}')"

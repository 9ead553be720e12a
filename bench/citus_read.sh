#!/usr/bin/env bash
# Routing overhead of the read path on Citus, with pgbench, against a
# running Citus coordinator (PGHOST/PGPORT/PGUSER/PGDATABASE set) whose
# segments are configured on a distributed "contacts" table keyed by a
# bigint id from 1 to CONTACTS, with a segment named 'vip' (what
# scripts/test-citus.sh sets up; CITUS_BENCH=1 there runs this at its end).
# Interleaves rounds of the baseline, a Citus router query of the contact's
# row, and of segment_is_member() on the coordinator; prints TPS and the
# ratio per round.
#   CONTACTS=3000 CLIENTS=2 SECONDS_EACH=10 ROUNDS=2 bench/citus_read.sh
set -euo pipefail
CLIENTS=${CLIENTS:-2}; SECS=${SECONDS_EACH:-10}; N=${CONTACTS:-3000}; ROUNDS=${ROUNDS:-2}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf '\\set id random(1, %s)\nSELECT * FROM contacts WHERE id = :id;\n' "$N" > "$tmp/router.sql"
printf '\\set id random(1, %s)\nSELECT segments.segment_is_member(:id, '"'vip'"');\n' "$N" > "$tmp/member.sql"
run() { "$PG_BIN/pgbench" -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$SECS" -f "$1" 2>/dev/null |
        awk '/^tps/ {print $3; exit}'; }
echo "round  router_query_tps  segment_is_member_tps  ratio(member/router)"
for r in $(seq 1 "$ROUNDS"); do
    a=$(run "$tmp/router.sql"); b=$(run "$tmp/member.sql")
    printf '%5s  %16s  %21s  %s\n' "$r" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", b / a}')"
done

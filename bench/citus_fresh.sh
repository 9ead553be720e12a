#!/usr/bin/env bash
# Freshness on Citus vs one node: how long the incremental path (capture on
# the shards, each node's worker applying its own queue) takes to bring
# membership up to date after a batch of contact changes.  Against the
# coordinator's server of scripts/test-citus.sh (PGHOST/PGPORT/PGUSER set;
# CITUS_DB the distributed database, REF_DB the single-node one on the same
# server, both configured on "contacts" with the same segments, filled by
# bench/citus_pass.sh).  Per round, on each database in turn: one UPDATE of
# CHANGES contacts (a tenth of those up to CONTACTS, their score moved, so
# that the "high" segment changes), then the time until segments.wait()
# returns true (every node applied its queue), and contacts applied per
# second.
#   CONTACTS=200000 ROUNDS=2 bench/citus_fresh.sh
set -euo pipefail
N=${CONTACTS:-200000}; ROUNDS=${ROUNDS:-2}
: "${CITUS_DB:?}" "${REF_DB:?}"
for db in "$CITUS_DB" "$REF_DB"; do psql -X -qAt -d "$db" -c "SELECT segments.wait('600 s')" >/dev/null; done
# update_and_wait DB ROUND: seconds from the UPDATE's commit to wait() true
update_and_wait() {
    local t0 t1 ok
    psql -X -qAt -d "$1" -c "UPDATE contacts SET score = (score + 50) % 100
                              WHERE id % 10 = $(( $2 % 10 )) AND id <= $N" >/dev/null
    t0=$(date +%s.%N)
    ok=$(psql -X -qAt -d "$1" -c "SELECT segments.wait('600 s')")
    t1=$(date +%s.%N)
    [ "$ok" = t ] || { echo "wait() timed out on $1" >&2; exit 1; }
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}'
}
changes=$(psql -X -qAt -d "$REF_DB" -c "SELECT count(*) FROM contacts WHERE id % 10 = 1 AND id <= $N")
echo "changes per round: $changes contacts (one UPDATE)"
echo "round  one_node_s  one_node_per_s  citus_s  citus_per_s  citus/one"
for r in $(seq 1 "$ROUNDS"); do
    a=$(update_and_wait "$REF_DB" "$r")
    b=$(update_and_wait "$CITUS_DB" "$r")
    awk -v r="$r" -v a="$a" -v b="$b" -v n="$changes" \
        'BEGIN {printf "%5s  %10s  %14.0f  %7s  %11.0f  %9.2f\n", r, a, n / a, b, n / b, b / a}'
done

#!/usr/bin/env bash
# Full pass on Citus vs one node, against the coordinator's server of
# scripts/test-citus.sh (PGHOST/PGPORT/PGUSER set; CITUS_DB the distributed
# database, REF_DB the single-node one on the same server, both configured
# on "contacts" with the same segments).  Adds contacts up to CONTACTS to
# both, then, rounds interleaved, times: segments.refresh() on the single
# node; refresh() on the coordinator (every worker's pass at once, plus the
# distributed count); and each worker's own pass alone
# (segments._citus_refresh_local() on that worker).  Prints the contacts
# each worker holds and, per worker, its pass time against the single
# node's time scaled to the worker's share of the contacts (1.00: a node's
# pass costs what one node's costs for as many contacts).
#   CONTACTS=200000 ROUNDS=3 bench/citus_pass.sh
set -euo pipefail
N=${CONTACTS:-200000}; ROUNDS=${ROUNDS:-3}
: "${CITUS_DB:?}" "${REF_DB:?}"
fill="INSERT INTO contacts
      SELECT g, (ARRAY['free','pro','vip'])[1 + g % 3], (g * 37) % 100, 'org' || (g % 5),
             jsonb_build_object('country', (ARRAY['de','fr','us','jp'])[1 + g % 4], 'size', g % 50)
        FROM generate_series(10001, $N) g ON CONFLICT DO NOTHING"
for db in "$CITUS_DB" "$REF_DB"; do psql -X -qAt -d "$db" -c "$fill" -c "ANALYZE contacts" >/dev/null; done
for db in "$CITUS_DB" "$REF_DB"; do psql -X -qAt -d "$db" -c "SELECT segments.wait('600 s')" >/dev/null; done
total=$(psql -X -qAt -d "$REF_DB" -c "SELECT count(*) FROM contacts")
# the workers: port and the contacts on their shards
mapfile -t workers < <(psql -X -qAt -F ' ' -d "$CITUS_DB" -c "SELECT nodeport, result FROM run_command_on_workers(\$\$
    SELECT coalesce(sum(n), 0) FROM (SELECT (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I', relname),
           false, true, '')))[1]::text::bigint AS n FROM pg_class WHERE relname ~ '^contacts_[0-9]+\$' AND relkind = 'r') s\$\$)
    ORDER BY nodeport")
secs() { local t0 t1; t0=$(date +%s.%N); psql -X -qAt "$@" >/dev/null; t1=$(date +%s.%N)
         awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}'; }
echo "contacts: $total; per worker (port contacts): ${workers[*]}"
printf 'round  one_node_s  citus_refresh_s  citus/one'
for w in "${workers[@]}"; do printf '  w%s_pass_s  w%s_vs_one_node_share' "${w%% *}" "${w%% *}"; done; echo
for r in $(seq 1 "$ROUNDS"); do
    a=$(secs -d "$REF_DB" -c "SELECT segments.refresh()")
    b=$(secs -d "$CITUS_DB" -c "SELECT segments.refresh()")
    printf '%5s  %10s  %15s  %9s' "$r" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", b / a}')"
    for w in "${workers[@]}"; do
        port=${w%% *}; n=${w##* }
        t=$(secs -p "$port" -d "$CITUS_DB" -c "SELECT segments._citus_refresh_local(NULL)")
        printf '  %10s  %21s' "$t" "$(awk -v t="$t" -v a="$a" -v n="$n" -v N="$total" 'BEGIN {printf "%.2f", t / (a * n / N)}')"
    done
    echo
done

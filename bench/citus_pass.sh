#!/usr/bin/env bash
# Full pass on Citus vs one node, against the coordinator's server of
# scripts/test-citus.sh (PGHOST/PGPORT/PGUSER set; CITUS_DB the distributed
# database, REF_DB the single-node one on the same server, both configured
# on "contacts" with the same segments).  Adds contacts up to CONTACTS to
# both, then times segments.refresh() on each, rounds interleaved, and
# prints the contacts each worker evaluates (its shards' rows).
#   CONTACTS=200000 ROUNDS=2 bench/citus_pass.sh
set -euo pipefail
N=${CONTACTS:-200000}; ROUNDS=${ROUNDS:-2}
: "${CITUS_DB:?}" "${REF_DB:?}"
fill="INSERT INTO contacts
      SELECT g, (ARRAY['free','pro','vip'])[1 + g % 3], (g * 37) % 100, 'org' || (g % 5),
             jsonb_build_object('country', (ARRAY['de','fr','us','jp'])[1 + g % 4], 'size', g % 50)
        FROM generate_series(10001, $N) g ON CONFLICT DO NOTHING"
for db in "$CITUS_DB" "$REF_DB"; do psql -X -qAt -d "$db" -c "$fill" -c "ANALYZE contacts" >/dev/null; done
for db in "$CITUS_DB" "$REF_DB"; do psql -X -qAt -d "$db" -c "SELECT segments.wait('600 s')" >/dev/null; done
timed() { local t0 t1; t0=$(date +%s.%N); psql -X -qAt -d "$1" -c "SELECT segments.refresh()" >/dev/null; t1=$(date +%s.%N)
          awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}'; }
echo "contacts per worker: $(psql -X -qAt -d "$CITUS_DB" -c "SELECT string_agg(result, ' + ') FROM run_command_on_workers(\$\$SELECT sum(n) FROM (SELECT (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I', relname), false, true, '')))[1]::text::bigint AS n FROM pg_class WHERE relname ~ '^contacts_[0-9]+\$' AND relkind = 'r') s\$\$)")"
echo "round  one_node_refresh_s  citus_refresh_s  ratio(citus/one)"
for r in $(seq 1 "$ROUNDS"); do
    a=$(timed "$REF_DB"); b=$(timed "$CITUS_DB")
    printf '%5s  %18s  %15s  %s\n' "$r" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", b / a}')"
done

#!/usr/bin/env bash
# The writer's own cost of change capture per transaction, in one session
# (less exposed to a loaded machine than pgbench's throughput): a procedure
# runs N one-row (or 20-row) UPDATEs of a column a rule reads, each
# committed on its own, with synchronous_commit off; rounds alternate
# without the extension's trigger, with it through the shared-memory ring,
# and with it through segments.change_queue (segments.capture_ring = off).
# The worker runs (its cost shares the machine).  Against a running cluster
# with segments preloaded (PGHOST/PGPORT/PGUSER set).
#   N=20000 ROUNDS=3 ROWS=1 bench/capture_commit_cost.sh
set -euo pipefail
N=${N:-20000}; ROUNDS=${ROUNDS:-3}; ROWS=${ROWS:-1}; DB=segments_commit_cost
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
trap 'psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT
psql -X -q -d $DB -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE EXTENSION segments;
CREATE TABLE contacts (id bigint PRIMARY KEY, plan text, seats int);
INSERT INTO contacts SELECT g, 'free', 1 FROM generate_series(1, 200000) g;
SELECT segments.configure('contacts', 'id');
SELECT segments.create_segment('big', '{"type": "attribute", "field": "seats", "op": "gt", "value": 25}');
SELECT segments.wait('5 min');
CREATE PROCEDURE run(n int, r int) LANGUAGE plpgsql AS \$\$
DECLARE c bigint;
BEGIN
  FOR i IN 1..n LOOP
    c := 1 + (random() * (200000 - r))::bigint;
    UPDATE contacts SET seats = 1 + (random() * 50)::int WHERE id BETWEEN c AND c + r - 1;
    COMMIT;
  END LOOP;
END \$\$;
VACUUM ANALYZE contacts;
SQL
run() {     # run TRIGGER RING: seconds
    # disabling capture holds every segment back, enabling it re-evaluates them: wait() for that
    psql -X -qAt -d $DB -c "ALTER TABLE contacts $1 TRIGGER segments_capture" >/dev/null
    [ "$1" = DISABLE ] || psql -X -qAt -d $DB -c "SELECT segments.wait('5 min')" >/dev/null
    PGOPTIONS="-c synchronous_commit=off -c segments.capture_ring=$2" psql -X -qAt -d $DB \
        -c "SELECT extract(epoch FROM clock_timestamp())" -c "CALL run($N, $ROWS)" \
        -c "SELECT extract(epoch FROM clock_timestamp())" | awk 'NR == 1 {a = $1} NR == 2 {printf "%.3f", $1 - a}'
}
echo "N=$N rows=$ROWS rounds=$ROUNDS load: $(uptime)"
for r in $(seq 1 "$ROUNDS"); do
    w=$(run DISABLE on); g=$(run "ENABLE ALWAYS" on); t=$(run "ENABLE ALWAYS" off)
    t0=$(date +%s.%N); psql -X -qAt -d $DB -c "SELECT segments.wait('5 min')" >/dev/null
    awk -v w="$w" -v g="$g" -v t="$t" -v r="$r" -v n="$N" 'BEGIN {
        printf "round %s: without %.1f us/xact; ring %.1f us/xact (%.2fx); table %.1f us/xact (%.2fx)\n",
               r, w * 1e6 / n, g * 1e6 / n, w / g, t * 1e6 / n, w / t }'
done

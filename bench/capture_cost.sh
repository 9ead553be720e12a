#!/usr/bin/env bash
# Cost of change capture on the writing transaction, with pgbench, against
# a running cluster with segments preloaded (PGHOST/PGPORT/PGUSER set):
# single-row UPDATEs of 100,000 contacts, without the extension, then with
# capture (a column rules read, and a column none reads).  Prints TPS.
#   CLIENTS=4 SECONDS_EACH=10 CONTACTS=100000 bench/capture_cost.sh
set -euo pipefail
CLIENTS=${CLIENTS:-4}; SECS=${SECONDS_EACH:-10}; N=${CONTACTS:-100000}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DB=segments_capture_bench
tmp=$(mktemp -d); trap 'rm -rf "$tmp"; psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT

psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
psql -X -q -d $DB <<SQL
CREATE TABLE contacts (id bigint PRIMARY KEY, plan text, country text, note text, seen_at timestamptz);
INSERT INTO contacts SELECT g, 'free', 'FR', 'n', now() FROM generate_series(1, $N) g;
VACUUM ANALYZE contacts;
SQL
echo "\\set id random(1, $N)
UPDATE contacts SET plan = CASE WHEN random() < 0.5 THEN 'vip' ELSE 'free' END WHERE id = :id;" > "$tmp/watched.sql"
echo "\\set id random(1, $N)
UPDATE contacts SET note = md5(random()::text) WHERE id = :id;" > "$tmp/unwatched.sql"

run() { "$PG_BIN/pgbench" -n -c "$CLIENTS" -j "$CLIENTS" -T "$SECS" -f "$1" $DB 2>/dev/null |
        awk '/^tps/ {print $3; exit}'; }

base_w=$(run "$tmp/watched.sql"); base_u=$(run "$tmp/unwatched.sql")
psql -X -q -d $DB <<SQL
CREATE EXTENSION segments;
SELECT segments.configure('contacts', 'id');
SELECT segments.create_segment('VIP', '{"type":"attribute","field":"plan","op":"eq","value":"vip"}');
SELECT segments.create_segment('France', '{"type":"attribute","field":"country","op":"eq","value":"FR"}');
SELECT segments.wait('60 s');
SQL
cap_w=$(run "$tmp/watched.sql"); cap_u=$(run "$tmp/unwatched.sql")
psql -X -q -d $DB -c "SELECT segments.wait('120 s')" >/dev/null
# the trigger alone: the worker paused, so it takes no CPU from the clients
psql -X -q -d $DB -c "ALTER DATABASE $DB SET segments.enabled = off" \
     -c "SELECT pg_terminate_backend(pid) FROM segments.worker WHERE pid IS NOT NULL" >/dev/null
sleep 1
trig_w=$(run "$tmp/watched.sql")
psql -X -q -d $DB -c "ALTER DATABASE $DB RESET segments.enabled" -c "SELECT segments._notify_worker()" >/dev/null
echo "clients=$CLIENTS seconds=$SECS contacts=$N"
awk -v a="$base_w" -v b="$cap_w" 'BEGIN {printf "UPDATE of a column rules read:  %8.0f tps without, %8.0f tps with capture (ratio %.2f)\n", a, b, b / a}'
awk -v a="$base_w" -v b="$trig_w" 'BEGIN {printf "  same, worker paused (trigger only): %8.0f tps (ratio %.2f)\n", b, b / a}'
awk -v a="$base_u" -v b="$cap_u" 'BEGIN {printf "UPDATE of a column none reads:  %8.0f tps without, %8.0f tps with capture (ratio %.2f)\n", a, b, b / a}'

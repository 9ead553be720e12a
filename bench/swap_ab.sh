#!/usr/bin/env bash
# Two builds of segments.so compared in one running cluster, on one
# database: before each step the server is stopped, the build's
# segments.so copied into the install's library directory, and the server
# started again (caches start cold each time).  Steps alternate A, B, A, B
# (ROUNDS rounds), so that a database whose state drifts from round to
# round (bloat, free space) drifts under both.  The cluster is one you
# started from the system install (e.g. with scripts/lib.sh's
# start_cluster and KEEP_CLUSTER=1); PGDATA names it, PGHOST/PGPORT/PGUSER
# reach it as a superuser, PGDATABASE is the database the step uses.
# It overwrites the install's segments.so, and leaves B's there: never run
# it while another cluster of that install (a test run) may restart.
#   SO_A=/tmp/main/segments.so SO_B=./segments.so ROUNDS=2 \
#     STEP=updates_then_create bench/swap_ab.sh
# STEP is one of:
#   first_pass            segments.member emptied, then refresh() and a
#                         nothing-changed refresh(): wall and CPU seconds
#   updates_then_create   UPDATE_SECONDS (40) of 20-row UPDATEs from 2
#                         clients with the worker on, the worker caught up,
#                         then bench/create_at_once.sh (KEEP_DB=1, one round:
#                         refresh() of 100 new segments against the worker
#                         creating them at once); the database must have
#                         been made by create_at_once.sh with KEEP_DB=1
#   incremental           the worker off, refresh_contacts() of every 10th
#                         contact (nothing changed: nothing written) three
#                         times, the first from cold caches; then of every
#                         10th from the 5th: wall seconds of each call
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
: "${SO_A:?segments.so of build A}" "${SO_B:?segments.so of build B}" "${PGDATA:?the cluster}"
: "${PGDATABASE:?the database}"
ROUNDS=${ROUNDS:-2}; STEP=${STEP:-first_pass}
PG_BIN=${PG_BIN:-$(pg_config --bindir)}
LIBDIR=$("$PG_BIN/pg_config" --pkglibdir)
OWNER=$(stat -c %U "$PGDATA")

swap_in() {
    runuser -u "$OWNER" -- "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
    cp "$1" "$LIBDIR/segments.so"
    runuser -u "$OWNER" -- "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/swap_ab.log" -w start >/dev/null
}
# CPU centiseconds of this psql's backend, as psql variable c
CPU="SELECT split_part(pg_read_file('/proc/self/stat'), ' ', 14)::int + split_part(pg_read_file('/proc/self/stat'), ' ', 15)::int AS c \\gset"

first_pass() {
    psql -X -qAt -c "ALTER DATABASE $PGDATABASE SET segments.enabled = off" \
         -c "SELECT pg_terminate_backend(pid) FROM segments.worker WHERE pid IS NOT NULL" >/dev/null
    psql -X -qAt -c "TRUNCATE segments.member" -c "CHECKPOINT" >/dev/null
    psql -X -qAt <<SQL
$CPU
\\set c0 :c
SELECT extract(epoch FROM clock_timestamp()) AS t0 \\gset
SELECT segments.refresh() \\gset
$CPU
\\set c1 :c
SELECT extract(epoch FROM clock_timestamp()) AS t1 \\gset
SELECT segments.refresh() \\gset
$CPU
SELECT extract(epoch FROM clock_timestamp()) AS t2 \\gset
SELECT format('first refresh() %s s (%s s CPU); nothing changed %s s (%s s CPU)',
              round((:t1 - :t0)::numeric, 2), round((:c1 - :c0) / 100.0, 2),
              round((:t2 - :t1)::numeric, 2), round((:c - :c1) / 100.0, 2));
SQL
}

updates_then_create() {
    local n script
    script=$(mktemp); trap 'rm -f "$script"' RETURN
    n=$(psql -X -qAt -c "SELECT count(*) FROM public.contacts")
    printf '\\set c random(1, %s)\nUPDATE public.contacts SET seats = 1 + (random() * 50)::int WHERE id BETWEEN :c AND :c + 19;\n' \
        "$((n - 19))" > "$script"
    psql -X -qAt -c "ALTER DATABASE $PGDATABASE RESET segments.enabled" -c "SELECT segments._notify_worker()" >/dev/null
    sleep 2
    psql -X -qAt -c "SELECT segments.wait('30 min')" >/dev/null
    "$PG_BIN/pgbench" -n -M prepared -c 2 -j 2 -T "${UPDATE_SECONDS:-40}" -f "$script" 2>&1 |
        awk '/^tps/ { printf "20-row updates before: %.0f tps\n", $3 }'
    psql -X -qAt -c "SELECT segments.wait('30 min')" >/dev/null
    KEEP_DB=1 DB=$PGDATABASE ROUNDS=1 "$HERE/create_at_once.sh" 2>&1 | grep -E '^round 1: refresh'
}

incremental() {
    local n
    psql -X -qAt -c "ALTER DATABASE $PGDATABASE SET segments.enabled = off" \
         -c "SELECT pg_terminate_backend(pid) FROM segments.worker WHERE pid IS NOT NULL" >/dev/null
    n=$(psql -X -qAt -c "SELECT max(id) FROM public.contacts")
    psql -X -qAt <<SQL
\\set q 'SELECT segments.refresh_contacts(array_agg(g)) FROM generate_series('
SELECT extract(epoch FROM clock_timestamp()) AS t0 \\gset
:q 1, $n, 10) g \\gset
SELECT extract(epoch FROM clock_timestamp()) AS t1 \\gset
:q 1, $n, 10) g \\gset
SELECT extract(epoch FROM clock_timestamp()) AS t2 \\gset
:q 1, $n, 10) g \\gset
SELECT extract(epoch FROM clock_timestamp()) AS t3 \\gset
:q 5, $n, 10) g \\gset
SELECT extract(epoch FROM clock_timestamp()) AS t4 \\gset
SELECT format('refresh_contacts() of every 10th contact: %s s cold, %s and %s s warm; other keys %s s',
              round((:t1 - :t0)::numeric, 2), round((:t2 - :t1)::numeric, 2),
              round((:t3 - :t2)::numeric, 2), round((:t4 - :t3)::numeric, 2));
SQL
}

for round in $(seq 1 "$ROUNDS"); do
    for k in A B; do
        so=SO_$k
        swap_in "${!so}"
        echo "-- $k round $round ($(md5sum "${!so}" | cut -c1-8))"
        "$STEP"
    done
done

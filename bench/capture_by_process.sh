#!/usr/bin/env bash
# Where the CPU of an update load goes, by process: one pgbench round of
# SCRIPT (2 clients, synchronous_commit = off) for SECS seconds against DB,
# then the machine's busy CPU (/proc/stat), the segments worker's and the
# WAL writer's (/proc/<pid>/stat), per transaction; "rest" is the
# backends, pgbench and the kernel.  Run it on the server's machine, with
# no other load, against a running cluster (PGHOST/PGPORT/PGUSER set), once
# with the capture trigger disabled and once enabled, e.g. on the database
# of bench/capture_cost.sh (bench/capture_setup.sql) with its read1 script.
#   DB=cc SCRIPT=read1.sql SECS=8 bench/capture_by_process.sh
set -euo pipefail
DB=${DB:?the database}; SCRIPT=${SCRIPT:?a pgbench script}; SECS=${SECS:-8}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
ticks() { [ -n "$1" ] && awk '{print $14 + $15}' "/proc/$1/stat" || echo 0; }
worker=$(psql -X -qAt -d "$DB" -c "SELECT pid FROM segments.worker WHERE pid IS NOT NULL" 2>/dev/null || true)
walwriter=$(psql -X -qAt -d "$DB" -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'")
b0=$(busy); w0=$(ticks "$worker"); ww0=$(ticks "$walwriter")
tps=$(PGOPTIONS="-c synchronous_commit=off" "$PG_BIN/pgbench" -n -M prepared -c 2 -j 2 -T "$SECS" -f "$SCRIPT" "$DB" 2>&1 |
      awk '/^tps/ {print $3; exit}')
b1=$(busy); w1=$(ticks "$worker"); ww1=$(ticks "$walwriter")
awk -v tps="$tps" -v s="$SECS" -v b=$((b1 - b0)) -v w=$((w1 - w0)) -v ww=$((ww1 - ww0)) 'BEGIN {
    n = tps * s
    printf "tps %.0f | per transaction: rest %.1f us, segments worker %.1f us, WAL writer %.1f us\n",
           tps, (b - w - ww) * 1e4 / n, w * 1e4 / n, ww * 1e4 / n }'

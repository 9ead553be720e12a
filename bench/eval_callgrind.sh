#!/usr/bin/env bash
# Instructions per (contact, segment) of one nothing-changed refresh(),
# counted by callgrind (deterministic: other load on the machine does not
# change it).  Run as root with a private install of segments:
#   PG_BIN=/tmp/x/pg/usr/lib/postgresql/15/bin CONTACTS=20000 bench/eval_callgrind.sh DIR
# The first run makes a cluster in DIR (the bench's data and 100 segments,
# one refresh() done); later runs reuse it, so that two builds can be
# measured on the same data by pointing PG_BIN at each in turn.  Prints
# the instructions of the pass (EvaluateRefresh and below) per pair, and
# the part of them reading and comparing stored membership (batch_apply).
set -euo pipefail
DIR=${1:?usage: eval_callgrind.sh DIR}
N=${CONTACTS:-20000}
: "${PG_BIN:?PG_BIN: the bin directory of a private install}"
HERE="$(cd "$(dirname "$0")" && pwd)"
DB=segments_callgrind
mkdir -p "$DIR"; chown postgres:postgres "$DIR"
if [ ! -f "$DIR/data/PG_VERSION" ]; then
    runuser -u postgres -- "$PG_BIN/initdb" -D "$DIR/data" -A trust -U postgres --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >> "$DIR/data/postgresql.conf" <<CONF
shared_preload_libraries = 'segments'
listen_addresses = ''
unix_socket_directories = '$DIR'
port = 5499
fsync = off
CONF
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w start >/dev/null
    (
        export PGHOST=$DIR PGPORT=5499 PGUSER=postgres PGDATABASE=$DB
        . "$HERE/common.sh"
        bench_load_db "$N"
        psql -X -q -c "VACUUM ANALYZE public.contacts" -c "SELECT segments.refresh()" >/dev/null
    )
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DIR/data" -w stop >/dev/null
fi
segs=$(echo "SELECT count(*) FROM segments.segment" |
    runuser -u postgres -- "$PG_BIN/postgres" --single -D "$DIR/data" $DB 2>/dev/null |
    sed -n 's/.*count = "\([0-9]*\)".*/\1/p')
out="$DIR/callgrind.out.$$"
echo "SELECT segments.refresh();" |
    runuser -u postgres -- valgrind --tool=callgrind --callgrind-out-file="$out" \
        --toggle-collect=EvaluateRefresh "$PG_BIN/postgres" --single -D "$DIR/data" $DB >/dev/null 2>&1
chmod 644 "$out"
total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }' || true)
# the comparison with stored membership and the writes: MemberBatchApply
apply=$(callgrind_annotate --inclusive=yes "$out" 2>/dev/null |
    awk '/member_diff.c:MemberBatchApply / { gsub(",", "", $1); print $1; exit }' || true)
echo "contacts $N segments $segs"
awk -v t="$total" -v a="${apply:-0}" -v n="$N" -v s="$segs" 'BEGIN {
    printf "pass: %d instructions, %.0f per (contact, segment)\n", t, t / (n * s);
    printf "of which batch_apply (stored membership read, compared, written): %.0f per pair\n", a / (n * s) }'
echo "profile: $out"

#!/usr/bin/env bash
# Membership history's cost, two builds side by side: clusters A (the
# baseline build) and B (the candidate), both running with segments
# preloaded (superuser access through PGHOST_A/PGPORT_A, PGHOST_B/PGPORT_B).
# Loads the benchmark's data (bench/data.sql, bench/segments.sql) into
# each, then, interleaved round by round (A off, A on, B off, B on, the
# order alternating), times the first full pass over empty membership
# (wall, and the backend's CPU from /proc), and reports per build the
# on/off ratios, storage per recorded change, was_member() per call and the
# plan of polling membership_changes by change_id.
#   PGHOST_A=... PGPORT_A=... PGHOST_B=... PGPORT_B=... CONTACTS=200000 ROUNDS=3 bench/history_compare.sh
set -euo pipefail
N=${CONTACTS:-200000}; ROUNDS=${ROUNDS:-3}
export PGUSER=${PGUSER:-postgres} PGDATABASE=segments_history_compare
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/common.sh"
on() { export PGHOST="$(eval echo \$PGHOST_$1)" PGPORT="$(eval echo \$PGPORT_$1)"; }

for b in A B; do
    on $b
    bench_load_db "$N" >/dev/null
    q -c "SET segments.history = off" -c "SELECT segments.refresh()" >/dev/null
done
echo "$N contacts, 100 segments, $(qv "SELECT sum(member_count) FROM segments.segments") memberships; $ROUNDS rounds; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

# pass B MODE: empties membership, times a first full pass; "wall cpu" in s
pass() {
    on "$1"
    q -c "SET segments.history = off" -c "DELETE FROM segments.member" >/dev/null
    q -c "TRUNCATE segments.change_log" -c "VACUUM segments.member" -c "CHECKPOINT" >/dev/null
    # CPU: the backend's own, read from /proc between statements
    python3 - "$2" <<'PY'
import os, sys, time, subprocess
mode = sys.argv[1]
p = subprocess.Popen(['psql', '-X', '-qAt', '-v', 'ON_ERROR_STOP=1'], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
def ask(sql):
    p.stdin.write(sql + "\n"); p.stdin.flush(); return p.stdout.readline().strip()
pid = ask("SET segments.history = %s; SELECT pg_backend_pid();" % mode)
tick = os.sysconf('SC_CLK_TCK')
def cpu():
    f = open('/proc/%s/stat' % pid).read().rsplit(')', 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick
c0 = cpu(); t0 = time.time()
ask("SELECT segments.refresh() IS NOT NULL;")
print("%.3f %.3f" % (time.time() - t0, cpu() - c0))
p.stdin.close(); p.wait()
PY
}

declare -A W C
for round in $(seq 1 "$ROUNDS"); do
    order="A:off A:on B:off B:on"
    [ $((round % 2)) -eq 0 ] && order="B:on B:off A:on A:off"
    for bm in $order; do
        b=${bm%:*}; m=${bm#*:}
        read -r w c < <(pass "$b" "$m")
        W[$b$m]="${W[$b$m]:-} $w"; C[$b$m]="${C[$b$m]:-} $c"
        echo "round $round: build $b, history $m: first pass $w s wall, $c s backend CPU"
    done
done
echo
printf '%-44s %12s %12s\n' "median of $ROUNDS" "A (baseline)" "B (candidate)"
for b in A B; do
    for k in W C; do
        off=$(eval "echo \"\${$k[${b}off]}\"" | median); on=$(eval "echo \"\${$k[${b}on]}\"" | median)
        echo "build $b first pass $( [ $k = W ] && echo wall || echo 'backend CPU'): on $on s / off $off s = $(awk -v a="$on" -v o="$off" 'BEGIN { printf "%.2fx", a / o }')"
    done
done
echo
for b in A B; do
    on $b
    # the last pass of each build ran with history on (round order): storage of its changes
    q -c "SET segments.history = off" -c "DELETE FROM segments.member" -c "TRUNCATE segments.change_log" >/dev/null
    q -c "SELECT segments.refresh()" >/dev/null
    ch=$(qv "SELECT count(*) FROM segments.membership_changes"); by=$(qv "SELECT pg_total_relation_size('segments.change_log')")
    rows=$(qv "SELECT count(*) FROM segments.change_log")
    echo "build $b: $ch changes in $rows change_log rows, $((by / 1024)) kB: $(awk -v b="$by" -v c="$ch" 'BEGIN { printf "%.2f", b / c }') B per change"
    seg=$(qv "SELECT id FROM segments.segment ORDER BY num LIMIT 1")
    ms=$(psql -X -qAt -c '\timing on' -c "SELECT count(*) FILTER (WHERE segments.was_member(c, '$seg'::uuid, now())) FROM generate_series(1, $N, $((N / 200))) c" | awk '/^Time:/ { print $2 }')
    echo "build $b: was_member, 200 calls: $ms ms ($(awk -v m="$ms" 'BEGIN { printf "%.3f", m / 200 }') ms per call)"
    mid=$(qv "SELECT max(change_id) - 5 FROM segments.change_log")
    echo "build $b: polling by change_id: $(psql -X -qAt -c "EXPLAIN (COSTS OFF) SELECT * FROM segments.membership_changes WHERE change_id > $mid" | grep -o 'Index[A-Za-z ]* Scan[^(]*on change_log[^ ]*' | head -1) ($(query_s "SELECT count(*) FROM segments.membership_changes WHERE change_id > $mid") s)"
done

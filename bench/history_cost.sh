#!/usr/bin/env bash
# Cost of membership history (segments.history), against a running cluster
# with segments preloaded (PGHOST/PGPORT/PGUSER set, a superuser; run as
# root, to read the server processes' CPU time in /proc): the benchmark's
# data (bench/data.sql) and 100 segments (bench/segments.sql), then, with
# history off (the baseline) and on, alternately (which goes first
# alternates round by round):
#   - the first full pass over empty membership (every membership written):
#     wall time, and the backend's CPU time;
#   - the worker applying QUEUE queued contact updates (one UPDATE of QUEUE
#     random contacts), activity updates (few membership changes) and plan
#     changes (about two changes each): contacts applied per second, from
#     the moment the running worker is let go to its last batch, and per
#     second of the worker's CPU;
# and the storage of the recorded changes.  make bench measures the same
# rows in its run (bench/run.sh, "history: ..."), queueing with pgbench;
# this is the quick way.
#   CONTACTS=100000 ROUNDS=3 QUEUE=20000 bench/history_cost.sh
set -euo pipefail
N=${CONTACTS:-100000}; ROUNDS=${ROUNDS:-3}; QUEUE=${QUEUE:-20000}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DB=segments_history_bench
HERE="$(cd "$(dirname "$0")" && pwd)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; psql -X -q -d postgres -c "ALTER SYSTEM RESET segments.history" -c "SELECT pg_reload_conf()" >/dev/null; psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT
export PGDATABASE=$DB
. "$HERE/common.sh"     # q, qv, now_s, elapsed, median, worker_on/off, bench_load_db

bench_load_db "$N"
q -c "SET segments.history = off" -c "SELECT segments.refresh()" >/dev/null
MEMBERSHIPS=$(qv "SELECT sum(member_count) FROM segments.segments")
echo "$N contacts, 100 segments, $MEMBERSHIPS memberships; $ROUNDS rounds; PostgreSQL $(qv 'SHOW server_version'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

# the updates queued for the worker, QUEUE random contacts in one statement
RANDOM_IDS="SELECT DISTINCT 1 + (random() * ($N - 1))::integer FROM generate_series(1, $QUEUE)"
echo "UPDATE public.contacts SET last_seen_at = now() - interval '12 hours', lifetime_value = (random() * 2000000)::integer / 100.0 WHERE id IN ($RANDOM_IDS)" > "$tmp/activity.sql"
echo "UPDATE public.contacts SET plan = (ARRAY['free', 'trial', 'pro', 'vip'])[1 + (random() * 3)::integer] WHERE id IN ($RANDOM_IDS)" > "$tmp/plan.sql"

# first_pass MODE: empties membership, then times a first full pass; prints
# "wall cpu" in seconds (CPU: the backend's own, read from /proc between
# statements)
first_pass() {
    q -c "SET segments.history = off" -c "DELETE FROM segments.member" >/dev/null
    q -c "TRUNCATE segments.change_log" -c "VACUUM segments.member" -c "CHECKPOINT" >/dev/null
    python3 - "$1" <<'PY'
import os, sys, time, subprocess
p = subprocess.Popen(['psql', '-X', '-qAt', '-v', 'ON_ERROR_STOP=1'], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
def ask(sql):
    p.stdin.write(sql + "\n"); p.stdin.flush(); return p.stdout.readline().strip()
pid = ask("SET segments.history = %s; SELECT pg_backend_pid();" % sys.argv[1])
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

# apply MODE SCRIPT: with the worker running and held back (a session
# holds the writers' lock, which the worker's batch waits for), queue
# SCRIPT's updates; then release it and time the worker applying them,
# from the release to its last batch (server clock), and its CPU
# meanwhile.  The worker's start, its first batch after the setting's
# reload and the polling of wait() are not timed: they were most of a
# drain of a few thousand contacts.  Prints
# "contacts/s queued changes-recorded contacts-per-cpu-s"
hold_pid() { qv "SELECT pid FROM pg_stat_activity WHERE application_name = 'history_cost_hold' AND datname = current_database()"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
apply() {
    local mode="$1" script="$2" n before t0 pid cpu0 drain cpu i
    q -c "ALTER SYSTEM SET segments.history = $mode" -c "SELECT pg_reload_conf()" >/dev/null
    worker_on; qv "SELECT segments.wait('30 min')" >/dev/null
    # a first batch after the reload, not timed (the worker reloads its catalog)
    qv "UPDATE public.contacts SET last_seen_at = now() WHERE id = 1" >/dev/null
    qv "SELECT segments.wait('30 min')" >/dev/null
    pid=$WORKER_PID
    PGAPPNAME=history_cost_hold psql -X -q -c "BEGIN" -c "SELECT segments._lock_member_writers()" \
        -c "SELECT pg_sleep(3600)" >/dev/null 2>&1 &
    for i in $(seq 1 100); do
        [ "$(qv "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'history_cost_hold' AND wait_event = 'PgSleep'")" = 1 ] && break
        sleep 0.1
    done
    q -f "$script" >/dev/null
    n=$(qv "SELECT pending_changes FROM segments.worker")   # the queue table and the ring
    before=$(qv "SELECT coalesce(max(change_id), 0) FROM segments.change_log")
    q -c "CHECKPOINT" >/dev/null
    cpu0=$(cpu_ticks "$pid")
    t0=$(qv "SELECT clock_timestamp() FROM pg_catalog.pg_cancel_backend($(hold_pid))")
    wait
    qv "SELECT segments.wait('30 min')" >/dev/null
    drain=$(qv "SELECT extract(epoch FROM last_batch_at - '$t0') FROM segments.worker")
    cpu=$(awk -v a="$cpu0" -v b="$(cpu_ticks "$pid")" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f", (b - a) / hz }')
    echo "$(awk -v n="$n" -v d="$drain" 'BEGIN { printf "%.0f", n / d }') $n $(qv "SELECT count(*) FROM segments.membership_changes WHERE change_id > $before") $(awk -v n="$n" -v c="$cpu" 'BEGIN { printf "%.0f", (c > 0 ? n / c : 0) }')"
}

declare -A R
for round in $(seq 1 "$ROUNDS"); do
    worker_off
    if [ $((round % 2)) = 1 ]; then modes="off on"; else modes="on off"; fi
    for mode in $modes; do
        read -r wall cpu < <(first_pass "$mode")
        R[pass_$mode]="${R[pass_$mode]:-} $wall"
        R[passcpu_$mode]="${R[passcpu_$mode]:-} $cpu"
        echo "round $round: first full pass, history $mode: $wall s, backend CPU $cpu s (load $(cut -d' ' -f1 /proc/loadavg))"
        if [ "$mode" = on ]; then
            ROWS=$(qv "SELECT count(*) FROM segments.change_log")
            CHANGES=$(qv "SELECT count(*) FROM segments.membership_changes")
            BYTES=$(qv "SELECT pg_total_relation_size('segments.change_log')")
            echo "round $round: the first full pass recorded $CHANGES changes in $ROWS rows, $((BYTES / 1024)) kB"
        fi
    done
    for w in activity plan; do
        for mode in $modes; do
            read -r rate n c cpurate < <(apply "$mode" "$tmp/$w.sql")
            R[${w}_$mode]="${R[${w}_$mode]:-} $rate"
            R[${w}cpu_$mode]="${R[${w}cpu_$mode]:-} $cpurate"
            echo "round $round: worker, $w updates, history $mode: $n contacts at $rate contacts/s, $cpurate per CPU second ($c changes recorded; load $(cut -d' ' -f1 /proc/loadavg))"
        done
    done
done

row() { printf '%-52s %14s %14s %8s\n' "$@"; }
echo
row "row (median of $ROUNDS)" "history off" "history on" "on/off"
for k in pass passcpu activity activitycpu plan plancpu; do
    off=$(echo "${R[${k}_off]}" | median); on=$(echo "${R[${k}_on]}" | median)
    case $k in
        pass) row "first full pass (every membership written), s" "$off" "$on" "$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.2fx", a / b }')";;
        passcpu) row "  the same, the backend's CPU, s" "$off" "$on" "$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.2fx", a / b }')";;
        activity) row "worker: activity updates applied, contacts/s" "$off" "$on" "$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.2fx", a / b }')";;
        plan) row "worker: plan changes applied, contacts/s" "$off" "$on" "$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.2fx", a / b }')";;
        activitycpu) row "  the same per worker CPU second" "$off" "$on" "$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.2fx", a / b }')";;
        plancpu) row "  the same per worker CPU second" "$off" "$on" "$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.2fx", a / b }')";;
    esac
done
# Per round, on / off of the same figure; their geometric mean.  Which mode
# runs first alternates, and the second run of a pair tends to be the
# faster one on a loaded machine (the state the first leaves behind): with
# an even number of rounds the mean is balanced between the two orders.
ratios() {    # KEY
    paste <(echo "${R[${1}_on]}" | tr ' ' '\n' | grep -v '^$') <(echo "${R[${1}_off]}" | tr ' ' '\n' | grep -v '^$') |
        awk '{ r = $1 / $2; printf "%.2f ", r; l += log(r) } END { printf "(geometric mean %.2fx)", exp(l / NR) }'
}
echo
echo "per round, on / off (which mode went first alternates; round 1: off first)"
for k in pass passcpu activity activitycpu plan plancpu; do
    printf '  %-12s %s\n' "$k" "$(ratios "$k")"
done
row "storage per recorded change (first pass), bytes" "" "$(awk -v b="$BYTES" -v c="$CHANGES" 'BEGIN { printf "%.2f", b / c }')" ""
row "storage per change-log row (first pass), bytes" "" "$(awk -v b="$BYTES" -v c="$ROWS" 'BEGIN { printf "%.1f", b / c }')" ""
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

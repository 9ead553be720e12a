#!/usr/bin/env bash
# Cost of membership history (segments.history), against a running cluster
# with segments preloaded (PGHOST/PGPORT/PGUSER set, a superuser): the
# benchmark's data (bench/data.sql) and 100 segments (bench/segments.sql),
# then, with history off (the baseline) and on, alternately:
#   - the first full pass over empty membership (every membership written);
#   - the worker applying the contact updates pgbench queued for SECONDS_EACH
#     seconds, activity updates (few membership changes) and plan changes
#     (about two changes each): contacts applied per second;
# and the storage of the recorded changes.  make bench measures the same
# rows in its run (bench/run.sh, "history: ..."); this is the quick way.
#   CONTACTS=100000 ROUNDS=3 SECONDS_EACH=10 bench/history_cost.sh
set -euo pipefail
N=${CONTACTS:-100000}; ROUNDS=${ROUNDS:-3}; SECS=${SECONDS_EACH:-10}; CLIENTS=${CLIENTS:-2}
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

printf '\\set c random(1, %s)\n\\set v random(0, 2000000)\nUPDATE public.contacts SET last_seen_at = now() - interval '"'"'12 hours'"'"', lifetime_value = :v / 100.0 WHERE id = :c;\n' "$N" > "$tmp/activity.sql"
printf '\\set c random(1, %s)\n\\set p random(1, 4)\nUPDATE public.contacts SET plan = (ARRAY['"'"'free'"'"', '"'"'trial'"'"', '"'"'pro'"'"', '"'"'vip'"'"'])[:p] WHERE id = :c;\n' "$N" > "$tmp/plan.sql"

# apply MODE SCRIPT: queue SCRIPT's updates with the worker stopped, then
# time the worker applying them; prints "contacts/s queued changes-recorded"
apply() {
    local mode="$1" script="$2" n before t drain
    q -c "ALTER SYSTEM SET segments.history = $mode" -c "SELECT pg_reload_conf()" >/dev/null
    worker_off
    "$PG_BIN/pgbench" -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$SECS" -f "$script" >/dev/null 2>&1
    n=$(qv "SELECT count(*) FROM segments.change_queue")
    before=$(qv "SELECT coalesce(max(change_id), 0) FROM segments.change_log")
    q -c "CHECKPOINT" >/dev/null
    t=$(now_s); worker_on; qv "SELECT segments.wait('30 min')" >/dev/null; drain=$(elapsed "$t")
    echo "$(awk -v n="$n" -v d="$drain" 'BEGIN { printf "%.0f", n / d }') $n $(qv "SELECT count(*) FROM segments.membership_changes WHERE change_id > $before")"
}

declare -A R
for round in $(seq 1 "$ROUNDS"); do
    worker_off
    for mode in off on; do
        q -c "SET segments.history = off" -c "DELETE FROM segments.member" >/dev/null
        q -c "TRUNCATE segments.change_log" -c "VACUUM segments.member" -c "CHECKPOINT" >/dev/null
        t=$(now_s); PGOPTIONS="-c segments.history=$mode" qv "SELECT segments.refresh()" >/dev/null
        R[pass_$mode]="${R[pass_$mode]:-} $(elapsed "$t")"
    done
    ROWS=$(qv "SELECT count(*) FROM segments.change_log")
    CHANGES=$(qv "SELECT count(*) FROM segments.membership_changes")
    BYTES=$(qv "SELECT pg_total_relation_size('segments.change_log')")
    echo "round $round: first full pass: off $(echo "${R[pass_off]}" | awk '{ print $NF }') s, on $(echo "${R[pass_on]}" | awk '{ print $NF }') s ($CHANGES changes in $ROWS rows, $((BYTES / 1024)) kB)"
    for w in activity plan; do
        for mode in off on; do
            read -r rate n c < <(apply "$mode" "$tmp/$w.sql")
            R[${w}_$mode]="${R[${w}_$mode]:-} $rate"
            echo "round $round: worker, $w updates, history $mode: $n contacts at $rate contacts/s ($c changes recorded)"
        done
    done
done

row() { printf '%-52s %14s %14s %8s\n' "$@"; }
echo
row "row (median of $ROUNDS)" "history off" "history on" "on/off"
for k in pass activity plan; do
    off=$(echo "${R[${k}_off]}" | median); on=$(echo "${R[${k}_on]}" | median)
    case $k in
        pass) row "first full pass (every membership written), s" "$off" "$on" "$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.2fx", a / b }')";;
        activity) row "worker: activity updates applied, contacts/s" "$off" "$on" "$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.2fx", a / b }')";;
        plan) row "worker: plan changes applied, contacts/s" "$off" "$on" "$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.2fx", a / b }')";;
    esac
done
row "storage per recorded change (first pass), bytes" "" "$(awk -v b="$BYTES" -v c="$CHANGES" 'BEGIN { printf "%.2f", b / c }')" ""
row "storage per change-log row (first pass), bytes" "" "$(awk -v b="$BYTES" -v c="$ROWS" 'BEGIN { printf "%.1f", b / c }')" ""

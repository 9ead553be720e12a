#!/usr/bin/env bash
# Update throughput with and without change capture, with pgbench, against
# a running cluster with segments preloaded (PGHOST/PGPORT/PGUSER set; run
# it with fsync on, or synchronous_commit means nothing).  Two databases:
# CONTACTS contacts of bench/data.sql, and SMALL contacts, each with SEGS
# of the segments of bench/segments.sql (set up by bench/capture_setup.sql;
# default: 20 reading plan, country, lifetime_value and seats, none
# depending on the time, so that the worker's work is applying the
# changes; SEGS=all: the 100, whose
# time-dependent segments keep the worker re-evaluating).  Write patterns,
# each a pgbench script:
#   read1    one-row UPDATE of columns rules read (plan, lifetime_value)
#   unread1  one-row UPDATE of a column no rule reads (note, added there)
#   read20   20-row UPDATE of a column rules read (seats), one statement
#   small1   one-row UPDATE of columns rules read, on the SMALL table
# For each synchronous_commit setting (SYNCS, default "off on") and pattern,
# ROUNDS interleaved rounds of each VARIANT (default "ring table"):
#   without the extension (the capture trigger disabled: nothing is queued,
#           the worker idles), always first in a round;
#   ring    with it (trigger on, worker on, its cost included), small
#           transactions through the shared-memory ring (capture_ring.c);
#   table   the same with segments.capture_ring = off: every change through
#           segments.change_queue, as with segments.capture_ring_size = 0;
#   ring-trigger, table-trigger   the same with the worker held back (a
#           session holds the lock it writes membership under), so the
#           trigger's cost alone: its backlog is applied after the round;
# then the time until segments.wait() is true (catch-up: the changes
# applied; from the end of the load, a new connection included, and the
# time spent in wait() itself).  Size the ring for the trigger-only rounds
# (segments.capture_ring_size): a full ring sends the rest to the table.
# Prints every round and the median ratio with/without per pattern.
#   CLIENTS=2 SECONDS_EACH=6 ROUNDS=3 CONTACTS=200000 SMALL=2000 \
#   VARIANTS="ring table ring-trigger table-trigger" bench/capture_cost.sh
set -euo pipefail
CLIENTS=${CLIENTS:-2}; SECS=${SECONDS_EACH:-6}; ROUNDS=${ROUNDS:-3}
N=${CONTACTS:-200000}; SMALL=${SMALL:-2000}
[ "${SEGS:-}" = all ] && SEGS=$(seq -s, 1 100)
PATTERNS=${PATTERNS:-"read1 unread1 read20 small1"}
VARIANTS=${VARIANTS:-"ring table"}
SYNCS=${SYNCS:-"off on"}          # the synchronous_commit settings measured
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/common.sh"     # capture_db, read1_script, median
BIG=segments_capture_big; LITTLE=segments_capture_small
tmp=$(mktemp -d)
cleanup() { rm -rf "$tmp"; psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $BIG WITH (FORCE)" \
                                               -c "DROP DATABASE IF EXISTS $LITTLE WITH (FORCE)"; }
trap cleanup EXIT

capture_db $BIG "$N"
capture_db $LITTLE "$SMALL"

read1_script "$N" > "$tmp/read1.sql"
printf '\\set c random(1, %s)\nUPDATE public.contacts SET note = md5(random()::text) WHERE id = :c;\n' "$N" > "$tmp/unread1.sql"
printf '\\set c random(1, %s)\nUPDATE public.contacts SET seats = 1 + (random() * 50)::int WHERE id BETWEEN :c AND :c + 19;\n' "$((N - 19))" > "$tmp/read20.sql"
sed "s/random(1, $N)/random(1, $SMALL)/" "$tmp/read1.sql" > "$tmp/small1.sql"

db_of() { [ "$1" = small1 ] && echo $LITTLE || echo $BIG; }
tps() {     # tps DB SCRIPT SYNCHRONOUS_COMMIT [RING on|off]
    PGOPTIONS="-c synchronous_commit=$3 -c segments.capture_ring=${4:-on}" "$PG_BIN/pgbench" -n -M prepared -c "$CLIENTS" -j "$CLIENTS" \
        -T "$SECS" -f "$2" "$1" 2>/dev/null | awk '/^tps/ {print $3; exit}'
}
# Disabling capture has the worker hold every segment back ("segments wait
# for it"); enabling it again re-evaluates them all: wait() for that first.
trigger() { psql -X -q -d "$1" -c "ALTER TABLE public.contacts $2 TRIGGER segments_capture" \
                 -c "SELECT segments.wait('10 min')" -c CHECKPOINT >/dev/null; }

# hold DB: a session holds the lock the worker writes membership under
hold() {
    psql -X -qAt -d "$1" -c "SET application_name = 'capture_cost_hold'" -c BEGIN \
        -c "LOCK TABLE segments.member IN SHARE ROW EXCLUSIVE MODE" -c "SELECT pg_sleep(3600)" >/dev/null 2>&1 &
    HOLD=$!
    sleep 1
}
unhold() {
    psql -X -qAt -d "$1" -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                             WHERE application_name = 'capture_cost_hold'" >/dev/null
    wait "$HOLD" 2>/dev/null || true
}

echo "clients=$CLIENTS seconds=$SECS rounds=$ROUNDS contacts=$N small=$SMALL variants=$VARIANTS load: $(uptime)"
summary=""
for sc in $SYNCS; do
    for p in $PATTERNS; do
        db=$(db_of "$p")
        declare -A ratios=() drains=()
        for r in $(seq 1 "$ROUNDS"); do
            psql -X -q -d "$db" -c "ALTER TABLE public.contacts DISABLE TRIGGER segments_capture" -c CHECKPOINT
            without=$(tps "$db" "$tmp/$p.sql" "$sc")
            trigger "$db" "ENABLE ALWAYS"
            printf '  synchronous_commit=%-3s %-8s round %s: without %7.0f tps\n' "$sc" "$p" "$r" "$without"
            for v in $VARIANTS; do
                ring=on; [ "${v%-trigger}" = table ] && ring=off
                [ "$v" = "${v%-trigger}" ] || hold "$db"
                with=$(tps "$db" "$tmp/$p.sql" "$sc" "$ring")
                [ "$v" = "${v%-trigger}" ] || unhold "$db"
                t0=$(date +%s.%N)
                IFS='|' read -r ok inwait < <(psql -X -qAt -d "$db" \
                    -c "SELECT segments.wait('300 s'), round(extract(epoch FROM clock_timestamp() - statement_timestamp())::numeric, 2)")
                [ "$ok" = t ] || echo "  wait() timed out" >&2
                drain=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')
                ratio=$(awk -v a="$without" -v b="$with" 'BEGIN {printf "%.3f", b / a}')
                printf '    %-13s %7.0f tps (%.2fx), caught up %s s after (%s s in wait())\n' \
                    "$v" "$with" "$ratio" "$drain" "$inwait"
                ratios[$v]="${ratios[$v]:-} $ratio"; drains[$v]="${drains[$v]:-} $drain"
                psql -X -q -d "$db" -c CHECKPOINT
            done
        done
        for v in $VARIANTS; do
            line=$(printf 'synchronous_commit=%-3s %-8s %-13s median ratio %.2fx  (max catch-up %s s)' "$sc" "$p" "$v" \
                   "$(echo "${ratios[$v]}" | median)" "$(echo "${drains[$v]}" | tr ' ' '\n' | sort -g | tail -n 1)")
            echo "$line"; summary="$summary$line"$'\n'
        done
        unset ratios drains
    done
done
echo; echo "summary:"; printf '%s' "$summary"

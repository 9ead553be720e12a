#!/usr/bin/env bash
# What the worker of database DB costs while no contact changes: its CPU
# (from /proc, so run this on the server's machine, as root or the server's
# user) over SECS seconds after SETTLE seconds, the time windows and sweeps
# it ran meanwhile (segments.stat_worker), and the last duration of the
# segments swept (time on a trait).  Against a running cluster with
# segments preloaded (PGHOST/PGPORT/PGUSER set); DB holds a configured
# source with time-dependent segments (e.g. bench/data.sql and the 100 of
# bench/segments.sql).
#   DB=idle SECS=30 SETTLE=20 bench/worker_idle.sh
set -euo pipefail
DB=${DB:?the database}; SECS=${SECS:-30}; SETTLE=${SETTLE:-20}
q() { psql -X -qAt -d "$DB" -c "$1"; }
q "SELECT segments.wait('10 min')" >/dev/null
sleep "$SETTLE"
pid=$(q "SELECT pid FROM segments.worker WHERE pid IS NOT NULL")
[ -n "$pid" ] || { echo "no worker runs for $DB" >&2; exit 1; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
s0=$(q "SELECT sweeps || ' sweeps, ' || time_windows || ' windows' FROM segments.stat_worker")
t0=$(ticks "$pid")
sleep "$SECS"
t1=$(ticks "$pid")
s1=$(q "SELECT sweeps || ' sweeps, ' || time_windows || ' windows' FROM segments.stat_worker")
swept=$(q "SELECT coalesce(string_agg(s.name || ' ' || round(extract(epoch FROM st.last_duration)::numeric, 3) || ' s', ', '), 'none')
             FROM segments.segment s JOIN segments.segment_state st ON st.segment_id = s.id
            WHERE s.definition::text LIKE '%\"trait\"%within%' AND st.last_duration IS NOT NULL")
awk -v t=$((t1 - t0)) -v s="$SECS" 'BEGIN { printf "worker CPU %.2f s in %d s (%.1f%% of a core)\n", t / 100, s, t / s }'
echo "counters before: $s0; after: $s1"
echo "last sweep duration of the swept segments: $swept"

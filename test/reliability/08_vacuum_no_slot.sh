#!/usr/bin/env bash
# The worker's vacuum of segments.member needs a background worker slot of
# its own: with none free (max_worker_processes taken by the launcher, the
# logical replication launcher and the worker), the worker says so once in
# the log, does not vacuum, and goes on applying changes and evaluating.  Starts a throwaway cluster of
# its own, next to the test cluster, and stops it on exit.
TEST_NAME=08_vacuum_no_slot
. "$(dirname "$0")/../own_cluster.bash"
own_cluster "$PGHOST/noslot_$$" $((PGPORT + 3)) <<CONF
shared_preload_libraries = 'segments'
max_worker_processes = 3
segments.member_vacuum_scale_factor = 0.1
CONF

q() { psql -X -qAt -v ON_ERROR_STOP=1 -p "$PORT" -d noslot -c "$1"; }
psql -X -q -p "$PORT" -d postgres -c "CREATE DATABASE noslot"
q "CREATE EXTENSION segments"
q "CREATE TABLE contacts (id bigint PRIMARY KEY, n int NOT NULL)"
q "INSERT INTO contacts SELECT g, g FROM generate_series(1, 4000) g"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
q "ALTER TABLE segments.member SET (autovacuum_enabled = off)"
q "SELECT segments.create_segment('flip', '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"lte\", \"value\": 2000}')" >/dev/null
[ "$(q "SELECT segments.wait('60 s')")" = t ] || fail "the first pass did not end"
MSG="could not start a vacuum of segments.member"
# passes that rewrite every row (4,000 > 1,000 + 10%): a vacuum is due after each
for op in gt lte gt; do
    q "SELECT segments.update_segment('flip', definition => '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"$op\", \"value\": 2000}')" >/dev/null
    [ "$(q "SELECT segments.wait('60 s')")" = t ] || fail "a pass did not end"
    start=$SECONDS
    until grep -q "$MSG" "$DIR/log"; do
        [ $((SECONDS - start)) -lt 30 ] || fail "no '$MSG' in the log within 30 s of a pass"
        sleep 0.2
    done
done
note "ok: with no free background worker slot, the worker logs that it could not start the vacuum"
[ "$(grep -c "$MSG" "$DIR/log")" = 1 ] || fail "logged $(grep -c "$MSG" "$DIR/log") times, not once"
note "ok: ... once, over three passes that each made a vacuum due"
grep -A2 "$MSG" "$DIR/log" | grep -q "HINT:  Raise max_worker_processes" || fail "no hint"
note "ok: ... with a hint naming max_worker_processes"
[ "$(q "SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'segments.member'::regclass")" = 0 ] ||
    fail "segments.member was vacuumed"
note "ok: no vacuum ran"
q "UPDATE contacts SET n = 1 WHERE id = 4000"
[ "$(q "SELECT segments.wait('30 s') AND NOT segments.segment_is_member(4000, 'flip') AND segments.segment_is_member(3999, 'flip')")" = t ] ||
    fail "the worker did not apply a change"
note "ok: the worker goes on applying changes"
[ "$(q "SELECT count(*) FROM segments.verify() WHERE missing <> 0 OR extra <> 0")" = 0 ] || fail "membership not exact"
note "ok: membership exact"
all_passed

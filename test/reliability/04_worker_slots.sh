#!/usr/bin/env bash
# segments.max_workers counts databases served, not databases probed: with
# 2 slots and five databases without the extension, a database that then
# installs it gets a worker at once (issue 9, item 9: slots of databases
# without the extension were never freed).  Starts a throwaway cluster of
# its own, next to the test cluster, and stops it on exit.
TEST_NAME=04_worker_slots
. "$(dirname "$0")/../own_cluster.bash"
own_cluster "$PGHOST/slots_$$" $((PGPORT + 2)) <<CONF
shared_preload_libraries = 'segments'
segments.max_workers = 2
max_worker_processes = 8
CONF

q() { psql -X -qAt -v ON_ERROR_STOP=1 -p "$PORT" -d "${2:-postgres}" -c "$1"; }
for i in 1 2 3 4; do q "CREATE DATABASE plain_$i"; done
# the launcher finds new databases within 10 s and probes each
# (probes are short-lived workers that exit at once): after a scan, none runs
start=$SECONDS; n=""
while [ $((SECONDS - start)) -lt 40 ]; do
    n=$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'segments worker'")
    [ "$n" = 0 ] && [ $((SECONDS - start)) -ge 12 ] && break
    sleep 0.5
done
[ "$n" = 0 ] || fail "workers still running in databases without the extension"
note "ok: the databases without the extension were probed, no worker stays ($((SECONDS - start)) s)"
q "CREATE DATABASE served"
q "CREATE EXTENSION segments" served
start=$SECONDS; got=""
while [ $((SECONDS - start)) -lt 20 ]; do
    got=$(q "SELECT pid IS NOT NULL FROM segments.worker" served)
    [ "$got" = t ] && break
    sleep 0.2
done
[ "$got" = t ] || fail "no worker for the database with the extension within 20 s (state: $(q 'SELECT state FROM segments.worker' served))"
note "ok: the database with the extension has a worker ($((SECONDS - start)) s)"
! grep -q "max_workers (2) is too low" "$DIR/log" || fail "the launcher reported too few slots"
note "ok: no 'max_workers is too low' warning"
q "CREATE TABLE contacts (id bigint PRIMARY KEY, plan text)" served
q "SELECT segments.configure('contacts', 'id')" served >/dev/null
q "SELECT segments.create_segment('VIP', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}')" served >/dev/null
q "INSERT INTO contacts VALUES (1, 'vip')" served
[ "$(q "SELECT segments.wait('30 s')" served)" = t ] || fail "wait() in the served database"
[ "$(q "SELECT segments.segment_is_member(1::bigint, 'VIP')" served)" = t ] || fail "the worker did not apply the change"
note "ok: the worker serves it"
# a second database installing the extension later gets the other slot
q "CREATE EXTENSION segments" plain_3
start=$SECONDS; got=""
while [ $((SECONDS - start)) -lt 20 ]; do
    got=$(q "SELECT pid IS NOT NULL FROM segments.worker" plain_3)
    [ "$got" = t ] && break
    sleep 0.2
done
[ "$got" = t ] || fail "no worker for a probed database that installed the extension later"
note "ok: a probed database that installs the extension later gets a worker ($((SECONDS - start)) s)"
all_passed

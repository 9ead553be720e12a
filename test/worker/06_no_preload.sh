#!/usr/bin/env bash
# Without shared_preload_libraries: the library loads on first use (it must
# not define postmaster settings then), the SQL interface works, no keys are
# queued but each writing transaction records that membership may be stale
# (wait() false), refresh() keeps membership current by hand and clears
# that, and the worker view says no worker runs.  Preloaded again, the
# worker applies what was written meanwhile.  Starts a second throwaway
# cluster of its own, next to the test cluster, and stops it on exit.
TEST_NAME=06_no_preload
. "$(dirname "$0")/../own_cluster.bash"
own_cluster "$PGHOST/nopreload" $((PGPORT + 1)) </dev/null

q() { psql -X -qAt -v ON_ERROR_STOP=1 -p "$PORT" -d postgres -c "$1"; }
expect() {
    local got
    got=$(q "$2") || fail "$1: query failed"
    [ "$got" = "$3" ] || fail "$1: expected '$3', got '$got'"
    note "ok: $1"
}

expect "not preloaded" "SHOW shared_preload_libraries" ""
q "CREATE EXTENSION segments"
# the application's role writes the contacts (this cluster is thrown away)
q "CREATE ROLE app LOGIN"
q "GRANT CREATE ON SCHEMA public TO app"
qa() { psql -X -qAt -v ON_ERROR_STOP=1 -p "$PORT" -d postgres -U app -c "$1"; }
qa "CREATE TABLE contacts (id bigint PRIMARY KEY, plan text)"
qa "INSERT INTO contacts VALUES (1, 'vip'), (2, 'free')"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
q "SELECT segments.create_segment('VIP', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}')" >/dev/null
expect "a new segment waits for refresh()" "SELECT state FROM segments.status" pending
q "SELECT segments.refresh()" >/dev/null
expect "refresh() by hand" "SELECT segments.segment_is_member(1, 'VIP') AND NOT segments.segment_is_member(2, 'VIP')" t
qa "UPDATE contacts SET plan = 'vip' WHERE id = 2"
qa "BEGIN; UPDATE contacts SET plan = 'vip' WHERE id = 1; INSERT INTO contacts VALUES (3, 'free'); COMMIT"
qa "BEGIN; SAVEPOINT a; UPDATE contacts SET plan = 'free' WHERE id = 1; ROLLBACK TO a; COMMIT"
expect "no keys queued without a worker: one whole-source entry per writing transaction" \
       "SELECT count(*) || ' ' || count(contact) FROM segments.change_queue" "2 0"
expect "not applied by itself" "SELECT segments.segment_is_member(2, 'VIP')" f
expect "wait() is false: membership may be stale" "SELECT segments.wait('1 s')" f
expect "worker view: none runs" "SELECT state FROM segments.worker" "not running"
q "SELECT segments.refresh()" >/dev/null
expect "refresh() applies the change" "SELECT segments.segment_is_member(2, 'VIP')" t
expect "a full refresh() clears the queue" "SELECT count(*) FROM segments.change_queue" 0
expect "wait() after refresh()" "SELECT segments.wait('1 s')" t
expect "the tenant setting exists unpreloaded" "SET segments.tenant = 'x'; SHOW segments.tenant" x

# changes made without the worker, then the library preloaded again: the
# worker that comes back re-evaluates every contact (issue 9, item 12)
qa "UPDATE contacts SET plan = 'free' WHERE id = 2"
qa "INSERT INTO contacts VALUES (4, 'vip')"
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null
echo "shared_preload_libraries = 'segments'" >>"$DIR/data/postgresql.conf"
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w -t 60 start >/dev/null
expect "preloaded again" "SHOW shared_preload_libraries" segments
expect "wait() once the worker is back" "SELECT segments.wait('60 s')" t
expect "changes made without the worker applied" \
       "SELECT segments.segment_is_member(2, 'VIP') OR NOT segments.segment_is_member(4, 'VIP')" f
expect "verify() finds nothing" "SELECT sum(missing + extra) FROM segments.verify()" 0
all_passed

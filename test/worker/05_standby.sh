#!/usr/bin/env bash
# Hot standby and promotion: a standby made with pg_basebackup -R runs no
# segments worker, and its reading functions, segments.worker and
# segments.wait() show what the primary's worker applied; once promoted,
# its own worker starts and serves changes.  The standby is stopped and
# removed on exit; the primary keeps running for the next script.
. "$(dirname "$0")/common.bash"

SDIR="$PGHOST/standby_$$"            # inside the private socket directory
SDATA="$SDIR/data"
SLOG="$SDIR/server.log"
SPORT=$(( PGPORT == 65535 ? PGPORT - 1 : PGPORT + 1 ))

stop_standby() {
    if [ -f "$SDATA/postmaster.pid" ]; then
        if [ "$EXIT_STATUS" -ne 0 ] && [ -f "$SLOG" ]; then
            echo "---- last lines of the standby log ----"
            tail -n 30 "$SLOG"
        fi
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$SDATA" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$SDIR"
}
on_exit stop_standby

# A query on the standby (same socket directory, its own port).
sq() { psql -X -qAt -v ON_ERROR_STOP=1 -p "$SPORT" -c "$1"; }
# sqa SQL: the application role's statement on the standby (once promoted).
sqa() { psql -X -qAt -v ON_ERROR_STOP=1 -p "$SPORT" -U "$APP" -c "$1"; }
sexpect() {
    local what="$1" sql="$2" want="$3" got
    got=$(sq "$sql") || fail "standby: $what: query failed"
    [ "$got" = "$want" ] || fail "standby: $what: expected '$want', got '$got'"
    note "ok: standby: $what"
}
spoll() {
    local what="$1" sql="$2" want="$3" limit="${4:-30}" got="" start=$SECONDS
    while [ $((SECONDS - start)) -lt "$limit" ]; do
        got=$(sq "$sql" 2>/dev/null || true)
        [ "$got" = "$want" ] && { note "ok: standby: $what ($((SECONDS - start)) s)"; return 0; }
        sleep 0.2
    done
    fail "standby: $what: expected '$want' within $limit s, last got '$got'"
}
# The segments processes among the standby postmaster's children, by
# process title.  ps must list the children (the startup process at least):
# a failing or empty ps fails the test instead of counting 0.
standby_segments_processes() {
    local pm out
    pm=$(head -n 1 "$SDATA/postmaster.pid")
    out=$(ps -o args= --ppid "$pm") || fail "standby: ps failed for the children of $pm"
    [ -n "$out" ] || fail "standby: ps lists no child of the postmaster $pm"
    grep -cE 'segments (launcher|worker)' <<<"$out" || true     # grep -c exits 1 on 0
}
# Waits until the standby has replayed everything the primary wrote so far.
catch_up() {
    local lsn
    lsn=$(q "SELECT pg_current_wal_lsn()")
    spoll "replayed up to $lsn" "SELECT pg_last_wal_replay_lsn() >= '$lsn'" t 60
}

# On the primary: a source, a segment, membership applied by its worker.
qa "CREATE TABLE contacts (id bigint PRIMARY KEY, plan text)"
qa "INSERT INTO contacts SELECT g, CASE WHEN g % 10 = 0 THEN 'vip' ELSE 'free' END
     FROM generate_series(1, 5000) g"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
VIP_ID=$(q "SELECT segments.create_segment('VIP', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}')")
expect "primary: wait() after create_segment" "SELECT segments.wait('60 s')" t
expect "primary: VIP has 500 members" "SELECT member_count FROM segments.segments" 500
PRIMARY_WORKER=$(q "SELECT pid FROM segments.worker")
[ -n "$PRIMARY_WORKER" ] || fail "primary: no worker"

# The standby.
mkdir "$SDIR"
chown postgres:postgres "$SDIR"
chmod 700 "$SDIR"
runuser -u postgres -- "$PG_BIN/pg_basebackup" -h "$PGHOST" -p "$PGPORT" -U postgres \
    -D "$SDATA" -R -c fast -X stream --no-sync >/dev/null 2>&1 || fail "pg_basebackup failed"
echo "port = $SPORT" >> "$SDATA/postgresql.conf"
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$SDATA" -l "$SLOG" -w -t 120 start >/dev/null \
    || fail "standby did not start"
note "standby on port $SPORT"
export PGDATABASE="$DB"
sexpect "in recovery" "SELECT pg_is_in_recovery()" t
sexpect "preloads segments" "SHOW shared_preload_libraries" segments
catch_up

# 1. No worker: nothing in pg_stat_activity, no process, the view says so,
#    watched for 5 s (time enough for a launcher to have started).
start=$SECONDS
while [ $((SECONDS - start)) -lt 5 ]; do
    [ "$(sq "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'segments%'")" = 0 ] ||
        fail "standby: a segments process in pg_stat_activity: $(sq "SELECT string_agg(backend_type, ', ') FROM pg_stat_activity WHERE backend_type LIKE 'segments%'")"
    n=$(standby_segments_processes)
    [ "$n" = 0 ] || fail "standby: a segments process runs: $(ps -o pid=,args= --ppid "$(head -n 1 "$SDATA/postmaster.pid")")"
    sleep 0.2
done
note "ok: standby: no segments launcher or worker, in pg_stat_activity or among the postmaster's children, for 5 s"
sexpect "segments.worker: no pid, state standby, nothing pending" \
        "SELECT coalesce(pid, 0) || ' ' || state || ' ' || pending_changes || ' ' || pending_segments || ' ' || lag FROM segments.worker" \
        "0 standby 0 0 00:00:00"

# 2. The reading interface shows what the primary applied.
sexpect "segments view" "SELECT name || ' ' || status || ' ' || member_count FROM segments.segments" "VIP ready 500"
sexpect "segment_is_member by name: member" "SELECT segments.segment_is_member(10::bigint, 'VIP')" t
sexpect "segment_is_member by name: not a member" "SELECT segments.segment_is_member(11::bigint, 'VIP')" f
sexpect "segment_is_member by id, untyped literal" "SELECT segments.segment_is_member('20', '$VIP_ID'::uuid)" t
sexpect "filter_restricted: member" "SELECT segments.filter_restricted(30::bigint, ARRAY['$VIP_ID']::uuid[])" t
sexpect "filter_restricted: not a member" "SELECT segments.filter_restricted(31::bigint, ARRAY['$VIP_ID']::uuid[])" f
sexpect "filter_restricted: no restriction" "SELECT segments.filter_restricted(31::bigint, '{}')" t
sexpect "membership relation" \
        "SELECT count(*) FILTER (WHERE contact_id % 10 = 0) || ' ' || count(*) FROM segments.membership WHERE segment_id = '$VIP_ID'" "500 500"
sexpect "segment_members" "SELECT count(*) FROM segments.segment_members('VIP')" 500
sexpect "wait() with nothing pending" "SELECT segments.wait('10 s')" t
sexpect "read-only transaction" \
        "BEGIN READ ONLY; SELECT segments.segment_is_member(10::bigint, 'VIP'); COMMIT" t

# 3. wait() on the standby waits for the primary's worker.  A session on
#    the primary holds a lock that keeps the worker from writing
#    membership (SHARE ROW EXCLUSIVE, not replicated), so the committed changes
#    stay queued until it lets go: in the primary's shared-memory ring, which
#    the standby cannot see (its wait() reads the watermark the primary's
#    worker writes).
block_worker
qa "UPDATE contacts SET plan = CASE WHEN plan = 'vip' THEN 'free' ELSE 'vip' END WHERE id <= 100"
catch_up
expect "primary: the changes are queued (its worker is blocked)" \
       "SELECT pending_changes FROM segments.worker" 100
sexpect "not applied yet" "SELECT segments.segment_is_member(1::bigint, 'VIP')" f
sexpect "wait() times out while the primary has not applied them" "SELECT segments.wait('2 s')" f
WAIT_OUT="$SDIR/wait.out"
sq "SELECT segments.wait('120 s')" > "$WAIT_OUT" 2>&1 &
WAITER=$!
start=$SECONDS
while [ $((SECONDS - start)) -lt 3 ]; do
    kill -0 "$WAITER" 2>/dev/null || fail "standby: wait() returned while the changes were not applied: $(cat "$WAIT_OUT")"
    sleep 0.1
done
note "ok: standby: wait() kept waiting for 3 s"
unblock_worker
wait "$WAITER" || fail "standby: wait() failed: $(cat "$WAIT_OUT")"
[ "$(cat "$WAIT_OUT")" = t ] || fail "standby: wait() returned '$(cat "$WAIT_OUT")', not t"
note "ok: standby: wait() returned true once the primary applied the changes"
sexpect "applied: 1 in" "SELECT segments.segment_is_member(1::bigint, 'VIP')" t
sexpect "applied: 10 out" "SELECT segments.segment_is_member(10::bigint, 'VIP')" f
sexpect "nothing pending" "SELECT pending_changes FROM segments.worker" 0
sexpect "membership exact" \
        "SELECT count(*) FROM (SELECT m FROM segments.segment_members('VIP') m
                                EXCEPT SELECT id FROM contacts WHERE plan = 'vip'
                               UNION ALL
                               SELECT id FROM contacts WHERE plan = 'vip'
                                EXCEPT SELECT m FROM segments.segment_members('VIP') m) d" 0
sexpect "still no segments process" \
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'segments%'" 0

# 4. Promotion: the launcher starts, a worker serves the database.
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$SDATA" -w -t 120 promote >/dev/null || fail "promotion failed"
spoll "promoted" "SELECT pg_is_in_recovery()" f 60
spoll "a segments worker serves the database" \
      "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'segments worker' AND datname = current_database()" 1 60
spoll "segments.worker shows it" \
      "SELECT pid IS NOT NULL AND state IN ('idle', 'applying changes', 'evaluating') FROM segments.worker" t 60
PROMOTED_WORKER=$(sq "SELECT pid FROM segments.worker")
[ "$(standby_segments_processes)" -ge 2 ] || fail "promoted: launcher and worker processes not found"
note "ok: promoted: launcher and worker running (worker $PROMOTED_WORKER)"
sexpect "promoted: before the writes" \
        "SELECT segments.segment_is_member(2001::bigint, 'VIP') || ' ' || segments.segment_is_member(2002::bigint, 'VIP')
            || ' ' || segments.segment_is_member(2010::bigint, 'VIP')" "false false true"
sqa "UPDATE contacts SET plan = 'vip' WHERE id IN (2001, 2002)"
sqa "UPDATE contacts SET plan = 'free' WHERE id = 2010"
sexpect "promoted: wait() after writes" "SELECT segments.wait('60 s')" t
sexpect "promoted: the changes are applied" \
        "SELECT segments.segment_is_member(2001::bigint, 'VIP') || ' ' || segments.segment_is_member(2002::bigint, 'VIP')
            || ' ' || segments.segment_is_member(2010::bigint, 'VIP')" "true true false"
sexpect "promoted: applied by its worker" \
        "SELECT pid || ' ' || changes_applied || ' ' || pending_changes FROM segments.worker" "$PROMOTED_WORKER 3 0"
sq "SELECT segments.create_segment('Free', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"free\"}')" >/dev/null
sexpect "promoted: wait() after create_segment" "SELECT segments.wait('60 s')" t
sexpect "promoted: new segment evaluated by the worker" \
        "SELECT status || ' ' || (member_count = (SELECT count(*) FROM contacts WHERE plan = 'free')) FROM segments.segments WHERE name = 'Free'" "ready true"

# The primary is untouched and still served by its worker.
expect "primary: its own data" "SELECT segments.segment_is_member(2001::bigint, 'VIP')" f
expect "primary: same worker" "SELECT pid FROM segments.worker" "$PRIMARY_WORKER"
all_passed

# Helpers shared by the worker tests (test/worker/*.sh), sourced, not run.
# scripts/test.sh exports PGHOST, PGPORT, PGUSER, PGDATA and PG_BIN for a
# running cluster with shared_preload_libraries = 'segments'.
set -euo pipefail

: "${PGHOST:?run through scripts/test.sh}" "${PGDATA:?}" "${PG_BIN:?}"
TEST_NAME=$(basename "$0" .sh)
DB="segw_${TEST_NAME}_$$"
export PGDATABASE="$DB"

fail() { echo "FAIL ($TEST_NAME): $*" >&2; exit 1; }
CHECKS=0
# note "ok: ..." counts a passed check; all_passed closes the script.
note() { case "$1" in ok:*) CHECKS=$((CHECKS + 1));; esac; echo "# $TEST_NAME: $*"; }
all_passed() { echo "# $TEST_NAME: all passed ($CHECKS checks)"; }

# One value from a query in the test database.
q() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }

# Checks that a query returns the expected value.
expect() {
    local what="$1" sql="$2" want="$3" got
    got=$(q "$sql") || fail "$what: query failed"
    [ "$got" = "$want" ] || fail "$what: expected '$want', got '$got'"
    note "ok: $what"
}

# Polls a query until it returns the expected value, at most $4 seconds
# (default 60: generous for a loaded machine; load only makes it slower).
poll() {
    local what="$1" sql="$2" want="$3" limit="${4:-60}" got="" start=$SECONDS
    while [ $((SECONDS - start)) -lt "$limit" ]; do
        got=$(q "$sql" 2>/dev/null || true)
        [ "$got" = "$want" ] && { note "ok: $what ($((SECONDS - start)) s)"; return 0; }
        sleep 0.2
    done
    fail "$what: waited $limit s for '$want', last got '$got'"
}

# Checks that a query keeps returning the expected value for $4 seconds: a
# "nothing happens" check, which fails as soon as it changes.  (Load cannot
# make it fail; it only gives the code more time to show a wrong change.)
hold() {
    local what="$1" sql="$2" want="$3" limit="$4" got start=$SECONDS
    while [ $((SECONDS - start)) -lt "$limit" ]; do
        got=$(q "$sql") || fail "$what: query failed"
        [ "$got" = "$want" ] || fail "$what: became '$got' after $((SECONDS - start)) s (expected '$want' for $limit s)"
        sleep 0.2
    done
    note "ok: $what (held $limit s)"
}

# Waits until the server accepts connections again (after a crash or a
# restart), at most 120 s.
wait_server() {
    local start=$SECONDS
    until psql -X -qAt -d postgres -c 'SELECT 1' >/dev/null 2>&1; do
        [ $((SECONDS - start)) -lt 120 ] || fail "the server did not accept connections within 120 s"
        sleep 0.2
    done
}

# Waits until process $1 has exited (and was reaped), at most $2 seconds.
wait_gone() {
    local pid="$1" limit="$2" start=$SECONDS
    while kill -0 "$pid" 2>/dev/null; do
        [ $((SECONDS - start)) -lt "$limit" ] || fail "process $pid still exists after $limit s"
        sleep 0.1
    done
}

# kill -9 of the postmaster and all its processes (a blocker's session with
# them: block_worker's lock is gone), then the server started again.  $1:
# said after "killed the postmaster ... and its processes".
kill_server() {
    local pm children c
    pm=$(head -n 1 "$PGDATA/postmaster.pid")
    children=$(ps -o pid= --ppid "$pm" | tr '\n' ' ')
    kill -KILL "$pm" $children
    note "killed the postmaster $pm and its processes${1:+ $1}"
    wait_gone "$pm" 60
    for c in $children; do wait_gone "$c" 60; done
    BLOCKER=""
    start_server
    wait_server
}

# The contacts whose stored membership of a segment disagrees with the rule
# (expected members given as a SQL query): 0 when membership is exact.
mismatches() {
    local segment="$1" expected="$2"
    q "SELECT count(*) FROM (
         (SELECT m::text FROM segments.segment_members('$segment') m
          EXCEPT SELECT e::text FROM ($expected) e(e))
         UNION ALL
         (SELECT e::text FROM ($expected) e(e)
          EXCEPT SELECT m::text FROM segments.segment_members('$segment') m)) d"
}

# Checks that every segment's stored membership and count agree with its
# rule: verify() finds no difference, and each count is its members' number.
all_exact() {
    expect "verify() finds no difference ($1)" \
           "SELECT count(*) FROM segments.verify() WHERE missing <> 0 OR extra <> 0" 0
    expect "member counts exact ($1)" \
           "SELECT count(*) FROM segments.status s
             WHERE member_count <> (SELECT count(*) FROM segments.segment_members(s.segment_id))" 0
}

# Checks that, once wait() says the changes are applied, segment VIP is
# exactly the contacts with plan 'vip'.
vip_exact() {
    expect "$1: wait()" "SELECT segments.wait('120 s')" t
    expect "$1: membership exact" \
           "SELECT '$(mismatches VIP "SELECT id FROM contacts WHERE plan = 'vip'")'" 0
}

# An attribute segment: attr_segment NAME FIELD OP JSON-VALUE.
attr_segment() {
    q "SELECT segments.create_segment('$1', '{\"type\":\"attribute\",\"field\":\"$2\",\"op\":\"$3\",\"value\":$4}')" >/dev/null
}

# Fails unless segment $1's members are exactly the keys SQL $2 returns
# ($3 says when, in the message).
same_as_sql() {
    [ "$(mismatches "$1" "$2")" = 0 ] || fail "'$1' differs from its SQL ($3)"
}

# Holds a lock that keeps the worker from writing membership (SHARE ROW
# EXCLUSIVE on segments.member: it conflicts with the ROW EXCLUSIVE writers
# take) from a background session of this database, so that
# committed changes stay queued (and rows the worker took stay visible to
# others) until unblock_worker; released on exit too.
BLOCKER=""
block_worker() {
    psql -X -qAt -v ON_ERROR_STOP=1 -c "SET application_name = 'segw_blocker'" \
         -c "BEGIN" -c "LOCK TABLE segments.member IN SHARE ROW EXCLUSIVE MODE" \
         -c "SELECT pg_sleep(600)" >/dev/null 2>&1 &
    BLOCKER=$!
    poll "a session holds the worker's membership lock" \
         "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
           WHERE a.application_name = 'segw_blocker' AND a.datname = current_database()
             AND l.relation = 'segments.member'::regclass AND l.granted" 1 60
}
unblock_worker() {
    [ -n "$BLOCKER" ] || return 0
    psql -X -qAt -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                      WHERE application_name = 'segw_blocker' AND datname = current_database()" >/dev/null 2>&1 || true
    wait "$BLOCKER" 2>/dev/null || true      # its session was terminated: status 2
    BLOCKER=""
}

# Time-dependent membership, checked against the server's clock so that load
# can only delay it, never falsify it.  Each argument describes one contact
# in one segment:  "NAME|SEGMENT|CONTACT|ENTER|LEAVE"  where CONTACT is an SQL
# literal, ENTER and LEAVE server times (epoch seconds) at which the rule
# says it enters and leaves; ENTER empty: it is in already (must be, before
# LEAVE).  Polls all of them together and fails when one is in before ENTER,
# leaves before LEAVE, comes back, was never seen in by LEAVE (the worker may
# lag by the length of the stay, no more), or is still in $TIME_LAG seconds
# (default 60) after LEAVE.
timeline() {
    local items=("$@") n=$# sql="" i name seg contact enter leave start=$SECONDS
    local -a state=()
    for ((i = 0; i < n; i++)); do
        IFS='|' read -r name seg contact enter leave <<<"${items[$i]}"
        [ -n "$sql" ] && sql="$sql UNION ALL "
        sql="${sql}SELECT $i, segments.segment_is_member($contact, '$seg')::int,
                     extract(epoch FROM pg_catalog.clock_timestamp())"
        state[$i]=$([ -n "$enter" ] && echo 0 || echo 1)     # 0 before, 1 in, 2 left
    done
    while :; do
        local rows row m c done_all=1
        rows=$(q "$sql") || fail "timeline: query failed"
        while IFS='|' read -r i m c; do
            IFS='|' read -r name seg contact enter leave <<<"${items[$i]}"
            local late
            late=$(awk "BEGIN {printf \"%.1f\", $c - $leave}")
            if [ -n "$enter" ] && awk "BEGIN {exit !($c < $enter)}" && [ "$m" = 1 ]; then
                fail "$name: in $(awk "BEGIN {printf \"%.1f\", $enter - $c}") s before the rule lets it in"
            fi
            case "${state[$i]}:$m" in
                0:1) state[$i]=1
                     note "ok: $name: entered by itself, $(awk "BEGIN {printf \"%.1f\", $c - $enter}") s after its time";;
                0:0) awk "BEGIN {exit !($c > $leave)}" &&
                         fail "$name: never seen in between its entry and its exit time";;
                1:0) awk "BEGIN {exit !($c < $leave)}" &&
                         fail "$name: left ${late#-} s before its time"
                     state[$i]=2
                     note "ok: $name: left by itself, $late s after its time";;
                1:1) awk "BEGIN {exit !($c > $leave + ${TIME_LAG:-60})}" &&
                         fail "$name: still in ${TIME_LAG:-60} s after its time";;
                2:1) fail "$name: back in after leaving";;
            esac
            [ "${state[$i]}" = 2 ] || done_all=0
        done <<<"$rows"
        [ "$done_all" = 1 ] && break
        sleep 0.2
    done
}

# DDL on segments.member (a test's trigger): run again when PostgreSQL's
# deadlock detector failed it beside the worker's REINDEX CONCURRENTLY
# (which waits for the DDL's transaction while the DDL waits for its
# lock), as the README tells a DBA to, after $2 (SQL that undoes what a
# failed concurrent build leaves) if given; any other error fails the test.
member_ddl() {
    local try out
    for try in 1 2 3 4 5; do
        out=$(psql -X -qAt -v ON_ERROR_STOP=1 -c "$1" 2>&1) && return 0
        case "$out" in
            *"deadlock detected"*)
                note "member_ddl: deadlock with the worker's rebuild, again ($try)"
                [ -z "${2:-}" ] || q "$2" >/dev/null
                sleep 1;;
            *) fail "DDL on segments.member failed: $out";;
        esac
    done
    fail "DDL on segments.member deadlocked 5 times: $1"
}

# The database's worker turned off (and gone), and on again.  $1
# prefixes the check's name.
worker_off() {
    q "ALTER DATABASE \"$DB\" SET segments.enabled = off"
    q "SELECT pg_terminate_backend(pid) FROM segments.worker WHERE pid IS NOT NULL" >/dev/null
    poll "${1:+$1 }the worker is off" "SELECT count(pid) FROM segments.worker" 0
}
worker_on() {
    q "ALTER DATABASE \"$DB\" RESET segments.enabled"
    q "SELECT segments._notify_worker()" >/dev/null
}

# The contacts of the bulk tests: N rows (id, org, n = id), every tenth
# without a tenant, configured with org as the tenant column, and segments
# div2, div3, div5 and div7 (n <= N * k / 8).
div_contacts() {
    local n="$1" k
    qa "CREATE TABLE contacts (id bigint PRIMARY KEY, org text, n int NOT NULL)"
    qa "INSERT INTO contacts SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE 'org' || (g % 3) END, g
          FROM generate_series(1, $n) g"
    q "SELECT segments.configure('contacts', 'id', tenant_column => 'org')" >/dev/null
    for k in 2 3 5 7; do
        q "SELECT segments.create_segment('div$k', '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"lte\", \"value\": $((n * k / 8))}')" >/dev/null
    done
}

# A refresh() ($2 says what it writes) succeeds beside a GIN index of
# segments.member not yet built, as REINDEX or CREATE INDEX CONCURRENTLY
# has it before its build (an empty file, not ready for inserts): the
# build of segments.member_unbuilt waits for a session that holds the
# table's ROW EXCLUSIVE lock until the refresh() is done, then finishes;
# the caller drops the index.  $1 prefixes the checks' names.
refresh_beside_unbuilt_gin() {
    local got locker build
    psql -X -qAt -v ON_ERROR_STOP=1 -c "SET application_name = 'segw_row_lock'" -c "BEGIN" \
         -c "LOCK TABLE segments.member IN ROW EXCLUSIVE MODE" -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
    locker=$!
    poll "$1 a session holds the writers' table lock" \
         "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'segw_row_lock' AND wait_event = 'PgSleep'" 1 30
    psql -X -qAt -v ON_ERROR_STOP=1 -c "CREATE INDEX CONCURRENTLY member_unbuilt ON segments.member
                                            USING gin (segments._member_segs(data))" >/dev/null 2>&1 &
    build=$!
    poll "$1 an index of segments.member exists, not ready for inserts" \
         "SELECT count(*) FROM pg_index WHERE indexrelid = to_regclass('segments.member_unbuilt') AND NOT indisready" 1 30
    got=$(psql -X -qAt -c "SELECT segments.refresh() IS NOT NULL" 2>&1) || true
    [ "$got" = t ] || fail "$1 a refresh() ($2) beside an index not ready for inserts failed: $got"
    note "ok: $1 a refresh() ($2) beside an index not ready for inserts"
    q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'segw_row_lock'" >/dev/null
    wait "$locker" 2>/dev/null || true
    wait "$build" || fail "$1 the index build failed"
}

# The members per segment through the GIN index (an index scan) are those
# the stored rows say.
gin_agrees() {
    expect "$1" \
       "SET enable_seqscan = off; SET enable_bitmapscan = on;
        SELECT string_agg(s.name || ':' || (SELECT count(*) FROM segments.segment_members(s.name)), ' ' ORDER BY s.name)
          FROM segments.segment s" \
       "$(q "SELECT string_agg(s.name || ':' || (SELECT count(*) FROM segments.member m WHERE s.num = ANY (segments._member_segs(m.data))), ' ' ORDER BY s.name) FROM segments.segment s")"
}

# Leaving the server as the script found it, even when it fails: the
# script registers what to undo (on_exit), server settings are changed
# through set_system (reset on exit), and a server the script stopped is
# started again, so that one failure stays one failure.
EXIT_HOOKS=()
SYSTEM_SETTINGS=()
ROLES=()        # login roles the script created: dropped after its database
# on_exit CMD: run CMD on exit (last registered first; $EXIT_STATUS is the
# script's status).
on_exit() { EXIT_HOOKS=("$1" "${EXIT_HOOKS[@]}"); }

# Sets a server setting with ALTER SYSTEM and reloads; reset on exit.
set_system() {
    q "ALTER SYSTEM SET $1 = '$2'" >/dev/null
    SYSTEM_SETTINGS+=("$1")
    q "SELECT pg_reload_conf()" >/dev/null
}

# Resets every setting set_system changed, and reloads.
reset_system() {
    local name
    for name in "${SYSTEM_SETTINGS[@]}"; do
        psql -X -q -d postgres -c "ALTER SYSTEM RESET $name" >/dev/null || return 1
    done
    SYSTEM_SETTINGS=()
    psql -X -q -d postgres -c "SELECT pg_reload_conf()" >/dev/null
}

# Starts the test server again (it is stopped or was killed).
start_server() {
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PGHOST/server.log" -w -t 120 start >/dev/null
}

cleanup() {
    local rc=$? hook start
    set +e
    trap - EXIT
    EXIT_STATUS=$rc             # for the hooks
    unblock_worker
    for hook in "${EXIT_HOOKS[@]}"; do $hook; done
    if ! psql -X -qAt -d postgres -c 'SELECT 1' >/dev/null 2>&1; then
        if ! runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
            echo "# $TEST_NAME: the server is down: starting it again for the next script"
            start_server || echo "# $TEST_NAME: could not start the server"
        fi
        start=$SECONDS
        until psql -X -qAt -d postgres -c 'SELECT 1' >/dev/null 2>&1 || [ $((SECONDS - start)) -ge 120 ]; do
            sleep 0.2
        done
    fi
    reset_system || echo "# $TEST_NAME: could not reset: ${SYSTEM_SETTINGS[*]}"
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1
    for hook in "${ROLES[@]}"; do
        psql -X -q -d postgres -c "DROP ROLE IF EXISTS \"$hook\"" >/dev/null 2>&1
    done
    exit $rc
}
trap cleanup EXIT

# DB_CREATE_OPTIONS (set before sourcing): a test database of another locale
psql -X -q -d postgres -c "CREATE DATABASE \"$DB\" ${DB_CREATE_OPTIONS:-}" >/dev/null
q "CREATE EXTENSION segments" >/dev/null

# The application's role, as production runs: it owns the contacts and
# writes them, no superuser and no privilege on schema segments (writing
# contacts needs nothing from the extension).  Dropped on exit.
APP="segw_app_${TEST_NAME}_$$"
psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "CREATE ROLE \"$APP\" LOGIN" >/dev/null
ROLES+=("$APP")
q "GRANT CREATE ON SCHEMA public TO \"$APP\""
# qa SQL: a statement run by the application role (contact writes).
qa() { psql -X -qAt -v ON_ERROR_STOP=1 -U "$APP" -c "$1"; }

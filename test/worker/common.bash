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

# Polls a query until it returns the expected value, at most $4 seconds.
poll() {
    local what="$1" sql="$2" want="$3" limit="${4:-20}" got="" start=$SECONDS
    while [ $((SECONDS - start)) -lt "$limit" ]; do
        got=$(q "$sql" 2>/dev/null || true)
        [ "$got" = "$want" ] && { note "ok: $what ($((SECONDS - start)) s)"; return 0; }
        sleep 0.2
    done
    fail "$what: expected '$want' within $limit s, last got '$got'"
}

# Waits until the server accepts connections again (after a crash).
wait_server() {
    local start=$SECONDS
    until psql -X -qAt -d postgres -c 'SELECT 1' >/dev/null 2>&1; do
        [ $((SECONDS - start)) -lt 60 ] || fail "server did not come back"
        sleep 0.2
    done
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

cleanup() {
    local rc=$?
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
    exit $rc
}
trap cleanup EXIT

psql -X -q -d postgres -c "CREATE DATABASE \"$DB\"" >/dev/null
q "CREATE EXTENSION segments" >/dev/null

# Helpers for test scripts that start a throwaway cluster of their own next
# to the test cluster (sourced, not run): the check counter of
# test/worker/common.bash, and own_cluster, which starts the cluster and
# stops it (and removes its files) on exit, also on failure.
set -euo pipefail
: "${PGHOST:?run through scripts/test.sh}" "${PG_BIN:?}"
fail() { echo "FAIL ($TEST_NAME): $*" >&2; exit 1; }
CHECKS=0
# note "ok: ..." counts a passed check; all_passed closes the script.
note() { case "$1" in ok:*) CHECKS=$((CHECKS + 1));; esac; echo "# $TEST_NAME: $*"; }
all_passed() { echo "# $TEST_NAME: all passed ($CHECKS checks)"; }

stop_own_cluster() {
    local rc=$?
    [ -f "$DIR/data/postmaster.pid" ] &&
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1
    [ $rc -ne 0 ] && [ -f "$DIR/log" ] && tail -n 20 "$DIR/log"
    rm -rf "$DIR"
    exit $rc
}

# own_cluster DIR PORT: initdb in DIR/data, settings from standard input
# appended to postgresql.conf, started on the test cluster's socket
# directory and PORT; sets DIR and PORT.
own_cluster() {
    DIR="$1"; PORT="$2"
    trap stop_own_cluster EXIT
    mkdir -p "$DIR" && chown postgres:postgres "$DIR"
    runuser -u postgres -- "$PG_BIN/initdb" -D "$DIR/data" -A trust -U postgres --no-sync >/dev/null
    {
        printf "listen_addresses = ''\nunix_socket_directories = '%s'\nport = %s\n" "$PGHOST" "$PORT"
        cat
    } >> "$DIR/data/postgresql.conf"
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w -t 60 start >/dev/null
}

# Shared shell helpers for scripts/test.sh, scripts/demo.sh and bench/run.sh.
# Everything runs as root on Debian 12; the server runs as the postgres user.

PG_MAJOR=15
SYSTEM_PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
PG_BIN=$SYSTEM_PG_BIN
PACKAGES="build-essential postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR postgresql-$PG_MAJOR-pgtap libtap-parser-sourcehandler-pgtap-perl libipc-run-perl postgresql-$PG_MAJOR-cron python3 python3-psycopg"

log() { printf '\n== %s\n' "$*"; }

# Installs the Debian packages the build and the tests need, if missing.
ensure_packages() {
    local missing=""
    for p in $PACKAGES ${EXTRA_PACKAGES:-}; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        log "installing:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends $missing >/dev/null
    fi
    # Debian starts a default cluster on install; we never touch it, but we
    # do not need it either.
}

make_tmp() {
    [ -n "${SEGMENTS_TMP:-}" ] && return 0
    SEGMENTS_TMP=$(mktemp -d /tmp/segments-XXXXXX)
    chmod 755 "$SEGMENTS_TMP"
    chown postgres:postgres "$SEGMENTS_TMP"
    export SEGMENTS_TMP
}

# build [MAKE ARGS...]: builds from clean; KEEP_OBJECTS=1 (scripts/mutate.sh)
# rebuilds only what changed since the objects already there.
build() {
    local extra="${EXTRA_CFLAGS:-}"
    [ "${CI:-}" = "true" ] && extra="$extra -Werror"
    log "build"
    [ -n "${KEEP_OBJECTS:-}" ] || make -s clean >/dev/null
    make -s EXTRA_CFLAGS="$extra" "$@" >/dev/null
}

# Builds and installs the extension into the machine's PostgreSQL (the demo
# and the benchmark: what a user does).  Runs of them on one machine take
# turns: the lock is held until the script exits.
build_and_install() {
    exec 9>"${SEGMENTS_RUN_LOCK:-/tmp/segments-run.lock}"
    if ! flock -n 9; then
        log "waiting for another run of segments on this machine to finish"
        flock 9
    fi
    build
    log "install"
    make -s install >/dev/null
}

# Builds and installs the extension into a private copy of the machine's
# PostgreSQL under $SEGMENTS_TMP/pg, as PostgreSQL's own "make check" uses a
# temporary installation: the tests never replace the system's segments
# library, and several runs (worktrees, mutation checks) go on side by side.
# PostgreSQL's binaries find their share and lib directories relative to
# where they are, so the copy is self-contained.  Sets PG_BIN to it.
build_and_install_private() {
    make_tmp
    # with_llvm=no: no JIT bitcode (half the compile time); tests do not JIT.
    build with_llvm=no
    local root="$SEGMENTS_TMP/pg"
    log "install into $root"
    mkdir -p "$root/usr/lib/postgresql" "$root/usr/share/postgresql"
    cp -a "/usr/lib/postgresql/$PG_MAJOR" "$root/usr/lib/postgresql/"
    cp -a "/usr/share/postgresql/$PG_MAJOR" "$root/usr/share/postgresql/"
    make -s install with_llvm=no DESTDIR="$root" >/dev/null
    PG_BIN="$root/usr/lib/postgresql/$PG_MAJOR/bin"
    [ -f "$("$PG_BIN/pg_config" --pkglibdir)/segments.so" ] || { echo "private install failed" >&2; return 1; }
    export PG_BIN
}

# Starts a throwaway cluster with segments preloaded, on a private socket
# directory; sets PGHOST, PGPORT, PGUSER, PGDATA, SEGMENTS_TMP.  Registers a
# trap that stops it (and only it) on exit.
start_cluster() {
    make_tmp
    # SEGMENTS_TMP inherited from a shell that still has a cluster there (a
    # bench's, a KEEP_CLUSTER run's): not ours to stop or remove on exit
    if [ -e "$SEGMENTS_TMP/data" ]; then
        echo "refusing to start a cluster in $SEGMENTS_TMP/data: it exists (SEGMENTS_TMP=$SEGMENTS_TMP came from the environment?); unset SEGMENTS_TMP" >&2
        return 1
    fi
    export PGDATA="$SEGMENTS_TMP/data" PGHOST="$SEGMENTS_TMP" PGUSER=postgres
    export PGPORT="${PGPORT_OVERRIDE:-$(( 20000 + RANDOM % 20000 ))}"
    export PG_BIN
    trap stop_cluster EXIT
    runuser -u postgres -- "$PG_BIN/initdb" -D "$PGDATA" -A trust -U postgres --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >> "$PGDATA/postgresql.conf" <<CONF
shared_preload_libraries = 'segments'
listen_addresses = ''
unix_socket_directories = '$SEGMENTS_TMP'
port = $PGPORT
fsync = off
log_min_messages = warning
max_worker_processes = 16
${CLUSTER_EXTRA_CONF:-}
CONF
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$SEGMENTS_TMP/server.log" -w -t 60 start >/dev/null
    log "started PostgreSQL $PG_MAJOR on socket $SEGMENTS_TMP port $PGPORT"
}

# Stops the cluster started by start_cluster and removes its files.
stop_cluster() {
    local rc=$?
    if [ -n "${SEGMENTS_TMP:-}" ] && [ -d "$SEGMENTS_TMP" ]; then
        if [ -d "$SEGMENTS_TMP/data" ]; then
            if [ $rc -ne 0 ] && [ -f "$SEGMENTS_TMP/server.log" ]; then
                echo "---- last lines of the server log ----"
                tail -n 40 "$SEGMENTS_TMP/server.log"
            fi
            runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 || true
        fi
        [ -n "${KEEP_CLUSTER:-}" ] || rm -rf "$SEGMENTS_TMP"
    fi
    exit $rc
}

#!/usr/bin/env bash
# The Debian package: scripts/package.sh builds postgresql-15-segments from
# this tree with pg_buildext; then
#   1. its files, extracted (dpkg-deb -x) into a clean copy of the machine's
#      PostgreSQL without any segments files, serve a new cluster: CREATE
#      EXTENSION at the default version, the worker evaluates a segment, and
#      0.1.0 installs and updates from the package's scripts;
#   2. dpkg -i installs it into the machine's PostgreSQL, a new cluster of the
#      system binaries creates the extension, dpkg --purge removes it again.
#      Step 2 changes the files of the system's PostgreSQL, which the demo and
#      the benchmark install into: it takes their lock (scripts/lib.sh
#      build_and_install) and leaves no segments files there (they re-install
#      at each run).
# The version in segments.control, the Makefile, META.json, debian/changelog
# and CHANGELOG.md must agree.
set -euo pipefail
: "${PGHOST:?run through scripts/test.sh}" "${PG_BIN:?}" "${PGPORT:?}"
TEST_NAME=01_deb
ROOT_DIR=$(cd "$(dirname "$0")/../.." && pwd)
fail() { echo "FAIL ($TEST_NAME): $*" >&2; exit 1; }
CHECKS=0
note() { case "$1" in ok:*) CHECKS=$((CHECKS + 1));; esac; echo "# $TEST_NAME: $*"; }
all_passed() { echo "# $TEST_NAME: all passed ($CHECKS checks)"; }

DIR="$PGHOST/package"
PORT=$((PGPORT + 3))
CLUSTER=""           # data directory of the cluster running now, if any
CLUSTER_BIN=""
restore() { :; }
stop() {
    local rc=$?
    if [ -n "$CLUSTER" ] && [ -f "$CLUSTER/postmaster.pid" ]; then
        runuser -u postgres -- "$CLUSTER_BIN/pg_ctl" -D "$CLUSTER" -m fast -w stop >/dev/null 2>&1 || true
    fi
    [ $rc -ne 0 ] && [ -f "$DIR/log" ] && tail -n 30 "$DIR/log"
    if dpkg-query -W -f='${Status}' postgresql-15-segments 2>/dev/null | grep -q "ok installed"; then
        dpkg --purge postgresql-15-segments >/dev/null 2>&1 || true
        restore
    fi
    rm -rf "$DIR"
    exit $rc
}
trap stop EXIT
mkdir -p "$DIR" && chown postgres:postgres "$DIR"

# start_pg BINDIR NAME: a fresh cluster with segments preloaded
start_pg() {
    CLUSTER_BIN="$1"; CLUSTER="$DIR/$2"
    runuser -u postgres -- "$CLUSTER_BIN/initdb" -D "$CLUSTER" -A trust -U postgres --no-sync >/dev/null
    cat >> "$CLUSTER/postgresql.conf" <<CONF
shared_preload_libraries = 'segments'
listen_addresses = ''
unix_socket_directories = '$DIR'
port = $PORT
fsync = off
CONF
    runuser -u postgres -- "$CLUSTER_BIN/pg_ctl" -D "$CLUSTER" -l "$DIR/log" -w -t 60 start >/dev/null
}
stop_pg() {
    runuser -u postgres -- "$CLUSTER_BIN/pg_ctl" -D "$CLUSTER" -m fast -w stop >/dev/null
    CLUSTER=""
}
q() { psql -X -qAt -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres "$@"; }
expect() {
    local what="$1" db="$2" sql="$3" want="$4" got
    got=$(q -d "$db" -c "$sql") || fail "$what: query failed"
    [ "$got" = "$want" ] || fail "$what: expected '$want', got '$got'"
    note "ok: $what"
}

# --- versions agree -----------------------------------------------------------
cd "$ROOT_DIR"
V=$(sed -n "s/^default_version = '\(.*\)'/\1/p" segments.control)
[ -n "$V" ] || fail "no default_version in segments.control"
[ "$(sed -n 's/^EXTVERSION *= *//p' Makefile)" = "$V" ] || fail "Makefile EXTVERSION is not $V"
[ "$(python3 -c 'import json; d = json.load(open("META.json")); print(d["version"], d["provides"]["segments"]["version"])')" = "$V $V" ] \
    || fail "META.json does not say version $V"
[ "$(dpkg-parsechangelog -S Version)" = "$V" ] || fail "debian/changelog's top entry is not $V"
grep -q "^## $V" CHANGELOG.md || fail "CHANGELOG.md has no entry for $V"
note "ok: segments.control, Makefile, META.json, debian/changelog and CHANGELOG.md all say $V"

# --- build ---------------------------------------------------------------------
start=$SECONDS
./scripts/package.sh "$DIR/dist" >"$DIR/package.out" 2>&1 || { cat "$DIR/package.out"; fail "scripts/package.sh failed"; }
DEB=$(ls "$DIR"/dist/postgresql-15-segments_"$V"_*.deb 2>/dev/null | head -n 1)
[ -n "$DEB" ] || { cat "$DIR/package.out"; fail "no postgresql-15-segments_${V} package was built"; }
note "ok: scripts/package.sh built $(basename "$DEB") in $((SECONDS - start)) s"
[ "$(dpkg-deb -f "$DEB" Package)" = postgresql-15-segments ] || fail "wrong package name"
grep -q 'postgresql-15' <<<"$(dpkg-deb -f "$DEB" Depends)" || fail "the package does not depend on postgresql-15"
files=$(dpkg-deb -c "$DEB" | awk '{print $6}')
for f in ./usr/lib/postgresql/15/lib/segments.so ./usr/share/postgresql/15/extension/segments.control \
         "./usr/share/postgresql/15/extension/segments--$V.sql" \
         ./usr/share/postgresql/15/extension/segments--0.1.0.sql \
         "./usr/share/postgresql/15/extension/segments--0.1.0--$V.sql"; do
    grep -qxF "$f" <<<"$files" || fail "the package lacks $f"
done
note "ok: the package holds the library, the control file and the scripts of 0.1.0, $V and the upgrade"

# --- 1. extracted into a clean copy of PostgreSQL ----------------------------------
root="$DIR/root"
mkdir -p "$root/usr/lib/postgresql" "$root/usr/share/postgresql"
cp -a /usr/lib/postgresql/15 "$root/usr/lib/postgresql/"
cp -a /usr/share/postgresql/15 "$root/usr/share/postgresql/"
rm -f "$root"/usr/lib/postgresql/15/lib/segments.so "$root"/usr/share/postgresql/15/extension/segments[.-]*
rm -rf "$root"/usr/lib/postgresql/15/lib/bitcode/segments*
dpkg-deb -x "$DEB" "$root"
start_pg "$root/usr/lib/postgresql/15/bin" extracted
expect "the package's control file is found" postgres \
    "SELECT default_version FROM pg_available_extensions WHERE name = 'segments'" "$V"
q -d postgres -c "CREATE DATABASE pkg" -c "CREATE DATABASE pkg_old"
q -d pkg -c "CREATE EXTENSION segments" || fail "CREATE EXTENSION from the package failed"
expect "CREATE EXTENSION from the package" pkg "SELECT extversion FROM pg_extension WHERE extname = 'segments'" "$V"
q -d pkg -c "CREATE TABLE contacts (id bigint PRIMARY KEY, plan text)" \
    -c "INSERT INTO contacts SELECT g, CASE WHEN g % 4 = 0 THEN 'vip' END FROM generate_series(1, 100) g" \
    -c "SELECT segments.configure('contacts', 'id')" \
    -c "SELECT segments.create_segment('VIP', '{\"type\":\"attribute\",\"field\":\"plan\",\"op\":\"eq\",\"value\":\"vip\"}')" >/dev/null
expect "the package's worker evaluates a new segment" pkg \
    "SELECT segments.wait('30 s'), (SELECT member_count FROM segments.segments WHERE name = 'VIP')" "t|25"
q -d pkg_old -c "CREATE EXTENSION segments VERSION '0.1.0'" -c "ALTER EXTENSION segments UPDATE" \
    || fail "0.1.0 from the package does not install and update"
expect "0.1.0 from the package updates to $V" pkg_old "SELECT extversion FROM pg_extension WHERE extname = 'segments'" "$V"
stop_pg

# --- 2. dpkg -i into the machine's PostgreSQL, under the run lock --------------------
exec 9>"${SEGMENTS_RUN_LOCK:-/tmp/segments-run.lock}"
flock -w 900 9 || fail "the run lock (${SEGMENTS_RUN_LOCK:-/tmp/segments-run.lock}) stayed taken for 15 minutes"
# segments files a make install left (the demo's) are put back afterwards
saved=()
for f in /usr/lib/postgresql/15/lib/segments.so /usr/lib/postgresql/15/lib/bitcode/segments \
         /usr/lib/postgresql/15/lib/bitcode/segments.index.bc /usr/share/postgresql/15/extension/segments.control \
         /usr/share/postgresql/15/extension/segments--*.sql; do
    [ -e "$f" ] && saved+=("${f#/}")
done
[ ${#saved[@]} -eq 0 ] || tar -C / -cf "$DIR/saved.tar" "${saved[@]}"
restore() { [ ! -f "$DIR/saved.tar" ] || tar -C / -xf "$DIR/saved.tar"; }
dpkg -i "$DEB" >"$DIR/dpkg.out" 2>&1 || { cat "$DIR/dpkg.out"; fail "dpkg -i failed"; }
dpkg --verify postgresql-15-segments || fail "installed files differ from the package"
note "ok: dpkg -i installed postgresql-15-segments $(dpkg-query -W -f='${Version}' postgresql-15-segments)"
start_pg /usr/lib/postgresql/15/bin system
q -d postgres -c "CREATE EXTENSION segments" || fail "CREATE EXTENSION after dpkg -i failed"
expect "CREATE EXTENSION on a clean cluster after dpkg -i" postgres \
    "SELECT extversion FROM pg_extension WHERE extname = 'segments'" "$V"
w=$SECONDS
until [ "$(q -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'segments worker'")" = 1 ]; do
    [ $((SECONDS - w)) -lt 30 ] || fail "no segments worker in pg_stat_activity within 30 s of CREATE EXTENSION"
    sleep 0.2
done
note "ok: the installed library's worker serves the database ($((SECONDS - w)) s)"
stop_pg
dpkg --purge postgresql-15-segments >"$DIR/dpkg.out" 2>&1 || { cat "$DIR/dpkg.out"; fail "dpkg --purge failed"; }
[ ! -e /usr/lib/postgresql/15/lib/segments.so ] && [ ! -e /usr/share/postgresql/15/extension/segments.control ] \
    || fail "dpkg --purge left segments files behind"
note "ok: dpkg --purge removed the package's files"
restore
all_passed

#!/usr/bin/env bash
# ALTER EXTENSION segments UPDATE from 0.1.0, the frozen script of the last
# release, on a server running the current library (as after installing a
# new package and restarting).  In a cluster of its own, so that the roles
# the upgrade must create are not already there from other tests:
#   - 0.1.0 installs from its frozen script (every C function it names still
#     exists in the library);
#   - a configured source, segments with references, a schedule, a time
#     rule and a percentage, membership, a tenant, a non-superuser app, and a
#     user's row-security policy calling segments.filter_restricted (a
#     user's object depending on the extension's code);
#   - after the update: same ids, numbers, names, definitions, schedule and
#     membership (since included), nothing re-evaluated; the worker applies
#     new changes; the policy still gates;
#   - the upgraded extension equals a fresh install of the new version in
#     another database object by object (test/upgrade/describe.sql), and the
#     fresh install creates no role the upgrade did not; likewise without a
#     configured source.
set -euo pipefail
: "${PGHOST:?run through scripts/test.sh}" "${PG_BIN:?}"
TEST_NAME=01_upgrade
HERE=$(cd "$(dirname "$0")" && pwd)
fail() { echo "FAIL ($TEST_NAME): $*" >&2; exit 1; }
CHECKS=0
note() { case "$1" in ok:*) CHECKS=$((CHECKS + 1));; esac; echo "# $TEST_NAME: $*"; }
all_passed() { echo "# $TEST_NAME: all passed ($CHECKS checks)"; }

DIR="$PGHOST/upgrade"
export PGPORT=$((PGPORT + 2)) PGHOST="$DIR"
stop() {
    local rc=$?
    [ -f "$DIR/data/postmaster.pid" ] &&
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1
    [ $rc -ne 0 ] && [ -f "$DIR/log" ] && tail -n 30 "$DIR/log"
    rm -rf "$DIR"
    exit $rc
}
trap stop EXIT
mkdir -p "$DIR" && chown postgres:postgres "$DIR"
runuser -u postgres -- "$PG_BIN/initdb" -D "$DIR/data" -A trust -U postgres --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
cat >> "$DIR/data/postgresql.conf" <<CONF
shared_preload_libraries = 'segments'
listen_addresses = ''
unix_socket_directories = '$DIR'
port = $PGPORT
fsync = off
log_min_messages = warning
CONF
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w -t 60 start >/dev/null

export PGDATABASE=upgraded
q() { psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }
expect() {
    local what="$1" sql="$2" want="$3" got
    got=$(q -c "$sql") || fail "$what: query failed"
    [ "$got" = "$want" ] || fail "$what: expected '$want', got '$got'"
    note "ok: $what"
}

NEW=$(q -d postgres -c "SELECT default_version FROM pg_available_extensions WHERE name = 'segments'")
[ "$NEW" != 0.1.0 ] || fail "default_version is still 0.1.0"
q -d postgres -c "CREATE DATABASE upgraded" -c "CREATE DATABASE fresh"

# --- 0.1.0, as released, with data -----------------------------------------
q -c "CREATE EXTENSION segments VERSION '0.1.0'" || fail "the 0.1.0 script does not install with this library"
expect "0.1.0 installed from its frozen script" "SELECT extversion FROM pg_extension WHERE extname = 'segments'" 0.1.0

SOURCE="CREATE TABLE public.contacts (id bigint PRIMARY KEY, org_id text NOT NULL, plan text,
                                     seen_at timestamptz, custom_data jsonb);"
q -c "$SOURCE" -c "INSERT INTO contacts
    SELECT g, CASE WHEN g % 3 = 0 THEN 'acme' ELSE 'globex' END,
           CASE WHEN g % 10 = 0 THEN 'vip' ELSE 'free' END,
           now() - g * interval '1 hour', jsonb_build_object('size', g % 100)
      FROM generate_series(1, 500) g"
q -c "SELECT segments.configure('public.contacts', 'id', tenant_column => 'org_id', traits_column => 'custom_data')" >/dev/null
q <<'SQL' >/dev/null
SELECT segments.create_segment('VIP', '{"type":"attribute","field":"plan","op":"eq","value":"vip"}', 'paying a lot');
SELECT segments.create_segment('Big', '{"type":"trait","key":"size","op":"gte","value":90}');
SELECT segments.create_segment('VIP or big', '{"or":[{"type":"segment","op":"in","value":"VIP"},{"type":"segment","op":"in","value":"Big"}]}');
SELECT segments.create_segment('Seen this week', '{"type":"attribute","field":"seen_at","op":"within_last","value":"7 days"}');
SELECT segments.create_segment('Sample', '{"type":"percentage","op":"lt","value":20}');
SELECT segments.create_segment('Acme VIP', '{"type":"attribute","field":"plan","op":"eq","value":"vip"}', NULL, 'acme');
SELECT segments.schedule(id, '1 hour') FROM segments.segments WHERE name = 'Big';
SELECT segments.refresh();
SQL
q <<'SQL' >/dev/null
CREATE ROLE upgrade_app LOGIN;
GRANT segments_read TO upgrade_app;
CREATE TABLE public.actions (id int PRIMARY KEY, restricted_to uuid[]);
INSERT INTO public.actions
    SELECT 1, NULL UNION ALL
    SELECT 2, ARRAY[(SELECT id FROM segments.segments WHERE name = 'VIP')];
ALTER TABLE public.actions ENABLE ROW LEVEL SECURITY;
CREATE POLICY gate ON public.actions FOR SELECT TO upgrade_app
    USING (segments.filter_restricted(current_setting('app.contact')::bigint, restricted_to));
GRANT SELECT ON public.actions TO upgrade_app;
SQL
expect "0.1.0 evaluated every segment" "SELECT count(*) FILTER (WHERE status = 'ready') || '/' || count(*) FROM segments.segments" 6/6
SNAPSHOT="SELECT s.id, s.num, s.tenant, s.name, s.description, s.definition, s.refs, s.depends_on,
                 s.uses_time, s.schedule, s.created_at, s.updated_at FROM segments.segment s ORDER BY s.id"
MEMBERS="SELECT segment_id, contact_id, since FROM segments.membership ORDER BY 1, 2"
STATE="SELECT segment_id, state, member_count, evaluated_at FROM segments.segment_state ORDER BY 1"
before_defs=$(q -c "$SNAPSHOT"); before_members=$(q -c "$MEMBERS"); before_state=$(q -c "$STATE")
[ "$(printf '%s\n' "$before_members" | wc -l)" -gt 100 ] || fail "too few memberships to compare"
# the app's sessions run as tenant globex (contacts 10 and 11 are globex's), as
# ALTER ROLE ... SET would fix it at login: without a tenant it would see nothing
gated() { q -c "SET segments.tenant = 'globex'" -c "SET ROLE upgrade_app" -c "SET app.contact = '$1'" -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM public.actions"; }
[ "$(gated 10)" = "1,2" ] && [ "$(gated 11)" = "1" ] || fail "the policy does not gate on 0.1.0"

# --- the update ----------------------------------------------------------------
q -c "ALTER EXTENSION segments UPDATE" 2>"$DIR/update.err" || { cat "$DIR/update.err"; fail "ALTER EXTENSION segments UPDATE failed"; }
expect "updated to the default version $NEW" "SELECT extversion FROM pg_extension WHERE extname = 'segments'" "$NEW"
[ "$(q -c "$SNAPSHOT")" = "$before_defs" ] || fail "segment definitions changed by the update"
note "ok: ids, numbers, names, definitions, references and schedule carried over"
[ "$(q -c "$MEMBERS")" = "$before_members" ] || fail "membership changed by the update"
note "ok: membership carried over, since times included"
[ "$(q -c "$STATE")" = "$before_state" ] || fail "evaluation state changed by the update"
note "ok: nothing was re-evaluated by the update"
[ "$(gated 10)" = "1,2" ] && [ "$(gated 11)" = "1" ] || fail "the user's policy does not gate after the update"
note "ok: a user's policy over filter_restricted survives and still gates"
expect "reading functions work as the app role" \
    "SET segments.tenant = 'globex'; SET ROLE upgrade_app; SELECT segments.segment_is_member(10::bigint, 'VIP or big')" t

# the worker picks up the new code: a change committed now is applied
q -c "UPDATE contacts SET plan = 'vip' WHERE id = 11"
expect "the worker applies a change after the update" "SELECT segments.wait('30 s')" t
expect "changed contact entered VIP" "SELECT segments.segment_is_member(11::bigint, 'VIP')" t
expect "and the segment referencing it" "SELECT segments.segment_is_member(11::bigint, 'VIP or big')" t
q -c "SELECT segments.refresh()" >/dev/null
expect "a full refresh keeps since times of staying members" \
    "SELECT count(*) FROM ($MEMBERS) m WHERE contact_id <> 11 AND (segment_id, contact_id, since) NOT IN (SELECT * FROM segments.membership)" 0
q -c "SELECT segments.create_segment('After the update', '{\"type\":\"attribute\",\"field\":\"plan\",\"op\":\"eq\",\"value\":\"free\"}')" >/dev/null
expect "a segment created after the update is evaluated by the worker" \
    "SELECT segments.wait('30 s'), (SELECT status FROM segments.segments WHERE name = 'After the update')" "t|ready"

# --- object by object against a fresh install ---------------------------------------
roles_upgraded=$(q -c "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolname LIKE 'segments%'")
export PGDATABASE=fresh
q -c "CREATE EXTENSION segments" -c "$SOURCE"
q -c "SELECT segments.configure('public.contacts', 'id', tenant_column => 'org_id', traits_column => 'custom_data')" >/dev/null
expect "fresh install is the default version" "SELECT extversion FROM pg_extension WHERE extname = 'segments'" "$NEW"
roles_fresh=$(q -c "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolname LIKE 'segments%'")
[ "$roles_fresh" = "$roles_upgraded" ] || fail "a fresh install created roles the upgrade did not: $roles_upgraded -> $roles_fresh"
note "ok: the upgrade created every role ($roles_upgraded)"
q -d upgraded -f "$HERE/describe.sql" >"$DIR/upgraded.txt"
q -d fresh -f "$HERE/describe.sql" >"$DIR/fresh.txt"
n=$(grep -c '^member ' "$DIR/fresh.txt")
[ "$n" -gt 40 ] || fail "the description lists only $n objects"
if ! diff -u "$DIR/fresh.txt" "$DIR/upgraded.txt" >"$DIR/diff"; then
    echo "---- fresh install (-) vs upgraded (+), first differences ----"
    head -n 60 "$DIR/diff" | cut -c1-400
    fail "the upgraded extension differs from a fresh install: add the missing change to sql/upgrade/"
fi
note "ok: the upgraded extension equals a fresh install ($n objects, $(wc -l <"$DIR/fresh.txt") lines compared)"

# an unconfigured 0.1.0 updates to what a fresh unconfigured install is
q -d postgres -c "CREATE DATABASE plain_old" -c "CREATE DATABASE plain_new"
q -d plain_old -c "CREATE EXTENSION segments VERSION '0.1.0'" -c "ALTER EXTENSION segments UPDATE"
q -d plain_new -c "CREATE EXTENSION segments"
q -d plain_old -f "$HERE/describe.sql" >"$DIR/plain_old.txt"
q -d plain_new -f "$HERE/describe.sql" >"$DIR/plain_new.txt"
if ! diff -u "$DIR/plain_new.txt" "$DIR/plain_old.txt" >"$DIR/diff"; then
    head -n 60 "$DIR/diff" | cut -c1-400
    fail "an unconfigured upgraded extension differs from a fresh install"
fi
note "ok: unconfigured, the upgraded extension equals a fresh install too"

# DROP EXTENSION still removes everything, configure()'s objects included
export PGDATABASE=upgraded
q -c "DROP POLICY gate ON public.actions" -c "DROP EXTENSION segments"
expect "DROP EXTENSION after the update leaves nothing in schema segments" \
    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'segments'" 0
all_passed

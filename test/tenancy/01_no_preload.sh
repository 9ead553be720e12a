#!/usr/bin/env bash
# segments.tenant without shared_preload_libraries: the library is loaded by
# a session's first call, after the session may already have set
# segments.tenant as a placeholder that anyone may set.  A value set by a
# role without SET on the parameter must not take effect when the library
# loads (the role keeps the tenant ALTER ROLE gave it, or has none and sees
# nothing); a role granted SET keeps the value it set.  Starts a throwaway
# cluster of its own, without the preload, and stops it on exit.
TEST_NAME=01_no_preload
. "$(dirname "$0")/../own_cluster.bash"
own_cluster "$PGHOST/tenancy_nopreload" $((PGPORT + 2)) </dev/null

# as the superuser
q() { psql -X -qAt -v ON_ERROR_STOP=1 -p "$PORT" -d postgres -c "$1"; }
# as a login role, in one session: the results of every statement of $2;
# its warnings go to $DIR/stderr
as() { psql -X -qAt -v ON_ERROR_STOP=1 -p "$PORT" -d postgres -U "$1" -c "$2" 2>"$DIR/stderr"; }
expect_as() {
    local what="$1" role="$2" sql="$3" want="$4" warned="$5" got
    got=$(as "$role" "$sql") || fail "$what: query failed: $(cat "$DIR/stderr")"
    [ "$got" = "$want" ] || fail "$what: expected '$want', got '$got'"
    if [ "$warned" = warns ]; then
        grep -q 'WARNING:  permission denied to set parameter "segments.tenant"' "$DIR/stderr" ||
            fail "$what: no warning that the setting was dropped: $(cat "$DIR/stderr")"
    else
        [ ! -s "$DIR/stderr" ] || fail "$what: unexpected messages: $(cat "$DIR/stderr")"
    fi
    note "ok: $what"
}

grep -q segments <<<"$(q "SHOW shared_preload_libraries")" && fail "the cluster preloads segments"
q "CREATE EXTENSION segments"
q "CREATE TABLE contacts (id bigint PRIMARY KEY, org_id text, plan text)"
q "INSERT INTO contacts VALUES (1, 'a', 'vip'), (2, 'b', 'vip')"
q "SELECT segments.configure('contacts', 'id', tenant_column => 'org_id')" >/dev/null
q "SELECT segments.create_segment('A', '{\"and\": []}', tenant => 'a')" >/dev/null
q "SELECT segments.create_segment('B', '{\"and\": []}', tenant => 'b')" >/dev/null
q "SELECT segments.refresh()" >/dev/null
q "CREATE ROLE tenant_a LOGIN IN ROLE segments_read"
q "ALTER ROLE tenant_a SET segments.tenant = 'a'"
q "CREATE ROLE no_tenant LOGIN IN ROLE segments_read"
q "CREATE ROLE pool LOGIN IN ROLE segments_read"
q "GRANT SET ON PARAMETER segments.tenant TO pool"

# Each session below sets segments.tenant before its first call loads the library.
expect_as "a tenant role's own SET before the load is dropped, its ALTER ROLE tenant stays" tenant_a \
    "SET segments.tenant = 'b'; SELECT string_agg(name, ',' ORDER BY name) FROM segments.segments; SHOW segments.tenant" \
    $'A\na' warns
expect_as "... and it reads only its own tenant's membership" tenant_a \
    "SET segments.tenant = 'b'; SELECT segments.segment_is_member(2, 'B') OR segments.segment_is_member(2, 'A') OR segments.segment_is_member(1, 'B')" \
    f warns
expect_as "a role without a tenant gains none by setting it before the load" no_tenant \
    "SELECT set_config('segments.tenant', 'b', false); SELECT count(*) FROM segments.segments; SHOW segments.tenant" \
    $'b\n0' warns
got=$(PGOPTIONS="-c segments.tenant=b" as no_tenant "SELECT count(*) FROM segments.segments") ||
    fail "connection option: query failed: $(cat "$DIR/stderr")"
[ "$got" = 0 ] || fail "connection option: expected no segments, got '$got'"
grep -q 'permission denied to set parameter "segments.tenant"' "$DIR/stderr" ||
    fail "connection option: no warning that the setting was dropped"
note "ok: nor through a connection option (PGOPTIONS)"
expect_as "a role granted SET keeps the tenant it set before the load" pool \
    "SET segments.tenant = 'b'; SELECT string_agg(name, ',' ORDER BY name) FROM segments.segments" B none
expect_as "and the superuser, as an admin without a tenant, sees both" postgres \
    "SELECT string_agg(name, ',' ORDER BY name) FROM segments.segments" "A,B" none
all_passed

#!/usr/bin/env bash
# Writing contacts needs nothing from the extension (README: Security model): the role that
# owns the contact table, with no privilege on schema segments, and a role
# with only INSERT, UPDATE and DELETE on it, write through every path the
# capture trigger serves (INSERT, UPDATE, DELETE, COPY, TRUNCATE), and the
# worker reflects each change.  A writer whose search_path puts an object
# it planted before pg_catalog does not get it run by the capture trigger,
# which reads the configuration with the extension's rights.
. "$(dirname "$0")/common.bash"

mkrole APP app
mkrole WRITER writer
q "GRANT CREATE ON SCHEMA public TO \"$APP\""
as "$APP" "CREATE TABLE contacts (id bigint PRIMARY KEY, plan text, note text)"
as "$APP" "INSERT INTO contacts SELECT g, CASE WHEN g % 10 = 0 THEN 'vip' ELSE 'free' END, 'n'
             FROM generate_series(1, 200) g"
q "SELECT segments.configure('public.contacts', 'id')" >/dev/null
q "SELECT segments.create_segment('VIP', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}')" >/dev/null
VIP="SELECT id FROM contacts WHERE plan = 'vip'"
expect "segment evaluated" "SELECT segments.wait('60 s')" t

expect "the app role is no superuser" "SELECT rolsuper FROM pg_roles WHERE rolname = '$APP'" f
expect "the app role has no privilege on schema segments" \
    "SELECT has_schema_privilege('$APP', 'segments', 'USAGE')" f
expect "the app role cannot read the queue" \
    "SELECT has_table_privilege('$APP', 'segments.change_queue', 'SELECT')" f

# the owner of the table writes: each path reaches membership
as "$APP" "INSERT INTO contacts VALUES (1001, 'vip', 'n'), (1002, 'free', 'n')" >/dev/null ||
    fail "INSERT by the table owner failed"
note "ok: INSERT by the table owner"
as "$APP" "UPDATE contacts SET plan = 'vip' WHERE id = 2" >/dev/null || fail "UPDATE by the table owner failed"
note "ok: UPDATE by the table owner"
as "$APP" "DELETE FROM contacts WHERE id = 10" >/dev/null || fail "DELETE by the table owner failed"
note "ok: DELETE by the table owner"
expect "wait() after the owner's writes" "SELECT segments.wait('60 s')" t
expect "inserted contact in" "SELECT segments.segment_is_member(1001::bigint, 'VIP')" t
expect "updated contact in" "SELECT segments.segment_is_member(2::bigint, 'VIP')" t
expect "deleted contact out" "SELECT segments.segment_is_member(10::bigint, 'VIP')" f
expect "membership exact after the owner's writes" "SELECT '$(mismatches VIP "$VIP")'" 0

printf '2001\tvip\tcopied\n2002\tfree\tcopied\n' |
    psql -X -q -v ON_ERROR_STOP=1 -U "$APP" -c "COPY contacts (id, plan, note) FROM STDIN" ||
    fail "COPY by the table owner failed"
note "ok: COPY by the table owner"
expect "wait() after COPY" "SELECT segments.wait('60 s')" t
expect "copied contact in" "SELECT segments.segment_is_member(2001::bigint, 'VIP')" t

as "$APP" "BEGIN; TRUNCATE contacts; INSERT INTO contacts VALUES (3001, 'vip', 'n'), (3002, 'free', 'n'); COMMIT" \
    >/dev/null || fail "TRUNCATE by the table owner failed"
note "ok: TRUNCATE by the table owner"
expect "wait() after TRUNCATE" "SELECT segments.wait('60 s')" t
expect "TRUNCATE reflected" "SELECT string_agg(m::text, ',') FROM segments.segment_members('VIP') m" 3001

# a role with INSERT, UPDATE and DELETE only (no SELECT: no WHERE clause)
as "$APP" "GRANT INSERT, UPDATE, DELETE ON contacts TO \"$WRITER\""
as "$WRITER" "INSERT INTO contacts VALUES (4001, 'vip', 'w'), (4002, 'free', 'w')" >/dev/null ||
    fail "INSERT by the INSERT/UPDATE/DELETE role failed"
note "ok: INSERT by a role with INSERT only"
expect "wait() after the writer's INSERT" "SELECT segments.wait('60 s')" t
expect "writer's contact in" "SELECT segments.segment_is_member(4001::bigint, 'VIP')" t
as "$WRITER" "UPDATE contacts SET plan = 'vip'" >/dev/null || fail "UPDATE by the writer failed"
note "ok: UPDATE by a role with UPDATE only"
expect "wait() after the writer's UPDATE" "SELECT segments.wait('60 s')" t
expect "every contact in after the writer's UPDATE" "SELECT member_count FROM segments.segments WHERE name = 'VIP'" 4
as "$WRITER" "DELETE FROM contacts" >/dev/null || fail "DELETE by the writer failed"
note "ok: DELETE by a role with DELETE only"
expect "wait() after the writer's DELETE" "SELECT segments.wait('60 s')" t
expect "nobody left after the writer's DELETE" "SELECT member_count FROM segments.segments WHERE name = 'VIP'" 0

# a hostile writer: a type named oid in public with a cast from regclass
# whose function records who ran it; public comes before pg_catalog
as "$APP" "CREATE TABLE public.ran (who name, what text)"
as "$APP" "GRANT INSERT ON public.ran TO PUBLIC"
as "$APP" "CREATE TYPE public.oid AS (x int)"
as "$APP" "CREATE FUNCTION public.planted_cast(regclass) RETURNS public.oid LANGUAGE plpgsql AS
             \$\$BEGIN INSERT INTO public.ran VALUES (current_user, 'cast'); RETURN ROW(1); END\$\$"
as "$APP" "CREATE CAST (regclass AS public.oid) WITH FUNCTION public.planted_cast(regclass)"
psql -X -q -v ON_ERROR_STOP=1 -U "$APP" \
    -c "SET search_path = public, pg_catalog" \
    -c "INSERT INTO contacts VALUES (5001, 'vip', 'h')" || fail "write with a hostile search_path failed"
note "ok: write with public before pg_catalog"
expect "wait() after the hostile write" "SELECT segments.wait('60 s')" t
expect "hostile writer's contact captured" "SELECT segments.segment_is_member(5001::bigint, 'VIP')" t
expect "the planted cast never ran" "SELECT count(*) FROM public.ran" 0

expect "no error reported by the worker" "SELECT coalesce(last_error, '') FROM segments.worker" ""
all_passed

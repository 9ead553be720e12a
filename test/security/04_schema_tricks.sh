#!/usr/bin/env bash
# No crash from schema tricks: the key or traits column changing type
# behind configure()'s back, a tenant column of a user type, and a type
# merely named citext.  refresh() and the worker fail closed with an error
# naming the source and the column; no backend or worker dies (the server
# log has no "terminated by signal"), and the extension works again once
# the column is changed back.
. "$(dirname "$0")/common.bash"

LOG="$SEGMENTS_TMP/server.log"
[ -f "$LOG" ] || fail "no server log at $LOG"
signals_before=$(grep -c "terminated by signal" "$LOG" || true)

q "CREATE TABLE contacts (id bigint PRIMARY KEY, plan text, org text, traits jsonb)"
q "INSERT INTO contacts SELECT g, CASE WHEN g % 10 = 0 THEN 'vip' ELSE 'free' END, 'acme',
     jsonb_build_object('n', g) FROM generate_series(1, 300) g"
q "SELECT segments.configure('contacts', 'id', tenant_column => 'org', traits_column => 'traits')" >/dev/null
VIP=$(q "SELECT segments.create_segment('VIP', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}')")
q "SELECT segments.create_segment('Big', '{\"type\": \"trait\", \"key\": \"n\", \"op\": \"gt\", \"value\": 250}', tenant => 'acme')" >/dev/null
expect "segments evaluated" "SELECT segments.wait('60 s')" t

# refresh_fails WHAT SQLSTATE MESSAGE-PART: refresh() fails cleanly
refresh_fails() {
    local out
    out=$(psql -X -qAt -v VERBOSITY=default -c "SELECT segments.refresh()" 2>&1) && fail "$1: refresh() succeeded"
    case "$out" in *"$2"*) note "ok: $1: refresh() fails: $2";; *) fail "$1: expected '$2', got: $out";; esac
    expect "$1: the server still answers" "SELECT 1" 1
}

# behind configure()'s back: the event triggers that refuse these changes
# (test/schema/) are disabled, as a superuser may
q "ALTER EVENT TRIGGER segments_ddl_start DISABLE; ALTER EVENT TRIGGER segments_ddl_end DISABLE"

# the key column's type changes
q "ALTER TABLE contacts ALTER COLUMN id TYPE text"
refresh_fails "key bigint -> text" 'key column "id" of source "public.contacts" has type text, not bigint as configured'
q "UPDATE contacts SET plan = 'vip' WHERE id = '1'"
poll "key bigint -> text: the worker reports the reason" \
    "SELECT last_error LIKE '%key column \"id\" of source \"public.contacts\" has type text%' FROM segments.worker" t 60
# the worker's error may name any tenant's source, segment or contacts: a
# tenant sees it neither in segments.worker nor in segments.stat_worker,
# which keeps it after the worker recovers; a superuser sees it in both
mkrole TENANT acme_reader "IN ROLE segments_read"
q "ALTER ROLE \"$TENANT\" SET segments.tenant = 'acme'"
expect "key bigint -> text: stat_worker keeps the error" \
    "SELECT last_error LIKE '%key column \"id\"%' FROM segments.stat_worker" t
[ "$(as "$TENANT" "SELECT last_error IS NULL FROM segments.worker")" = t ] \
    || fail "a tenant sees the worker's last_error in segments.worker"
note "ok: a tenant does not see the worker's last_error in segments.worker"
[ "$(as "$TENANT" "SELECT last_error IS NULL FROM segments.stat_worker")" = t ] \
    || fail "a tenant sees the worker's last_error in segments.stat_worker: $(as "$TENANT" "SELECT last_error FROM segments.stat_worker")"
note "ok: a tenant does not see the worker's last_error in segments.stat_worker"
q "ALTER TABLE contacts ALTER COLUMN id TYPE bigint USING id::bigint"
q "SELECT segments.refresh()" >/dev/null
note "ok: key bigint -> text: refresh() works again once changed back"

# the traits column's type changes
q "ALTER TABLE contacts ALTER COLUMN traits TYPE text"
refresh_fails "traits jsonb -> text" 'traits column "traits" of source "public.contacts" has type text, not jsonb'
q "ALTER TABLE contacts ALTER COLUMN traits TYPE jsonb USING traits::jsonb"
q "SELECT segments.refresh()" >/dev/null
note "ok: traits jsonb -> text: refresh() works again once changed back"

# the tenant column becomes a user type (whose functions would run as the owner)
q "CREATE TYPE tenant_kind AS ENUM ('acme', 'globex')"
q "ALTER TABLE contacts ALTER COLUMN org TYPE tenant_kind USING org::tenant_kind"
refresh_fails "tenant text -> enum" 'tenant column "org" of source "public.contacts" has type public.tenant_kind, which is not a built-in type'
q "ALTER TABLE contacts ALTER COLUMN org TYPE text"
q "SELECT segments.refresh()" >/dev/null
expect "after the tricks: membership exact" "SELECT member_count FROM segments.segments WHERE name = 'VIP'" \
    "$(q "SELECT count(*) FROM contacts WHERE plan = 'vip'")"

# a type named citext that is an enum is no text column
q "CREATE TYPE citext AS ENUM ('a', 'b')"
q "ALTER TABLE contacts ADD COLUMN nick citext"
q "UPDATE contacts SET nick = 'a' WHERE id <= 3"
out=$(psql -X -qAt -c "SELECT segments.compile('{\"type\": \"attribute\", \"field\": \"nick\", \"op\": \"contains\", \"value\": \"a\"}')" 2>&1 || true)
case "$out" in
    *"invalid segment definition"*) note "ok: an enum named citext is not read as text ($out)";;
    *) # accepted: then it must evaluate without a crash and match nobody by text
       q "SELECT segments.create_segment('Nick', '{\"type\": \"attribute\", \"field\": \"nick\", \"op\": \"contains\", \"value\": \"a\"}')" >/dev/null
       q "SELECT segments.refresh()" >/dev/null
       note "ok: an enum named citext evaluates without a crash";;
esac
expect "the server still answers after the citext enum" "SELECT 1" 1
expect "no process died of a signal" "SELECT $(grep -c "terminated by signal" "$LOG" || true) - $signals_before" 0
all_passed

#!/usr/bin/env bash
# Issue 9 item 1: ALTER COLUMN id TYPE text on a bigint key, then an UPDATE,
# crashed the worker in a loop (the text index searched with an int8) and
# took the whole server down.  Now the type change is refused; and when the
# event triggers are bypassed (a superuser disabled them), every C path
# checks the key type before use: no crash, the worker names the cause once,
# segments are failed with the reason and grant nothing, and re-running
# configure() brings everything back.
. "$(dirname "$0")/common.bash"

q "CREATE TABLE contacts (id bigint PRIMARY KEY, plan text)"
q "INSERT INTO contacts SELECT g, CASE WHEN g % 10 = 0 THEN 'vip' ELSE 'free' END FROM generate_series(1, 500) g"
q "ALTER TABLE contacts OWNER TO $OWNER"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
q "SELECT segments.create_segment('VIP', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}')" >/dev/null
expect "segment evaluated" "SELECT segments.wait('30 s')" t
START=$(q "SELECT pg_postmaster_start_time()")
LOG="$PGDATA/../server.log"
LOG_FROM=$(($(wc -l < "$LOG") + 1))
PID=$(worker_pid)
[ -n "$PID" ] || fail "no worker"

refused "the owner cannot change the key's type" "ALTER TABLE contacts ALTER COLUMN id TYPE text" 2BP01 \
    'it is the key column of segments, configured as bigint'
out=$(psql -X -qAt -v VERBOSITY=verbose -c "ALTER TABLE contacts ALTER COLUMN id TYPE text" 2>&1) &&
    fail "a superuser changed the key's type"
grep -q "ERROR:  2BP01:" <<<"$out" || fail "superuser key type change: $out"
note "ok: nor can a superuser"
qo "UPDATE contacts SET plan = 'vip' WHERE id = 1"
expect "wait() after the refused change" "SELECT segments.wait('30 s')" t
expect "capture still applies" "SELECT segments.segment_is_member(1::bigint, 'VIP')" t

# refused before the table is rewritten (ddl_command_start); the check
# after the command (ddl_command_end) catches it too
q "ALTER EVENT TRIGGER segments_ddl_start DISABLE"
refused "without the early check, the change is refused after the command" \
    "ALTER TABLE contacts ALTER COLUMN id TYPE text" 2BP01 'it is the key column of segments, configured as bigint'
out=$(psql -X -qAt -v VERBOSITY=verbose -c "ALTER TABLE contacts ALTER COLUMN id TYPE text" 2>&1) || true
grep -q "LOCATION:  source_retyped" <<<"$out" || fail "expected the refusal after the command: $out"
note "ok: ... by segments_ddl_end (source_retyped)"
q "ALTER EVENT TRIGGER segments_ddl_start ENABLE ALWAYS"
out=$(psql -X -qAt -v VERBOSITY=verbose -c "ALTER TABLE contacts ALTER COLUMN id TYPE text" 2>&1) || true
grep -q "LOCATION:  segments_ddl_start" <<<"$out" || fail "expected the refusal from segments_ddl_start: $out"
note "ok: with it, the refusal comes before the rewrite (segments_ddl_start)"
expect "the key's type is the same" "SELECT atttypid::regtype FROM pg_attribute WHERE attrelid = 'contacts'::regclass AND attname = 'id'" bigint

# bypass the event triggers: the C paths defend themselves
q "ALTER EVENT TRIGGER segments_ddl_start DISABLE"
q "ALTER EVENT TRIGGER segments_ddl_end DISABLE"
q "ALTER TABLE contacts ALTER COLUMN id TYPE text"
qo "UPDATE contacts SET plan = 'vip' WHERE id = '2'"
qo "INSERT INTO contacts VALUES ('x-1', 'vip')"
poll "segment failed with the reason" \
    "SELECT state || ': ' || last_error FROM segments.status WHERE name = 'VIP'" \
    'failed: the contact source cannot be used: key column "id" of source "public.contacts" has type text, not bigint as configured' 30
expect "a failed segment grants nothing" "SELECT count(*) FROM segments.member" 0
expect "the worker shows the cause" "SELECT last_error LIKE '%key column \"id\" of source \"public.contacts\" has type text%' FROM segments.worker" t
out=$(psql -X -qAt -v VERBOSITY=verbose -c "SELECT segments.segment_is_member('2', 'VIP')" 2>&1) &&
    fail "a reader used the mismatched key"
grep -q 'ERROR:  55000: segments cannot use its contact source: key column "id"' <<<"$out" ||
    fail "reader error: $out"
note "ok: readers refuse with the reason (55000)"
out=$(psql -X -qAt -c "SELECT segments.refresh()" 2>&1) && fail "refresh() ran on the mismatched key"
grep -q 'has type text, not bigint as configured' <<<"$out" || fail "refresh() error: $out"
note "ok: refresh() refuses with the reason"
# a few worker rounds later: same worker, same server, the cause logged once
for i in 1 2 3; do q "SELECT segments._notify_worker()" >/dev/null; sleep 0.3; done
expect "the server never restarted" "SELECT pg_postmaster_start_time() = '$START'" t
expect "the worker never restarted" "SELECT pid FROM segments.worker" "$PID"
logged=$(tail -n +"$LOG_FROM" "$LOG" | grep -c "database \"$DB\": the contact source cannot be used: key column \"id\"" || true)
[ "$logged" = 1 ] || fail "the cause was logged $logged times, expected once"
note "ok: the cause is logged once, by name"
grep -q "segments is not configured" <(tail -n +"$LOG_FROM" "$LOG") && fail "the log says 'not configured'"
note "ok: no 'segments is not configured' in the log"

# re-running configure() for the new key type brings everything back
q "ALTER EVENT TRIGGER segments_ddl_start ENABLE ALWAYS"
q "ALTER EVENT TRIGGER segments_ddl_end ENABLE ALWAYS"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
expect "wait() after configure()" "SELECT segments.wait('30 s')" t
expect "segment ready again" "SELECT status FROM segments.segments WHERE name = 'VIP'" ready
expect "membership exact with the text key" "SELECT '$(mismatches VIP "SELECT id FROM contacts WHERE plan = 'vip'")'" 0
expect "the new key is served" "SELECT segments.segment_is_member('x-1', 'VIP')" t
expect "worker error cleared" "SELECT coalesce(last_error, '') FROM segments.worker" ""
all_passed

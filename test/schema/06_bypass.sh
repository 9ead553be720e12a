#!/usr/bin/env bash
# Nothing silently stale when the event triggers were bypassed (a superuser
# disabled them): a column a rule reads dropped anyway fails that segment
# with the reason at the next change, and it grants nothing; capture
# triggers disabled make the segments pending (wait() false) until capture
# is back; the source table dropped anyway fails every segment with the
# cause, logged once by name, and membership is cleared.
. "$(dirname "$0")/common.bash"

q "CREATE TABLE contacts (id int PRIMARY KEY, plan text, seats int)"
q "INSERT INTO contacts SELECT g, CASE WHEN g % 10 = 0 THEN 'vip' ELSE 'free' END, g % 7 FROM generate_series(1, 500) g"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
q "SELECT segments.create_segment('VIP', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}')" >/dev/null
q "SELECT segments.create_segment('Big', '{\"type\": \"attribute\", \"field\": \"seats\", \"op\": \"gt\", \"value\": 4}')" >/dev/null
expect "segments evaluated" "SELECT segments.wait('30 s')" t
LOG="$PGDATA/../server.log"
LOG_FROM=$(($(wc -l < "$LOG") + 1))

q "ALTER EVENT TRIGGER segments_sql_drop DISABLE"
q "ALTER TABLE contacts DROP COLUMN seats"
q "UPDATE contacts SET plan = 'vip' WHERE id = 1"
poll "the segment reading the dropped column failed with the reason" \
    "SELECT state || ': ' || last_error FROM segments.status WHERE name = 'Big'" \
    'failed: invalid segment definition at $: unknown field "seats"' 30
expect "the failed segment grants nothing" "SELECT count(*) FROM segments.segment_members('Big')" 0
expect "its member count is 0" "SELECT member_count FROM segments.segments WHERE name = 'Big'" 0
expect "the other segment goes on" "SELECT segments.wait('30 s') AND segments.segment_is_member(1, 'VIP')" t

q "ALTER TABLE contacts DISABLE TRIGGER segments_capture"
poll "disabled capture makes segments pending with the reason" \
    "SELECT state || ': ' || last_error FROM segments.status WHERE name = 'VIP'" \
    'pending: change capture is not installed or is disabled on contacts: segments wait for it' 30
expect "wait() is false while capture is off" "SELECT segments.wait('1 s')" f
q "ALTER TABLE contacts ENABLE TRIGGER segments_capture"
expect "capture back: evaluated again" "SELECT segments.wait('30 s')" t
expect "VIP ready again" "SELECT status FROM segments.segments WHERE name = 'VIP'" ready

q "DROP TABLE contacts"
poll "segments failed with the cause" \
    "SELECT string_agg(DISTINCT state || ': ' || last_error, ',') FROM segments.status" \
    "failed: the contact source cannot be used: the source table (OID $(q "SELECT source::oid FROM segments.config")) no longer exists" 30
expect "membership cleared" "SELECT count(*) FROM segments.member" 0
for i in 1 2 3; do q "SELECT segments._notify_worker()" >/dev/null; sleep 0.3; done
logged=$(tail -n +"$LOG_FROM" "$LOG" | grep -c "database \"$DB\": the contact source cannot be used: the source table" || true)
[ "$logged" = 1 ] || fail "the cause was logged $logged times, expected once"
note "ok: the cause is logged once, by name"
grep -q "segments is not configured" <(tail -n +"$LOG_FROM" "$LOG") && fail "the log says 'not configured'"
note "ok: no 'segments is not configured' in the log"
q "ALTER EVENT TRIGGER segments_sql_drop ENABLE ALWAYS"
q "SELECT segments.configure(NULL)" >/dev/null
expect "configure(NULL) after the loss: worker quiet" "SELECT coalesce(last_error, '') FROM segments.worker" ""
all_passed

#!/usr/bin/env bash
# A row whose key is NULL is no contact (README, Security model: writing contacts needs
# nothing from the extension, and nothing a writer does may stall others).
# The key column needs a unique index, which a nullable column may carry,
# so a role with nothing but INSERT on the table can write NULL keys.  Every
# pass skips such rows: a NULL bigint key is not read as contact 0 (which
# would put another tenant's contact 0 in this tenant's segments), and a
# NULL text key crashes no backend or worker (a NULL pointer read, which
# restarted the whole server, again at every start of the worker).
# refresh(), the worker (changes, passes, time windows), preview(),
# verify() and explain() all work, and no process dies of a signal.
. "$(dirname "$0")/common.bash"

LOG="$SEGMENTS_TMP/server.log"
[ -f "$LOG" ] || fail "no server log at $LOG"
signals_before=$(grep -c "terminated by signal" "$LOG" || true)
no_signal() {
    expect "$1: no process died of a signal" \
        "SELECT $(grep -c "terminated by signal" "$LOG" || true) - $signals_before" 0
}

mkrole WRITER writer

# bigint keys, with tenants: contact 0 is tenant 2's
q "CREATE TABLE contacts (id bigint UNIQUE, org int, plan text)"
q "INSERT INTO contacts VALUES (0, 2, 'free'), (1, 1, 'vip'), (2, 1, 'free'), (3, 2, 'vip')"
q "GRANT INSERT ON contacts TO \"$WRITER\""
q "SELECT segments.configure('public.contacts', 'id', tenant_column => 'org')" >/dev/null
q "SELECT segments.create_segment('VIP', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}', NULL, '1')" >/dev/null
expect "segment evaluated" "SELECT segments.wait('60 s')" t
as "$WRITER" "INSERT INTO contacts VALUES (NULL, 1, 'vip'), (NULL, 2, 'vip')" >/dev/null \
    || fail "the writer could not insert a NULL key"
note "ok: a role with INSERT only writes rows with a NULL key"
expect "worker: changes applied" "SELECT segments.wait('60 s')" t
q "SELECT segments.refresh()" >/dev/null
expect "no contact 0 in tenant 1's segment (a NULL key is not 0)" \
    "SET segments.tenant = '1'; SELECT string_agg(k::text, ',' ORDER BY k) FROM segments.segment_members('VIP') k" 1
expect "nothing stored for contact 0 in tenant 1" \
    "SELECT count(*) FROM segments.member WHERE contact_id = 0 AND tenant = '1'" 0
expect "preview: tenant 1's contacts with a key" \
    "SET segments.tenant = '1'; SELECT member_count || '/' || contact_count || ' ' || sample_keys::text
       FROM segments.preview('{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}')" "1/2 {1}"
expect "verify: stored membership agrees" \
    "SELECT string_agg(missing || '/' || extra, ',') FROM segments.verify()" "0/0"
no_signal "bigint keys"

# text keys, and a segment on time (time windows query the source by key)
q "SELECT segments.configure(NULL)" >/dev/null
q "CREATE TABLE people (id text UNIQUE, plan text, seen timestamptz)"
q "INSERT INTO people SELECT 'p' || g, CASE WHEN g % 2 = 0 THEN 'vip' ELSE 'free' END,
     now() - g * interval '1 hour' FROM generate_series(1, 50) g"
q "GRANT INSERT ON people TO \"$WRITER\""
q "SELECT segments.configure('public.people', 'id')" >/dev/null
q "SELECT segments.create_segment('Recent', '{\"type\": \"attribute\", \"field\": \"seen\", \"op\": \"within_last\", \"value\": \"1 day\"}')" >/dev/null
expect "segments evaluated" "SELECT segments.wait('60 s')" t
as "$WRITER" "INSERT INTO people VALUES (NULL, 'vip', now()), (NULL, 'free', now() - interval '2 hours')" >/dev/null
expect "worker: changes applied" "SELECT segments.wait('60 s')" t
q "SELECT segments.refresh()" >/dev/null
note "ok: refresh() over NULL text keys"
# a new segment: the worker's pass over the source
q "SELECT segments.create_segment('VIP people', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}')" >/dev/null
expect "worker: a pass over NULL text keys" "SELECT segments.wait('60 s')" t
expect "membership: the contacts with a key" \
    "SELECT member_count FROM segments.segments WHERE name = 'VIP people'" 25
expect "time window: members" "SELECT member_count FROM segments.segments WHERE name = 'Recent'" 23
# time windows and sweeps run while time passes; give them a few rounds
sleep 3
expect "preview over NULL text keys" \
    "SELECT member_count || '/' || contact_count
       FROM segments.preview('{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}', 0)" "25/50"
expect "verify over NULL text keys" \
    "SELECT count(*) || ' ' || (bool_and(missing = 0 AND extra = 0))::int FROM segments.verify()" "3 1"
expect "explain of a contact with a key" \
    "SELECT (segments.explain('p2', 'VIP people')->>'agrees')" true
expect "the worker reports no error" "SELECT coalesce(last_error, '') FROM segments.worker" ""
no_signal "text keys"
all_passed

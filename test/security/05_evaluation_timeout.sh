#!/usr/bin/env bash
# Nothing a user does stalls others (README: Security model): a segment whose evaluation by
# the worker takes longer than segments.evaluation_timeout fails with that
# reason, and the worker goes on with other work (contact changes of other
# segments are applied).  refresh() is the caller's own statement (its
# statement_timeout applies) and evaluates the segment without the limit.
. "$(dirname "$0")/common.bash"


expect "default limit is 5 minutes" "SHOW segments.evaluation_timeout" 5min
q "CREATE TABLE contacts (id bigint PRIMARY KEY, plan text, email text)"
q "INSERT INTO contacts SELECT g, CASE WHEN g % 10 = 0 THEN 'vip' ELSE 'free' END,
     'user' || g || '@example.com' FROM generate_series(1, 200000) g"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
q "SELECT segments.create_segment('VIP', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}')" >/dev/null
expect "first segment evaluated without a limit problem" "SELECT segments.wait('120 s')" t
expect "first segment ready" "SELECT state FROM segments.status WHERE name = 'VIP'" ready

set_system segments.evaluation_timeout 20ms     # reset on exit
# the worker reloads its settings before its next round: a change awaited
q "UPDATE contacts SET plan = 'vip' WHERE id = 1"
expect "wait() after the reload" "SELECT segments.wait('60 s')" t

# 200,000 contacts through a regex take far longer than 20 ms
SLOW=$(q "SELECT segments.create_segment('Slow', '{\"type\": \"attribute\", \"field\": \"email\", \"op\": \"regex\", \"value\": \"^user[0-9]*7@(example|sample)[.]com$\"}')")
poll "the slow segment fails" "SELECT state FROM segments.status WHERE segment_id = '$SLOW'" failed 120
expect "last_error names the limit" "SELECT last_error FROM segments.status WHERE segment_id = '$SLOW'" \
    "evaluation took longer than segments.evaluation_timeout (20ms)"
expect "the failed segment holds no members" "SELECT count(*) FROM segments.segment_members('$SLOW')" 0

# the worker goes on: changes to other segments are applied
q "UPDATE contacts SET plan = 'vip' WHERE id = 2"
expect "wait() true with the slow segment failed" "SELECT segments.wait('60 s')" t
expect "a change after the timeout is applied" "SELECT segments.segment_is_member(2::bigint, 'VIP')" t
expect "the other segment stays ready" "SELECT state FROM segments.status WHERE name = 'VIP'" ready
grep -q "segments worker: evaluation took longer than segments.evaluation_timeout (20ms); the segment is failed" \
    "$SEGMENTS_TMP/server.log" || fail "the server log does not say why the segment failed"
note "ok: the server log says why the segment failed"

# refresh() is not limited by it
q "SELECT segments.refresh('$SLOW')" >/dev/null
expect "refresh() evaluates the slow segment" "SELECT state FROM segments.status WHERE segment_id = '$SLOW'" ready
expect "its members are right" "SELECT member_count FROM segments.status WHERE segment_id = '$SLOW'" \
    "$(q "SELECT count(*) FROM contacts WHERE email ~ '^user[0-9]*7@(example|sample)[.]com$'")"

# 0 turns the limit off
set_system segments.evaluation_timeout 0
q "UPDATE contacts SET plan = 'vip' WHERE id = 3"
expect "wait() after turning the limit off" "SELECT segments.wait('60 s')" t
q "SELECT segments.update_segment('$SLOW', definition => '{\"type\": \"attribute\", \"field\": \"email\", \"op\": \"regex\", \"value\": \"^user[0-9]*3@(example|sample)[.]com$\"}')" >/dev/null
poll "with the limit off the slow segment is evaluated" "SELECT state FROM segments.status WHERE segment_id = '$SLOW'" ready 120
# A pass of several segments may take as many limits as it has segments
# (evaluating them one by one could take as long): 40 segments changed
# together, whose pass takes about four limits, are all evaluated by that
# one pass (one evaluated_at), none failed.  First the pass's time with
# the limit off.
q "BEGIN; $(q "SELECT string_agg(format('SELECT segments.create_segment(%L, %L);', 'Rx' || i,
        json_build_object('type', 'attribute', 'field', 'email', 'op', 'regex',
                          'value', format('^user[0-9]*%s@(example|sample)[.]com$', lpad((i % 100)::text, 2, '0')))), ' ')
        FROM generate_series(0, 39) i") COMMIT;" >/dev/null
expect "the 40 evaluated with the limit off" "SELECT segments.wait('300 s')" t
P_MS=$(q "SELECT round(max(extract(epoch FROM last_duration)) * 1000) FROM segments.segment_state st JOIN segments.segment s ON s.id = st.segment_id WHERE s.name LIKE 'Rx%'")
T_MS=$(( P_MS / 4 > 3000 ? P_MS / 4 : 3000 ))
note "the pass of 40 took $P_MS ms; limit now $T_MS ms (40 limits: $((40 * T_MS)) ms)"
set_system segments.evaluation_timeout "${T_MS}ms"
q "UPDATE contacts SET plan = 'vip' WHERE id = 4"
expect "wait() after the reload" "SELECT segments.wait('60 s')" t
q "BEGIN; $(q "SELECT string_agg(format('SELECT segments.update_segment(%L, definition => %L);', 'Rx' || i,
        json_build_object('type', 'attribute', 'field', 'email', 'op', 'regex',
                          'value', format('^user[0-9]*%s@(sample|example)[.]com$', lpad(((i + 50) % 100)::text, 2, '0')))), ' ')
        FROM generate_series(0, 39) i") COMMIT;" >/dev/null
expect "the 40 evaluated again" "SELECT segments.wait('600 s')" t
expect "by one pass, none failed" \
       "SELECT count(DISTINCT st.evaluated_at) || ' ' || count(*) FILTER (WHERE st.state = 'ready')
          FROM segments.segment_state st JOIN segments.segment s ON s.id = st.segment_id WHERE s.name LIKE 'Rx%'" "1 40"
note "that pass took $(q "SELECT round(max(extract(epoch FROM last_duration)) * 1000) FROM segments.segment_state st JOIN segments.segment s ON s.id = st.segment_id WHERE s.name LIKE 'Rx%'") ms"
expect "their members are right" \
       "SELECT count(*) FROM segments.segment s
         WHERE s.name LIKE 'Rx%'
           AND (SELECT member_count FROM segments.status t WHERE t.segment_id = s.id)
               <> (SELECT count(*) FROM contacts c WHERE c.email ~ (s.definition->>'value'))" 0
set_system segments.evaluation_timeout 0
all_passed

#!/usr/bin/env bash
# Time: a contact leaves a segment defined with within_last "3 seconds"
# without any write (column rules: the worker looks up the contacts whose
# time came; trait rules: the worker re-evaluates the segment every
# segments.time_resolution); a contact enters and then leaves a within_next
# segment by itself.  Also: a scheduled segment is re-evaluated.
. "$(dirname "$0")/common.bash"

q "CREATE TABLE contacts (id integer PRIMARY KEY, seen_at timestamptz, due_on timestamp, data jsonb)"
q "INSERT INTO contacts SELECT g, now() - interval '1 day', NULL, '{}' FROM generate_series(1, 100) g"
q "SELECT segments.configure('contacts', 'id', traits_column => 'data')" >/dev/null
q "SELECT segments.create_segment('Recent', '{\"type\": \"attribute\", \"field\": \"seen_at\", \"op\": \"within_last\", \"value\": \"3 seconds\"}')" >/dev/null
expect "wait() after create_segment" "SELECT segments.wait('30 s')" t
expect "nobody recent yet" "SELECT member_count FROM segments.segments WHERE name = 'Recent'" 0

q "UPDATE contacts SET seen_at = now() WHERE id = 42"
expect "wait() after the visit" "SELECT segments.wait('30 s')" t
expect "the visitor is recent" "SELECT segments.segment_is_member(42, 'Recent')" t
seq=$(q "SELECT last_value FROM segments.change_queue_id_seq")
entered=$(q "SELECT extract(epoch FROM clock_timestamp())")

# no write from here on: the contact must leave by itself
poll "the visitor left the segment with no write" \
     "SELECT segments.segment_is_member(42, 'Recent')" f 20
left=$(q "SELECT extract(epoch FROM clock_timestamp())")
expect "nothing was queued meanwhile" "SELECT last_value FROM segments.change_queue_id_seq" "$seq"
note "left $(awk "BEGIN {printf \"%.1f\", $left - $entered}") s after the check that saw it in (rule: 3 s)"
expect "status still ready" "SELECT status FROM segments.segments WHERE name = 'Recent'" ready

# the same rule on a trait (read as a timestamp): whole re-evaluations
q "SELECT segments.create_segment('Recent trait', '{\"type\": \"trait\", \"key\": \"seen\", \"op\": \"within_last\", \"value\": \"6 seconds\"}')" >/dev/null
q "UPDATE contacts SET data = jsonb_build_object('seen', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')) WHERE id = 43"
expect "wait() after the trait visit" "SELECT segments.wait('30 s')" t
expect "the trait visitor is recent" "SELECT segments.segment_is_member(43, 'Recent trait')" t
poll "the trait visitor left with no write" \
     "SELECT segments.segment_is_member(43, 'Recent trait')" f 20

# within_next on a timestamp (UTC) column: in 2 s before the time, out after it
q "SELECT segments.create_segment('Due soon', '{\"type\": \"attribute\", \"field\": \"due_on\", \"op\": \"within_next\", \"value\": \"2 seconds\"}')" >/dev/null
q "UPDATE contacts SET due_on = (now() AT TIME ZONE 'UTC') + interval '8 seconds' WHERE id = 7"
expect "wait() after setting the due time" "SELECT segments.wait('30 s')" t
expect "not due yet" "SELECT segments.segment_is_member(7, 'Due soon')" f
poll "due soon: entered by itself" "SELECT segments.segment_is_member(7, 'Due soon')" t 20
poll "past due: left by itself" "SELECT segments.segment_is_member(7, 'Due soon')" f 20
expect "still nothing queued by time alone" "SELECT count(*) FROM segments.change_queue" 0

# schedule: evaluated_at moves on by itself
q "SELECT segments.create_segment('All', '{\"and\": []}')" >/dev/null
expect "wait() for All" "SELECT segments.wait('30 s')" t
first=$(q "SELECT evaluated_at FROM segments.status WHERE name = 'All'")
q "SELECT segments.schedule((SELECT id FROM segments.segments WHERE name = 'All'), '1 second')" >/dev/null
poll "scheduled segment re-evaluated" \
     "SELECT evaluated_at > '$first' FROM segments.status WHERE name = 'All'" t 20
all_passed

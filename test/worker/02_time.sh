#!/usr/bin/env bash
# Time: a contact leaves a segment defined with within_last "3 seconds"
# without any write, because the worker re-evaluates such segments every
# segments.time_resolution.  Also: a scheduled segment is re-evaluated.
. "$(dirname "$0")/common.bash"

q "CREATE TABLE contacts (id integer PRIMARY KEY, seen_at timestamptz)"
q "INSERT INTO contacts SELECT g, now() - interval '1 day' FROM generate_series(1, 100) g"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
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

# schedule: evaluated_at moves on by itself
q "SELECT segments.create_segment('All', '{\"and\": []}')" >/dev/null
expect "wait() for All" "SELECT segments.wait('30 s')" t
first=$(q "SELECT evaluated_at FROM segments.status WHERE name = 'All'")
q "SELECT segments.schedule((SELECT id FROM segments.segments WHERE name = 'All'), '1 second')" >/dev/null
poll "scheduled segment re-evaluated" \
     "SELECT evaluated_at > '$first' FROM segments.status WHERE name = 'All'" t 20
note "all passed"

#!/usr/bin/env bash
# Time with a uuid key: the time window and the sweep walk the source in
# key order with a by-reference cursor.  A contact leaves a within_last
# segment on a column (window) and on a trait (sweep) with no write, and
# the others stay as they were.
. "$(dirname "$0")/common.bash"

q "CREATE TABLE contacts (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), seen_at timestamptz, data jsonb)"
q "INSERT INTO contacts (seen_at, data) SELECT now() - interval '1 day', '{}' FROM generate_series(1, 300)"
q "SELECT segments.configure('contacts', 'id', traits_column => 'data')" >/dev/null
q "SELECT segments.create_segment('Recent', '{\"type\": \"attribute\", \"field\": \"seen_at\", \"op\": \"within_last\", \"value\": \"4 seconds\"}')" >/dev/null
q "SELECT segments.create_segment('Recent trait', '{\"type\": \"trait\", \"key\": \"seen\", \"op\": \"within_last\", \"value\": \"6 seconds\"}')" >/dev/null
q "SELECT segments.create_segment('Old', '{\"type\": \"attribute\", \"field\": \"seen_at\", \"op\": \"not_within_last\", \"value\": \"1 hour\"}')" >/dev/null
expect "wait() after create_segment" "SELECT segments.wait('30 s')" t
who=$(q "SELECT id FROM contacts ORDER BY id OFFSET 150 LIMIT 1")
q "UPDATE contacts SET seen_at = now(),
     data = jsonb_build_object('seen', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))
   WHERE id = '$who'"
expect "wait() after the visit" "SELECT segments.wait('30 s')" t
expect "recent by column" "SELECT segments.segment_is_member('$who', 'Recent')" t
expect "recent by trait" "SELECT segments.segment_is_member('$who', 'Recent trait')" t
expect "not old any more" "SELECT segments.segment_is_member('$who', 'Old')" f
poll "left the column segment with no write" "SELECT segments.segment_is_member('$who', 'Recent')" f 30
poll "left the trait segment with no write" "SELECT segments.segment_is_member('$who', 'Recent trait')" f 30
expect "the others are all old" "SELECT member_count FROM segments.segments WHERE name = 'Old'" 299
expect "nobody else recent" "SELECT member_count FROM segments.segments WHERE name = 'Recent'" 0
expect "worker saw no error" "SELECT coalesce(last_error, '') FROM segments.worker" ""
all_passed

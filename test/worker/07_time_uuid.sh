#!/usr/bin/env bash
# Time with a uuid key: the time window and the sweep walk the source in
# key order with a by-reference cursor.  A contact leaves a within_last
# segment on a column (window) and on a trait (sweep) with no write, and
# the others stay as they were.  Times are checked against the server's
# clock with 20-s stays (timeline in common.bash): load only delays.
. "$(dirname "$0")/common.bash"

qa "CREATE TABLE contacts (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), seen_at timestamptz, data jsonb)"
qa "INSERT INTO contacts (seen_at, data) SELECT now() - interval '1 day', '{}' FROM generate_series(1, 300)"
q "SELECT segments.configure('contacts', 'id', traits_column => 'data')" >/dev/null
q "SELECT segments.create_segment('Recent', '{\"type\": \"attribute\", \"field\": \"seen_at\", \"op\": \"within_last\", \"value\": \"20 seconds\"}')" >/dev/null
q "SELECT segments.create_segment('Recent trait', '{\"type\": \"trait\", \"key\": \"seen\", \"op\": \"within_last\", \"value\": \"20 seconds\"}')" >/dev/null
q "SELECT segments.create_segment('Old', '{\"type\": \"attribute\", \"field\": \"seen_at\", \"op\": \"not_within_last\", \"value\": \"1 hour\"}')" >/dev/null
expect "wait() after create_segment" "SELECT segments.wait('60 s')" t
who=$(q "SELECT id FROM contacts ORDER BY id OFFSET 150 LIMIT 1")
now=$(psql -X -qAt -v ON_ERROR_STOP=1 -c "BEGIN" \
      -c "UPDATE contacts SET seen_at = now(),
            data = jsonb_build_object('seen', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))
          WHERE id = '$who'" \
      -c "SELECT extract(epoch FROM now())" -c "COMMIT") || fail "the visit failed"
expect "wait() after the visit" "SELECT segments.wait('60 s')" t
expect "not old any more" "SELECT segments.segment_is_member('$who', 'Old')" f
left=$(awk "BEGIN {printf \"%.6f\", $now + 20}")
timeline "visitor in Recent (column, window)|Recent|'$who'||$left" \
         "visitor in Recent trait (trait, sweep)|Recent trait|'$who'||$left"
expect "the others are all old" "SELECT member_count FROM segments.segments WHERE name = 'Old'" 299
expect "nobody else recent" "SELECT member_count FROM segments.segments WHERE name = 'Recent'" 0
expect "worker saw no error" "SELECT coalesce(last_error, '') FROM segments.worker" ""
all_passed

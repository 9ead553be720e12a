#!/usr/bin/env bash
# Time with a uuid key: the time window and the sweep walk the source in
# key order with a by-reference cursor.  A contact leaves a within_last
# segment on a column (window) and on a trait (sweep) with no write, and
# the others stay as they were.  A window and a sweep evaluate only the
# time-dependent segments and those that reference them: a segment built
# on the column's segment leaves with it (window); for a second visitor,
# whose trait alone says so (no window finds it), two segments built on
# the trait segment (directly, and through one between) leave with it.  Times are checked
# against the server's clock with 20-s stays (timeline in common.bash):
# load only delays.
. "$(dirname "$0")/common.bash"

qa "CREATE TABLE contacts (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), seen_at timestamptz, data jsonb)"
qa "INSERT INTO contacts (seen_at, data) SELECT now() - interval '1 day', '{}' FROM generate_series(1, 300)"
q "SELECT segments.configure('contacts', 'id', traits_column => 'data')" >/dev/null
q "SELECT segments.create_segment('Recent', '{\"type\": \"attribute\", \"field\": \"seen_at\", \"op\": \"within_last\", \"value\": \"20 seconds\"}')" >/dev/null
q "SELECT segments.create_segment('Recent trait', '{\"type\": \"trait\", \"key\": \"seen\", \"op\": \"within_last\", \"value\": \"20 seconds\"}')" >/dev/null
q "SELECT segments.create_segment('Seen column, reference', '{\"type\": \"segment\", \"op\": \"in\", \"value\": \"Recent\"}')" >/dev/null
q "SELECT segments.create_segment('Seen trait, reference', '{\"type\": \"segment\", \"op\": \"in\", \"value\": \"Recent trait\"}')" >/dev/null
q "SELECT segments.create_segment('Seen trait, two steps', '{\"and\": [{\"type\": \"segment\", \"op\": \"in\", \"value\": \"Seen trait, reference\"}, {\"type\": \"attribute\", \"field\": \"seen_at\", \"op\": \"is_set\"}]}')" >/dev/null
q "SELECT segments.create_segment('Old', '{\"type\": \"attribute\", \"field\": \"seen_at\", \"op\": \"not_within_last\", \"value\": \"1 hour\"}')" >/dev/null
expect "wait() after create_segment" "SELECT segments.wait('60 s')" t
who=$(q "SELECT id FROM contacts ORDER BY id OFFSET 150 LIMIT 1")
now=$(psql -X -qAt -v ON_ERROR_STOP=1 -c "BEGIN" \
      -c "UPDATE contacts SET seen_at = now(),
            data = jsonb_build_object('seen', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))
          WHERE id = '$who'" \
      -c "SELECT extract(epoch FROM now())" -c "COMMIT") || fail "the visit failed"
who2=$(q "SELECT id FROM contacts ORDER BY id OFFSET 200 LIMIT 1")
now2=$(psql -X -qAt -v ON_ERROR_STOP=1 -c "BEGIN" \
      -c "UPDATE contacts
            SET data = jsonb_build_object('seen', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))
          WHERE id = '$who2'" \
      -c "SELECT extract(epoch FROM now())" -c "COMMIT") || fail "the second visit failed"
expect "wait() after the visits" "SELECT segments.wait('60 s')" t
expect "not old any more" "SELECT segments.segment_is_member('$who', 'Old')" f
left=$(awk "BEGIN {printf \"%.6f\", $now + 20}")
left2=$(awk "BEGIN {printf \"%.6f\", $now2 + 20}")
timeline "visitor in Recent (column, window)|Recent|'$who'||$left" \
         "visitor in a segment referencing Recent (window)|Seen column, reference|'$who'||$left" \
         "visitor in Recent trait (trait, sweep)|Recent trait|'$who'||$left" \
         "trait visitor in Recent trait (sweep)|Recent trait|'$who2'||$left2" \
         "trait visitor in a segment referencing it (sweep)|Seen trait, reference|'$who2'||$left2" \
         "trait visitor in one referencing that (sweep)|Seen trait, two steps|'$who2'||$left2"
expect "the others are all old" "SELECT member_count FROM segments.segments WHERE name = 'Old'" 299
expect "nobody else recent" "SELECT member_count FROM segments.segments WHERE name = 'Recent'" 0
expect "nobody in the referencing segments" \
       "SELECT sum(member_count) FROM segments.segments WHERE name LIKE 'Seen %'" 0
expect "the sweep ran" "SELECT sweeps > 0 FROM segments.stat_worker" t
expect "worker saw no error" "SELECT coalesce(last_error, '') FROM segments.worker" ""
all_passed

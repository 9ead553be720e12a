#!/usr/bin/env bash
# Time: contacts enter and leave time-dependent segments with no write.
# within_last on a column (the worker looks up the contacts whose time came)
# and on a trait (the worker re-evaluates the segment every
# segments.time_resolution); within_next on a timestamp column, entered and
# then left.  Also: a scheduled segment is re-evaluated, not before its time.
# Every time is checked against the server's clock (timeline in
# common.bash): membership may lag behind the rule on a loaded machine, but
# never run ahead of it, and the stays are 20 s long, so that a slow
# machine only delays the checks.
. "$(dirname "$0")/common.bash"

qa "CREATE TABLE contacts (id integer PRIMARY KEY, seen_at timestamptz, due_on timestamp, data jsonb)"
qa "INSERT INTO contacts SELECT g, now() - interval '1 day', NULL, '{}' FROM generate_series(1, 100) g"
q "SELECT segments.configure('contacts', 'id', traits_column => 'data')" >/dev/null
q "SELECT segments.create_segment('Recent', '{\"type\": \"attribute\", \"field\": \"seen_at\", \"op\": \"within_last\", \"value\": \"20 seconds\"}')" >/dev/null
q "SELECT segments.create_segment('Recent trait', '{\"type\": \"trait\", \"key\": \"seen\", \"op\": \"within_last\", \"value\": \"20 seconds\"}')" >/dev/null
q "SELECT segments.create_segment('Due soon', '{\"type\": \"attribute\", \"field\": \"due_on\", \"op\": \"within_next\", \"value\": \"20 seconds\"}')" >/dev/null
expect "wait() after create_segment" "SELECT segments.wait('60 s')" t
expect "nobody recent or due yet" \
       "SELECT string_agg(name || ' ' || member_count, ', ' ORDER BY name) FROM segments.segments" \
       "Due soon 0, Recent 0, Recent trait 0"

# One transaction, one now(): contact 42 is seen (column), 43 is seen
# (trait, read as a timestamp), 7 is due 40 s from now (a UTC timestamp).
now=$(psql -X -qAt -v ON_ERROR_STOP=1 -c "BEGIN" \
      -c "UPDATE contacts SET seen_at = now() WHERE id = 42" \
      -c "UPDATE contacts SET data = jsonb_build_object('seen', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')) WHERE id = 43" \
      -c "UPDATE contacts SET due_on = (now() AT TIME ZONE 'UTC') + interval '40 seconds' WHERE id = 7" \
      -c "SELECT extract(epoch FROM now())" -c "COMMIT") || fail "the writes failed"
expect "wait() after the writes" "SELECT segments.wait('60 s')" t
seq=$(q "SELECT last_value FROM segments.change_queue_id_seq")
left=$(awk "BEGIN {printf \"%.6f\", $now + 20}")
due=$(awk "BEGIN {printf \"%.6f\", $now + 40}")
timeline "seen contact in Recent|Recent|42||$left" \
         "seen contact in Recent trait|Recent trait|43||$left" \
         "due contact in Due soon|Due soon|7|$left|$due"
expect "nothing was queued by time alone" "SELECT last_value FROM segments.change_queue_id_seq" "$seq"
expect "statuses still ready" \
       "SELECT string_agg(DISTINCT status, ',') FROM segments.segments" ready
expect "nobody else entered" \
       "SELECT string_agg(name || ' ' || member_count, ', ' ORDER BY name) FROM segments.segments" \
       "Due soon 0, Recent 0, Recent trait 0"

# schedule (10 s, the shortest allowed): evaluated_at moves on by itself,
# not before the schedule says (less segments.time_resolution: the worker
# takes segments due within it together)
q "SELECT segments.create_segment('All', '{\"and\": []}')" >/dev/null
expect "wait() for All" "SELECT segments.wait('60 s')" t
first=$(q "SELECT evaluated_at FROM segments.status WHERE name = 'All'")
q "SELECT segments.schedule((SELECT id FROM segments.segments WHERE name = 'All'), '10 seconds')" >/dev/null
poll "scheduled segment re-evaluated" \
     "SELECT evaluated_at > '$first' FROM segments.status WHERE name = 'All'" t 90
expect "not before its schedule" \
       "SELECT evaluated_at >= '$first'::timestamptz + interval '10 seconds' - current_setting('segments.time_resolution')::interval
          FROM segments.status WHERE name = 'All'" t
all_passed

#!/usr/bin/env bash
# Time windows alone: within_last and within_next on timestamptz columns,
# with no trait or text time rule in the database, so no sweep re-reads
# every contact and hides a window that looks in the wrong place.  The
# worker must find the contacts whose time came by the window's lookup:
# contact 42 leaves "Recent" 20 s after it was seen; contact 7 enters "Due
# soon" 20 s before its time and leaves when it passes.  Timing as in
# 02_time.sh (timeline in common.bash: late is tolerated, early is not).
. "$(dirname "$0")/common.bash"

qa "CREATE TABLE contacts (id bigint PRIMARY KEY, seen_at timestamptz, due_at timestamptz)"
qa "CREATE INDEX ON contacts (seen_at)"
qa "INSERT INTO contacts SELECT g, now() - interval '1 day', now() + interval '1 day' FROM generate_series(1, 1000) g"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
q "SELECT segments.create_segment('Recent', '{\"type\": \"attribute\", \"field\": \"seen_at\", \"op\": \"within_last\", \"value\": \"20 seconds\"}')" >/dev/null
q "SELECT segments.create_segment('Due soon', '{\"type\": \"attribute\", \"field\": \"due_at\", \"op\": \"within_next\", \"value\": \"20 seconds\"}')" >/dev/null
expect "wait() after create_segment" "SELECT segments.wait('60 s')" t
expect "nobody recent or due yet" \
       "SELECT string_agg(name || ' ' || member_count, ', ' ORDER BY name) FROM segments.segments" \
       "Due soon 0, Recent 0"
q "SELECT segments.stat_reset()" >/dev/null

now=$(psql -X -qAt -v ON_ERROR_STOP=1 -c "BEGIN" \
      -c "UPDATE contacts SET seen_at = now() WHERE id = 42" \
      -c "UPDATE contacts SET due_at = now() + interval '40 seconds' WHERE id = 7" \
      -c "SELECT extract(epoch FROM now())" -c "COMMIT") || fail "the writes failed"
expect "wait() after the writes" "SELECT segments.wait('60 s')" t
seq=$(q "SELECT last_value FROM segments.change_queue_id_seq")
left=$(awk "BEGIN {printf \"%.6f\", $now + 20}")
due=$(awk "BEGIN {printf \"%.6f\", $now + 40}")
timeline "seen contact in Recent|Recent|42||$left" \
         "due contact in Due soon|Due soon|7|$left|$due"
expect "nothing was queued by time alone" "SELECT last_value FROM segments.change_queue_id_seq" "$seq"
expect "served by time windows, no sweep" \
       "SELECT time_windows > 0 AND sweeps = 0 FROM segments.stat_worker" t
expect "nobody else entered" \
       "SELECT string_agg(name || ' ' || member_count, ', ' ORDER BY name) FROM segments.segments" \
       "Due soon 0, Recent 0"
expect "stored membership agrees with a fresh evaluation" \
       "SELECT count(*) FROM segments.verify() WHERE missing > 0 OR extra > 0" 0
all_passed

#!/usr/bin/env bash
# Time and reliability (issue 9, items 5 and 6): a refresh() in a transaction
# that began before contacts left a within_last segment evaluates them at
# its start (now() of the transaction) and writes them back in; the worker's
# time windows then cover that instant again and take them out.  A window
# that waited for a lock on membership does not count the wait as work:
# the next window comes after time_resolution, not ten times the wait.
. "$(dirname "$0")/../worker/common.bash"

q "CREATE TABLE contacts (id bigint PRIMARY KEY, seen_at timestamptz)"
q "CREATE INDEX ON contacts (seen_at)"
q "INSERT INTO contacts SELECT g, now() - interval '1 day' FROM generate_series(1, 100) g"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
q "SELECT segments.create_segment('Recent', '{\"type\": \"attribute\", \"field\": \"seen_at\", \"op\": \"within_last\", \"value\": \"4 seconds\"}')" >/dev/null
expect "wait() after create_segment" "SELECT segments.wait('30 s')" t

# 1. refresh() in an older transaction
q "UPDATE contacts SET seen_at = now() WHERE id IN (1, 2, 3)"
expect "wait(): three recent contacts" "SELECT segments.wait('30 s') AND (SELECT member_count FROM segments.status) = 3" t
got=$(psql -X -qAt -v ON_ERROR_STOP=1 -c "BEGIN" -c "SELECT pg_sleep(6)" -c "SELECT segments.refresh()" \
          -c "SELECT count(*) FROM segments.segment_members('Recent')" -c "COMMIT" | tr -d '\n')
[ "$got" = 3 ] || fail "refresh() at the transaction's start should have put the 3 contacts back in, got '$got'"
note "ok: refresh() in a 6 s old transaction wrote them back (evaluated at its start)"
poll "the worker's windows take them out again" \
     "SELECT count(*) FROM segments.segment_members('Recent')" 0 15
expect "verify() finds nothing" "SELECT sum(missing + extra) FROM segments.verify()" 0

# 2. a window that waits 8 s for the membership lock; contact 10 leaves
#    "Recent 9" 9 s after it was seen, after that window began
q "SELECT segments.create_segment('Recent 9', '{\"type\": \"attribute\", \"field\": \"seen_at\", \"op\": \"within_last\", \"value\": \"9 seconds\"}')" >/dev/null
expect "wait() after the second segment" "SELECT segments.wait('30 s')" t
FIFO="$PGHOST/lock_$$"; mkfifo "$FIFO"
psql -X -q <"$FIFO" >/dev/null 2>&1 & LOCKER=$!
exec 7>"$FIFO"
q "UPDATE contacts SET seen_at = now() WHERE id = 10"
expect "wait(): contact 10 recent" "SELECT segments.wait('30 s') AND segments.segment_is_member(10::bigint, 'Recent 9')" t
echo "BEGIN; LOCK TABLE segments.member IN EXCLUSIVE MODE; SELECT pg_sleep(8); COMMIT;" >&7
exec 7>&-
poll "a time window waits for the lock" \
     "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'segments worker' AND wait_event_type = 'Lock'" 1 10
wait "$LOCKER" || true; rm -f "$FIFO"
released=$SECONDS
# the next window comes time_resolution (2 s) after the blocked one, not
# ten times its wait later
poll "contact 10 leaves within seconds of its moment" \
     "SELECT segments.segment_is_member(10::bigint, 'Recent 9')" f 12
note "left $((SECONDS - released)) s after the release"
all_passed

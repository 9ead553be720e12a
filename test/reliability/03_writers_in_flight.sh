#!/usr/bin/env bash
# The worker's side of issue 9 item 3: a transaction that updated a column
# no rule read, still open when create_segment on that column commits,
# holds the new segment's first evaluation back (pending; wait() false)
# while the worker keeps applying other changes; once it commits, the
# segment is evaluated with its rows.
. "$(dirname "$0")/../worker/common.bash"

q "CREATE TABLE contacts (id bigint PRIMARY KEY, plan text, seats int)"
q "INSERT INTO contacts SELECT g, CASE WHEN g % 10 = 0 THEN 'vip' ELSE 'free' END, 1
     FROM generate_series(1, 1000) g"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
q "SELECT segments.create_segment('VIP', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}')" >/dev/null
expect "wait() after the first segment" "SELECT segments.wait('30 s')" t

FIFO="$PGHOST/writer_$$"; mkfifo "$FIFO"
psql -X -q <"$FIFO" >/dev/null 2>&1 & WRITER=$!
exec 7>"$FIFO"
echo "BEGIN; UPDATE contacts SET seats = 9 WHERE id IN (1, 2, 3); SELECT 1;" >&7
poll "the writer holds its lock on the source" \
     "SELECT count(*) FROM pg_locks l WHERE l.relation = 'contacts'::regclass AND l.mode = 'RowExclusiveLock' AND l.granted" 1 10
expect "nothing queued: seats is read by no rule yet" "SELECT count(*) FROM segments.change_queue" 0
q "SELECT segments.create_segment('Seats', '{\"type\": \"attribute\", \"field\": \"seats\", \"op\": \"gte\", \"value\": 5}')" >/dev/null
expect "wait() is false while the writer is open" "SELECT segments.wait('2 s')" f
expect "the new segment is still pending" "SELECT status FROM segments.segments WHERE name = 'Seats'" pending
q "UPDATE contacts SET plan = 'vip' WHERE id = 5"
poll "other changes are applied meanwhile" "SELECT segments.segment_is_member(5::bigint, 'VIP')" t 20
echo "COMMIT;" >&7; exec 7>&-; wait "$WRITER" || true; rm -f "$FIFO"
expect "wait() once the writer committed" "SELECT segments.wait('30 s')" t
expect "the writer's rows are members" \
       "SELECT string_agg(m::text, ',' ORDER BY m) FROM segments.segment_members('Seats') m" "1,2,3"
expect "verify() finds nothing" "SELECT sum(missing + extra) FROM segments.verify()" 0
all_passed

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

# A session that changed a segment and left its transaction open (any
# tenant's) holds back no other segment's first evaluation by the worker:
# only what it wrote waits, and is evaluated once it commits.
FIFO="$PGHOST/catalog_writer_$$"; mkfifo "$FIFO"
psql -X -q <"$FIFO" >/dev/null 2>&1 & CATALOG_WRITER=$!
exec 7>"$FIFO"
echo "BEGIN; SELECT segments.create_segment('Held', '{\"type\": \"attribute\", \"field\": \"seats\", \"op\": \"eq\", \"value\": 1}');
      SELECT segments.update_segment('VIP', description => 'changed, not committed'); SELECT 1;" >&7
poll "the open transaction holds its lock on the segment catalog" \
     "SELECT count(*) FROM pg_locks l WHERE l.relation = 'segments.segment'::regclass AND l.mode = 'RowExclusiveLock' AND l.granted" 1 10
q "SELECT segments.create_segment('Free', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"free\"}')" >/dev/null
poll "a segment created meanwhile is evaluated while that transaction is open" \
     "SELECT status FROM segments.segments WHERE name = 'Free'" ready 30
expect "its members" "SELECT count(*) FROM segments.segment_members('Free')" 899
q "UPDATE contacts SET plan = 'free' WHERE id = 10"
poll "contact changes are applied meanwhile" "SELECT segments.segment_is_member(10::bigint, 'Free')" t 20
expect "wait() is true: the open transaction's segment is not visible" "SELECT segments.wait('30 s')" t
echo "COMMIT;" >&7; exec 7>&-; wait "$CATALOG_WRITER" || true; rm -f "$FIFO"
expect "wait() once it committed" "SELECT segments.wait('30 s')" t
expect "its segment is evaluated after the commit" "SELECT status FROM segments.segments WHERE name = 'Held'" ready
expect "with its members" "SELECT count(*) FROM segments.segment_members('Held')" 997
expect "verify() finds nothing after both" "SELECT sum(missing + extra) FROM segments.verify()" 0

# A pending segment that an open transaction changes again is left pending
# when the worker's wait ends, not waited for: the worker goes on with
# contact changes, and evaluates the new definition once that commits.
WFIFO="$PGHOST/source_writer_$$"; mkfifo "$WFIFO"
psql -X -q <"$WFIFO" >/dev/null 2>&1 & SOURCE_WRITER=$!
exec 8>"$WFIFO"
echo "BEGIN; UPDATE contacts SET seats = seats WHERE id = 4; SELECT 1;" >&8
poll "a writer holds its lock on the source" \
     "SELECT count(*) FROM pg_locks l WHERE l.relation = 'contacts'::regclass AND l.mode = 'RowExclusiveLock' AND l.granted" 1 10
q "SELECT segments.create_segment('Later', '{\"type\": \"attribute\", \"field\": \"seats\", \"op\": \"gte\", \"value\": 5}')" >/dev/null
expect "the new segment waits for the source's writer" "SELECT status FROM segments.segments WHERE name = 'Later'" pending
FIFO="$PGHOST/catalog_writer_$$"; mkfifo "$FIFO"
# (8>&-: the source writer's psql must see its fifo close)
psql -X -q <"$FIFO" >/dev/null 2>&1 8>&- & CATALOG_WRITER=$!
exec 7>"$FIFO"
echo "BEGIN; SELECT segments.update_segment('Later', definition => '{\"type\": \"attribute\", \"field\": \"seats\", \"op\": \"gte\", \"value\": 9}'); SELECT 1;" >&7
poll "an open transaction changed it again" \
     "SELECT count(*) FROM pg_locks l WHERE l.relation = 'segments.segment'::regclass AND l.mode = 'RowExclusiveLock' AND l.granted" 1 10
echo "COMMIT;" >&8; exec 8>&-; wait "$SOURCE_WRITER" || true; rm -f "$WFIFO"
q "UPDATE contacts SET plan = 'free' WHERE id = 20"
poll "contact changes are applied while the changed segment's row is locked" \
     "SELECT segments.segment_is_member(20::bigint, 'Free')" t 20
expect "that segment is still pending" "SELECT status FROM segments.segments WHERE name = 'Later'" pending
echo "COMMIT;" >&7; exec 7>&-; wait "$CATALOG_WRITER" || true; rm -f "$FIFO"
expect "wait() once the change committed" "SELECT segments.wait('30 s')" t
expect "it is evaluated with its new definition" \
       "SELECT string_agg(m::text, ',' ORDER BY m) FROM segments.segment_members('Later') m" "1,2,3"
expect "verify() finds nothing at the end" "SELECT sum(missing + extra) FROM segments.verify()" 0

# Contacts changed while an open transaction redefines a segment are
# evaluated with the committed definition; once it commits, the segment's
# new evaluation leaves no contact as the old definition had it.  VIP
# ready: the batch waits for the open transaction (it locked VIP's state
# row, whose member count the batch updates), so its writes commit after
# the new definition did.  VIP pending with another definition: the batch
# is applied meanwhile if it does not write VIP, or waits as above if the
# worker took VIP's pending request into a pass before the open
# transaction locked its row (either is right).  (Checked because 09_soak
# failed once with the worker's wait above; this part passed before the
# fix of a pass resumed after a crash, the likely cause: 09_chunked_pass.)
q "UPDATE contacts SET plan = (ARRAY['free', 'pro', 'vip'])[1 + id % 3]"
expect "wait() before the redefinitions" "SELECT segments.wait('30 s')" t
for round in ready pending; do
    if [ $round = pending ]; then
        q "SELECT segments.update_segment('VIP', definition => '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"free\"}')" >/dev/null
        new=vip
    else
        new=pro
    fi
    FIFO="$PGHOST/catalog_writer_$$"; mkfifo "$FIFO"
    psql -X -q <"$FIFO" >/dev/null 2>&1 & CATALOG_WRITER=$!
    exec 7>"$FIFO"
    echo "BEGIN; SELECT segments.update_segment('VIP', definition => '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"$new\"}'); SELECT 1;" >&7
    poll "($round) an open transaction redefines VIP" \
         "SELECT count(*) FROM pg_locks l WHERE l.relation = 'segments.segment'::regclass AND l.mode = 'RowExclusiveLock' AND l.granted" 1 10
    for i in 1 2 3 4 5 6 7 8 9 10; do
        q "UPDATE contacts SET plan = (ARRAY['free', 'pro', 'vip'])[1 + (id + $i) % 3] WHERE id % 25 = $i"
    done
    q "UPDATE contacts SET plan = 'pro' WHERE id BETWEEN 600 AND 700"
    if [ $round = ready ]; then
        poll "($round) the batch of those changes waits for the open transaction" \
             "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'segments worker'
                 AND datname = current_database() AND wait_event_type = 'Lock'" 1 20
    else
        poll "($round) those changes are applied while it is open, or their batch waits for it" \
             "SELECT pending_changes = 0 OR EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'segments worker'
                 AND datname = current_database() AND wait_event_type = 'Lock') FROM segments.worker" t 20
    fi
    echo "COMMIT;" >&7; exec 7>&-; wait "$CATALOG_WRITER" || true; rm -f "$FIFO"
    q "UPDATE contacts SET plan = 'vip' WHERE id BETWEEN 650 AND 660"
    expect "($round) wait() once it committed" "SELECT segments.wait('30 s')" t
    expect "($round) VIP has the members of its new definition" \
           "SELECT count(*) FROM segments.segment_members('VIP')" "$(q "SELECT count(*) FROM contacts WHERE plan = '$new'")"
    expect "($round) verify() finds nothing" "SELECT sum(missing + extra) FROM segments.verify()" 0
done
all_passed

#!/usr/bin/env bash
# Change capture end to end: committed INSERT, UPDATE (to and from NULL, of
# the key, of the tenant and traits columns), DELETE, TRUNCATE and COPY on the source are
# reflected after segments.wait(); a rolled-back change and an UPDATE of a
# column no rule reads queue nothing; a new or changed segment is evaluated
# by the worker; an index a DBA adds to segments.change_queue gets every
# queued entry, a DELETE trigger added to it sees every entry taken, and an
# entry queued after others with a smaller id is taken, also while a backlog
# keeps every batch full.
. "$(dirname "$0")/common.bash"

qa "CREATE TABLE contacts (id bigint PRIMARY KEY, plan text, note text, seen_at timestamptz)"
qa "INSERT INTO contacts SELECT g, CASE WHEN g % 10 = 0 THEN 'vip' ELSE 'free' END, 'n', now()
     FROM generate_series(1, 2000) g"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
VIP="SELECT id FROM contacts WHERE plan = 'vip'"

# a new segment is evaluated in the background
q "SELECT segments.create_segment('VIP', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}')" >/dev/null
expect "worker is serving the database" "SELECT state <> 'not running' FROM segments.worker" t
expect "wait() after create_segment" "SELECT segments.wait('60 s')" t
expect "new segment ready" "SELECT status FROM segments.segments WHERE name = 'VIP'" ready
expect "new segment evaluated exactly" "SELECT 200 = member_count FROM segments.segments WHERE name = 'VIP'" t
expect "new segment members" "SELECT '$(mismatches VIP "$VIP")'" 0

# INSERT, UPDATE, DELETE
qa "INSERT INTO contacts VALUES (5001, 'vip', 'n', now()), (5002, 'free', 'n', now())"
qa "UPDATE contacts SET plan = 'vip' WHERE id IN (1, 2, 3)"
qa "UPDATE contacts SET plan = 'free' WHERE id IN (10, 20)"
qa "DELETE FROM contacts WHERE id IN (30, 40, 5002)"
expect "wait() after writes" "SELECT segments.wait('60 s')" t
[ "$(mismatches VIP "$VIP")" = 0 ] || fail "membership differs after INSERT/UPDATE/DELETE"
expect "inserted contact in" "SELECT segments.segment_is_member(5001::bigint, 'VIP')" t
expect "updated contact in" "SELECT segments.segment_is_member(2::bigint, 'VIP')" t
expect "updated contact out" "SELECT segments.segment_is_member(10::bigint, 'VIP')" f
expect "deleted contact out" "SELECT segments.segment_is_member(30::bigint, 'VIP')" f
expect "member_count follows" "SELECT member_count = (SELECT count(*) FROM contacts WHERE plan = 'vip') FROM segments.segments WHERE name = 'VIP'" t

# a key change: the old key leaves, the new one enters
qa "UPDATE contacts SET id = 6000 WHERE id = 50"
expect "wait() after key change" "SELECT segments.wait('60 s')" t
expect "old key out" "SELECT segments.segment_is_member(50::bigint, 'VIP')" f
expect "new key in" "SELECT segments.segment_is_member(6000::bigint, 'VIP')" t

# rolled back: nothing queued, nothing changes.  The worker is held back
# (block_worker) so that the queue can be read before it is drained: it
# holds the committed change and nothing of the rolled-back ones (in the
# shared-memory ring, which a one-row transaction uses, or in the table
# when the ring turned it away; the worker view counts both).
block_worker
qa "UPDATE contacts SET plan = 'vip' WHERE id = 5"
qa "BEGIN; UPDATE contacts SET plan = 'vip' WHERE id = 4; INSERT INTO contacts VALUES (7000, 'vip'); ROLLBACK"
expect "queued: the committed change, not the rolled-back ones" \
       "SELECT (SELECT string_agg(k, ',') FROM (SELECT contact FROM segments.change_queue
                 UNION ALL SELECT k FROM segments._capture_ring_keys() k) q(k)) || ' ' || pending_changes
          FROM segments.worker" "5 1"
unblock_worker
expect "wait() after rollback" "SELECT segments.wait('60 s')" t
expect "committed update reflected" "SELECT segments.segment_is_member(5::bigint, 'VIP')" t
expect "rolled-back update not reflected" "SELECT segments.segment_is_member(4::bigint, 'VIP')" f
expect "rolled-back insert not reflected" "SELECT segments.segment_is_member(7000::bigint, 'VIP')" f

# from NULL and to NULL are changes
qa "INSERT INTO contacts VALUES (7100, NULL, 'n', now()), (7101, 'vip', 'n', now())"
expect "wait() after inserting a NULL plan" "SELECT segments.wait('60 s')" t
qa "UPDATE contacts SET plan = 'vip' WHERE id = 7100"
qa "UPDATE contacts SET plan = NULL WHERE id = 7101"
expect "wait() after NULL changes" "SELECT segments.wait('60 s')" t
expect "NULL -> vip: in" "SELECT segments.segment_is_member(7100::bigint, 'VIP')" t
expect "vip -> NULL: out" "SELECT segments.segment_is_member(7101::bigint, 'VIP')" f

# an UPDATE of a column no rule reads queues nothing (in the queue table,
# nor in the shared-memory ring)
CAPTURED="(SELECT last_value FROM segments.change_queue_id_seq) || ' ' || (segments._capture_ring()).captured"
seq1=$(q "SELECT $CAPTURED")
qa "UPDATE contacts SET note = 'changed' WHERE id <= 1000"
expect "unwatched UPDATE queues nothing" "SELECT $CAPTURED" "$seq1"
qa "UPDATE contacts SET plan = plan WHERE id <= 10"
expect "UPDATE to the same value queues nothing" "SELECT $CAPTURED" "$seq1"
# ...until a rule reads it
q "SELECT segments.create_segment('Noted', '{\"type\": \"attribute\", \"field\": \"note\", \"op\": \"eq\", \"value\": \"special\"}')" >/dev/null
qa "UPDATE contacts SET note = 'special' WHERE id = 7"
expect "newly read column is watched" "SELECT $CAPTURED <> '$seq1'" t
expect "wait() after watched update" "SELECT segments.wait('60 s')" t
expect "contact entered the new segment" "SELECT segments.segment_is_member(7::bigint, 'Noted')" t

# COPY
printf '8001\tvip\tcopied\t\\N\n8002\tfree\tcopied\t\\N\n8003\tvip\tcopied\t\\N\n' |
    psql -X -q -v ON_ERROR_STOP=1 -U "$APP" -c "COPY contacts (id, plan, note, seen_at) FROM STDIN"
expect "wait() after COPY" "SELECT segments.wait('60 s')" t
expect "copied contacts in" "SELECT segments.segment_is_member(8001::bigint, 'VIP') AND segments.segment_is_member(8003::bigint, 'VIP')" t
[ "$(mismatches VIP "$VIP")" = 0 ] || fail "membership differs after COPY"

# TRUNCATE, then new rows in the same transaction
qa "BEGIN; TRUNCATE contacts; INSERT INTO contacts VALUES (9001, 'vip'), (9002, 'free'); COMMIT"
expect "wait() after TRUNCATE" "SELECT segments.wait('60 s')" t
expect "TRUNCATE emptied the segment but for the new row" "SELECT string_agg(m::text, ',') FROM segments.segment_members('VIP') m" 9001
expect "member_count after TRUNCATE" "SELECT member_count FROM segments.segments WHERE name = 'VIP'" 1

# the tenant column is watched: a contact moving to a tenant enters that
# tenant's segment, though no rule reads the column
q "ALTER TABLE contacts ADD COLUMN org text, ADD COLUMN data jsonb"
qa "UPDATE contacts SET org = 'b'"
q "SELECT segments.configure('contacts', 'id', tenant_column => 'org', traits_column => 'data')" >/dev/null
q "SELECT segments.create_segment('VIP of a', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}', tenant => 'a')" >/dev/null
expect "wait() after configuring a tenant column" "SELECT segments.wait('60 s')" t
expect "a vip of tenant b is not in tenant a's segment" \
       "SELECT count(*) FROM segments.membership m JOIN segments.segments s ON s.id = m.segment_id
         WHERE s.name = 'VIP of a' AND m.contact_id = 9001" 0
qa "UPDATE contacts SET org = 'a' WHERE id = 9001"
expect "wait() after the tenant change" "SELECT segments.wait('60 s')" t
expect "moved to tenant a: in tenant a's segment" \
       "SELECT count(*) FROM segments.membership m JOIN segments.segments s ON s.id = m.segment_id
         WHERE s.name = 'VIP of a' AND m.contact_id = 9001" 1

# the traits column is watched once a rule reads traits (a rule without
# time: nothing but capture brings the change)
q "SELECT segments.create_segment('Gold', '{\"type\": \"trait\", \"key\": \"tier\", \"op\": \"eq\", \"value\": \"gold\"}')" >/dev/null
expect "wait() after a trait segment" "SELECT segments.wait('60 s')" t
qa "UPDATE contacts SET data = '{\"tier\": \"gold\"}' WHERE id = 9002"
expect "wait() after a traits change" "SELECT segments.wait('60 s')" t
expect "traits change reflected" \
       "SELECT count(*) FROM segments.membership m JOIN segments.segments s ON s.id = m.segment_id
         WHERE s.name = 'Gold' AND m.contact_id = 9002" 1

# an index a DBA adds to segments.change_queue (or the copy a REINDEX
# CONCURRENTLY builds) gets every entry the capture writes: the queue's
# rows are inserted below the executor, into its primary key alone before.
# The worker is off, so the entries stay to be checked.
worker_off
q "CREATE EXTENSION IF NOT EXISTS amcheck" >/dev/null
q "CREATE INDEX change_queue_by_time ON segments.change_queue (enqueued_at)"
queued=$(q "SELECT count(*) FROM segments.change_queue")
qa "UPDATE contacts SET plan = CASE WHEN plan = 'vip' THEN 'free' ELSE 'vip' END
      WHERE id IN (SELECT id FROM contacts ORDER BY id LIMIT 3)"
expect "with no worker running, the change is queued in segments.change_queue" \
       "SELECT count(*) > $queued FROM segments.change_queue" t
expect "a DBA's index of segments.change_queue holds every entry (amcheck heapallindexed)" \
       "SELECT count(*) FROM (SELECT bt_index_check('segments.change_queue_by_time', true)) c" 1
expect "... and so does its primary key" \
       "SELECT count(*) FROM (SELECT bt_index_check('segments.change_queue_pkey', true)) c" 1
# a session that queued before a REINDEX CONCURRENTLY of the primary key
# (another session's) queues after it into the rebuilt one
n0=$(q "SELECT count(*) FROM segments.change_queue")
k=$(q "SELECT count(*) FROM (SELECT id FROM contacts ORDER BY id LIMIT 3) c")
pkey0=$(q "SELECT 'segments.change_queue_pkey'::regclass::oid")
psql -X -qAt -v ON_ERROR_STOP=1 -U "$APP" \
     -c "UPDATE contacts SET plan = CASE WHEN plan = 'vip' THEN 'free' ELSE 'vip' END WHERE id IN (SELECT id FROM contacts ORDER BY id LIMIT 3)" \
     -c "\\! psql -X -q -U \"$PGUSER\" -c 'REINDEX INDEX CONCURRENTLY segments.change_queue_pkey'" \
     -c "UPDATE contacts SET plan = CASE WHEN plan = 'vip' THEN 'free' ELSE 'vip' END WHERE id IN (SELECT id FROM contacts ORDER BY id LIMIT 3)" \
     >/dev/null || fail "a session writing across a REINDEX CONCURRENTLY of the queue's primary key failed"
expect "... the primary key was rebuilt (a new index)" \
       "SELECT 'segments.change_queue_pkey'::regclass::oid <> $pkey0" t
expect "... its entries before and after the rebuild are queued" \
       "SELECT count(*) - $n0 FROM segments.change_queue" "$((2 * k))"
expect "... and the rebuilt primary key holds every entry (amcheck heapallindexed)" \
       "SELECT count(*) FROM (SELECT bt_index_check('segments.change_queue_pkey', true)) c" 1
q "DROP INDEX segments.change_queue_by_time"
worker_on
expect "wait() after the queued change, the worker on again" "SELECT segments.wait('60 s')" t
expect "the queued change is applied" "SELECT '$(mismatches VIP "$VIP")'" 0

# The worker takes entries off segments.change_queue by their position, below
# SQL; a DELETE trigger a DBA puts on the queue makes it take them through
# the DELETE statement again, so that the trigger sees every entry.
worker_off
qa "CREATE TABLE queue_taken (contact text)"
q "CREATE FUNCTION queue_taken() RETURNS trigger LANGUAGE plpgsql AS
     \$\$BEGIN INSERT INTO public.queue_taken VALUES (OLD.contact); RETURN OLD; END\$\$" >/dev/null
q "CREATE TRIGGER queue_taken AFTER DELETE ON segments.change_queue
     FOR EACH ROW EXECUTE FUNCTION queue_taken()" >/dev/null
qa "INSERT INTO contacts (id, plan) VALUES (20001, 'vip'), (20002, 'free'), (20003, 'vip')"
worker_on
expect "wait() with a DELETE trigger on the queue" "SELECT segments.wait('60 s')" t
expect "... the trigger saw each entry the worker took" \
       "SELECT string_agg(DISTINCT contact, ',' ORDER BY contact) FROM queue_taken" "20001,20002,20003"
expect "... and the changes are applied" "SELECT '$(mismatches VIP "$VIP")'" 0
q "DROP TRIGGER queue_taken ON segments.change_queue" >/dev/null
# without it, below SQL: the same changes applied, the queue emptied
worker_off
qa "INSERT INTO contacts (id, plan) SELECT g, CASE WHEN g % 3 = 0 THEN 'vip' ELSE 'free' END FROM generate_series(20101, 20200) g"
expect "... 100 changes queued in the table" "SELECT count(*) FROM segments.change_queue" 100
worker_on
expect "wait() once the trigger is gone" "SELECT segments.wait('60 s')" t
expect "... nothing left in the queue" "SELECT count(*) FROM segments.change_queue" 0
expect "... the changes applied" "SELECT '$(mismatches VIP "$VIP")'" 0
expect "... the primary key of the queue agrees with its rows (amcheck heapallindexed)" \
       "SELECT count(*) FROM (SELECT bt_index_check('segments.change_queue_pkey', true)) c" 1

# A batch reads the queue on from the greatest id the batch before took; an
# entry with a smaller id that commits later (each session caches ids 64 at
# a time; here the sequence is set back) is taken all the same.  The ring
# is off for the application's sessions, so that their changes are queued.
q "ALTER ROLE \"$APP\" SET segments.capture_ring = off" >/dev/null
reset_app_ring() { q "ALTER ROLE \"$APP\" RESET segments.capture_ring" >/dev/null; }
on_exit reset_app_ring
q "SELECT setval('segments.change_queue_id_seq', 1000000)" >/dev/null
qa "INSERT INTO contacts (id, plan) VALUES (20301, 'vip')"
expect "wait() for an entry with a large id" "SELECT segments.wait('60 s')" t
q "SELECT setval('segments.change_queue_id_seq', 10)" >/dev/null
qa "INSERT INTO contacts (id, plan) VALUES (20302, 'vip')"
expect "wait() for an entry queued later with a smaller id" "SELECT segments.wait('60 s')" t
expect "... both applied" \
       "SELECT segments.segment_is_member(20301::bigint, 'VIP') AND segments.segment_is_member(20302::bigint, 'VIP')" t
expect "... nothing left in the queue" "SELECT count(*) FROM segments.change_queue" 0

# Under a backlog that keeps every batch full, the queue is still read from
# its first entry at least once a second: an entry with a smaller id that
# commits behind the resume point is applied while the backlog lasts, not
# once it has drained.  Batches of one entry make a backlog of 20,000
# entries last several seconds (about 2 in batches of 5 here: too close to
# the second the timer may take).
qa "INSERT INTO contacts (id, plan) SELECT g, 'free' FROM generate_series(30001, 32000) g"
expect "wait() for 2,000 new contacts" "SELECT segments.wait('60 s')" t
set_system segments.batch_size 1
worker_off "backlog:"
q "SELECT setval('segments.change_queue_id_seq', 2000000)" >/dev/null
for i in $(seq 1 10); do
    qa "UPDATE contacts SET plan = CASE WHEN plan = 'vip' THEN 'free' ELSE 'vip' END WHERE id BETWEEN 30001 AND 32000"
done
expect "a backlog of 20,000 entries" "SELECT count(*) FROM segments.change_queue" 20000
worker_on
poll "the worker is taking the backlog, one entry a batch" \
     "SELECT count(*) < 19990 AND pg_catalog.max(last_batch_size) = 1 FROM segments.change_queue, segments.worker" t
q "SELECT setval('segments.change_queue_id_seq', 10)" >/dev/null
qa "INSERT INTO contacts (id, plan) VALUES (20303, 'vip')"
poll "an entry with a smaller id, queued behind the resume point, is applied" \
     "SELECT segments.segment_is_member(20303::bigint, 'VIP')" t
left=$(q "SELECT count(*) FROM segments.change_queue")
[ "$left" -gt 100 ] || fail "... only $left entries were left: the entry waited for the backlog to drain"
note "ok: ... while $left entries of the backlog were still queued"
expect "wait() for the backlog" "SELECT segments.wait('120 s')" t
expect "... membership exact after it" "SELECT '$(mismatches VIP "$VIP")'" 0
q "ALTER SYSTEM RESET segments.batch_size" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
q "ALTER ROLE \"$APP\" RESET segments.capture_ring" >/dev/null

expect "no error reported by the worker" "SELECT coalesce(last_error, '') FROM segments.worker" ""
all_passed

#!/usr/bin/env bash
# Change capture loses no committed change, written by the application's
# role (no privilege on schema segments): keys are kept per transaction and
# queued when it commits, so every case where that could drop one is here
# (a later statement's subtransaction rolled back, a contact changed many
# times, multi-row statements past the early-write threshold, early writes
# inside a subtransaction that rolls back, a key change, TRUNCATE), and a
# SIGKILL of the postmaster and every process of the server in the middle
# of a load, after which every change committed before the kill is in
# membership.  Leaves the server running for the next script.
. "$(dirname "$0")/../worker/common.bash"

qa "CREATE TABLE contacts (id bigint PRIMARY KEY, plan text, note text)"
qa "INSERT INTO contacts SELECT g, CASE WHEN g % 10 = 0 THEN 'vip' ELSE 'free' END, 'n'
     FROM generate_series(1, 30000) g"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
q "SELECT segments.create_segment('VIP', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}')" >/dev/null
expect "wait() after create_segment" "SELECT segments.wait('60 s')" t
# in the queue table or in the worker's shared-memory ring (small transactions)
queued() { q "SELECT coalesce(string_agg(coalesce(contact, '*'), ',' ORDER BY contact::bigint NULLS FIRST), '')
                FROM (SELECT contact FROM segments.change_queue
                      UNION ALL SELECT k FROM segments._capture_ring_keys() k) q"; }
FLIP="plan = CASE WHEN plan = 'vip' THEN 'free' ELSE 'vip' END"

# 1. a statement rolled back to a savepoint: the statements before and
#    after it are queued (the rolled-back one too: evaluating it is harmless)
block_worker
qa "BEGIN; UPDATE contacts SET plan = 'vip' WHERE id = 1; SAVEPOINT s;
    UPDATE contacts SET plan = 'vip' WHERE id = 2; ROLLBACK TO s;
    UPDATE contacts SET plan = 'vip' WHERE id = 3; COMMIT"
[ "$(queued)" = "1,2,3" ] || fail "savepoint: queued '$(queued)', expected 1,2,3"
note "ok: savepoint: the keys of the transaction are queued at commit"
# a rolled-back transaction queues nothing
qa "BEGIN; UPDATE contacts SET plan = 'vip' WHERE id = 4; ROLLBACK"
[ "$(queued)" = "1,2,3" ] || fail "rollback: queued '$(queued)'"
note "ok: a rolled-back transaction queues nothing"
# 2. a contact changed ten times in a transaction is queued once
qa "DO \$\$ BEGIN FOR i IN 1..10 LOOP UPDATE contacts SET $FLIP WHERE id = 5; END LOOP; END \$\$"
[ "$(queued)" = "1,2,3,5" ] || fail "ten changes: queued '$(queued)', expected 1,2,3,5"
note "ok: a contact changed ten times in one transaction is queued once"
unblock_worker
vip_exact "savepoint and repeated changes"
expect "savepoint: contact 1 in, 2 out, 3 in" \
       "SELECT string_agg(segments.segment_is_member(c, 'VIP')::text, ',' ORDER BY c) FROM unnest('{1,2,3}'::bigint[]) c" \
       "true,false,true"

# 3. multi-row statements, past the early-write threshold (10,000 keys)
qa "UPDATE contacts SET $FLIP WHERE id <= 25000"
vip_exact "a 25,000-row UPDATE"
qa "INSERT INTO contacts SELECT g, 'vip', 'new' FROM generate_series(30001, 42000) g"
vip_exact "a 12,000-row INSERT"

# 4. keys written early inside a subtransaction that rolls back are lost
#    with it, with the key of an earlier statement: the commit queues a
#    whole-source entry instead; nested, the same; released, not
qa "UPDATE contacts SET plan = CASE WHEN id = 10 THEN 'vip' ELSE 'free' END WHERE id IN (7, 8, 9, 10)"
vip_exact "contacts 7, 8 and 9 free, 10 vip"
block_worker
qa "BEGIN; UPDATE contacts SET plan = 'vip' WHERE id = 7; SAVEPOINT s;
    UPDATE contacts SET $FLIP WHERE id BETWEEN 10001 AND 22000; ROLLBACK TO s; COMMIT"
expect "early write rolled back: a whole-source entry is queued" \
       "SELECT count(*) FILTER (WHERE contact IS NULL) > 0 FROM segments.change_queue" t
unblock_worker
vip_exact "early write in a rolled-back subtransaction"
expect "contact 7 (changed before the savepoint) is in" "SELECT segments.segment_is_member(7::bigint, 'VIP')" t
block_worker
qa "BEGIN; UPDATE contacts SET plan = 'vip' WHERE id = 8; SAVEPOINT a; SAVEPOINT b;
    UPDATE contacts SET $FLIP WHERE id BETWEEN 10001 AND 22000; RELEASE b; ROLLBACK TO a; COMMIT"
expect "nested: released into a rolled-back one: a whole-source entry" \
       "SELECT count(*) FILTER (WHERE contact IS NULL) > 0 FROM segments.change_queue" t
unblock_worker
vip_exact "early write in a nested subtransaction"
expect "contact 8 (changed before the savepoints) is in" "SELECT segments.segment_is_member(8::bigint, 'VIP')" t
block_worker
qa "BEGIN; UPDATE contacts SET plan = 'vip' WHERE id = 9; SAVEPOINT s;
    UPDATE contacts SET $FLIP WHERE id BETWEEN 10001 AND 22000; RELEASE s; COMMIT"
expect "released: keys only, no whole-source entry" \
       "SELECT count(*) FILTER (WHERE contact IS NULL) || ' ' || count(DISTINCT contact) || ' ' || min(contact::bigint)
          FROM segments.change_queue" "0 12001 9"
unblock_worker
vip_exact "early write in a released subtransaction"

# 5. a key change: the old key leaves, the new one enters
qa "UPDATE contacts SET id = 90000 WHERE id = 10"
vip_exact "key change"
expect "old key out, new key in" \
       "SELECT segments.segment_is_member(10::bigint, 'VIP') || ' ' || segments.segment_is_member(90000::bigint, 'VIP')" "false true"

# 6. TRUNCATE and new rows in one transaction
qa "BEGIN; TRUNCATE contacts; INSERT INTO contacts SELECT g, CASE WHEN g % 4 = 0 THEN 'vip' ELSE 'free' END, 'n'
     FROM generate_series(1, 20000) g; COMMIT"
vip_exact "TRUNCATE and INSERT"
expect "after TRUNCATE: 5,000 members" "SELECT member_count FROM segments.segments WHERE name = 'VIP'" 5000

# 7. SIGKILL of the postmaster and of every server process while two
#    clients write at full speed and the worker is held back: what was
#    committed before is applied after the restart (they were in the
#    shared-memory ring, lost with it: the worker makes a full pass, and
#    wait() waits for it)
cat > "$PGHOST/capture_load_$$.sql" <<'SQL'
\set c random(12, 20000)
UPDATE contacts SET plan = CASE WHEN plan = 'vip' THEN 'free' ELSE 'vip' END WHERE id = :c;
SQL
chmod 644 "$PGHOST/capture_load_$$.sql"
on_exit "rm -f $PGHOST/capture_load_$$.sql"
block_worker
"$PG_BIN/pgbench" -n -c 2 -j 2 -T 120 -U "$APP" -f "$PGHOST/capture_load_$$.sql" "$DB" >/dev/null 2>&1 &
LOAD=$!
poll "the load is running, its changes queued" "SELECT pending_changes > 500 FROM segments.worker" t 60
qa "UPDATE contacts SET plan = 'vip' WHERE id = 11"        # committed just before the kill
kill_server mid-load
wait "$LOAD" 2>/dev/null || true     # the crash ended its sessions
vip_exact "after the SIGKILL"
expect "the change committed just before the kill is applied" "SELECT segments.segment_is_member(11::bigint, 'VIP')" t
expect "nothing set aside" "SELECT count(*) FROM segments.change_queue_failed" 0

all_passed

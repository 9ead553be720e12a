#!/usr/bin/env bash
# Failure handling in the worker: a transient error (lock timeout) during an
# evaluation leaves the segment pending with the error shown and retries it
# with backoff, readers keeping the previous membership; an error that is
# not transient fails the segment closed (no membership granted, reason
# shown) and wait() treats it as settled; a queue entry that cannot be
# applied is set aside with its error while the rest is applied, wait()
# stays false until it is dealt with, and retry_failed_changes() queues it
# again; a transient error while applying changes is retried, nothing set
# aside.
. "$(dirname "$0")/../worker/common.bash"

q "CREATE TABLE contacts (id integer PRIMARY KEY, plan text, seats int)"
q "INSERT INTO contacts SELECT g, CASE WHEN g % 10 = 0 THEN 'vip' ELSE 'free' END, g % 7
     FROM generate_series(1, 2000) g"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
restore() { local rc=$?
            psql -X -q -d postgres -c "ALTER DATABASE \"$DB\" RESET lock_timeout" >/dev/null 2>&1
            cleanup; }
trap restore EXIT
VIP=$(q "SELECT segments.create_segment('VIP', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}')")
expect "wait() after create_segment" "SELECT segments.wait('30 s')" t
expect "VIP ready with 200 members" "SELECT state || ' ' || member_count FROM segments.status WHERE name = 'VIP'" "ready 200"

# the worker gets a lock timeout; a session holds the membership lock
q "ALTER DATABASE \"$DB\" SET lock_timeout = '300ms'" >/dev/null
q "SELECT pg_terminate_backend(pid) FROM segments.worker WHERE pid IS NOT NULL" >/dev/null
poll "worker restarted with lock_timeout" \
     "SELECT pid IS NOT NULL AND state = 'idle' FROM segments.worker" t 30
LOCKFIFO="$PGHOST/lock_$$"; mkfifo "$LOCKFIFO"
psql -X -q <"$LOCKFIFO" >/dev/null 2>&1 & LOCKER=$!
exec 7>"$LOCKFIFO"
echo "BEGIN; LOCK TABLE segments.member IN EXCLUSIVE MODE; SELECT 1;" >&7
poll "a session holds the membership lock" \
     "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'member' AND l.mode = 'ExclusiveLock' AND l.granted" 1 10
q "SELECT segments.update_segment('$VIP', definition => '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"in\", \"value\": [\"vip\", \"pro\"]}')" >/dev/null
poll "transient error: pending, the lock timeout shown, attempts counted" \
     "SELECT ss.state = 'pending' AND ss.last_error LIKE '%lock timeout%' AND ss.attempts >= 1 AND ss.retry_at IS NOT NULL
        FROM segments.status st JOIN segments.segment_state ss USING (segment_id) WHERE st.name = 'VIP'" t 20
expect "readers keep the previous membership meanwhile" "SELECT segments.segment_is_member(10, 'VIP')" t
expect "wait() is false while it is retried" "SELECT segments.wait('1 s')" f
echo "COMMIT;" >&7; exec 7>&-; wait "$LOCKER" || true; rm -f "$LOCKFIFO"
poll "retried after the lock is gone: ready" \
     "SELECT state || ' ' || member_count || ' ' || coalesce(last_error, '-') FROM segments.status WHERE name = 'VIP'" "ready 200 -" 30
expect "attempts reset on success" \
       "SELECT attempts || ' ' || (retry_at IS NULL) FROM segments.segment_state WHERE segment_id = '$VIP'" "0 true"
q "ALTER DATABASE \"$DB\" RESET lock_timeout" >/dev/null
q "SELECT pg_terminate_backend(pid) FROM segments.worker WHERE pid IS NOT NULL" >/dev/null
poll "worker restarted" "SELECT pid IS NOT NULL AND state = 'idle' FROM segments.worker" t 30

# an error that is not transient: a trigger on membership refuses a write
# (contact 0 in table refused: every write refused)
q "CREATE TABLE refused (contact int)"
q "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \$\$
   BEGIN
     IF EXISTS (SELECT 1 FROM public.refused WHERE contact IN (0, NEW.contact_id)) THEN
       RAISE EXCEPTION 'membership storage refuses contact %', NEW.contact_id;
     END IF;
     RETURN NEW;
   END \$\$"
q "INSERT INTO refused VALUES (0)"
member_ddl "CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON segments.member FOR EACH ROW EXECUTE FUNCTION refuse()"
SEATS=$(q "SELECT segments.create_segment('Seats', '{\"type\": \"attribute\", \"field\": \"seats\", \"op\": \"gte\", \"value\": 5}')")
poll "failed at once, with the reason" \
     "SELECT state || ' ' || member_count || ' ' || (last_error LIKE '%membership storage refuses%') FROM segments.status WHERE name = 'Seats'" "failed 0 true" 20
expect "a failed segment grants nothing" \
       "SELECT count(*) FROM segments.segment_members('Seats')" 0
expect "wait() is true with a failed segment (settled)" "SELECT segments.wait('5 s')" t
expect "it is retried later" \
       "SELECT retry_at > now() + interval '20 s' FROM segments.segment_state WHERE segment_id = '$SEATS'" t
# a segment that stops compiling (its definition changed behind the
# extension's back) fails closed too: its stored members are removed
q "UPDATE segments.segment SET definition = '{\"type\": \"attribute\", \"field\": \"no_such_column\", \"op\": \"eq\", \"value\": 1}' WHERE id = '$VIP'"
q "DELETE FROM refused"
q "SELECT segments.refresh('$VIP')" >/dev/null
expect "uncompilable: failed with the reason" \
       "SELECT state || ' ' || member_count || ' ' || (last_error LIKE '%no_such_column%') FROM segments.status WHERE name = 'VIP'" "failed 0 true"
expect "uncompilable: no membership left" "SELECT segments.segment_is_member(10, 'VIP') OR segments.segment_is_member(20, 'VIP')" f
expect "verify(): nothing stored for the failed segment" \
       "SELECT missing || ' ' || extra FROM segments.verify('$VIP')" "0 0"
q "SELECT segments.update_segment('$VIP', definition => '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}')" >/dev/null
q "SELECT segments.update_segment('$SEATS', definition => '{\"type\": \"attribute\", \"field\": \"seats\", \"op\": \"gte\", \"value\": 5}')" >/dev/null
expect "both fixed: wait()" "SELECT segments.wait('30 s')" t
expect "both ready again" "SELECT string_agg(state, ' ' ORDER BY name) FROM segments.status" "ready ready"

# a queue entry that cannot be applied: contact 13's write is refused, and
# a key the integer column cannot hold was queued
q "INSERT INTO refused VALUES (13)"
q "UPDATE contacts SET plan = 'vip' WHERE id IN (11, 12, 13, 14)"
q "INSERT INTO segments.change_queue (contact) VALUES ('3000000000')"
q "UPDATE contacts SET plan = 'vip' WHERE id IN (15, 16)"
poll "the poison entries are set aside" "SELECT count(*) FROM segments.change_queue_failed" 2 30
poll "the rest is applied" "SELECT count(*) FROM segments.change_queue" 0 30
expect "the others' changes applied" \
       "SELECT bool_and(segments.segment_is_member(id, 'VIP')) FROM unnest(ARRAY[11, 12, 14, 15, 16]) id" t
expect "the errors are kept" \
       "SELECT string_agg(contact || ': ' || (error LIKE '%refuses contact 13%' OR error LIKE '%out of range%'), ', ' ORDER BY contact) FROM segments.change_queue_failed" \
       "13: true, 3000000000: true"
expect "wait() is false while changes are set aside" "SELECT segments.wait('1 s')" f
member_ddl "DROP TRIGGER refuse ON segments.member"
q "DELETE FROM segments.change_queue_failed WHERE contact = '3000000000'"
expect "retry_failed_changes() queues them again" "SELECT segments.retry_failed_changes()" 1
expect "wait() after the retry" "SELECT segments.wait('30 s')" t
expect "contact 13 applied" "SELECT segments.segment_is_member(13, 'VIP')" t
expect "verify() finds nothing" "SELECT sum(missing + extra) FROM segments.verify()" 0
all_passed

#!/usr/bin/env bash
# The shared-memory ring of captured changes (capture_ring.c): (a) a small
# transaction of the application's role (no privilege on schema segments)
# goes through the ring, not segments.change_queue, and membership follows;
# (b) a full ring sends the rest to the table, losing nothing; (c) a kill -9
# of the postmaster with changes in the ring: after the restart wait() is
# not true before the full pass that replaces them, and membership is exact
# after it; (c2) the same when the recovery's first try fails (the ring
# it claimed then is still unchecked); (d) a clean restart moves the ring
# into the table (no full pass); (e) segments.enabled off moves it too,
# and on again serves changes; (f) a second pg_terminate_backend ends a
# worker at once, the ring kept.
# Leaves the server running (with its settings reset) for the next script.
. "$(dirname "$0")/common.bash"

LOG="$PGHOST/server.log"
qa "CREATE TABLE contacts (id bigint PRIMARY KEY, plan text)"
qa "INSERT INTO contacts SELECT g, CASE WHEN g % 10 = 0 THEN 'vip' ELSE 'free' END FROM generate_series(1, 2000) g"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
q "SELECT segments.create_segment('VIP', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}')" >/dev/null
expect "wait() after create_segment" "SELECT segments.wait('60 s')" t
FLIP="plan = CASE WHEN plan = 'vip' THEN 'free' ELSE 'vip' END"
SEQ="SELECT last_value FROM segments.change_queue_id_seq"
RECOVERY="every segment is evaluated again"
recoveries() { grep -c "$RECOVERY" "$LOG" || true; }

# block_worker (common.bash) keeps the worker from writing membership: the
# entries it took from the ring stay there until its batch commits, and
# those that come later wait behind them.  worker_stuck: it waits for that
# lock (it took what the ring held then).
worker_stuck() {
    poll "the worker waits for the lock" \
         "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'segments worker'
             AND datname = current_database() AND wait_event_type = 'Lock'" 1 60
}

# (a) one-row transactions of the application role: the ring, not the table
seq1=$(q "$SEQ")
block_worker
for id in 1 2 3 4 5; do qa "UPDATE contacts SET $FLIP WHERE id = $id"; done
qa "UPDATE contacts SET $FLIP WHERE id BETWEEN 11 AND 30"      # 20 rows, one transaction
expect "(a) in the ring: 25 keys" "SELECT count(*) FROM segments._capture_ring_keys()" 25
expect "(a) the worker view counts them" "SELECT pending_changes FROM segments.worker" 25
expect "(a) the queue table is empty" "SELECT count(*) FROM segments.change_queue" 0
expect "(a) wait() is false while they are not applied" "SELECT segments.wait('1 s')" f
unblock_worker
vip_exact "(a) ring applied"
expect "(a) no queue id was taken" "$SEQ" "$seq1"
expect "(a) the ring is empty" "SELECT pending_changes FROM segments.worker" 0

# (b) a ring of 4 entries: the fifth transaction, and a 5-key one, use the table
set_system segments.capture_ring_size 4
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w -t 120 restart -l "$LOG" >/dev/null
wait_server
poll "(b) worker back" "SELECT state IN ('idle', 'applying changes') FROM segments.worker" t 60
expect "(b) wait() after the restart" "SELECT segments.wait('60 s')" t
block_worker
for id in 101 102 103 104 105 106; do qa "UPDATE contacts SET $FLIP WHERE id = $id"; done
qa "UPDATE contacts SET $FLIP WHERE id BETWEEN 201 AND 205"
expect "(b) 4 in the ring" "SELECT count(*) FROM segments._capture_ring_keys()" 4
expect "(b) the rest in the table" "SELECT count(*) FROM segments.change_queue" 7
unblock_worker
vip_exact "(b) full ring"
q "ALTER SYSTEM RESET segments.capture_ring_size" >/dev/null
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w -t 120 restart -l "$LOG" >/dev/null
wait_server
poll "(b) worker back at the default size" "SELECT state IN ('idle', 'applying changes') FROM segments.worker" t 60
expect "(b) wait() after the restart" "SELECT segments.wait('60 s')" t

# (c) kill -9 of the postmaster and its processes with changes in the ring.
#     The server comes back with segments.enabled off (set before the kill,
#     read at the start): wait() must not be true, then the worker's full
#     pass puts the lost changes right.
before=$(recoveries)
block_worker
for id in 301 302 303 304 305 306 307 308 309 310; do qa "UPDATE contacts SET $FLIP WHERE id = $id"; done
expect "(c) 10 changes in the ring" "SELECT count(*) FROM segments._capture_ring_keys()" 10
stale=$(q "SELECT segments.segment_is_member(310::bigint, 'VIP')")
q "ALTER SYSTEM SET segments.enabled = off" >/dev/null      # no reload: read at the restart
SYSTEM_SETTINGS+=(segments.enabled)
kill_server
expect "(c) the change in the ring was lost with it" "SELECT segments.segment_is_member(310::bigint, 'VIP')" "$stale"
expect "(c) wait() is not true before the full pass" "SELECT segments.wait('3 s')" f
q "ALTER SYSTEM RESET segments.enabled" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
vip_exact "(c) after the kill -9"
[ "$(recoveries)" -gt "$before" ] || fail "(c) no full pass was logged"
note "ok: (c) the worker logged the full pass"
expect "(c) segments ready" "SELECT string_agg(status, ',') FROM segments.segments" ready

# (c2) the same kill -9, and the recovery's first try fails: a trigger
#     (the test's fault, on the table the recovery updates) raises once.
#     The worker claimed the fresh ring before that error; its next try
#     must still find the ring unchecked, log the full pass and make it,
#     not take the claimed ring for one a worker had checked.
before=$(recoveries)
block_worker
for id in 311 312 313 314 315 316 317 318 319 320; do qa "UPDATE contacts SET $FLIP WHERE id = $id"; done
expect "(c2) 10 changes in the ring" "SELECT count(*) FROM segments._capture_ring_keys()" 10
stale=$(q "SELECT segments.segment_is_member(320::bigint, 'VIP')")
q "ALTER SYSTEM SET segments.enabled = off" >/dev/null
kill_server
q "CREATE SEQUENCE public.recovery_tries" >/dev/null
q "CREATE FUNCTION public.recovery_fault() RETURNS trigger LANGUAGE plpgsql AS \$\$
   BEGIN
     IF pg_catalog.nextval('public.recovery_tries') = 1 THEN
       RAISE EXCEPTION 'segments test: the recovery fails once';
     END IF;
     RETURN NEW;
   END \$\$" >/dev/null
q "CREATE TRIGGER recovery_fault BEFORE UPDATE ON segments.segment_state FOR EACH ROW
     WHEN (OLD.state = 'ready' AND NEW.state = 'pending') EXECUTE FUNCTION public.recovery_fault()" >/dev/null
drop_fault() {
    psql -X -qAt -c "DROP TRIGGER IF EXISTS recovery_fault ON segments.segment_state" \
         -c "DROP FUNCTION IF EXISTS public.recovery_fault()" -c "DROP SEQUENCE IF EXISTS public.recovery_tries" >/dev/null 2>&1 || true
}
on_exit drop_fault
expect "(c2) the change in the ring was lost with it" "SELECT segments.segment_is_member(320::bigint, 'VIP')" "$stale"
q "ALTER SYSTEM RESET segments.enabled" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
poll "(c2) the recovery's first try failed" "SELECT last_value >= 1 FROM public.recovery_tries" t 60
grep -q "the recovery fails once" "$LOG" || fail "(c2) the injected error is not in the server log"
vip_exact "(c2) after the kill -9 and a failed first recovery"
expect "(c2) the recovery was tried again" "SELECT last_value >= 2 FROM public.recovery_tries" t
[ "$(recoveries)" -gt "$before" ] || fail "(c2) no full pass was logged after the failed try"
note "ok: (c2) the worker logged the full pass on its second try"
drop_fault
expect "(c2) segments ready" "SELECT string_agg(status, ',') FROM segments.segments" ready

# (d) a clean restart (fast shutdown) moves the ring into the table: no full
#     pass.  The worker took the first change (and waits to apply it); the
#     next three wait in the ring when the shutdown comes.
before=$(recoveries)
log_lines=$(wc -l < "$LOG")
block_worker
qa "UPDATE contacts SET $FLIP WHERE id = 400"
worker_stuck
for id in 401 402 403; do qa "UPDATE contacts SET $FLIP WHERE id = $id"; done
expect "(d) 4 changes in the ring" "SELECT count(*) FROM segments._capture_ring_keys()" 4
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w -t 120 restart -l "$LOG" >/dev/null
BLOCKER=""
wait_server
vip_exact "(d) after a clean restart"
# The postmaster sends its SIGTERM twice at once (to the pid and to the
# process group): the worker must take both as one request and drain.
grep -q "captured changes from shared memory into segments.change_queue" <(tail -n +$((log_lines + 1)) "$LOG") \
    || fail "(d) the worker did not move the ring into the table at the fast shutdown"
note "ok: (d) the ring was moved into the table"
[ "$(recoveries)" = "$before" ] || fail "(d) a clean restart made a full pass"
note "ok: (d) no full pass"

# (e) segments.enabled off moves the ring into the table; on again: served
before=$(recoveries)
block_worker
qa "UPDATE contacts SET $FLIP WHERE id = 500"
worker_stuck
for id in 501 502; do qa "UPDATE contacts SET $FLIP WHERE id = $id"; done
expect "(e) 3 changes in the ring" "SELECT count(*) FROM segments._capture_ring_keys()" 3
set_system segments.enabled off
unblock_worker
poll "(e) worker stopped" "SELECT pid IS NULL AND state IN ('disabled', 'stopped') FROM segments.worker" t 60
expect "(e) the ring's changes are in the table" "SELECT count(*) FROM segments.change_queue" 2
expect "(e) clean" "SELECT clean FROM segments.capture_state" t
qa "UPDATE contacts SET $FLIP WHERE id = 503"
expect "(e) without a worker, changes go to the table" "SELECT count(*) FROM segments.change_queue" 3
q "ALTER SYSTEM RESET segments.enabled" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
vip_exact "(e) enabled again"
[ "$(recoveries)" = "$before" ] || fail "(e) segments.enabled off and on made a full pass"
note "ok: (e) no full pass"
qa "UPDATE contacts SET $FLIP WHERE id = 504"
vip_exact "(e) a change after"
expect "(e) the table is empty" "SELECT count(*) FROM segments.change_queue" 0
# (f) pg_terminate_backend of a worker in the middle of a step: it ends once
#     the step is done; a second one 2 s or more later ends it at once.  The
#     ring outlives it: the next worker applies its entries, no full pass.
before=$(recoveries)
block_worker
qa "UPDATE contacts SET $FLIP WHERE id = 600"
worker_stuck
qa "UPDATE contacts SET $FLIP WHERE id = 601"
wpid=$(q "SELECT pid FROM segments.worker")
q "SELECT pg_terminate_backend($wpid)" >/dev/null
sleep 1
expect "(f) after one SIGTERM the worker finishes its step first" \
       "SELECT count(*) FROM pg_stat_activity WHERE pid = $wpid" 1
sleep 2
q "SELECT pg_terminate_backend($wpid)" >/dev/null
poll "(f) a second SIGTERM later ends it at once" \
     "SELECT count(*) FROM pg_stat_activity WHERE pid = $wpid" 0 30
expect "(f) its changes stay in the ring" "SELECT count(*) FROM segments._capture_ring_keys()" 2
unblock_worker
vip_exact "(f) the next worker applied them"
[ "$(recoveries)" = "$before" ] || fail "(f) the ended worker cost a full pass"
note "ok: (f) no full pass"
expect "no error reported by the worker" "SELECT coalesce(last_error, '') FROM segments.worker" ""
all_passed

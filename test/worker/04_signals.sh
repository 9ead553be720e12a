#!/usr/bin/env bash
# Signals: a running worker reloads segments.* settings on SIGHUP
# (pg_reload_conf()) without restarting; SIGTERM (pg_terminate_backend)
# stops it promptly, idle, in the middle of a backlog or of a segment
# evaluation, and the launcher starts a new worker that serves the database
# again and loses nothing.  Leaves the server running, settings reset.
. "$(dirname "$0")/common.bash"

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# Sets a segments.* setting with ALTER SYSTEM (reset on exit), reloads, and
# waits until the worker runs with it.  A new session seeing the value means
# the postmaster has reloaded and signalled every process; the worker takes
# the new value at the top of its next round.  Two committed changes, each
# waited for, make sure such a round has run (the first may be applied by a
# round already under way).
reload_with() {
    local name="$1" value="$2" want="$3" start=$SECONDS
    set_system "$name" "$value"
    until [ "$(q "SHOW $name")" = "$want" ]; do
        [ $((SECONDS - start)) -lt 60 ] || fail "$name = $want not visible 60 s after pg_reload_conf()"
        sleep 0.2
    done
    for _ in 1 2; do
        qa "UPDATE contacts SET plan = CASE WHEN plan = 'vip' THEN 'free' ELSE 'vip' END WHERE id = 200000"
        [ "$(q "SELECT segments.wait('60 s')")" = t ] ||
            fail "after reloading $name: a change was not applied within 60 s"
    done
}

# Waits until process $1 has exited; prints how long it took (ms).
wait_exit() {
    local pid="$1" limit_ms="$2" start
    start=$(now_ms)
    while kill -0 "$pid" 2>/dev/null; do
        [ $(( $(now_ms) - start )) -lt "$limit_ms" ] || return 1
        sleep 0.05
    done
    echo $(( $(now_ms) - start ))
}

# Terminates the worker with pg_terminate_backend and checks it is gone
# within 30 s (generous for a loaded machine: what shows that it stopped
# promptly is the work it left undone, checked by the callers); sets
# OLD_PID and EXITED_AT.
terminate_worker() {
    local what="$1" pid ms
    pid=$(q "SELECT pid FROM segments.worker")
    [ -n "$pid" ] || fail "$what: no worker to terminate"
    expect "$what: pg_terminate_backend($pid)" "SELECT pg_terminate_backend($pid)" t
    ms=$(wait_exit "$pid" 30000) || fail "$what: worker $pid still running 30 s after SIGTERM"
    EXITED_AT=$(now_ms) OLD_PID=$pid
    note "ok: $what: worker $pid exited $ms ms after SIGTERM"
    expect "$what: gone from pg_stat_activity" \
           "SELECT count(*) FROM pg_stat_activity WHERE pid = $pid" 0
}

# Waits for the launcher to start a new worker after terminate_worker.
await_restart() {
    local what="$1" pid="$OLD_PID" start="$EXITED_AT" ms new
    # docs/worker.md: restarted 5 s after an unexpected exit
    until [ "$(q "SELECT pid IS NOT NULL AND pid <> $pid FROM segments.worker")" = t ]; do
        [ $(( $(now_ms) - start )) -lt 60000 ] || fail "$what: no new worker within 60 s"
        sleep 0.1
    done
    ms=$(( $(now_ms) - start ))
    # not before the pause (load can only make it later); later is allowed
    [ "$ms" -ge 4000 ] || fail "$what: restarted after $ms ms, before the 5 s pause"
    note "ok: $what: the launcher started a new worker $ms ms after the exit"
    poll "$what: the new worker is up" \
         "SELECT state IN ('idle', 'applying changes', 'evaluating') FROM segments.worker" t 60
    new=$(q "SELECT pid FROM segments.worker")
    kill -0 "$new" 2>/dev/null || fail "$what: new worker pid $new is not a live process"
    expect "$what: new worker is a segments worker of this database" \
           "SELECT backend_type || ' ' || datname FROM pg_stat_activity WHERE pid = $new" \
           "segments worker $DB"
}

qa "CREATE TABLE contacts (id bigint PRIMARY KEY, plan text, note text)"
# 200,000 contacts before configure(): not queued, evaluated with the segments
qa "INSERT INTO contacts SELECT g, CASE WHEN g % 3 = 0 THEN 'vip' ELSE 'free' END, md5(g::text)
     FROM generate_series(1, 200000) g"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
q "SELECT segments.create_segment('VIP', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}')" >/dev/null
expect "wait() after create_segment" "SELECT segments.wait('60 s')" t
VIP="SELECT id FROM contacts WHERE plan = 'vip'"
PID0=$(q "SELECT pid FROM segments.worker")
[ -n "$PID0" ] || fail "no worker serves the database"

# 1. SIGHUP: segments.batch_size.  With the default (5000) a backlog of
#    3000 changes committed at once is one batch; after the reload the same
#    backlog is applied in batches of 100, by the same process.
expect "batch_size is the default" "SHOW segments.batch_size" 5000
FLIP="plan = CASE WHEN plan = 'vip' THEN 'free' ELSE 'vip' END"
qa "UPDATE contacts SET $FLIP WHERE id BETWEEN 1 AND 3000"    # 3000 changes
expect "wait() after the first backlog" "SELECT segments.wait('60 s')" t
expect "default batch_size: one batch of 3000" "SELECT last_batch_size FROM segments.worker" 3000

reload_with segments.batch_size 100 100
applied=$(q "SELECT changes_applied FROM segments.worker")
qa "UPDATE contacts SET $FLIP WHERE id BETWEEN 3001 AND 6000"
expect "wait() after the second backlog" "SELECT segments.wait('60 s')" t
expect "reloaded batch_size: batches of 100" "SELECT last_batch_size FROM segments.worker" 100
expect "all 3000 changes applied" \
       "SELECT changes_applied - $applied FROM segments.worker" 3000
expect "the same worker (reloaded, not restarted)" "SELECT pid FROM segments.worker" "$PID0"
expect "membership exact after the backlogs" "SELECT '$(mismatches VIP "$VIP")'" 0

# 2. SIGHUP: segments.naptime, the longest sleep of an idle worker, and
#    segments.time_resolution (an idle worker also wakes every
#    time_resolution to apply the passage of time).  A change queued without
#    waking the worker (as if the wake-up were lost) waits for the next
#    wake-up: with both at 1 h it stays queued for the 8 s watched (the
#    defaults, 5 s and 2 s, would have applied it); the reload back to the
#    defaults wakes the worker.
set_system segments.time_resolution 1h
reload_with segments.naptime 1h 1h
expect "time_resolution reloaded" "SHOW segments.time_resolution" 1h
# (the DDL-end event trigger wakes the worker after DDL on the source: off
# for this transaction too)
q "BEGIN;
   ALTER EVENT TRIGGER segments_ddl_end DISABLE;
   ALTER TABLE contacts DISABLE TRIGGER segments_capture;   -- no capture, no wake-up
   UPDATE contacts SET plan = 'vip' WHERE id = 3;
   INSERT INTO segments.change_queue (contact) VALUES ('3');
   ALTER TABLE contacts ENABLE ALWAYS TRIGGER segments_capture;
   ALTER EVENT TRIGGER segments_ddl_end ENABLE ALWAYS;
   COMMIT"
expect "lost wake-up: contact 3 queued" "SELECT pending_changes FROM segments.worker" 1
hold "naptime and time_resolution 1h: still queued" "SELECT pending_changes FROM segments.worker" 1 8
expect "naptime 1h: contact 3 not in yet" "SELECT segments.segment_is_member(3::bigint, 'VIP')" f
expect "naptime 1h: worker idle" "SELECT state FROM segments.worker" idle
reset_system
poll "after the reset: the change is applied" "SELECT pending_changes FROM segments.worker" 0
expect "contact 3 in" "SELECT segments.segment_is_member(3::bigint, 'VIP')" t
poll "settings reset: batch_size" "SHOW segments.batch_size" 5000
poll "settings reset: naptime" "SHOW segments.naptime" 5s
poll "settings reset: time_resolution" "SHOW segments.time_resolution" 2s
expect "still the same worker" "SELECT pid FROM segments.worker" "$PID0"

# 3. SIGTERM of an idle worker: it exits at once; a new one serves changes.
poll "worker idle before SIGTERM" "SELECT state FROM segments.worker" idle
terminate_worker "idle SIGTERM"
expect "idle SIGTERM: segments.worker shows it stopped" "SELECT coalesce(pid, 0) || ' ' || state FROM segments.worker" "0 stopped"
await_restart "idle SIGTERM"
qa "UPDATE contacts SET plan = 'vip' WHERE id = 6"
expect "wait() with the new worker" "SELECT segments.wait('60 s')" t
expect "change applied by the new worker" "SELECT segments.segment_is_member(6::bigint, 'VIP')" t
expect "new worker counts it" "SELECT changes_applied >= 1 FROM segments.worker" t
expect "membership exact" "SELECT '$(mismatches VIP "$VIP")'" 0

# 4. SIGTERM in the middle of a backlog: prompt, and nothing is lost.  The
# signal goes while at least half of the 100,000 changes are queued, in
# batches of 100: with batches of 500 and any backlog at all, a fast worker
# once drained the rest before the signal reached it.
set_system segments.batch_size 100
qa "UPDATE contacts SET $FLIP WHERE id % 2 = 0"
poll "worker in the middle of the backlog" \
     "SELECT state = 'applying changes' AND changes_applied > 0 AND pending_changes > 50000 FROM segments.worker" t 60
terminate_worker "SIGTERM during a backlog"
expect "SIGTERM during a backlog: changes left queued" "SELECT pending_changes > 0 FROM segments.worker" t
await_restart "SIGTERM during a backlog"
expect "wait() after SIGTERM during a backlog" "SELECT segments.wait('180 s')" t
expect "queue drained" "SELECT count(*) FROM segments.change_queue" 0
expect "membership exact after SIGTERM during a backlog" "SELECT '$(mismatches VIP "$VIP")'" 0

# 5. SIGTERM in the middle of a segment evaluation (a segment with many
#    regex conditions takes seconds over 200,000 contacts): prompt; the
#    segment is left evaluating, and the new worker evaluates it again.
conds=""
for n in $(seq 5 19); do
    conds="$conds{\"type\": \"attribute\", \"field\": \"note\", \"op\": \"regex\", \"value\": \"([a-f]|[0-9]){$n}\", \"case_sensitive\": false}, "
done
q "SELECT segments.create_segment('Heavy', '{\"or\": [
     {\"and\": [$conds {\"type\": \"attribute\", \"field\": \"note\", \"op\": \"regex\", \"value\": \"^[0-7]\"}]},
     {\"type\": \"percentage\", \"op\": \"lt\", \"value\": 5}]}')" >/dev/null
poll "worker evaluating the new segment" \
     "SELECT status FROM segments.segments WHERE name = 'Heavy'" evaluating 60
terminate_worker "SIGTERM during an evaluation"
expect "SIGTERM during an evaluation: interrupted, not finished" \
       "SELECT status FROM segments.segments WHERE name = 'Heavy'" evaluating
await_restart "SIGTERM during an evaluation"
expect "wait() after SIGTERM during an evaluation" "SELECT segments.wait('180 s')" t
expect "segment evaluated by the new worker" \
       "SELECT status FROM segments.segments WHERE name = 'Heavy'" ready
expect "its member count is exact" \
       "SELECT member_count = (SELECT count(*) FROM contacts c
                                WHERE c.note ~ '^[0-7]'
                                   OR (('x' || left(md5(s.id::text || ':' || c.id::text), 8))::bit(32)::bigint % 10000) / 100.0 < 5)
          FROM segments.segments s WHERE name = 'Heavy'" t
note "Heavy evaluated in $(q "SELECT last_duration FROM segments.status s JOIN segments.segments g ON g.id = s.segment_id WHERE g.name = 'Heavy'")"
all_passed

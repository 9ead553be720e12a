#!/usr/bin/env bash
# The moves that give segments.member's pages back (src/member_compact.c),
# under churn and a crash: rounds of 40 segments every contact is in,
# created and dropped, while the application upserts and deletes contacts
# with pgbench; after each drop a vacuum by hand makes the worker look for
# a tail to empty.  In one round the vacuum process is SIGKILLed after
# its moves, before the vacuum that truncates (the postmaster restarts
# every backend).  Then: rows moved in
# every round but the killed one, the table given back, membership exact,
# the primary key holding every row (amcheck), nothing set aside.
. "$(dirname "$0")/../worker/common.bash"

ROUNDS=${COMPACT_ROUNDS:-4}
LOG="$PGHOST/server.log"
WORK="$PGHOST/compact_$$"; mkdir -p "$WORK"; chmod 777 "$WORK"
on_exit "rm -rf $WORK"
MGR="segw_mgr_${TEST_NAME}_$$"
psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "CREATE ROLE \"$MGR\" LOGIN IN ROLE segments_write" >/dev/null
ROLES+=("$MGR")
qm() { psql -X -qAt -v ON_ERROR_STOP=1 -U "$MGR" -c "$1"; }
pages() { q "SELECT pg_relation_size('segments.member') / current_setting('block_size')::int"; }
moves() { tail -c +"$((logpos + 1))" "$LOG" | grep -c "segments: moved [0-9]* rows of segments.member" || true; }
# for a failure: what the log says of compaction since the round began, and the vacuum processes
diagnose() {
    printf '\n-- server log since the round began:\n'
    tail -c +"$((logpos + 1))" "$LOG" | grep -E "segments|member vacuum" | tail -n 20
    printf -- '-- vacuum processes:\n'
    q "SELECT pid, datname, state, wait_event_type, wait_event, query FROM pg_stat_activity
        WHERE backend_type = 'segments member vacuum'"
}

qa "CREATE TABLE contacts (id bigint PRIMARY KEY, n int NOT NULL, m2 int)"
qa "INSERT INTO contacts SELECT g, g, g % 2 FROM generate_series(1, 40000) g"
qa "GRANT SELECT ON contacts TO \"$MGR\""
q "SELECT segments.configure('contacts', 'id')" >/dev/null
qm "SELECT segments.create_segment('even', '{\"type\": \"attribute\", \"field\": \"m2\", \"op\": \"eq\", \"value\": 0}')" >/dev/null
qm "SELECT segments.create_segment('low', '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"lte\", \"value\": 20000}')" >/dev/null
expect "the first pass" "SELECT segments.wait('120 s')" t
q "CREATE EXTENSION IF NOT EXISTS amcheck" >/dev/null

cat >"$WORK/write.sql" <<'SQL'
\set id random(1, 44000)
\set m random(0, 1)
INSERT INTO contacts VALUES (:id, :id, :m) ON CONFLICT (id) DO UPDATE SET m2 = EXCLUDED.m2;
SQL
cat >"$WORK/delete.sql" <<'SQL'
\set id random(1, 44000)
DELETE FROM contacts WHERE id = :id;
SQL
# the application writes, restarted after the crash
( while [ ! -e "$WORK/stop" ]; do
      "$PG_BIN/pgbench" -n -U "$APP" -c 2 -j 2 -T 600 -R 200 \
          -f "$WORK/write.sql@19" -f "$WORK/delete.sql@1" >>"$WORK/pgbench.out" 2>&1 || sleep 0.5
  done ) & WRITERS=$!
stop_writers() { touch "$WORK/stop"; pkill -f "pgbench.*$WORK" 2>/dev/null || true; wait "$WRITERS" 2>/dev/null || true; }
on_exit stop_writers

killed=0; moved_rounds=0
for r in $(seq 1 "$ROUNDS"); do
    logpos=$(stat -c %s "$LOG")
    for i in $(seq 1 40); do
        qm "SELECT segments.create_segment('wide $r.$i', '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"gt\", \"value\": -$i}')" >/dev/null
    done
    expect "round $r: 40 segments every contact is in" "SELECT segments.wait('300 s')" t
    before=$(pages)
    # round 2: no moves until the old snapshot is held (below), and no
    # index rebuild: REINDEX CONCURRENTLY would wait for that snapshot to
    # go, and the VACUUM below for the rebuild
    if [ "$r" = 2 ]; then
        set_system segments.member_compact_fraction 0
        set_system segments.member_reindex_factor 0
    fi
    qm "SELECT count(segments.drop_segment(s.id)) FROM segments.segments s WHERE s.name LIKE 'wide %'" >/dev/null
    poll "round $r: the dropped numbers are stripped" \
         "SELECT count(*) FROM segments.member m WHERE EXISTS (SELECT FROM unnest(segments._member_segs(m.data)) n
            WHERE NOT EXISTS (SELECT FROM segments.segment s WHERE s.num = n))" 0 300
    if [ "$r" = 2 ]; then
        # The vacuum process, SIGKILLed after its moves committed and before
        # the vacuum that truncates: a session's snapshot older than the
        # moves keeps it waiting (up to 30 s) for that snapshot to go.
        poll "round $r: no vacuum process at work (one that began with a rebuild to do ends)" \
             "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'segments member vacuum'
                AND datname = current_database()" 0 300
        psql -X -qAt -v ON_ERROR_STOP=1 -c "SET application_name = 'segw_old_snapshot'" \
             -c "BEGIN ISOLATION LEVEL REPEATABLE READ" -c "SELECT count(*) FROM segments.segment" \
             -c "SELECT pg_sleep(600)" >/dev/null 2>&1 &
        HOLDER=$!
        poll "round $r: a session holds an old snapshot" \
             "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'segw_old_snapshot' AND wait_event = 'PgSleep'" 1 30
        logmoves=$(moves)
        set_system segments.member_compact_fraction 0.2
        q "VACUUM segments.member"
        # the process waiting (WaitLatch, PG_WAIT_EXTENSION) after its moves
        pid=""; start=$SECONDS
        until [ -n "$pid" ] || [ $((SECONDS - start)) -ge 60 ]; do
            pid=$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'segments member vacuum'
                      AND datname = current_database() AND query LIKE 'segments: moving rows%'
                      AND wait_event_type = 'Extension'")
            [ -n "$pid" ] || sleep 0.1
        done
        [ -n "$pid" ] || fail "round $r: no vacuum process waited for the old snapshot after moves in 60 s$(diagnose)"
        [ "$(moves)" -gt "$logmoves" ] || fail "round $r: the waiting vacuum process logged no moves$(diagnose)"
        note "ok: round $r: the moves are done, the truncating vacuum waits for the old snapshot"
        kill -KILL "$pid"; killed=1
        note "ok: round $r: the vacuum process killed between its moves and its vacuum"
        wait "$HOLDER" 2>/dev/null || true   # the crash restart ended its session
        sleep 1; wait_server
        reset_system   # compaction and rebuilds as by default again
    else
        q "VACUUM segments.member"
        poll "round $r: the worker gave pages back ($before pages before)" \
             "SELECT pg_relation_size('segments.member') / current_setting('block_size')::int < $before * 6 / 10" t 180
        moved_rounds=$((moved_rounds + 1))
    fi
    note "round $r: $before pages before the drop, $(pages) after; $(moves) compaction(s) logged"
done
stop_writers
txns=$(awk '/^number of transactions actually processed:/ { n += $6 } END { print n + 0 }' "$WORK/pgbench.out")
note "$ROUNDS rounds, $moved_rounds with pages given back, $killed vacuum process killed, $txns pgbench transactions"
[ "$killed" = 1 ] || fail "the vacuum process was not killed"
[ "$txns" -gt 0 ] || fail "the application wrote nothing"

expect "wait() after the churn" "SELECT segments.wait('180 s')" t
expect "nothing set aside" "SELECT count(*) FROM segments.change_queue_failed" 0
expect "no segment failed" "SELECT count(*) FROM segments.status WHERE state <> 'ready'" 0
expect "membership is exact" \
       "SELECT coalesce(string_agg(name || ' missing ' || missing || ' extra ' || extra, '; '), 'none')
          FROM segments.verify() WHERE missing + extra > 0" none
expect "one stored row per contact in a segment" \
       "SELECT (SELECT count(*) FROM segments.member) = (SELECT count(*) FROM contacts WHERE m2 = 0 OR n <= 20000)" t
expect "the primary key has every row (amcheck heapallindexed)" \
       "SELECT count(*) FROM (SELECT bt_index_check('segments.member_pkey', true)) c" 1
expect "the worker is healthy (no error)" "SELECT last_error IS NULL FROM segments.worker" t
all_passed

#!/usr/bin/env bash
# The worker's rebuild of segments.member's indexes (src/member_vacuum.c):
# passes that rewrite every row grow the GIN index by insertion to a few
# times the size of a built one; once past segments.member_reindex_factor
# times that, the vacuum process rebuilds it with REINDEX CONCURRENTLY,
# while a reader goes on reading through it; at 0 it does not; an invalid
# index on the table (what an interrupted rebuild leaves) is dropped by
# the next vacuum process; one that another session is building
# concurrently (invalid until its build ends) is waited for, not dropped;
# what a rebuild measured is kept for a restarted worker; and a pass that
# starts ends a rebuild running beside it.
. "$(dirname "$0")/common.bash"

READER="segw_reader_${TEST_NAME}_$$"
psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "CREATE ROLE \"$READER\" LOGIN IN ROLE segments_read" >/dev/null
ROLES+=("$READER")
qr() { psql -X -qAt -v ON_ERROR_STOP=1 -U "$READER" -c "$1"; }

# rebuilds off from the start: at the default a rebuild could start during
# the first pass and swap the index under part 1's feet
set_system segments.member_reindex_factor 0
poll "the setting is read" "SHOW segments.member_reindex_factor" 0 30

qa "CREATE TABLE contacts (id bigint PRIMARY KEY, n int NOT NULL)"
qa "INSERT INTO contacts SELECT g, g FROM generate_series(1, 100000) g"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
# ten segments every contact is in (a million memberships), and one that
# flips between the two halves: each flip is a pass rewriting every row.
# Created in one transaction, so that the first pass is one pass and the
# index part 1 starts from is the same in every run (created one by one,
# the worker could start a pass before the last ones were created, and
# each further pass grew the index by insertion: a run under load measured
# 8.4 MB instead of 6.1, and the growth of part 1 fell under half)
CREATE="BEGIN;"
for i in $(seq 1 10); do
    CREATE="$CREATE SELECT segments.create_segment('all$i', '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"gt\", \"value\": -$i}');"
done
CREATE="$CREATE SELECT segments.create_segment('flip', '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"lte\", \"value\": 50000}'); COMMIT;"
q "$CREATE" >/dev/null
expect "the first pass" "SELECT segments.wait('300 s')" t
GIN="SELECT pg_relation_size('segments.member_segs_idx')"
GIN_OID="SELECT 'segments.member_segs_idx'::regclass::oid"
VACUUMS="(SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'segments.member'::regclass)"
# flip N: N passes, each turning 'flip' to the other half of the contacts
# (counted over the whole script: a flip that set the definition it had
# would rewrite no row, and make no vacuum due)
FLIPS=0
flip() {
    local i op
    for i in $(seq 1 "$1"); do
        FLIPS=$((FLIPS + 1))
        op=$([ $((FLIPS % 2)) = 1 ] && echo gt || echo lte)
        q "SELECT segments.update_segment('flip', definition => '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"$op\", \"value\": 50000}')" >/dev/null
        [ "$(q "SELECT segments.wait('300 s')")" = t ] || fail "pass $FLIPS did not end within 300 s"
    done
}

# 1. with the rebuild off, the GIN index grows and stays the same index
oid0=$(q "$GIN_OID"); gin0=$(q "$GIN"); v0=$(q "SELECT $VACUUMS")
flip 4
poll "the worker vacuumed the table after the passes" "SELECT $VACUUMS > $v0" t 300
gin1=$(q "$GIN")
note "GIN after the first pass: $gin0 bytes; after 4 passes that rewrote every row: $gin1 bytes"
expect "at 0: the index grew by half, and was not rebuilt" \
       "SELECT $gin1 * 2 > 3 * $gin0 AND ($GIN_OID) = $oid0" t

# 2. at the default factor, the worker rebuilds it while a reader reads
set_system segments.member_reindex_factor 2
poll "the setting is read" "SHOW segments.member_reindex_factor" 2 30
OUT=$(mktemp); on_exit "rm -f $OUT"
( end=$((SECONDS + 600))
  while [ $SECONDS -lt $end ] && [ ! -e "$OUT.stop" ]; do
      if r=$(qr "SELECT count(*) FROM segments.segment_members('all3')" 2>&1); then echo "$r" >> "$OUT"
      else echo "ERROR $r" >> "$OUT"; fi
  done ) &
LOOP=$!
on_exit "touch $OUT.stop"
flip 1
poll "the worker rebuilt the GIN index (a new index under the same name)" "SELECT ($GIN_OID) <> $oid0" t 180
touch "$OUT.stop"; wait "$LOOP" || true
gin2=$(q "$GIN")
# Not asserted: how much smaller the rebuilt index is.  A rebuild that
# starts just before a pass (the pass is not held back by it) gets the
# pass's rewritten rows by insertion, and then ends about as large as the
# grown index (CI: 11.47 MB before, 11.35 MB after); bench/storage_cost.sh
# measures the sizes.
note "GIN before the rebuild: $gin1 bytes (and one pass more), after: $gin2 bytes"
expect "no invalid index left" \
       "SELECT count(*) FROM pg_index WHERE indrelid = 'segments.member'::regclass AND NOT indisvalid" 0
reads=$(grep -c '^100000$' "$OUT" || true)
errors=$(grep -c -v '^100000$' "$OUT" || true)
[ "$errors" = 0 ] || fail "a reader saw an error or a wrong count during the rebuild: $(grep -v '^100000$' "$OUT" | head -3)"
[ "$reads" -gt 0 ] || fail "the reader read nothing"
note "ok: a reader read all3's 100000 members $reads times through the passes and the rebuild, never an error"
expect "segment_members() uses the rebuilt index" \
       "SELECT count(*) FROM segments.segment_members('flip')" 50000
expect "membership exact" "SELECT count(*) FROM segments.verify() WHERE missing <> 0 OR extra <> 0" 0
grep -q "rebuilt index segments.member_segs_idx concurrently" "$PGHOST/server.log" ||
    fail "the rebuild is not in the server log"
note "ok: the server log says so"

# 3. an invalid index on the table (what a rebuild interrupted by a crash
# leaves behind) is dropped by the next vacuum process.
# First no process of the worker's on the table: the pass of part 2 may
# have left the index past the factor again, and a REINDEX CONCURRENTLY
# running beside the CREATE INDEX CONCURRENTLY below deadlocks with it
# (seen under load: the CREATE lost, before making any index); and a
# vacuum process could drop the invalid index before it is counted.
set_system segments.member_reindex_factor 0
set_system segments.member_vacuum_scale_factor 0
poll "the settings are read" \
     "SELECT current_setting('segments.member_reindex_factor') || ' ' || current_setting('segments.member_vacuum_scale_factor')" "0 0" 30
poll "no vacuum process of the worker's runs (rebuilds and vacuums off)" \
     "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'segments member vacuum'" 0 300
hold "... and none starts (the worker read the settings)" \
     "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'segments member vacuum'" 0 2
q "CREATE UNIQUE INDEX CONCURRENTLY member_segs_idx_ccnew ON segments.member ((1))" 2>/dev/null &&
    fail "the unique index could be built"
expect "an invalid index on segments.member" \
       "SELECT count(*) FROM pg_index WHERE indrelid = 'segments.member'::regclass AND NOT indisvalid" 1
# The crash is played by a restart of the worker (SIGTERM; the launcher
# starts another): the worker that just rebuilt would start its next
# vacuum only ten times that process's duration later (README, Storage
# upkeep: the pacing counts the rebuild), about 70 s on a quiet machine,
# past any fixed wait under load, as a worker after a crash would not.
# Rebuilds stay off: the vacuum that the next pass's rewritten rows make
# due is the process that must drop it.
set_system segments.member_vacuum_scale_factor 0.1
poll "the setting is read" "SHOW segments.member_vacuum_scale_factor" 0.1 30
wpid=$(q "SELECT pid FROM segments.worker")
[ -n "$wpid" ] || fail "no worker pid in segments.worker"
q "SELECT pg_terminate_backend($wpid)" >/dev/null
wait_gone "$wpid" 60
poll "a new worker" "SELECT pid IS NOT NULL AND pid <> $wpid FROM segments.worker" t 120
flip 1
poll "the next vacuum process dropped it" \
     "SELECT count(*) FROM pg_index WHERE indrelid = 'segments.member'::regclass AND NOT indisvalid" 0 180
grep -q "dropping the invalid index segments.member_segs_idx_ccnew" "$PGHOST/server.log" ||
    fail "the drop is not in the server log"
note "ok: the server log says so"

# 4. an index another session builds concurrently is invalid until its
# build ends: the next vacuum process waits for the build, and neither
# drops the index nor deadlocks with it.  A transaction holding a snapshot
# keeps the build in its last phase (it waits for older snapshots).
INVALID="SELECT count(*) FROM pg_index WHERE indrelid = 'segments.member'::regclass AND NOT indisvalid"
WAITING="SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'segments member vacuum' AND wait_event_type = 'Lock'"
PGAPPNAME="segw_snapshot_$$" psql -X -q -v ON_ERROR_STOP=1 \
    -c "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM contacts; SELECT pg_sleep(900)" >/dev/null 2>&1 &
end_snapshot() {
    psql -X -q -d postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'segw_snapshot_$$'" >/dev/null 2>&1
}
on_exit end_snapshot
poll "a transaction holds a snapshot" \
     "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'segw_snapshot_$$' AND backend_xmin IS NOT NULL AND wait_event = 'PgSleep'" 1 60
BUILD_OUT=$(mktemp); on_exit "rm -f $BUILD_OUT"
psql -X -q -v ON_ERROR_STOP=1 -c "CREATE INDEX CONCURRENTLY member_dba_idx ON segments.member (tenant)" >"$BUILD_OUT" 2>&1 &
BUILD=$!
poll "the concurrent build waits for the snapshot, its index invalid" \
     "SELECT (SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX CONCURRENTLY member_dba_idx%' AND wait_event_type = 'Lock') = 1
             AND ($INVALID) = 1 AND (SELECT count(*) FROM pg_class WHERE relname = 'member_dba_idx') = 1" t 60
flip 1
poll "a vacuum process waits for the build" "$WAITING" 1 300
hold "... and goes on waiting, the index there" \
     "SELECT ($WAITING) = 1 AND (SELECT count(*) FROM pg_class WHERE relname = 'member_dba_idx') = 1" t 2
end_snapshot
wait "$BUILD" || fail "the concurrent build failed: $(cat "$BUILD_OUT")"
note "ok: the concurrent build ended (no deadlock with the vacuum process)"
poll "the vacuum process ended" "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'segments member vacuum'" 0 120
expect "the index it built is there and valid, none invalid" \
       "SELECT (SELECT indisvalid FROM pg_index WHERE indexrelid = 'segments.member_dba_idx'::regclass) AND ($INVALID) = 0" t
q "DROP INDEX segments.member_dba_idx" >/dev/null
expect "membership exact after all" "SELECT count(*) FROM segments.verify() WHERE missing <> 0 OR extra <> 0" 0

# 5. what a rebuild measured is kept in segments.member_index_fresh, and a
# restarted worker judges the index by it, not by the defaults.
REBUILDING="SELECT count(*) FROM pg_stat_progress_create_index p JOIN pg_stat_activity a USING (pid)
             WHERE a.backend_type = 'segments member vacuum' AND p.command = 'REINDEX CONCURRENTLY'"
MEMBERSHIPS="(SELECT sum(member_count) FROM segments.segment_state)"
VACUUM_PROCS="SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'segments member vacuum'"
restart_worker() {
    local wpid
    wpid=$(q "SELECT pid FROM segments.worker")
    [ -n "$wpid" ] || fail "no worker pid in segments.worker"
    q "SELECT pg_terminate_backend($wpid)" >/dev/null
    wait_gone "$wpid" 60
    poll "$1" "SELECT pid IS NOT NULL AND pid <> $wpid FROM segments.worker" t 120
}
oid5=$(q "$GIN_OID")
set_system segments.member_reindex_factor 0.1
poll "at a factor of 0.1 the worker rebuilds the GIN index" "SELECT ($GIN_OID) <> $oid5" t 180
set_system segments.member_reindex_factor 0
poll "the setting is read" "SHOW segments.member_reindex_factor" 0 30
poll "the vacuum process ended (the primary key rebuilt too)" "$VACUUM_PROCS" 0 180
expect "the rebuild recorded what the fresh GIN index takes per membership (within 1%)" \
       "SELECT abs(f.bytes_per * $MEMBERSHIPS - pg_relation_size('segments.member_segs_idx')) < 0.01 * pg_relation_size('segments.member_segs_idx')
               AND f.member_relid = 'segments.member'::regclass::oid
          FROM segments.member_index_fresh f WHERE f.index_name = 'member_segs_idx'" t
expect "and the primary key per row" \
       "SELECT f.bytes_per > 8 AND f.member_relid = 'segments.member'::regclass::oid
          FROM segments.member_index_fresh f WHERE f.index_name = 'member_pkey'" t
note "fresh GIN: $(q "SELECT round(bytes_per::numeric, 2) FROM segments.member_index_fresh WHERE index_name = 'member_segs_idx'") B per membership"
# Claim that a fresh GIN index takes 1000 B per membership: a worker that
# reads the table never rebuilds it; one that went back to the defaults
# (1.75 B) would, once the index is past twice that (plus the 1 MB of
# pending list the worker allows for: src/member_vacuum.c).
q "UPDATE segments.member_index_fresh SET bytes_per = 1000 WHERE index_name = 'member_segs_idx'" >/dev/null
restart_worker "a new worker"
set_system segments.member_reindex_factor 2
poll "the setting is read" "SHOW segments.member_reindex_factor" 2 30
oid5=$(q "$GIN_OID")
for i in 1 2 3 4 5 6 7 8 9 10; do
    [ "$(q "SELECT pg_relation_size('segments.member_segs_idx') > 2 * 1.75 * 1.1 * $MEMBERSHIPS + 1048576")" = t ] && break
    flip 1
done
expect "the GIN index is past twice the default fresh size" \
       "SELECT pg_relation_size('segments.member_segs_idx') > 2 * 1.75 * $MEMBERSHIPS + 1048576" t
hold "the restarted worker does not rebuild it (it reads the measured size)" \
     "SELECT ($GIN_OID) = $oid5 AND ($REBUILDING) = 0" t 5
q "DELETE FROM segments.member_index_fresh WHERE index_name = 'member_segs_idx'" >/dev/null
poll "without the measured size (the defaults) the same index is rebuilt" "SELECT ($GIN_OID) <> $oid5" t 180
poll "the vacuum process ended" "$VACUUM_PROCS" 0 180

# 6. a pass that starts ends a rebuild running beside it: the copy it left
# is dropped, the pass goes on, and the index stays the one it was.  A
# transaction holding a snapshot keeps the rebuild waiting in its last
# phase (waiting for older snapshots).
PGAPPNAME="segw_snapshot_$$" psql -X -q -v ON_ERROR_STOP=1 \
    -c "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM contacts; SELECT pg_sleep(900)" >/dev/null 2>&1 &
poll "a transaction holds a snapshot" \
     "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'segw_snapshot_$$' AND backend_xmin IS NOT NULL AND wait_event = 'PgSleep'" 1 60
oid6=$(q "$GIN_OID")
log_before=$(grep -c "ending the rebuild of an index of segments.member" "$PGHOST/server.log" || true)
# the copy of whichever index was being rebuilt (a fresh GIN index of under
# 2 MB is under the 1 MB minimum once 1 MB of pending list is allowed for)
drops_before=$(grep -cE "dropping the invalid index segments.member_(segs_idx|pkey)_cc" "$PGHOST/server.log" || true)
set_system segments.member_reindex_factor 0.1
poll "a rebuild runs, held by the snapshot" "$REBUILDING" 1 180
hold "... and goes on" "$REBUILDING" 1 2
q "SELECT segments.create_segment('late', '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"lte\", \"value\": 70000}')" >/dev/null
start=$SECONDS
until [ "$(grep -c "ending the rebuild of an index of segments.member" "$PGHOST/server.log" || true)" -gt "$log_before" ]; do
    [ $((SECONDS - start)) -lt 120 ] || fail "the worker's pass did not end the rebuild within 120 s"
    sleep 0.2
done
note "ok: the pass ended the rebuild ($((SECONDS - start)) s; the server log says so)"
set_system segments.member_reindex_factor 0
poll "the setting is read" "SHOW segments.member_reindex_factor" 0 30
poll "no rebuild runs" "$REBUILDING" 0 60
poll "the copy it left is dropped while the snapshot is still held" "$INVALID" 0 120
[ "$(grep -cE "dropping the invalid index segments.member_(segs_idx|pkey)_cc" "$PGHOST/server.log" || true)" -gt "$drops_before" ] ||
    fail "the drop of the rebuild's copy is not in the server log"
note "ok: ... by a vacuum process of the worker's (the server log says so)"
expect "the pass ended, the snapshot still held" "SELECT segments.wait('300 s')" t
expect "... and the snapshot is still there" \
       "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'segw_snapshot_$$'" 1
expect "the GIN index is the one before the rebuild" "SELECT ($GIN_OID) = $oid6" t
end_snapshot
expect "late's members" "SELECT count(*) FROM segments.segment_members('late')" 70000
expect "membership exact at the end" "SELECT count(*) FROM segments.verify() WHERE missing <> 0 OR extra <> 0" 0
all_passed

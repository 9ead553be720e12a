#!/usr/bin/env bash
# The worker gives segments.member's free pages back to the disk
# (src/member_compact.c): 60 segments every contact is in make every row
# long, their drop makes them short again and leaves the file mostly free.
# With segments.member_compact_fraction = 0 the file keeps its size; with
# the default, after a vacuum (the worker's, autovacuum's, one by hand) the
# worker moves the rows of the tail into the room before it and truncates
# the table.  Meanwhile a reader counting a segment's members sees every
# member exactly once, the application's changes are applied, the indexes
# find every row, membership stays exact, and the moves record no
# membership change in the history.
. "$(dirname "$0")/common.bash"

MGR="segw_mgr_${TEST_NAME}_$$"
RDR="segw_rdr_${TEST_NAME}_$$"
psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "CREATE ROLE \"$MGR\" LOGIN IN ROLE segments_write" \
     -c "CREATE ROLE \"$RDR\" LOGIN IN ROLE segments_read" >/dev/null
ROLES+=("$MGR" "$RDR")
qm() { psql -X -qAt -v ON_ERROR_STOP=1 -U "$MGR" -c "$1"; }
seg() { qm "SELECT segments.create_segment('$1', '{\"type\": \"attribute\", \"field\": \"$2\", \"op\": \"$3\", \"value\": $4}')" >/dev/null; }
pages() { q "SELECT pg_relation_size('segments.member') / current_setting('block_size')::int"; }
LOG="$PGHOST/server.log"

qa "CREATE TABLE contacts (id bigint PRIMARY KEY, n int NOT NULL, m2 int)"
qa "INSERT INTO contacts SELECT g, g, g % 2 FROM generate_series(1, 60000) g"
qa "GRANT SELECT ON contacts TO \"$MGR\""
q "SELECT segments.configure('contacts', 'id')" >/dev/null
seg even m2 eq 0
seg low n lte 40000
expect "the first pass" "SELECT segments.wait('120 s')" t
set_system segments.member_compact_fraction 0

# 1. long rows, then short ones: the file is left mostly free
for i in $(seq 1 60); do seg "wide $i" n gt "-$i"; done
expect "60 segments every contact is in" "SELECT segments.wait('300 s')" t
wide=$(pages)
qm "SELECT count(segments.drop_segment(s.id)) FROM segments.segments s WHERE s.name LIKE 'wide %'" >/dev/null
poll "the worker stripped the dropped numbers" \
     "SELECT count(*) FROM segments.member m WHERE EXISTS (SELECT FROM unnest(segments._member_segs(m.data)) n
        WHERE NOT EXISTS (SELECT FROM segments.segment s WHERE s.num = n))" 0 300
# rows replaced since the last vacuum make the next one due (the worker's
# or autovacuum's: when autovacuum comes first, the worker's is no longer
# due, and the compaction looks after either).  The worker spaces its
# vacuums by ten times the last one's duration: on a loaded machine the
# one after the strip can hold the next back for minutes.
v0=$(q "SELECT vacuum_count + autovacuum_count FROM pg_stat_user_tables WHERE relid = 'segments.member'::regclass")
seg tail1 n gt 45000
expect "a segment of a quarter of the contacts (its pass replaces their rows)" "SELECT segments.wait('120 s')" t
poll "the table was vacuumed after that pass" \
     "SELECT vacuum_count + autovacuum_count > $v0 FROM pg_stat_user_tables WHERE relid = 'segments.member'::regclass" t 300
note "vacuums since: $(q "SELECT format('%s by the worker or by hand, %s by autovacuum', vacuum_count, autovacuum_count) FROM pg_stat_user_tables WHERE relid = 'segments.member'::regclass") in all"
poll "... and its vacuum process ended" \
     "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'segments member vacuum'" 0 120
off=$(pages)
live=$(q "SELECT ceil(sum(pg_column_size(m.*) + 28) / 8192.0) FROM segments.member m")
note "segments.member: $wide pages with 62 segments, $off after the drop of 60 and a vacuum (its rows need about $live)"
[ "$off" -ge $((live * 2)) ] || fail "the drop left no free room to give back ($off pages, rows need $live): nothing to test"
note "ok: with segments.member_compact_fraction = 0 the file keeps its size ($off pages)"

# 2. the default: after the next vacuum the worker moves the tail's rows
# and truncates.
# A reader counts a segment's members meanwhile; the application changes
# contacts of another segment.
q "CREATE EXTENSION IF NOT EXISTS amcheck" >/dev/null
LOW=$(q "SELECT id FROM segments.segments WHERE name = 'low'")
EVEN=$(q "SELECT id FROM segments.segments WHERE name = 'even'")
changes0=$(q "SELECT count(*) FROM segments.membership_changes WHERE contact_id <= 40000")
WORK="$PGHOST/${TEST_NAME}_$$"; mkdir -p "$WORK"; chmod 777 "$WORK"
on_exit "rm -rf $WORK"
: >"$WORK/reader"; : >"$WORK/stop"; rm -f "$WORK/stop"
# one session, one statement (and snapshot) after another, until killed
for i in $(seq 1 20000); do echo "SELECT count(*) FROM segments.membership WHERE segment_id = '$LOW';"; done >"$WORK/reader.sql"
psql -X -qAt -U "$RDR" -f "$WORK/reader.sql" >"$WORK/reader" 2>&1 & READER=$!
stop_reader() { kill "$READER" 2>/dev/null || true; }
on_exit stop_reader
( i=0; while [ ! -e "$WORK/stop" ]; do
      i=$((i + 1))
      qa "UPDATE contacts SET m2 = 1 - m2 WHERE id BETWEEN 50001 AND 50100" >/dev/null 2>&1 || true
      sleep 0.1
  done ) & WRITER=$!
on_exit "touch $WORK/stop"
logpos=$(stat -c %s "$LOG")
# a vacuum by anyone (here by hand, as autovacuum would) is enough: the
# worker reads the free space map it left
set_system segments.member_compact_fraction 0.2
q "VACUUM segments.member"
poll "the worker moved the tail's rows and truncated the table (below half its size)" \
     "SELECT pg_relation_size('segments.member') / current_setting('block_size')::int < $off / 2" t 180
touch "$WORK/stop"; stop_reader
wait "$READER" "$WRITER" 2>/dev/null || true
after=$(pages)
note "segments.member: $off pages before the compaction, $after after"
tail -c +"$((logpos + 1))" "$LOG" | grep -q "segments: moved [0-9]* rows of segments.member" ||
    fail "the server log has no line of the moves"
note "ok: the server log says how many rows moved"
reads=$(wc -l <"$WORK/reader")
wrong=$(grep -vc '^40000$' "$WORK/reader" || true)
note "the reader counted $reads times during the compaction"
[ "$reads" -gt 0 ] || fail "the reader never counted"
[ "$wrong" = 0 ] || fail "the reader saw a wrong count $wrong times: $(grep -v '^40000$' "$WORK/reader" | sort | uniq -c | head -5 | tr '\n' ' ')"
note "ok: every count was 40000: each row seen once while it moved"

expect "the application's changes were applied" "SELECT segments.wait('60 s')" t
expect "membership is exact" "SELECT count(*) FROM segments.verify() WHERE missing <> 0 OR extra <> 0" 0
expect "the primary key has every row (amcheck heapallindexed)" \
       "SELECT count(*) FROM (SELECT bt_index_check('segments.member_pkey', true)) c" 1
expect "the GIN index finds every member of 'even' (index scan = row count)" \
       "SET enable_seqscan = off; SELECT count(*) = (SELECT member_count FROM segments.segments WHERE name = 'even')
          FROM segments.member WHERE segments._member_segs(data) @> ARRAY[(SELECT num FROM segments.segment WHERE id = '$EVEN')]" t
expect "segment_is_member agrees for contact 2 (even) and 3 (not)" \
       "SELECT segments.segment_is_member(2::bigint, 'even') AND NOT segments.segment_is_member(3::bigint, 'even')" t
expect "the moves recorded no membership change (contacts the application did not touch)" \
       "SELECT count(*) FROM segments.membership_changes WHERE contact_id <= 40000" "$changes0"
expect "the worker is healthy (no error)" "SELECT last_error IS NULL FROM segments.worker" t
all_passed

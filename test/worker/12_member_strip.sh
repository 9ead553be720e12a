#!/usr/bin/env bash
# The worker removes dropped segments' numbers from the stored rows
# (src/member_strip.c): after drop_segment() no row keeps a dropped number
# (rows left with no segment go), the other segments keep exactly their
# members, a segment created right after the drops has exactly its own
# members (numbers are never reused: a new segment never shows a dropped
# one's stale members), and a SIGKILL of the worker in the middle of the
# removal loses nothing: the next worker finishes it.
. "$(dirname "$0")/common.bash"

# the segments' manager, as an application's admin role: no superuser
MGR="segw_mgr_${TEST_NAME}_$$"
psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "CREATE ROLE \"$MGR\" LOGIN IN ROLE segments_write" >/dev/null
ROLES+=("$MGR")
qm() { psql -X -qAt -v ON_ERROR_STOP=1 -U "$MGR" -c "$1"; }
seg() { qm "SELECT segments.create_segment('$1', '{\"type\": \"attribute\", \"field\": \"$2\", \"op\": \"$3\", \"value\": $4}')" >/dev/null; }

qa "CREATE TABLE contacts (id bigint PRIMARY KEY, n int NOT NULL, m2 int, m3 int, m5 int, m7 int)"
qa "INSERT INTO contacts SELECT g, g, g % 2, g % 3, g % 5, g % 7 FROM generate_series(1, 60000) g"
qa "GRANT SELECT ON contacts TO \"$MGR\""
q "SELECT segments.configure('contacts', 'id')" >/dev/null
seg even m2 eq 0
seg third m3 eq 0
seg fifth m5 eq 0
seg everyone n gt 0
seg seventh m7 eq 0
seg first100 n lte 100
expect "the first pass" "SELECT segments.wait('120 s')" t

# rows holding a number no segment has (via the codec's own decoding)
STALE="SELECT count(*) FROM segments.member m
        WHERE EXISTS (SELECT FROM unnest(segments._member_segs(m.data)) n
                       WHERE NOT EXISTS (SELECT FROM segments.segment s WHERE s.num = n))"
# the numbers that no segment has any more, and the rows holding any
dropped_nums() { q "SELECT array_agg(num ORDER BY num) FROM segments.segment WHERE name IN ($1)"; }
exact() {
    expect "$1" "SELECT '$(mismatches even 'SELECT id FROM contacts WHERE id % 2 = 0')$(mismatches fifth 'SELECT id FROM contacts WHERE id % 5 = 0')$(mismatches first100 'SELECT id FROM contacts WHERE id <= 100')'" 000
}

# 1. three segments dropped by the manager: the worker strips their numbers
D1=$(dropped_nums "'third', 'everyone', 'seventh'")
qm "SELECT segments.drop_segment('third'), segments.drop_segment('everyone'), segments.drop_segment('seventh')" >/dev/null
held=$(q "SELECT count(*) FROM segments.member WHERE segments._member_segs(data) && '$D1'")
note "right after the drops, $held rows hold a dropped number ($D1)"
[ "$held" -gt 0 ] || fail "the drops already rewrote the rows: nothing was tested"
poll "the worker removed the dropped numbers from every row" "$STALE" 0 120
expect "... and the GIN index finds none of them" \
       "SELECT count(*) FROM segments.member WHERE segments._member_segs(data) && '$D1'" 0
expect "rows left with no segment are gone: one row per contact in a segment" \
       "SELECT count(*) FROM segments.member" \
       "$(q "SELECT count(*) FROM contacts WHERE id % 2 = 0 OR id % 5 = 0 OR id <= 100")"
exact "the other segments keep exactly their members"
expect "their counts too" \
       "SELECT string_agg(name || '=' || member_count, ',' ORDER BY name) FROM segments.segments" \
       "even=30000,fifth=12000,first100=100"
expect "the worker is healthy (no error)" "SELECT last_error IS NULL FROM segments.worker" t

# 2. a segment created right after a drop: a new number, its own members only
seg third_again m3 eq 0
expect "its pass" "SELECT segments.wait('120 s')" t
expect "a new segment gets a number no dropped segment had" \
       "SELECT num > (SELECT max(n) FROM unnest('$D1'::int[]) n) FROM segments.segment WHERE name = 'third_again'" t
expect "... and exactly its own members (none of a dropped segment's)" \
       "SELECT '$(mismatches third_again 'SELECT id FROM contacts WHERE id % 3 = 0')'" 0
expect "... through segment_is_member too (7 was in 'seventh', 3 is a third)" \
       "SELECT NOT segments.segment_is_member(7::bigint, 'third_again') AND segments.segment_is_member(3::bigint, 'third_again')" t
expect "... and through the membership view, for the manager" \
       "SELECT '$(qm "SELECT count(*) FROM segments.membership m JOIN segments.segments s ON s.id = m.segment_id WHERE s.name = 'third_again'")'" 20000

# 3. SIGKILL of the worker in the middle of a removal.  A session holds one
# row of the last pages (one that holds a dropped number) locked, so the
# removal stops there: the rows before it are done, that one is not.
seg sixth m2 eq 0
expect "its pass" "SELECT segments.wait('120 s')" t
D2=$(dropped_nums "'sixth', 'third_again'")
last=$(q "SELECT contact_id FROM segments.member WHERE segments._member_segs(data) && '$D2'
            ORDER BY ctid DESC LIMIT 1")
pages=$(q "SELECT pg_relation_size('segments.member') / current_setting('block_size')::int")
psql -X -qAt -v ON_ERROR_STOP=1 -c "SET application_name = 'segw_rowlock'" -c "BEGIN" \
     -c "SELECT 1 FROM segments.member WHERE contact_id = $last FOR UPDATE" -c "SELECT pg_sleep(600)" >/dev/null 2>&1 &
ROWLOCK=$!
poll "a session holds the row of contact $last (of $pages pages)" \
     "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'segw_rowlock' AND wait_event = 'PgSleep'" 1 30
before=$(q "SELECT count(*) FROM segments.member WHERE segments._member_segs(data) && '$D2'")
qm "SELECT segments.drop_segment('sixth'), segments.drop_segment('third_again')" >/dev/null
poll "the removal stops at the locked row, the rows before it done" \
     "SELECT count(*) > 0 FROM pg_locks l JOIN segments.worker w ON w.pid = l.pid WHERE l.locktype = 'transactionid' AND NOT l.granted" t 120
mid=$(q "SELECT count(*) FROM segments.member WHERE segments._member_segs(data) && '$D2'")
note "rows holding the dropped numbers: $before before, $mid when the worker is killed"
[ "$mid" -lt "$before" ] && [ "$mid" -gt 0 ] || fail "not in the middle of the removal: $before rows before, $mid now"
note "ok: the worker was killed in the middle of the removal"
pid=$(q "SELECT pid FROM segments.worker")
kill -KILL "$pid"
wait_gone "$pid" 60
wait "$ROWLOCK" 2>/dev/null || true      # the crash restart ended its session
wait_server
poll "after the crash, the next worker removes the rest" "$STALE" 0 120
expect "the contact of the locked row is stripped too" \
       "SELECT count(*) FROM segments.member WHERE contact_id = $last AND segments._member_segs(data) && '$D2'" 0
exact "nothing lost: the other segments keep exactly their members"
expect "one row per contact in a segment" \
       "SELECT count(*) FROM segments.member" \
       "$(q "SELECT count(*) FROM contacts WHERE id % 2 = 0 OR id % 5 = 0 OR id <= 100")"
expect "membership exact after all" "SELECT count(*) FROM segments.verify() WHERE missing <> 0 OR extra <> 0" 0
all_passed

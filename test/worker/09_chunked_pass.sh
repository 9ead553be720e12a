#!/usr/bin/env bash
# The chunked pass (src/pass_chunked.c): segments created together are
# evaluated by one pass over the source, in chunks of
# segments.pass_chunk_size contacts, each its own transaction; contact
# changes committed meanwhile are applied between chunks (visible before
# the pass ends, for ready segments and for the segments of the pass alike);
# a segment changed during the pass leaves it for the next one; a SIGKILL of
# the worker midway resumes the pass from its last chunk; verify() finds no
# difference at the end.  A trigger on segments.member that sleeps per
# written row makes each chunk take about a second (a contact change writes
# one row), so the pass is long whatever the machine.
. "$(dirname "$0")/common.bash"

set_system segments.pass_chunk_size 1000     # reset on exit (common.bash)

qa "CREATE TABLE contacts (id bigint PRIMARY KEY, plan text, seats int)"
qa "INSERT INTO contacts SELECT g, CASE WHEN g % 10 = 0 THEN 'vip' ELSE 'free' END, g % 40
     FROM generate_series(1, 12000) g"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
q "SELECT segments.create_segment('VIP', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}')" >/dev/null
expect "wait() after the first segment" "SELECT segments.wait('60 s')" t
expect "the setting is read" "SHOW segments.pass_chunk_size" 1000

q "CREATE FUNCTION slow_write() RETURNS trigger LANGUAGE plpgsql AS
   \$\$ BEGIN PERFORM pg_catalog.pg_sleep(0.001); RETURN NEW; END \$\$"
member_ddl "CREATE TRIGGER slow_write BEFORE INSERT OR UPDATE ON segments.member
     FOR EACH ROW EXECUTE FUNCTION slow_write()"

# 1. thirty segments in one transaction: one pass
p0=$(q "SELECT passes FROM segments.stat_worker")
s0=$(q "SELECT segments_evaluated FROM segments.stat_worker")
sql="BEGIN;"
for n in $(seq 1 30); do
    sql="$sql SELECT segments.create_segment('Seats $n', '{\"type\": \"attribute\", \"field\": \"seats\", \"op\": \"gte\", \"value\": $n}');"
done
q "$sql COMMIT;" >/dev/null
poll "a pass of the 30 segments is under way, past its first chunk" \
     "SELECT pass_segments = 30 AND pass_contacts_done >= 1000 AND pass_contacts_total = 12000
        FROM segments.worker" t 60
expect "they are evaluating meanwhile" \
       "SELECT count(*) FROM segments.status WHERE name LIKE 'Seats %' AND state = 'evaluating'" 30
started=$(q "SELECT pass_started_at FROM segments.worker")
# each chunk moves the counts of the pass's segments with its writes (one
# statement for all of them), in the same transaction: exact at any moment
expect "member counts follow the chunks while the pass runs" \
       "SELECT count(*) FILTER (WHERE member_count <> (SELECT count(*) FROM segments.segment_members(s.segment_id))),
               count(*) FILTER (WHERE member_count > 0)
          FROM segments.status s WHERE name LIKE 'Seats %'" "0|30"

# a change in the range already visited (contact 1) and one not yet visited
# (contact 11999), to a ready segment and to segments of the pass
done_before=$(q "SELECT pass_contacts_done FROM segments.worker")
[ "$done_before" -lt 11000 ] || fail "the pass is nearly over: nothing would be tested"
qa "UPDATE contacts SET plan = 'vip', seats = 39 WHERE id IN (1, 11999)"
poll "changes visible before the pass ends (ready segment)" \
     "SELECT segments.segment_is_member(1, 'VIP') AND segments.segment_is_member(11999, 'VIP')" t 30
expect "... and for the segments of the pass, in a visited range" \
       "SELECT segments.segment_is_member(1, 'Seats 30')" t
expect "... the pass is still the same one, not over" \
       "SELECT pass_started_at = '$started' AND pass_contacts_done < 12000 FROM segments.worker" t
qa "UPDATE contacts SET seats = 0 WHERE id = 2"
poll "a contact leaving segments of the pass, in a visited range" \
     "SELECT segments.segment_is_member(2, 'Seats 1')" f 30
expect "... while the pass goes on" "SELECT pass_started_at = '$started' FROM segments.worker" t

# a segment redefined during the pass leaves it, for the next one
q "SELECT segments.update_segment('Seats 30', definition => '{\"type\": \"attribute\", \"field\": \"seats\", \"op\": \"lt\", \"value\": 5}')" >/dev/null
expect "wait() after everything" "SELECT segments.wait('180 s')" t
expect "one pass for the 30 segments, one more for the redefined one" \
       "SELECT passes - $p0 FROM segments.stat_worker" 2
expect "31 segment evaluations counted" \
       "SELECT segments_evaluated - $s0 FROM segments.stat_worker" 31
expect "no pass left in progress" "SELECT pass_started_at IS NULL FROM segments.worker" t
expect "all ready" "SELECT count(*) FROM segments.status WHERE state <> 'ready'" 0
all_exact "after the pass"
expect "the redefined segment has its new members" \
       "SELECT member_count FROM segments.status WHERE name = 'Seats 30'" \
       "$(q "SELECT count(*) FROM contacts WHERE seats < 5")"

# 2. SIGKILL of the worker midway: the pass resumes from its last chunk
sql="BEGIN;"
for n in $(seq 1 10); do
    sql="$sql SELECT segments.update_segment('Seats $n', definition => '{\"type\": \"attribute\", \"field\": \"seats\", \"op\": \"lte\", \"value\": $n}');"
done
q "$sql COMMIT;" >/dev/null
poll "a pass of the 10 redefined segments is under way" \
     "SELECT pass_segments = 10 AND pass_contacts_done >= 2000 FROM segments.worker" t 60
# The worker is held between two chunks (block_worker, common.bash), and
# its chunks so far are on disk (they commit without waiting for the
# flush): a change of a contact the pass visited (3: leaves "Seats 3" to
# "Seats 10") and one it has not (11998) wait in the shared-memory ring,
# lost with it when the worker is killed.  The pass took the changes of
# the contacts it visited from the ring: resumed from its cursor, it never
# visits 3 again (it left 3 a member of its segments before the fix).
block_worker
q "CHECKPOINT"
qa "UPDATE contacts SET seats = 39 WHERE id = 3"
qa "UPDATE contacts SET seats = 3 WHERE id = 11998"
expect "both changes wait in the ring" \
       "SELECT count(*) FROM segments._capture_ring_keys() k(key) WHERE k.key IN ('3', '11998')" 2
expect "the pass has visited contact 3, not 11998" \
       "SELECT pass_contacts_done >= 2000 AND pass_contacts_done < 11000 FROM segments.worker" t
pid=$(q "SELECT pid FROM segments.worker")
kill -KILL "$pid"
note "killed worker $pid midway through the pass"
wait_gone "$pid" 60
BLOCKER=""     # its session ended with the crash
wait_server
expect "wait() after the crash" "SELECT segments.wait('180 s')" t
grep -q "database \"$DB\" resumes the evaluation pass" "$SEGMENTS_TMP/server.log" ||
    fail "the server log does not show the pass resumed"
note "ok: the restarted worker resumed the pass"
expect "the change lost with the ring, of a contact the pass had visited, is in membership" \
       "SELECT segments.segment_is_member(3, 'Seats 3') OR segments.segment_is_member(3, 'Seats 10')" f
expect "... and the one of a contact it had not visited" "SELECT segments.segment_is_member(11998, 'Seats 3')" t
grep -q "database \"$DB\": the evaluation pass in progress starts over" "$SEGMENTS_TMP/server.log" ||
    fail "the server log does not show the pass starting over after the ring was lost"
note "ok: ... from the first contact, the ring's changes lost"
expect "all ready after the crash" "SELECT count(*) FROM segments.status WHERE state <> 'ready'" 0
expect "no pass left in progress" "SELECT count(*) FROM segments.pass" 0
all_exact "after the crash"
# (the sum of a segment's evaluation times was multiplied by 1000 at each
# pass that completed, and overflowed after about a hundred: the segment
# then failed at every pass; "Seats 1" to "Seats 10" have had two each)
expect "each segment's evaluation time is at most the time since it was created" \
       "SELECT count(*) FROM segments.stat_segments st JOIN segments.segment s ON s.id = st.segment_id
         WHERE st.evaluation_time > 1000 * extract(epoch FROM clock_timestamp() - s.created_at)" 0

# 3. stored rows of contacts that are not in the source (left without a
# change the worker applied: here written directly, with their counts):
# the chunks of the next pass delete them, range by range (the keys a
# chunk visited against the stored rows of its range), and the counts of
# every segment follow
qa "DELETE FROM contacts WHERE id % 97 = 0"
poll "the deletions applied" "SELECT count(*) FROM segments.member m WHERE m.contact_id % 97 = 0" 0 30
q "WITH fake AS (INSERT INTO segments.member (contact_id, data)
                 SELECT m.contact_id + 1, m.data FROM segments.member m
                  WHERE (m.contact_id + 1) % 97 = 0 RETURNING data),
        c AS (SELECT u.num, count(*) AS n FROM fake, unnest(segments._member_segs(fake.data)) u(num) GROUP BY u.num)
   UPDATE segments.segment_state st SET member_count = st.member_count + c.n
     FROM c JOIN segments.segment s ON s.num = c.num WHERE st.segment_id = s.id" >/dev/null
expect "rows of contacts not in the source are stored" \
       "SELECT count(*) FROM segments.member m WHERE m.contact_id % 97 = 0" \
       "$(q "SELECT count(*) FROM generate_series(1, 12000) g WHERE g % 97 = 0")"
expect "member counts count them" \
       "SELECT count(*) FROM segments.status s
         WHERE member_count <> (SELECT count(*) FROM segments.segment_members(s.segment_id))" 0
q "SELECT segments.update_segment('Seats 5', definition => '{\"type\": \"attribute\", \"field\": \"seats\", \"op\": \"gte\", \"value\": 6}')" >/dev/null
expect "wait() after the pass" "SELECT segments.wait('180 s')" t
expect "the pass deleted the departed contacts' rows" \
       "SELECT count(*) FROM segments.member m WHERE m.contact_id % 97 = 0" 0
expect "... no stored row of a contact not in the source" \
       "SELECT count(*) FROM segments.member m WHERE NOT EXISTS (SELECT 1 FROM contacts c WHERE c.id = m.contact_id)" 0
all_exact "after departures"
all_passed

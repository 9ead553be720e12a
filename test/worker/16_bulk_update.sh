#!/usr/bin/env bash
# Rows whose membership changed are replaced without the UPDATE statement
# (src/member_bulk.c, MemberBulkUpdate): (1) the worker applying the
# application's changes and (2) a refresh() after a redefinition store the
# rows the UPDATE statement stores (a BEFORE UPDATE ROW trigger on
# segments.member makes them use it: (3)); history records exactly the
# entries and exits the rows differ by, through both paths; the GIN index
# and the primary key agree with the rows (amcheck); (4) a member row that
# another session changes while the worker's batch waits for it is written
# by key, as the statement would (the batch's fallback); (5) a refresh()
# cancelled after its replacements leaves membership as it was; (6) a GIN
# index not yet ready for inserts (a concurrent build's) is left to it.
. "$(dirname "$0")/common.bash"

N=20000
# no index rebuild by the worker's vacuum process: its REINDEX CONCURRENTLY
# waits for every older transaction, and the DDL below on segments.member
# (CREATE/DROP TRIGGER) for its lock: a deadlock that fails the DDL
set_system segments.member_reindex_factor 0
div_contacts "$N"
q "SELECT segments.create_segment('odd', '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"in\", \"value\": [1, 3, 5, 7, 9, 11, 13]}')" >/dev/null
expect "segments evaluated" "SELECT segments.wait('60 s')" t
# 'odd' was created while the worker evaluated the others: its cached
# catalog must not keep it unknown (history took its number for a
# dropped segment's and recorded none of its entries)
expect "each first evaluation recorded one entry per member" \
       "SELECT string_agg(s.name || ' ' || s.member_count || '/' ||
                          (SELECT count(*) FROM segments.membership_changes h WHERE h.segment_id = s.id AND h.entered), ', ' ORDER BY s.name)
          FROM segments.segments s" \
       "$(q "SELECT string_agg(s.name || ' ' || s.member_count || '/' || s.member_count, ', ' ORDER BY s.name) FROM segments.segments s")"
q "CREATE EXTENSION IF NOT EXISTS amcheck" >/dev/null

ROWS="SELECT contact_id, segments._member_segs(data) AS segs, tenant FROM segments.member"
snapshot() { q "DROP TABLE IF EXISTS $1; CREATE TABLE $1 AS $ROWS"; }
LAST="SELECT coalesce(max(change_id), 0) FROM segments.change_log"
# snapshot_last NAME: snapshot NAME, and prints the last change_id that the
# same snapshot sees (ids are drawn in commit order: the changes those rows
# include).  Read apart, a change committed between the two would be in
# neither the history after the id nor the difference from the rows.
snapshot_last() {
    q "DROP TABLE IF EXISTS $1"
    psql -X -qAt -v ON_ERROR_STOP=1 -c "BEGIN ISOLATION LEVEL REPEATABLE READ" \
         -c "CREATE TABLE $1 AS $ROWS" -c "$LAST" -c "COMMIT"
}
same() { echo "SELECT count(*) FROM (($ROWS EXCEPT SELECT * FROM $1) UNION ALL (SELECT * FROM $1 EXCEPT $ROWS)) d"; }
# (contact, segment number) pairs of a snapshot, or of the table now
pairs() { echo "SELECT contact_id, unnest(segs) AS num FROM $1"; }
NOW="($ROWS) r"
# history since change_id $1 against the difference of snapshot $2 and now:
# every entry and exit recorded once, nothing else
history_matches() {
    local h_want="WITH h AS (SELECT h.contact_id, g.num, h.entered FROM segments.membership_changes h
                     JOIN segments.segment g ON g.id = h.segment_id WHERE h.change_id > $1),
             want AS ((SELECT contact_id, num, true AS entered FROM ($(pairs "$NOW")) a
                       EXCEPT SELECT contact_id, num, true FROM ($(pairs "$2")) b)
                      UNION ALL
                      (SELECT contact_id, num, false FROM ($(pairs "$2")) b
                       EXCEPT SELECT contact_id, num, false FROM ($(pairs "$NOW")) a))"
    local want got
    want="$(q "SELECT count(*) FROM ((SELECT * FROM ($(pairs "$NOW")) a EXCEPT SELECT * FROM ($(pairs "$2")) b)
                                     UNION ALL (SELECT * FROM ($(pairs "$2")) b EXCEPT SELECT * FROM ($(pairs "$NOW")) a)) d")/0"
    got=$(q "$h_want
        SELECT (SELECT count(*) FROM h) || '/' ||
               (SELECT count(*) FROM ((SELECT * FROM h EXCEPT ALL SELECT * FROM want)
                                      UNION ALL (SELECT * FROM want EXCEPT ALL SELECT * FROM h)) d)") ||
        fail "$3: history records exactly the entries and exits: query failed"
    if [ "$got" != "$want" ]; then
        # what differs, for the log: (contact, number, entered) and on which side
        q "$h_want (SELECT 'recorded, not a difference', * FROM (SELECT * FROM h EXCEPT ALL SELECT * FROM want) x LIMIT 10)
                   UNION ALL (SELECT 'a difference, not recorded', * FROM (SELECT * FROM want EXCEPT ALL SELECT * FROM h) y LIMIT 10)" >&2 || true
        q "SELECT 'segment', num, name FROM segments.segment ORDER BY num" >&2 || true
        fail "$3: history records exactly the entries and exits: expected '$want', got '$got'"
    fi
    note "ok: $3: history records exactly the entries and exits"
}
# the GIN index, the primary key and verify() agree with the stored rows
indexes_agree() {
    gin_agrees "$1: the GIN index answers as the stored rows say (index scan)"
    expect "$1: the primary key has every row (amcheck heapallindexed)" \
       "SELECT count(*) FROM (SELECT bt_index_check('segments.member_pkey', true)) c" 1
    expect "$1: verify() finds no difference" \
       "SELECT count(*) FROM segments.verify() WHERE missing + extra > 0" 0
}
# the application's changes: contacts move between segments (rows
# replaced), leave them all (rows deleted), come in (rows inserted), and
# change tenant (the stored tenant follows)
CHANGES="UPDATE contacts SET n = n + $((N / 8)) WHERE id % 7 = 0;
         UPDATE contacts SET n = n - $((N / 4)) WHERE id % 11 = 0 AND n > $((N / 4));
         UPDATE contacts SET org = CASE WHEN org IS NULL THEN 'org9' ELSE NULL END WHERE id % 13 = 0;
         UPDATE contacts SET n = 2 * n + 1 WHERE id BETWEEN 1 AND 6"
UNDO="UPDATE contacts SET n = id, org = CASE WHEN id % 10 = 0 THEN NULL ELSE 'org' || (id % 3) END"

# 1. the worker applies the application's changes
h=$(snapshot_last before1)
qa "$CHANGES"
expect "(1) the changes are applied" "SELECT segments.wait('60 s')" t
snapshot bulk1
history_matches "$h" before1 "(1) the worker"
indexes_agree "(1) the worker"
expect "(1) rows of contacts that changed tenant hold the new one" \
       "SELECT count(*) FROM segments.member m JOIN contacts c ON c.id = m.contact_id WHERE m.tenant IS DISTINCT FROM c.org" 0

# 2. a redefinition: refresh() replaces the rows of the segment's members
h=$(snapshot_last before2)
q "SELECT segments.update_segment('div3', definition => '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"gte\", \"value\": $((N / 3))}')" >/dev/null
q "SELECT segments.refresh()" >/dev/null
snapshot bulk2
history_matches "$h" before2 "(2) refresh() after a redefinition"
indexes_agree "(2) refresh()"

# 3. the same through the UPDATE statement: a BEFORE UPDATE ROW trigger
#    keeps rows from the bulk path.  From the state before (1), the same
#    changes and redefinition give the same rows.
q "SELECT segments.update_segment('div3', definition => '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"lte\", \"value\": $((N * 3 / 8))}')" >/dev/null
qa "$UNDO"
expect "(3) back to the start" "SELECT segments.wait('60 s')" t
expect "(3) the rows are those before (1)" "$(same before1)" 0
q "CREATE FUNCTION public.pass_row() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'"
q "CREATE TRIGGER pass_row BEFORE UPDATE ON segments.member FOR EACH ROW EXECUTE FUNCTION public.pass_row()"
h=$(snapshot_last before3)
qa "$CHANGES"
expect "(3) the changes are applied through the statement" "SELECT segments.wait('60 s')" t
expect "(3) the UPDATE statement stores the rows the bulk path stored" "$(same bulk1)" 0
history_matches "$h" before3 "(3) the statement"
q "SELECT segments.update_segment('div3', definition => '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"gte\", \"value\": $((N / 3))}')" >/dev/null
q "SELECT segments.refresh()" >/dev/null
expect "(3) and after the redefinition too" "$(same bulk2)" 0
q "DROP TRIGGER pass_row ON segments.member"

# 4. another session (a superuser's: the test's) changes a member row and
#    holds it: the worker's batch read the row before and waits for it;
#    once that commits, the row it read is no longer the current one and
#    the batch writes the contact's row by key.  Membership ends exact.
victim=$(q "SELECT contact_id FROM segments.member ORDER BY contact_id LIMIT 1")
psql -X -qAt -v ON_ERROR_STOP=1 -c "SET application_name = 'segw_holder'" -c "BEGIN" \
     -c "UPDATE segments.member SET tenant = tenant WHERE contact_id = $victim" \
     -c "SELECT pg_sleep(4)" -c "COMMIT" >/dev/null 2>&1 &
holder=$!
poll "(4) a session holds the row" \
     "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'segw_holder' AND query LIKE '%pg_sleep%'" 1 30
qa "UPDATE contacts SET n = n + $((N / 2)) WHERE id = $victim"
poll "(4) the worker waits for the held row" \
     "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'segments worker'
         AND datname = current_database() AND wait_event_type = 'Lock'" 1 30
wait "$holder" || fail "(4) the holding session failed"
expect "(4) the change is applied after the holder committed" "SELECT segments.wait('60 s')" t
expect "(4) the contact's row follows the change" \
       "SELECT segments.segment_is_member($victim::bigint, 'div5') = ((SELECT n FROM contacts WHERE id = $victim) <= $((N * 5 / 8)))
           AND NOT segments.segment_is_member($victim::bigint, 'div2')" t
indexes_agree "(4) after the wait"
expect "(4) no segment failed" "SELECT count(*) FROM segments.segments WHERE status <> 'ready'" 0

# 5. cancelled after its replacements: nothing of it stays.  A statement
#    trigger sleeps after the rows are replaced.
worker_off "(5)"
snapshot before5
q "SELECT segments.update_segment('div5', definition => '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"gte\", \"value\": 10}')" >/dev/null
q "CREATE FUNCTION public.slow_statement() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN PERFORM pg_catalog.pg_sleep(30); RETURN NULL; END \$\$"
q "CREATE TRIGGER slow_pass AFTER UPDATE ON segments.member FOR EACH STATEMENT EXECUTE FUNCTION public.slow_statement()"
cancelled=$(psql -X -qAt -c "SET statement_timeout = '2s'" -c "SELECT segments.refresh()" 2>&1 || true)
q "DROP TRIGGER slow_pass ON segments.member"
case "$cancelled" in
    *"canceling statement due to statement timeout"*) note "ok: (5) refresh() was cancelled after replacing rows";;
    *) fail "(5) refresh() was not cancelled: $cancelled";;
esac
expect "(5) a cancelled refresh() leaves the rows as they were" "$(same before5)" 0
q "SELECT segments.refresh()" >/dev/null
expect "(5) the next refresh() writes the redefinition" \
       "SELECT count(*) FROM segments.segment_members('div5')" "$(q "SELECT count(*) FROM contacts WHERE n >= 10")"
indexes_agree "(5) the next refresh()"

# 6. beside a GIN index not yet built (REINDEX CONCURRENTLY's copy, as the
#    worker's vacuum process makes it): CREATE INDEX CONCURRENTLY waits,
#    the index empty and not ready for inserts, for a session holding
#    segments.member's ROW EXCLUSIVE lock; a refresh() replacing rows
#    leaves it to the build.
q "SELECT segments.update_segment('div5', definition => '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"lte\", \"value\": $((N * 5 / 8))}')" >/dev/null
refresh_beside_unbuilt_gin "(6)" "replacing rows"
expect "(6) the rows are those before (5)" "$(same before5)" 0
indexes_agree "(6) after the build"
q "DROP INDEX segments.member_unbuilt"
q "ALTER DATABASE \"$DB\" RESET segments.enabled"

all_passed

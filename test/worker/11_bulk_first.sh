#!/usr/bin/env bash
# A pass's new membership rows (src/member_bulk.c: heap rows in bulk, GIN
# entries gathered per segment number, triggers fired as for an INSERT)
# store what the INSERT statement stored: a first refresh() into an empty
# table, one into a half-filled table and one forced through the INSERT
# statement (a BEFORE ROW trigger on segments.member makes the pass use
# it) give the same rows, verify() finds no difference, the GIN index
# answers as the rows say, history records one entry per membership on
# each path; a refresh() cancelled midway leaves membership as it was; a
# reader of segment_is_member() is not blocked by a first pass; tenants
# and contacts without one; the GIN index agrees with the rows after a
# pass into a half-filled table; a GIN index not yet ready for inserts (a
# concurrent build's) is left to its build; a DBA's CHECK or NOT NULL
# constraint holds.
. "$(dirname "$0")/common.bash"

worker_off

N=30000
div_contacts "$N"
q "SELECT segments.create_segment('none', '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"lt\", \"value\": 0}')" >/dev/null
# a tenant's segment holds only that tenant's contacts
psql -X -q -d postgres -c "CREATE ROLE \"segw_t1_$$\" LOGIN" >/dev/null; ROLES+=("segw_t1_$$")
q "GRANT segments_write TO \"segw_t1_$$\""
qa "GRANT SELECT ON contacts TO \"segw_t1_$$\""
q "ALTER ROLE \"segw_t1_$$\" IN DATABASE \"$DB\" SET segments.tenant = 'org1'"
psql -X -qAt -v ON_ERROR_STOP=1 -U "segw_t1_$$" -c "SELECT segments.create_segment('mine', '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"gt\", \"value\": 0}')" >/dev/null

ROWS="SELECT contact_id, segments._member_segs(data) AS segs, tenant FROM segments.member"
snapshot() { q "DROP TABLE IF EXISTS $1; CREATE TABLE $1 AS $ROWS"; }
same() { echo "SELECT count(*) FROM (($ROWS EXCEPT SELECT * FROM $1) UNION ALL (SELECT * FROM $1 EXCEPT $ROWS)) d"; }
# entries recorded, as the feed expands them (a statement of many contacts
# is stored in bulk rows of up to 256 contacts)
LOG="(SELECT count(*) FROM segments.membership_changes WHERE entered)"
MEMBERSHIPS="SELECT sum(cardinality(segments._member_segs(data))) FROM segments.member"

# 1. into the empty table
l0=$(q "SELECT $LOG")
q "SELECT segments.refresh()" >/dev/null
snapshot first
expect "a first refresh() stores a row for every contact in a segment" \
       "SELECT count(*) FROM segments.member" "$(q "SELECT count(*) FROM contacts WHERE n <= $((N * 7 / 8)) OR org = 'org1'")"
expect "verify() finds no difference after the first refresh()" \
       "SELECT count(*) FROM segments.verify() WHERE missing + extra > 0" 0
expect "the tenant's segment holds its tenant's contacts only" \
       "SELECT count(*) FILTER (WHERE c.org IS DISTINCT FROM 'org1') || '/' || count(*)
          FROM segments.segment_members('mine') m JOIN contacts c ON c.id = m" "0/$(q "SELECT count(*) FROM contacts WHERE org = 'org1'")"
expect "contacts without a tenant are stored without one" \
       "SELECT count(*) FROM segments.member m JOIN contacts c ON c.id = m.contact_id
         WHERE m.tenant IS DISTINCT FROM c.org" 0
gin_agrees "the GIN index answers as the stored rows say (index scan)"
expect "history recorded every membership of the first refresh()" \
       "SELECT $LOG - $l0" "$(q "$MEMBERSHIPS")"
expect "no segment number in the index without its row" \
       "SELECT count(*) FROM segments.segment_members('none')" 0

# 2. into a half-filled table (the half read, the rest inserted)
q "DELETE FROM segments.member WHERE contact_id % 2 = 0"
q "SELECT segments.refresh()" >/dev/null
expect "a refresh() into a half-filled table stores the same rows" "$(same first)" 0
# rows inserted into pages with free space: a segment number's heap
# pointers out of order within a batch, sorted before the GIN insertion
gin_agrees "... and the GIN index answers as they say"
expect "... and verify() finds no difference" \
       "SELECT count(*) FROM segments.verify() WHERE missing + extra > 0" 0

# 3. the INSERT statement's path: a BEFORE ROW trigger keeps rows from the bulk path
q "CREATE FUNCTION public.pass_row() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'"
q "CREATE TRIGGER pass_row BEFORE INSERT ON segments.member FOR EACH ROW EXECUTE FUNCTION public.pass_row()"
q "TRUNCATE segments.member"
l1=$(q "SELECT $LOG")
q "SELECT segments.refresh()" >/dev/null
expect "the INSERT statement's path stores the same rows as the bulk path" "$(same first)" 0
expect "... and history records as many entries" "SELECT $LOG - $l1" "$(q "SELECT sum(cardinality(segs)) FROM first")"
q "DROP TRIGGER pass_row ON segments.member"

# 4. cancelled midway, after its rows are written: nothing of it stays.  A
# statement trigger on segments.member (which the bulk path fires, as the
# INSERT it replaces) sleeps, so the cancellation always comes after the
# bulk insertion and before the commit, however fast the machine.
q "TRUNCATE segments.member"
q "CREATE FUNCTION public.slow_statement() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN PERFORM pg_catalog.pg_sleep(30); RETURN NULL; END \$\$"
q "CREATE TRIGGER slow_pass AFTER INSERT ON segments.member FOR EACH STATEMENT EXECUTE FUNCTION public.slow_statement()"
cancelled=$(psql -X -qAt -c "SET statement_timeout = '2s'" -c "SELECT segments.refresh()" 2>&1 || true)
q "DROP TRIGGER slow_pass ON segments.member"
case "$cancelled" in
    *"canceling statement due to statement timeout"*) note "ok: a first refresh() was cancelled after writing its rows";;
    *) fail "the first refresh() was not cancelled: $cancelled";;
esac
expect "a cancelled first refresh() leaves no row" "SELECT count(*) FROM segments.member" 0
expect "... and leaves the index empty" "SELECT count(*) FROM segments.segment_members('div7')" 0
q "SELECT segments.refresh()" >/dev/null
expect "the next refresh() stores the same rows" "$(same first)" 0

# 5. a reader during a first pass is not blocked
q "TRUNCATE segments.member"
psql -X -qAt -c "SELECT segments.refresh()" >/dev/null 2>&1 &
pass=$!
reads=0
while kill -0 "$pass" 2>/dev/null; do
    got=$(psql -X -qAt -v ON_ERROR_STOP=1 -c "SET statement_timeout = '5s'" \
          -c "SELECT segments.segment_is_member(1::bigint, 'div2')" 2>&1) ||
        fail "a reader during the first pass failed: $got"
    reads=$((reads + 1))
done
wait "$pass" || fail "the first refresh() failed"
note "ok: $reads reads of segment_is_member() during a first pass, none blocked beyond 5 s"
expect "after it, the reader sees the new membership" "SELECT segments.segment_is_member(1::bigint, 'div2')" t
expect "and the rows are those of the first refresh()" "$(same first)" 0

# 6. a GIN index not yet built (REINDEX CONCURRENTLY's copy, as the
# worker's vacuum process makes it): CREATE INDEX CONCURRENTLY waits after
# creating it, empty and not ready for inserts, for a session holding
# segments.member's ROW EXCLUSIVE lock.  A first pass meanwhile leaves it
# to the build, as the INSERT statement does (gathered entries went into
# its empty file: "could not read block 1").
q "TRUNCATE segments.member"
refresh_beside_unbuilt_gin "(6)" "a first pass"
expect "(6) the rows are those of the first refresh()" "$(same first)" 0
expect "(6) the index built after the pass answers as the rows say" \
       "SET enable_seqscan = off; SET enable_bitmapscan = on; SET enable_indexscan = off;
        SELECT count(*) FROM segments.member m WHERE segments._member_segs(m.data) @> ARRAY[$(q "SELECT num FROM segments.segment WHERE name = 'div7'")]" \
       "$(q "SELECT count(*) FROM first WHERE segs @> ARRAY[$(q "SELECT num FROM segments.segment WHERE name = 'div7'")]")"
q "DROP INDEX segments.member_unbuilt"

# 7. a CHECK constraint a DBA puts on segments.member holds for a pass's
# rows as for the INSERT statement's: the pass fails, nothing is written
q "TRUNCATE segments.member"
q "ALTER TABLE segments.member ADD CONSTRAINT no_org2 CHECK (tenant IS DISTINCT FROM 'org2')"
got=$(psql -X -qAt -v VERBOSITY=verbose -c "SELECT segments.refresh()" 2>&1 || true)
case "$got" in
    *23514*no_org2*) note "ok: (7) a pass breaking a DBA's CHECK constraint fails with 23514";;
    *) fail "(7) a pass breaking a DBA's CHECK constraint: $got";;
esac
expect "(7) ... and writes nothing" "SELECT count(*) FROM segments.member" 0
q "ALTER TABLE segments.member DROP CONSTRAINT no_org2"

# 8. so does a NOT NULL a DBA puts on segments.member.tenant (contacts
# without a tenant have none), on the bulk path itself
q "TRUNCATE segments.member"
q "ALTER TABLE segments.member ALTER COLUMN tenant SET NOT NULL"
got=$(psql -X -qAt -v VERBOSITY=verbose -c "SELECT segments.refresh()" 2>&1 || true)
case "$got" in
    *23502*tenant*) note "ok: (8) a pass breaking a DBA's NOT NULL fails with 23502";;
    *) fail "(8) a pass breaking a DBA's NOT NULL: $got";;
esac
expect "(8) ... and writes nothing" "SELECT count(*) FROM segments.member" 0
q "ALTER TABLE segments.member ALTER COLUMN tenant DROP NOT NULL"
q "SELECT segments.refresh()" >/dev/null
expect "(8) without it, the pass writes contacts without a tenant" \
       "SELECT count(*) > 0 FROM segments.member WHERE tenant IS NULL" t

all_passed

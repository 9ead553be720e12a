#!/usr/bin/env bash
# refresh() shares its scan with helper processes (src/pass_parallel.c),
# and who evaluated a contact never changes the result: with helpers, a
# first refresh() and one into a half-filled table store the rows a
# refresh() without them stores (attribute, percentage on the key's text,
# a segment reference, a tenant's segment), the helpers did evaluate part of the source, also when
# the application's role (no superuser) calls it, and when refresh()'s
# owner (it is SECURITY DEFINER) may not log in; a helper killed holding a
# chunk it claimed and had not delivered costs nothing but time; a
# refresh() in a transaction that already wrote contacts sees its own
# writes (it scans alone), and a SERIALIZABLE one
# scans alone; a refresh() cancelled midway leaves membership as it was
# and no helper behind; text keys (passed by reference), a regex on them
# and a percentage of their text.
. "$(dirname "$0")/common.bash"

worker_off

N=60000
div_contacts "$N"
q "SELECT segments.create_segment('pct', '{\"type\": \"percentage\", \"op\": \"lt\", \"value\": 30}')" >/dev/null
q "SELECT segments.create_segment('ref', '{\"and\": [{\"type\": \"segment\", \"op\": \"in\", \"value\": \"div5\"},
                                                  {\"type\": \"attribute\", \"field\": \"org\", \"op\": \"eq\", \"value\": \"org1\"}]}')" >/dev/null
psql -X -q -d postgres -c "CREATE ROLE \"segw_t1_$$\" LOGIN" >/dev/null; ROLES+=("segw_t1_$$")
q "GRANT segments_write TO \"segw_t1_$$\""
qa "GRANT SELECT ON contacts TO \"segw_t1_$$\""
q "ALTER ROLE \"segw_t1_$$\" IN DATABASE \"$DB\" SET segments.tenant = 'org2'"
psql -X -qAt -v ON_ERROR_STOP=1 -U "segw_t1_$$" -c "SELECT segments.create_segment('mine', '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"gt\", \"value\": 100}')" >/dev/null
q "GRANT segments_admin TO \"$APP\""
# helpers for any source, however small (settings a superuser makes)
q "ALTER DATABASE \"$DB\" SET segments.pass_helper_min_size = 0"
q "ALTER DATABASE \"$DB\" SET segments.pass_helpers = 2"
out=$(qa "SET segments.pass_helpers = 4" 2>&1) && fail "the application's role could set segments.pass_helpers"
note "ok: only a superuser sets segments.pass_helpers"

ROWS="SELECT contact_id, segments._member_segs(data) AS segs, tenant FROM segments.member"
snapshot() { q "DROP TABLE IF EXISTS $1; CREATE TABLE $1 AS $ROWS"; }
same() { echo "SELECT count(*) FROM (($ROWS EXCEPT SELECT * FROM $1) UNION ALL (SELECT * FROM $1 EXCEPT $ROWS)) d"; }
# refresh ROLE [HELPERS] [SET-ROLE]: a refresh() by ROLE (with that many
# helpers: a superuser; after SET ROLE SET-ROLE); prints how many chunks the
# helpers evaluated and how many the source has
refresh() {
    local out
    out=$(psql -X -qAt -v ON_ERROR_STOP=1 -U "$1" -c "${2:+SET segments.pass_helpers = $2}" \
               -c "${3:+SET ROLE \"$3\"}" \
               -c "SET client_min_messages = debug1" -c "SELECT segments.refresh()" 2>&1) ||
        fail "refresh() failed: $out"
    echo "$out" | sed -n 's/.*evaluated \([0-9]*\) of the \([0-9]*\) chunks.*/\1 \2/p'
}
# helped WHAT ROLE [SET-ROLE]: a first refresh() with helpers in which they
# evaluated some of the source (the pass may be done before they start:
# tries again)
helped() {
    local got n total
    for _ in 1 2 3 4 5; do
        q "TRUNCATE segments.member"
        got=$(refresh "$2" "" "${3:-}")
        [ -n "$got" ] || fail "$1: no helper started"
        read -r n total <<<"$got"
        [ "$n" -gt 0 ] && [ "$n" -le "$total" ] && { note "ok: $1 (helpers evaluated $n of $total chunks)"; return 0; }
    done
    fail "$1: the helpers evaluated no chunk in 5 tries"
}

q "TRUNCATE segments.member"
[ -z "$(refresh "$PGUSER" 0)" ] || fail "segments.pass_helpers = 0 started helpers"
note "ok: segments.pass_helpers = 0: refresh() scans alone"
snapshot alone
expect "membership is exact without helpers" \
       "SELECT count(*) FROM segments.verify() WHERE missing + extra > 0" 0
q "SELECT segments.refresh()" >/dev/null    # (also a pass that changes nothing)

# 1. a first refresh() with helpers stores the same rows
helped "a first refresh() with helpers" "$PGUSER"
expect "with helpers, a first refresh() stores the rows it stores without" "$(same alone)" 0
expect "member counts are those of the rows" \
       "SELECT count(*) FROM segments.segment_state s
         WHERE member_count <> (SELECT count(*) FROM segments.membership m WHERE m.segment_id = s.segment_id)" 0

# 2. into a half-filled table, called by the application's role
q "DELETE FROM segments.member WHERE contact_id % 2 = 0"
got=$(refresh "$APP")
[ -n "$got" ] || fail "no helper started for the application's role"
expect "with helpers, a refresh() into a half-filled table by the application's role stores the same rows" \
       "$(same alone)" 0
helped "the application's role's first refresh() with helpers" "$APP"
expect "... and stores the same rows" "$(same alone)" 0

# ... and when refresh() (SECURITY DEFINER) runs as an owner who may not
# log in: the helper logs in as the session's user and evaluates as the owner
psql -X -q -d postgres -c "CREATE ROLE \"segw_nl_$$\" NOLOGIN SUPERUSER" >/dev/null; ROLES+=("segw_nl_$$")
q "ALTER FUNCTION segments.refresh(uuid) OWNER TO \"segw_nl_$$\""
helped "refresh() owned by a role that may not log in has helpers" "$APP"
expect "... and stores the same rows" "$(same alone)" 0
q "ALTER FUNCTION segments.refresh(uuid) OWNER TO CURRENT_USER"

# 3. a helper killed with a chunk it claimed and did not deliver: the pass
# evaluates it.  A session's SHARE lock on segments.change_log holds the
# pass at its first write (membership history), so it stops taking the
# helper's messages; the helper fills its queue and waits, a chunk in hand.
q "TRUNCATE segments.member"
psql -X -qAt -v ON_ERROR_STOP=1 -c "SET application_name = 'segw_log_lock'" -c "BEGIN" \
     -c "LOCK TABLE segments.change_log IN SHARE MODE" -c "SELECT pg_sleep(120)" >/dev/null 2>&1 &
locker=$!
poll "a session holds a lock on segments.change_log" \
     "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'segw_log_lock' AND wait_event = 'PgSleep'" 1 30
psql -X -qAt -v ON_ERROR_STOP=1 -c "SET application_name = 'segw_pass'" -c "SET segments.pass_helpers = 1" \
     -c "SET client_min_messages = debug1" -c "SELECT segments.refresh()" >"$PGHOST/helper_kill.out" 2>&1 &
pass=$!
poll "the pass waits for the lock" \
     "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'segw_pass' AND wait_event_type = 'Lock'" 1 60
poll "its helper waits on its full queue" \
     "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'segments pass helper'
        AND datname = current_database() AND wait_event = 'MessageQueueSend'" 1 60
expect "the helper is killed" \
       "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE backend_type = 'segments pass helper' AND datname = current_database()" t
poll "the helper is gone" \
     "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'segments pass helper'" 0 30
kill "$locker" 2>/dev/null || true
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'segw_log_lock'" >/dev/null
wait "$pass" || fail "refresh() failed after its helper was killed: $(cat "$PGHOST/helper_kill.out")"
got=$(sed -n 's/.*evaluated \([0-9]*\) of the \([0-9]*\) chunks.*/\1 \2/p' "$PGHOST/helper_kill.out")
read -r n total <<<"$got"
[ -n "$n" ] && [ "$n" -lt "$total" ] || fail "the killed helper delivered '$got' chunks"
note "ok: refresh() completed after its helper was killed (it delivered $n of $total chunks)"
expect "... and stored the rows a refresh() without helpers stores" "$(same alone)" 0

# 4. a transaction that wrote contacts: the pass sees its own writes
q "TRUNCATE segments.member"
out=$(psql -X -qAt -v ON_ERROR_STOP=1 -U "$APP" -c "SET client_min_messages = debug1" \
           -c "BEGIN" -c "UPDATE contacts SET n = -n WHERE id % 3 = 0" -c "SELECT segments.refresh()" \
           -c "SELECT count(*) FROM segments.segment_members('div2') m" -c "COMMIT" 2>&1) ||
    fail "refresh() after writes in its transaction failed: $out"
echo "$out" | grep -q "chunks of the source" && fail "a refresh() in a transaction that wrote contacts used helpers"
expect "a refresh() in a transaction that wrote contacts saw its writes" \
       "SELECT $(mismatches div2 "SELECT id FROM contacts WHERE n <= $((N * 2 / 8))")" 0
expect "... in every segment (verify)" "SELECT count(*) FROM segments.verify() WHERE missing + extra > 0" 0
qa "UPDATE contacts SET n = -n WHERE id % 3 = 0"
q "SELECT segments.refresh()" >/dev/null
out=$(psql -X -qAt -v ON_ERROR_STOP=1 -c "SET client_min_messages = debug1" \
           -c "BEGIN ISOLATION LEVEL SERIALIZABLE" -c "SELECT segments.refresh()" -c "COMMIT" 2>&1) ||
    fail "a SERIALIZABLE refresh() failed: $out"
echo "$out" | grep -q "chunks of the source" && fail "a SERIALIZABLE refresh() used helpers"
note "ok: a SERIALIZABLE refresh() scans alone (its reads take the transaction's predicate locks)"

# 5. cancelled midway: membership as it was, no helper left
snapshot before
qa "UPDATE contacts SET n = n + $N WHERE id % 2 = 0"
out=$(psql -X -qAt -c "SET segments.pass_helpers = 2" -c "SET statement_timeout = 40" \
           -c "SELECT segments.refresh()" 2>&1 || true)
case "$out" in
    *"canceling statement due to statement timeout"*)
        note "ok: a refresh() with helpers can be cancelled"
        expect "a cancelled refresh() left membership as it was" "$(same before)" 0;;
    *) note "the refresh() ended within 40 ms (nothing to cancel): $out";;
esac
poll "no helper is left after a cancelled refresh()" \
     "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'segments pass helper'" 0 30
q "SELECT segments.refresh()" >/dev/null
expect "the next refresh() stores the changes" \
       "SELECT $(mismatches div2 "SELECT id FROM contacts WHERE n <= $((N * 2 / 8))")" 0

# 6. a key passed by reference (text), a regex and a percentage on it
TDB="${DB}_text"
psql -X -q -d postgres -c "CREATE DATABASE \"$TDB\"" >/dev/null
drop_tdb() { psql -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$TDB\" WITH (FORCE)" >/dev/null 2>&1; }
on_exit drop_tdb
qt() { psql -X -qAt -v ON_ERROR_STOP=1 -d "$TDB" -c "$1"; }
qt "CREATE EXTENSION segments" >/dev/null
qt "ALTER DATABASE \"$TDB\" SET segments.enabled = off"
qt "CREATE TABLE contacts (id text PRIMARY KEY, org text, n int NOT NULL)"
qt "INSERT INTO contacts SELECT 'contact-' || md5(g::text), 'org' || (g % 4), g FROM generate_series(1, $N) g"
qt "SELECT segments.configure('contacts', 'id', tenant_column => 'org')" >/dev/null
qt "SELECT segments.create_segment('low', '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"lt\", \"value\": $((N / 3))}')" >/dev/null
qt "SELECT segments.create_segment('hex', '{\"type\": \"attribute\", \"field\": \"id\", \"op\": \"regex\", \"value\": \"-[0-7]\"}')" >/dev/null
qt "SELECT segments.create_segment('pct', '{\"type\": \"percentage\", \"op\": \"gte\", \"value\": 60}')" >/dev/null
TROWS="SELECT contact_id, segments._member_segs(data) AS segs, tenant FROM segments.member"
qt "SET segments.pass_helpers = 0; SELECT segments.refresh(); CREATE TABLE alone AS $TROWS" >/dev/null
helped_t=""
for _ in 1 2 3 4 5; do
    out=$(psql -X -qAt -v ON_ERROR_STOP=1 -d "$TDB" -c "SET segments.pass_helper_min_size = 0" \
               -c "SET segments.pass_helpers = 2" -c "TRUNCATE segments.member" \
               -c "SET client_min_messages = debug1" -c "SELECT segments.refresh()" 2>&1) || fail "refresh() failed: $out"
    helped_t=$(echo "$out" | sed -n 's/.*evaluated \([0-9]*\) of the.*/\1/p')
    [ "${helped_t:-0}" -gt 0 ] && break
done
[ "${helped_t:-0}" -gt 0 ] || fail "text keys: the helpers evaluated no chunk in 5 tries"
note "ok: text keys: the helpers evaluated $helped_t chunks"
got=$(qt "SELECT count(*) FROM (($TROWS EXCEPT SELECT * FROM alone) UNION ALL (SELECT * FROM alone EXCEPT $TROWS)) d")
[ "$got" = 0 ] || fail "text keys: with helpers, $got rows differ from a refresh() without"
note "ok: text keys: with helpers, a first refresh() stores the rows it stores without"
got=$(qt "SELECT count(*) FROM segments.verify() WHERE missing + extra > 0")
[ "$got" = 0 ] || fail "text keys: verify() finds $got segments with differences"
note "ok: text keys: verify() finds no difference"

all_passed

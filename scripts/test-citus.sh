#!/usr/bin/env bash
# The Citus tests (docs/citus.md): builds segments into a private copy of
# the machine's PostgreSQL (scripts/lib.sh, as scripts/test.sh does), starts
# a Citus coordinator and two workers (a third joins later, with
# citus_add_node) on a private socket directory and ports, with
# shared_preload_libraries = 'citus,segments', distributes a contacts table
# by id, runs the checks below and stops the four servers on exit, also on
# failure.  Membership on Citus is compared with a
# single-node evaluation of the same data (a plain table in another
# database of the coordinator's server).
#
# Citus is not in Debian's archive: when it is not installed into the
# PostgreSQL of pg_config (PG_CONFIG, default the machine's 15), this says
# so and exits 0.  README.md ("Citus") tells how to build it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/$PG_MAJOR/bin/pg_config}
if [ ! -f "$("$PG_CONFIG" --sharedir)/extension/citus.control" ]; then
    echo "Citus is not installed in $("$PG_CONFIG" --sharedir): Citus tests skipped (README.md, \"Citus\", says how to install it)"
    exit 0
fi

TEST_NAME=citus
CHECKS=0
fail() { echo "FAIL ($TEST_NAME): $*" >&2; exit 1; }
note() { case "$1" in ok:*) CHECKS=$((CHECKS + 1));; esac; echo "# $TEST_NAME: $*"; }
all_passed() { echo "# $TEST_NAME: all passed ($CHECKS checks)"; }

ensure_packages
build_and_install_private

# The three servers, started by this script only: stopped on exit.
NODES="coord w1 w2 w3"   # w3 joins later (citus_add_node)
BASE_PORT=$(( 20000 + RANDOM % 20000 ))
declare -A PORT=([coord]=$BASE_PORT [w1]=$((BASE_PORT + 1)) [w2]=$((BASE_PORT + 2)) [w3]=$((BASE_PORT + 3)))
STARTED=""
stop_nodes() {
    local rc=$?
    for n in $STARTED; do
        if [ $rc -ne 0 ] && [ -f "$SEGMENTS_TMP/$n.log" ]; then
            echo "---- last lines of the $n log ----"
            tail -n 30 "$SEGMENTS_TMP/$n.log"
        fi
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$SEGMENTS_TMP/$n" -m fast -w stop >/dev/null 2>&1 || true
    done
    [ -n "${KEEP_CLUSTER:-}" ] || rm -rf "$SEGMENTS_TMP"
    exit $rc
}
trap stop_nodes EXIT

for n in $NODES; do
    runuser -u postgres -- "$PG_BIN/initdb" -D "$SEGMENTS_TMP/$n" -A trust -U postgres \
        --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >> "$SEGMENTS_TMP/$n/postgresql.conf" <<CONF
shared_preload_libraries = 'citus,segments'
listen_addresses = ''
unix_socket_directories = '$SEGMENTS_TMP'
port = ${PORT[$n]}
fsync = off
log_min_messages = warning
max_worker_processes = 32
citus.local_hostname = '$SEGMENTS_TMP'
CONF
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$SEGMENTS_TMP/$n" -l "$SEGMENTS_TMP/$n.log" -w -t 60 start >/dev/null
    STARTED="$STARTED $n"
done
log "started a Citus coordinator (port ${PORT[coord]}) and workers (${PORT[w1]}, ${PORT[w2]}, later ${PORT[w3]}) on socket $SEGMENTS_TMP"

export PGHOST="$SEGMENTS_TMP" PGUSER=postgres
DB=segcitus
REF=segref
# qn NODE [DB] SQL: one value from a query on a node
qn() { local n="$1"; shift; local db="$DB"; [ $# -gt 1 ] && { db="$1"; shift; }
       psql -X -qAt -v ON_ERROR_STOP=1 -p "${PORT[$n]}" -d "$db" -c "$1"; }
q() { qn coord "$1"; }
qref() { qn coord "$REF" "$1"; }
# on_all LABEL SQL: LABEL:the result on every worker, by port
on_all() { q "SELECT '$1' || ':' || string_agg(result, ',' ORDER BY nodeport) FROM run_command_on_workers(\$\$$2\$\$)"; }
expect() {
    local what="$1" sql="$2" want="$3" got
    got=$(q "$sql") || fail "$what: query failed"
    [ "$got" = "$want" ] || fail "$what: expected '$want', got '$got'"
    note "ok: $what"
}
# same WHAT SQL: the query gives the same answer on Citus and on one node
same() {
    local what="$1" sql="$2" got want
    got=$(q "$sql") || fail "$what: query failed on Citus"
    want=$(qref "$sql") || fail "$what: query failed on the single node"
    [ -n "$want" ] || fail "$what: the single node returned nothing"
    [ "$got" = "$want" ] || fail "$what: Citus and a single node differ:
citus:  $(echo "$got" | head -c 300)
single: $(echo "$want" | head -c 300)"
    note "ok: $what"
}
# errors WHAT SQLSTATE SQL: the statement fails with that SQLSTATE
errors() {
    local what="$1" state="$2" sql="$3" out
    if out=$(psql -X -qAt -p "${PORT[coord]}" -d "$DB" -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -c "$sql" 2>&1); then
        fail "$what: succeeded, expected SQLSTATE $state"
    fi
    grep -q "ERROR:  $state" <<< "$out" || fail "$what: expected SQLSTATE $state, got: $out"
    note "ok: $what ($(echo "$out" | grep -m1 ERROR | cut -c1-150))"
}

for n in $NODES; do
    qn "$n" postgres "CREATE DATABASE $DB" >/dev/null
    qn "$n" "CREATE EXTENSION citus" >/dev/null
done
qn coord postgres "CREATE DATABASE $REF" >/dev/null
q "SELECT citus_set_coordinator_host('$SEGMENTS_TMP', ${PORT[coord]})" >/dev/null
q "SELECT citus_add_node('$SEGMENTS_TMP', ${PORT[w1]})" >/dev/null
q "SELECT citus_add_node('$SEGMENTS_TMP', ${PORT[w2]})" >/dev/null
expect "two workers are active" \
    "SELECT count(*) FROM pg_dist_node WHERE isactive AND groupid <> 0" 2

# The same contacts, distributed on Citus and plain on the single node.
SCHEMA="CREATE TABLE contacts (id bigint PRIMARY KEY, plan text, score integer,
                               org text, traits jsonb);"
DATA="INSERT INTO contacts
      SELECT g, (ARRAY['free','pro','vip'])[1 + g % 3], (g * 37) % 100,
             'org' || (g % 5), jsonb_build_object('country', (ARRAY['de','fr','us','jp'])[1 + g % 4],
                                                  'size', g % 50)
        FROM generate_series(1, 3000) g;"
q "$SCHEMA SELECT create_distributed_table('contacts', 'id', shard_count => 6); $DATA" >/dev/null
qref "$SCHEMA $DATA" >/dev/null
for db in "$DB" "$REF"; do
    qn coord "$db" "CREATE EXTENSION segments" >/dev/null
done
expect "CREATE EXTENSION segments reached both workers" \
    "SELECT string_agg(result, ',') FROM run_command_on_workers(\$\$SELECT count(*) FROM pg_extension WHERE extname = 'segments'\$\$)" "1,1"

# -- configure() on a distributed source ---------------------------------
q "CREATE TABLE by_org (id bigint, org text, PRIMARY KEY (org, id)); SELECT create_distributed_table('by_org', 'org')" >/dev/null
q "CREATE UNIQUE INDEX ON by_org (id)" >/dev/null 2>&1 || true
errors "configure() of a table distributed by another column: 0A000" 0A000 \
    "SELECT segments.configure('by_org', 'id')"

q "CREATE TABLE ref_contacts (id bigint PRIMARY KEY); SELECT create_reference_table('ref_contacts')" >/dev/null
errors "configure() of a reference table: 0A000" 0A000 \
    "SELECT segments.configure('ref_contacts', 'id')"

q "SELECT segments.configure('contacts', 'id', traits_column => 'traits')" >/dev/null
qref "SELECT segments.configure('contacts', 'id', traits_column => 'traits')" >/dev/null
expect "segments.member is distributed by contact_id, colocated with contacts" \
    "SELECT (SELECT colocationid FROM pg_dist_partition WHERE logicalrelid = 'segments.member'::regclass)
          = (SELECT colocationid FROM pg_dist_partition WHERE logicalrelid = 'contacts'::regclass)
        AND column_to_column_name('segments.member'::regclass,
              (SELECT partkey FROM pg_dist_partition WHERE logicalrelid = 'segments.member'::regclass)) = 'contact_id'" t
expect "the capture trigger is on every shard of contacts" \
    "SELECT sum(result::int) FROM run_command_on_workers(\$\$SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgfoid = 'segments._capture()'::regprocedure AND t.tgtype & 1 = 1 AND c.relname ~ '^contacts_[0-9]+\$'\$\$)" 6

SEGS=(
  "vip|{\"type\":\"attribute\",\"field\":\"plan\",\"op\":\"eq\",\"value\":\"vip\"}"
  "high|{\"and\":[{\"type\":\"attribute\",\"field\":\"score\",\"op\":\"gte\",\"value\":70},{\"type\":\"attribute\",\"field\":\"org\",\"op\":\"in\",\"value\":[\"org1\",\"org3\"]}]}"
  "german|{\"type\":\"trait\",\"key\":\"country\",\"op\":\"eq\",\"value\":\"de\"}"
  "tenpct|{\"type\":\"percentage\",\"op\":\"lt\",\"value\":10,\"salt\":\"s\"}"
  "vip_or_high|{\"or\":[{\"type\":\"segment\",\"op\":\"in\",\"value\":\"vip\"},{\"type\":\"segment\",\"op\":\"in\",\"value\":\"high\"}]}"
)
for db in "$DB" "$REF"; do
    for s in "${SEGS[@]}"; do
        qn coord "$db" "SELECT segments.create_segment('${s%%|*}', '${s#*|}')" >/dev/null
    done
done
qref "SELECT segments.refresh()" >/dev/null

# -- a full pass, evaluated on the workers -------------------------------
q "SELECT segments.refresh()" >/dev/null
expect "after refresh() every segment is ready" \
    "SELECT string_agg(name || '=' || status, ',' ORDER BY name) FROM segments.segments" \
    "german=ready,high=ready,tenpct=ready,vip=ready,vip_or_high=ready"
expect "segments.member's shards are placed on both workers, none on the coordinator" \
    "SELECT string_agg(DISTINCT n.nodeport::text, ',' ORDER BY n.nodeport::text)
       FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n ON n.groupid = p.groupid
      WHERE s.logicalrelid = 'segments.member'::regclass" \
    "${PORT[w1]},${PORT[w2]}"
expect "membership rows are on both workers" \
    "SELECT bool_and(result::int > 0) FROM run_command_on_workers(\$\$SELECT count(*) FROM pg_class WHERE relname ~ '^member_[0-9]+\$'\$\$)" t
same "member counts as on a single node" \
    "SELECT string_agg(name || '=' || member_count, ',' ORDER BY name) FROM segments.segments"
for s in vip high german tenpct vip_or_high; do
    same "segment_members('$s') as on a single node" \
        "SELECT md5(string_agg(m::text, ',' ORDER BY m)) || ':' || count(*) FROM segments.segment_members('$s') m"
done
same "segments.membership (a join with the segment catalog) as on a single node" \
    "SELECT md5(string_agg(s.name || ':' || m.contact_id, ',' ORDER BY s.name, m.contact_id))
       FROM segments.membership m JOIN segments.segments s ON s.id = m.segment_id"
same "segment_is_member on the coordinator as on a single node (300 contacts x 5 segments)" \
    "SELECT md5(string_agg(segments.segment_is_member(c, s)::text, '' ORDER BY c, s))
       FROM generate_series(1, 300) c, unnest(ARRAY['vip','high','german','tenpct','vip_or_high']) s"
same "contact_segments on the coordinator as on a single node" \
    "SELECT md5(string_agg(c || ':' || s.name, ',' ORDER BY c, s.name))
       FROM generate_series(1, 300) c, segments.contact_segments(c) s"
same "filter_restricted on the coordinator as on a single node" \
    "SELECT md5(string_agg(segments.filter_restricted(c,
              ARRAY(SELECT id FROM segments.segments WHERE name IN ('german', 'tenpct')))::text, '' ORDER BY c))
       FROM generate_series(1, 300) c"
expect "segment_is_member of a contact that does not exist is false" \
    "SELECT segments.segment_is_member(999999, 'vip')" f

# -- a node's pass: its own shards, written directly, beside the others' --
# w2 holds a pass open (its membership locked on w2); w1's pass must not
# wait for it (a LOCK TABLE of the distributed table would) and must not go
# through Citus's planner to write membership (it would log the shard
# commands it runs, locally or remotely).
coproc HOLD { psql -X -qAt -p "${PORT[w2]}" -d "$DB" -v ON_ERROR_STOP=1 2>&1; }
echo "BEGIN; SELECT segments._citus_refresh_local(NULL); SELECT 'held';" >&"${HOLD[1]}"
held=""
while read -r -t 120 line <&"${HOLD[0]}"; do
    [ "$line" = held ] && { held=1; break; }
done
[ -n "$held" ] || fail "a pass on the second worker did not start"
[ "$(qn w2 "SELECT count(*) FROM pg_locks WHERE locktype = 'object' AND classid = 'pg_extension'::regclass AND objsubid = 1 AND mode = 'ExclusiveLock' AND granted")" = 1 ] ||
    fail "the open pass on the second worker does not hold its membership lock"
out=$(psql -X -qAt -p "${PORT[w1]}" -d "$DB" -v ON_ERROR_STOP=1 -c "SET statement_timeout = '30s'" \
        -c "SET citus.log_local_commands = on" -c "SET citus.log_remote_commands = on" \
        -c "SET client_min_messages = log" -c "SELECT segments._citus_refresh_local(NULL)" 2>&1) ||
    fail "a pass on the first worker while the second's is open: $out"
note "ok: the first worker's pass ran while the second worker's pass held its lock (no cluster-wide lock)"
if grep -i "member" <<< "$out" | grep -qi "command"; then
    fail "the first worker's pass wrote membership through Citus: $(grep -i member <<< "$out" | head -3)"
fi
note "ok: the first worker's pass wrote its membership shards directly (Citus ran no shard command for it)"
echo "ROLLBACK;" >&"${HOLD[1]}"; exec {HOLD[1]}>&-; wait "$HOLD_PID" || true
same "membership after the workers' own passes as on a single node" \
    "SELECT md5(string_agg(s.name || ':' || m.contact_id, ',' ORDER BY s.name, m.contact_id))
       FROM segments.membership m JOIN segments.segments s ON s.id = m.segment_id"

expect "explain() on the coordinator reads the contact's row and membership through Citus" \
    "SELECT (e ->> 'stored') || ':' || (e ->> 'evaluated') || ':' || (e ->> 'agrees') || ','
            || (f ->> 'stored') || ':' || (f ->> 'evaluated') || ':' || (f ->> 'agrees')
       FROM segments.explain(4, 'german') e, segments.explain(1, 'german') f" \
    "true:true:true,false:false:true"
expect "verify() on the coordinator (every worker compares its shards) finds no difference" \
    "SELECT count(*) || ':' || sum(missing + extra) || ':' || bool_and(state = 'ready') FROM segments.verify()" "5:0:true"
# preview() on the coordinator: validated there, evaluated by every worker
# over its shards; counts and sample (the smallest member keys, in the key
# type's order) as on a single node
preview_sql() { echo "SELECT member_count || ':' || contact_count || ':' || array_to_string(sample_keys, ',') FROM segments.preview('$1', $2)"; }
for p in \
    "a simple rule|{\"type\":\"attribute\",\"field\":\"plan\",\"op\":\"eq\",\"value\":\"vip\"}|10" \
    "a rule reading traits by path|{\"or\":[{\"type\":\"trait\",\"path\":[\"size\"],\"op\":\"gte\",\"value\":45},{\"type\":\"trait\",\"path\":[\"company\",\"size\"],\"op\":\"gte\",\"value\":1}]}|25" \
    "a rule referencing another segment|{\"and\":[{\"type\":\"segment\",\"op\":\"in\",\"value\":\"vip_or_high\"},{\"type\":\"attribute\",\"field\":\"score\",\"op\":\"lt\",\"value\":40}]}|12" \
    "a percentage without salt (hashed with the nil uuid)|{\"type\":\"percentage\",\"op\":\"lt\",\"value\":5}|15" \
    "sample 0|{\"type\":\"trait\",\"key\":\"country\",\"op\":\"eq\",\"value\":\"de\"}|0" \
    "a sample larger than the member count|{\"and\":[{\"type\":\"attribute\",\"field\":\"score\",\"op\":\"eq\",\"value\":99},{\"type\":\"attribute\",\"field\":\"plan\",\"op\":\"eq\",\"value\":\"vip\"}]}|10000"; do
    IFS='|' read -r what def n <<< "$p"
    same "preview() of $what on the coordinator as on a single node" "$(preview_sql "$def" "$n")"
done
got=$(q "$(preview_sql '{"and":[{"type":"attribute","field":"score","op":"eq","value":99},{"type":"attribute","field":"plan","op":"eq","value":"vip"}]}' 10000)")
[ "${got%%:*}" -gt 0 ] && [ "${got%%:*}" -lt 10000 ] || fail "the preview with a large sample should have between 1 and 9999 members: $got"
[ "$(tr ',' '\n' <<< "${got##*:}" | wc -l)" = "${got%%:*}" ] || fail "a sample larger than the member count should hold every member: $got"
note "ok: a sample larger than the member count holds every member (${got%%:*})"
got=$(q "$(preview_sql '{"type":"attribute","field":"plan","op":"eq","value":"vip"}' 12)")
want=$(q "SELECT string_agg(id::text, ',' ORDER BY id) FROM (SELECT id FROM contacts WHERE plan = 'vip' ORDER BY id LIMIT 12) c")
[ "${got##*:}" = "$want" ] && [ "$(cut -d, -f4 <<< "$want")" -ge 10 ] ||
    fail "preview()'s sample is not the smallest keys in key order: $got (want $want)"
note "ok: preview()'s sample on Citus is the smallest member keys in the key type's order ($want)"
# an invalid definition: the same error (SQLSTATE and message) as on one node
same_error() {
    local what="$1" sql="$2" got want
    got=$(psql -X -qAt -p "${PORT[coord]}" -d "$DB" -v VERBOSITY=verbose -c "$sql" 2>&1) && fail "$what: succeeded on Citus"
    want=$(psql -X -qAt -p "${PORT[coord]}" -d "$REF" -v VERBOSITY=verbose -c "$sql" 2>&1) && fail "$what: succeeded on a single node"
    got=$(grep -m1 ERROR <<< "$got"); want=$(grep -m1 ERROR <<< "$want")
    [ -n "$want" ] && [ "$got" = "$want" ] || fail "$what: Citus and a single node differ:
citus:  $got
single: $want"
    note "ok: $what ($(cut -c1-120 <<< "$got"))"
}
same_error "preview() of an invalid definition: the single node's error" \
    "SELECT * FROM segments.preview('{\"type\":\"attribute\",\"field\":\"plan\",\"op\":\"like\",\"value\":1}')"
same_error "preview() of a rule on a column that does not exist: the single node's error" \
    "SELECT * FROM segments.preview('{\"type\":\"attribute\",\"field\":\"nope\",\"op\":\"eq\",\"value\":1}')"
same_error "preview() referencing a segment that does not exist: the single node's error" \
    "SELECT * FROM segments.preview('{\"type\":\"segment\",\"op\":\"in\",\"value\":\"nope\"}')"
same_error "preview() with a negative sample: the single node's error" \
    "SELECT * FROM segments.preview('{\"and\":[]}', -1)"
errors "preview() in the transaction that changed segments: 0A000 (the workers read the committed catalog)" 0A000 \
    "BEGIN; SELECT segments.create_segment('uncommitted', '{\"and\":[]}'); SELECT * FROM segments.preview('{\"type\":\"segment\",\"op\":\"in\",\"value\":\"uncommitted\"}'); COMMIT"
expect "the refused preview left no segment behind" "SELECT count(*) FROM segments.segment WHERE name = 'uncommitted'" 0
out=$(psql -X -qAt -p "${PORT[w1]}" -d "$DB" -v VERBOSITY=verbose -c "SELECT * FROM segments.preview('{\"and\":[]}')" 2>&1) &&
    fail "preview() on a worker node (its shards only) succeeded: $out"
grep -q "ERROR:  0A000" <<< "$out" || fail "preview() on a worker node: expected 0A000, got: $out"
note "ok: preview() called on a worker node (a part of the contacts): 0A000"
# membership history is not kept on Citus: every reader of it says so
errors "membership_changes on a distributed source: 0A000, not an empty feed" 0A000 \
    "SELECT count(*) FROM segments.membership_changes"
errors "membership_history on a distributed source: 0A000" 0A000 \
    "SELECT count(*) FROM segments.membership_history"
errors "consume_changes() on a distributed source: 0A000" 0A000 \
    "SELECT count(*) FROM segments.consume_changes('citus-test', 10)"
errors "was_member() on a distributed source: 0A000, not false" 0A000 \
    "SELECT segments.was_member(4, 'german', now())"
errors "segment_counts() on a distributed source: 0A000, not zeros" 0A000 \
    "SELECT count(*) FROM segments.segment_counts('german', current_date - 1, current_date)"

# -- capture on the shards, applied on their nodes -----------------------
q "UPDATE contacts SET plan = 'vip' WHERE id IN (1, 2, 4)" >/dev/null
qref "UPDATE contacts SET plan = 'vip' WHERE id IN (1, 2, 4)" >/dev/null
q "DELETE FROM contacts WHERE id = 3" >/dev/null
qref "DELETE FROM contacts WHERE id = 3" >/dev/null
q "INSERT INTO contacts VALUES (5001, 'vip', 99, 'org1', '{\"country\":\"de\"}')" >/dev/null
qref "INSERT INTO contacts VALUES (5001, 'vip', 99, 'org1', '{\"country\":\"de\"}')" >/dev/null
expect "wait() on the coordinator returns true once the workers applied the changes" \
    "SELECT segments.wait('60 s')" t
qref "SELECT segments.wait('60 s')" >/dev/null
expect "an UPDATE made on the coordinator reached membership" \
    "SELECT segments.segment_is_member(1, 'vip') AND segments.segment_is_member(4, 'vip_or_high')" t
expect "a deleted contact left every segment" \
    "SELECT count(*) FROM segments.contact_segments(3)" 0
expect "an inserted contact joined its segments" \
    "SELECT string_agg(name, ',' ORDER BY name) FROM segments.contact_segments(5001)" \
    "german,high,vip,vip_or_high"
for s in vip vip_or_high german; do
    same "segment_members('$s') after the changes as on a single node" \
        "SELECT md5(string_agg(m::text, ',' ORDER BY m)) || ':' || count(*) FROM segments.segment_members('$s') m"
done

# -- the incremental path writes the contact's membership shard directly --
# An application role (no superuser, rights on contacts only) writes
# contacts; each node's worker applies the changes captured on its shards
# into the colocated membership shard there, not through Citus's router.
for db in "$DB" "$REF"; do
    qn coord "$db" "DO \$\$ BEGIN CREATE ROLE app_writer LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$;
                   GRANT SELECT, INSERT, UPDATE, DELETE ON contacts TO app_writer" >/dev/null
done
q "DO \$\$ BEGIN CREATE ROLE app_admin LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$; GRANT segments_admin TO app_admin;
   GRANT SELECT ON contacts TO app_admin" >/dev/null
wq() { psql -X -qAt -v ON_ERROR_STOP=1 -p "${PORT[coord]}" -U app_writer -d "$1" -c "$2"; }
for db in "$DB" "$REF"; do
    wq "$db" "UPDATE contacts SET score = (score + 50) % 100 WHERE id % 7 = 0" >/dev/null ||
        fail "an UPDATE of contacts by the application role (on $db)"
    wq "$db" "INSERT INTO contacts SELECT g, 'vip', 80, 'org3', '{\"country\":\"fr\"}' FROM generate_series(5002, 5100) g" >/dev/null
    wq "$db" "DELETE FROM contacts WHERE id BETWEEN 2900 AND 2950" >/dev/null
done
expect "changes by the application role (no superuser) are applied on the workers (wait)" \
    "SELECT segments.wait('60 s')" t
qref "SELECT segments.wait('60 s')" >/dev/null
same "membership after the application role's changes as on a single node" \
    "SELECT md5(string_agg(s.name || ':' || m.contact_id, ',' ORDER BY s.name, m.contact_id)) || ':' || count(*)
       FROM segments.membership m JOIN segments.segments s ON s.id = m.segment_id"
# -- member counts on the coordinator follow the nodes' changes ----------
# Each node counts the members on its shards (its passes set the count, its
# incremental path adds what it changes); the coordinator's worker stores
# their sum about once a second (segments._citus_counts()).
# counts_follow WHAT: the coordinator's counts reach the single node's within 30 s
COUNTS="SELECT string_agg(name || '=' || member_count, ',' ORDER BY name) FROM segments.segments"
counts_follow() {
    local want got deadline=$((SECONDS + 30))
    want=$(qref "$COUNTS")
    until got=$(q "$COUNTS") && [ "$got" = "$want" ]; do
        [ $SECONDS -lt $deadline ] || fail "member counts on the coordinator $1: '$got', single node '$want'"
        sleep 0.5
    done
    note "ok: member counts on the coordinator $1 as on a single node ($(echo "$got" | cut -c1-60)...)"
}
counts_follow "after incremental changes on the workers"

# -- an application role with INSERT, UPDATE and DELETE only -------------
# (no SELECT: PostgreSQL then allows no WHERE in its UPDATE and DELETE, and
# Citus refuses column-level grants, so it inserts and updates every row)
for db in "$DB" "$REF"; do
    qn coord "$db" "DO \$\$ BEGIN CREATE ROLE app_dml LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$;
                   GRANT INSERT, UPDATE, DELETE ON contacts TO app_dml" >/dev/null
    psql -X -qAt -v ON_ERROR_STOP=1 -p "${PORT[coord]}" -U app_dml -d "$db" \
        -c "INSERT INTO contacts (id, plan, score, org, traits)
            SELECT g, 'vip', 90, 'org1', '{\"country\":\"de\"}' FROM generate_series(5201, 5260) g" \
        -c "UPDATE contacts SET score = 75" >/dev/null || fail "INSERT and UPDATE by a role with INSERT, UPDATE, DELETE only (on $db)"
done
expect "a role with INSERT, UPDATE and DELETE only on contacts writes through the coordinator; the workers apply it (wait)" \
    "SELECT segments.wait('60 s')" t
qref "SELECT segments.wait('60 s')" >/dev/null
same "membership after the INSERT and UPDATE of a role without SELECT as on a single node" \
    "SELECT md5(string_agg(s.name || ':' || m.contact_id, ',' ORDER BY s.name, m.contact_id)) || ':' || count(*)
       FROM segments.membership m JOIN segments.segments s ON s.id = m.segment_id"
counts_follow "after the changes of a role without SELECT"
# wkey PORT: a vip contact whose shard is on that worker; mshard KEY: its membership shard
wkey() { q "SELECT min(id) FROM contacts WHERE plan = 'vip' AND get_shard_id_for_distribution_column('contacts', id) IN
              (SELECT p.shardid FROM pg_dist_placement p JOIN pg_dist_node n ON n.groupid = p.groupid
                WHERE n.nodeport = $1)"; }
mshard() { q "SELECT get_shard_id_for_distribution_column('segments.member', $1)"; }
K1=$(wkey "${PORT[w1]}"); K2=$(wkey "${PORT[w2]}")
# refresh_contacts KEY on NODE as app_admin (segments_admin), logging every command Citus runs
refresh_logged() {
    psql -X -qAt -v ON_ERROR_STOP=1 -p "${PORT[$1]}" -U app_admin -d "$DB" \
        -c "SET citus.log_local_commands = on" -c "SET citus.log_remote_commands = on" \
        -c "SET client_min_messages = log" -c "SELECT segments.refresh_contacts(ARRAY[$2::bigint])" 2>&1
}
for k in "$K1" "$K2"; do
    node=w1; [ "$k" = "$K2" ] && node=w2
    qn "$node" "SET citus.enable_manual_changes_to_shards = on; DELETE FROM segments.member_$(mshard "$k") WHERE contact_id = $k" >/dev/null
done
[ "$(q "SELECT count(*) FROM segments.contact_segments($K1)")" = 0 ] || fail "the membership row of contact $K1 was not removed"
expect "verify() on the coordinator reports the two contacts whose rows were removed on their workers, by segment" \
    "SELECT string_agg(name || '=' || missing || ':' || extra || ':' || array_to_string(missing_sample, ','), ' ' ORDER BY name)
       FROM segments.verify() WHERE missing + extra > 0" \
    "$(qref "SELECT string_agg(x, ' ' ORDER BY n) FROM (
               SELECT s.name AS n, s.name || '=' || count(*) || ':0:' || string_agg(c::text, ',' ORDER BY c::text) AS x
                 FROM unnest(ARRAY[$K1, $K2]::bigint[]) c, segments.contact_segments(c) s GROUP BY s.name) t")"
expect "verify(segment) on the coordinator reports that segment only" \
    "SELECT string_agg(name || '=' || missing, ',') FROM segments.verify((SELECT id FROM segments.segments WHERE name = 'vip'))" "vip=2"
out=$(refresh_logged w1 "$K1") || fail "refresh_contacts($K1) on the first worker as app_admin: $out"
grep -qx 1 <<< "$out" || fail "refresh_contacts($K1) on the first worker changed no contact: $out"
# Citus logs "issuing <command>" (remote) and "executing the command locally: <command>"
if grep -Ei "issuing|executing the command locally" <<< "$out" | grep -qi "member"; then
    fail "the incremental path on the first worker wrote membership through Citus: $(grep -i member <<< "$out" | head -3)"
fi
note "ok: the incremental path (refresh_contacts by a segments_admin role on the contact's worker) wrote its membership shard directly (Citus ran no shard command)"
same "contact $K1's segments after the direct write as on a single node" \
    "SELECT string_agg(name, ',' ORDER BY name) FROM segments.contact_segments($K1)"
# a key whose shard is on another node goes through Citus's router (a shard moved away)
out=$(refresh_logged w1 "$K2") || fail "refresh_contacts($K2) on the first worker: $out"
grep -qx 1 <<< "$out" || fail "refresh_contacts($K2) on the first worker changed no contact: $out"
grep -i "issuing" <<< "$out" | grep -qi "member_$(mshard "$K2")" ||
    fail "the first worker did not write contact $K2's membership on the second worker through Citus: $out"
note "ok: a contact whose shard is on another node is written there through Citus's router (issued to member_$(mshard "$K2"))"
same "contact $K2's segments after the routed write as on a single node" \
    "SELECT string_agg(name, ',' ORDER BY name) FROM segments.contact_segments($K2)"
out=$(psql -X -qAt -p "${PORT[w1]}" -d "$DB" -U app_writer -v VERBOSITY=verbose \
        -c "SELECT segments.refresh_contacts(ARRAY[$K1::bigint])" 2>&1) &&
    fail "refresh_contacts by a role without segments_admin on a worker succeeded: $out"
grep -q "ERROR:  42501" <<< "$out" || fail "refresh_contacts without segments_admin on a worker: $out"
note "ok: refresh_contacts on a worker by a role without segments_admin: 42501"

# -- a new segment, created on the coordinator, evaluated by the worker --
q "SELECT segments.create_segment('french', '{\"type\":\"trait\",\"key\":\"country\",\"op\":\"eq\",\"value\":\"fr\"}')" >/dev/null
qref "SELECT segments.create_segment('french', '{\"type\":\"trait\",\"key\":\"country\",\"op\":\"eq\",\"value\":\"fr\"}')" >/dev/null
expect "a segment created on the coordinator is evaluated by the workers (wait)" \
    "SELECT segments.wait('60 s')" t
qref "SELECT segments.wait('60 s')" >/dev/null
same "the new segment's members as on a single node" \
    "SELECT md5(string_agg(m::text, ',' ORDER BY m)) || ':' || count(*) FROM segments.segment_members('french') m"
expect "its definition reached both workers" \
    "SELECT string_agg(result, ',') FROM run_command_on_workers(\$\$SELECT count(*) FROM segments.segment WHERE name = 'french'\$\$)" "1,1"

# -- the catalog copy is part of the change's transaction ----------------
q "DO \$\$ BEGIN CREATE ROLE app_admin LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$; GRANT segments_admin TO app_admin;
   GRANT SELECT ON contacts TO app_admin" >/dev/null
aq() { psql -X -qAt -v ON_ERROR_STOP=1 -p "${PORT[coord]}" -U app_admin -d "$DB" -c "$1"; }
aq "BEGIN; SELECT segments.create_segment('ghost', '{\"type\":\"attribute\",\"field\":\"plan\",\"op\":\"eq\",\"value\":\"pro\"}'); ROLLBACK" >/dev/null ||
    fail "create_segment as a segments_admin role, rolled back: failed"
expect "a create_segment rolled back (by a segments_admin role) left nothing on the workers" \
    "SELECT string_agg(result, ',') FROM run_command_on_workers(\$\$SELECT count(*) FROM segments.segment WHERE name = 'ghost'\$\$)" "0,0"
aq "BEGIN; SELECT segments.create_segment('spanish', '{\"type\":\"trait\",\"key\":\"country\",\"op\":\"eq\",\"value\":\"es\"}');
    SELECT segments.drop_segment('spanish'); COMMIT" >/dev/null || fail "create and drop a segment as a segments_admin role"
expect "a segment created and dropped in one transaction by a segments_admin role: none on the workers, every other definition there" \
    "SELECT string_agg(result, ',') FROM run_command_on_workers(\$\$SELECT count(*) FILTER (WHERE name = 'spanish') || ':' || count(*) FROM segments.segment\$\$)" "0:6,0:6"

# -- the application's roles ---------------------------------------------
q "CREATE ROLE app_read LOGIN; GRANT segments_read TO app_read" >/dev/null
expect "a reader without rights on the tables reads routed membership" \
    "SET ROLE app_read; SELECT segments.segment_is_member(1, 'vip')::text || segments.filter_restricted(2, ARRAY[(SELECT id FROM segments.segments WHERE name = 'vip')])::text" truetrue
# The internal Citus functions are the extension owner's (11_citus.sql,
# 12_citus_pass.sql): a reader is refused them on the coordinator and on a
# worker, and its wait() still reaches every worker (as the owner, citus.c).
for node in coord w1; do
    for call in "segments._citus_sync()" "segments._citus_load_catalog('{}')" \
                "segments._citus_pass_request('{}')" "segments._citus_wait('1 s')"; do
        out=$(psql -X -qAt -p "${PORT[$node]}" -U app_read -d "$DB" -v VERBOSITY=verbose -c "SELECT $call" 2>&1) &&
            fail "a segments_read role executed $call on $node: $out"
        grep -q "ERROR:  42501: permission denied for function _citus_" <<< "$out" ||
            fail "a segments_read role calling $call on $node: expected 42501 on the function, got: $out"
    done
done
note "ok: a segments_read role cannot execute the internal Citus functions, on the coordinator or a worker (42501)"
got=$(psql -X -qAt -v ON_ERROR_STOP=1 -p "${PORT[coord]}" -U app_read -d "$DB" -c "SELECT segments.wait('60 s')") ||
    fail "wait() by a segments_read role on the coordinator failed"
[ "$got" = t ] || fail "wait() by a segments_read role on the coordinator: expected t, got '$got'"
note "ok: wait() by a segments_read role on the coordinator reaches every worker"

# -- moving a shard (what citus_rebalance_start does) -------------------
BEFORE=$(q "SELECT md5(string_agg(s.name || ':' || m.contact_id, ',' ORDER BY s.name, m.contact_id))
              FROM segments.membership m JOIN segments.segments s ON s.id = m.segment_id")
SHARD=$(q "SELECT s.shardid FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
             JOIN pg_dist_node n ON n.groupid = p.groupid
            WHERE s.logicalrelid = 'contacts'::regclass AND n.nodeport = ${PORT[w1]}
              AND get_shard_id_for_distribution_column('contacts', 1) <> s.shardid
            ORDER BY 1 LIMIT 1")
MOVED=$(q "SELECT min(id) FROM contacts WHERE get_shard_id_for_distribution_column('contacts', id) = $SHARD AND id < 3000")
q "SELECT citus_move_shard_placement($SHARD, '$SEGMENTS_TMP', ${PORT[w1]}, '$SEGMENTS_TMP', ${PORT[w2]},
                                     shard_transfer_mode => 'block_writes')" >/dev/null
expect "the shard of contact $MOVED moved to the second worker, its membership shard with it" \
    "SELECT string_agg(DISTINCT n.nodeport::text, ',')
       FROM pg_dist_placement p JOIN pg_dist_node n ON n.groupid = p.groupid
      WHERE p.shardid IN (get_shard_id_for_distribution_column('contacts', $MOVED),
                          get_shard_id_for_distribution_column('segments.member', $MOVED))" "${PORT[w2]}"
expect "membership is the same after the move" \
    "SELECT md5(string_agg(s.name || ':' || m.contact_id, ',' ORDER BY s.name, m.contact_id))
       FROM segments.membership m JOIN segments.segments s ON s.id = m.segment_id" "$BEFORE"
q "UPDATE contacts SET plan = 'vip' WHERE id = $MOVED AND plan <> 'vip'" >/dev/null
qref "UPDATE contacts SET plan = 'vip' WHERE id = $MOVED AND plan <> 'vip'" >/dev/null
q "UPDATE contacts SET traits = traits || '{\"country\":\"de\"}' WHERE id = $MOVED" >/dev/null
qref "UPDATE contacts SET traits = traits || '{\"country\":\"de\"}' WHERE id = $MOVED" >/dev/null
expect "a change to a contact of the moved shard is captured on its new node" \
    "SELECT segments.wait('60 s') AND segments.segment_is_member($MOVED, 'vip') AND segments.segment_is_member($MOVED, 'german')" t
qref "SELECT segments.wait('60 s')" >/dev/null
q "SELECT segments.refresh()" >/dev/null
same "a full pass after the move gives the single node's membership" \
    "SELECT md5(string_agg(s.name || ':' || m.contact_id, ',' ORDER BY s.name, m.contact_id))
       FROM segments.membership m JOIN segments.segments s ON s.id = m.segment_id"

errors "a pass in the transaction that changed segments: 0A000 (the workers' passes would wait for it)" 0A000 \
    "BEGIN; SELECT segments.create_segment('in_tx', '{\"type\":\"attribute\",\"field\":\"plan\",\"op\":\"eq\",\"value\":\"pro\"}');
     SELECT segments.refresh(); COMMIT"
expect "... and the refused transaction left nothing on the coordinator or the workers" \
    "SELECT (SELECT count(*) FROM segments.segment WHERE name = 'in_tx') || ':' ||
            (SELECT string_agg(result, ',') FROM run_command_on_workers(\$\$SELECT count(*) FROM segments.segment WHERE name = 'in_tx'\$\$))" "0:0,0"

# -- adding a node: citus_add_node, then the rebalance -------------------
BEFORE=$(q "SELECT md5(string_agg(s.name || ':' || m.contact_id, ',' ORDER BY s.name, m.contact_id))
              FROM segments.membership m JOIN segments.segments s ON s.id = m.segment_id")
q "SELECT citus_add_node('$SEGMENTS_TMP', ${PORT[w3]})" >/dev/null || fail "citus_add_node of a third worker"
note "ok: citus_add_node of a third worker succeeds (segments.member is made there by Citus)"
q "SELECT citus_rebalance_start(shard_transfer_mode => 'block_writes')" >/dev/null
q "SELECT citus_rebalance_wait()" >/dev/null
expect "the rebalance moved shards of contacts, and their membership shards, to the new node" \
    "SELECT count(*) FILTER (WHERE s.logicalrelid = 'contacts'::regclass) > 0
            AND count(*) FILTER (WHERE s.logicalrelid = 'contacts'::regclass)
              = count(*) FILTER (WHERE s.logicalrelid = 'segments.member'::regclass)
       FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n ON n.groupid = p.groupid
      WHERE n.nodeport = ${PORT[w3]}" t
expect "membership is the same after the rebalance" \
    "SELECT md5(string_agg(s.name || ':' || m.contact_id, ',' ORDER BY s.name, m.contact_id))
       FROM segments.membership m JOIN segments.segments s ON s.id = m.segment_id" "$BEFORE"
# the coordinator's worker copies the catalog to the new node by itself
deadline=$((SECONDS + 120))
until [ "$(qn w3 "SELECT count(*) FROM segments.segment")" = 6 ]; do
    [ $SECONDS -lt $deadline ] || fail "the new node did not get the segment catalog within 120 s"
    sleep 1
done
note "ok: the new node got the segment catalog without a refresh() call"
W3ID=$(q "SELECT min(id) FROM contacts WHERE get_shard_id_for_distribution_column('contacts', id) IN
            (SELECT p.shardid FROM pg_dist_placement p JOIN pg_dist_node n ON n.groupid = p.groupid WHERE n.nodeport = ${PORT[w3]})
          AND plan <> 'vip'")
expect "wait() after the new node's catalog copy" "SELECT segments.wait('120 s')" t
for db in "$DB" "$REF"; do qn coord "$db" "UPDATE contacts SET plan = 'vip' WHERE id = $W3ID" >/dev/null; done
qref "SELECT segments.wait('60 s')" >/dev/null
expect "a change to contact $W3ID, now on the new node, is captured and applied there" \
    "SELECT segments.wait('60 s') AND segments.segment_is_member($W3ID, 'vip')" t
same "membership on three workers as on a single node" \
    "SELECT md5(string_agg(s.name || ':' || m.contact_id, ',' ORDER BY s.name, m.contact_id))
       FROM segments.membership m JOIN segments.segments s ON s.id = m.segment_id"
counts_follow "after the rebalance to three workers"

# -- tenants: a role with a fixed tenant (ALTER ROLE reaches the workers) -
for db in "$DB" "$REF"; do
    qn coord "$db" "SELECT segments.configure('contacts', 'id', tenant_column => 'org', traits_column => 'traits')" >/dev/null
done
q "SELECT segments.refresh()" >/dev/null
q "DO \$\$ BEGIN CREATE ROLE tenant1 LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$;
   GRANT segments_read TO tenant1; GRANT SELECT ON contacts TO tenant1;
   ALTER ROLE tenant1 SET segments.tenant = 'org1'" >/dev/null
qref "GRANT SELECT ON contacts TO tenant1" >/dev/null
tq() { psql -X -qAt -v ON_ERROR_STOP=1 -p "${PORT[coord]}" -U tenant1 -d "$1" -c "$2"; }
for check in \
    "segment_members('vip')|SELECT md5(string_agg(m::text, ',' ORDER BY m)) || ':' || count(*) FROM segments.segment_members('vip') m" \
    "contact_segments of another tenant's contact|SELECT count(*) FROM segments.contact_segments(2)" \
    "segment_is_member of its own and another tenant's contact|SELECT segments.segment_is_member(1, 'vip')::text || segments.segment_is_member(2, 'vip')::text"; do
    got=$(tq "$DB" "${check#*|}") || fail "tenant session: ${check%%|*}: query failed"
    want=$(tq "$REF" "${check#*|}") || fail "tenant session (single node): ${check%%|*}: query failed"
    [ "$got" = "$want" ] || fail "tenant session: ${check%%|*}: Citus '$got', single node '$want'"
    note "ok: a tenant session sees only its contacts: ${check%%|*} ($got) as on a single node"
done
# segments of a tenant: the tenant sees its own and the global ones, each
# counted over its contacts only; another tenant's are not there for it
for db in "$DB" "$REF"; do
    qn coord "$db" "SELECT segments.create_segment('org1_german', '{\"type\":\"trait\",\"key\":\"country\",\"op\":\"eq\",\"value\":\"de\"}', tenant => 'org1');
                    SELECT segments.create_segment('org2_german', '{\"type\":\"trait\",\"key\":\"country\",\"op\":\"eq\",\"value\":\"de\"}', tenant => 'org2')" >/dev/null
done
expect "tenant segments evaluated on the workers (wait)" "SELECT segments.wait('120 s')" t
qref "SELECT segments.wait('120 s')" >/dev/null
counts_follow "with tenant segments"
for check in \
    "the segments it sees, with their member counts|SELECT string_agg(name || '=' || member_count || ':' || coalesce(tenant, '-'), ',' ORDER BY name) FROM segments.segments" \
    "its tenant segment's members|SELECT md5(string_agg(m::text, ',' ORDER BY m)) || ':' || count(*) FROM segments.segment_members('org1_german') m" \
    "membership of its tenant segment only of its contacts|SELECT count(*) FILTER (WHERE c.org <> 'org1') || ':' || count(*) FROM segments.membership m JOIN segments.segments s ON s.id = m.segment_id JOIN contacts c ON c.id = m.contact_id WHERE s.name = 'org1_german'"; do
    got=$(tq "$DB" "${check#*|}") || fail "tenant session: ${check%%|*}: query failed"
    want=$(tq "$REF" "${check#*|}") || fail "tenant session (single node): ${check%%|*}: query failed"
    [ "$got" = "$want" ] || fail "tenant session: ${check%%|*}: Citus '$got', single node '$want'"
    note "ok: a tenant session on the coordinator: ${check%%|*} as on a single node ($(echo "$got" | cut -c1-70))"
done
got=$(tq "$DB" "SELECT count(*) FROM segments.segments WHERE name = 'org2_german' OR tenant = 'org2'")
[ "$got" = 0 ] || fail "the tenant session sees another tenant's segment: $got"
out=$(psql -X -qAt -p "${PORT[coord]}" -U tenant1 -d "$DB" -v VERBOSITY=verbose -c "SELECT count(*) FROM segments.segment_members('org2_german')" 2>&1) &&
    fail "a tenant read another tenant's segment's members: $out"
grep -q "ERROR:  42704" <<< "$out" || fail "a tenant reading another tenant's segment: $out"
note "ok: another tenant's segment does not exist for the tenant session (42704), as on one node"
# preview() in a tenant session: its contacts counted, its tenant's and the
# global segments referenced, as on a single node
q "GRANT segments_write TO tenant1" >/dev/null
for p in \
    "a simple rule|{\"type\":\"attribute\",\"field\":\"plan\",\"op\":\"eq\",\"value\":\"vip\"}|10" \
    "a rule referencing its tenant's segment|{\"and\":[{\"type\":\"segment\",\"op\":\"in\",\"value\":\"org1_german\"},{\"not\":{\"type\":\"attribute\",\"field\":\"plan\",\"op\":\"eq\",\"value\":\"vip\"}}]}|20" \
    "a rule reading traits by path, sample 0|{\"type\":\"trait\",\"path\":[\"size\"],\"op\":\"lt\",\"value\":10}|0"; do
    IFS='|' read -r what def n <<< "$p"
    got=$(tq "$DB" "$(preview_sql "$def" "$n")") || fail "tenant session: preview() of $what: query failed on Citus"
    want=$(tq "$REF" "$(preview_sql "$def" "$n")") || fail "tenant session: preview() of $what: query failed on the single node"
    [ "$got" = "$want" ] || fail "tenant session: preview() of $what: Citus '$got', single node '$want'"
    note "ok: a tenant session's preview() of $what as on a single node ($(cut -c1-60 <<< "$got"))"
done
want=$(q "SELECT count(*) FROM contacts WHERE org = 'org1'")
got=$(tq "$DB" "SELECT contact_count FROM segments.preview('{\"and\":[]}', 0)")
[ "$got" = "$want" ] || fail "a tenant session's preview() should count its $want contacts, not $got"
note "ok: a tenant session's preview() on Citus counts only its tenant's contacts ($got)"
out=$(psql -X -qAt -p "${PORT[coord]}" -U tenant1 -d "$DB" -v VERBOSITY=verbose -c "SELECT * FROM segments.preview('{\"type\":\"segment\",\"op\":\"in\",\"value\":\"org2_german\"}')" 2>&1) &&
    fail "a tenant previewed a rule on another tenant's segment: $out"
want=$(psql -X -qAt -p "${PORT[coord]}" -U tenant1 -d "$REF" -v VERBOSITY=verbose -c "SELECT * FROM segments.preview('{\"type\":\"segment\",\"op\":\"in\",\"value\":\"org2_german\"}')" 2>&1) &&
    fail "a tenant previewed a rule on another tenant's segment on the single node: $want"
[ "$(grep -m1 ERROR <<< "$out")" = "$(grep -m1 ERROR <<< "$want")" ] ||
    fail "a tenant's preview() of another tenant's segment: Citus '$out', single node '$want'"
note "ok: a tenant's preview() of another tenant's segment fails as on a single node ($(grep -m1 ERROR <<< "$out" | cut -c1-80))"
# verify() in a tenant session: the workers are asked as the owner, the
# coordinator keeps the segments the session sees (citus.c)
VERIFY="SELECT coalesce(string_agg(name || '=' || missing || ':' || extra, ',' ORDER BY name), '-') FROM segments.verify()"
got=$(tq "$DB" "$VERIFY") || fail "tenant session: verify() failed on Citus"
want=$(tq "$REF" "$VERIFY") || fail "tenant session: verify() failed on the single node"
[ "$got" = "$want" ] || fail "tenant session: verify(): Citus '$got', single node '$want'"
note "ok: a tenant session's verify() on Citus as on a single node ($(cut -c1-70 <<< "$got"))"
q "REVOKE segments_write FROM tenant1" >/dev/null
for db in "$DB" "$REF"; do
    qn coord "$db" "SELECT segments.drop_segment(id) FROM segments.segment WHERE name IN ('org1_german', 'org2_german')" >/dev/null
done

# -- segments.membership for readers and tenants -------------------------
# Citus reads the shards as the connecting role: segments_read may read
# segments.member, and a row policy (on every shard) limits it to the rows
# the view would show.  A report table distributed by contact, colocated
# with contacts, joins membership on the workers.
REPORT="CREATE TABLE conversations (contact_id bigint, n integer);"
REPORT_DATA="INSERT INTO conversations SELECT g % 3000 + 1, g FROM generate_series(1, 9000) g;
             GRANT SELECT ON conversations TO tenant1, app_read, app_admin;"
q "$REPORT SELECT create_distributed_table('conversations', 'contact_id', colocate_with => 'contacts'); $REPORT_DATA" >/dev/null
qref "$REPORT $REPORT_DATA" >/dev/null
q "GRANT SELECT ON contacts TO app_read" >/dev/null
qref "GRANT SELECT ON contacts TO app_read" >/dev/null
rq() { psql -X -qAt -v ON_ERROR_STOP=1 -p "${PORT[coord]}" -U "$1" -d "$2" -c "$3"; }
MEMBERSHIP="SELECT md5(string_agg(s.name || ':' || m.contact_id, ',' ORDER BY s.name, m.contact_id)) || ':' || count(*)
              FROM segments.membership m JOIN segments.segments s ON s.id = m.segment_id"
JOINED="SELECT string_agg(name || '=' || n, ',' ORDER BY name) FROM (
          SELECT s.name, count(*) AS n FROM segments.membership m
            JOIN conversations c ON c.contact_id = m.contact_id
            JOIN segments.segments s ON s.id = m.segment_id GROUP BY s.name) x"
for role in tenant1 app_admin app_read; do
    for check in "segments.membership|$MEMBERSHIP" "segments.membership joined with a colocated report table|$JOINED"; do
        got=$(rq "$role" "$DB" "${check#*|}") || fail "$role: ${check%%|*}: query failed on Citus"
        want=$(rq "$role" "$REF" "${check#*|}") || fail "$role: ${check%%|*}: query failed on the single node"
        [ "$got" = "$want" ] || fail "$role: ${check%%|*}: Citus '$got', single node '$want'"
        note "ok: $role reads ${check%%|*} as on a single node ($(echo "$got" | cut -c1-60))"
    done
done
[ "$(rq tenant1 "$DB" "SELECT count(*) > 0 FROM segments.membership")" = t ] || fail "the tenant sees no membership"
got=$(rq tenant1 "$DB" "SELECT count(*) FILTER (WHERE c.org <> 'org1') || ':' || (count(*) > 0)::text
                         FROM segments.membership m JOIN contacts c ON c.id = m.contact_id") ||
    fail "the tenant's membership joined with contacts: query failed"
[ "$got" = "0:true" ] || fail "the tenant's segments.membership holds other tenants' contacts: $got"
note "ok: the tenant's segments.membership holds its tenant's contacts only"
plan=$(rq tenant1 "$DB" "EXPLAIN $JOINED")
grep -q "Task Count: 6" <<< "$plan" && grep -q "Seq Scan on conversations_[0-9]" <<< "$plan" &&
    grep -q "on member_[0-9]" <<< "$plan" ||
    fail "the tenant's join of membership with conversations is not pushed down to the shards: $plan"
note "ok: the tenant's join of segments.membership with the colocated report table runs on the shards (one task per shard)"
OWN=$(q "SELECT count(*) FROM segments.member WHERE tenant = 'org1'")
got=$(rq tenant1 "$DB" "SELECT count(*) FILTER (WHERE tenant IS DISTINCT FROM 'org1') || ':' || count(*) FROM segments.member") ||
    fail "the tenant reading segments.member: query failed"
[ "$got" = "0:$OWN" ] || fail "the tenant reading segments.member directly: expected 0:$OWN, got $got"
note "ok: a tenant reading segments.member directly gets its tenant's rows only, all of them ($OWN; row policy)"
SHARD_W1=$(q "SELECT 'member_' || s.shardid FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
                JOIN pg_dist_node n ON n.groupid = p.groupid
               WHERE s.logicalrelid = 'segments.member'::regclass AND n.nodeport = ${PORT[w1]} ORDER BY 1 LIMIT 1")
got=$(psql -X -qAt -v ON_ERROR_STOP=1 -p "${PORT[w1]}" -U tenant1 -d "$DB" \
        -c "SELECT count(*) FILTER (WHERE tenant IS DISTINCT FROM 'org1') || ':' || (count(*) > 0)::text FROM segments.$SHARD_W1") ||
    fail "the tenant reading a membership shard on a worker: query failed"
[ "$got" = "0:true" ] || fail "the tenant reading shard $SHARD_W1 on a worker saw other tenants' rows: $got"
note "ok: the tenant reading a membership shard on a worker directly gets its tenant's rows only ($SHARD_W1)"
q "DO \$\$ BEGIN CREATE ROLE hostile LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$" >/dev/null
for rel in segments.membership segments.member; do
    out=$(psql -X -qAt -p "${PORT[coord]}" -U hostile -d "$DB" -v VERBOSITY=verbose -c "SELECT count(*) FROM $rel" 2>&1) &&
        fail "a role without segments_read read $rel: $out"
    grep -q "ERROR:  42501" <<< "$out" || fail "a role without segments_read reading $rel: $out"
    note "ok: a role without segments_read cannot read $rel (42501)"
done

# -- dump and restore (docs/citus.md, "Dump and restore") -----------------
# pg_dump of the coordinator without the derived membership; a new Citus
# database; the schema, the tables distributed again, the data (the
# configuration arriving distributes membership), the rest without the
# capture triggers; configure() again installs capture on the shards.
RDB=segrestore
DUMP="$SEGMENTS_TMP/app.dump"
"$PG_BIN/pg_dump" -Fc -p "${PORT[coord]}" -d "$DB" -T segments.member -T segments.citus_catalog -f "$DUMP" ||
    fail "pg_dump of the coordinator"
for n in $NODES; do
    qn "$n" postgres "CREATE DATABASE $RDB" >/dev/null
    qn "$n" "$RDB" "CREATE EXTENSION citus" >/dev/null
done
qn coord "$RDB" "SELECT citus_set_coordinator_host('$SEGMENTS_TMP', ${PORT[coord]})" >/dev/null
for n in w1 w2 w3; do qn coord "$RDB" "SELECT citus_add_node('$SEGMENTS_TMP', ${PORT[$n]})" >/dev/null; done
rq_() { qn coord "$RDB" "$1"; }
MEMBERSHIP_ALL="SELECT md5(string_agg(s.name || ':' || m.contact_id, ',' ORDER BY s.name, m.contact_id)) || ':' || count(*)
                  FROM segments.membership m JOIN segments.segments s ON s.id = m.segment_id"
# restored contacts distributed by another column: the configuration is refused (0A000, HINT)
out=$("$PG_BIN/pg_restore" --exit-on-error --section=pre-data -p "${PORT[coord]}" -d "$RDB" "$DUMP" 2>&1) ||
    fail "pg_restore --section=pre-data: $out"
rq_ "SELECT create_distributed_table('contacts', 'org')" >/dev/null
out=$("$PG_BIN/pg_restore" --section=data -n segments -t config -f - "$DUMP" |
      psql -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -p "${PORT[coord]}" -d "$RDB" 2>&1) &&
    fail "the configuration of contacts distributed by org was restored: $out"
grep -q "ERROR:  0A000: segments on Citus needs" <<< "$out" && grep -q "HINT:  Distribute the source by the contact key" <<< "$out" ||
    fail "restoring the configuration of contacts distributed by org: $out"
[ "$(rq_ "SELECT count(*) FROM segments.config")" = 0 ] || fail "the refused configuration was restored anyway"
note "ok: restoring the configuration of contacts distributed by another column: 0A000 with a HINT, nothing restored"
for n in w1 w2 w3 coord; do qn "$n" postgres "DROP DATABASE $RDB WITH (FORCE)" >/dev/null; done
for n in $NODES; do
    qn "$n" postgres "CREATE DATABASE $RDB" >/dev/null
    qn "$n" "$RDB" "CREATE EXTENSION citus" >/dev/null
done
qn coord "$RDB" "SELECT citus_set_coordinator_host('$SEGMENTS_TMP', ${PORT[coord]})" >/dev/null
for n in w1 w2 w3; do qn coord "$RDB" "SELECT citus_add_node('$SEGMENTS_TMP', ${PORT[$n]})" >/dev/null; done
out=$("$PG_BIN/pg_restore" --exit-on-error --section=pre-data -p "${PORT[coord]}" -d "$RDB" "$DUMP" 2>&1) ||
    fail "pg_restore --section=pre-data: $out"
rq_ "SELECT create_distributed_table('contacts', 'id', shard_count => 6);
     SELECT create_distributed_table('conversations', 'contact_id', colocate_with => 'contacts');
     SELECT create_distributed_table('by_org', 'org'); SELECT create_reference_table('ref_contacts')" >/dev/null
out=$("$PG_BIN/pg_restore" --exit-on-error --section=data -p "${PORT[coord]}" -d "$RDB" "$DUMP" 2>&1) ||
    fail "pg_restore --section=data (the configuration arriving on a distributed source): $out"
[ "$(rq_ "SELECT segments._citus_storage_fits('contacts')")" = t ] ||
    fail "the restored configuration did not distribute membership with contacts"
note "ok: pg_restore of the data distributes membership with the restored contacts (the configuration row's trigger)"
"$PG_BIN/pg_restore" -l "$DUMP" | grep -v ' TRIGGER public contacts segments_capture' > "$SEGMENTS_TMP/app.list"
out=$("$PG_BIN/pg_restore" --exit-on-error --section=post-data -L "$SEGMENTS_TMP/app.list" -p "${PORT[coord]}" -d "$RDB" "$DUMP" 2>&1) ||
    fail "pg_restore --section=post-data without the capture triggers: $out"
rq_ "SELECT segments.configure(source, key_column, tenant_column, traits_column) FROM segments.config" >/dev/null ||
    fail "configure() again, with the restored settings, after the restore"
expect_r() { local got; got=$(rq_ "$2") || fail "$1: query failed"; [ "$got" = "$3" ] || fail "$1: expected '$3', got '$got'"; note "ok: $1"; }
expect_r "after the restore the segments are evaluated on the workers (wait)" "SELECT segments.wait('120 s')" t
expect_r "after the restore verify() finds no difference, every segment ready" \
    "SELECT count(*) || ':' || sum(missing + extra) || ':' || bool_and(state = 'ready') FROM segments.verify()" "6:0:true"
expect_r "the restored membership equals the dumped database's" "$MEMBERSHIP_ALL" "$(q "$MEMBERSHIP_ALL")"
expect_r "the capture trigger is on every shard of the restored contacts" \
    "SELECT sum(result::int) FROM run_command_on_workers(\$\$SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgfoid = 'segments._capture()'::regprocedure AND t.tgtype & 1 = 1 AND c.relname ~ '^contacts_[0-9]+\$'\$\$)" 6
C2=$(rq_ "SELECT min(id) FROM contacts WHERE plan <> 'vip'")
psql -X -qAt -v ON_ERROR_STOP=1 -p "${PORT[coord]}" -U app_writer -d "$RDB" -c "UPDATE contacts SET plan = 'vip' WHERE id = $C2" >/dev/null ||
    fail "the application role updating a restored contact"
expect_r "a change by the application role to a restored contact is captured and applied" \
    "SELECT segments.wait('60 s') AND segments.segment_is_member($C2, 'vip')" t
for n in $NODES; do qn "$n" postgres "DROP DATABASE $RDB WITH (FORCE)" >/dev/null; done

# verify() with a worker down: an error naming the node, not a partial sum
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$SEGMENTS_TMP/w3" -m fast -w stop >/dev/null
errors "verify() on the coordinator with a worker down: 55000, not a partial answer" 55000 "SELECT * FROM segments.verify()"
# a catalog change with a worker down: Citus writes the catalog copy (a
# reference table) on every node in the change's transaction, so it fails
# whole (08006, naming the node, with a HINT) and leaves nothing anywhere
out=$(psql -X -qAt -p "${PORT[coord]}" -U app_admin -d "$DB" -v ON_ERROR_STOP=1 -v VERBOSITY=verbose \
        -c "SELECT segments.create_segment('while_down', '{\"type\":\"attribute\",\"field\":\"plan\",\"op\":\"eq\",\"value\":\"pro\"}')" 2>&1) &&
    fail "create_segment with a worker down succeeded: $out"
grep -q "ERROR:  08006: segments could not copy its catalog to every Citus node" <<< "$out" && grep -q "HINT:  A change of segments" <<< "$out" ||
    fail "create_segment with a worker down: expected 08006 with a HINT, got: $out"
note "ok: create_segment on the coordinator with a worker down: 08006 naming the node, with a HINT"
expect "... nothing of it on the coordinator" "SELECT count(*) FROM segments.segment WHERE name = 'while_down'" 0
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$SEGMENTS_TMP/w3" -l "$SEGMENTS_TMP/w3.log" -w -t 60 start >/dev/null
expect "... nor on any worker once the node is back, and no prepared transaction left on any node" \
    "SELECT (SELECT string_agg(result, ',' ORDER BY nodeport) FROM run_command_on_workers(\$\$SELECT count(*) FILTER (WHERE name = 'while_down') || '/' || (SELECT count(*) FROM pg_prepared_xacts) FROM segments.segment\$\$))
            || ':' || (SELECT count(*) FROM pg_prepared_xacts)" "0/0,0/0,0/0:0"
psql -X -qAt -p "${PORT[coord]}" -U app_admin -d "$DB" -v ON_ERROR_STOP=1 \
    -c "SELECT segments.create_segment('while_down', '{\"type\":\"attribute\",\"field\":\"plan\",\"op\":\"eq\",\"value\":\"pro\"}')" \
    -c "SELECT segments.drop_segment('while_down')" >/dev/null || fail "the same create_segment once the node is back"
note "ok: the same change succeeds once the node is back"

# -- the worker's passes on Citus: chunked on every worker node ---------
# The coordinator's worker asks each worker node to evaluate new segments;
# each node's own worker runs a chunked pass over its shards
# (pass_chunked.c), applying the changes captured there between chunks.
# More contacts (the rows bench/citus_pass.sh adds) and chunks of 100 on
# the worker nodes make a pass take seconds.
FILL="INSERT INTO contacts
      SELECT g, (ARRAY['free','pro','vip'])[1 + g % 3], (g * 37) % 100, 'org' || (g % 5),
             jsonb_build_object('country', (ARRAY['de','fr','us','jp'])[1 + g % 4], 'size', g % 50)
        FROM generate_series(10001, 210000) g ON CONFLICT DO NOTHING"
for db in "$DB" "$REF"; do qn coord "$db" "$FILL" >/dev/null; done
expect "200,000 more contacts applied on the workers (wait)" "SELECT segments.wait('300 s')" t
qref "SELECT segments.wait('300 s')" >/dev/null
for n in w1 w2 w3; do
    qn "$n" "ALTER SYSTEM SET segments.pass_chunk_size = 100" >/dev/null
    qn "$n" "SELECT pg_reload_conf()" >/dev/null
done
# pass_node: the first worker node whose own pass has committed a chunk (polls up to 120 s)
pass_node() {
    local deadline=$((SECONDS + 120)) n
    while [ $SECONDS -lt $deadline ]; do
        for n in w1 w2 w3; do
            [ "$(qn "$n" "SELECT count(*) FROM segments.pass WHERE chunks >= ${1:-1}" 2>/dev/null)" = 1 ] && { echo "$n"; return 0; }
        done
        sleep 0.2
    done
    return 1
}
# node_key NODE: a contact outside 'vip' whose shard is on NODE
node_key() { q "SELECT min(id) FROM contacts WHERE plan <> 'vip' AND get_shard_id_for_distribution_column('contacts', id) IN
                  (SELECT p.shardid FROM pg_dist_placement p JOIN pg_dist_node n ON n.groupid = p.groupid
                    WHERE n.nodeport = ${PORT[$1]})"; }
state_of() { q "SELECT status FROM segments.segments WHERE name = '$1'"; }
create_both() { for db in "$DB" "$REF"; do qn coord "$db" "SELECT segments.create_segment('$1', '$2')" >/dev/null; done; }

# 1. a change captured on a node is applied while that node's pass runs
# (the node's worker applies its captured changes between chunks: within
# about a chunk, not at the end of the node's pass).  The contacts to
# change are chosen before the pass, so that the change follows its
# first chunk closely.
# KF: a contact outside 'vip' among the first keys of the first shard a
# node's pass visits (the lowest shard id placed there): the pass has gone
# past it after its first chunk, so only the node's incremental path,
# between chunks, can make the change visible.
declare -A NODE_KEY
for n in w1 w2 w3; do
    NODE_KEY[$n]=$(q "SELECT min(id) FROM contacts WHERE plan <> 'vip' AND get_shard_id_for_distribution_column('contacts', id) =
                        (SELECT min(p.shardid) FROM pg_dist_placement p JOIN pg_dist_node n ON n.groupid = p.groupid
                          JOIN pg_dist_shard s ON s.shardid = p.shardid
                         WHERE s.logicalrelid = 'contacts'::regclass AND n.nodeport = ${PORT[$n]})")
done
create_both scored '{"type":"attribute","field":"score","op":"gte","value":50}'
PN=$(pass_node) || fail "no worker node ran a chunked pass of the new segment within 120 s"
note "ok: the new segment is evaluated by a chunked pass of a worker node's own worker ($PN: segments.pass there)"
KF=${NODE_KEY[$PN]}
PASS_PROGRESS="SELECT coalesce((SELECT contacts_done || ' of ' || contacts_total || ' contacts, ' || chunks || ' chunks' FROM segments.pass), 'no pass')"
before=$(qn "$PN" "$PASS_PROGRESS")
t0=$(date +%s%N)
q "UPDATE contacts SET plan = 'vip' WHERE id = $KF" >/dev/null
t1=$(date +%s%N)
deadline=$((SECONDS + 60))
until [ "$(q "SELECT segments.segment_is_member($KF, 'vip')")" = t ]; do
    [ $SECONDS -lt $deadline ] || fail "the change to contact $KF (on $PN) was not applied within 60 s during the pass"
    sleep 0.1
done
t2=$(date +%s%N)
during=$(qn "$PN" "$PASS_PROGRESS")
state=$(state_of scored)
qref "UPDATE contacts SET plan = 'vip' WHERE id = $KF" >/dev/null
timing="the UPDATE took $(( (t1 - t0) / 1000000 )) ms, the change was visible $(( (t2 - t1) / 1000000 )) ms after it; $PN's pass before the UPDATE: $before; when visible: $during"
[ "$during" != "no pass" ] && [ "$state" = evaluating ] ||
    fail "the pass on $PN ended before the change to contact $KF was visible (state on the coordinator: $state; $timing)"
note "ok: a change to contact $KF on $PN is visible on the coordinator while $PN's pass of the new segment runs, between chunks ($timing)"
expect "the chunked passes end: wait() on the coordinator" "SELECT segments.wait('300 s')" t
qref "SELECT segments.wait('60 s')" >/dev/null
expect "after the chunked passes the new segment is ready" "SELECT status FROM segments.segments WHERE name = 'scored'" ready
note "the nodes' passes of the new segment took $(on_all seconds "SELECT round(extract(epoch FROM last_duration)::numeric, 1) FROM segments.segment_state st JOIN segments.segment s ON s.id = st.segment_id WHERE s.name = 'scored'")"
same "membership after the worker nodes' chunked passes as on a single node" "$MEMBERSHIP_ALL"
same "the new segment's member count (counted by the coordinator after the nodes' passes) as on a single node" \
    "SELECT name || '=' || member_count FROM segments.segments WHERE name = 'scored'"

# 2. kill -9 of a worker node's worker mid-pass: the node restarts and its
# worker resumes the pass from its last committed chunk
create_both lowscore '{"type":"attribute","field":"score","op":"lt","value":30}'
KN=$(pass_node 3) || fail "no worker node ran three chunks of a pass within 120 s"
pid=$(qn "$KN" "SELECT pid FROM pg_stat_activity WHERE backend_type = 'segments worker'")
[ -n "$pid" ] || fail "no segments worker on $KN"
kill -9 "$pid"
deadline=$((SECONDS + 120))
until grep -q "resumes the evaluation pass" "$SEGMENTS_TMP/$KN.log"; do
    [ $SECONDS -lt $deadline ] || fail "the worker of $KN did not resume its pass within 120 s after kill -9"
    sleep 0.5
done
note "ok: after kill -9 of $KN's worker mid-pass, the node restarted and its worker resumed the pass"
expect "the resumed pass ends: wait() on the coordinator" "SELECT segments.wait('300 s')" t
qref "SELECT segments.wait('60 s')" >/dev/null
same "membership after a pass interrupted by kill -9 as on a single node" "$MEMBERSHIP_ALL"
expect "verify() after the interrupted pass finds no difference" \
    "SELECT sum(missing + extra) || ':' || bool_and(state = 'ready') FROM segments.verify()" "0:true"

# 3. a shard moved while the worker nodes' chunked passes run: each chunk
# locks its membership shard's metadata, and the coordinator evaluates
# again when the placements changed during the pass
create_both midscore '{"type":"attribute","field":"score","op":"between","value":[30,60]}'
MN=$(pass_node) || fail "no worker node ran a chunked pass within 120 s"
MOVE=$(q "SELECT s.shardid FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n ON n.groupid = p.groupid
           WHERE s.logicalrelid = 'contacts'::regclass AND n.nodeport = ${PORT[$MN]} ORDER BY 1 DESC LIMIT 1")
TO=w1; [ "$MN" = w1 ] && TO=w2
q "SELECT citus_move_shard_placement($MOVE, '$SEGMENTS_TMP', ${PORT[$MN]}, '$SEGMENTS_TMP', ${PORT[$TO]},
                                     shard_transfer_mode => 'block_writes')" >/dev/null
[ "$(state_of midscore)" = evaluating ] || fail "the pass ended before the shard move did: make the pass longer"
note "ok: shard $MOVE moved from $MN to $TO while the chunked passes ran"
expect "the passes end after the move: wait() on the coordinator" "SELECT segments.wait('300 s')" t
qref "SELECT segments.wait('60 s')" >/dev/null
same "membership after a shard move during a chunked pass as on a single node" "$MEMBERSHIP_ALL"

# 4. refresh() (a node's whole pass in one transaction) holds the metadata
# lock of its membership shards: a shard move waits for it to commit
# rather than copy the shard without the pass's writes
for db in "$DB" "$REF"; do qn coord "$db" "SELECT segments.update_segment('midscore', definition => '{\"type\":\"attribute\",\"field\":\"score\",\"op\":\"between\",\"value\":[20,40]}')" >/dev/null; done
expect "the changed segment evaluated (wait)" "SELECT segments.wait('300 s')" t
qref "SELECT segments.refresh()" >/dev/null
coproc HOLD2 { psql -X -qAt -p "${PORT[w2]}" -d "$DB" -v ON_ERROR_STOP=1 2>&1; }
echo "BEGIN; SELECT segments._citus_refresh_local(NULL); SELECT 'held';" >&"${HOLD2[1]}"
held=""
while read -r -t 120 line <&"${HOLD2[0]}"; do
    [ "$line" = held ] && { held=1; break; }
done
[ -n "$held" ] || fail "a pass on the second worker did not start"
MOVE2=$(q "SELECT s.shardid FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n ON n.groupid = p.groupid
            WHERE s.logicalrelid = 'contacts'::regclass AND n.nodeport = ${PORT[w2]} ORDER BY 1 LIMIT 1")
psql -X -qAt -v ON_ERROR_STOP=1 -p "${PORT[coord]}" -d "$DB" \
    -c "SELECT citus_move_shard_placement($MOVE2, '$SEGMENTS_TMP', ${PORT[w2]}, '$SEGMENTS_TMP', ${PORT[w3]}, shard_transfer_mode => 'block_writes')" \
    > "$SEGMENTS_TMP/move2.out" 2>&1 &
MOVE_PID=$!
# the move asks w2 for the shards' metadata lock (ExclusiveLock) and waits
deadline=$((SECONDS + 60))
until [ "$(qn w2 "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")" -gt 0 ]; do
    [ $SECONDS -lt $deadline ] || fail "the shard move did not wait for the open pass on the second worker (no lock wait there within 60 s)"
    kill -0 "$MOVE_PID" 2>/dev/null || fail "the shard move finished while a pass on its node was open: $(cat "$SEGMENTS_TMP/move2.out")"
    sleep 0.2
done
note "ok: a shard move waits for the open pass on its node (Citus's shard metadata lock)"
echo "COMMIT;" >&"${HOLD2[1]}"; exec {HOLD2[1]}>&-; wait "$HOLD2_PID" || true
wait "$MOVE_PID" || fail "the shard move after the pass: $(cat "$SEGMENTS_TMP/move2.out")"
note "ok: the shard move ran once the pass committed"
same "membership after a shard move that waited for a pass as on a single node" "$MEMBERSHIP_ALL"
# refresh() on the coordinator while a shard moves: the move waits for the
# nodes' passes, and the pass runs again when the placements changed
q "SELECT segments.refresh()" >/dev/null &
REFRESH_PID=$!
MOVE3=$(q "SELECT s.shardid FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n ON n.groupid = p.groupid
            WHERE s.logicalrelid = 'contacts'::regclass AND n.nodeport = ${PORT[w3]} ORDER BY 1 LIMIT 1")
q "SELECT citus_move_shard_placement($MOVE3, '$SEGMENTS_TMP', ${PORT[w3]}, '$SEGMENTS_TMP', ${PORT[w1]}, shard_transfer_mode => 'block_writes')" >/dev/null
wait "$REFRESH_PID" || fail "refresh() on the coordinator during a shard move failed"
same "membership after refresh() during a shard move as on a single node" "$MEMBERSHIP_ALL"
# 5. a shard rewritten while a node's chunk waits for it: Citus alters a
# node's shards in sessions of the DDL's distributed transaction other than
# the one altering its shell table, each committed on its own, so a chunk
# can take its snapshot after the shell's ALTER TYPE committed and wait for
# a shard still being rewritten.  Read with that snapshot the rewritten
# shard looks empty, and the chunk deleted its contacts' membership
# ("departed"; one run in six lost a shard's after the schema changes
# below).  A session of its own rewrites the shard here, as Citus's does.
# Rewrites shard $RS on node $RN in a transaction left open in the coprocess
# REWRITE (commit it with: echo "COMMIT;" >&"${REWRITE[1]}").
hold_rewrite() {
    coproc REWRITE { psql -X -qAt -p "${PORT[$RN]}" -d "$DB" -v ON_ERROR_STOP=1 2>&1; }
    echo "SET citus.enable_manual_changes_to_shards = on; BEGIN;
          ALTER TABLE contacts_$RS ALTER COLUMN score TYPE integer USING score + 0; SELECT 'held';" >&"${REWRITE[1]}"
    local held="" line=""
    while read -r -t 120 line <&"${REWRITE[0]}"; do
        [ "$line" = held ] && { held=1; break; }
    done
    [ -n "$held" ] || fail "the rewrite of shard $RS did not run: $line"
}
RS=$(q "SELECT min(shardid) FROM pg_dist_shard WHERE logicalrelid = 'contacts'::regclass")
RN=$(q "SELECT n.nodeport FROM pg_dist_placement p JOIN pg_dist_node n ON n.groupid = p.groupid WHERE p.shardid = $RS")
for n in w1 w2 w3; do [ "${PORT[$n]}" = "$RN" ] && RN=$n; done
create_both rewritten '{"type":"attribute","field":"score","op":"gte","value":25}'
deadline=$((SECONDS + 120))
until [ "$(qn "$RN" "SELECT count(*) FROM segments.pass WHERE cursor LIKE '$RS:%'")" = 1 ]; do
    [ $SECONDS -lt $deadline ] || fail "the pass of $RN did not reach shard $RS within 120 s"
    sleep 0.1
done
hold_rewrite
deadline=$((SECONDS + 60))
until [ "$(qn "$RN" "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                      WHERE NOT l.granted AND l.relation = 'contacts_$RS'::regclass AND a.backend_type = 'segments worker'")" = 1 ]; do
    [ $SECONDS -lt $deadline ] || fail "the pass of $RN did not wait for the rewritten shard $RS ($(qn "$RN" "SELECT cursor FROM segments.pass"))"
    sleep 0.1
done
echo "COMMIT;" >&"${REWRITE[1]}"; exec {REWRITE[1]}>&-; wait "$REWRITE_PID" || true
note "ok: shard $RS rewritten on $RN while a chunk of $RN's pass, its snapshot taken, waited for it"
expect "the pass over the rewritten shard ends (wait)" "SELECT segments.wait('300 s')" t
qref "SELECT segments.wait('60 s')" >/dev/null
same "membership after a shard was rewritten under a node's chunk as on a single node" "$MEMBERSHIP_ALL"
# refresh() on the node, one transaction: fails (40001) rather than read the shard empty
hold_rewrite
psql -X -qAt -p "${PORT[$RN]}" -d "$DB" -v VERBOSITY=verbose -c "SELECT segments._citus_refresh_local(NULL)" \
    > "$SEGMENTS_TMP/rewrite.out" 2>&1 &
REFRESH_PID=$!
deadline=$((SECONDS + 60))
until [ "$(qn "$RN" "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'contacts_$RS'::regclass")" = 1 ]; do
    [ $SECONDS -lt $deadline ] || fail "refresh() on $RN did not wait for the rewritten shard $RS"
    sleep 0.1
done
echo "COMMIT;" >&"${REWRITE[1]}"; exec {REWRITE[1]}>&-; wait "$REWRITE_PID" || true
wait "$REFRESH_PID" && fail "refresh() on $RN read shard $RS, rewritten after its snapshot"
grep -q "ERROR:  40001" "$SEGMENTS_TMP/rewrite.out" || fail "refresh() on $RN over a shard rewritten after its snapshot: expected 40001, got: $(cat "$SEGMENTS_TMP/rewrite.out")"
note "ok: refresh() on $RN over a shard rewritten after its snapshot fails with 40001, not reading it empty"
same "membership after the refused refresh() as on a single node" "$MEMBERSHIP_ALL"
for db in "$DB" "$REF"; do qn coord "$db" "SELECT segments.drop_segment('rewritten')" >/dev/null; done
for n in w1 w2 w3; do
    qn "$n" "ALTER SYSTEM RESET segments.pass_chunk_size" >/dev/null
    qn "$n" "SELECT pg_reload_conf()" >/dev/null
done

# -- schema changes on the distributed source (README, "Schema changes") --
# The same DDL on both databases; the event triggers run on the
# coordinator (and on the workers, for the shell table Citus alters there).
# ddl_both SQL WHAT: on both databases.  DDL rewriting every shard can be
# canceled by Citus's distributed deadlock detection while the nodes'
# workers read contacts across nodes (docs/citus.md, "Schema changes"): it
# rolls back whole and is run again (at most three times).
ddl_both() {
    local db try out
    for db in "$DB" "$REF"; do
        for try in 1 2 3; do
            out=$(qn coord "$db" "$1" 2>&1) && break
            grep -q "distributed deadlock" <<< "$out" && [ $try -lt 3 ] || fail "$2 (on $db): $out"
            note "$2: canceled by Citus's distributed deadlock detection, run again"
            sleep 1
        done
    done
    note "ok: $2"
}
expect "before the schema changes, every node is idle (wait)" "SELECT segments.wait('300 s')" t
qref "SELECT segments.wait('300 s')" >/dev/null
# a column no rule reads: added, retyped, renamed, dropped; nothing to evaluate
BEFORE_EVAL=$(q "SELECT max(evaluated_at) FROM segments.segments")
ddl_both "ALTER TABLE contacts ADD COLUMN note text" "ADD COLUMN of a column no rule reads"
ddl_both "ALTER TABLE contacts ALTER COLUMN note TYPE varchar(40)" "ALTER TYPE of a column no rule reads"
ddl_both "ALTER TABLE contacts RENAME COLUMN note TO remark" "RENAME COLUMN of a column no rule reads"
ddl_both "ALTER TABLE contacts DROP COLUMN remark" "DROP COLUMN of a column no rule reads"
expect "DDL on a column no rule reads evaluates nothing again: every segment ready, none evaluated since" \
    "SELECT bool_and(status = 'ready') AND max(evaluated_at) = '$BEFORE_EVAL' FROM segments.segments" t
K9=$(node_key w1)
for db in "$DB" "$REF"; do qn coord "$db" "UPDATE contacts SET plan = 'vip' WHERE id = $K9" >/dev/null; done
expect "capture after a column was dropped (the shards' columns at the source's positions)" \
    "SELECT segments.wait('60 s') AND segments.segment_is_member($K9, 'vip')" t
# a column a rule reads, renamed: followed in every definition, on every node
ddl_both "ALTER TABLE contacts RENAME COLUMN plan TO tier" "RENAME COLUMN of a column a rule reads"
expect "the renamed rule column is followed on the coordinator and on every worker" \
    "SELECT (SELECT definition ->> 'field' FROM segments.segment WHERE name = 'vip') || '/' ||
            (SELECT string_agg(result, ',') FROM run_command_on_workers(\$\$SELECT definition ->> 'field' FROM segments.segment WHERE name = 'vip'\$\$))" \
    "tier/tier,tier,tier"
K9=$(q "SELECT min(id) FROM contacts WHERE tier <> 'vip' AND id > 3000")
for db in "$DB" "$REF"; do qn coord "$db" "UPDATE contacts SET tier = 'vip' WHERE id = $K9" >/dev/null; done
expect "capture after the rename: contact $K9 joins vip" "SELECT segments.wait('60 s') AND segments.segment_is_member($K9, 'vip')" t
# the key (Citus's distribution column), renamed
ddl_both "ALTER TABLE contacts RENAME COLUMN id TO cid" "RENAME COLUMN of the key (the distribution column)"
expect "the renamed key column is followed on every node" \
    "SELECT (SELECT key_column FROM segments.config) || '/' ||
            (SELECT string_agg(result, ',') FROM run_command_on_workers(\$\$SELECT key_column FROM segments.config\$\$))" "cid/cid,cid,cid"
for db in "$DB" "$REF"; do qn coord "$db" "UPDATE contacts SET tier = 'free' WHERE cid = $K9" >/dev/null; done
expect "capture and reads after the key's rename: contact $K9 leaves vip" \
    "SELECT segments.wait('60 s') AND NOT segments.segment_is_member($K9, 'vip')" t
q "SELECT segments.refresh()" >/dev/null || fail "refresh() after the renames"
qref "SELECT segments.refresh()" >/dev/null
same "membership after the renames and a full pass as on a single node" "$MEMBERSHIP_ALL"
ddl_both "ALTER TABLE contacts RENAME COLUMN cid TO id" "the key renamed back"
ddl_both "ALTER TABLE contacts RENAME COLUMN tier TO plan" "the rule column renamed back"
# ALTER TYPE of a column a rule reads, keeping the rules valid: re-evaluated
BEFORE_EVAL=$(q "SELECT evaluated_at FROM segments.segments WHERE name = 'high'")
ddl_both "ALTER TABLE contacts ALTER COLUMN score TYPE bigint" "ALTER TYPE of a column a rule reads (integer to bigint)"
# wait() first, then the state in a statement of its own: a statement's
# snapshot is taken before wait() runs, so it would show the state from
# before the pass (this check passed only when the pass was over first)
expect "the segments reading the retyped column are evaluated again (wait)" "SELECT segments.wait('300 s')" t
expect "... evaluated after the type change, ready" \
    "SELECT evaluated_at > '$BEFORE_EVAL' AND status = 'ready' FROM segments.segments WHERE name = 'high'" t
expect "... on every node the column has the new type" \
    "SELECT string_agg(result, ',') FROM run_command_on_workers(\$\$SELECT atttypid::regtype::text FROM pg_attribute WHERE attrelid = 'contacts'::regclass AND attname = 'score'\$\$)" "bigint,bigint,bigint"
qref "SELECT segments.wait('300 s')" >/dev/null
same "membership after the type change as on a single node" "$MEMBERSHIP_ALL"
# refused as on one node (2BP01), and nothing changed on any node
errors "ALTER TYPE making a rule invalid: 2BP01, as on one node" 2BP01 \
    "ALTER TABLE contacts ALTER COLUMN score TYPE boolean USING score > 50"
errors "DROP COLUMN of a column a rule reads: 2BP01" 2BP01 "ALTER TABLE contacts DROP COLUMN score"
errors "DROP TABLE of the source: 2BP01" 2BP01 "DROP TABLE contacts"
for ddl in "ALTER TABLE contacts ALTER COLUMN id TYPE text" "ALTER TABLE contacts DROP COLUMN id"; do
    out=$(psql -X -qAt -p "${PORT[coord]}" -d "$DB" -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -c "$ddl" 2>&1) &&
        fail "$ddl on the distributed source succeeded"
    grep -q "ERROR:" <<< "$out" || fail "$ddl: $out"
    note "ok: $ddl refused ($(grep -m1 ERROR <<< "$out" | cut -c1-120))"
done
expect "... and the refused DDL left the source as it was on every node (columns, shards, rows)" \
    "SELECT (SELECT string_agg(result, ',') FROM run_command_on_workers(\$\$SELECT atttypid::regtype::text FROM pg_attribute WHERE attrelid = 'contacts'::regclass AND attname = 'score'\$\$))
            || ':' || (SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'contacts'::regclass)
            || ':' || (SELECT count(*) FROM contacts)" "bigint,bigint,bigint:6:$(qref "SELECT count(*) FROM contacts")"
# renaming the source and moving it to another schema: followed (configured
# by OID on every node; the workers' catalog copy gets the new name)
q "CREATE SCHEMA crm" >/dev/null; qref "CREATE SCHEMA crm" >/dev/null
ddl_both "ALTER TABLE contacts RENAME TO people" "RENAME of the source"
ddl_both "ALTER TABLE people SET SCHEMA crm" "SET SCHEMA of the source"
expect "the source's new name is followed on the coordinator and on every worker" \
    "SELECT (SELECT source::text FROM segments.config) || '/' ||
            (SELECT string_agg(result, ',') FROM run_command_on_workers(\$\$SELECT source::text || '=' || (SELECT payload -> 'config' ->> 'source' FROM segments.citus_catalog) FROM segments.config\$\$))" \
    "crm.people/crm.people=crm.people,crm.people=crm.people,crm.people=crm.people"
K9=$(q "SELECT min(id) FROM crm.people WHERE plan <> 'vip' AND id > 3000")
for db in "$DB" "$REF"; do qn coord "$db" "UPDATE crm.people SET plan = 'vip' WHERE id = $K9" >/dev/null; done
expect "capture on the renamed source: contact $K9 joins vip" "SELECT segments.wait('60 s') AND segments.segment_is_member($K9, 'vip')" t
q "SELECT segments.refresh()" >/dev/null || fail "refresh() of the renamed source (every worker loads the catalog copy)"
qref "SELECT segments.refresh()" >/dev/null
same "membership of the renamed source after a full pass as on a single node" "$MEMBERSHIP_ALL"
ddl_both "ALTER TABLE crm.people SET SCHEMA public" "the source moved back"
ddl_both "ALTER TABLE people RENAME TO contacts" "the source renamed back"
expect "verify() after the schema changes finds no difference" \
    "SELECT sum(missing + extra) || ':' || bool_and(state = 'ready') FROM segments.verify()" "0:true"

# -- DROP EXTENSION segments CASCADE on the coordinator, and back ---------
# segments.member and segments.citus_catalog are Citus tables outside the
# extension: the drop takes them, their shards and the capture triggers on
# every node, in its transaction; CREATE EXTENSION and configure() again
# rebuild everything.
for try in 1 2 3; do
    out=$(psql -X -qAt -p "${PORT[coord]}" -d "$DB" -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -c "DROP EXTENSION segments CASCADE" 2>&1) && break
    [ $try -lt 3 ] || fail "DROP EXTENSION segments CASCADE on the coordinator: $out"
    note "DROP EXTENSION segments CASCADE failed, tried again: $(grep -m1 ERROR <<< "$out")"
    sleep 2
done
left=""
for n in coord w1 w2 w3; do
    left+=$(psql -X -qAt -v ON_ERROR_STOP=1 -p "${PORT[$n]}" -d "$DB" -c "SET citus.override_table_visibility = off" \
        -c "SELECT '$n:' || (SELECT count(*) FROM pg_extension WHERE extname = 'segments')
                  || ':' || (SELECT count(*) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = 'segments')
                  || ':' || (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'segments_capture%')
                  || ':' || (SELECT count(*) FROM pg_prepared_xacts) || ' '") || fail "reading node $n after DROP EXTENSION"
done
[ "$left" = "coord:0:0:0:0 w1:0:0:0:0 w2:0:0:0:0 w3:0:0:0:0 " ] ||
    fail "DROP EXTENSION segments CASCADE left something (node:extension:relations in schema segments, shards included:capture triggers:prepared transactions): $left"
expect "... and no Citus metadata of segments' tables" \
    "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'segments.%'" 0
note "ok: DROP EXTENSION segments CASCADE on the coordinator left nothing of segments on any node (tables, shards, capture triggers)"
q "CREATE EXTENSION segments" >/dev/null || fail "CREATE EXTENSION segments after the drop"
q "SELECT segments.configure('contacts', 'id', tenant_column => 'org', traits_column => 'traits')" >/dev/null ||
    fail "configure() after DROP EXTENSION and CREATE EXTENSION"
# the single node's segments, in the order they were made (references first;
# the tenant last: tab is whitespace to read, so an empty field would collapse)
while IFS=$'\t' read -r name def tenant; do
    q "SELECT segments.create_segment('$name', \$d\$$def\$d\$::jsonb, tenant => nullif('$tenant', ''))" >/dev/null ||
        fail "create_segment('$name') after the extension came back"
done < <(psql -X -qAt -F $'\t' -p "${PORT[coord]}" -d "$REF" -c "SELECT name, definition, tenant FROM segments.segment ORDER BY num")
expect "after CREATE EXTENSION and configure() again the segments are evaluated on the workers (wait)" "SELECT segments.wait('300 s')" t
qref "SELECT segments.wait('300 s')" >/dev/null
got=$(q "$MEMBERSHIP_ALL"); want=$(qref "$MEMBERSHIP_ALL")
if [ "$got" != "$want" ]; then
    echo "# per segment, Citus (coordinator count, per node) against the single node:"
    for s in $(qref "SELECT name FROM segments.segment ORDER BY 1"); do
        echo "#   $s: $(q "SELECT count(*) FROM segments.segment_members('$s')") ($(q "SELECT status || ' ' || member_count FROM segments.segments WHERE name = '$s'"); $(on_all nodes "SELECT st.state || ' ' || st.member_count FROM segments.segment_state st JOIN segments.segment s ON s.id = st.segment_id WHERE s.name = '$s'")) against $(qref "SELECT count(*) FROM segments.segment_members('$s')")"
    done
fi
same "membership after DROP EXTENSION, CREATE EXTENSION, configure() and the segments again as on a single node" "$MEMBERSHIP_ALL"
counts_follow "after the extension came back"
# preview() at scale: the 200,000 more contacts over three workers, the
# tenant column configured, shards moved and the extension made again
for p in \
    "every contact, sample 100|{\"and\":[]}|100" \
    "a rule referencing a segment and reading a trait by path, sample 1000|{\"and\":[{\"type\":\"segment\",\"op\":\"in\",\"value\":\"vip_or_high\"},{\"type\":\"trait\",\"path\":[\"country\"],\"op\":\"eq\",\"value\":\"de\"}]}|1000"; do
    IFS='|' read -r what def n <<< "$p"
    same "preview() of $what, on three workers after the extension came back, as on a single node" "$(preview_sql "$def" "$n")"
done
all_passed

# CITUS_BENCH=1: the routing overhead of the read path (bench/citus_read.sh)
if [ -n "${CITUS_BENCH:-}" ]; then
    log "bench: segment_is_member on the coordinator vs a Citus router query"
    PGPORT=${PORT[coord]} PGDATABASE=$DB PG_BIN=$PG_BIN CONTACTS=3000 bench/citus_read.sh
    log "bench: a full pass, one node vs a coordinator and two workers"
    PGPORT=${PORT[coord]} CITUS_DB=$DB REF_DB=$REF CONTACTS=${CITUS_BENCH_CONTACTS:-200000} bench/citus_pass.sh
    log "bench: freshness (incremental path), one node vs a coordinator and three workers"
    PGPORT=${PORT[coord]} CITUS_DB=$DB REF_DB=$REF CONTACTS=${CITUS_BENCH_CONTACTS:-200000} bench/citus_fresh.sh
fi

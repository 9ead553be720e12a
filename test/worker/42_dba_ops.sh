#!/usr/bin/env bash
# What a DBA does to the extension's own tables at 3 a.m., while the worker
# runs and the application writes contacts (pgbench as the application's
# role): (1) VACUUM FULL and CLUSTER of segments.member; (2) REINDEX
# CONCURRENTLY of its table and of its GIN index; (3) REINDEX TABLE
# CONCURRENTLY of segments.change_queue while writes queue there (worker
# off); (4) the DBA's own partial GIN and btree expression indexes on
# segments.member; (5) an AFTER ROW audit trigger on segments.member;
# (6) fillfactor = 70, then a redefinition; (7) ANALYZE and VACUUM
# (FREEZE) during a pass.  After each: wait() ends, membership is exact,
# nothing set aside, the worker reports no error, the btree indexes hold
# every row (amcheck) and the GIN index answers as the rows say.
. "$(dirname "$0")/common.bash"

N=20000
WORK="$PGHOST/dba_$$"; mkdir -p "$WORK"; chmod 777 "$WORK"
on_exit "rm -rf $WORK"

div_contacts "$N"
expect "segments evaluated" "SELECT segments.wait('60 s')" t
q "CREATE EXTENSION IF NOT EXISTS amcheck" >/dev/null

# The application: contacts move between segments and tenants, at a
# steady rate, until stop_writers.
cat >"$WORK/write.sql" <<SQL
\\set id random(1, $N)
\\set n random(1, $N)
UPDATE contacts SET n = :n WHERE id = :id;
SQL
cat >"$WORK/org.sql" <<SQL
\\set id random(1, $N)
UPDATE contacts SET org = CASE WHEN org IS NULL THEN 'org' || (id % 3) ELSE NULL END WHERE id = :id;
SQL
WRITERS=""
start_writers() {
    "$PG_BIN/pgbench" -n -U "$APP" -c 2 -j 2 -T 600 -R 200 \
        -f "$WORK/write.sql@9" -f "$WORK/org.sql@1" >>"$WORK/pgbench.out" 2>&1 &
    WRITERS=$!
    poll "the application writes (pgbench's 2 sessions)" \
         "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbench' AND usename = '$APP'
             AND datname = current_database()" 2 30
}
stop_writers() {
    [ -n "$WRITERS" ] || return 0
    kill -0 "$WRITERS" 2>/dev/null || fail "pgbench ended before it was stopped: $(tail -5 "$WORK/pgbench.out")"
    kill -TERM "$WRITERS" 2>/dev/null || true
    wait "$WRITERS" 2>/dev/null || true
    WRITERS=""
    ! grep -E -i "error|aborted" "$WORK/pgbench.out" >/dev/null ||
        fail "the application's writes failed: $(grep -E -i "error|aborted" "$WORK/pgbench.out" | head -5)"
}
on_exit stop_writers
# a few statements of the application's besides pgbench
app_writes() {
    qa "UPDATE contacts SET n = n % $N + 1 WHERE id % 97 = $1"
    qa "UPDATE contacts SET org = 'org' || ((id + $1) % 3) WHERE id % 89 = $1 AND org IS NOT NULL"
}

# what must hold after every operation (the writers stopped: verify()
# compares with the contacts as they are)
healthy() {
    expect "$1: wait() returns" "SELECT segments.wait('60 s')" t
    expect "$1: membership is exact (verify)" \
           "SELECT coalesce(string_agg(name || ' missing ' || missing || ' extra ' || extra, '; '), 'none')
              FROM segments.verify() WHERE missing + extra > 0" none
    expect "$1: nothing set aside" "SELECT count(*) FROM segments.change_queue_failed" 0
    expect "$1: the worker reports no error" "SELECT coalesce(last_error, 'none') FROM segments.worker" none
    expect "$1: segments.member's btree indexes hold every row (amcheck heapallindexed)" \
           "SELECT string_agg(c.relname, ' ' ORDER BY c.relname)
              FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
             CROSS JOIN LATERAL bt_index_check(i.indexrelid, true) chk
             WHERE i.indrelid = 'segments.member'::regclass AND a.amname = 'btree'" \
           "$(q "SELECT string_agg(c.relname, ' ' ORDER BY c.relname)
                   FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
                  WHERE i.indrelid = 'segments.member'::regclass AND a.amname = 'btree'")"
    gin_agrees "$1: the GIN index answers as the stored rows say (index scan)"
}
RELFILE="SELECT pg_relation_filenode('segments.member')"
# what a concurrent build that failed leaves (member_ddl, before it tries again)
DROP_INVALID="DO \$\$DECLARE i regclass; BEGIN
    FOR i IN SELECT indexrelid::regclass FROM pg_index
              WHERE indrelid IN ('segments.member'::regclass, 'segments.change_queue'::regclass) AND NOT indisvalid
    LOOP EXECUTE 'DROP INDEX ' || i; END LOOP; END \$\$"

# 1. VACUUM FULL and CLUSTER rewrite segments.member (new files) under the
#    worker's feet
start_writers
f0=$(q "$RELFILE")
# a pass under way (every member of div2 rewritten) as the table is rewritten
q "SELECT segments.update_segment('div2', definition => '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"lte\", \"value\": $((N * 3 / 16))}')" >/dev/null
member_ddl "VACUUM FULL segments.member"
app_writes 1
member_ddl "CLUSTER segments.member USING member_pkey"
app_writes 2
sleep 2
stop_writers
expect "(1) the table was rewritten" "SELECT ($RELFILE) <> $f0" t
healthy "(1) VACUUM FULL, CLUSTER"

# 2. REINDEX CONCURRENTLY of the table and of the GIN index, while the
#    application writes
start_writers
gin0=$(q "SELECT 'segments.member_segs_idx'::regclass::oid")
pk0=$(q "SELECT 'segments.member_pkey'::regclass::oid")
q "SELECT segments.update_segment('div2', definition => '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"lte\", \"value\": $((N * 2 / 8))}')" >/dev/null
member_ddl "REINDEX TABLE CONCURRENTLY segments.member" "$DROP_INVALID"
app_writes 3
member_ddl "REINDEX INDEX CONCURRENTLY segments.member_segs_idx" "$DROP_INVALID"
app_writes 4
sleep 2
stop_writers
expect "(2) both indexes rebuilt (new ones)" \
       "SELECT 'segments.member_segs_idx'::regclass::oid <> $gin0 AND 'segments.member_pkey'::regclass::oid <> $pk0" t
expect "(2) no invalid index left" \
       "SELECT count(*) FROM pg_index WHERE indrelid = 'segments.member'::regclass AND NOT indisvalid" 0
healthy "(2) REINDEX CONCURRENTLY"

# 3. REINDEX TABLE CONCURRENTLY of segments.change_queue while writes go
#    there (the worker off), then the worker on again
worker_off "(3)"
queued0=$(q "SELECT count(*) FROM segments.change_queue")
start_writers
app_writes 5
qpk0=$(q "SELECT 'segments.change_queue_pkey'::regclass::oid")
member_ddl "REINDEX TABLE CONCURRENTLY segments.change_queue" "$DROP_INVALID"
app_writes 6
sleep 2
stop_writers
expect "(3) the queue's primary key was rebuilt" \
       "SELECT 'segments.change_queue_pkey'::regclass::oid <> $qpk0" t
expect "(3) the changes are queued in segments.change_queue" \
       "SELECT count(*) > $queued0 FROM segments.change_queue" t
expect "(3) the rebuilt primary key holds every entry (amcheck heapallindexed)" \
       "SELECT count(*) FROM (SELECT bt_index_check('segments.change_queue_pkey', true)) c" 1
expect "(3) no invalid index left on the queue" \
       "SELECT count(*) FROM pg_index WHERE indrelid = 'segments.change_queue'::regclass AND NOT indisvalid" 0
worker_on
poll "(3) the worker is back" "SELECT count(pid) FROM segments.worker" 1
healthy "(3) the queue reindexed"
expect "(3) the queue is drained" "SELECT count(*) FROM segments.change_queue" 0

# 4. a DBA's own indexes on segments.member: a partial GIN index (built
#    concurrently while the application writes) and a btree expression index
start_writers
member_ddl "CREATE INDEX CONCURRENTLY member_dba_gin ON segments.member
     USING gin (segments._member_segs(data)) WHERE tenant = 'org1'" "DROP INDEX IF EXISTS segments.member_dba_gin"
member_ddl "CREATE INDEX member_dba_len ON segments.member ((octet_length(data)), tenant)"
app_writes 7
q "SELECT segments.update_segment('div3', definition => '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"gte\", \"value\": $((N / 3))}')" >/dev/null
app_writes 8
sleep 2
stop_writers
healthy "(4) a DBA's indexes"
expect "(4) the btree expression index holds every row (amcheck heapallindexed)" \
       "SELECT count(*) FROM (SELECT bt_index_check('segments.member_dba_len', true)) c" 1
GINQ="SELECT string_agg(s.name || ':' || (SELECT count(*) FROM segments.member m
                                          WHERE segments._member_segs(m.data) @> ARRAY[s.num] AND m.tenant = 'org1'),
                        ' ' ORDER BY s.name) FROM segments.segment s"
# the extension's own indexes dropped in a transaction rolled back, so
# that the planner can only read the partial one (or the table)
through_partial() {
    psql -X -qAt -v ON_ERROR_STOP=1 -c "BEGIN" \
         -c "DROP INDEX segments.member_segs_idx, segments.member_tenant_idx" \
         -c "SET enable_seqscan = off" -c "SET enable_indexscan = off" -c "$1" -c "ROLLBACK"
}
plan=$(through_partial "EXPLAIN (COSTS OFF) SELECT count(*) FROM segments.member m
                        WHERE segments._member_segs(m.data) @> ARRAY[1] AND m.tenant = 'org1'") ||
    fail "(4) could not explain: $plan"
case "$plan" in *member_dba_gin*) note "ok: (4) the planner reads the partial GIN index";;
                *) fail "(4) the partial GIN index is not used: $plan";; esac
got=$(through_partial "$GINQ") || fail "(4) the query through the partial index failed: $got"
want=$(q "SET enable_bitmapscan = off; SET enable_indexscan = off; $GINQ")
[ "$got" = "$want" ] || fail "(4) the partial GIN index answers '$got', a sequential scan '$want'"
note "ok: (4) the partial GIN index answers as a sequential scan ($got)"
member_ddl "DROP INDEX segments.member_dba_gin; DROP INDEX segments.member_dba_len"

# 5. an AFTER ROW audit trigger a DBA adds on segments.member
q "CREATE TABLE public.member_audit (op text NOT NULL, contact_id bigint NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())"
q "CREATE FUNCTION public.member_audit() RETURNS trigger LANGUAGE plpgsql AS \$\$
   BEGIN
       INSERT INTO public.member_audit (op, contact_id)
            VALUES (TG_OP, CASE WHEN TG_OP = 'DELETE' THEN OLD.contact_id ELSE NEW.contact_id END);
       RETURN NULL;
   END \$\$"
member_ddl "CREATE TRIGGER member_audit AFTER INSERT OR UPDATE OR DELETE ON segments.member
     FOR EACH ROW EXECUTE FUNCTION public.member_audit()"
start_writers
sleep 3
stop_writers
expect "(5) wait() with the trigger" "SELECT segments.wait('60 s')" t
# known changes: contacts 1..100 in div2, div5 and div7 to start with;
# 1..50 deleted (their rows deleted), 51..100 leave div2 for div3
# (rows updated), then 1..50 come back (rows inserted)
qa "UPDATE contacts SET n = id WHERE id BETWEEN 1 AND 100"
expect "(5) wait() for the starting point" "SELECT segments.wait('60 s')" t
q "TRUNCATE public.member_audit"
qa "DELETE FROM contacts WHERE id BETWEEN 1 AND 50"
qa "UPDATE contacts SET n = $((N / 2)) WHERE id BETWEEN 51 AND 100"
expect "(5) the worker applies the changes" "SELECT segments.wait('60 s')" t
expect "(5) the trigger saw the deleted rows" \
       "SELECT count(DISTINCT contact_id) FROM public.member_audit WHERE op = 'DELETE' AND contact_id BETWEEN 1 AND 50" 50
expect "(5) the trigger saw the updated rows" \
       "SELECT count(DISTINCT contact_id) FROM public.member_audit WHERE op = 'UPDATE' AND contact_id BETWEEN 51 AND 100" 50
qa "INSERT INTO contacts SELECT g, 'org1', g FROM generate_series(1, 50) g"
expect "(5) the worker applies the way back" "SELECT segments.wait('60 s')" t
expect "(5) the trigger saw the inserted rows" \
       "SELECT count(DISTINCT contact_id) FROM public.member_audit WHERE op = 'INSERT' AND contact_id BETWEEN 1 AND 50" 50
start_writers
app_writes 9
sleep 2
stop_writers
healthy "(5) an audit trigger"
member_ddl "DROP TRIGGER member_audit ON segments.member"

# 6. fillfactor 70, then a redefinition (every member row of the segment
#    rewritten)
member_ddl "ALTER TABLE segments.member SET (fillfactor = 70)"
start_writers
q "SELECT segments.update_segment('div5', definition => '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"gt\", \"value\": $((N / 8))}')" >/dev/null
app_writes 10
expect "(6) wait() after the redefinition" "SELECT segments.wait('60 s')" t
stop_writers
healthy "(6) fillfactor 70 and a redefinition"
expect "(6) the redefinition is applied" "SELECT '$(mismatches div5 "SELECT id FROM contacts WHERE n > $((N / 8))")'" 0

# 7. ANALYZE and VACUUM (FREEZE) over and over from another session while
#    redefinitions make passes that rewrite rows
( while [ ! -e "$WORK/stop_vacuum" ]; do
      if psql -X -qAt -v ON_ERROR_STOP=1 -c "ANALYZE segments.member" -c "VACUUM (FREEZE) segments.member" >>"$WORK/vacuum.out" 2>&1
      then echo done >>"$WORK/vacuums"; else echo failed >>"$WORK/vacuums"; fi
  done ) &
VACUUMER=$!
on_exit "touch $WORK/stop_vacuum"
start_writers
for v in 16 8 16 8; do
    q "SELECT segments.update_segment('div7', definition => '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"gt\", \"value\": $((N / v))}')" >/dev/null
    app_writes "$((v + 11))"
    [ "$(q "SELECT segments.wait('60 s')")" = t ] || fail "(7) a pass did not end within 60 s"
done
q "SELECT segments.update_segment('div7', definition => '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"lte\", \"value\": $((N * 7 / 8))}')" >/dev/null
sleep 2
stop_writers
touch "$WORK/stop_vacuum"; wait "$VACUUMER" || true
[ "$(grep -c failed "$WORK/vacuums" || true)" = 0 ] || fail "(7) ANALYZE or VACUUM (FREEZE) failed: $(head -5 "$WORK/vacuum.out")"
note "ok: (7) $(grep -c done "$WORK/vacuums") rounds of ANALYZE and VACUUM (FREEZE) beside 5 passes, none failed"
healthy "(7) ANALYZE, VACUUM (FREEZE)"
expect "(7) the frozen table's rows are all visible to the index scan" \
       "SELECT count(*) FROM segments.segment_members('div7')" "$(q "SELECT count(*) FROM contacts WHERE n <= $((N * 7 / 8))")"

upd=$(q "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relid = 'contacts'::regclass")
note "the application updated $upd contact rows"
[ "$upd" -gt 1000 ] || fail "the application wrote little: $(tail -5 "$WORK/pgbench.out")"
all_passed

#!/usr/bin/env bash
# The worker's chunked pass with its helper process
# (src/pass_chunk_helper.c): one helper for the whole pass reads and
# evaluates each chunk in key order while the worker writes.  The pass's
# segments end exact (verify(), counts), with contacts changed during the
# pass in ranges visited and not yet visited, and written by the
# application's role (no superuser); the helper is gone once the pass ends;
# a helper killed midway: the pass reads on alone and ends exact;
# segments.pass_helpers = 0: no helper.  A trigger on segments.member that
# sleeps per written row makes each chunk run into its 750 ms bound, so
# every chunk is cut short while the helper is ahead of the worker.
. "$(dirname "$0")/common.bash"

set_system segments.pass_helper_min_size 0   # helpers for any source (reset on exit)

N=40000
div_contacts "$N"
expect "the first segments are ready" "SELECT segments.wait('60 s')" t
q "GRANT segments_admin TO \"$APP\""
q "CREATE FUNCTION slow_write() RETURNS trigger LANGUAGE plpgsql AS
   \$\$ BEGIN PERFORM pg_catalog.pg_sleep(0.0002); RETURN NEW; END \$\$"
member_ddl "CREATE TRIGGER slow_write BEFORE INSERT OR UPDATE ON segments.member
     FOR EACH ROW EXECUTE FUNCTION slow_write()"

HELPERS="SELECT count(*) FROM pg_stat_activity
          WHERE backend_type = 'segments chunk helper' AND datname = current_database()"
# create_batch PREFIX: ten segments in one transaction, by the application's role
create_batch() {
    local sql="BEGIN;" k
    for k in $(seq 1 10); do
        sql="$sql SELECT segments.create_segment('$1 $k', '{\"or\": [{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"lt\", \"value\": $((k * N / 20))}, {\"type\": \"percentage\", \"op\": \"lt\", \"value\": $((k * 3))}]}');"
    done
    qa "$sql COMMIT;" >/dev/null
}

# 1. a pass with a helper; changes meanwhile in both ranges
create_batch "A"
poll "the worker's pass has a helper evaluating a chunk" \
     "SELECT count(*) > 0 FROM pg_stat_activity
       WHERE backend_type = 'segments chunk helper' AND datname = current_database()
         AND query = 'evaluating a chunk of the worker''s pass'" t 60
expect "the helper logged in as the worker's user" \
       "SELECT count(*) FROM pg_stat_activity a
         WHERE a.backend_type = 'segments chunk helper' AND a.datname = current_database()
           AND a.usename <> (SELECT r.rolname FROM pg_roles r JOIN pg_extension e ON e.extowner = r.oid
                              WHERE e.extname = 'segments')" 0
poll "the pass is past its first chunks" \
     "SELECT pass_contacts_done >= 2000 FROM segments.worker" t 60
qa "UPDATE contacts SET n = $N - n WHERE id IN (1, 2, $((N - 1)), $((N - 2)))"
qa "DELETE FROM contacts WHERE id IN (3, $((N - 3)))"
qa "INSERT INTO contacts VALUES ($((N + 1)), 'org1', 5)"
expect "the pass is still running" "SELECT pass_segments FROM segments.worker" 10
expect "wait() for the pass" "SELECT segments.wait('120 s')" t
poll "no helper once the pass is over" "$HELPERS" 0 30
all_exact "after a pass with a helper"
# 2. the helper killed midway: the pass reads on alone
create_batch "B"
poll "a helper for the second pass" "SELECT count(*) > 0 FROM ($HELPERS) h(n) WHERE n > 0" t 60
poll "the second pass is past its first chunks" \
     "SELECT pass_contacts_done >= 2000 FROM segments.worker" t 60
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
    WHERE backend_type = 'segments chunk helper' AND datname = current_database()" >/dev/null
qa "UPDATE contacts SET n = n + 1 WHERE id IN (10, $((N - 10)))"
expect "wait() for the pass whose helper was killed" "SELECT segments.wait('120 s')" t
all_exact "after the helper was killed"
expect "the worker did not fail" \
       "SELECT count(*) FROM segments.status WHERE last_error IS NOT NULL" 0

# 3. segments.pass_helpers = 0: the pass reads alone
set_system segments.pass_helpers 0
create_batch "C"
seen=0
start=$SECONDS
while [ "$(q "SELECT count(*) FROM segments.status WHERE state <> 'ready'")" != 0 ]; do
    [ $((SECONDS - start)) -lt 120 ] || fail "the third pass did not end in 120 s"
    [ "$(q "$HELPERS")" = 0 ] || seen=1
    sleep 0.2
done
[ "$seen" = 0 ] || fail "segments.pass_helpers = 0 started a chunk helper"
note "ok: segments.pass_helpers = 0: the pass reads alone"
all_exact "after a pass alone"

all_passed

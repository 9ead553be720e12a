#!/usr/bin/env bash
# Storage and write cost of membership, against a running cluster with
# segments preloaded (PGHOST/PGPORT/PGUSER set, a superuser), on the
# benchmark's data (bench/data.sql) and 100 segments (bench/segments.sql):
#   (a) the first refresh() over empty membership (every membership
#       written): its time and the bytes per membership it leaves;
#   (b) a life of definitions with the worker on, as in production
#       (autovacuum on, no VACUUM FULL): the 100 rules again under new
#       names created in one transaction (the worker's chunked pass), then
#       20 of them redefined, 10% of contacts updated, 50 dropped and 50
#       created again in one transaction, each step waited for; the bytes
#       per membership after each step (after the drop: at once, and once
#       the worker removed the dropped numbers from the rows), and after a
#       plain VACUUM (what autovacuum does when it comes round).  The
#       worker rebuilds an index of segments.member concurrently when it
#       outgrew a fresh one (segments.member_reindex_factor); a rebuild in
#       progress counts under "other idx".  The worker vacuums
#       segments.member itself once enough rows were replaced
#       (segments.member_vacuum_scale_factor); MEMBER_VACUUM=0 measures
#       without (set with ALTER SYSTEM for the run, reset after).
# Bytes per membership: pg_total_relation_size('segments.member') (heap,
# TOAST and indexes) / the memberships stored.  make bench measures (a) in
# its "storage" row; this is the quick way, and the only one for (b).
#   CONTACTS=200000 [MEMBER_VACUUM=0] bench/storage_cost.sh
set -euo pipefail
N=${CONTACTS:-200000}
DB=${DB:-segments_storage_bench}
HERE="$(cd "$(dirname "$0")" && pwd)"
trap 'psql -X -q -d postgres -c "ALTER SYSTEM RESET segments.member_vacuum_scale_factor" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
      psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
export PGDATABASE=$DB
. "$HERE/common.sh"     # q, qv, now_s, elapsed, median, worker_on/off, bench_load_db

# settled: waits (up to 30 min) until no segment is pending or evaluating
# and no contact change is pending (the queue table and the ring).
settled() {
    local deadline=$(( $(date +%s) + 1800 ))
    until [ "$(qv "SELECT count(*) FROM segments.segment_state WHERE state IN ('pending', 'evaluating')")" = 0 ] &&
          [ "$(qv "SELECT pending_changes FROM segments.worker")" = 0 ]; do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "not settled after 30 min" >&2; return 1; }
        sleep 0.2
    done
}
# bpm LABEL: bytes per membership now (and the parts)
bpm() {
    qv "SELECT format('%-58s %6s B/membership  (heap %s MB, toast %s MB, pkey %s MB, gin %s MB, other idx %s MB; %s rows, %s memberships)',
                      '$1', round(pg_total_relation_size('segments.member')::numeric / m.n, 2),
                      round(pg_relation_size('segments.member') / 1048576.0, 1),
                      round((pg_table_size('segments.member') - pg_relation_size('segments.member')) / 1048576.0, 1),
                      round(pg_relation_size('segments.member_pkey') / 1048576.0, 1),
                      round(pg_relation_size('segments.member_segs_idx') / 1048576.0, 1),
                      round((pg_indexes_size('segments.member') - pg_relation_size('segments.member_pkey')
                             - pg_relation_size('segments.member_segs_idx')) / 1048576.0, 1),
                      (SELECT count(*) FROM segments.member), m.n)
       FROM (SELECT sum(member_count) AS n FROM segments.segment_state) m"
}

if [ -n "${MEMBER_VACUUM:-}" ]; then
    psql -X -q -d postgres -c "ALTER SYSTEM SET segments.member_vacuum_scale_factor = $MEMBER_VACUUM" -c "SELECT pg_reload_conf()" >/dev/null
fi
bench_load_db "$N"
echo "$N contacts, 100 segments, segments.member_vacuum_scale_factor = $(qv 'SHOW segments.member_vacuum_scale_factor'); PostgreSQL $(qv 'SHOW server_version'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

q -c "CHECKPOINT" >/dev/null
t=$(now_s); qv "SELECT segments.refresh()" >/dev/null
echo "(a) first refresh(): $(elapsed "$t") s"
t=$(now_s); qv "SELECT segments.refresh()" >/dev/null
echo "    refresh() again, nothing changed: $(elapsed "$t") s"
bpm "(a) after one refresh()"

worker_on
q -c "CREATE TABLE bench.seg_new AS SELECT n, 'New: ' || name AS name, definition FROM bench.seg_def"
t=$(now_s)
q -c "SELECT count(segments.create_segment(name, definition)) FROM (SELECT name, definition FROM bench.seg_new ORDER BY n) s" >/dev/null
settled
echo "(b) 100 created in one transaction, worker on: settled in $(elapsed "$t") s"
bpm "(b1) after 100 created at once"
q -c "SELECT count(segments.update_segment(s.id, definition => d.definition))
        FROM segments.segments s JOIN bench.seg_new n ON n.name = s.name
        JOIN bench.seg_def d ON d.n = (n.n + 37) % 100 + 1 WHERE n.n <= 20" >/dev/null
settled
bpm "(b2) then 20 redefined"
q -c "UPDATE public.contacts SET plan = (ARRAY['free', 'trial', 'pro', 'vip'])[1 + id % 4],
             last_seen_at = last_seen_at - interval '40 days' WHERE id % 10 = 3" >/dev/null
settled
bpm "(b3) then 10% of contacts updated"
q -c "SELECT count(segments.drop_segment(s.id)) FROM segments.segments s JOIN bench.seg_new n ON n.name = s.name WHERE n.n > 50" >/dev/null
settled
bpm "(b4) then 50 dropped"
# the worker removes the dropped numbers from the rows (src/member_strip.c)
t=$(now_s); deadline=$(( $(date +%s) + 1800 ))
until [ "$(qv "SELECT count(*) FROM segments.member m WHERE EXISTS (SELECT FROM unnest(segments._member_segs(m.data)) n
                 WHERE NOT EXISTS (SELECT FROM segments.segment s WHERE s.num = n))")" = 0 ]; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "dropped numbers still stored after 30 min" >&2; break; }
    sleep 1
done
echo "    dropped numbers gone from every row after $(elapsed "$t") s"
bpm "(b4s) then the dropped numbers stripped by the worker"
q -c "SELECT count(segments.create_segment(name, definition)) FROM (SELECT name, definition FROM bench.seg_new WHERE n > 50 ORDER BY n) s" >/dev/null
settled
bpm "(b5) then 50 created again at once"
echo "    vacuums of segments.member so far: by autovacuum $(qv "SELECT autovacuum_count FROM pg_stat_user_tables WHERE relid = 'segments.member'::regclass"), by the worker $(qv "SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'segments.member'::regclass")"
q -c "VACUUM segments.member" >/dev/null
bpm "(b6) after a plain VACUUM (as autovacuum)"
q -c "SELECT count(segments.update_segment(s.id, definition => d.definition))
        FROM segments.segments s JOIN bench.seg_new n ON n.name = s.name
        JOIN bench.seg_def d ON d.n = (n.n + 11) % 100 + 1 WHERE n.n > 80" >/dev/null
settled
q -c "UPDATE public.contacts SET plan = (ARRAY['free', 'trial', 'pro', 'vip'])[1 + id % 3] WHERE id % 10 = 7" >/dev/null
settled
bpm "(b7) then 20 redefined and 10% updated again"

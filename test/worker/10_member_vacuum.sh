#!/usr/bin/env bash
# The worker's VACUUM of segments.member (src/member_vacuum.c): passes that
# rewrite every stored row leave the table about its size after one pass,
# with autovacuum off on it and no VACUUM of our own (where it grew by a
# copy per pass before); the vacuum runs in a process the worker starts
# beside itself, one at a time: a contact change committed during it is
# applied while it runs, and a SIGTERM (to it, or to the worker) ends it at
# once without stopping the worker.
. "$(dirname "$0")/common.bash"

set_system segments.member_vacuum_scale_factor 0.1     # the default; reset on exit

qa "CREATE TABLE contacts (id bigint PRIMARY KEY, n int NOT NULL)"
qa "INSERT INTO contacts SELECT g, g FROM generate_series(1, 20000) g"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
# no autovacuum on it: only the worker vacuums
q "ALTER TABLE segments.member SET (autovacuum_enabled = off)"
q "SELECT segments.create_segment('all', '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"gt\", \"value\": 0}')" >/dev/null
q "SELECT segments.create_segment('flip', '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"lte\", \"value\": 10000}')" >/dev/null
expect "the first pass" "SELECT segments.wait('120 s')" t
one_heap=$(q "SELECT pg_relation_size('segments.member')")
VACUUMS="(SELECT vacuum_count + autovacuum_count FROM pg_stat_user_tables WHERE relid = 'segments.member'::regclass)"
vacuums() { q "SELECT $VACUUMS"; }

# flip PASSES [vacuumed]: redefines 'flip' between its two halves that
# many times, each a pass that rewrites every stored row; waits for each,
# and with "vacuumed" also for the worker's vacuum after it (the worker
# spaces its vacuums by ten times the last one's duration, so on a loaded
# machine two passes may otherwise come between two vacuums: the bound
# below is then three copies, not two).
FLIPS=0
flip() {
    local i op v
    for i in $(seq 1 "$1"); do
        FLIPS=$((FLIPS + 1))
        op=$([ $((FLIPS % 2)) = 1 ] && echo gt || echo lte)
        v=$(vacuums)
        q "SELECT segments.update_segment('flip', definition => '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"$op\", \"value\": 10000}')" >/dev/null
        [ "$(q "SELECT segments.wait('120 s')")" = t ] || fail "pass $i did not end within 120 s"
        if [ "${2:-}" = vacuumed ]; then
            local tries=0
            until [ "$(q "SELECT $VACUUMS > $v")" = t ]; do
                tries=$((tries + 1))
                [ $tries -le 600 ] || fail "no vacuum by the worker within 60 s of pass $i: $(q "SELECT n_tup_upd, n_tup_hot_upd, n_tup_del, n_live_tup, n_dead_tup, vacuum_count FROM pg_stat_user_tables WHERE relid = 'segments.member'::regclass")"
                sleep 0.1
            done
        fi
    done
}

# 1. eight passes that rewrite every row: the worker vacuums between them
v0=$(vacuums)
flip 1 vacuumed
# the GIN index after one pass that replaced every row and the worker's
# vacuum: the size it keeps (the first pass's alone holds fewer entries)
one_gin=$(q "SELECT pg_relation_size('segments.member_segs_idx')")
flip 7 vacuumed
note "ok: the worker vacuumed segments.member after each of the 8 passes (autovacuum off on it): $(( $(vacuums) - v0 )) vacuums"
expect "the heap stays within twice its size after one pass (no VACUUM but the worker's)" \
       "SELECT pg_relation_size('segments.member') <= 2 * $one_heap" t
# GIN built by insertion fragments (a vacuum frees pages for reuse, never
# shrinks the file): 2.6x after seven more passes with the worker's vacuum
# (its entries gathered per batch, member_bulk.c); without it, it grows
# with every pass
note "after 8 passes: heap $one_heap -> $(q "SELECT pg_relation_size('segments.member')"), GIN $one_gin (after the first) -> $(q "SELECT pg_relation_size('segments.member_segs_idx')") bytes, $(( $(vacuums) - v0 )) vacuums"
# GIN reuses a deleted page only once no snapshot of any database could
# still see it: on failure, say who held the oldest one
if [ "$(q "SELECT pg_relation_size('segments.member_segs_idx') <= 4 * $one_gin")" != t ]; then
    fail "the GIN index grew past four times its size: $(q "SELECT pg_relation_size('segments.member_segs_idx')") bytes; oldest snapshots:
$(q "SELECT datname, backend_type, age(backend_xmin), state, left(query, 60) FROM pg_stat_activity
      WHERE backend_xmin IS NOT NULL ORDER BY age(backend_xmin) DESC LIMIT 5")
prepared: $(q "SELECT count(*) FROM pg_prepared_xacts")
$(q "SELECT relname, n_live_tup, n_dead_tup, vacuum_count, autovacuum_count FROM pg_stat_user_tables WHERE relid = 'segments.member'::regclass")"
fi
note "ok: ... and the GIN index within four times its size"
expect "membership exact" "SELECT count(*) FROM segments.verify() WHERE missing <> 0 OR extra <> 0" 0

# 2. with the worker's vacuum off, the same passes grow the table: the
# bounds above are what the vacuum keeps, not what passes leave anyway
set_system segments.member_vacuum_scale_factor 0
poll "the setting is read" "SHOW segments.member_vacuum_scale_factor" 0 30
v1=$(vacuums)
heap1=$(q "SELECT pg_relation_size('segments.member')")
flip 8
expect "no vacuum with the setting at 0" "SELECT $(vacuums) - $v1" 0
expect "the heap grew past the bound without it" \
       "SELECT pg_relation_size('segments.member') > 2 * $one_heap OR pg_relation_size('segments.member_segs_idx') > 3 * $one_gin" t
note "heap $heap1 -> $(q "SELECT pg_relation_size('segments.member')") bytes in 8 passes without the worker's vacuum"

# 3. a vacuum made slow (a cost delay for this database's sessions: the
# vacuum process reads it when it starts) runs beside the worker, which
# goes on applying changes and evaluating meanwhile
q "ALTER DATABASE \"$DB\" SET vacuum_cost_delay = '100ms'"
q "ALTER DATABASE \"$DB\" SET vacuum_cost_limit = 1"
set_system segments.member_vacuum_scale_factor 0.1
poll "the setting is read again" "SHOW segments.member_vacuum_scale_factor" 0.1 30
VACUUMING="SELECT pid FROM pg_stat_activity WHERE backend_type = 'segments member vacuum'
             AND datname = current_database() AND query = 'segments: vacuuming segments.member' AND state = 'active'"
NVACUUMING="SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'segments member vacuum'"
wpid=$(q "SELECT pid FROM segments.worker")
# a pass that rewrites every row: a vacuum is due
q "SELECT segments.update_segment('flip', definition => '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"gt\", \"value\": 10000}')" >/dev/null
poll "a vacuum process vacuums segments.member" "SELECT count(*) FROM ($VACUUMING) v" 1 60
vpid=$(q "$VACUUMING")
expect "it is not the worker, and holds the table's SHARE UPDATE EXCLUSIVE lock" \
       "SELECT $vpid <> $wpid AND EXISTS (SELECT FROM pg_locks WHERE pid = $vpid AND relation = 'segments.member'::regclass
          AND mode = 'ShareUpdateExclusiveLock' AND granted)" t
expect "the pass ends while the vacuum runs" "SELECT segments.wait('120 s')" t
start=$(date +%s%N)
qa "UPDATE contacts SET n = 15000 WHERE id = 5"
expect "a change committed during the vacuum is applied (wait() returns)" "SELECT segments.wait('30 s')" t
note "ok: ... visible $(( ($(date +%s%N) - start) / 1000000 )) ms after its commit, the vacuum still running"
expect "... visible to segment_is_member (n > 10000: in 'flip'), with the vacuum still running" \
       "SELECT segments.segment_is_member(5, 'flip') AND NOT segments.segment_is_member(6, 'flip')
               AND EXISTS (SELECT FROM ($VACUUMING) v WHERE pid = $vpid)" t
# another pass rewrites every row again meanwhile: a vacuum is due again,
# and none other starts while this one runs
q "SELECT segments.update_segment('flip', definition => '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"lte\", \"value\": 10000}')" >/dev/null
expect "a second pass ends while the vacuum runs" "SELECT segments.wait('120 s')" t
hold "one vacuum process at a time (a vacuum is due again)" "SELECT string_agg(pid::text, ',') FROM ($VACUUMING) v" "$vpid" 3
expect "... of the worker that started it" "SELECT pid FROM segments.worker" "$wpid"

# SIGTERM to the worker ends its vacuum process too
start=$(date +%s)
q "SELECT pg_terminate_backend($wpid)" >/dev/null
wait_gone "$wpid" 10
wait_gone "$vpid" 10
note "ok: SIGTERM to the worker ended it and its vacuum process within $(( $(date +%s) - start )) s (a vacuum that would take minutes)"
expect "no vacuum process left" "$NVACUUMING" 0
expect "the vacuum did not complete" "SELECT $(vacuums) - $v1" 0
poll "a new worker" "SELECT pid IS NOT NULL AND pid <> $wpid FROM segments.worker" t 60
wpid=$(q "SELECT pid FROM segments.worker")

# SIGTERM to the vacuum process ends it at once; the worker goes on
q "SELECT segments.update_segment('flip', definition => '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"gt\", \"value\": 10000}')" >/dev/null
poll "the new worker starts a vacuum process" "SELECT count(*) FROM ($VACUUMING) v" 1 120
vpid=$(q "$VACUUMING")
start=$(date +%s)
q "SELECT pg_terminate_backend($vpid)" >/dev/null
wait_gone "$vpid" 10
note "ok: SIGTERM ended the vacuum process within $(( $(date +%s) - start )) s"
expect "the vacuum did not complete" "SELECT $(vacuums) - $v1" 0
qa "UPDATE contacts SET n = 15000 WHERE id = 6"
expect "the worker goes on: the pass ends and a change is applied" \
       "SELECT segments.wait('120 s') AND segments.segment_is_member(6, 'flip') AND pid = $wpid FROM segments.worker" t
q "ALTER DATABASE \"$DB\" RESET vacuum_cost_delay"
q "ALTER DATABASE \"$DB\" RESET vacuum_cost_limit"
expect "the changes made during the vacuums are applied" \
       "SELECT segments.segment_is_member(5, 'flip') AND segments.segment_is_member(6, 'flip') AND NOT segments.segment_is_member(7, 'flip')" t
poll "... and the worker has the table vacuumed in full after that" "SELECT $VACUUMS > $v1" t 120
expect "by the same worker" "SELECT pid FROM segments.worker" "$wpid"
expect "membership exact after all" "SELECT count(*) FROM segments.verify() WHERE missing <> 0 OR extra <> 0" 0
all_passed

#!/usr/bin/env bash
# The worker's VACUUM of segments.member (src/member_vacuum.c): passes that
# rewrite every stored row leave the table about its size after one pass,
# with autovacuum off on it and no VACUUM of our own (where it grew by a
# copy per pass before); the vacuum runs as the worker's own work (its
# activity says so), a contact change committed during it neither waits
# nor is lost, and a SIGTERM ends it at once.
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
one_gin=$(q "SELECT pg_relation_size('segments.member_segs_idx')")
VACUUMS="(SELECT vacuum_count + autovacuum_count FROM pg_stat_user_tables WHERE relid = 'segments.member'::regclass)"
vacuums() { q "SELECT $VACUUMS"; }

# flip PASSES [vacuumed]: redefines 'flip' between its two halves that
# many times, each a pass that rewrites every stored row; waits for each,
# and with "vacuumed" also for the worker's vacuum after it (the worker
# spaces its vacuums by ten times the last one's duration, so on a loaded
# machine two passes may otherwise come between two vacuums: the bound
# below is then three copies, not two).
flip() {
    local i op v
    for i in $(seq 1 "$1"); do
        op=$([ $((i % 2)) = 1 ] && echo gt || echo lte)
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
flip 8 vacuumed
note "ok: the worker vacuumed segments.member after each of the 8 passes (autovacuum off on it): $(( $(vacuums) - v0 )) vacuums"
expect "the heap stays within twice its size after one pass (no VACUUM but the worker's)" \
       "SELECT pg_relation_size('segments.member') <= 2 * $one_heap" t
# GIN built by insertion fragments (its pending list is merged page by
# page, and a vacuum frees pages for reuse, never shrinks the file): 2.4x
# after these eight passes with the worker's vacuum; without it, it grows
# with every pass
note "after 8 passes: heap $one_heap -> $(q "SELECT pg_relation_size('segments.member')"), GIN $one_gin -> $(q "SELECT pg_relation_size('segments.member_segs_idx')") bytes, $(( $(vacuums) - v0 )) vacuums"
expect "... and the GIN index within three times its size" \
       "SELECT pg_relation_size('segments.member_segs_idx') <= 3 * $one_gin" t
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

# 3. a vacuum made slow (a cost delay for this database's sessions, the
# worker's included): a change committed meanwhile, then SIGTERM
q "ALTER DATABASE \"$DB\" SET vacuum_cost_delay = '100ms'"
q "ALTER DATABASE \"$DB\" SET vacuum_cost_limit = 1"
old=$(q "SELECT pid FROM segments.worker")
q "SELECT pg_terminate_backend($old)" >/dev/null
wait_gone "$old" 30
poll "a new worker, with the database's settings" "SELECT pid IS NOT NULL AND pid <> $old FROM segments.worker" t 60
set_system segments.member_vacuum_scale_factor 0.1
poll "the setting is read again" "SHOW segments.member_vacuum_scale_factor" 0.1 30
# a pass that rewrites every row, not waited for: its vacuum is slow
q "SELECT segments.update_segment('flip', definition => '{\"type\": \"attribute\", \"field\": \"n\", \"op\": \"gt\", \"value\": 10000}')" >/dev/null
poll "the worker vacuums segments.member" \
     "SELECT count(*) FROM pg_stat_activity a JOIN segments.worker w USING (pid)
       WHERE a.query = 'segments: vacuuming segments.member' AND a.state = 'active'" 1 60
pid=$(q "SELECT pid FROM segments.worker")
expect "the vacuum holds segments.member's lock" \
       "SELECT count(*) FROM pg_locks WHERE pid = $pid AND relation = 'segments.member'::regclass
          AND mode = 'ShareUpdateExclusiveLock' AND granted" 1
start=$(date +%s%N)
psql -X -qAt -v ON_ERROR_STOP=1 -U "$APP" -c "SET statement_timeout = '10s'" \
     -c "UPDATE contacts SET n = 15000 WHERE id = 5" >/dev/null ||
    fail "a contact change did not commit within 10 s during the vacuum"
note "ok: a contact change commits during the vacuum ($(( ($(date +%s%N) - start) / 1000000 )) ms)"
expect "the vacuum is still running (it is slow): the change waits in the queue" \
       "SELECT (SELECT count(*) FROM pg_stat_activity WHERE pid = $pid AND query = 'segments: vacuuming segments.member')
               || ' ' || (SELECT count(*) FROM segments.change_queue)" "1 1"
start=$(date +%s)
q "SELECT pg_terminate_backend($pid)" >/dev/null
wait_gone "$pid" 10
note "ok: SIGTERM ended the worker within $(( $(date +%s) - start )) s of a vacuum that would take minutes"
expect "the vacuum did not complete" "SELECT $(vacuums) - $v1" 0
q "ALTER DATABASE \"$DB\" RESET vacuum_cost_delay"
q "ALTER DATABASE \"$DB\" RESET vacuum_cost_limit"
expect "the pass and the change are done by the next worker" "SELECT segments.wait('120 s')" t
expect "the change made during the vacuum is applied (n > 10000: in 'flip')" \
       "SELECT segments.segment_is_member(5, 'flip') AND NOT segments.segment_is_member(6, 'flip')" t
poll "... and the next worker vacuums the table in full" "SELECT $VACUUMS > $v1" t 60
expect "membership exact after all" "SELECT count(*) FROM segments.verify() WHERE missing <> 0 OR extra <> 0" 0
all_passed

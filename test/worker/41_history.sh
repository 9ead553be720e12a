#!/usr/bin/env bash
# Membership history with the worker: the changes it makes are recorded with
# their cause (evaluation of a new segment, contact changes and deletions,
# the passage of time, failing closed); a consumer polling
# consume_changes() while several writers and passes run concurrently gets
# every change once, in id order (ids follow commit order); NOTIFY on a
# segment's channel when segments.history_notify is on; the worker trims
# changes older than segments.history_retention.  The feed is read by a
# segments_read login role, as an application would.
. "$(dirname "$0")/common.bash"

READER="segw_reader_${TEST_NAME}_$$"
ROLES+=("$READER")              # dropped on exit by common.bash
q "CREATE ROLE \"$READER\" LOGIN IN ROLE segments_read"
# qr SQL: a statement run by the reading role
qr() { psql -X -qAt -v ON_ERROR_STOP=1 -U "$READER" -c "$1"; }

qa "CREATE TABLE contacts (id integer PRIMARY KEY, plan text, seen_at timestamptz)"
qa "INSERT INTO contacts SELECT g, CASE WHEN g % 2 = 0 THEN 'vip' ELSE 'free' END, now() - interval '1 day' FROM generate_series(1, 200) g"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
VIP=$(q "SELECT segments.create_segment('VIP', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}')")
poll "a new segment's first evaluation: one entry per member, cause evaluation" \
     "SELECT count(*) || ' ' || string_agg(DISTINCT cause, ',') FROM segments.membership_changes WHERE segment_id = '$VIP'" \
     "100 evaluation"
got=$(qr "SELECT count(*) FROM segments.membership_changes")
[ "$got" = 100 ] || fail "the reader sees $got changes, not 100"
note "ok: a segments_read role reads the feed"

# segments created one after another while the worker evaluates the ones
# before: each first evaluation recorded in full (a cached catalog loaded
# with a snapshot older than the invalidation it had processed kept a new
# segment unknown to the history trigger)
for k in 1 2 3 4 5 6; do
    q "SELECT segments.create_segment('Burst$k', '{\"type\": \"attribute\", \"field\": \"id\", \"op\": \"lte\", \"value\": $((k * 30))}')" >/dev/null
done
expect "wait() for the Burst segments" "SELECT segments.wait('60 s')" t
expect "each Burst segment's first evaluation: one entry per member" \
       "SELECT string_agg(s.name || ' ' || (SELECT count(*) FROM segments.membership_changes h
                                            WHERE h.segment_id = s.id AND h.entered), ', ' ORDER BY s.name)
          FROM segments.segments s WHERE s.name LIKE 'Burst%'" \
       "Burst1 30, Burst2 60, Burst3 90, Burst4 120, Burst5 150, Burst6 180"
q "SELECT segments.drop_segment(id) FROM segments.segments WHERE name LIKE 'Burst%'" >/dev/null

# a segment updated by the worker's evaluation pass, many members at once
# (bulk rows in the change log): contacts 1-50 leave, 151-200 enter, each
# recorded once, cause evaluation, as the reader sees it
MID=$(q "SELECT segments.create_segment('Mid', '{\"type\": \"attribute\", \"field\": \"id\", \"op\": \"lte\", \"value\": 150}')")
expect "wait() for Mid" "SELECT segments.wait('60 s')" t
before=$(q "SELECT max(change_id) FROM segments.change_log")
q "SELECT segments.update_segment('$MID', definition => '{\"type\": \"attribute\", \"field\": \"id\", \"op\": \"between\", \"value\": [51, 200]}')" >/dev/null
poll "the update's changes recorded: 50 exits, 50 entries, cause evaluation" \
     "SELECT count(*) FILTER (WHERE NOT entered) || ' ' || count(*) FILTER (WHERE entered) || ' ' || string_agg(DISTINCT cause, ',')
        FROM segments.membership_changes WHERE segment_id = '$MID' AND change_id > $before" "50 50 evaluation"
got=$(qr "SELECT count(*) FILTER (WHERE NOT entered AND contact_id BETWEEN 1 AND 50) || ' ' ||
              count(*) FILTER (WHERE entered AND contact_id BETWEEN 151 AND 200) || ' ' || count(DISTINCT contact_id)
         FROM segments.membership_changes WHERE segment_id = '$MID' AND change_id > $before")
[ "$got" = "50 50 100" ] || fail "the reader sees the update's changes as '$got', not '50 50 100'"
note "ok: each of the update's changes recorded once, for the right contacts"
# (the first evaluations, 100 and 150 entries in one statement, are bulk
# rows; the update's statements, under 64 contacts each, rows of their own)
expect "bulk rows and rows of their own, as many contacts a statement changed" \
       "SELECT count(*) FILTER (WHERE contacts IS NOT NULL AND change_id <= $before) > 0
               AND count(*) FILTER (WHERE contacts IS NOT NULL AND change_id > $before) = 0
          FROM segments.change_log" t
expect "was_member() reads them: contact 1 was in Mid before, not now; contact 200 now" \
       "SELECT segments.was_member(1, '$MID'::uuid, (SELECT at FROM segments.change_log WHERE change_id > $before ORDER BY change_id LIMIT 1) - interval '1 microsecond')
               AND NOT segments.was_member(1, '$MID'::uuid, now()) AND segments.was_member(200, '$MID'::uuid, now())" t
q "SELECT segments.drop_segment('$MID')" >/dev/null

# contact changes and a deletion, applied by the worker
qa "UPDATE contacts SET plan = 'vip' WHERE id = 1"
qa "UPDATE contacts SET plan = 'free' WHERE id = 2"
qa "DELETE FROM contacts WHERE id = 4"
poll "contact changes recorded, cause change" \
     "SELECT string_agg(contact_id || ':' || entered || ':' || cause, ' ' ORDER BY contact_id)
        FROM segments.membership_changes WHERE segment_id = '$VIP' AND cause <> 'evaluation'" \
     "1:true:change 2:false:change 4:false:change"
expect "the exit of the deleted contact says since when it was a member" \
       "SELECT x.since IS NOT NULL AND x.since <= c.at FROM segments.change_log c,
               segments._history_rows(c.entered, c.exited) x WHERE c.contact_id = 4 AND NOT x.entered AND c.cause = 'c'" t

# the passage of time: a contact seen now enters Recent, and leaves it by
# itself 3 s later (an exit with cause time)
RECENT=$(q "SELECT segments.create_segment('Recent', '{\"type\": \"attribute\", \"field\": \"seen_at\", \"op\": \"within_last\", \"value\": \"3 seconds\"}')")
expect "wait() for Recent" "SELECT segments.wait('60 s')" t
qa "UPDATE contacts SET seen_at = now() WHERE id = 7"
poll "time: the contact leaves by itself, the exit recorded with cause time" \
     "SELECT string_agg(entered || ':' || cause, ' ' ORDER BY change_id) FROM segments.membership_changes
       WHERE segment_id = '$RECENT' AND contact_id = 7" \
     "true:change false:time"

# failing closed: an evaluation the membership storage refuses (a trigger
# refuses new rows) fails, and the segment's members leave, cause failed
LOW=$(q "SELECT segments.create_segment('Low', '{\"type\": \"attribute\", \"field\": \"id\", \"op\": \"lte\", \"value\": 5}')")
expect "wait() for Low" "SELECT segments.wait('60 s')" t
q "CREATE FUNCTION public.refuse_new() RETURNS trigger LANGUAGE plpgsql AS \$\$
   BEGIN RAISE EXCEPTION 'membership storage refuses new rows'; END \$\$"
member_ddl "CREATE TRIGGER refuse_new BEFORE INSERT ON segments.member FOR EACH ROW EXECUTE FUNCTION public.refuse_new()"
q "SELECT segments.update_segment('$LOW', definition => '{\"type\": \"attribute\", \"field\": \"id\", \"op\": \"between\", \"value\": [1, 150]}')" >/dev/null
poll "the segment failed" "SELECT state FROM segments.status WHERE segment_id = '$LOW'" failed
expect "its members left, cause failed" \
       "SELECT count(*) || ' ' || string_agg(DISTINCT cause, ',') FROM segments.membership_changes
         WHERE segment_id = '$LOW' AND NOT entered" "4 failed"
member_ddl "DROP TRIGGER refuse_new ON segments.member"
q "SELECT segments.drop_segment('$LOW')" >/dev/null

# NOTIFY: a listener on the segment's channel hears of a change
set_system segments.history_notify on
LISTEN_OUT="$PGHOST/listen_$$"
{ echo "LISTEN \"segments_$VIP\";"; for _ in $(seq 1 300); do echo "SELECT pg_sleep(0.2);"; done; } |
    psql -X -qAt -U "$READER" >"$LISTEN_OUT" 2>&1 &
LISTENER=$!
stop_listener() { kill "$LISTENER" 2>/dev/null || true; rm -f "$LISTEN_OUT"; }
on_exit stop_listener
poll "the listener is connected" \
     "SELECT count(*) FROM pg_stat_activity WHERE usename = '$READER' AND query LIKE '%pg_sleep%'" 1
qa "UPDATE contacts SET plan = 'vip' WHERE id = 3"
start=$SECONDS
until grep -q "notification \"segments_$VIP\" received" "$LISTEN_OUT"; do
    [ $((SECONDS - start)) -lt 60 ] || fail "no notification on segments_$VIP within 60 s: $(cat "$LISTEN_OUT")"
    sleep 0.2
done
note "ok: NOTIFY on the segment's channel ($((SECONDS - start)) s)"
stop_listener

# Concurrent writers and passes, one consumer: every change once, in order.
qr "SELECT count(*) FROM segments.consume_changes('loader', 100000)" >/dev/null   # catch up
q "CREATE TABLE public.consumed (seq bigserial, poll integer, change_id bigint)"
q "GRANT INSERT, SELECT ON public.consumed TO \"$READER\"; GRANT USAGE ON SEQUENCE public.consumed_seq_seq TO \"$READER\""
writer() {      # $1: first contact; flips the plan of 20 contacts, one transaction each
    local i
    for i in $(seq "$1" 7 "$(($1 + 139))"); do
        qa "UPDATE contacts SET plan = CASE plan WHEN 'vip' THEN 'free' ELSE 'vip' END WHERE id = $i" || return 1
    done
}
pids=()
writer 10 & pids+=($!)
writer 11 & pids+=($!)
writer 12 & pids+=($!)
( for i in 1 2 3 4; do
      qa "UPDATE contacts SET plan = 'vip' WHERE id BETWEEN $((150 + i * 5)) AND $((154 + i * 5))" &&
      q "SELECT segments.refresh()" >/dev/null || exit 1
  done ) & pids+=($!)
( for i in 1 2 3 4; do
      qa "UPDATE contacts SET plan = 'free' WHERE id BETWEEN $((100 + i * 5)) AND $((104 + i * 5))" &&
      q "SELECT segments.refresh_contacts(ARRAY(SELECT g FROM generate_series($((100 + i * 5)), $((104 + i * 5))) g))" >/dev/null || exit 1
  done ) & pids+=($!)
n=0
running=1
while [ "$running" = 1 ]; do
    running=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && running=1; done
    n=$((n + 1))
    qr "INSERT INTO public.consumed (poll, change_id)
        SELECT $n, change_id FROM segments.consume_changes('loader', 50)" >/dev/null
done
for p in "${pids[@]}"; do wait "$p" || fail "a writer failed"; done
expect "wait() after the writers" "SELECT segments.wait('60 s')" t
while :; do
    n=$((n + 1))
    got=$(qr "WITH c AS (INSERT INTO public.consumed (poll, change_id)
                         SELECT $n, change_id FROM segments.consume_changes('loader', 500) RETURNING 1)
              SELECT count(*) FROM c")
    [ "$got" = 0 ] && break
done
note "consumer polled $n times"
expect "changes were made while the consumer polled, over several polls" \
       "SELECT count(*) >= 80 AND count(DISTINCT poll) > 2 FROM public.consumed" t
expect "consumed in id order (a change committed later never has a smaller id)" \
       "SELECT count(*) FROM (SELECT change_id, lag(change_id) OVER (ORDER BY seq) AS prev FROM public.consumed) x
         WHERE change_id < prev" 0
expect "no change consumed twice, none missed" \
       "SELECT count(*) FROM (SELECT change_id, count(*) AS n FROM public.consumed GROUP BY 1) c
                         FULL JOIN (SELECT change_id, count(*) AS n FROM segments.membership_changes
                                     WHERE change_id >= (SELECT min(change_id) FROM public.consumed) GROUP BY 1) l
                         USING (change_id)
         WHERE c.n IS DISTINCT FROM l.n" 0
expect "membership agrees with the recorded changes (entries minus exits)" \
       "SELECT (SELECT count(*) FROM segments.segment_members('$VIP'))
             = (SELECT sum(CASE WHEN entered THEN 1 ELSE -1 END) FROM segments.membership_changes
                 WHERE segment_id = '$VIP')" t

# Retention: the worker deletes changes older than it, and forgets dropped
# segments none of whose changes are left.
expect "changes of the dropped segment kept" "SELECT count(*) > 0 FROM segments.dropped_segment" t
old=$(q "SELECT max(change_id) FROM segments.change_log")
set_system segments.history_retention 2s
poll "the worker trimmed the changes older than the retention" \
     "SELECT count(*) FROM segments.change_log WHERE change_id <= $old" 0 90
poll "and the dropped segment with them" "SELECT count(*) FROM segments.dropped_segment" 0 30
# back to the default before the next script's workers start
reset_system
poll "retention back to its default for new sessions" "SHOW segments.history_retention" 90d 30
all_passed

#!/usr/bin/env bash
# Fault soak: for SOAK_SECONDS (default 30; release checks use e.g.
# SOAK_SECONDS=600) an application login writes contacts with pgbench
# (upserts and deletes from 4 clients), a dashboard churns definitions
# (redefines, creates and drops segments), the worker is SIGKILLed every
# few seconds (the postmaster restarts every backend: pgbench is restarted
# too) and the server is shut down in immediate mode once, midway.  Then,
# writers stopped: wait() is true, nothing was set aside, no segment
# failed, and verify() finds no difference in any segment.  The server is
# left running as it was found, also on failure.
. "$(dirname "$0")/../worker/common.bash"

SOAK_SECONDS=${SOAK_SECONDS:-30}
LOG="$PGHOST/server.log"
WORK="$PGHOST/soak_$$"; mkdir -p "$WORK"; chmod 777 "$WORK"
APP="soak_app_$$"; ADMIN="soak_admin_$$"
PIDS=""
finish() {
    local rc=$?
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    # the server as found: running
    if ! runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$LOG" -w -t 60 start >/dev/null 2>&1 || true
    fi
    wait_server 2>/dev/null || true
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1
    psql -X -q -d postgres -c "DROP ROLE IF EXISTS $APP" -c "DROP ROLE IF EXISTS $ADMIN" >/dev/null 2>&1
    rm -rf "$WORK"
    exit $rc
}
trap finish EXIT

q "CREATE TABLE contacts (id bigint PRIMARY KEY, plan text, seats int, country text, traits jsonb)"
q "INSERT INTO contacts SELECT g, (ARRAY['free','pro','vip'])[1 + g % 3], g % 20, (ARRAY['US','DE','FR'])[1 + g % 3],
     jsonb_build_object('score', g % 100) FROM generate_series(1, 5000) g"
q "SELECT segments.configure('contacts', 'id', traits_column => 'traits')" >/dev/null
q "CREATE ROLE $APP LOGIN; GRANT SELECT, INSERT, UPDATE, DELETE ON contacts TO $APP; GRANT segments_read TO $APP"
q "CREATE ROLE $ADMIN LOGIN; GRANT segments_write TO $ADMIN; GRANT SELECT ON contacts TO $ADMIN"
admin() { psql -X -qAt -v ON_ERROR_STOP=1 -U "$ADMIN" -c "$1"; }
# Capture reads the configuration as the extension's owner in newer builds;
# where it still reads it as the writer, give the writer that (read) access.
if ! psql -X -qAt -U "$APP" -c "BEGIN; UPDATE contacts SET plan = plan WHERE id = 1; ROLLBACK" >/dev/null 2>&1; then
    q "GRANT SELECT ON segments.config, segments.segment TO $APP"
    note "capture needs the writer to read segments.config here: granted"
fi
admin "SELECT segments.create_segment('VIP', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}')" >/dev/null
admin "SELECT segments.create_segment('Big', '{\"type\": \"attribute\", \"field\": \"seats\", \"op\": \"gte\", \"value\": 10}')" >/dev/null
admin "SELECT segments.create_segment('Scored', '{\"type\": \"trait\", \"key\": \"score\", \"op\": \"gt\", \"value\": 50}')" >/dev/null
admin "SELECT segments.create_segment('Big VIP', '{\"and\": [{\"type\": \"segment\", \"op\": \"in\", \"value\": \"VIP\"}, {\"type\": \"segment\", \"op\": \"in\", \"value\": \"Big\"}]}')" >/dev/null
expect "wait() before the soak" "SELECT segments.wait('60 s')" t

cat >"$WORK/upsert.sql" <<'SQL'
\set id random(1, 6000)
\set p random(1, 3)
\set s random(0, 19)
\set c random(1, 3)
INSERT INTO contacts VALUES (:id, (ARRAY['free','pro','vip'])[:p], :s, (ARRAY['US','DE','FR'])[:c], jsonb_build_object('score', :s * 5))
  ON CONFLICT (id) DO UPDATE SET plan = EXCLUDED.plan, seats = EXCLUDED.seats, country = EXCLUDED.country, traits = EXCLUDED.traits;
SQL
cat >"$WORK/delete.sql" <<'SQL'
\set id random(1, 6000)
DELETE FROM contacts WHERE id = :id;
SQL
END=$((SECONDS + SOAK_SECONDS))

# writers: pgbench, restarted whenever a crash ends it
( while [ $SECONDS -lt $END ]; do
      "$PG_BIN/pgbench" -n -U "$APP" -c 4 -j 2 -T $((END - SECONDS > 0 ? END - SECONDS : 1)) \
          -f "$WORK/upsert.sql@9" -f "$WORK/delete.sql@1" >>"$WORK/pgbench.out" 2>&1 || sleep 0.5
  done ) & PIDS="$PIDS $!"

# definition churn, as a dashboard does it (errors while the server is down are expected)
( i=0
  while [ $SECONDS -lt $END ]; do
      i=$((i + 1))
      if [ $((i % 2)) -eq 0 ]; then v=vip; else v=pro; fi
      psql -X -qAt -U "$ADMIN" -c "SELECT segments.update_segment(id, definition => jsonb_build_object('type', 'attribute', 'field', 'plan', 'op', 'eq', 'value', '$v')) FROM segments.segments WHERE name = 'VIP'" >/dev/null 2>&1 || true
      psql -X -qAt -U "$ADMIN" -c "SELECT segments.create_segment('Churn $i', jsonb_build_object('type', 'attribute', 'field', 'country', 'op', 'eq', 'value', 'US'))" >/dev/null 2>&1 || true
      psql -X -qAt -U "$ADMIN" -c "SELECT segments.drop_segment(id) FROM segments.segments WHERE name LIKE 'Churn %' AND name <> 'Churn $i'" >/dev/null 2>&1 || true
      sleep 0.7
  done ) >/dev/null 2>&1 & PIDS="$PIDS $!"

# faults: SIGKILL the worker every few seconds, one immediate shutdown midway
kills=0; shutdown_done=0
while [ $SECONDS -lt $END ]; do
    sleep $(( SOAK_SECONDS >= 60 ? 4 : 3 ))
    [ $SECONDS -lt $END ] || break
    if [ $shutdown_done -eq 0 ] && [ $SECONDS -ge $((END - SOAK_SECONDS / 2)) ]; then
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$LOG" -w -t 60 start >/dev/null
        wait_server
        shutdown_done=1
        continue
    fi
    pid=$(psql -X -qAt -c "SELECT pid FROM segments.worker" 2>/dev/null || true)
    if [ -n "$pid" ]; then
        kill -KILL "$pid" 2>/dev/null && kills=$((kills + 1))
        sleep 0.5; wait_server
    fi
done
for p in $PIDS; do wait "$p" 2>/dev/null || true; done
PIDS=""
txns=$(awk '/^number of transactions actually processed:/ { n += $6 } END { print n + 0 }' "$WORK/pgbench.out")
note "soak of $SOAK_SECONDS s: $kills worker SIGKILLs, $shutdown_done immediate shutdown, $txns pgbench transactions (runs cut by a crash not counted)"
[ "$kills" -ge 2 ] || fail "fewer than two worker kills: nothing was tested"
[ "$shutdown_done" -eq 1 ] || fail "no immediate shutdown happened"
expect "contacts were written during the soak" "SELECT count(*) > 0 FROM contacts WHERE id > 5000" t

expect "wait() after the soak" "SELECT segments.wait('180 s')" t
expect "nothing set aside" "SELECT count(*) FROM segments.change_queue_failed" 0
expect "no segment failed" "SELECT count(*) FROM segments.status WHERE state <> 'ready'" 0
expect "verify(): no difference in any segment" \
       "SELECT coalesce(string_agg(name || ' missing ' || missing || ' extra ' || extra, '; '), 'none')
          FROM segments.verify() WHERE missing + extra > 0" none
expect "verify() covered every segment" \
       "SELECT (SELECT count(*) FROM segments.verify()) = (SELECT count(*) FROM segments.segments)" t
all_passed

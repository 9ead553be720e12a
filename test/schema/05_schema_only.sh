#!/usr/bin/env bash
# A schema-only dump restored, then a data-only dump loaded into it (the
# configuration and segments come with the data; the capture triggers with
# the schema), with the worker running throughout: the data load queues or
# evaluates what it must, and membership ends equal to the original's.  The
# source lives in a schema sorted after "segments", so its rows load after
# the configuration and go through capture.
. "$(dirname "$0")/common.bash"

q "CREATE SCHEMA zz AUTHORIZATION $OWNER"
qo "CREATE TABLE zz.contacts (id bigint PRIMARY KEY, plan text, seats int)" >/dev/null
q "INSERT INTO zz.contacts SELECT g, CASE WHEN g % 10 = 0 THEN 'vip' ELSE 'free' END, g % 7 FROM generate_series(1, 3000) g"
q "SELECT segments.configure('zz.contacts', 'id')" >/dev/null
q "SELECT segments.create_segment('VIP', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}', 'VIP plan')" >/dev/null
q "SELECT segments.create_segment('Big', '{\"type\": \"attribute\", \"field\": \"seats\", \"op\": \"gt\", \"value\": 4}')" >/dev/null
expect "segments evaluated" "SELECT segments.wait('30 s')" t
MEMBERS="SELECT md5(string_agg(segment_id || ':' || contact_id, ',' ORDER BY segment_id, contact_id)) FROM segments.membership"
IDS="SELECT string_agg(id || ':' || name || ':' || coalesce(description, ''), ',' ORDER BY id) FROM segments.segments"
want_members=$(q "$MEMBERS")
want_ids=$(q "$IDS")

WORK="$PGDATA/../dump_$$"
mkdir -p "$WORK"
"$PG_BIN/pg_dump" -s -f "$WORK/schema.sql" "$DB"
"$PG_BIN/pg_dump" -a -f "$WORK/data.sql" "$DB"
target="${DB}_r"
EXTRA_DBS="$target"
psql -X -q -d postgres -c "CREATE DATABASE \"$target\"" >/dev/null
qt() { psql -X -qAt -v ON_ERROR_STOP=1 -d "$target" -c "$1"; }

psql -X -q -v ON_ERROR_STOP=1 -d "$target" -f "$WORK/schema.sql" >"$WORK/out" 2>&1 ||
    fail "schema-only restore failed: $(cat "$WORK/out")"
grep -qiE "error|warning" "$WORK/out" && fail "schema-only restore reported: $(cat "$WORK/out")"
note "ok: schema-only dump restored without errors"
[ "$(qt "SELECT count(*) FROM segments.config")" = 0 ] || fail "a schema-only dump carried the configuration"
note "ok: no configuration yet"
[ "$(qt "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'zz.contacts'::regclass AND tgname LIKE 'segments_capture%'")" = 2 ] ||
    fail "capture triggers not restored with the schema"
note "ok: capture triggers came with the schema"

psql -X -q -v ON_ERROR_STOP=1 -d "$target" -f "$WORK/data.sql" >"$WORK/out" 2>&1 ||
    fail "data-only load failed: $(cat "$WORK/out")"
grep -qiE "error|warning" "$WORK/out" && fail "data-only load reported: $(cat "$WORK/out")"
note "ok: data-only dump loaded without errors"
[ "$(qt "$IDS")" = "$want_ids" ] || fail "segments differ after the data load"
note "ok: segments kept their ids, names and descriptions"
[ "$(qt "SELECT segments.wait('60 s')")" = t ] || fail "wait() not true after the data load"
[ "$(qt "SELECT string_agg(state, ',') FROM segments.status")" = "ready,ready" ] || fail "not ready after the data load"
[ "$(qt "$MEMBERS")" = "$want_members" ] || fail "membership differs from the original's"
note "ok: membership rebuilt equal to the original's"
psql -X -qAt -v ON_ERROR_STOP=1 -U "$OWNER" -d "$target" -c "INSERT INTO zz.contacts VALUES (9001, 'vip', 6)" >/dev/null
[ "$(qt "SELECT segments.wait('30 s') AND segments.segment_is_member(9001::bigint, 'VIP') AND segments.segment_is_member(9001::bigint, 'Big')")" = t ] ||
    fail "capture does not work after the load"
note "ok: capture works after the load"
rm -rf "$WORK"
all_passed

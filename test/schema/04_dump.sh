#!/usr/bin/env bash
# pg_dump / pg_restore of a database using segments (README: Backup and restore), in plain,
# custom and directory formats, with and without --single-transaction
# --exit-on-error: the restore reports no error; the configuration and the
# segments (ids, names, descriptions, definitions, schedules, tenants)
# survive; until the worker has rebuilt membership every segment shows
# pending and wait() is false; then membership equals the original's and
# capture works on the restored table.  The restores run with the worker
# off for the target database (segments.enabled) so that "until then" can
# be looked at; turning it back on lets the worker rebuild.
. "$(dirname "$0")/common.bash"

q "CREATE TABLE contacts (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), org text, plan text,
                          seats int, traits jsonb)"
q "INSERT INTO contacts (org, plan, seats, traits)
   SELECT 'o' || (g % 2), CASE WHEN g % 10 = 0 THEN 'vip' ELSE 'free' END, g % 7,
          jsonb_build_object('lang', CASE WHEN g % 3 = 0 THEN 'fr' ELSE 'en' END)
     FROM generate_series(1, 2000) g"
q "ALTER TABLE contacts OWNER TO $OWNER"
q "SELECT segments.configure('contacts', 'id', tenant_column => 'org', traits_column => 'traits')" >/dev/null
q "SELECT segments.create_segment('VIP', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}', 'Customers on the VIP plan')" >/dev/null
q "SELECT segments.create_segment('French', '{\"type\": \"trait\", \"key\": \"lang\", \"op\": \"eq\", \"value\": \"fr\"}', NULL, 'o1')" >/dev/null
q "SELECT segments.create_segment('French VIP', '{\"and\": [{\"type\": \"segment\", \"op\": \"in\", \"value\": \"VIP\"},
                                                            {\"type\": \"attribute\", \"field\": \"seats\", \"op\": \"gte\", \"value\": 3}]}')" >/dev/null
q "SELECT segments.schedule(id, '1 hour') FROM segments.segments WHERE name = 'VIP'" >/dev/null
# a dropped segment leaves a gap in the numbers: they must survive as they are
q "SELECT segments.drop_segment(segments.create_segment('Gone', '{\"and\": []}'))" >/dev/null
expect "segments evaluated" "SELECT segments.wait('30 s')" t

CATALOG="SELECT string_agg(concat_ws('|', id, num, tenant, name, description, definition::text, refs::text,
                                      depends_on::text, schedule, created_at, updated_at), E'\n' ORDER BY id)
           FROM segments.segment"
CONFIG="SELECT concat_ws('|', source, key_column, key_type, tenant_column, traits_column) FROM segments.config"
MEMBERS="SELECT md5(coalesce(string_agg(segment_id || ':' || contact_id, ',' ORDER BY segment_id, contact_id), '')) FROM segments.membership"
want_catalog=$(q "$CATALOG")
want_config=$(q "$CONFIG")
want_members=$(q "$MEMBERS")
want_seq=$(q "SELECT last_value FROM segments.segment_num_seq")
[ "$(q "SELECT count(*) FROM segments.membership")" -gt 500 ] || fail "too few members to compare"

WORK="$PGDATA/../dump_$$"
mkdir -p "$WORK"
chmod 777 "$WORK"
"$PG_BIN/pg_dump" -Fp -f "$WORK/db.sql" "$DB"
"$PG_BIN/pg_dump" -Fc -f "$WORK/db.dump" "$DB"
"$PG_BIN/pg_dump" -Fd -f "$WORK/db.dir" "$DB"
note "ok: dumped in plain, custom and directory formats"
grep -q "segments_read" "$WORK/db.sql" && fail "the dump grants on objects the restore rebuilds"
note "ok: the dump holds no GRANT on the rebuilt membership objects"

n=0
for format in plain custom directory; do
    for mode in plain single; do
        n=$((n + 1))
        target="${DB}_r$n"
        EXTRA_DBS="${EXTRA_DBS:-} $target"
        psql -X -q -d postgres -c "CREATE DATABASE \"$target\"" >/dev/null
        psql -X -q -d postgres -c "ALTER DATABASE \"$target\" SET segments.enabled = off" >/dev/null
        opts=""
        [ "$mode" = single ] && opts="--single-transaction --exit-on-error"
        rc=0
        case $format in
            plain)
                if [ "$mode" = single ]; then
                    psql -X -q -v ON_ERROR_STOP=1 --single-transaction -d "$target" -f "$WORK/db.sql" >"$WORK/out" 2>&1 || rc=$?
                else
                    psql -X -q -d "$target" -f "$WORK/db.sql" >"$WORK/out" 2>&1 || rc=$?
                fi ;;
            custom) "$PG_BIN/pg_restore" $opts -d "$target" "$WORK/db.dump" >"$WORK/out" 2>&1 || rc=$? ;;
            directory) "$PG_BIN/pg_restore" $opts -d "$target" "$WORK/db.dir" >"$WORK/out" 2>&1 || rc=$? ;;
        esac
        [ "$rc" = 0 ] || fail "restore ($format $opts) failed: $(cat "$WORK/out")"
        grep -qiE "error|warning" "$WORK/out" && fail "restore ($format $opts) reported: $(cat "$WORK/out")"
        note "ok: $format $opts: restored without errors"
        qt() { psql -X -qAt -v ON_ERROR_STOP=1 -d "$target" -c "$1"; }
        [ "$(qt "$CATALOG")" = "$want_catalog" ] || fail "$format $opts: segments differ"
        [ "$(qt "$CONFIG")" = "$want_config" ] || fail "$format $opts: configuration differs"
        [ "$(qt "SELECT last_value FROM segments.segment_num_seq")" = "$want_seq" ] || fail "$format $opts: number sequence differs"
        note "ok: $format $opts: configuration and segments (ids, descriptions, schedules, tenants) survive"
        [ "$(qt "SELECT string_agg(state, ',') FROM segments.status")" = "pending,pending,pending" ] ||
            fail "$format $opts: not pending before the rebuild: $(qt "SELECT string_agg(state, ',') FROM segments.status")"
        [ "$(qt "SELECT segments.wait('1 s')")" = f ] || fail "$format $opts: wait() true before the rebuild"
        note "ok: $format $opts: pending, and wait() false, until membership is rebuilt"
        psql -X -q -d postgres -c "ALTER DATABASE \"$target\" RESET segments.enabled" >/dev/null
        # a new session sees the setting; its committed notification starts the worker
        qt "SELECT segments._notify_worker()" >/dev/null
        [ "$(qt "SELECT segments.wait('60 s')")" = t ] || fail "$format $opts: wait() not true after the rebuild"
        [ "$(qt "SELECT string_agg(state, ',') FROM segments.status")" = "ready,ready,ready" ] || fail "$format $opts: not ready"
        [ "$(qt "$MEMBERS")" = "$want_members" ] || fail "$format $opts: membership differs from the original's"
        note "ok: $format $opts: the worker rebuilt the same membership"
        psql -X -qAt -v ON_ERROR_STOP=1 -U "$OWNER" -d "$target" -c "UPDATE contacts SET plan = 'vip' WHERE id = (SELECT id FROM contacts WHERE plan = 'free' ORDER BY id LIMIT 1)" >/dev/null
        [ "$(qt "SELECT segments.wait('30 s')")" = t ] || fail "$format $opts: wait() after a write"
        [ "$(qt "SELECT count(*) FROM segments.segment_members('VIP')")" = "$(qt "SELECT count(*) FROM contacts WHERE plan = 'vip'")" ] ||
            fail "$format $opts: capture does not work after the restore"
        note "ok: $format $opts: capture works on the restored table"
        psql -X -q -d postgres -c "DROP DATABASE \"$target\" WITH (FORCE)" >/dev/null
    done
done
rm -rf "$WORK"
all_passed

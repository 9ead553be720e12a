#!/usr/bin/env bash
# Renames on the source are followed (README: Schema changes): a column a rule reads, the
# key, tenant and traits columns, the table itself and a move to another
# schema, each done by the table's owner (no privilege on schema segments).
# Definitions shown by segments.segments use the new names and capture
# keeps working: membership stays exact after writes made after each rename.
. "$(dirname "$0")/common.bash"

q "CREATE TABLE contacts (id bigint PRIMARY KEY, org text, plan text, seats int, traits jsonb)"
q "INSERT INTO contacts SELECT g, 'o' || (g % 2), CASE WHEN g % 10 = 0 THEN 'vip' ELSE 'free' END,
          g % 7, jsonb_build_object('lang', CASE WHEN g % 3 = 0 THEN 'fr' ELSE 'en' END)
     FROM generate_series(1, 1000) g"
q "ALTER TABLE contacts OWNER TO $OWNER"
q "SELECT segments.configure('contacts', 'id', tenant_column => 'org', traits_column => 'traits')" >/dev/null
q "SELECT segments.create_segment('VIP', '{\"and\": [{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"},
                                                     {\"not\": {\"type\": \"attribute\", \"field\": \"seats\", \"op\": \"eq\", \"value\": 99}}]}')" >/dev/null
q "SELECT segments.create_segment('French', '{\"type\": \"trait\", \"key\": \"lang\", \"op\": \"eq\", \"value\": \"fr\"}')" >/dev/null
q "SELECT segments.create_segment('Org one', '{\"type\": \"attribute\", \"field\": \"org\", \"op\": \"eq\", \"value\": \"o1\"}')" >/dev/null
expect "segments evaluated" "SELECT segments.wait('30 s')" t

# exact membership of the three segments, for the table's current names
check_exact() {
    local rel="$1" plan="$2" key="$3" org="$4" traits="$5"
    [ "$(mismatches VIP "SELECT $key FROM $rel WHERE $plan = 'vip' AND seats IS DISTINCT FROM 99")" = 0 ] ||
        fail "VIP membership differs ($6)"
    [ "$(mismatches French "SELECT $key FROM $rel WHERE $traits ->> 'lang' = 'fr'")" = 0 ] ||
        fail "French membership differs ($6)"
    [ "$(mismatches 'Org one' "SELECT $key FROM $rel WHERE $org = 'o1'")" = 0 ] ||
        fail "Org one membership differs ($6)"
    note "ok: membership exact $6"
}
check_exact contacts plan id org traits "before renames"

# a column a rule reads
qo "ALTER TABLE contacts RENAME COLUMN plan TO tier" >/dev/null
expect "definition shows the new column name" \
    "SELECT definition #>> '{and,0,field}' FROM segments.segments WHERE name = 'VIP'" tier
expect "segment still ready after the rename" "SELECT status FROM segments.segments WHERE name = 'VIP'" ready
qo "UPDATE contacts SET tier = 'vip' WHERE id IN (1, 2, 3)"
qo "UPDATE contacts SET tier = 'free' WHERE id = 10"
expect "wait() after writes to the renamed column" "SELECT segments.wait('30 s')" t
expect "write to the renamed column captured" "SELECT segments.segment_is_member(2::bigint, 'VIP')" t
check_exact contacts tier id org traits "after renaming a read column"

# the key, tenant and traits columns
qo "ALTER TABLE contacts RENAME COLUMN id TO contact_id" >/dev/null
qo "ALTER TABLE contacts RENAME COLUMN org TO account" >/dev/null
qo "ALTER TABLE contacts RENAME COLUMN traits TO custom_data" >/dev/null
expect "configuration follows the renames" \
    "SELECT key_column || ',' || tenant_column || ',' || traits_column FROM segments.config" \
    "contact_id,account,custom_data"
expect "tenant segment's definition follows" \
    "SELECT definition ->> 'field' FROM segments.segments WHERE name = 'Org one'" account
qo "INSERT INTO contacts VALUES (5001, 'o1', 'vip', 1, '{\"lang\": \"fr\"}')"
qo "UPDATE contacts SET custom_data = '{\"lang\": \"fr\"}' WHERE contact_id = 4"
qo "UPDATE contacts SET account = 'o1' WHERE contact_id = 6"
qo "DELETE FROM contacts WHERE contact_id = 20"
expect "wait() after writes with renamed key/tenant/traits" "SELECT segments.wait('30 s')" t
expect "new contact in after key rename" "SELECT segments.segment_is_member(5001::bigint, 'VIP')" t
expect "deleted contact out after key rename" "SELECT segments.segment_is_member(20::bigint, 'VIP')" f
check_exact contacts tier contact_id account custom_data "after renaming key, tenant and traits"

# the table, and a move to another schema
qo "ALTER TABLE contacts RENAME TO people" >/dev/null
qo "CREATE SCHEMA crm" >/dev/null
qo "ALTER TABLE people SET SCHEMA crm" >/dev/null
expect "configuration shows the moved table" "SELECT source::text FROM segments.config" crm.people
qo "UPDATE crm.people SET tier = 'vip' WHERE contact_id IN (7, 8)"
qo "INSERT INTO crm.people VALUES (5002, 'o0', 'vip', 2, '{}')"
expect "wait() after writes to the moved table" "SELECT segments.wait('30 s')" t
expect "write to the moved table captured" "SELECT segments.segment_is_member(8::bigint, 'VIP')" t
q "SELECT segments.refresh()" >/dev/null
check_exact crm.people tier contact_id account custom_data "after renaming and moving the table (and a refresh)"
expect "every segment ready" "SELECT string_agg(status, ',' ORDER BY name) FROM segments.segments" "ready,ready,ready"

# renames of columns of other tables, and swaps, touch nothing they should not
qo "CREATE TABLE public.other (plan text)" >/dev/null
qo "ALTER TABLE public.other RENAME COLUMN plan TO tier2" >/dev/null
expect "another table's rename leaves definitions alone" \
    "SELECT definition #>> '{and,0,field}' FROM segments.segments WHERE name = 'VIP'" tier
qo "ALTER TABLE crm.people RENAME COLUMN tier TO tmp" >/dev/null
qo "ALTER TABLE crm.people RENAME COLUMN seats TO tier" >/dev/null
qo "ALTER TABLE crm.people RENAME COLUMN tmp TO seats" >/dev/null
expect "swapped column names followed" \
    "SELECT (definition #>> '{and,0,field}') || ',' || (definition #>> '{and,1,not,field}') FROM segments.segments WHERE name = 'VIP'" \
    "seats,tier"
qo "UPDATE crm.people SET seats = 'vip' WHERE contact_id = 9"
expect "wait() after the swap" "SELECT segments.wait('30 s')" t
check_exact "(SELECT contact_id, seats AS plan2, tier AS seats, account, custom_data FROM crm.people) p" plan2 contact_id account custom_data "after swapping two column names"

expect "no error reported by the worker" "SELECT coalesce(last_error, '') FROM segments.worker" ""
all_passed

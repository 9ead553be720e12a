#!/usr/bin/env bash
# The stored membership of a batch of contacts, and the contacts the worker
# re-evaluates, are read through the key's btree index (src/key_fetch.c):
# keys other than dense integers one by one with one scan, after sorting
# and removing duplicates in the index's order.  Here the keys are text in
# a database whose collation (ICU "en") orders them otherwise than bytes
# do ('a' < 'B' here, 'B' < 'a' in C).  Membership after refresh() (the
# backend's pass, rows stored or not), after the worker applies the
# application's writes (scattered keys, deletions, a key written twice),
# and after a refresh() that changes a few rows, must equal each rule's
# SQL.  19_key_range.sh reads integer keys by range.
DB_CREATE_OPTIONS="TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en' LOCALE 'C.UTF-8'"
. "$(dirname "$0")/common.bash"

expect "keys sort otherwise than bytes here" "SELECT 'a' < 'B' AND NOT ('a' COLLATE \"C\" < 'B' COLLATE \"C\")" t

q "CREATE TABLE contacts (id text PRIMARY KEY, n integer NOT NULL, plan text)"
q "ALTER TABLE contacts OWNER TO \"$APP\""
# keys of mixed case: 'c00001', 'C00002', ... interleave in the ICU order
qa "INSERT INTO contacts
      SELECT CASE WHEN i % 3 = 0 THEN 'C' WHEN i % 3 = 1 THEN 'c' ELSE 'b' END || lpad(i::text, 5, '0'),
             i, CASE WHEN i % 7 = 0 THEN 'vip' ELSE 'free' END
      FROM generate_series(1, 3000) i"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
attr_segment vip plan eq '"vip"'
attr_segment tens n lt 10
attr_segment sparse n gt 2990

check_all() {
    same_as_sql vip "SELECT id FROM contacts WHERE plan = 'vip'" "$1"
    same_as_sql tens "SELECT id FROM contacts WHERE n < 10" "$1"
    same_as_sql sparse "SELECT id FROM contacts WHERE n > 2990" "$1"
    [ "$(q "SELECT count(*) FROM segments.verify() WHERE missing + extra > 0")" = 0 ] || fail "verify() finds differences ($1)"
    note "ok: three segments equal their SQL ($1)"
}

q "SELECT segments.refresh()" >/dev/null
check_all "first refresh()"
expect "vip members stored" "SELECT count(*) FROM segments.segment_members('vip')" 428

# contacts that leave every segment, enter one, or change within one: their
# stored rows are found, between stored rows of unchanged contacts
qa "UPDATE contacts SET plan = 'free' WHERE n IN (7, 1400, 2996)"
qa "UPDATE contacts SET plan = 'vip' WHERE n IN (1, 1501, 2999)"
qa "UPDATE contacts SET n = n + 2000 WHERE n IN (3, 4)"
qa "DELETE FROM contacts WHERE n IN (14, 2995)"
qa "INSERT INTO contacts VALUES ('a00000', 0, 'vip'), ('Z99999', 5, 'free')"
qa "UPDATE contacts SET plan = 'vip' WHERE id = 'a00000'"
expect "wait() after the writes" "SELECT segments.wait('60 s')" t
check_all "the worker"
expect "contacts gone are in no segment" \
    "SELECT count(*) FROM segments.membership WHERE contact_id IN ('C00014', 'b02995')" 0
expect "the new contact's stored row" \
    "SELECT string_agg(s.name, ',' ORDER BY s.name) FROM segments.membership m JOIN segments.segment s ON s.id = m.segment_id WHERE m.contact_id = 'a00000'" "tens,vip"

# refresh() reading every stored row back: a few change, the rest are found unchanged
worker_off
q "UPDATE contacts SET plan = CASE plan WHEN 'vip' THEN 'free' ELSE 'vip' END WHERE n % 500 = 0"
q "SELECT segments.refresh()" >/dev/null
check_all "refresh() with stored rows"
expect "no second row for any contact" \
    "SELECT count(*) - count(DISTINCT contact_id) FROM segments.member" 0
all_passed

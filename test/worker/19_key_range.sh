#!/usr/bin/env bash
# Integer keys close together (a batch of a pass, or of the worker applying
# one statement's changes) are read through the key's btree index by one
# scan of each run of them (src/key_fetch.c): entries between wanted keys (rows
# of contacts not in the batch), wanted keys without an entry (contacts
# without a stored row, or gone), and the dead versions that non-HOT updates
# of segments.member leave in its primary key are walked past.  Membership
# must equal each rule's SQL after every round; each round rewrites most
# rows, so later rounds read through many dead versions.
. "$(dirname "$0")/common.bash"

q "CREATE TABLE contacts (id bigint PRIMARY KEY, n integer NOT NULL, plan text)"
q "ALTER TABLE contacts OWNER TO \"$APP\""
# even ids only: a batch's range holds keys of no contact
qa "INSERT INTO contacts SELECT 2 * i, i, CASE WHEN i % 3 = 0 THEN 'vip' ELSE 'free' END
      FROM generate_series(1, 4000) i"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
attr_segment vip plan eq '"vip"'
attr_segment low n lt 1000

check_all() {
    same_as_sql vip "SELECT id FROM contacts WHERE plan = 'vip'" "$1"
    same_as_sql low "SELECT id FROM contacts WHERE n < 1000" "$1"
    [ "$(q "SELECT count(*) - count(DISTINCT contact_id) FROM segments.member")" = 0 ] ||
        fail "a contact has two stored rows ($1)"
    note "ok: both segments equal their SQL ($1)"
}

q "SELECT segments.refresh()" >/dev/null
check_all "first refresh()"

for round in 1 2 3; do
    # one statement over a run of keys: members leave, others enter, some are
    # deleted and others inserted in the gaps, at both ends of the run too
    lo=$((round * 1000)); hi=$((lo + 1400))
    qa "UPDATE contacts SET plan = CASE plan WHEN 'vip' THEN 'free' ELSE 'vip' END,
                            n = CASE WHEN n < 1000 THEN n + 1000 ELSE n - 1000 END
          WHERE id BETWEEN $lo AND $hi AND id % 4 <> 2"
    qa "DELETE FROM contacts WHERE id BETWEEN $lo AND $hi AND id % 20 = 10"
    qa "INSERT INTO contacts SELECT i, i % 1500, 'vip' FROM generate_series($((lo + 1)), $hi, 10) i
          ON CONFLICT (id) DO NOTHING"
    expect "wait() after round $round's writes" "SELECT segments.wait('60 s')" t
    check_all "the worker, round $round"
    # a full pass reading every stored row back, most rewritten
    q "UPDATE contacts SET plan = CASE plan WHEN 'vip' THEN 'free' ELSE 'vip' END WHERE id % 3 = $((round % 3))"
    q "SELECT segments.refresh()" >/dev/null
    check_all "refresh(), round $round"
done
# runs of keys far apart (each read by a range of its own), single keys
# between them, and keys at both ends of bigint, changed in one statement
ends="-9223372036854775808, -9223372036854775807, 9223372036854775790, 9223372036854775800, 9223372036854775806, 9223372036854775807"
qa "INSERT INTO contacts SELECT k, 5, 'free' FROM unnest(ARRAY[$ends]::bigint[]) k"
expect "wait() after the keys at the ends" "SELECT segments.wait('60 s')" t
check_all "keys at both ends of bigint"
qa "UPDATE contacts SET plan = CASE plan WHEN 'vip' THEN 'free' ELSE 'vip' END,
                        n = CASE WHEN n < 1000 THEN n + 1000 ELSE n - 1000 END
      WHERE id IN ($ends) OR id BETWEEN 100 AND 160 OR id BETWEEN 5000 AND 5060
         OR id IN (2000, 2040, 2080, 7000, 7998)"
expect "wait() after runs far apart" "SELECT segments.wait('60 s')" t
check_all "the worker, runs far apart and the ends of bigint"
[ "$(q "SELECT count(*) FROM segments.member WHERE contact_id IN ($ends)")" = 6 ] ||
    fail "the contacts at the ends of bigint have no stored row"
note "ok: the six contacts at the ends of bigint have their rows"
expect "verify() finds no difference" "SELECT count(*) FROM segments.verify() WHERE missing + extra > 0" 0
all_passed

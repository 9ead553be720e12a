#!/usr/bin/env bash
# case_sensitive: false compares lower() of both sides in the database's
# collation (README: Rule language), also where the evaluator lowers ASCII
# text byte by byte: that short cut is taken only when the collation lowers
# ASCII as the C locale does.  Here the database is Turkish (ICU tr-TR),
# where lower('I') is a dotless 'ı', so 'I' is not 'i' case-insensitively.
# Membership from refresh() (the backend's pass) and from the worker
# applying the application's writes must both equal SQL's lower().
DB_CREATE_OPTIONS="TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'tr-TR' LOCALE 'C.UTF-8'"
. "$(dirname "$0")/common.bash"

expect "the database lowers as Turkish does" "SELECT lower('I') <> 'i' AND lower('İ') = 'i'" t

q "CREATE TABLE contacts (id bigint PRIMARY KEY, name text, data jsonb)"
q "ALTER TABLE contacts OWNER TO \"$APP\""
qa "INSERT INTO contacts VALUES
      (1, 'I', '{\"k\": \"I\"}'), (2, 'i', '{\"k\": \"i\"}'), (3, 'ı', '{\"k\": \"ı\"}'),
      (4, 'İ', '{\"k\": \"İ\"}'), (5, 'ABCI', '{\"k\": \"ABCI\"}'), (6, 'abci', '{\"k\": \"abci\"}'),
      (7, 'PLAIN', '{\"k\": \"PLAIN\"}'), (8, 'plain', '{\"k\": \"plain\"}'), (9, 'Ünal', '{\"k\": \"Ünal\"}'),
      (10, 'ünal', '{\"k\": \"ünal\"}'), (11, NULL, '{}')"
q "SELECT segments.configure('contacts', 'id', traits_column => 'data')" >/dev/null
seg() { q "SELECT segments.create_segment('$1', '$2')" >/dev/null; }
seg 'eq i'        '{"type":"attribute","field":"name","op":"eq","value":"i","case_sensitive":false}'
seg 'eq I'        '{"type":"attribute","field":"name","op":"eq","value":"I","case_sensitive":false}'
seg 'ends CI'     '{"type":"attribute","field":"name","op":"ends_with","value":"CI","case_sensitive":false}'
seg 'in plain'    '{"type":"attribute","field":"name","op":"in","value":["PLAIN","ünal"],"case_sensitive":false}'
seg 'trait eq i'  '{"type":"trait","key":"k","op":"eq","value":"i","case_sensitive":false}'
seg 'contains I'  '{"type":"trait","key":"k","op":"contains","value":"I","case_sensitive":false}'

# membership of each segment against SQL's lower() in this database
check_all() {
    local when="$1"
    [ "$(mismatches 'eq i' "SELECT id FROM contacts WHERE lower(name) = lower('i')")" = 0 ] ||
        fail "'eq i' differs from lower() ($when)"
    [ "$(mismatches 'eq I' "SELECT id FROM contacts WHERE lower(name) = lower('I')")" = 0 ] ||
        fail "'eq I' differs from lower() ($when)"
    [ "$(mismatches 'ends CI' "SELECT id FROM contacts WHERE lower(name) LIKE '%' || lower('CI')")" = 0 ] ||
        fail "'ends CI' differs from lower() ($when)"
    [ "$(mismatches 'in plain' "SELECT id FROM contacts WHERE lower(name) IN (lower('PLAIN'), lower('ünal'))")" = 0 ] ||
        fail "'in plain' differs from lower() ($when)"
    [ "$(mismatches 'trait eq i' "SELECT id FROM contacts WHERE lower(data ->> 'k') = lower('i')")" = 0 ] ||
        fail "'trait eq i' differs from lower() ($when)"
    [ "$(mismatches 'contains I' "SELECT id FROM contacts WHERE strpos(lower(data ->> 'k'), lower('I')) > 0")" = 0 ] ||
        fail "'contains I' differs from lower() ($when)"
    note "ok: six case-insensitive segments equal SQL's lower() ($when)"
}

q "SELECT segments.refresh()" >/dev/null
check_all "refresh()"
# not a vacuous check: C-locale lowering would put 'I' (1) in 'eq i'
expect "'I' is not 'i' here, 'İ' is" \
    "SELECT string_agg(m::text, ',' ORDER BY m) FROM segments.segment_members('eq i') m" "2,4"
expect "'CI' lowers to 'cı': 'ABCI' ends with it, 'abci' does not" \
    "SELECT string_agg(m::text, ',' ORDER BY m) FROM segments.segment_members('ends CI') m" 5

# the worker's incremental evaluation, after the application's writes
qa "UPDATE contacts SET name = 'I', data = '{\"k\": \"I\"}' WHERE id = 8"
qa "UPDATE contacts SET name = 'İ', data = '{\"k\": \"xİ\"}' WHERE id = 7"
qa "UPDATE contacts SET name = 'xxcı', data = '{\"k\": \"ı\"}' WHERE id = 10"
expect "wait() after the writes" "SELECT segments.wait('60 s')" t
check_all "the worker"
expect "contact 7, now 'İ', is in 'eq i'" \
    "SELECT string_agg(m::text, ',' ORDER BY m) FROM segments.segment_members('eq i') m" "2,4,7"

all_passed

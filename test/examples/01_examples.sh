#!/usr/bin/env bash
# The client examples run as documented: examples/schema.sql loaded by the
# owner, then examples/python (psycopg 3, Debian's python3-psycopg) and
# examples/sql run as an ordinary application role (segments_read, its own
# table grants, tenant fixed by ALTER ROLE).  Gating, membership by id and
# name, waiting for freshness and the report sliced by segment are checked
# against what the rules say, computed here in plain SQL.
. "$(dirname "$0")/../worker/common.bash"

EX="$(cd "$(dirname "$0")/../../examples" && pwd)"
PY=/usr/bin/python3         # Debian's, where python3-psycopg is installed
# The application role is common.bash's $APP (no superuser, dropped on exit).
# Runs a Python example as the application role; fails the test on error.
py() {
    local out
    out=$(PGUSER="$APP" "$PY" "$EX/python/$1" "${@:2}" 2>&1) || fail "$1 ${*:2} failed: $out"
    printf '%s\n' "$out"
}
# Runs an SQL example as the application role, unaligned, tuples only.
sqlex() {
    local out
    out=$(psql -X -qAt -v ON_ERROR_STOP=1 -U "$APP" -f "$EX/sql/$1" 2>&1) || fail "sql/$1 failed: $out"
    printf '%s\n' "$out"
}
# Checks that two texts are equal.
same() {
    local what="$1" got="$2" want="$3"
    [ "$got" = "$want" ] || fail "$what: expected
$want
got
$got"
    note "ok: $what"
}

"$PY" -c 'import psycopg' 2>/dev/null || fail "psycopg 3 is not installed (python3-psycopg)"
psql -X -q -v ON_ERROR_STOP=1 -f "$EX/schema.sql" >/dev/null || fail "examples/schema.sql failed"
note "ok: examples/schema.sql loads"

q "GRANT segments_read TO \"$APP\""
q "ALTER ROLE \"$APP\" SET segments.tenant = 'acme'"
q "GRANT SELECT ON actions, orders TO \"$APP\"; GRANT SELECT, UPDATE ON contacts TO \"$APP\""
expect "the application role is no superuser" "SELECT rolsuper FROM pg_roles WHERE rolname = '$APP'" f

# Gating, with the contact bound as smallint (42), integer (70000) and
# bigint (9000000001), segments as uuid and as name, lists as uuid[].
same "python gating" "$(py gating.py 42 70000 9000000001 43)" \
"42: Contact support, Priority phone line, Enterprise AI instructions
42 in VIP customers: by id True, by name True
42 may use a VIP-only item: True, an unrestricted one: True
70000: Contact support, Extend trial
70000 in VIP customers: by id False, by name False
70000 may use a VIP-only item: False, an unrestricted one: True
9000000001: Contact support, Win-back offer
9000000001 in VIP customers: by id False, by name False
9000000001 may use a VIP-only item: False, an unrestricted one: True
43: Contact support
43 in VIP customers: by id False, by name False
43 may use a VIP-only item: False, an unrestricted one: True"
same "sql gating" "$(sqlex gating.sql)" \
"Contact support
Priority phone line
Enterprise AI instructions
Contact support
Win-back offer
t
t
t
Germany
VIP customers"

# The report: Python, plain SQL and the rules computed directly agree.
truth=$(q "WITH seg(name, id) AS (
              SELECT 'VIP customers', id FROM contacts
               WHERE org_id = 'acme' AND (plan = 'vip' OR (custom_data #>> '{company,size}')::numeric >= 2500)
              UNION ALL SELECT 'Trial users', id FROM contacts WHERE org_id = 'acme' AND plan = 'trial'
              UNION ALL SELECT 'Germany', id FROM contacts WHERE org_id = 'acme' AND country = 'DE'
              UNION ALL SELECT 'Inactive 30 days', id FROM contacts
               WHERE org_id = 'acme' AND NOT last_seen_at >= now() - interval '30 days')
           SELECT seg.name, count(DISTINCT o.contact_id), sum(o.amount)
             FROM orders o JOIN seg ON seg.id = o.contact_id
            WHERE o.ordered_at >= now() - interval '30 days'
            GROUP BY seg.name ORDER BY 3 DESC, 1")
[ "$(printf '%s\n' "$truth" | wc -l)" -eq 4 ] || fail "the report's ground truth should have 4 segments: $truth"
same "python report matches the rules" "$(py report.py 30)" "$truth"
vip_members=$(q "SELECT count(*) FROM contacts WHERE org_id = 'acme' AND (plan = 'vip' OR (custom_data #>> '{company,size}')::numeric >= 2500)")
same "sql report matches the rules" "$(sqlex report.sql)" "$truth
$vip_members"

# Freshness: write as the application, wait, read.
same "python freshness" "$(py freshness.py 70000 vip)" \
"before: Trial users
fresh: True
after: VIP customers"
same "sql freshness" "$(sqlex freshness.sql)" \
"t
t"
expect "written by the application role" "SELECT plan FROM contacts WHERE id = 9000000001" vip

# History: conversations recorded as they happen, while contact 105 moves
# from Trial users (and Germany, Inactive 30 days) to VIP customers; the
# report slices each by the segments its contact was in when it started,
# the truth being the membership read at that moment.
q "GRANT SELECT, INSERT ON conversations TO \"$APP\""
q "CREATE TABLE conv_truth (conversation bigint, segment text)"
converse() {    # contact csat: a conversation now, and the segments of its contact now
    local id
    expect "wait() before a conversation" "SELECT segments.wait('60 s')" t
    id=$(psql -X -qAt -v ON_ERROR_STOP=1 -U "$APP" \
         -c "INSERT INTO conversations (contact_id, csat) VALUES ($1, $2) RETURNING id") || fail "conversation failed"
    q "INSERT INTO conv_truth SELECT $id, s.name FROM segments.segments s
        WHERE s.tenant = 'acme' AND segments.segment_is_member($1::bigint, s.id)"
}
converse 105 2
converse 42 4
psql -X -qAt -v ON_ERROR_STOP=1 -U "$APP" \
     -c "UPDATE contacts SET plan = 'vip', last_seen_at = now() WHERE id = 105" || fail "update failed"
converse 105 5
expect "the contact moved" "SELECT string_agg(segment, ', ' ORDER BY segment) FROM conv_truth WHERE conversation = 3" \
       "Germany, VIP customers"
truth=$(q "SELECT t.segment, count(*), round(avg(c.csat), 2) FROM conv_truth t JOIN conversations c ON c.id = t.conversation
           GROUP BY 1 ORDER BY 1")
vip_then="1|f
2|t
3|t"
counts=$(q "SELECT g::date, CASE WHEN g::date = current_date THEN
                   (SELECT count(*) FROM contacts WHERE org_id = 'acme' AND (plan = 'vip' OR (custom_data #>> '{company,size}')::numeric >= 2500))
                   ELSE 0 END
              FROM generate_series(current_date - 6, current_date, interval '1 day') g ORDER BY 1")
same "sql history report: conversations by the segments of their time" "$(sqlex history_report.sql)" "$truth
$vip_then
$counts"
all_passed

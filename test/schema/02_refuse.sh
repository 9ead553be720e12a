#!/usr/bin/env bash
# What would leave a segment or the configuration unusable is refused, as
# PostgreSQL refuses to drop a column a view uses (README: Schema changes), when the table's
# owner (no privilege on schema segments) tries it: dropping a column a
# segment reads (the error names the segments), the key, tenant or traits
# column, the key's unique index, the table (also through DROP SCHEMA ...
# CASCADE), changing the key's type, or a type change that makes a
# definition invalid.  Each refusal leaves the table as it was.  A type
# change that keeps every definition valid re-evaluates the segments that
# read the column (a table rewrite fires no row trigger).  Unrelated DDL,
# and the same DDL after segments.configure(NULL), still works.
. "$(dirname "$0")/common.bash"

q "CREATE TABLE contacts (id bigint PRIMARY KEY, org text, plan text, seats int, score int, traits jsonb)"
q "INSERT INTO contacts SELECT g, 'o' || (g % 2), CASE WHEN g % 10 = 0 THEN 'vip' ELSE 'free' END,
          g % 7, g % 5, '{}' FROM generate_series(1, 1000) g"
q "ALTER TABLE contacts OWNER TO $OWNER"
q "SELECT segments.configure('contacts', 'id', tenant_column => 'org', traits_column => 'traits')" >/dev/null
q "SELECT segments.create_segment('VIP', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}')" >/dev/null
q "SELECT segments.create_segment('Paid', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"neq\", \"value\": \"free\"}')" >/dev/null
q "SELECT segments.create_segment('Big', '{\"type\": \"attribute\", \"field\": \"seats\", \"op\": \"gt\", \"value\": 4}')" >/dev/null
q "SELECT segments.create_segment('Scored', '{\"type\": \"attribute\", \"field\": \"score\", \"op\": \"gte\", \"value\": 3}')" >/dev/null
expect "segments evaluated" "SELECT segments.wait('30 s')" t
COLS="SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'contacts'::regclass AND attnum > 0 AND NOT attisdropped"
expect "columns before" "$COLS" "id,org,plan,seats,score,traits"

refused "drop a column segments read" "ALTER TABLE contacts DROP COLUMN plan" 2BP01 \
    'cannot drop column "plan" of table public.contacts because segments read it.*'
# the owner is no segments admin: global segments are counted, not named
refused "the refusal counts segments the owner may not see" "ALTER TABLE contacts DROP COLUMN plan" 2BP01 \
    'DETAIL:  Segments reading it: 2 segments this session may not see\.'
q "GRANT segments_admin TO $OWNER"
refused "the refusal names every segment reading it to an admin" "ALTER TABLE contacts DROP COLUMN plan" 2BP01 \
    'DETAIL:  Segments reading it: "Paid", "VIP"\.'
q "REVOKE segments_admin FROM $OWNER"
refused "drop the key column" "ALTER TABLE contacts DROP COLUMN id" 2BP01 \
    'cannot drop column "id" .* it is the key column of segments'
refused "drop the tenant column" "ALTER TABLE contacts DROP COLUMN org" 2BP01 'it is the tenant column'
refused "drop the traits column" "ALTER TABLE contacts DROP COLUMN traits" 2BP01 'it is the traits column'
refused "drop the key's unique index" "ALTER TABLE contacts DROP CONSTRAINT contacts_pkey" 2BP01 \
    'unique index on key column "id"'
refused "drop the source table" "DROP TABLE contacts" 2BP01 \
    'cannot drop table public.contacts because segments reads its contacts.*HINT:  Call segments.configure\(NULL\)'
qo "CREATE SCHEMA crm; CREATE TABLE crm.people (id int PRIMARY KEY)" >/dev/null
qo "ALTER TABLE contacts SET SCHEMA crm" >/dev/null
refused "drop the source with its schema (CASCADE)" "DROP SCHEMA crm CASCADE" 2BP01 'cannot drop table crm.contacts'
qo "ALTER TABLE crm.contacts SET SCHEMA public" >/dev/null
refused "key type change (bigint to text)" "ALTER TABLE contacts ALTER COLUMN id TYPE text" 2BP01 \
    'column "id" of public.contacts to text: it is the key column of segments, configured as bigint.*HINT:  Call segments.configure\(NULL\)'
refused "traits column no longer jsonb" "ALTER TABLE contacts ALTER COLUMN traits TYPE text" 2BP01 \
    'it is the traits column of segments, which must be jsonb'
refused "a type change that makes a definition invalid" \
    "ALTER TABLE contacts ALTER COLUMN seats TYPE boolean USING seats > 3" 2BP01 \
    'column "seats" of public.contacts: segment definitions reading it would no longer be valid.*Segments no longer valid: 1 segment this session may not see\.'
expect "every refusal left the table as it was" "$COLS" "id,org,plan,seats,score,traits"
expect "key type unchanged" "SELECT atttypid::regtype FROM pg_attribute WHERE attrelid = 'contacts'::regclass AND attname = 'id'" bigint
expect "the crm schema is still there" "SELECT count(*) FROM pg_namespace WHERE nspname = 'crm'" 1

# a type change every definition survives: the segments reading the column
# are evaluated again (the rewrite changes values and fires no trigger)
expect "Scored before" "SELECT member_count FROM segments.segments WHERE name = 'Scored'" 400
qo "ALTER TABLE contacts ALTER COLUMN score TYPE numeric USING score * 1.5" >/dev/null
expect "wait() after the type change" "SELECT segments.wait('30 s')" t
expect "segments reading the column re-evaluated" "SELECT '$(mismatches Scored "SELECT id FROM contacts WHERE score >= 3")'" 0
expect "Scored member_count follows" "SELECT member_count = (SELECT count(*) FROM contacts WHERE score >= 3) FROM segments.segments WHERE name = 'Scored'" t
expect "Scored is ready" "SELECT status FROM segments.segments WHERE name = 'Scored'" ready

# unrelated DDL by the owner is not disturbed
qo "CREATE TABLE notes (id int PRIMARY KEY, plan text, body text)" >/dev/null
qo "ALTER TABLE notes DROP COLUMN plan" >/dev/null
qo "ALTER TABLE notes ALTER COLUMN body TYPE varchar(10)" >/dev/null
qo "ALTER TABLE notes DROP CONSTRAINT notes_pkey" >/dev/null
qo "DROP TABLE notes" >/dev/null
qo "ALTER TABLE contacts ADD COLUMN extra int" >/dev/null
qo "ALTER TABLE contacts DROP COLUMN extra" >/dev/null
qo "CREATE UNIQUE INDEX contacts_id2 ON contacts (id)" >/dev/null
qo "ALTER TABLE contacts DROP CONSTRAINT contacts_pkey" >/dev/null
note "ok: unrelated DDL (and dropping the key's index while another remains) goes through"
qo "UPDATE contacts SET plan = 'vip' WHERE id = 1"
expect "capture works through the remaining unique index" "SELECT segments.wait('30 s') AND segments.segment_is_member(1::bigint, 'VIP')" t
refused "drop the last unique index on the key" "DROP INDEX contacts_id2" 2BP01 'unique index on key column "id"'

# once unconfigured, the same DDL is the owner's business
q "SELECT segments.configure(NULL)" >/dev/null
expect "configure(NULL) cleared membership" "SELECT count(*) FROM segments.membership" 0
expect "configure(NULL) kept the definitions" "SELECT count(*) FROM segments.segments" 4
expect "configure(NULL) removed capture" "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'contacts'::regclass AND tgname LIKE 'segments%'" 0
qo "ALTER TABLE contacts ALTER COLUMN id TYPE text" >/dev/null
qo "ALTER TABLE contacts DROP COLUMN traits" >/dev/null
qo "DROP TABLE contacts" >/dev/null
note "ok: after configure(NULL) the source can be changed and dropped"
expect "no error reported by the worker" "SELECT coalesce(last_error, '') FROM segments.worker" ""
all_passed

#!/usr/bin/env bash
# Nothing a user does stalls others (README: Security model): database-level DDL affects a
# database's worker only once PostgreSQL's own permission checks would
# pass.  A login role with no privileges, and one with CREATEDB that owns
# nothing, try ALTER DATABASE (CONNECTION LIMIT, SET TABLESPACE, RENAME),
# DROP DATABASE and CREATE DATABASE ... TEMPLATE on the database again and
# again: every attempt fails on permissions, the worker keeps its pid and
# membership stays fresh.  A superuser's CREATE DATABASE ... TEMPLATE still
# gets the worker out of the way, and it comes back.
. "$(dirname "$0")/common.bash"

mkrole NOBODY nobody
mkrole CREATOR creator CREATEDB
q "CREATE TABLE contacts (id bigint PRIMARY KEY, plan text)"
q "INSERT INTO contacts SELECT g, 'free' FROM generate_series(1, 100) g"
q "SELECT segments.configure('contacts', 'id')" >/dev/null
q "SELECT segments.create_segment('VIP', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}')" >/dev/null
expect "segment evaluated" "SELECT segments.wait('60 s')" t
poll "worker running" "SELECT pid IS NOT NULL FROM segments.worker" t 30
pid=$(q "SELECT pid FROM segments.worker")

# as_fails in database postgres
denied() { PGDATABASE=postgres as_fails "$@"; }
for round in 1 2 3; do
    denied "$NOBODY" "ALTER DATABASE \"$DB\" CONNECTION LIMIT 5" 42501 "round $round: ALTER DATABASE CONNECTION LIMIT by a role with no privileges"
    denied "$NOBODY" "ALTER DATABASE \"$DB\" SET TABLESPACE pg_default" 42501 "round $round: ALTER DATABASE SET TABLESPACE by a role with no privileges"
    denied "$NOBODY" "ALTER DATABASE \"$DB\" RENAME TO x_$$" 42501 "round $round: ALTER DATABASE RENAME by a role with no privileges"
    denied "$NOBODY" "DROP DATABASE \"$DB\"" 42501 "round $round: DROP DATABASE by a role with no privileges"
    denied "$NOBODY" "CREATE DATABASE x_$$ TEMPLATE \"$DB\"" 42501 "round $round: CREATE DATABASE TEMPLATE by a role without CREATEDB"
    denied "$CREATOR" "CREATE DATABASE x_$$ TEMPLATE \"$DB\"" 42501 "round $round: CREATE DATABASE TEMPLATE by a role with CREATEDB that does not own it"
    denied "$CREATOR" "DROP DATABASE \"$DB\"" 42501 "round $round: DROP DATABASE by a role with CREATEDB that does not own it"
    expect "round $round: the worker kept its pid" "SELECT pid FROM segments.worker" "$pid"
    q "UPDATE contacts SET plan = 'vip' WHERE id = $round"
    expect "round $round: wait() true" "SELECT segments.wait('30 s')" t
    expect "round $round: the change is applied" "SELECT segments.segment_is_member($round::bigint, 'VIP')" t
done
expect "the failed attempts created nothing" "SELECT count(*) FROM pg_database WHERE datname = 'x_$$'" 0
# an ALTER DATABASE that needs no exclusive access leaves the worker alone
psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "ALTER DATABASE \"$DB\" CONNECTION LIMIT 50"
expect "ALTER DATABASE CONNECTION LIMIT by the superuser keeps the worker" "SELECT pid FROM segments.worker" "$pid"

# allowed: the worker steps aside, the copy is made, the worker comes back
psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"${DB}_copy\" TEMPLATE \"$DB\"" ||
    fail "CREATE DATABASE TEMPLATE by the superuser failed"
note "ok: CREATE DATABASE TEMPLATE by the superuser"
psql -X -q -d postgres -c "DROP DATABASE \"${DB}_copy\" WITH (FORCE)" >/dev/null
poll "the worker is back after the pause" "SELECT pid IS NOT NULL AND pid <> $pid FROM segments.worker" t 60
q "UPDATE contacts SET plan = 'vip' WHERE id = 50"
expect "wait() true after the pause" "SELECT segments.wait('30 s')" t
expect "changes applied after the pause" "SELECT segments.segment_is_member(50::bigint, 'VIP')" t
all_passed

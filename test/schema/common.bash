# Helpers of the schema tests (test/schema/*.sh), on top of the worker
# tests' ones; sourced, not run.
. "$(dirname "$0")/../worker/common.bash"

# The table owner: a login role with no privilege on schema segments,
# allowed to create in public (renames need it) and in the database.
OWNER="segs_owner_$$"
psql -X -q -d postgres -c "CREATE ROLE $OWNER LOGIN" >/dev/null
q "GRANT CREATE ON SCHEMA public TO $OWNER; GRANT CREATE ON DATABASE \"$DB\" TO $OWNER" >/dev/null
# Databases a script restores into (EXTRA_DBS) and the owner role go on exit.
schema_cleanup() {
    for d in ${EXTRA_DBS:-}; do
        psql -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$d\" WITH (FORCE)" >/dev/null 2>&1
    done
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1
    psql -X -q -d postgres -c "DROP ROLE IF EXISTS $OWNER" >/dev/null 2>&1
}
on_exit schema_cleanup

# One value from a query run as the table owner.
qo() { psql -X -qAt -v ON_ERROR_STOP=1 -U "$OWNER" -c "$1"; }

# Checks that a statement run as the table owner fails with this SQLSTATE
# and a message matching the pattern (grep -E, over message, detail, hint).
refused() {
    local what="$1" sql="$2" state="$3" pattern="$4" out
    if out=$(psql -X -qAt -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -U "$OWNER" -c "$sql" 2>&1); then
        fail "$what: succeeded, expected ERROR $state"
    fi
    grep -q "ERROR:  $state:" <<<"$out" || fail "$what: expected SQLSTATE $state, got: $out"
    tr "\n" " " <<<"$out" | grep -Eq "$pattern" || fail "$what: message does not match /$pattern/: $out"
    note "ok: $what"
}

# The worker's pid for the test database (empty when none).
worker_pid() { q "SELECT coalesce(pid::text, '') FROM segments.worker"; }

# Helpers of the security tests (test/security/*.sh), sourced, not run: the
# worker tests' helpers, plus login roles that are not superusers.  Roles
# are cluster-wide, so their names carry the test's pid; they are dropped
# with the test database when the script exits.
. "$(dirname "${BASH_SOURCE[0]}")/../worker/common.bash"

ROLES=()
AT_EXIT=()      # commands run first when the script exits, even on failure

# mkrole VAR NAME [ATTRIBUTES]: creates a login role "NAME_<pid>" (not a
# superuser) and sets VAR to its name.
mkrole() {
    local name="${2}_$$"
    psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "CREATE ROLE \"$name\" LOGIN ${3:-}" >/dev/null
    ROLES+=("$name")
    printf -v "$1" '%s' "$name"
}

# as ROLE SQL: one value from a query run by a login role in the test database.
as() { psql -X -qAt -v ON_ERROR_STOP=1 -U "$1" -c "$2"; }

# as_fails ROLE SQL SQLSTATE WHAT: the statement fails with that SQLSTATE.
as_fails() {
    local out
    out=$(psql -X -qAt -U "$1" -v VERBOSITY=sqlstate -c "$2" 2>&1) && fail "$4: succeeded"
    case "$out" in *"$3"*) note "ok: $4 ($3)";; *) fail "$4: expected SQLSTATE $3, got: $out";; esac
}

security_cleanup() {
    local rc=$? cmd
    for cmd in "${AT_EXIT[@]}"; do eval "$cmd" >/dev/null 2>&1 || true; done
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
    for r in "${ROLES[@]}"; do
        psql -X -q -d postgres -c "DROP ROLE IF EXISTS \"$r\"" >/dev/null 2>&1 || true
    done
    exit $rc
}
trap security_cleanup EXIT

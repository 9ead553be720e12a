# Helpers of the security tests (test/security/*.sh), sourced, not run: the
# worker tests' helpers (the application role $APP and qa among them), plus
# more login roles that are not superusers.  Roles are cluster-wide, so
# their names carry the test's pid; they are dropped after the test
# database when the script exits (ROLES, see ../worker/common.bash).
. "$(dirname "${BASH_SOURCE[0]}")/../worker/common.bash"

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

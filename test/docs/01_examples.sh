#!/usr/bin/env bash
# Tested docs: every fenced sql and sh/bash block of docs/*.md and README.md
# runs, in order, against a real server, and none may fail:
#   - each document runs in a database of its own (docs/*.md first, README.md
#     last, each database dropped after its document, since README's
#     Uninstall drops the roles); a document brings its own sample schema in
#     its first blocks, as a reader would type them;
#   - sql blocks run through psql with ON_ERROR_STOP; sh blocks through bash
#     -e in a scratch directory, with PGHOST/PGPORT/PGDATABASE set to the
#     document's database and the server's binaries first in PATH;
#   - <!-- not-tested: reason --> before a block skips it (the reason is
#     printed); <!-- expect-error: SQLSTATE --> makes the block pass only if
#     it fails with that SQLSTATE, saying the "-- ERROR:  ", "-- HINT:  "
#     and "-- DETAIL:  " lines the block shows (a final "..." elides);
#   - a one-line SELECT ending in a comment with one value ("-- true",
#     "-- 1,3", "-- false: why") is run again after its block and must
#     return that value;
#   - a block may not hold a placeholder (…);
#   - pg_cron recipes are real: the server preloads pg_cron with
#     cron.database_name = the README's database, and after each document
#     every job it scheduled is run once by hand, in its database;
#   - relative links of the documents point at files of the repository, and
#     no tracked file refers to anything outside the repository.
# The server is a cluster of its own (pg_cron must be preloaded).
set -euo pipefail
: "${PGHOST:?run through scripts/test.sh}" "${PG_BIN:?}" "${PGPORT:?}"
TEST_NAME=01_examples
ROOT_DIR=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT_DIR/test/docs"
fail() { echo "FAIL ($TEST_NAME): $*" >&2; exit 1; }
CHECKS=0
note() { case "$1" in ok:*) CHECKS=$((CHECKS + 1));; esac; echo "# $TEST_NAME: $*"; }
all_passed() { echo "# $TEST_NAME: all passed ($CHECKS checks)"; }

DIR="$PGHOST/docs"
export PGHOST="$DIR" PGPORT=$((PGPORT + 4)) PGUSER=postgres
CRON_DB=docs_readme
stop() {
    local rc=$?
    [ -f "$DIR/data/postmaster.pid" ] &&
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1
    [ $rc -ne 0 ] && [ -f "$DIR/log" ] && tail -n 20 "$DIR/log"
    rm -rf "$DIR"
    exit $rc
}
trap stop EXIT
mkdir -p "$DIR" && chown postgres:postgres "$DIR"
[ -f "$("$PG_BIN/pg_config" --pkglibdir)/pg_cron.so" ] || fail "pg_cron is not installed (postgresql-15-cron)"
runuser -u postgres -- "$PG_BIN/initdb" -D "$DIR/data" -A trust -U postgres --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
cat >> "$DIR/data/postgresql.conf" <<CONF
shared_preload_libraries = 'segments, pg_cron'
cron.database_name = '$CRON_DB'
listen_addresses = ''
unix_socket_directories = '$DIR'
port = $PGPORT
fsync = off
CONF
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w -t 60 start >/dev/null
q() { psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }

cd "$ROOT_DIR"

# --- the repository stands alone ---------------------------------------------------
# The pattern is assembled so that this file does not match it itself.
outdir=shared
outside=$(git ls-files -z | xargs -0 grep -lE "\\.\\./$outdir/|$outdir/SPEC" 2>/dev/null || true)
[ -z "$outside" ] || fail "files refer to a directory outside the repository: $outside"
note "ok: no tracked file refers to a directory outside the repository"
docs=$(ls docs/*.md 2>/dev/null || true)
for md in $docs README.md; do
    base=$(dirname "$md")
    while IFS= read -r link; do
        target=${link%%#*}
        [ -n "$target" ] || continue
        case "$target" in http://*|https://*|mailto:*) continue ;; esac
        resolved=$(realpath -m "$base/$target")
        case "$resolved" in "$ROOT_DIR"/*) ;; *) fail "$md links outside the repository: $link" ;; esac
        [ -e "$resolved" ] || fail "$md links to a missing file: $link"
    done < <(grep -oE '\]\([^) ]+\)' "$md" | sed -E 's/^\]\((.*)\)$/\1/')
done
note "ok: every relative link of README.md and docs/ points at a file of the repository"

# --- run the blocks ---------------------------------------------------------------------
total=0; skipped=0; cron_jobs=0
# Runs once, by hand and in its database, every pg_cron job a block just
# scheduled (then unschedules it): a recipe's command must work as written.
run_cron_jobs() {
    local where="$1" jobid jobdb
    [ "$(q -d "$CRON_DB" -c "SELECT count(*) FROM pg_extension WHERE extname = 'pg_cron'" 2>/dev/null)" = 1 ] || return 0
    while IFS=$'\t' read -r jobid jobdb; do
        [ -n "$jobid" ] || continue
        q -d "$CRON_DB" -c "SELECT command FROM cron.job WHERE jobid = $jobid" >"$DIR/cmd.sql"
        psql -X -q -v ON_ERROR_STOP=1 -d "$jobdb" -f "$DIR/cmd.sql" >"$DIR/cmd.out" 2>&1 ||
            { cat "$DIR/cmd.sql" "$DIR/cmd.out"; fail "$where: the pg_cron job $jobid fails when it runs"; }
        q -d "$CRON_DB" -c "SELECT cron.unschedule($jobid)" >/dev/null
        cron_jobs=$((cron_jobs + 1))
        note "ok: $where: pg_cron job $jobid runs in database $jobdb"
    done < <(q -F $'\t' -d "$CRON_DB" -c "SELECT jobid, database FROM cron.job ORDER BY jobid")
}
# A one-line SELECT whose comment is a single value ("-- true", "-- 1",
# "-- false: why") states its result: run it again and compare (rows joined
# by commas; true/false as psql prints t/f).
results=0
check_results() {
    local md="$1" line="$2" file="$3" db="$4" stmt want got
    while IFS=$'\t' read -r stmt want; do
        [ -n "$stmt" ] || continue
        case "$want" in true) want=t ;; false) want=f ;; esac
        got=$(q -d "$db" -c "$stmt" | paste -sd, -) || fail "$md:$line: $stmt failed when run again"
        [ "$got" = "$want" ] || fail "$md:$line: $stmt returns '$got', the document says '$want'"
        results=$((results + 1))
    done < <(sed -nE 's/^((SELECT|TABLE|VALUES) [^;]*;)[[:space:]]+--[[:space:]]+([^[:space:]:]+)(:.*)?$/\1\t\3/p' "$file")
}
run_doc() {
    local md="$1" db="$2" blocks="$DIR/blocks/$2" list
    mkdir -p "$blocks" "$DIR/work/$db"
    chown postgres:postgres "$DIR/work/$db"
    list=$(python3 "$HERE/extract.py" "$md" "$blocks") || fail "cannot read the blocks of $md"
    [ -n "$list" ] || { note "$md: no sql or sh blocks"; return 0; }
    q -d postgres -c "CREATE DATABASE $db"
    [ "$db" = "$CRON_DB" ] && q -d "$db" -c "CREATE EXTENSION pg_cron"
    local n=0 name kind line mark arg file out rc
    while IFS=$'\t' read -r name kind line mark arg; do
        file="$blocks/$name.$kind"; out="$blocks/$name.out"; n=$((n + 1))
        if [ "$mark" = skip ]; then
            note "$md:$line: not tested ($arg)"; skipped=$((skipped + 1)); continue
        fi
        if grep -q '…' "$file"; then
            fail "$md:$line: the block holds a placeholder (…); write a real lookup"
        fi
        rc=0
        if [ "$kind" = sql ]; then
            { echo '\set VERBOSITY verbose'; cat "$file"; } >"$file.run"
            psql -X -v ON_ERROR_STOP=1 -d "$db" -f "$file.run" >"$out" 2>&1 || rc=$?
        else
            (cd "$DIR/work/$db" && PGDATABASE="$db" PATH="$PG_BIN:$PATH" bash -euo pipefail "$file") >"$out" 2>&1 || rc=$?
        fi
        if [ "$mark" = error ]; then
            if [ $rc -eq 0 ] || ! grep -q "ERROR:  $arg:" "$out"; then
                cat "$out"; fail "$md:$line: the block should fail with SQLSTATE $arg"
            fi
            # the error and hint the block shows in comments (a final "..." elides)
            local shown
            while IFS= read -r shown; do
                shown=${shown#-- }; shown=${shown%...}
                case "$shown" in ERROR:*) shown="ERROR:  $arg: ${shown#ERROR:  }" ;; esac
                grep -qF -- "$shown" "$out" || { cat "$out"; fail "$md:$line: the server did not say: $shown"; }
                results=$((results + 1))
            done < <(grep -E '^-- (ERROR|HINT|DETAIL):  ' "$file" || true)
        elif [ $rc -ne 0 ]; then
            echo "---- $md:$line ($kind) ----"; cat "$file"; echo "---- output ----"; cat "$out"
            fail "$md:$line: the $kind block failed"
        fi
        total=$((total + 1))
        [ "$kind" = sql ] && [ "$mark" = run ] && check_results "$md" "$line" "$file" "$db"
        run_cron_jobs "$md:$line"
    done <<<"$list"
    note "ok: $md: $n blocks, every runnable one ran"
}

for md in $docs; do
    run_doc "$md" "docs_$(basename "$md" .md | tr -c 'a-z0-9\n' '_')"
    q -d postgres -c "DROP DATABASE docs_$(basename "$md" .md | tr -c 'a-z0-9\n' '_') WITH (FORCE)"
done
run_doc README.md "$CRON_DB"
[ $total -ge 10 ] || fail "only $total blocks ran"
if grep -q 'cron\.schedule' $docs README.md; then
    [ $cron_jobs -gt 0 ] || fail "the docs schedule pg_cron jobs, but none was run"
fi
note "ok: $total blocks ran, $skipped marked not tested, $results stated results checked"
all_passed

#!/usr/bin/env bash
# The runner's counting (scripts/count.sh) must fail a part that ran fewer
# tests than it has, or none: fed outputs of broken runs, it must report
# failures, and fed a good one, none.  Also runs pg_regress for real with an
# extension that does not exist (it aborts before any test) when a server is
# up, and checks that the count sees it.
set -uo pipefail
cd "$(dirname "$0")/../.."
. scripts/count.sh
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
checks=0
fail() { echo "FAIL (selftest): $*"; exit 1; }
check() {  # check WHAT "RAN FAILED ..." WANT_FAILED
    local what="$1" got="$2" want="$3" bad
    bad=$(echo "$got" | cut -d' ' -f2)
    [ "$bad" = "$want" ] || fail "$what: expected $want failed, counted '$got'"
    checks=$((checks + 1)); echo "# selftest: ok: $what ($got)"
}

: >"$T/empty"
check "empty pg_regress output fails all 3" "$(count_regress "$T/empty" 3)" 3
printf 'test a ... ok 1 ms\ntest b ... ok 2 ms\ntest c ... ok 3 ms\n' >"$T/good"
check "three ok of three passes" "$(count_regress "$T/good" 3)" 0
check "three ok of four fails one" "$(count_regress "$T/good" 4)" 1
printf 'test a ... ok 1 ms\ntest b ... FAILED 2 ms\ntest c ... ok 3 ms\n' >"$T/onebad"
check "a FAILED line fails" "$(count_regress "$T/onebad" 3)" 1
printf 'Files=2, Tests=117,  1 wallclock secs\nResult: PASS\n' >"$T/prove_ok"
check "pg_prove PASS with every file" "$(count_prove "$T/prove_ok" 2)" 0
check "pg_prove PASS with a file missing" "$(count_prove "$T/prove_ok" 3)" 1
printf 'Files=2, Tests=117,  1 wallclock secs\nResult: FAIL\n' >"$T/prove_bad"
check "pg_prove FAIL" "$(count_prove "$T/prove_bad" 2)" 1
printf 'Files=0, Tests=0\nResult: NOTESTS\n' >"$T/prove_none"
check "pg_prove with no test" "$(count_prove "$T/prove_none" 2)" 3
printf '# x: ok: a\n# x: all passed (1 checks)\n' >"$T/script_ok"
check "script with its closing line and status 0" "$(count_script "$T/script_ok" x 0)" 0
check "script with its closing line but status 1" "$(count_script "$T/script_ok" x 1)" 1
printf '# x: ok: a\n' >"$T/script_cut"
check "script that stopped before its closing line" "$(count_script "$T/script_cut" x 0)" 1

# A real pg_regress run that aborts before its first test.
if [ -n "${PGHOST:-}" ] && psql -X -qAt -d postgres -c 'SELECT 1' >/dev/null 2>&1; then
    make -s installcheck REGRESS=00_setup REGRESS_OPTS="--inputdir=. --load-extension=no_such_ext" \
        >"$T/aborted" 2>&1
    rc=$?
    [ $rc -ne 0 ] || fail "pg_regress with a missing extension exited 0"
    check "aborted pg_regress run fails every file" "$(count_regress "$T/aborted" 14)" 14
    rm -rf results regression.out regression.diffs
fi
echo "# selftest: all passed ($checks checks)"

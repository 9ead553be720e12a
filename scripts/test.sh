#!/usr/bin/env bash
# The test command: installs what it needs (Debian 12, as root), builds
# segments and installs it into a private copy of PostgreSQL, starts a
# throwaway server with segments preloaded, runs every part of the suite and
# stops the server, also on failure:
#   runner      the counting below, fed broken outputs (test/runner/)
#   pg_regress  sql/NN_*.sql against expected/
#   isolation   specs/*.spec (PostgreSQL's isolation tester), if any
#   pgTAP       test/*.sql
#   scripts     test/<dir>/*.sh (worker, crash, restart, docs, ...)
# Each part must run every test it has: a part that ran fewer than it should,
# or none because its runner aborted, fails the run.  The last line is
# "tests: N passed, N failed", counting test files and scripts.
#
# For scripts/mutate.sh, which only needs to know whether a mutant fails:
#   TEST_PARTS="pg_regress isolation pgTAP"   run only the parts named (by the
#       names above; test/<dir> scripts by their directory name); the others
#       are listed as not run.  Default: every part.
#   TEST_ONLY="04_signals 08_time_window"   of the script parts, run only the
#       scripts named (development; the parts' counts are of those scripts).
#   FAIL_FAST=1   stop after the first part (or script) that fails.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. scripts/count.sh

ensure_packages
build_and_install_private
start_cluster

OUT="$SEGMENTS_TMP/out"; mkdir -p "$OUT"
passed=0; failed=0; summary=""; not_run=""

# wanted PART: is the part among TEST_PARTS (or TEST_PARTS unset)?
wanted() {
    [ -z "${TEST_PARTS:-}" ] && return 0
    case " $TEST_PARTS " in *" $1 "*) return 0;; esac
    not_run="$not_run $1"
    return 1
}

# Prints the per-part counts and the closing line.
finish() {
    echo
    echo "parts:"
    printf '%s' "$summary"
    [ -z "$not_run" ] || echo "  not run:$not_run${1:+ ($1)}"
    [ -z "${TEST_ONLY:-}" ] || echo "  only the scripts: $TEST_ONLY (TEST_ONLY)"
    echo "tests: $passed passed, $failed failed"
}

# With FAIL_FAST, ends the run as soon as something failed.
stop_if_failed() {
    if [ -n "${FAIL_FAST:-}" ] && [ "$failed" -gt 0 ]; then
        finish "FAIL_FAST: stopped at the first failure"
        exit 1
    fi
}

# record PART "RAN FAILED DETAIL"
record() {
    local part="$1" ran bad detail
    read -r ran bad detail <<<"$2"
    passed=$((passed + ran - (bad < ran ? bad : ran)))
    failed=$((failed + bad))
    summary="$summary$(printf '  %-12s %s, %s failed' "$part" "$detail" "$bad")"$'\n'
    [ "$bad" -eq 0 ] || echo "not ok - part $part: $detail, $bad failed"
}

if wanted runner; then
    log "runner self-test"
    rc=0; bash test/runner/selftest.sh >"$OUT/runner" 2>&1 || rc=$?
    cat "$OUT/runner"
    read -r r b c <<<"$(count_script "$OUT/runner" selftest "$rc")"
    record runner "$r $b $r/1 script, $c checks"
    stop_if_failed
fi

if wanted pg_regress; then
    log "pg_regress"
    n_regress=$(ls sql/[0-9][0-9]_*.sql | wc -l)
    make -s installcheck >"$OUT/regress" 2>&1 || true
    cat "$OUT/regress"
    record pg_regress "$(count_regress "$OUT/regress" "$n_regress")"
    [ -f regression.diffs ] && head -n 300 regression.diffs
    stop_if_failed
fi

if ls specs/*.spec >/dev/null 2>&1 && wanted isolation; then
    log "isolation"
    n_iso=$(ls specs/*.spec | wc -l)
    make -s installcheck-isolation >"$OUT/isolation" 2>&1 || true
    cat "$OUT/isolation"
    record isolation "$(count_isolation "$OUT/isolation" "$n_iso")"
    [ -f output_iso/regression.diffs ] && head -n 300 output_iso/regression.diffs
    stop_if_failed
fi

if wanted pgTAP; then
    log "pgTAP"
    n_tap=$(ls test/*.sql | wc -l)
    psql -X -q -d postgres -c 'CREATE DATABASE segments_tap' >/dev/null
    psql -X -q -d segments_tap -c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION segments' >/dev/null
    pg_prove -d segments_tap test/*.sql >"$OUT/pgtap" 2>&1 || true
    cat "$OUT/pgtap"
    record pgTAP "$(count_prove "$OUT/pgtap" "$n_tap")"
    stop_if_failed
fi

for dir in test/*/; do
    dir=${dir%/}; part=$(basename "$dir")
    [ "$part" = runner ] && continue
    ls "$dir"/[0-9]*.sh >/dev/null 2>&1 || continue
    wanted "$part" || continue
    log "$part scripts"
    ran=0; bad=0; checks=0; total=0
    for t in "$dir"/[0-9]*.sh; do
        name=$(basename "$t" .sh); rc=0
        if [ -n "${TEST_ONLY:-}" ]; then
            case " $TEST_ONLY " in *" $name "*) ;; *) continue;; esac
        fi
        total=$((total + 1))
        bash "$t" >"$OUT/$part-$name" 2>&1 || rc=$?
        cat "$OUT/$part-$name"
        read -r r b c <<<"$(count_script "$OUT/$part-$name" "$name" "$rc")"
        ran=$((ran + r)); bad=$((bad + b)); checks=$((checks + c))
        if [ "$b" -eq 0 ]; then echo "ok - $t ($c checks)"; else echo "not ok - $t (exit $rc)"; fi
        [ -z "${FAIL_FAST:-}" ] || [ "$b" -eq 0 ] || break
    done
    [ -n "${TEST_ONLY:-}" ] && [ "$total" -eq 0 ] && continue
    [ -n "${TEST_ONLY:-}" ] || total=$(ls "$dir"/[0-9]*.sh | wc -l)
    record "$part" "$ran $bad $ran/$total scripts, $checks checks"
    stop_if_failed
done

finish "TEST_PARTS"
[ "$failed" -eq 0 ]

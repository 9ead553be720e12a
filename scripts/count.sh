# Counting what a test part ran, from its output (sourced by scripts/test.sh
# and by test/runner/selftest.sh, which feeds it broken outputs).
#
# Each function reads one output file and an expected number of units and
# prints "RAN FAILED DETAIL" on stdout.  A part passes only when it ran
# exactly what it should and nothing failed: an output with no result lines
# (the runner aborted before any test) counts every expected unit as failed.

# pg_regress (PostgreSQL 15 format): "test NAME ... ok|FAILED|failed (ignored)"
# lines, one per test file.
count_regress() {
    local out="$1" expected="$2" ok bad
    ok=$(grep -cE '^(test| ) *[A-Za-z0-9_]+ +\.\.\. ok( |$)' "$out" 2>/dev/null || true)
    bad=$(grep -cE '^(test| ) *[A-Za-z0-9_]+ +\.\.\. (FAILED|failed)' "$out" 2>/dev/null || true)
    finish_count "$((ok + bad))" "$bad" "$expected" "files"
}

# pg_prove: "Files=N, Tests=M" and "Result: PASS".
count_prove() {
    local out="$1" expected="$2" files tests
    files=$(sed -nE 's/^Files=([0-9]+), Tests=([0-9]+).*/\1/p' "$out" 2>/dev/null | tail -1)
    tests=$(sed -nE 's/^Files=([0-9]+), Tests=([0-9]+).*/\2/p' "$out" 2>/dev/null | tail -1)
    files=${files:-0}; tests=${tests:-0}
    if grep -q '^Result: PASS' "$out" 2>/dev/null && [ "$tests" -gt 0 ]; then
        finish_count "$files" 0 "$expected" "files, $tests assertions"
    else
        # pg_prove names each failing file in its summary; count them, at least one
        local bad
        bad=$(grep -cE '^test/.*\(Wstat: [0-9]+ Tests: [0-9]+ Failed: [0-9]+\)|^test/.* Failed' "$out" 2>/dev/null || true)
        [ "${bad:-0}" -gt 0 ] || bad=1
        finish_count "$files" "$bad" "$expected" "files, $tests assertions"
    fi
}

# Worker and other shell test scripts: each ends, when every check passed,
# with "# NAME: all passed (N checks)" and exit status 0.  $3 is the status.
count_script() {
    local out="$1" name="$2" status="$3" checks
    checks=$(sed -nE "s/^# $name: all passed \(([0-9]+) checks\)\$/\1/p" "$out" 2>/dev/null | tail -1)
    if [ "$status" -eq 0 ] && [ -n "$checks" ] && [ "$checks" -gt 0 ]; then
        echo "1 0 $checks"
    else
        echo "1 1 ${checks:-0}"
    fi
}

# isolationtester via pg_isolation_regress: same format as pg_regress.
count_isolation() { count_regress "$@"; }

# Prints "RAN FAILED DETAIL", where units that should have run and did not
# count as failed.
finish_count() {
    local ran="$1" bad="$2" expected="$3" unit="$4"
    if [ "$ran" -lt "$expected" ]; then
        bad=$((bad + expected - ran))
    fi
    echo "$ran $bad $ran/$expected $unit"
}

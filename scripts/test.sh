#!/usr/bin/env bash
# The test command: installs what it needs (Debian 12, as root), builds and
# installs segments, starts a throwaway PostgreSQL with segments preloaded,
# runs the pg_regress suite (sql/, expected/), the pgTAP suite (test/*.sql)
# and the worker tests (test/worker/*.sh), then stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_packages
build_and_install
start_cluster

passed=0; failed=0

log "pg_regress"
if make -s installcheck; then
    passed=$((passed + $(ls sql/[0-9][0-9]_*.sql | wc -l)))
else
    n=$(grep -c '^not ok\|FAILED\| failed ' regression.out 2>/dev/null || true)
    failed=$((failed + ${n:-1}))
    [ -f regression.diffs ] && head -n 200 regression.diffs
fi

log "pgTAP"
createdb segments_tap
psql -q -d segments_tap -c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION segments'
if pg_prove -d segments_tap test/*.sql; then
    passed=$((passed + $(ls test/*.sql | wc -l)))
else
    failed=$((failed + 1))
fi

if ls test/worker/*.sh >/dev/null 2>&1; then
    log "worker tests"
    for t in test/worker/*.sh; do
        if bash "$t"; then passed=$((passed + 1)); echo "ok - $t"
        else failed=$((failed + 1)); echo "not ok - $t"; fi
    done
fi

echo
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

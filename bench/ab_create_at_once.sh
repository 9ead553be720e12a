#!/usr/bin/env bash
# bench/create_at_once.sh on two builds in one run, rounds interleaved: each
# source tree (TREE_A, TREE_B: e.g. an export of main and this tree) is
# built into a private install and started as its own cluster with the
# benchmark's settings; then create_at_once.sh runs one round against A,
# one against B, and again, ROUNDS times (only one cluster busy at a time;
# each round loads its data anew).  Prints each round's summary line.
#   git archive main | tar -x -C /tmp/main-src
#   TREE_A=/tmp/main-src TREE_B=. CONTACTS=200000 ROUNDS=2 bench/ab_create_at_once.sh
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/common.sh"     # CLUSTER_EXTRA_CONF, lib.sh
: "${TREE_A:?a source tree}" "${TREE_B:?a source tree}"
ROUNDS=${ROUNDS:-2}
declare -A TMP BIN PORT
stop_both() {
    local k
    for k in A B; do
        [ -n "${TMP[$k]:-}" ] || continue
        runuser -u postgres -- "${BIN[$k]}/pg_ctl" -D "${TMP[$k]}/data" -m fast -w stop >/dev/null 2>&1 || true
        rm -rf "${TMP[$k]}"
    done
}
trap stop_both EXIT
ensure_packages
for k in A B; do
    tree=TREE_$k
    unset SEGMENTS_TMP PG_BIN
    make_tmp                                                    # exports SEGMENTS_TMP
    (cd "${!tree}" && build_and_install_private >/dev/null)    # in a subshell: its cwd
    PG_BIN="$SEGMENTS_TMP/pg/usr/lib/postgresql/$PG_MAJOR/bin"
    export PG_BIN
    start_cluster >/dev/null
    trap stop_both EXIT                                         # start_cluster set its own
    TMP[$k]=$SEGMENTS_TMP; BIN[$k]=$PG_BIN; PORT[$k]=$PGPORT
    echo "$k: $(git -C "${!tree}" rev-parse --short HEAD 2>/dev/null || echo "${!tree}"), $(md5sum "$("$PG_BIN/pg_config" --pkglibdir)/segments.so" | cut -c1-12), port $PGPORT"
done
for round in $(seq 1 "$ROUNDS"); do
    for k in A B; do
        echo "-- $k, round $round"
        PGHOST=${TMP[$k]} PGPORT=${PORT[$k]} PG_BIN=${BIN[$k]} ROUNDS=1 "$HERE/create_at_once.sh" | grep -E '^(round|median|[0-9]+ contacts| +[0-9.]+ s )'
    done
done

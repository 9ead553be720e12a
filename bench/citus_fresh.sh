#!/usr/bin/env bash
# Freshness on Citus vs one node: how long the incremental path (capture on
# the shards, each node's worker applying its own queue) takes to bring
# membership up to date after a batch of contact changes.  Against the
# coordinator's server of scripts/test-citus.sh (PGHOST/PGPORT/PGUSER set;
# CITUS_DB the distributed database, REF_DB the single-node one on the same
# server, both configured on "contacts" with the same segments, filled by
# bench/citus_pass.sh).  Per round, on each database in turn: one UPDATE of
# CHANGES contacts (a tenth of those up to CONTACTS, their score moved, so
# that the "high" segment changes), then the time until segments.wait()
# returns true (every node applied its queue), and contacts applied per
# second.
#   CONTACTS=200000 ROUNDS=2 bench/citus_fresh.sh
set -euo pipefail
N=${CONTACTS:-200000}; ROUNDS=${ROUNDS:-2}
: "${CITUS_DB:?}" "${REF_DB:?}"
for db in "$CITUS_DB" "$REF_DB"; do psql -X -qAt -d "$db" -c "SELECT segments.wait('600 s')" >/dev/null; done
# update_and_wait DB ROUND: seconds from the UPDATE's commit to wait() true
update_and_wait() {
    local t0 t1 ok
    psql -X -qAt -d "$1" -c "UPDATE contacts SET score = (score + 50) % 100
                              WHERE id % 10 = $(( $2 % 10 )) AND id <= $N" >/dev/null
    t0=$(date +%s.%N)
    ok=$(psql -X -qAt -d "$1" -c "SELECT segments.wait('600 s')")
    t1=$(date +%s.%N)
    [ "$ok" = t ] || { echo "wait() timed out on $1" >&2; exit 1; }
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}'
}
changes=$(psql -X -qAt -d "$REF_DB" -c "SELECT count(*) FROM contacts WHERE id % 10 = 1 AND id <= $N")
echo "changes per round: $changes contacts (one UPDATE)"
echo "round  one_node_s  one_node_per_s  citus_s  citus_per_s  citus/one"
for r in $(seq 1 "$ROUNDS"); do
    a=$(update_and_wait "$REF_DB" "$r")
    b=$(update_and_wait "$CITUS_DB" "$r")
    awk -v r="$r" -v a="$a" -v b="$b" -v n="$changes" \
        'BEGIN {printf "%5s  %10s  %14.0f  %7s  %11.0f  %9.2f\n", r, a, n / a, b, n / b, b / a}'
done

# During a pass: a new segment (on Citus, a chunked pass of every worker
# node's own worker over its shards; on one node, the worker's chunked
# pass) and, until it is ready, one contact changed at a time (its plan
# toggled in or out of 'vip'), each timed from its commit until
# segment_is_member() shows it (polled every 10 ms, in one session).
# Before this design a change on a Citus node waited for that node's whole
# pass, so the pass's duration is printed beside the latencies.
# probe DB KEY: milliseconds from the UPDATE's commit until membership shows it
probe() {
    psql -X -qAt -d "$1" -v ON_ERROR_STOP=1 -c "UPDATE contacts SET plan = CASE WHEN plan = 'vip' THEN 'free' ELSE 'vip' END WHERE id = $2" \
        -c "DO \$\$
            DECLARE
                t0 timestamptz := clock_timestamp();
                want boolean := coalesce((SELECT plan = 'vip' FROM contacts WHERE id = $2), false);
            BEGIN
                WHILE segments.segment_is_member($2::bigint, 'vip') IS DISTINCT FROM want LOOP
                    IF clock_timestamp() - t0 > interval '300 s' THEN
                        RAISE EXCEPTION 'contact $2 not applied within 300 s';
                    END IF;
                    PERFORM pg_catalog.pg_sleep(0.01);
                END LOOP;
                RAISE NOTICE 'ms=%', round(extract(epoch FROM clock_timestamp() - t0) * 1000);
            END \$\$" 2>&1 | sed -n 's/.*ms=//p'
}
# during_pass DB ROUND: probes until the new segment is ready; prints "probes max median pass_s"
during_pass() {
    local name="fresh_pass_$2" t0 t1 i=0 ms all=() state
    psql -X -qAt -d "$1" -c "SELECT segments.drop_segment('$name')" >/dev/null 2>&1 || true
    psql -X -qAt -d "$1" -c "SELECT segments.wait('600 s')" >/dev/null
    t0=$(date +%s.%N)
    psql -X -qAt -d "$1" -c "SELECT segments.create_segment('$name', '{\"type\":\"attribute\",\"field\":\"score\",\"op\":\"gte\",\"value\":$((10 * $2))}')" >/dev/null
    while :; do
        state=$(psql -X -qAt -d "$1" -c "SELECT status FROM segments.segments WHERE name = '$name'")
        [ "$state" = ready ] && break
        ms=$(probe "$1" $(( 10001 + (i * 7919) % (N - 10001) ))) || { echo "probe failed on $1" >&2; exit 1; }
        [ -n "$ms" ] && all+=("$ms")
        i=$((i + 1))
    done
    t1=$(date +%s.%N)
    psql -X -qAt -d "$1" -c "SELECT segments.drop_segment('$name')" >/dev/null
    printf '%s\n' "${all[@]:-0}" | sort -n | awk -v p="$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')" \
        '{v[NR] = $1} END {printf "%d %d %d %s", NR, v[NR], v[int((NR + 1) / 2)], p}'
}
echo "during a pass of a new segment: single-contact changes, ms from commit to segment_is_member()"
echo "round  one_node_probes  one_node_max_ms  one_node_median_ms  one_node_pass_s  citus_probes  citus_max_ms  citus_median_ms  citus_pass_s"
for r in $(seq 1 "$ROUNDS"); do
    read -r an amax amed apass <<< "$(during_pass "$REF_DB" "$r")"
    read -r bn bmax bmed bpass <<< "$(during_pass "$CITUS_DB" "$r")"
    printf '%5s  %15s  %15s  %18s  %15s  %12s  %12s  %15s  %12s\n' "$r" "$an" "$amax" "$amed" "$apass" "$bn" "$bmax" "$bmed" "$bpass"
done

# Shared by the benchmark scripts (bench/*.sh): the server settings of the
# benchmark cluster, bench_setup (build, install, start it) and small shell
# helpers.  Source it from the repository's top directory; OUT (the output
# directory; pgbench logs go to $OUT/pgbench) and RES (the results) are
# the caller's.

# Server settings: sized for a 1M-10M contact table on a small machine;
# fsync on (lib.sh turns it off for tests) so that synchronous_commit
# means what it says; no parallel query, so that every timing is one core
# (refresh() is single-threaded).  maintenance_work_mem stays at its
# default (64MB): inserting into segments.member can trigger a cleanup of
# its GIN pending list, which may use that much; the memory rows should
# show the default.
export CLUSTER_EXTRA_CONF="${CLUSTER_EXTRA_CONF:-}
fsync = on
shared_buffers = 2GB
work_mem = 64MB
max_wal_size = 16GB
checkpoint_timeout = 30min
max_parallel_workers_per_gather = 0
max_connections = 50
log_min_messages = warning"
export EXTRA_PACKAGES="${EXTRA_PACKAGES:-} gnuplot-nox"

export PGDATABASE=${PGDATABASE:-bench}
BENCH_DIR="${BENCH_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
# lib.sh sets PG_BIN to the system's; a caller's own (a private build's) wins
_bench_pg_bin="${PG_BIN:-}"
. "$BENCH_DIR/../scripts/lib.sh"
PG_BIN="${_bench_pg_bin:-$PG_BIN}"
BG_PIDS=()                                              # background jobs, killed on exit
bench_cleanup() {
    local p
    for p in "${BG_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
}
q()  { psql -X -q -v ON_ERROR_STOP=1 "$@"; }          # script / statements
qv() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }      # one value
now_s() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.3f", b - a }'; }
median() { tr ' ' '\n' | { grep -v '^$' || true; } | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# The database of the capture benchmarks (capture_cost.sh, rewrite_floor.sh):
# capture_db DB CONTACTS makes DB anew with CONTACTS contacts of data.sql and
# the segments of capture_setup.sql (SEGS, if set, names them).
capture_db() {
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1"
    psql -X -q -d "$1" -v contacts="$2" -f "$BENCH_DIR/data.sql" >/dev/null
    psql -X -q -d "$1" -f "$BENCH_DIR/segments.sql" >/dev/null
    psql -X -q -d "$1" ${SEGS:+-v segs="$SEGS"} -f "$BENCH_DIR/capture_setup.sql" >/dev/null
}
# The pgbench script of the read1 pattern: a one-row UPDATE of columns rules
# read (plan, lifetime_value) of a contact drawn from 1..CONTACTS ($1).
read1_script() {
    printf '\\set c random(1, %s)\n\\set v random(0, 2000000)\nUPDATE public.contacts SET plan = (ARRAY['"'"'free'"'"', '"'"'pro'"'"', '"'"'vip'"'"'])[1 + :v %% 3], lifetime_value = :v / 100.0 WHERE id = :c;\n' "$1"
}
calc() { awk "BEGIN { printf \"%.6g\", $1 }"; }
# query_s SQL: seconds the statement took, as psql's \timing sees it
# (without the connection's start, which costs tenths of a second on a
# loaded machine)
query_s() { psql -X -qAt -v ON_ERROR_STOP=1 -c '\timing on' -c "$1" | awk '/^Time:/ { printf "%.3f", $2 / 1000 }'; }
x2() { awk -v v="$1" 'BEGIN { printf "%.2f", v }'; }        # two decimals

# bench_setup: installs what the benchmark needs, builds and installs the
# extension, starts the throwaway cluster (stopped on exit, with whatever
# the benchmark started in the background).
bench_setup() {
    ensure_packages
    build_and_install
    LIBFILE="$("$PG_BIN/pg_config" --pkglibdir)/segments.so"
    LIB_MD5=$(md5sum "$LIBFILE" | cut -c1-12)
    BUILD="commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    if [ -n "$(git status --porcelain -- src sql 2>/dev/null || true)" ]; then
        BUILD="$BUILD + uncommitted changes in src/ or sql/"
    fi
    BUILD="$BUILD, segments.so md5 $LIB_MD5"
    start_cluster
    PGBENCH="$PG_BIN/pgbench"

    # (set +e: the handler must reach stop_cluster, which reads $? for the exit code)
    trap 'rc=$?; set +e; bench_cleanup; (exit $rc); stop_cluster' EXIT
}

# bench_load_db CONTACTS: (re)creates database $PGDATABASE with its worker
# off: the generated contacts (bench/data.sql), segments configured on them
# and the 100 benchmark segments created (bench/segments.sql), not yet
# evaluated.
bench_load_db() {
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $PGDATABASE WITH (FORCE)" -c "CREATE DATABASE $PGDATABASE"
    qv "ALTER DATABASE $PGDATABASE SET segments.enabled = off" >/dev/null
    q -v contacts="$1" -f "$BENCH_DIR/data.sql"
    q -c "CREATE EXTENSION segments" \
      -c "SELECT segments.configure(source => 'public.contacts', key_column => 'id', traits_column => 'custom_data')" >/dev/null
    q -f "$BENCH_DIR/segments.sql"
    q -c "SELECT count(segments.create_segment(name, definition)) FROM (SELECT name, definition FROM bench.seg_def ORDER BY n) s" >/dev/null
}

# result ROW EXTENSION_VALUE BASELINE_LABEL BASELINE_VALUE RATIO TARGET MET
result() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$RES"; }

# pgbench_tps NAME SCRIPT SECONDS [pgbench options...]: prints "tps latency_ms"
pgbench_run() {
    local name="$1" script="$2" secs="$3"
    shift 3
    "$PGBENCH" -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$secs" "$@" -f "$script" \
        > "$OUT/pgbench/$name.log" 2>&1 || { cat "$OUT/pgbench/$name.log" >&2; return 1; }
    awk '/^latency average/ { lat = $4 } /^tps/ { tps = $3 } END { print tps, lat }' "$OUT/pgbench/$name.log"
}

# The worker of the database: off (and not running) or on (and running).
worker_off() {
    qv "ALTER DATABASE $PGDATABASE SET segments.enabled = off" >/dev/null
    local i
    for i in $(seq 1 100); do
        qv "SELECT pg_terminate_backend(pid) FROM segments.worker WHERE pid IS NOT NULL" >/dev/null
        [ -z "$(qv "SELECT pid FROM segments.worker WHERE pid IS NOT NULL")" ] && return 0
        sleep 0.2
    done
    echo "bench: the worker did not stop" >&2; return 1
}
worker_on() {
    qv "ALTER DATABASE $PGDATABASE RESET segments.enabled" >/dev/null
    local i
    for i in $(seq 1 150); do
        qv "SELECT segments._notify_worker()" >/dev/null
        WORKER_PID=$(qv "SELECT pid FROM segments.worker WHERE pid IS NOT NULL")
        [ -n "$WORKER_PID" ] && return 0
        sleep 0.2
    done
    echo "bench: the worker did not start" >&2; return 1
}

# wait_quiet SQL QUIET INTERVAL MAX_S: polls SQL (a count) every INTERVAL
# seconds until it has read 0 QUIET times in a row, for at most MAX_S
# seconds (then returns anyway).
wait_quiet() {
    local quiet=0 t0=$SECONDS
    while [ "$quiet" -lt "$2" ] && [ $((SECONDS - t0)) -lt "$4" ]; do
        if [ "$(qv "$1")" = 0 ]; then quiet=$((quiet + 1)); else quiet=0; fi
        sleep "$3"
    done
}

# strip_settle: waits until the worker has not been removing dropped
# segments' numbers from stored rows (src/member_strip.c) for 1 s, at most
# 120 s (WORKER_PID: worker_on's).  The baselines of the "created at
# once" rows drop their 100 with the worker off; without this, the
# worker's round would begin with that clean-up (0.7 s of its 3.7 s at
# 200,000 contacts, bench/create_at_once.sh), which refresh() never pays.
strip_settle() {
    wait_quiet "SELECT count(*) FROM pg_stat_activity WHERE pid = $WORKER_PID
                  AND query LIKE 'segments: removing dropped segments%' AND state = 'active'" 5 0.2 120
}

# sample_rss PID FILE STOPFILE: every 50 ms, "seconds VmRSS RssAnon VmHWM" (kB)
# until the process ends or STOPFILE exists.
sample_rss() {
    local pid="$1" file="$2" stop="$3" t0
    t0=$(now_s)
    while [ ! -e "$stop" ] && [ -r "/proc/$pid/status" ]; do
        awk -v t="$(elapsed "$t0")" '/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 } /^VmHWM:/ { h = $2 }
             END { if (r != "") print t, r, a, h }' "/proc/$pid/status" 2>/dev/null >> "$file" || true
        sleep 0.05
    done
}
peak_col() { awk -v c="$2" 'BEGIN { m = 0 } $c > m { m = $c } END { print m }' "$1"; }

# ratio_ge / ratio_le RATIO TARGET: "yes" when the target is met, else "NO"
ratio_ge() { awk -v r="$1" -v t="$2" 'BEGIN { print (r >= t) ? "yes" : "NO" }'; }
ratio_le() { awk -v r="$1" -v t="$2" 'BEGIN { print (r <= t) ? "yes" : "NO" }'; }
fmt_mb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'; }


# print_results TITLE: the header and the table of $RES, to stdout and to
# $OUT/header.txt and $OUT/table.md.
print_results() {
    MACHINE="$(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo) RAM, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    {
        echo "$1"
        echo "PostgreSQL $(qv "SHOW server_version"); $MACHINE"
        echo "data generated in $LOAD_S s; $(date -u '+%Y-%m-%d %H:%M UTC'); $BUILD"
        NOW_MD5=$(md5sum "$LIBFILE" | cut -c1-12)
        # the server preloaded the library at start; backends find it loaded by
        # its file name, so a reinstall by someone else does not change the
        # code measured, only what the next server start would load
        [ "$NOW_MD5" = "$LIB_MD5" ] || echo "note: $LIBFILE was reinstalled during the run (md5 now $NOW_MD5); the server kept the build it preloaded"
    } > "$OUT/header.txt"
    {
        echo "| Row | Extension | Baseline | Baseline value | Ratio | Target | Met |"
        echo "|---|---|---|---|---|---|---|"
        awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7 }' "$RES"
    } > "$OUT/table.md"

    echo
    cat "$OUT/header.txt"
    echo
    awk -F'\t' 'BEGIN { printf "%-60s %-17s %-17s %-15s %-14s %s\n", "row", "extension", "baseline", "ratio", "target", "met" }
                { b = ($4 == "") ? $3 : $4; printf "%-60s %-17s %-17s %-15s %-14s %s\n", substr($1, 1, 60), $2, substr(b, 1, 17), $5, $6, $7 }' "$RES"
    echo
}

# settle_with_probe RUN START: runs the freshness probe (bench/probe.sql,
# contact 1 changed every 2 s, watched in segment $PROBE_SEG) until no
# segment is pending or evaluating; SETTLED_S: seconds from START (now_s).
settle_with_probe() {
    local run="$1" start="$2" job
    psql -X -q -v ON_ERROR_STOP=1 -v run="$run" -v seg="$PROBE_SEG" -v secs=14400 -v pause=2 -v until_settled=1 \
        -f "$BENCH_DIR/probe.sql" &
    job=$!
    BG_PIDS+=("$job")
    # one session polls (a psql started every 0.1 s was load the worker
    # shared the cores with, and refresh() did not); each look commits.
    # Every second it also samples how far behind the passage of time is
    # (segments.worker.time_lag; NULL when no segment reads the time): the
    # time-dependent segments' staleness while the pass runs (time_lag_stats).
    qv "CREATE TABLE IF NOT EXISTS bench.time_lag (run text, lag_s float8)" >/dev/null
    qv "DO \$\$ DECLARE i int := 0; BEGIN
          WHILE EXISTS (SELECT 1 FROM segments.segment_state WHERE state IN ('pending', 'evaluating')) LOOP
            IF i % 10 = 0 THEN
              INSERT INTO bench.time_lag SELECT '$run', extract(epoch FROM w.time_lag)
                FROM segments.worker w WHERE w.time_lag IS NOT NULL;
            END IF;
            i := i + 1;
            COMMIT; PERFORM pg_catalog.pg_sleep(0.1);
          END LOOP; END \$\$" >/dev/null
    SETTLED_S=$(elapsed "$start")
    wait "$job"
}

# time_lag_stats RUN: "samples mean max" (s) of segments.worker.time_lag
# sampled by settle_with_probe RUN (0 samples: no segment reads the time)
time_lag_stats() {
    qv "SELECT count(*), coalesce(round(avg(lag_s)::numeric, 1), 0), coalesce(round(max(lag_s)::numeric, 1), 0)
          FROM bench.time_lag WHERE run = '$1'" | tr '|' ' '
}

# freshness_stats RUN: "probes p50 p99 max" (ms) of the probe's samples of RUN
freshness_stats() {
    qv "SELECT count(*), round(percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)::numeric, 1),
               round(percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms)::numeric, 1),
               round(max(latency_ms)::numeric, 1)
          FROM bench.freshness WHERE run = '$1'" | tr '|' ' '
}

# timed FILE [PRE]: runs PRE (SQL, untimed; optional) and then the SQL
# file FILE in one session; prints the file's wall-clock seconds and the
# CPU seconds of the backend that ran it (from /proc: the server runs on
# this machine), which other load on the machine disturbs less than the
# wall clock.  Both are read right around the file: neither PRE (a
# TRUNCATE and CHECKPOINT writing out what the step before left dirty)
# nor the connection's start is counted.  Writes its scratch files to
# $tmp (the caller's directory).
TCK=$(getconf CLK_TCK)
timed() {
    cat > "$tmp/timed.sql" <<SQL
${2:-}
SELECT pg_backend_pid() AS pid \\gset
\\setenv BACKEND :pid
\\! { date +%s.%N; awk '{ print \$14 + \$15 }' /proc/\$BACKEND/stat; } > $tmp/cpu0
\\o /dev/null
\\i $1
\\o
\\! { date +%s.%N; awk '{ print \$14 + \$15 }' /proc/\$BACKEND/stat; } > $tmp/cpu1
SQL
    psql -X -qAt -v ON_ERROR_STOP=1 -f "$tmp/timed.sql" >/dev/null
    cat "$tmp/cpu0" "$tmp/cpu1" | paste -s -d' ' |
        awk -v t="$TCK" '{ printf "%.3f %.2f\n", $3 - $1, ($4 - $2) / t }'
}

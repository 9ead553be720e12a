-- Freshness probe (bench/run.sh): for :secs seconds, flips the plan of
-- contact 1 between 'vip' and 'pro', commits, and polls
-- segment_is_member(1, :seg) every millisecond until the stored membership
-- shows the change; records the commit-to-visible latency of each flip in
-- bench.freshness.  psql -v run=NAME -v seg=UUID -v secs=N -f bench/probe.sql
-- Optional: -v pause=S (seconds between flips, plus up to 0.1 s; default
-- 0.05), -v until_settled=1 (stop once no segment is pending or evaluating).
\set ON_ERROR_STOP 1
\if :{?pause}
\else
\set pause 0.05
\endif
\if :{?until_settled}
\else
\set until_settled 0
\endif
SET client_min_messages = warning;
SELECT set_config('bench.run', :'run', false), set_config('bench.seg', :'seg', false),
       set_config('bench.secs', :'secs', false), set_config('bench.pause', :'pause', false),
       set_config('bench.until_settled', :'until_settled', false) \g /dev/null

DO $$
DECLARE
    seg      uuid := current_setting('bench.seg')::uuid;
    run      text := current_setting('bench.run');
    started  timestamptz := clock_timestamp();
    deadline timestamptz := clock_timestamp() + make_interval(secs => current_setting('bench.secs')::int);
    want     boolean;
    t0       timestamptz;
    ats      float8[] := '{}';
    lats     float8[] := '{}';
    t0s      timestamptz[] := '{}';
BEGIN
    WHILE clock_timestamp() < deadline LOOP
        want := NOT segments.segment_is_member(1::bigint, seg);
        UPDATE public.contacts SET plan = CASE WHEN want THEN 'vip' ELSE 'pro' END WHERE id = 1;
        COMMIT;
        t0 := clock_timestamp();
        -- each evaluation below takes a new snapshot (read committed)
        WHILE segments.segment_is_member(1::bigint, seg) IS DISTINCT FROM want LOOP
            IF clock_timestamp() - t0 > interval '120 s' THEN
                RAISE EXCEPTION 'probe: membership did not change within 120 s';
            END IF;
            PERFORM pg_sleep(0.001);
        END LOOP;
        lats := lats || extract(epoch FROM clock_timestamp() - t0)::float8 * 1000;
        ats := ats || extract(epoch FROM t0 - started)::float8;
        t0s := t0s || t0;
        COMMIT;
        EXIT WHEN current_setting('bench.until_settled') = '1' AND NOT EXISTS
            (SELECT 1 FROM segments.segment_state WHERE state IN ('pending', 'evaluating'));
        PERFORM pg_sleep(current_setting('bench.pause')::float8 + random() * 0.1);
    END LOOP;
    INSERT INTO bench.freshness (run, i, at_s, latency_ms)
    SELECT run, i, a, l FROM unnest(ats, lats) WITH ORDINALITY AS u(a, l, i);
    -- when each flip committed, for a script that compares with the worker's log
    IF to_regclass('bench.freshness_at') IS NOT NULL THEN
        EXECUTE 'INSERT INTO bench.freshness_at (run, i, committed_at, latency_ms)
                 SELECT $1, i, t, l FROM unnest($2, $3) WITH ORDINALITY AS u(t, l, i)' USING run, t0s, lats;
    END IF;
END
$$;

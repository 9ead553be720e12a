-- Upgrade 0.1.0 -> 0.2.0: the changes to the SHAPE of the catalog (tables,
-- columns, constraints, sequences, indexes, new tables) that sql/install/
-- made since 0.1.0, written by hand as ALTER/CREATE statements.
--
-- Functions, views, triggers, event triggers, policies, comments, roles and
-- grants need nothing here: the generated upgrade script drops the code
-- objects of the old version before this file runs and re-creates those of
-- the new version after it (see sql/upgrade/README).  So code objects of
-- 0.1.0 do not exist while this runs; data conversions use plain SQL.
--
-- test/upgrade/01_upgrade.sh compares an upgraded database with a fresh
-- install of the new version, object by object: a change to sql/install/
-- without its counterpart here fails it.

-- Cumulative statistics per segment (segments.stat_segments), and the time
-- of the latest failure, kept after a success.
ALTER TABLE segments.segment_state
    ADD COLUMN evaluations     bigint NOT NULL DEFAULT 0,
    ADD COLUMN evaluation_time double precision NOT NULL DEFAULT 0,
    ADD COLUMN errors          bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_error_at   timestamptz,
    ADD COLUMN last_failure    text,
    ADD COLUMN stats_reset     timestamptz;

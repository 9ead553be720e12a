-- segments install script, part 1: catalog tables.
-- (make assembles the install script of the current version, sql/segments--VERSION.sql,
-- from sql/install/*.sql; upgrades from older versions: sql/upgrade/.)

\echo Use "CREATE EXTENSION segments" to load this file. \quit

-- Where contacts come from: one source per database (a singleton row).
CREATE TABLE segments.config (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    source        regclass NOT NULL,
    key_column    name NOT NULL,
    key_type      regtype NOT NULL,
    tenant_column name,
    traits_column name,
    configured_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE segments.config IS
    'The contact source configured by segments.configure(): one row.';

-- Segment numbers are the compact ids stored in membership arrays; never reused.
CREATE SEQUENCE segments.segment_num_seq AS integer;
COMMENT ON SEQUENCE segments.segment_num_seq IS
    'Compact segment numbers stored in segments.member; never reused.';

-- Segment definitions.  Runtime state lives in segment_state so that
-- evaluations do not invalidate the definition caches of readers.
CREATE TABLE segments.segment (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    num          integer NOT NULL UNIQUE DEFAULT nextval('segments.segment_num_seq'),
    tenant       text,
    name         text NOT NULL CHECK (name <> ''),
    description  text,
    definition   jsonb NOT NULL,
    refs         jsonb NOT NULL DEFAULT '{}',   -- segment reference as written -> uuid
    depends_on   uuid[] NOT NULL DEFAULT '{}',  -- referenced segments
    uses_time    boolean NOT NULL DEFAULT false,
    schedule     interval CHECK (schedule > interval '0'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (tenant, name)
);
ALTER SEQUENCE segments.segment_num_seq OWNED BY segments.segment.num;
COMMENT ON TABLE segments.segment IS
    'Segment definitions; manage them with segments.create_segment() and friends.';

-- Evaluation state of each segment, written by refresh() and the worker.
CREATE TABLE segments.segment_state (
    segment_id    uuid PRIMARY KEY REFERENCES segments.segment (id) ON DELETE CASCADE,
    state         text NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'evaluating', 'ready', 'failed')),
    member_count  bigint NOT NULL DEFAULT 0,
    evaluated_at  timestamptz,
    last_duration interval,
    last_error    text,            -- the current failure; cleared by a success
    requested_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- cumulative statistics for segments.stat_segments, zeroed by stat_reset()
    evaluations     bigint NOT NULL DEFAULT 0,
    evaluation_time double precision NOT NULL DEFAULT 0,   -- milliseconds
    errors          bigint NOT NULL DEFAULT 0,
    last_error_at   timestamptz,     -- the latest failure, kept after a success
    last_failure    text,            -- its message
    stats_reset     timestamptz
);
COMMENT ON TABLE segments.segment_state IS
    'Evaluation state per segment: pending, evaluating, ready or failed.';

SELECT pg_catalog.pg_extension_config_dump('segments.config', '');
SELECT pg_catalog.pg_extension_config_dump('segments.segment', '');
SELECT pg_catalog.pg_extension_config_dump('segments.segment_num_seq', '');

-- Readers cache segment definitions per backend; this trigger tells them
-- (through a relcache invalidation) when the catalog changed.
CREATE FUNCTION segments._catalog_changed() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'segments_catalog_changed';
CREATE TRIGGER catalog_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON segments.segment
    FOR EACH STATEMENT EXECUTE FUNCTION segments._catalog_changed();
CREATE TRIGGER catalog_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON segments.config
    FOR EACH STATEMENT EXECUTE FUNCTION segments._catalog_changed();

-- Tenant visibility: a session that sets segments.tenant sees only that tenant.
CREATE FUNCTION segments._tenant_visible(tenant text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE AS
$$ SELECT coalesce(nullif(pg_catalog.current_setting('segments.tenant', true), ''), $1)
          IS NOT DISTINCT FROM $1 $$;
COMMENT ON FUNCTION segments._tenant_visible(text) IS
    'True when a segment of this tenant is visible to the session (segments.tenant unset, or equal).';

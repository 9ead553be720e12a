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
    last_error    text,
    requested_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    attempts      integer NOT NULL DEFAULT 0,  -- failed evaluations in a row
    retry_at      timestamptz,                 -- pending/failed: not evaluated before
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

-- How long the worker waits before evaluating a segment again after
-- `attempts` failed evaluations in a row: transient errors (cancel, lock
-- timeout, serialization failure, deadlock, lack of resources) are retried
-- soon (1, 2, 4, 8 s), a failed segment later (30 s doubling, at most 1 h).
CREATE FUNCTION segments._retry_after(attempts integer, transient boolean) RETURNS interval
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT CASE WHEN $2 THEN interval '1 s' OPERATOR(pg_catalog.*) (2 OPERATOR(pg_catalog.^) LEAST($1, 3))
               ELSE LEAST(interval '1 hour',
                          interval '30 s' OPERATOR(pg_catalog.*) (2 OPERATOR(pg_catalog.^) LEAST($1, 7))) END $$;

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

-- Tenancy (src/tenancy.c): what the session may see.  A session with a
-- tenant sees that tenant's segments and the global ones, and only its own
-- tenant's contacts; without a tenant, members of segments_admin see
-- everything and other roles nothing (when a tenant column is configured).
CREATE FUNCTION segments._session_tenant() RETURNS text
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_session_tenant';
COMMENT ON FUNCTION segments._session_tenant() IS
    'Internal: segments.tenant in the text form of the tenant column''s type, or NULL; an error when that type cannot hold it.';
CREATE FUNCTION segments._tenant_visible(tenant text) RETURNS boolean
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_tenant_visible';
COMMENT ON FUNCTION segments._tenant_visible(text) IS
    'Internal: may the session see segments of this tenant (NULL: global segments)?';
CREATE FUNCTION segments._contact_visible(tenant text) RETURNS boolean
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_contact_visible';
COMMENT ON FUNCTION segments._contact_visible(text) IS
    'Internal: may the session see a contact of this tenant (as stored in segments.member)?';
CREATE FUNCTION segments._is_admin() RETURNS boolean
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_is_admin';
COMMENT ON FUNCTION segments._is_admin() IS
    'Internal: is the session''s role a superuser or a member of segments_admin?';
CREATE FUNCTION segments._manage_tenant() RETURNS text
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'segments_manage_tenant';
COMMENT ON FUNCTION segments._manage_tenant() IS
    'Internal: the tenant management calls act in (NULL: an admin without one); an error when the session may manage nothing.';
CREATE FUNCTION segments._canonical_tenant(tenant text) RETURNS text
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'segments_canonical_tenant';
COMMENT ON FUNCTION segments._canonical_tenant(text) IS
    'Internal: a tenant value in the text form of the tenant column''s type; an error when that type cannot hold it.';
CREATE FUNCTION segments._contact_tenant() RETURNS text
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_contact_tenant';
COMMENT ON FUNCTION segments._contact_tenant() IS
    'Internal: the tenant whose contacts alone the session may see, or NULL when contacts are not filtered.';

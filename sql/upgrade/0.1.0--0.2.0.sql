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

-- reliability: evaluation retries (attempts, retry_at) and queue entries set aside
ALTER TABLE segments.segment_state
    ADD COLUMN attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN retry_at timestamptz;
CREATE TABLE segments.change_queue_failed (
    id          bigint PRIMARY KEY,
    contact     text,
    enqueued_at timestamptz NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    error       text NOT NULL
);
-- reliability: capture triggers fire whatever session_replication_role is
-- (configure() now makes them ENABLE ALWAYS; those of 0.1.0 are kept)
DO $always$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT t.tgrelid::regclass AS rel, t.tgname
               FROM pg_catalog.pg_trigger t
               JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
               JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'segments' AND p.proname = '_capture' AND t.tgparentid = 0
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', r.rel, r.tgname);
    END LOOP;
END
$always$;

-- Tenancy: segments.member keeps each contact's tenant (the tenant column's
-- text form), so readers show a tenant session only its own contacts.  The
-- table exists only once configure() ran; the tenants are filled from the
-- source, as the next evaluation would write them.
DO $$
DECLARE
    c record;
BEGIN
    IF to_regclass('segments.member') IS NULL THEN
        RETURN;
    END IF;
    ALTER TABLE segments.member ADD COLUMN IF NOT EXISTS tenant text;
    CREATE INDEX IF NOT EXISTS member_tenant_idx ON segments.member (tenant) WHERE tenant IS NOT NULL;
    SELECT * INTO c FROM segments.config;
    IF FOUND AND c.tenant_column IS NOT NULL AND EXISTS (
        SELECT 1 FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = c.source AND a.attname = c.tenant_column AND NOT a.attisdropped) THEN
        EXECUTE pg_catalog.format(
            'UPDATE segments.member m SET tenant = s.%I::text FROM %s s WHERE s.%I OPERATOR(pg_catalog.=) m.contact_id',
            c.tenant_column, c.source, c.key_column);
    END IF;
END
$$;

-- Cumulative statistics per segment (segments.stat_segments), and the time
-- of the latest failure, kept after a success.
ALTER TABLE segments.segment_state
    ADD COLUMN evaluations     bigint NOT NULL DEFAULT 0,
    ADD COLUMN evaluation_time double precision NOT NULL DEFAULT 0,
    ADD COLUMN errors          bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_error_at   timestamptz,
    ADD COLUMN last_failure    text,
    ADD COLUMN stats_reset     timestamptz;

-- Membership history (08_history.sql): the change ids, the dropped
-- segments changes still name, the consumers' cursors.  The change log
-- itself holds contact keys: _build_history() makes it with the other
-- objects configure() makes (lib/rebuild_configured.sql).
CREATE SEQUENCE segments.change_id_seq AS bigint;
CREATE TABLE segments.dropped_segment (
    num        integer PRIMARY KEY,
    id         uuid NOT NULL,
    tenant     text,
    name       text NOT NULL,
    dropped_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE segments.change_cursor (
    tenant         text,
    consumer       text NOT NULL,
    last_change_id bigint NOT NULL DEFAULT 0,
    last_offset    integer CHECK (last_offset > 0),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (tenant, consumer)
);

-- The chunked evaluation pass in progress (sql/install/05_pass.sql).
CREATE TABLE segments.pass (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    source         regclass NOT NULL,
    segment_ids    uuid[] NOT NULL,
    requested      timestamptz[] NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    cursor         text,
    contacts_done  bigint NOT NULL DEFAULT 0,
    contacts_total bigint NOT NULL DEFAULT 0,
    chunks         integer NOT NULL DEFAULT 0
);
COMMENT ON TABLE segments.pass IS
    'The evaluation pass in progress (at most one row): its segments and how far it went.';

-- Queue ids are taken 64 at a time by each writing backend
-- (sql/install/05_worker.sql).
ALTER SEQUENCE segments.change_queue_id_seq CACHE 64;

-- capture: whether changes may sit in the worker's shared-memory ring
CREATE TABLE segments.capture_state (
    one         boolean PRIMARY KEY DEFAULT true CHECK (one),
    clean       boolean NOT NULL DEFAULT true,
    watermark   timestamptz
);
-- (its one row: the install script's INSERT, which the generated upgrade runs after this)

-- What a freshly built index of segments.member takes, measured by the
-- worker's vacuum process right after it rebuilt the index
-- (src/member_vacuum.c): the GIN index per stored membership, the primary
-- key per row.  The worker rebuilds an index once it is
-- segments.member_reindex_factor times that; kept here so that a restarted
-- worker does not go back to the defaults (and rebuild an index that is not
-- bloated).  Rows of another member table (configure() made a new one) are
-- ignored.
CREATE TABLE segments.member_index_fresh (
    index_name   name PRIMARY KEY,
    member_relid oid NOT NULL,
    bytes_per    float8 NOT NULL CHECK (bytes_per > 0),
    measured_at  timestamptz NOT NULL DEFAULT now()
);

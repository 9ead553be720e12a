-- segments 0.1.0 install script, frozen as released: never edit it.
-- Later versions install from their own script and upgrade from this one.

-- segments install script, part 1: catalog tables.
-- (The install script sql/segments--0.1.0.sql is assembled from sql/install/*.sql by make.)

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
    requested_at  timestamptz NOT NULL DEFAULT clock_timestamp()
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
-- segments install script, part 2: configure() and the membership storage it builds.

-- Reading the compact membership of one contact (src/member_codec.c): its
-- segment numbers, for the GIN index, and its (number, since) rows.
CREATE FUNCTION segments._member_segs(data bytea)
RETURNS integer[]
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'segments_member_segs';
CREATE FUNCTION segments._member_rows(data bytea, OUT num integer, OUT since timestamptz)
RETURNS SETOF record
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE ROWS 20
AS 'MODULE_PATHNAME', 'segments_member_rows';

-- Membership storage depends on the type of the contact key, so configure()
-- (re)creates it: one row per contact holding the sorted numbers of the
-- segments it belongs to and, aligned, since when (seconds since 2000-01-01
-- UTC), in a compact bytea.  The objects are added to the extension so DROP
-- EXTENSION removes them.
CREATE FUNCTION segments._build_storage(p_key_type regtype)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF to_regclass('segments.member') IS NOT NULL THEN
        EXECUTE 'ALTER EXTENSION segments DROP VIEW segments.membership';
        EXECUTE 'ALTER EXTENSION segments DROP FUNCTION segments.segment_members(uuid)';
        EXECUTE 'ALTER EXTENSION segments DROP FUNCTION segments.segment_members(text)';
        EXECUTE 'ALTER EXTENSION segments DROP TABLE segments.member';
        DROP VIEW segments.membership;
        DROP FUNCTION segments.segment_members(uuid);
        DROP FUNCTION segments.segment_members(text);
        DROP TABLE segments.member;
    END IF;

    EXECUTE format($f$
        CREATE TABLE segments.member (
            contact_id %s PRIMARY KEY,
            data       bytea NOT NULL
        )$f$, p_key_type);
    CREATE INDEX member_segs_idx ON segments.member
        USING gin (segments._member_segs(data));
    COMMENT ON TABLE segments.member IS
        'Stored membership: per contact, its segments and since when, in a compact form (see src/member_codec.c). Read it through segments.membership.';

    CREATE VIEW segments.membership AS
        SELECT s.id AS segment_id,
               m.contact_id,
               u.since
          FROM segments.member m
         CROSS JOIN LATERAL segments._member_rows(m.data) AS u
          JOIN segments.segment s ON s.num = u.num
         WHERE segments._tenant_visible(s.tenant);
    COMMENT ON VIEW segments.membership IS
        'One row per (segment, contact) membership, for joins; since is when the contact entered the segment.';

    EXECUTE format($f$
        CREATE FUNCTION segments.segment_members(segment uuid)
        RETURNS SETOF %1$s
        LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = pg_catalog, pg_temp
        AS 'SELECT m.contact_id FROM segments.member m
             WHERE segments._member_segs(m.data) OPERATOR(pg_catalog.@>) ARRAY[segments._segment_num($1)]'$f$,
        p_key_type);
    EXECUTE format($f$
        CREATE FUNCTION segments.segment_members(segment text)
        RETURNS SETOF %1$s
        LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = pg_catalog, pg_temp
        AS 'SELECT m.contact_id FROM segments.member m
             WHERE segments._member_segs(m.data) OPERATOR(pg_catalog.@>) ARRAY[segments._segment_num($1)]'$f$,
        p_key_type);
    COMMENT ON FUNCTION segments.segment_members(uuid) IS
        'Contacts in a segment (by id), from the GIN index on stored membership.';
    COMMENT ON FUNCTION segments.segment_members(text) IS
        'Contacts in a segment (by id or name in the session''s tenant).';

    EXECUTE 'ALTER EXTENSION segments ADD TABLE segments.member';
    EXECUTE 'ALTER EXTENSION segments ADD VIEW segments.membership';
    EXECUTE 'ALTER EXTENSION segments ADD FUNCTION segments.segment_members(uuid)';
    EXECUTE 'ALTER EXTENSION segments ADD FUNCTION segments.segment_members(text)';

    REVOKE ALL ON segments.member FROM PUBLIC;
    REVOKE ALL ON FUNCTION segments.segment_members(uuid) FROM PUBLIC;
    REVOKE ALL ON FUNCTION segments.segment_members(text) FROM PUBLIC;
    GRANT SELECT ON segments.membership TO segments_read;
    GRANT EXECUTE ON FUNCTION segments.segment_members(uuid) TO segments_read;
    GRANT EXECUTE ON FUNCTION segments.segment_members(text) TO segments_read;
END
$$;
COMMENT ON FUNCTION segments._build_storage(regtype) IS
    'Internal: (re)creates the membership storage for a contact key type.';

CREATE FUNCTION segments.configure(source regclass, key_column name,
                                   tenant_column name DEFAULT NULL,
                                   traits_column name DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_key_type regtype;
    v_type     regtype;
    v_relkind  "char";
BEGIN
    IF source IS NULL OR key_column IS NULL THEN
        RAISE EXCEPTION 'source and key_column must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Call segments.configure(source => ''public.contacts'', key_column => ''id'').';
    END IF;
    SELECT c.relkind INTO v_relkind FROM pg_class c WHERE c.oid = source;
    IF v_relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'source "%" is not a table', source
            USING ERRCODE = 'wrong_object_type';
    END IF;
    IF NOT pg_catalog.pg_has_role((SELECT e.extowner FROM pg_extension e
                                    WHERE e.extname = 'segments'), 'USAGE') THEN
        RAISE EXCEPTION 'permission denied to configure segments'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Only the owner of the extension may call segments.configure().';
    END IF;

    SELECT a.atttypid::regtype INTO v_key_type
      FROM pg_attribute a
     WHERE a.attrelid = source AND a.attname = key_column
       AND a.attnum > 0 AND NOT a.attisdropped;
    IF v_key_type IS NULL THEN
        RAISE EXCEPTION 'column "%" of "%" does not exist', key_column, source
            USING ERRCODE = 'undefined_column';
    END IF;
    IF v_key_type NOT IN ('uuid'::regtype, 'bigint'::regtype, 'integer'::regtype,
                          'text'::regtype) THEN
        RAISE EXCEPTION 'key column "%" has type %, which is not supported', key_column, v_key_type
            USING ERRCODE = 'datatype_mismatch',
                  HINT = 'The key column must be of type uuid, bigint, integer or text.';
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM pg_index i
         WHERE i.indrelid = source AND i.indisunique AND i.indisvalid
           AND i.indnatts = 1 AND i.indpred IS NULL AND i.indexprs IS NULL
           AND i.indkey[0] = (SELECT a.attnum FROM pg_attribute a
                               WHERE a.attrelid = source AND a.attname = key_column)) THEN
        RAISE EXCEPTION 'key column "%" of "%" has no unique index', key_column, source
            USING ERRCODE = 'invalid_table_definition',
                  HINT = 'Make the key column the primary key, or create a unique index on it alone.';
    END IF;

    IF tenant_column IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM pg_attribute a
         WHERE a.attrelid = source AND a.attname = tenant_column
           AND a.attnum > 0 AND NOT a.attisdropped) THEN
        RAISE EXCEPTION 'tenant column "%" of "%" does not exist', tenant_column, source
            USING ERRCODE = 'undefined_column';
    END IF;
    IF traits_column IS NOT NULL THEN
        SELECT a.atttypid::regtype INTO v_type
          FROM pg_attribute a
         WHERE a.attrelid = source AND a.attname = traits_column
           AND a.attnum > 0 AND NOT a.attisdropped;
        IF v_type IS NULL THEN
            RAISE EXCEPTION 'traits column "%" of "%" does not exist', traits_column, source
                USING ERRCODE = 'undefined_column';
        ELSIF v_type <> 'jsonb'::regtype THEN
            RAISE EXCEPTION 'traits column "%" has type %, not jsonb', traits_column, v_type
                USING ERRCODE = 'datatype_mismatch',
                      HINT = 'The traits column must be of type jsonb.';
        END IF;
    END IF;

    -- Only rebuild storage when the key type changes: same-typed re-pointing
    -- keeps readers' membership until the re-evaluation below replaces it.
    IF to_regclass('segments.member') IS NULL
       OR (SELECT c.key_type FROM segments.config c) IS DISTINCT FROM v_key_type THEN
        PERFORM segments._build_storage(v_key_type);
    END IF;

    INSERT INTO segments.config AS c (singleton, source, key_column, key_type,
                                      tenant_column, traits_column, configured_at)
    VALUES (true, source, key_column, v_key_type, tenant_column, traits_column, now())
    ON CONFLICT (singleton) DO UPDATE
       SET source = EXCLUDED.source, key_column = EXCLUDED.key_column,
           key_type = EXCLUDED.key_type, tenant_column = EXCLUDED.tenant_column,
           traits_column = EXCLUDED.traits_column, configured_at = EXCLUDED.configured_at;

    -- change capture for the worker: on the new source, off the old one
    PERFORM segments._install_capture(source);

    UPDATE segments.segment_state SET state = 'pending', requested_at = clock_timestamp();
    PERFORM segments.refresh();
END
$$;
COMMENT ON FUNCTION segments.configure(regclass, name, name, name) IS
    'Points segments at the contact source table and re-evaluates every segment.';
-- segments install script, part 3: managing segments (role segments_write).
-- Management functions run as the extension owner (SECURITY DEFINER) so that
-- segments_write needs no privilege on the catalog tables; they only ever
-- touch segments the session's tenant may see.

-- Validates a definition; returns {"refs": {as written: uuid}, "depends_on":
-- [uuid...], "uses_time": bool}.  Raises the rule errors of SPEC section 4.
CREATE FUNCTION segments._validate(definition jsonb, tenant text, self uuid)
RETURNS jsonb
LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'segments_validate';

CREATE FUNCTION segments.compile(definition jsonb)
RETURNS text
LANGUAGE c STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'segments_compile';
COMMENT ON FUNCTION segments.compile(jsonb) IS
    'Validates a segment definition and shows what its rules compile to.';

-- The visible segment with this id, or an error.
CREATE FUNCTION segments._get_segment(p_segment uuid)
RETURNS segments.segment
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r segments.segment;
BEGIN
    IF p_segment IS NULL THEN
        RAISE EXCEPTION 'segment must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass the segment''s id, as listed in segments.segments.';
    END IF;
    SELECT * INTO r FROM segments.segment s
     WHERE s.id = p_segment AND segments._tenant_visible(s.tenant);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'segment "%" does not exist', p_segment
            USING ERRCODE = 'undefined_object';
    END IF;
    RETURN r;
END
$$;

CREATE FUNCTION segments.create_segment(name text, definition jsonb,
                                        description text DEFAULT NULL,
                                        tenant text DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_session_tenant text := nullif(current_setting('segments.tenant', true), '');
    v_tenant text := coalesce(tenant, v_session_tenant);
    v_info   jsonb;
    v_id     uuid := gen_random_uuid();
BEGIN
    IF name IS NULL OR btrim(name) = '' THEN
        RAISE EXCEPTION 'segment name must not be empty'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF definition IS NULL THEN
        RAISE EXCEPTION 'segment definition must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Use {"and": []} for a segment of every contact.';
    END IF;
    IF v_session_tenant IS NOT NULL AND v_tenant IS DISTINCT FROM v_session_tenant THEN
        RAISE EXCEPTION 'permission denied to create a segment for tenant "%"', v_tenant
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('This session is limited to tenant "%s" by segments.tenant.', v_session_tenant);
    END IF;
    IF EXISTS (SELECT 1 FROM segments.segment s
                WHERE s.name = create_segment.name
                  AND s.tenant IS NOT DISTINCT FROM v_tenant) THEN
        RAISE EXCEPTION 'segment "%" already exists', name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Segment names are unique within a tenant; choose another name or update the existing segment.';
    END IF;

    v_info := segments._validate(definition, v_tenant, NULL);

    INSERT INTO segments.segment (id, tenant, name, description, definition,
                                  refs, depends_on, uses_time)
    VALUES (v_id, v_tenant, name, description, definition, v_info -> 'refs',
            ARRAY(SELECT jsonb_array_elements_text(v_info -> 'depends_on'))::uuid[],
            (v_info ->> 'uses_time')::boolean);
    INSERT INTO segments.segment_state (segment_id) VALUES (v_id);
    PERFORM segments._notify_worker();
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION segments.create_segment(text, jsonb, text, text) IS
    'Creates a segment from a JSON definition; it is evaluated by the worker or segments.refresh().';

CREATE FUNCTION segments.update_segment(segment uuid, name text DEFAULT NULL,
                                        definition jsonb DEFAULT NULL,
                                        description text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r      segments.segment := segments._get_segment(segment);
    v_info jsonb;
BEGIN
    IF name IS NOT NULL AND btrim(name) = '' THEN
        RAISE EXCEPTION 'segment name must not be empty'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF name IS NOT NULL AND name <> r.name AND EXISTS (
        SELECT 1 FROM segments.segment s
         WHERE s.name = update_segment.name AND s.tenant IS NOT DISTINCT FROM r.tenant) THEN
        RAISE EXCEPTION 'segment "%" already exists', name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Segment names are unique within a tenant; choose another name.';
    END IF;

    IF definition IS NOT NULL THEN
        v_info := segments._validate(definition, r.tenant, r.id);
        UPDATE segments.segment s
           SET definition = update_segment.definition,
               refs = v_info -> 'refs',
               depends_on = ARRAY(SELECT jsonb_array_elements_text(v_info -> 'depends_on'))::uuid[],
               uses_time = (v_info ->> 'uses_time')::boolean
         WHERE s.id = r.id;
        UPDATE segments.segment_state st
           SET state = 'pending', requested_at = clock_timestamp()
         WHERE st.segment_id = r.id;
        PERFORM segments._notify_worker();
    END IF;

    UPDATE segments.segment s
       SET name = coalesce(update_segment.name, s.name),
           description = coalesce(update_segment.description, s.description),
           updated_at = now()
     WHERE s.id = r.id;
END
$$;
COMMENT ON FUNCTION segments.update_segment(uuid, text, jsonb, text) IS
    'Renames, redescribes or redefines a segment; NULL arguments keep the current value.';

CREATE FUNCTION segments.drop_segment(segment uuid)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r      segments.segment := segments._get_segment(segment);
    v_deps text;
BEGIN
    SELECT string_agg(format('"%s"', s.name), ', ' ORDER BY s.name) INTO v_deps
      FROM segments.segment s
     WHERE r.id = ANY (s.depends_on);
    IF v_deps IS NOT NULL THEN
        RAISE EXCEPTION 'cannot drop segment "%" because other segments reference it', r.name
            USING ERRCODE = 'dependent_objects_still_exist',
                  DETAIL = format('Referenced by: %s.', v_deps),
                  HINT = 'Drop or change the referencing segments first.';
    END IF;
    -- Stored membership keeps the dropped number until the next evaluation
    -- rewrites those contacts; readers ignore numbers with no segment.
    DELETE FROM segments.segment s WHERE s.id = r.id;
END
$$;
COMMENT ON FUNCTION segments.drop_segment(uuid) IS
    'Drops a segment; refused while other segments reference it.';

CREATE FUNCTION segments.schedule(segment uuid, every interval)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r segments.segment := segments._get_segment(segment);
BEGIN
    IF every IS NOT NULL AND every <= interval '0' THEN
        RAISE EXCEPTION 'schedule interval must be positive, not "%"', every
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass an interval such as ''15 minutes'', or NULL to clear the schedule.';
    END IF;
    UPDATE segments.segment s SET schedule = every, updated_at = now() WHERE s.id = r.id;
    PERFORM segments._notify_worker();
END
$$;
COMMENT ON FUNCTION segments.schedule(uuid, interval) IS
    'Re-evaluates a segment periodically (acted on by the worker); NULL clears the schedule.';

CREATE FUNCTION segments.refresh(segment uuid DEFAULT NULL)
RETURNS void
LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'segments_refresh';
COMMENT ON FUNCTION segments.refresh(uuid) IS
    'Synchronous full re-evaluation of one segment (and those that reference it) or, with NULL, of all.';

CREATE FUNCTION segments.refresh_contacts(contacts anyarray)
RETURNS bigint
LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'segments_refresh_contacts';
COMMENT ON FUNCTION segments.refresh_contacts(anyarray) IS
    'Re-evaluates every segment for the given contact keys and applies the difference; returns the number of contacts whose membership changed.';
-- segments install script, part 4: reading and gating (role segments_read).
-- Read functions never write: they work on a hot standby and in read-only
-- transactions.  Each takes the contact as uuid, bigint, integer or text;
-- an untyped literal or parameter resolves to the text variant.

CREATE VIEW segments.segments AS
    SELECT s.id, s.tenant, s.name, s.description, s.definition,
           s.created_at, s.updated_at,
           coalesce(st.member_count, 0) AS member_count,
           st.evaluated_at,
           coalesce(st.state, 'pending') AS status
      FROM segments.segment s
      LEFT JOIN segments.segment_state st ON st.segment_id = s.id
     WHERE segments._tenant_visible(s.tenant);
COMMENT ON VIEW segments.segments IS
    'The segments this session may see, with their member counts and status.';

CREATE VIEW segments.status AS
    SELECT s.id AS segment_id, s.tenant, s.name,
           coalesce(st.state, 'pending') AS state,
           coalesce(st.member_count, 0) AS member_count,
           st.evaluated_at, st.last_duration, st.last_error,
           CASE WHEN s.schedule IS NOT NULL
                THEN coalesce(st.evaluated_at, now()) + s.schedule END AS next_refresh,
           s.schedule, s.uses_time
      FROM segments.segment s
      LEFT JOIN segments.segment_state st ON st.segment_id = s.id
     WHERE segments._tenant_visible(s.tenant);
COMMENT ON VIEW segments.status IS
    'Evaluation state per segment: pending, evaluating, ready or failed, with timings and the last error.';

-- The compact number of a visible segment given by id or name; NULL if none.
CREATE FUNCTION segments._segment_num(segment uuid) RETURNS integer
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_segment_num';
CREATE FUNCTION segments._segment_num(segment text) RETURNS integer
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_segment_num';

CREATE FUNCTION segments.segment_is_member(contact uuid, segment uuid) RETURNS boolean
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_segment_is_member';
CREATE FUNCTION segments.segment_is_member(contact uuid, segment text) RETURNS boolean
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_segment_is_member';
CREATE FUNCTION segments.segment_is_member(contact bigint, segment uuid) RETURNS boolean
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_segment_is_member';
CREATE FUNCTION segments.segment_is_member(contact bigint, segment text) RETURNS boolean
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_segment_is_member';
CREATE FUNCTION segments.segment_is_member(contact integer, segment uuid) RETURNS boolean
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_segment_is_member';
CREATE FUNCTION segments.segment_is_member(contact integer, segment text) RETURNS boolean
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_segment_is_member';
CREATE FUNCTION segments.segment_is_member(contact text, segment uuid) RETURNS boolean
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_segment_is_member';
CREATE FUNCTION segments.segment_is_member(contact text, segment text) RETURNS boolean
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_segment_is_member';

CREATE FUNCTION segments.filter_restricted(contact uuid, restricted_to uuid[]) RETURNS boolean
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_filter_restricted';
CREATE FUNCTION segments.filter_restricted(contact bigint, restricted_to uuid[]) RETURNS boolean
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_filter_restricted';
CREATE FUNCTION segments.filter_restricted(contact integer, restricted_to uuid[]) RETURNS boolean
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_filter_restricted';
CREATE FUNCTION segments.filter_restricted(contact text, restricted_to uuid[]) RETURNS boolean
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_filter_restricted';

-- The ids of the visible segments a contact is in.
CREATE FUNCTION segments._contact_segment_ids(contact uuid) RETURNS uuid[]
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_contact_segment_ids';
CREATE FUNCTION segments._contact_segment_ids(contact bigint) RETURNS uuid[]
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_contact_segment_ids';
CREATE FUNCTION segments._contact_segment_ids(contact integer) RETURNS uuid[]
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_contact_segment_ids';
CREATE FUNCTION segments._contact_segment_ids(contact text) RETURNS uuid[]
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_contact_segment_ids';

CREATE FUNCTION segments.contact_segments(contact uuid) RETURNS SETOF segments.segments
    LANGUAGE sql STABLE AS
$$ SELECT s.* FROM segments.segments s
    WHERE s.id OPERATOR(pg_catalog.=) ANY (segments._contact_segment_ids($1)) ORDER BY s.name $$;
CREATE FUNCTION segments.contact_segments(contact bigint) RETURNS SETOF segments.segments
    LANGUAGE sql STABLE AS
$$ SELECT s.* FROM segments.segments s
    WHERE s.id OPERATOR(pg_catalog.=) ANY (segments._contact_segment_ids($1)) ORDER BY s.name $$;
CREATE FUNCTION segments.contact_segments(contact integer) RETURNS SETOF segments.segments
    LANGUAGE sql STABLE AS
$$ SELECT s.* FROM segments.segments s
    WHERE s.id OPERATOR(pg_catalog.=) ANY (segments._contact_segment_ids($1)) ORDER BY s.name $$;
CREATE FUNCTION segments.contact_segments(contact text) RETURNS SETOF segments.segments
    LANGUAGE sql STABLE AS
$$ SELECT s.* FROM segments.segments s
    WHERE s.id OPERATOR(pg_catalog.=) ANY (segments._contact_segment_ids($1)) ORDER BY s.name $$;

COMMENT ON FUNCTION segments.segment_is_member(text, text) IS
    'Is this contact in this segment (by id or name)?  One index probe; false for unknown segments.';
COMMENT ON FUNCTION segments.filter_restricted(text, uuid[]) IS
    'Gating: true when the list is NULL or empty, or the contact is in a listed segment; fails closed.';
COMMENT ON FUNCTION segments.contact_segments(text) IS
    'The segments this contact is in.';
-- segments install script, part 5: change capture, the worker's queue,
-- waiting and watching.  The background worker itself needs
-- shared_preload_libraries = 'segments'; see docs/worker.md.

-- Contact changes committed on the source, waiting for the worker.  The
-- capture trigger inserts here in the writing transaction; the worker
-- deletes a batch in the transaction that applies it.
CREATE SEQUENCE segments.change_queue_id_seq;
CREATE TABLE segments.change_queue (
    id          bigint PRIMARY KEY DEFAULT nextval('segments.change_queue_id_seq'),
    contact     text,           -- the contact key as text; NULL: every contact (TRUNCATE)
    enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp()
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000,
        autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 10000);
ALTER SEQUENCE segments.change_queue_id_seq OWNED BY segments.change_queue.id;
COMMENT ON TABLE segments.change_queue IS
    'Contact changes committed on the source and not yet applied to membership by the worker.';

-- Change capture on the source: AFTER row trigger for INSERT, UPDATE and
-- DELETE (COPY fires it too), AFTER TRUNCATE statement trigger.
CREATE FUNCTION segments._capture() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'segments_capture';
COMMENT ON FUNCTION segments._capture() IS
    'Internal: queues the keys of changed contacts for the worker (trigger on the source).';

-- Puts the capture triggers on the source (NULL: nowhere) and removes them
-- from any other table; empties the queue, since configure() re-evaluates
-- everything right after.
CREATE FUNCTION segments._install_capture(source regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT t.tgrelid::regclass AS rel, t.tgname
               FROM pg_trigger t
              WHERE t.tgfoid = 'segments._capture()'::regprocedure
                AND t.tgparentid = 0
                AND t.tgrelid IS DISTINCT FROM source::oid
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', r.tgname, r.rel);
    END LOOP;
    IF source IS NOT NULL THEN
        IF NOT EXISTS (SELECT 1 FROM pg_trigger t
                        WHERE t.tgrelid = source AND t.tgname = 'segments_capture') THEN
            EXECUTE format('CREATE TRIGGER segments_capture'
                           ' AFTER INSERT OR UPDATE OR DELETE ON %s'
                           ' FOR EACH ROW EXECUTE FUNCTION segments._capture()', source);
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_trigger t
                        WHERE t.tgrelid = source AND t.tgname = 'segments_capture_truncate') THEN
            EXECUTE format('CREATE TRIGGER segments_capture_truncate'
                           ' AFTER TRUNCATE ON %s'
                           ' FOR EACH STATEMENT EXECUTE FUNCTION segments._capture()', source);
        END IF;
    END IF;
    DELETE FROM segments.change_queue;
    PERFORM segments._notify_worker();
END
$$;
COMMENT ON FUNCTION segments._install_capture(regclass) IS
    'Internal: installs change capture on the source table (and removes it from any other).';

-- DROP EXTENSION would be blocked by the triggers on the source, which
-- depend on segments._capture(): remove them first.
CREATE FUNCTION segments._capture_drop() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'segments_capture_drop';
COMMENT ON FUNCTION segments._capture_drop() IS
    'Internal: removes the capture triggers before DROP EXTENSION segments.';
CREATE EVENT TRIGGER segments_capture_drop ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION')
    EXECUTE FUNCTION segments._capture_drop();

-- Wakes this database's worker when the calling transaction commits (or
-- has the launcher start one); a no-op without the preload.
CREATE FUNCTION segments._notify_worker() RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'segments_notify_worker';
COMMENT ON FUNCTION segments._notify_worker() IS
    'Internal: wakes the background worker of this database at commit.';

CREATE FUNCTION segments.wait(timeout interval DEFAULT '10 s')
RETURNS boolean
LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'segments_wait';
COMMENT ON FUNCTION segments.wait(interval) IS
    'Waits until every contact change and segment evaluation requested before the call is reflected in membership; false on timeout.';

CREATE FUNCTION segments._worker_status(
    OUT database_oid oid, OUT pid integer, OUT state text, OUT started_at timestamptz,
    OUT last_batch_at timestamptz, OUT last_batch_size bigint, OUT changes_applied bigint,
    OUT segments_evaluated bigint, OUT last_error text)
RETURNS SETOF record
LANGUAGE c AS 'MODULE_PATHNAME', 'segments_worker_status';
COMMENT ON FUNCTION segments._worker_status() IS
    'Internal: the background workers of every database, from shared memory (empty without the preload).';

CREATE VIEW segments.worker AS
    SELECT w.pid,
           pg_catalog.current_database()::name AS database,
           coalesce(w.state, CASE WHEN pg_catalog.pg_is_in_recovery() THEN 'standby'
                                  ELSE 'not running' END) AS state,
           q.pending_changes,
           st.pending_segments,
           CASE WHEN q.oldest IS NULL THEN interval '0'
                ELSE pg_catalog.clock_timestamp() - q.oldest END AS lag,
           w.started_at, w.last_batch_at, w.last_batch_size,
           w.changes_applied, w.segments_evaluated, w.last_error
      FROM (SELECT count(*) AS pending_changes, min(c.enqueued_at) AS oldest
              FROM segments.change_queue c) q
     CROSS JOIN (SELECT count(*) AS pending_segments
                   FROM segments.segment_state s
                  WHERE s.state IN ('pending', 'evaluating')) st
      LEFT JOIN segments._worker_status() w
             ON w.database_oid = (SELECT d.oid FROM pg_catalog.pg_database d
                                   WHERE d.datname = pg_catalog.current_database());
COMMENT ON VIEW segments.worker IS
    'The background worker of this database: pid, state, queued contact changes, pending segments and lag (age of the oldest queued change).';
-- Privileges on the worker view: sql/install/10_worker_grants.sql (the
-- roles are created by 09_roles.sql).

-- A worker for this database starts once CREATE EXTENSION commits.
SELECT segments._notify_worker();
-- segments install script, last part: roles and privileges.
-- Roles are cluster-wide: create them only when a previous installation (in
-- another database of the cluster) has not.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'segments_read') THEN
        CREATE ROLE segments_read NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'segments_write') THEN
        CREATE ROLE segments_write NOLOGIN;
    END IF;
    IF NOT pg_catalog.pg_has_role('segments_write', 'segments_read', 'MEMBER') THEN
        GRANT segments_read TO segments_write;
    END IF;
END
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA segments FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA segments FROM PUBLIC;
GRANT USAGE ON SCHEMA segments TO segments_read, segments_write;

-- Used inside the views, which check function privileges as the caller.
GRANT EXECUTE ON FUNCTION segments._tenant_visible(text), segments._member_rows(bytea),
    segments._member_segs(bytea) TO PUBLIC;

-- Reading interface.
GRANT SELECT ON segments.segments, segments.status TO segments_read;
GRANT EXECUTE ON FUNCTION
    segments._segment_num(uuid), segments._segment_num(text),
    segments.segment_is_member(uuid, uuid), segments.segment_is_member(uuid, text),
    segments.segment_is_member(bigint, uuid), segments.segment_is_member(bigint, text),
    segments.segment_is_member(integer, uuid), segments.segment_is_member(integer, text),
    segments.segment_is_member(text, uuid), segments.segment_is_member(text, text),
    segments.filter_restricted(uuid, uuid[]), segments.filter_restricted(bigint, uuid[]),
    segments.filter_restricted(integer, uuid[]), segments.filter_restricted(text, uuid[]),
    segments._contact_segment_ids(uuid), segments._contact_segment_ids(bigint),
    segments._contact_segment_ids(integer), segments._contact_segment_ids(text),
    segments.contact_segments(uuid), segments.contact_segments(bigint),
    segments.contact_segments(integer), segments.contact_segments(text),
    segments.wait(interval)
    TO segments_read;

-- Management interface.
GRANT EXECUTE ON FUNCTION
    segments.create_segment(text, jsonb, text, text),
    segments.update_segment(uuid, text, jsonb, text),
    segments.drop_segment(uuid),
    segments.refresh(uuid),
    segments.refresh_contacts(anyarray),
    segments.compile(jsonb),
    segments.schedule(uuid, interval)
    TO segments_write;
-- segments install script, after the roles: watching the worker
-- (segments.worker) is part of the reading interface.
GRANT SELECT ON segments.worker TO segments_read;
GRANT EXECUTE ON FUNCTION segments._worker_status() TO segments_read;

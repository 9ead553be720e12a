-- segments install script, part 2: configure() and the membership storage it builds.

-- Reading the compact membership of one contact (src/member_codec.c): its
-- segment numbers, for the GIN index, and its (number, since) rows.
CREATE FUNCTION segments._member_segs(data bytea)
RETURNS integer[]
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'segments_member_segs';
CREATE FUNCTION segments._member_without(data bytea, nums integer[])
RETURNS bytea
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'segments_member_without';
COMMENT ON FUNCTION segments._member_without(bytea, integer[]) IS
    'Internal: stored membership without these segment numbers (NULL when none is left).';
CREATE FUNCTION segments._member_rows(data bytea, OUT num integer, OUT since timestamptz)
RETURNS SETOF record
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE ROWS 20
AS 'MODULE_PATHNAME', 'segments_member_rows';

-- Makes an object created outside the extension's scripts part of the
-- extension (so DROP EXTENSION removes it), unless it already is: objects
-- created during CREATE or ALTER EXTENSION are members by themselves.
CREATE FUNCTION segments._extension_add(p_catalog regclass, p_objid oid, p_object text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = p_catalog AND d.objid = p_objid
                      AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e') THEN
        EXECUTE 'ALTER EXTENSION segments ADD ' || p_object;
    END IF;
END
$$;
COMMENT ON FUNCTION segments._extension_add(regclass, oid, text) IS
    'Internal: adds an object made by configure() to the extension, unless it is a member already.';

-- Membership storage depends on the type of the contact key, so configure()
-- (re)creates it: one row per contact holding the sorted numbers of the
-- segments it belongs to and, aligned, since when (seconds since 2000-01-01
-- UTC), in a compact bytea, and the contact's tenant (the tenant column's
-- text form), so that readers show a tenant session only its own contacts
-- without reading the source.  The objects are added to the extension so DROP
-- EXTENSION removes them.
CREATE FUNCTION segments._build_storage(p_key_type regtype)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF to_regclass('segments.member') IS NOT NULL THEN
        -- membership history is kept per key type (08_history.sql)
        PERFORM segments._drop_history(p_key_type);
        EXECUTE 'ALTER EXTENSION segments DROP VIEW segments.membership';
        EXECUTE 'ALTER EXTENSION segments DROP FUNCTION segments.segment_members(uuid)';
        EXECUTE 'ALTER EXTENSION segments DROP FUNCTION segments.segment_members(text)';
        -- on Citus it is not a member of the extension (11_citus.sql)
        IF EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = 'segments.member'::regclass
                      AND d.deptype = 'e') THEN
            EXECUTE 'ALTER EXTENSION segments DROP TABLE segments.member';
        END IF;
        DROP VIEW segments.membership;
        DROP FUNCTION segments.segment_members(uuid);
        DROP FUNCTION segments.segment_members(text);
        DROP TABLE segments.member;
    END IF;

    EXECUTE format($f$
        CREATE TABLE segments.member (
            contact_id %s PRIMARY KEY,
            data       bytea NOT NULL,
            tenant     text
        )$f$, p_key_type);
    CREATE INDEX member_segs_idx ON segments.member
        USING gin (segments._member_segs(data));
    -- a tenant's members of a global segment, and their count
    -- partial: without a tenant column no row has one, and no update pays for it
    CREATE INDEX member_tenant_idx ON segments.member (tenant) WHERE tenant IS NOT NULL;
    COMMENT ON TABLE segments.member IS
        'Stored membership: per contact, its segments and since when, in a compact form (see src/member_codec.c). Read it through segments.membership.';

    REVOKE ALL ON segments.member FROM PUBLIC;
    PERFORM segments._extension_add('pg_class', 'segments.member'::regclass,
                                    'TABLE segments.member');

    PERFORM segments._build_readers(p_key_type);
END
$$;
COMMENT ON FUNCTION segments._build_storage(regtype) IS
    'Internal: (re)creates the membership storage for a contact key type.';

-- The reading objects over the stored membership: the view for joins and
-- segment_members(), whose result type is the key type.  Upgrades call it
-- too (sql/upgrade/lib/rebuild_configured.sql), with the objects already in
-- the extension; CREATE OR REPLACE, since a user's object may depend on them.
CREATE FUNCTION segments._build_readers(p_key_type regtype)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_arg text;
BEGIN
    -- the view's shape and what the planner knows of it: 04_read.sql
    PERFORM segments._build_membership_view();

    -- A tenant session gets only its tenant's contacts (of a global segment:
    -- through the tenant index); the segment number is NULL, and so no row
    -- comes back, for segments the session may not see.  By name, an unknown
    -- or ambiguous segment is an error (a typo must not read as "no members").
    FOREACH v_arg IN ARRAY ARRAY['uuid', 'text'] LOOP
        EXECUTE format($f$
            CREATE OR REPLACE FUNCTION segments.segment_members(segment %2$s)
            RETURNS SETOF %1$s
            LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
            SET search_path = pg_catalog, pg_temp
            AS $b$
            DECLARE
                v_num    integer := segments._segment_num(%3$s);
                v_tenant text := segments._contact_tenant();
            BEGIN
                IF v_tenant IS NULL THEN
                    RETURN QUERY SELECT m.contact_id FROM segments.member m
                     WHERE segments._member_segs(m.data) OPERATOR(pg_catalog.@>) ARRAY[v_num];
                ELSE
                    RETURN QUERY SELECT m.contact_id FROM segments.member m
                     WHERE segments._member_segs(m.data) OPERATOR(pg_catalog.@>) ARRAY[v_num]
                       AND m.tenant OPERATOR(pg_catalog.=) v_tenant;
                END IF;
            END
            $b$
            $f$,
            p_key_type, v_arg,
            CASE v_arg WHEN 'text' THEN 'segments._segment_id(segment)' ELSE 'segment' END);
    END LOOP;

    COMMENT ON FUNCTION segments.segment_members(uuid) IS
        'Contacts in a segment (by id), from the GIN index on stored membership; none for an unknown id.';
    COMMENT ON FUNCTION segments.segment_members(text) IS
        'Contacts in a segment (by name or id as text, the session''s tenant first); an error for an unknown segment.';

    -- Privileges first, then membership of the extension: ALTER EXTENSION
    -- ADD records them as the objects' initial privileges (pg_init_privs),
    -- so pg_dump writes no GRANT for objects a restore rebuilds later.
    REVOKE ALL ON FUNCTION segments.segment_members(uuid) FROM PUBLIC;
    REVOKE ALL ON FUNCTION segments.segment_members(text) FROM PUBLIC;
    GRANT SELECT ON segments.membership TO segments_read;
    GRANT EXECUTE ON FUNCTION segments.segment_members(uuid) TO segments_read;
    GRANT EXECUTE ON FUNCTION segments.segment_members(text) TO segments_read;

    PERFORM segments._extension_add('pg_class', 'segments.membership'::regclass,
                                    'VIEW segments.membership');
    PERFORM segments._extension_add('pg_proc', 'segments.segment_members(uuid)'::regprocedure,
                                    'FUNCTION segments.segment_members(uuid)');
    PERFORM segments._extension_add('pg_proc', 'segments.segment_members(text)'::regprocedure,
                                    'FUNCTION segments.segment_members(text)');

    -- membership history (08_history.sql)
    PERFORM segments._build_history(p_key_type);
END
$$;
COMMENT ON FUNCTION segments._build_readers(regtype) IS
    'Internal: (re)creates segments.membership and segment_members() for a contact key type.';

CREATE FUNCTION segments.configure(source regclass, key_column name DEFAULT NULL,
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
    v_citus    boolean;
BEGIN
    IF NOT pg_catalog.pg_has_role((SELECT e.extowner FROM pg_extension e
                                    WHERE e.extname = 'segments'), 'USAGE') THEN
        RAISE EXCEPTION 'permission denied to configure segments'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Only the owner of the extension may call segments.configure().';
    END IF;
    -- membership changes made by this call are recorded as its own (08_history.sql)
    PERFORM segments._history_cause('configure');
    -- configure(NULL): capture off, membership cleared, definitions kept
    IF source IS NULL AND key_column IS NULL AND tenant_column IS NULL
       AND traits_column IS NULL THEN
        DELETE FROM segments.config;
        PERFORM segments._install_capture(NULL);
        IF to_regclass('segments.member') IS NOT NULL THEN
            PERFORM segments._lock_member_writers();  -- before its snapshot
            DELETE FROM segments.member;
        END IF;
        UPDATE segments.segment_state
           SET state = 'pending', member_count = 0, requested_at = clock_timestamp(),
               last_error = NULL;
        RETURN;
    END IF;
    IF source IS NULL OR key_column IS NULL THEN
        RAISE EXCEPTION 'source and key_column must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Call segments.configure(source => ''public.contacts'', key_column => ''id''), or segments.configure(NULL) to unconfigure.';
    END IF;
    SELECT c.relkind INTO v_relkind FROM pg_class c WHERE c.oid = source;
    IF v_relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'source "%" is not a table', source
            USING ERRCODE = 'wrong_object_type';
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
    IF segments._citus_table(source) THEN
        PERFORM segments._citus_check(source, key_column);   -- 11_citus.sql
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
    -- Citus: a distributed source keeps membership colocated (11_citus.sql)
    v_citus := segments._citus_distributed(source);
    IF to_regclass('segments.member') IS NULL
       OR (SELECT c.key_type FROM segments.config c) IS DISTINCT FROM v_key_type
       OR NOT segments._citus_storage_fits(source) THEN
        IF v_citus THEN     -- built here, then distributed by _citus_configure()
            PERFORM pg_catalog.set_config('citus.enable_ddl_propagation', 'off', true);
        END IF;
        PERFORM segments._build_storage(v_key_type);
    END IF;

    INSERT INTO segments.config AS c (singleton, source, key_column, key_type,
                                      tenant_column, traits_column, configured_at)
    VALUES (true, source, key_column, v_key_type, tenant_column, traits_column, now())
    ON CONFLICT (singleton) DO UPDATE
       SET source = EXCLUDED.source, key_column = EXCLUDED.key_column,
           key_type = EXCLUDED.key_type, tenant_column = EXCLUDED.tenant_column,
           traits_column = EXCLUDED.traits_column, configured_at = EXCLUDED.configured_at;

    IF v_citus THEN
        PERFORM segments._citus_configure(source, key_column, tenant_column);
    END IF;
    -- change capture for the worker: on the new source, off the old one
    PERFORM segments._install_capture(source);

    UPDATE segments.segment_state
       SET state = 'pending', requested_at = clock_timestamp(), attempts = 0, retry_at = NULL;
    -- Citus: the workers see the distributed membership once this commits;
    -- the coordinator's worker (or refresh()) evaluates then
    IF NOT v_citus THEN
        PERFORM segments.refresh();
    END IF;
END
$$;
COMMENT ON FUNCTION segments.configure(regclass, name, name, name) IS
    'Points segments at the contact source table and re-evaluates every segment; configure(NULL) unconfigures it.';

-- segments install script, part 3: managing segments (role segments_write).
-- Management functions run as the extension owner so that segments_write
-- needs no privilege on the catalog tables; they only ever touch segments
-- the session's tenant may see.  Those that save a definition are SECURITY
-- INVOKER C entry points (src/privilege.c): they note the calling role, then
-- run segments._<name>() as the owner, and the definition is checked
-- against the caller's column privileges.  Only the owner may execute the
-- internal functions, so the check cannot be skipped.

-- Validates a definition; returns {"refs": {as written: uuid}, "depends_on":
-- [uuid...], "uses_time": bool}.  Raises the rule errors of docs/rules.md.
CREATE FUNCTION segments._validate(definition jsonb, tenant text, self uuid)
RETURNS jsonb
LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'segments_validate';

-- SECURITY INVOKER: the definition is checked against the caller's column
-- privileges (it reads the catalog directly, needing no privilege on it).
CREATE FUNCTION segments.compile(definition jsonb)
RETURNS text
LANGUAGE c STABLE STRICT SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'segments_compile';
COMMENT ON FUNCTION segments.compile(jsonb) IS
    'Validates a segment definition and shows what its rules compile to.';

-- The segment with this id that the session may change, or an error: it
-- must be visible (a segment of another tenant "does not exist"), and a
-- global segment is changed only by an admin without a tenant.
CREATE FUNCTION segments._get_segment(p_segment uuid)
RETURNS segments.segment
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r segments.segment;
    v_session_tenant text := segments._manage_tenant();
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
    IF r.tenant IS NULL AND v_session_tenant IS NOT NULL THEN
        RAISE EXCEPTION 'permission denied to change global segment "%"', r.name
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('This session is limited to tenant "%s" by segments.tenant.', v_session_tenant),
                  HINT = 'Global segments are changed by members of segments_admin without segments.tenant.';
    END IF;
    RETURN r;
END
$$;

-- The id of the visible segment given as text: its id, or its name looked
-- up in the session's tenant first, then among global segments (a session
-- without a tenant: the global segment, else the only one of that name).
-- Management functions and segment_members() take a segment so.  SECURITY
-- DEFINER: it reads the catalog for callers who may not, and returns only
-- what the session may see.
CREATE FUNCTION segments._segment_id(p_segment text)
RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_tenant text := nullif(current_setting('segments.tenant', true), '');
    v_id     uuid;
    v_rank   integer;
    r        record;
BEGIN
    IF p_segment IS NULL THEN
        RAISE EXCEPTION 'segment must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass the segment''s id or name, as listed in segments.segments.';
    END IF;
    -- an id (checked by shape first: names need no subtransaction)
    IF p_segment ~ '^\s*\{?[0-9a-fA-F]{4}(-?[0-9a-fA-F]{4}){7}\}?\s*$' THEN
        BEGIN
            v_id := p_segment::uuid;
        EXCEPTION WHEN invalid_text_representation THEN
            v_id := NULL;
        END;
        IF v_id IS NOT NULL AND EXISTS (SELECT 1 FROM segments.segment s
                                         WHERE s.id = v_id AND segments._tenant_visible(s.tenant)) THEN
            RETURN v_id;
        END IF;
        -- not a visible id: perhaps a segment named so
        IF v_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM segments.segment s
                                             WHERE s.name = p_segment) THEN
            RAISE EXCEPTION 'segment "%" does not exist', p_segment
                USING ERRCODE = 'undefined_object';
        END IF;
        v_id := NULL;
    END IF;
    -- a name: the session's tenant, then global, then any visible tenant
    FOR r IN SELECT s.id,
                    CASE WHEN s.tenant IS NOT DISTINCT FROM v_tenant THEN 0
                         WHEN s.tenant IS NULL THEN 1 ELSE 2 END AS rank
               FROM segments.segment s
              WHERE s.name = p_segment AND segments._tenant_visible(s.tenant)
              ORDER BY 2
              LIMIT 2
    LOOP
        IF v_id IS NULL THEN
            v_id := r.id;
            v_rank := r.rank;
        ELSIF r.rank = v_rank THEN
            RAISE EXCEPTION 'segment name "%" is ambiguous', p_segment
                USING ERRCODE = 'ambiguous_parameter',
                      DETAIL = 'Several tenants have a segment of this name.',
                      HINT = 'Pass the segment''s id, or set segments.tenant to one tenant.';
        END IF;
    END LOOP;
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'segment "%" does not exist', p_segment
            USING ERRCODE = 'undefined_object',
                  HINT = 'Names are case-sensitive; segments.segments lists the segments this session may see.';
    END IF;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION segments._segment_id(text) IS
    'Internal: the id of a visible segment given by id or name (session tenant first, then global); an error when there is none.';

-- The same for the management functions: a session that may manage no
-- segment (no tenant, not an admin) is told so before any name is looked up.
CREATE FUNCTION segments._managed_segment_id(p_segment text)
RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM segments._manage_tenant();
    RETURN segments._segment_id(p_segment);
END
$$;
COMMENT ON FUNCTION segments._managed_segment_id(text) IS
    'Internal: _segment_id() for the management functions, refusing a session that may manage nothing.';

-- Internal: the work of create_segment(), run as the owner.
CREATE FUNCTION segments._create_segment(name text, definition jsonb,
                                         description text, tenant text)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- fails closed: a session without a tenant must be an admin
    v_session_tenant text := segments._manage_tenant();
    v_tenant text := coalesce(segments._canonical_tenant(tenant), v_session_tenant);
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
                WHERE s.name = _create_segment.name
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
    -- its pending state row: trigger segment_added
    PERFORM segments._notify_worker();
    RETURN v_id;
END
$$;
CREATE FUNCTION segments.create_segment(name text, definition jsonb,
                                        description text DEFAULT NULL,
                                        tenant text DEFAULT NULL)
RETURNS uuid
LANGUAGE c SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'segments_manage_as_owner';
COMMENT ON FUNCTION segments.create_segment(text, jsonb, text, text) IS
    'Creates a segment from a JSON definition; it is evaluated by the worker or segments.refresh().';

-- Internal: the work of update_segment(), run as the owner.
CREATE FUNCTION segments._update_segment(segment uuid, name text,
                                         definition jsonb, description text)
RETURNS void
LANGUAGE plpgsql
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
         WHERE s.name = _update_segment.name AND s.tenant IS NOT DISTINCT FROM r.tenant) THEN
        RAISE EXCEPTION 'segment "%" already exists', name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Segment names are unique within a tenant; choose another name.';
    END IF;

    IF definition IS NOT NULL THEN
        v_info := segments._validate(definition, r.tenant, r.id);
        UPDATE segments.segment s
           SET definition = _update_segment.definition,
               refs = v_info -> 'refs',
               depends_on = ARRAY(SELECT jsonb_array_elements_text(v_info -> 'depends_on'))::uuid[],
               uses_time = (v_info ->> 'uses_time')::boolean
         WHERE s.id = r.id;
        UPDATE segments.segment_state st
           SET state = 'pending', requested_at = clock_timestamp(), attempts = 0, retry_at = NULL
         WHERE st.segment_id = r.id;
        PERFORM segments._notify_worker();
    END IF;

    UPDATE segments.segment s
       SET name = coalesce(_update_segment.name, s.name),
           description = coalesce(_update_segment.description, s.description),
           updated_at = now()
     WHERE s.id = r.id;
END
$$;
CREATE FUNCTION segments.update_segment(segment uuid, name text DEFAULT NULL,
                                        definition jsonb DEFAULT NULL,
                                        description text DEFAULT NULL)
RETURNS void
LANGUAGE c SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'segments_manage_as_owner';
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
    -- a shorter schedule would keep the worker re-evaluating one segment
    -- for the others; contact changes are applied within seconds anyway
    IF every IS NOT NULL AND every < interval '10 seconds' THEN
        RAISE EXCEPTION 'schedule interval "%" is shorter than 10 seconds', every
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Contact changes reach membership without a schedule; a schedule re-evaluates the whole segment.',
                  HINT = 'Pass an interval of at least ''10 seconds'', such as ''15 minutes'', or NULL to clear the schedule.';
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

CREATE FUNCTION segments.verify(segment uuid DEFAULT NULL,
    OUT segment_id uuid, OUT name text, OUT state text, OUT missing bigint, OUT extra bigint,
    OUT missing_sample text[], OUT extra_sample text[])
RETURNS SETOF record
LANGUAGE c STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'segments_verify';
COMMENT ON FUNCTION segments.verify(uuid) IS
    'Compares stored membership with a fresh evaluation, writing nothing: per segment, the contacts missing from membership and the extra ones, with a few sample keys.';

-- The same management functions taking the segment by name (or by id as
-- text): an untyped literal such as drop_segment('Churn risk') resolves to
-- these, and a uuid-typed value to the functions above.  They run as the
-- caller (SECURITY INVOKER), so that the functions above see the calling
-- role (update_segment checks a new definition against its privileges).
CREATE FUNCTION segments.update_segment(segment text, name text DEFAULT NULL,
                                        definition jsonb DEFAULT NULL,
                                        description text DEFAULT NULL)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT segments.update_segment(segments._managed_segment_id($1), $2, $3, $4) $$;
COMMENT ON FUNCTION segments.update_segment(text, text, jsonb, text) IS
    'Renames, redescribes or redefines a segment given by name or id; NULL arguments keep the current value.';

CREATE FUNCTION segments.drop_segment(segment text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT segments.drop_segment(segments._managed_segment_id($1)) $$;
COMMENT ON FUNCTION segments.drop_segment(text) IS
    'Drops a segment given by name or id; refused while other segments reference it.';

CREATE FUNCTION segments.schedule(segment text, every interval)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT segments.schedule(segments._managed_segment_id($1), $2) $$;
COMMENT ON FUNCTION segments.schedule(text, interval) IS
    'Re-evaluates a segment given by name or id periodically; NULL clears the schedule.';

-- No default here: refresh() with no argument stays the uuid function.
CREATE FUNCTION segments.refresh(segment text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT segments.refresh(CASE WHEN $1 IS NOT NULL THEN segments._managed_segment_id($1) END) $$;
COMMENT ON FUNCTION segments.refresh(text) IS
    'Synchronous full re-evaluation of a segment given by name or id (and those that reference it); NULL: all.';

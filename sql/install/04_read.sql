-- segments install script, part 4: reading and gating (role segments_read).
-- Read functions never write: they work on a hot standby and in read-only
-- transactions.  Each takes the contact as uuid, bigint, integer, smallint
-- (what drivers bind small numbers as) or text;
-- an untyped literal or parameter resolves to the text variant.

-- How many of the session's tenant's contacts a global segment holds: what
-- a tenant session sees as its member count (segment_state counts every
-- tenant's).  Read through the tenant index of segments.member, which
-- configure() creates (so plpgsql: the table may not exist yet).
CREATE FUNCTION segments._tenant_member_count(num integer)
RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_tenant text := segments._contact_tenant();
    v_count  bigint;
BEGIN
    IF v_tenant IS NULL OR to_regclass('segments.member') IS NULL THEN
        RETURN 0;
    END IF;
    SELECT count(*) INTO v_count FROM segments.member m
     WHERE m.tenant OPERATOR(pg_catalog.=) v_tenant
       AND segments._member_segs(m.data) OPERATOR(pg_catalog.@>) ARRAY[num];
    RETURN v_count;
END
$$;
COMMENT ON FUNCTION segments._tenant_member_count(integer) IS
    'Internal: how many of the session''s tenant''s contacts are in the segment numbered num.';

-- The catalog views are security barriers: a function in a caller's WHERE
-- clause sees only rows the session may see.  A tenant session's member
-- count of a global segment counts its own tenant's contacts only.
CREATE VIEW segments.segments WITH (security_barrier) AS
    SELECT s.id, s.tenant, s.name, s.description, s.definition,
           s.created_at, s.updated_at,
           CASE WHEN s.tenant IS NULL AND segments._contact_tenant() IS NOT NULL
                THEN segments._tenant_member_count(s.num)
                ELSE coalesce(st.member_count, 0) END AS member_count,
           st.evaluated_at,
           coalesce(st.state, 'pending') AS status
      FROM segments.segment s
      LEFT JOIN segments.segment_state st ON st.segment_id = s.id
     WHERE segments._tenant_visible(s.tenant);
COMMENT ON VIEW segments.segments IS
    'The segments this session may see, with their member counts and status.';

CREATE VIEW segments.status WITH (security_barrier) AS
    SELECT s.id AS segment_id, s.tenant, s.name,
           coalesce(st.state, 'pending') AS state,
           CASE WHEN s.tenant IS NULL AND segments._contact_tenant() IS NOT NULL
                THEN segments._tenant_member_count(s.num)
                ELSE coalesce(st.member_count, 0) END AS member_count,
           st.evaluated_at, st.last_duration, st.last_error, st.last_error_at,
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
CREATE FUNCTION segments.segment_is_member(contact smallint, segment uuid) RETURNS boolean
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_segment_is_member';
CREATE FUNCTION segments.segment_is_member(contact smallint, segment text) RETURNS boolean
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
CREATE FUNCTION segments.filter_restricted(contact smallint, restricted_to uuid[]) RETURNS boolean
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
CREATE FUNCTION segments._contact_segment_ids(contact smallint) RETURNS uuid[]
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_contact_segment_ids';
CREATE FUNCTION segments._contact_segment_ids(contact text) RETURNS uuid[]
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_contact_segment_ids';

CREATE FUNCTION segments.contact_segments(contact uuid) RETURNS SETOF segments.segments
    LANGUAGE sql STABLE AS
$$ SELECT s.* FROM pg_catalog.unnest(segments._contact_segment_ids($1)) AS c(id)
    CROSS JOIN LATERAL (SELECT v.* FROM segments.segments v
                         WHERE v.id OPERATOR(pg_catalog.=) c.id) s
    ORDER BY s.name $$;
CREATE FUNCTION segments.contact_segments(contact bigint) RETURNS SETOF segments.segments
    LANGUAGE sql STABLE AS
$$ SELECT s.* FROM pg_catalog.unnest(segments._contact_segment_ids($1)) AS c(id)
    CROSS JOIN LATERAL (SELECT v.* FROM segments.segments v
                         WHERE v.id OPERATOR(pg_catalog.=) c.id) s
    ORDER BY s.name $$;
CREATE FUNCTION segments.contact_segments(contact integer) RETURNS SETOF segments.segments
    LANGUAGE sql STABLE AS
$$ SELECT s.* FROM pg_catalog.unnest(segments._contact_segment_ids($1)) AS c(id)
    CROSS JOIN LATERAL (SELECT v.* FROM segments.segments v
                         WHERE v.id OPERATOR(pg_catalog.=) c.id) s
    ORDER BY s.name $$;
CREATE FUNCTION segments.contact_segments(contact smallint) RETURNS SETOF segments.segments
    LANGUAGE sql STABLE AS
$$ SELECT s.* FROM pg_catalog.unnest(segments._contact_segment_ids($1)) AS c(id)
    CROSS JOIN LATERAL (SELECT v.* FROM segments.segments v
                         WHERE v.id OPERATOR(pg_catalog.=) c.id) s
    ORDER BY s.name $$;
CREATE FUNCTION segments.contact_segments(contact text) RETURNS SETOF segments.segments
    LANGUAGE sql STABLE AS
$$ SELECT s.* FROM pg_catalog.unnest(segments._contact_segment_ids($1)) AS c(id)
    CROSS JOIN LATERAL (SELECT v.* FROM segments.segments v
                         WHERE v.id OPERATOR(pg_catalog.=) c.id) s
    ORDER BY s.name $$;

COMMENT ON FUNCTION segments.segment_is_member(text, text) IS
    'Is this contact in this segment (by id or name)?  One index probe; false for unknown segments.';
COMMENT ON FUNCTION segments.filter_restricted(text, uuid[]) IS
    'Gating: true when the list is NULL or empty, or the contact is in a listed segment; fails closed.';
COMMENT ON FUNCTION segments.contact_segments(text) IS
    'The segments this contact is in.';

-- segments.membership: one row per (segment, contact).  The segments are
-- joined to the stored rows by _member_in(_member_segs(data), num), which
-- the planner reads as the GIN index condition _member_segs(data) @>
-- ARRAY[num] with the segment's member count as its estimate
-- (src/membership_plan.c): one segment reads its members through the
-- index, and no stored row is unnested; since is read per pair.
CREATE FUNCTION segments._member_in_support(internal)
RETURNS internal
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'segments_member_in_support';
COMMENT ON FUNCTION segments._member_in_support(internal) IS
    'Internal: planner support of _member_in() (GIN index condition and selectivity).';
CREATE FUNCTION segments._member_in(segs integer[], num integer)
RETURNS boolean
LANGUAGE c IMMUTABLE STRICT LEAKPROOF PARALLEL SAFE SUPPORT segments._member_in_support
AS 'MODULE_PATHNAME', 'segments_member_in';
COMMENT ON FUNCTION segments._member_in(integer[], integer) IS
    'Internal: is num among the sorted segment numbers segs (the membership view''s join)?';
CREATE FUNCTION segments._member_since(data bytea, num integer)
RETURNS timestamptz
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'segments_member_since';
COMMENT ON FUNCTION segments._member_since(bytea, integer) IS
    'Internal: since when the stored row''s contact is in the segment numbered num (NULL: it is not).';

-- The join runs before the view's tenancy conditions when it is the index
-- condition (the planner hook of src/membership_plan.c turns those into
-- security quals): both functions in it are LEAKPROOF, which they are, no
-- input making them raise an error (_member_segs reads malformed data as
-- no membership).
ALTER FUNCTION segments._member_segs(bytea) LEAKPROOF;

-- (Re)creates the view over segments.member, from _build_readers().
CREATE FUNCTION segments._build_membership_view()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    CREATE OR REPLACE VIEW segments.membership WITH (security_barrier) AS
        SELECT s.id AS segment_id,
               m.contact_id,
               segments._member_since(m.data, s.num) AS since
          FROM segments.segment s
          JOIN segments.member m
            ON segments._member_in(segments._member_segs(m.data), s.num)
         WHERE segments._contact_visible(m.tenant)
           AND segments._tenant_visible(s.tenant);
    COMMENT ON VIEW segments.membership IS
        'One row per (segment, contact) membership, for joins; since is when the contact entered the segment.';
END
$$;
COMMENT ON FUNCTION segments._build_membership_view() IS
    'Internal: (re)creates segments.membership over segments.member.';

-- The tenancy conditions of the views: their selectivity for the session
-- (src/membership_plan.c), so that the planner's estimate of a segment's
-- members is its member count, not a third of it.
CREATE FUNCTION segments._visible_support(internal)
RETURNS internal
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'segments_visible_support';
COMMENT ON FUNCTION segments._visible_support(internal) IS
    'Internal: planner support of _contact_visible() and _tenant_visible() (selectivity for the session).';
ALTER FUNCTION segments._contact_visible(text) SUPPORT segments._visible_support;
ALTER FUNCTION segments._tenant_visible(text) SUPPORT segments._visible_support;

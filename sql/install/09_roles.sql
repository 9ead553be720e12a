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
    -- sees every tenant when it sets none, creates global segments
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'segments_admin') THEN
        CREATE ROLE segments_admin NOLOGIN;
    END IF;
    IF NOT pg_catalog.pg_has_role('segments_admin', 'segments_write', 'MEMBER') THEN
        GRANT segments_write TO segments_admin;
    END IF;
END
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA segments FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA segments FROM PUBLIC;
GRANT USAGE ON SCHEMA segments TO segments_read, segments_write;

-- Used inside the views, which check function privileges as the caller.
GRANT EXECUTE ON FUNCTION segments._tenant_visible(text), segments._member_rows(bytea),
    segments._member_segs(bytea), segments._member_in(integer[], integer),
    segments._member_since(bytea, integer), segments._contact_visible(text),
    segments._contact_tenant(), segments._session_tenant(), segments._is_admin(),
    segments._history_rows(bytea, bytea), segments._history_kept(),
    segments._history_contacts(anyelement, text, bytea, bytea, anyarray, text[], bytea[], bytea[]) TO PUBLIC;

-- Reading interface.
GRANT SELECT ON segments.segments, segments.status TO segments_read;
GRANT EXECUTE ON FUNCTION
    segments._tenant_member_count(integer),
    segments._segment_num(uuid), segments._segment_num(text),
    segments.segment_is_member(uuid, uuid), segments.segment_is_member(uuid, text),
    segments.segment_is_member(bigint, uuid), segments.segment_is_member(bigint, text),
    segments.segment_is_member(integer, uuid), segments.segment_is_member(integer, text),
    segments.segment_is_member(smallint, uuid), segments.segment_is_member(smallint, text),
    segments.segment_is_member(text, uuid), segments.segment_is_member(text, text),
    segments.filter_restricted(uuid, uuid[]), segments.filter_restricted(bigint, uuid[]),
    segments.filter_restricted(integer, uuid[]), segments.filter_restricted(smallint, uuid[]),
    segments.filter_restricted(text, uuid[]),
    segments._contact_segment_ids(uuid), segments._contact_segment_ids(bigint),
    segments._contact_segment_ids(integer), segments._contact_segment_ids(smallint),
    segments._contact_segment_ids(text),
    segments.contact_segments(uuid), segments.contact_segments(bigint),
    segments.contact_segments(integer), segments.contact_segments(smallint),
    segments.contact_segments(text),
    segments.wait(interval),
    segments.segment_counts(uuid, date, date), segments.segment_counts(text, date, date),
    segments.explain(uuid, uuid), segments.explain(uuid, text),
    segments.explain(bigint, uuid), segments.explain(bigint, text),
    segments.explain(integer, uuid), segments.explain(integer, text),
    segments.explain(smallint, uuid), segments.explain(smallint, text),
    segments.explain(text, uuid), segments.explain(text, text),
    segments.explain_text(uuid, uuid), segments.explain_text(uuid, text),
    segments.explain_text(bigint, uuid), segments.explain_text(bigint, text),
    segments.explain_text(integer, uuid), segments.explain_text(integer, text),
    segments.explain_text(smallint, uuid), segments.explain_text(smallint, text),
    segments.explain_text(text, uuid), segments.explain_text(text, text)
    TO segments_read;
-- (segments.membership_changes, membership_history, consume_changes() and
-- was_member() are made by configure() with their grants: 08_history.sql)

-- Management interface.
GRANT EXECUTE ON FUNCTION
    segments.create_segment(text, jsonb, text, text),
    segments.update_segment(uuid, text, jsonb, text),
    segments.drop_segment(uuid),
    segments.refresh(uuid),
    segments.refresh_contacts(anyarray),
    segments.compile(jsonb),
    segments.schedule(uuid, interval),
    segments.verify(uuid),
    segments.update_segment(text, text, jsonb, text),
    segments.drop_segment(text),
    segments.refresh(text),
    segments.schedule(text, interval),
    segments._segment_id(text),
    segments._managed_segment_id(text),
    segments.preview(jsonb, integer)
    TO segments_write;
-- The changes the worker set aside are the DBA's: their keys are any
-- tenant's contacts (the queue has no tenant), so not a tenant's to read or
-- queue again.  (0.1.0 granted them to segments_write: revoked on upgrade.)
REVOKE ALL ON segments.change_queue_failed FROM segments_write;
REVOKE ALL ON FUNCTION segments.retry_failed_changes() FROM segments_write;
GRANT SELECT ON segments.change_queue_failed TO segments_admin;
GRANT EXECUTE ON FUNCTION segments.retry_failed_changes() TO segments_admin;

-- Administration.
GRANT EXECUTE ON FUNCTION segments.trim_history(integer) TO segments_admin;

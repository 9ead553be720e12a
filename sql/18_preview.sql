-- 18: segments.preview(definition jsonb, sample integer DEFAULT 10): the
-- members a definition would have, without saving anything.  Validated as
-- create_segment() validates (same errors and SQLSTATEs, the caller's column
-- privileges and tenant); the count equals that of the same definition
-- saved and refreshed; samples; tenants; segments_read may not preview.
-- Run as LOGIN roles that are no superusers.
\set VERBOSITY default
\set SHOW_CONTEXT never
\set ON_ERROR_STOP 0
SET client_min_messages = warning;
SELECT current_user AS superuser \gset

CREATE ROLE preview_author LOGIN IN ROLE segments_write;
CREATE ROLE preview_globex LOGIN IN ROLE segments_write;
CREATE ROLE preview_admin LOGIN IN ROLE segments_admin;
CREATE ROLE preview_reader LOGIN IN ROLE segments_read;
CREATE ROLE preview_none LOGIN IN ROLE segments_write;
ALTER ROLE preview_author SET segments.tenant = 'acme';
ALTER ROLE preview_globex SET segments.tenant = 'globex';
ALTER ROLE preview_reader SET segments.tenant = 'acme';

-- The preview of a definition next to what create_segment() and refresh()
-- make of it (in the caller's tenant): counts and every member key.
CREATE FUNCTION preview_vs_saved(def jsonb)
RETURNS TABLE (previewed bigint, saved bigint, same_members boolean)
LANGUAGE plpgsql AS $$
DECLARE
    p record;
    sid uuid;
    m text[];
BEGIN
    SELECT * INTO p FROM segments.preview(def, 10000);
    sid := segments.create_segment('_preview', def);
    PERFORM segments.refresh(sid);
    SELECT coalesce(array_agg(contact_id::text ORDER BY contact_id), '{}') INTO m
      FROM segments.membership WHERE segment_id = sid;
    PERFORM segments.drop_segment(sid);
    RETURN QUERY SELECT p.member_count, cardinality(m)::bigint, p.sample_keys = m;
END
$$;

-- The author may read every column but email.
\c - regress_app
GRANT SELECT ON contacts TO preview_globex, preview_admin, preview_reader;
GRANT SELECT (id, org_id, name, plan, country, signup_at, last_seen_at, birthday,
              lifetime_value, seats, is_active, tags, ip, app_version, custom_data)
   ON contacts TO preview_author;

\c - preview_author
SET client_min_messages = warning;
SELECT segments.create_segment('Pv base', '{"type":"attribute","field":"country","op":"in","value":["US","DE"]}') IS NOT NULL AS created;
SELECT segments.refresh();

-- The result: how many members, of how many contacts the session sees, and
-- the first keys in key order.
SELECT * FROM segments.preview('{"type":"attribute","field":"plan","op":"eq","value":"vip"}');
SELECT * FROM segments.preview('{"and": []}');
SELECT * FROM segments.preview('{"or": []}');

-- The same count and members as the definition saved and refreshed.
SELECT d.label, v.*
  FROM (VALUES
    ('attribute', '{"type":"attribute","field":"plan","op":"eq","value":"vip"}'::jsonb),
    ('every contact', '{"and": []}'),
    ('no contact', '{"or": []}'),
    ('ordering', '{"or":[{"type":"attribute","field":"seats","op":"between","value":[3,10]},{"type":"attribute","field":"app_version","as":"semver","op":"gte","value":"1.2.0"}]}'),
    ('text', '{"type":"attribute","field":"name","op":"regex","value":"^[a-e]","case_sensitive":false}'),
    ('array', '{"type":"attribute","field":"tags","op":"contains","value":"beta"}'),
    ('traits', '{"or":[{"type":"trait","key":"n","op":"gt","value":1},{"type":"trait","path":["company","size"],"op":"gte","value":50,"as":"number"}]}'),
    ('missing', '{"type":"trait","key":"plan_t","op":"neq","value":"Gold"}'),
    ('time', '{"type":"attribute","field":"last_seen_at","op":"within_last","value":"30 days"}'),
    ('percentage', '{"type":"percentage","salt":"pv","op":"lt","value":50}'),
    ('segment', '{"and":[{"type":"segment","op":"in","value":"Pv base"},{"not":{"type":"attribute","field":"is_active","op":"eq","value":true}}]}'),
    ('not segment', '{"type":"segment","op":"not_in","value":"Pv base"}')) AS d(label, def),
  LATERAL preview_vs_saved(d.def) AS v;

\c - :superuser
SELECT last_value AS seq_before FROM segments.segment_num_seq \gset
SELECT md5(string_agg(m::text, ',' ORDER BY m.contact_id)) AS members_before FROM segments.member m \gset
SELECT count(*) AS segments_before FROM segments.segment \gset
\c - preview_author
SET client_min_messages = warning;
-- Samples: 0 shows none, a sample larger than the members shows them all,
-- 10000 at most; negative, larger or NULL is an error.
SELECT member_count, sample_keys FROM segments.preview('{"and": []}', 0);
SELECT member_count, sample_keys FROM segments.preview('{"and": []}', 3);
SELECT member_count, cardinality(sample_keys) FROM segments.preview('{"and": []}', 10000);
SELECT * FROM segments.preview('{"and": []}', -1);
SELECT * FROM segments.preview('{"and": []}', 10001);
SELECT * FROM segments.preview('{"and": []}', NULL);

-- A percentage without a salt hashes with the nil uuid (a saved segment's
-- own id, its default salt, does not exist before it is saved).
SELECT (SELECT member_count FROM segments.preview('{"type":"percentage","op":"lt","value":50}'))
     = (SELECT member_count FROM segments.preview('{"type":"percentage","op":"lt","value":50,"salt":"00000000-0000-0000-0000-000000000000"}'))
       AS nil_uuid_salt;
-- No segment row, no membership row, no segment number used by the previews above.
\c - :superuser
SELECT last_value = :seq_before AS sequence_unused FROM segments.segment_num_seq;
SELECT md5(string_agg(m::text, ',' ORDER BY m.contact_id)) = :'members_before' AS membership_unchanged
  FROM segments.member m;
SELECT count(*) = :segments_before AS no_segment_saved FROM segments.segment;
\c - preview_author
SET client_min_messages = warning;

-- Invalid definitions: the error of create_segment(), message and SQLSTATE.
SELECT d.label, try(format('SELECT segments.preview(%L)', d.def)) AS preview_error,
       try(format('SELECT segments.preview(%L)', d.def))
         = try(format('SELECT segments.create_segment(''_bad'', %L)', d.def)) AS as_create_segment
  FROM (VALUES
    ('unknown operator', '{"type":"attribute","field":"plan","op":"equals","value":"vip"}'),
    ('unknown field', '{"or":[{"type":"attribute","field":"nope","op":"eq","value":1}]}'),
    ('bad regex', '{"type":"attribute","field":"name","op":"regex","value":"("}'),
    ('wrong value', '{"type":"attribute","field":"seats","op":"eq","value":"many"}'),
    ('unknown segment', '{"type":"segment","op":"in","value":"No such segment"}'),
    ('unreadable column', '{"and":[{"type":"attribute","field":"email","op":"is_set"}]}'),
    ('not an object', '[1, 2]'),
    ('too deep', repeat('{"not":', 33) || '{"and":[]}' || repeat('}', 33))) AS d(label, def);
SELECT segments.preview('{"type":"attribute","field":"email","op":"is_set"}');
SELECT segments.preview(NULL);
SELECT try($$SELECT segments.preview(NULL)$$) = try($$SELECT segments.create_segment('_bad', NULL)$$) AS null_as_create_segment;
SELECT count(*) AS saved FROM segments.segments WHERE name IN ('_bad', '_preview');

-- Nothing written: it runs in a read-only transaction.
BEGIN READ ONLY;
SELECT member_count FROM segments.preview('{"type":"segment","op":"in","value":"Pv base"}');
COMMIT;

-- Tenants: each session counts its own contacts; globex cannot name acme's segment.
\c - preview_globex
SET client_min_messages = warning;
SELECT * FROM segments.preview('{"and": []}');
SELECT * FROM segments.preview('{"type":"segment","op":"in","value":"Pv base"}');
SELECT * FROM preview_vs_saved('{"type":"attribute","field":"plan","op":"in","value":["vip","pro"]}');
\c - preview_admin
SET client_min_messages = warning;
SELECT member_count, contact_count FROM segments.preview('{"and": []}', 0);
SELECT * FROM preview_vs_saved('{"type":"attribute","field":"plan","op":"in","value":["vip","pro"]}');
\c - preview_none
SET client_min_messages = warning;
SELECT * FROM segments.preview('{"and": []}');
SELECT try($$SELECT segments.preview('{"and": []}')$$)
       = try($$SELECT segments.create_segment('_bad', '{"and": []}')$$) AS no_tenant_as_create_segment;
-- segments_read may not preview
\c - preview_reader
SET client_min_messages = warning;
SELECT * FROM segments.preview('{"and": []}');

\c - preview_author
SET client_min_messages = warning;
SELECT segments.drop_segment('Pv base');
\c - regress_app
REVOKE ALL ON contacts FROM preview_author, preview_globex, preview_admin, preview_reader;
\c - :superuser
SET client_min_messages = warning;
DROP FUNCTION preview_vs_saved(jsonb);
DROP ROLE preview_author, preview_globex, preview_admin, preview_reader, preview_none;
SELECT count(*) AS segments_left FROM segments.segments;

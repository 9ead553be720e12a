-- 09: percentage conditions.  The bucket is
--   (('x' || left(md5(salt || ':' || key_text), 8))::bit(32)::bigint % 10000) / 100.0
-- with salt defaulting to the segment's id; an application computes the same.
\set VERBOSITY default
\set SHOW_CONTEXT never
\set ON_ERROR_STOP 0

CREATE FUNCTION bucket(salt text, contact bigint) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
    SELECT (('x' || left(md5(salt || ':' || contact::text), 8))::bit(32)::bigint % 10000) / 100.0
$$;
-- Contacts whose bucket satisfies a predicate, sorted.
CREATE FUNCTION by_bucket(salt text, low numeric, high numeric) RETURNS bigint[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM contacts
     WHERE bucket(salt, id) >= low AND bucket(salt, id) <= high
$$;

-- An explicit salt: membership is exactly the formula.
SELECT segments.create_segment('Pct lt 50', '{"type":"percentage","op":"lt","value":50,"salt":"exp-1"}') AS lt50 \gset
SELECT segments.create_segment('Pct gte 50', '{"type":"percentage","op":"gte","value":50,"salt":"exp-1"}') AS gte50 \gset
SELECT segments.create_segment('Pct lte 25.5', '{"type":"percentage","op":"lte","value":25.5,"salt":"exp-1"}') AS lte255 \gset
SELECT segments.create_segment('Pct gt 90', '{"type":"percentage","op":"gt","value":90,"salt":"exp-1"}') AS gt90 \gset
SELECT segments.create_segment('Pct between', '{"type":"percentage","op":"between","value":[20, 60.25],"salt":"exp-1"}') AS btw \gset
SELECT segments.create_segment('Pct negated', '{"type":"percentage","op":"lt","value":50,"salt":"exp-1","negate":true}') AS neg \gset
SELECT segments.create_segment('Pct default salt', '{"type":"percentage","op":"lt","value":50}') AS dflt \gset
SELECT segments.create_segment('Pct in group', '{"and":[{"type":"percentage","op":"lt","value":50,"salt":"exp-1"},{"type":"attribute","field":"org_id","op":"eq","value":"acme"}]}') AS grp \gset
SELECT segments.refresh();

SELECT members('Pct lt 50') AS lt_50;
SELECT members('Pct lt 50') = (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM contacts WHERE bucket('exp-1', id) < 50) AS lt_50_is_formula;
SELECT members('Pct gte 50') = (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM contacts WHERE bucket('exp-1', id) >= 50) AS gte_50_is_formula;
SELECT members('Pct lte 25.5') = by_bucket('exp-1', 0, 25.5) AS lte_is_formula;
SELECT members('Pct gt 90') = (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM contacts WHERE bucket('exp-1', id) > 90) AS gt_is_formula;
SELECT members('Pct between') = by_bucket('exp-1', 20, 60.25) AS between_is_formula;
SELECT members('Pct negated') = members('Pct gte 50') AS negated_is_complement;
SELECT members('Pct in group') = (SELECT array_agg(id ORDER BY id) FROM contacts WHERE bucket('exp-1', id) < 50 AND org_id = 'acme') AS group_is_formula;
-- lt 50 and gte 50 partition the contacts.
SELECT cardinality(members('Pct lt 50')) + cardinality(members('Pct gte 50')) = (SELECT count(*) FROM contacts) AS partition;
-- The default salt is the segment's id (its text form).
SELECT members('Pct default salt') = (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM contacts WHERE bucket(:'dflt', id) < 50) AS default_salt_is_id;
-- A few buckets, to show the formula at work (contacts 1-3, salt exp-1).
SELECT id, bucket('exp-1', id) AS bucket, segments.segment_is_member(id, :'lt50'::uuid) AS in_lt_50
  FROM contacts WHERE id <= 3 ORDER BY id;

-- A pass hashes a contact's salts together, four at a time: seven salts (one
-- long enough to take two MD5 blocks) in one pass, each exactly the formula.
SELECT segments.create_segment('Lane ' || n, format('{"type":"percentage","op":"lt","value":%s,"salt":"%s"}',
           10 * n, CASE n WHEN 7 THEN repeat('long-salt-', 7) ELSE 'lane-' || n END)::jsonb)
  FROM generate_series(1, 7) AS n \g /dev/null
SELECT segments.refresh();
SELECT n, members('Lane ' || n) = (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM contacts
           WHERE bucket(CASE n WHEN 7 THEN repeat('long-salt-', 7) ELSE 'lane-' || n END, id) < 10 * n) AS is_formula
  FROM generate_series(1, 7) AS n ORDER BY n;
SELECT segments.drop_segment('Lane ' || n) FROM generate_series(1, 7) AS n \g /dev/null

-- Bounds: 0 and 100 are allowed values.
SELECT t('{"type":"percentage","op":"lt","value":0,"salt":"b"}') AS lt_0;                       -- {}
SELECT excluded(t('{"type":"percentage","op":"gte","value":0,"salt":"b"}')) AS gte_0_excludes;  -- {}
SELECT excluded(t('{"type":"percentage","op":"lt","value":100,"salt":"b"}')) AS lt_100_excludes; -- {}
SELECT excluded(t('{"type":"percentage","op":"between","value":[0, 100],"salt":"b"}')) AS between_0_100_excludes; -- {}
SELECT t('{"type":"percentage","op":"gte","value":100,"salt":"b"}') AS gte_100;                 -- {}

-- An explicit salt keeps buckets when a segment is re-created; the default does not.
SELECT segments.create_segment('Pct stable', '{"type":"percentage","op":"lt","value":30,"salt":"stable"}') AS stable1 \gset
SELECT segments.refresh(:'stable1');
CREATE TEMP TABLE before_recreate AS SELECT members('Pct stable') AS m;
SELECT segments.drop_segment(:'stable1');
SELECT segments.create_segment('Pct stable', '{"type":"percentage","op":"lt","value":30,"salt":"stable"}') AS stable2 \gset
SELECT segments.refresh(:'stable2');
SELECT :'stable1' <> :'stable2' AS new_id, members('Pct stable') = (SELECT m FROM before_recreate) AS same_members,
       members('Pct stable') = by_bucket('stable', 0, 29.99) AS is_formula;
SELECT segments.drop_segment(:'dflt');
SELECT segments.create_segment('Pct default salt', '{"type":"percentage","op":"lt","value":50}') AS dflt \gset
SELECT segments.refresh(:'dflt');
SELECT members('Pct default salt') = (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM contacts WHERE bucket(:'dflt', id) < 50) AS recreated_default_salt_is_new_id;

-- Distribution over 10,000 extra contacts (ids 1000001-1010000, removed below).
SET ROLE regress_app;  -- the application writes contacts
INSERT INTO contacts (id, org_id) SELECT g, 'acme' FROM generate_series(1000001, 1010000) AS g;
RESET ROLE;
SELECT segments.create_segment('Pct all', '{"and":[]}') AS pall \gset
SELECT segments.create_segment('Pct 10', '{"type":"percentage","op":"lt","value":10,"salt":"dist"}') AS p10 \gset
SELECT segments.create_segment('Pct 37.5', '{"type":"percentage","op":"lt","value":37.5,"salt":"dist"}') AS p375 \gset
SELECT segments.refresh();
SELECT count(*) = (SELECT count(*) FROM segments.membership WHERE segment_id = :'p10') AS segment_members_agrees
  FROM segments.segment_members(:'p10'::uuid);
SELECT count(*) BETWEEN 900 AND 1100 AS ten_percent,
       count(*) = (SELECT count(*) FROM contacts WHERE bucket('dist', id) < 10) AS ten_is_formula
  FROM segments.membership WHERE segment_id = :'p10';
SELECT count(*) BETWEEN 3550 AND 3950 AS thirty_seven_and_a_half_percent,
       count(*) = (SELECT count(*) FROM contacts WHERE bucket('dist', id) < 37.5) AS p375_is_formula
  FROM segments.membership WHERE segment_id = :'p375';
SELECT count(*) AS all_contacts FROM segments.membership WHERE segment_id = :'pall';       -- 10030
SET ROLE regress_app;
DELETE FROM contacts WHERE id > 1000000;
RESET ROLE;
SELECT segments.refresh();
SELECT count(*) AS all_after_delete FROM segments.membership WHERE segment_id = :'pall';   -- 30
SELECT count(*) AS deleted_contacts_left FROM segments.membership WHERE contact_id > 1000000; -- 0

SELECT segments.drop_segment(id) FROM segments.segments WHERE name LIKE 'Pct %';
DROP FUNCTION by_bucket(text, numeric, numeric);
DROP FUNCTION bucket(text, bigint);
SELECT count(*) AS segments_left FROM segments.segments;

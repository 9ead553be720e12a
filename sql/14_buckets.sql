-- 14: percentage buckets against PostgreSQL's own md5(), contacts sitting
-- exactly on the bounds of every percentage and time operator, and the
-- "since" of stored membership.  The worker is off in this database
-- (00_setup): refresh() alone decides membership here.
\set VERBOSITY default
\set SHOW_CONTEXT never
\set ON_ERROR_STOP 0

CREATE FUNCTION bucket(salt text, contact bigint) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
    SELECT (('x' || left(md5(salt || ':' || contact::text), 8))::bit(32)::bigint % 10000) / 100.0
$$;

-- 1. MD5.  The extension hashes salt || ':' || key with its own MD5; SQL's
-- md5() is the reference.  Salts of 0 to 200 bytes, in ASCII and in 2-, 3-
-- and 4-byte UTF-8 characters, over the 30 contacts (keys of 1 and 2
-- digits): every hashed length from 2 to 203 bytes, across the one-block
-- and two-block padding boundaries (55/56 and 119/120 bytes) included.
CREATE TABLE md5_salt (kind text, n int, salt text, seg uuid);
INSERT INTO md5_salt (kind, n, salt)
SELECT 'ascii', n, left(repeat('abcdefghij', 21), n) FROM generate_series(0, 200) n
UNION ALL SELECT '2-byte', n, repeat('é', n) FROM generate_series(0, 100) n
UNION ALL SELECT '3-byte', n, repeat('€', n) FROM generate_series(0, 66) n
UNION ALL SELECT '4-byte', n, repeat('😀', n) FROM generate_series(0, 50) n;
UPDATE md5_salt SET seg = segments.create_segment('md5 ' || kind || ' ' || n,
    jsonb_build_object('type', 'percentage', 'op', 'lt', 'value', 50, 'salt', salt));
SELECT segments.refresh();
SELECT kind, count(*) AS salts, min(octet_length(salt)) AS min_bytes, max(octet_length(salt)) AS max_bytes
  FROM md5_salt GROUP BY kind ORDER BY kind;
-- every hashed length from 2 to 203 bytes occurs
SELECT count(DISTINCT octet_length(m.salt || ':' || c.id)) AS hashed_lengths,
       min(octet_length(m.salt || ':' || c.id)) AS shortest,
       max(octet_length(m.salt || ':' || c.id)) AS longest
  FROM md5_salt m CROSS JOIN contacts c;
-- membership is the SQL formula for every (salt, contact) pair; both sides occur
SELECT count(*) AS pairs,
       count(*) FILTER (WHERE bucket(m.salt, c.id) < 50) AS pairs_below_50,
       count(*) FILTER (WHERE segments.segment_is_member(c.id, m.seg) <> (bucket(m.salt, c.id) < 50)) AS disagreements
  FROM md5_salt m CROSS JOIN contacts c;
-- around the padding boundaries, by hashed length
SELECT octet_length(m.salt || ':' || c.id) AS hashed_bytes, count(*) AS pairs,
       count(*) FILTER (WHERE segments.segment_is_member(c.id, m.seg) <> (bucket(m.salt, c.id) < 50)) AS disagreements
  FROM md5_salt m CROSS JOIN contacts c
 WHERE octet_length(m.salt || ':' || c.id) IN (55, 56, 57, 63, 64, 65, 119, 120, 121)
 GROUP BY 1 ORDER BY 1;
SELECT count(segments.drop_segment(seg)) AS dropped FROM md5_salt;
DROP TABLE md5_salt;

-- 2. Percentage bounds.  For every contact, segments whose bound is that
-- contact's own bucket (salt "bounds"): lt and gt leave it out, lte, gte
-- and between with the bucket at either end take it in.
CREATE TABLE pct_bound (contact bigint, b numeric, op text, value jsonb, seg uuid);
INSERT INTO pct_bound (contact, b, op, value)
SELECT c.id, round(bucket('bounds', c.id), 2), o.op,
       CASE o.op WHEN 'between_point' THEN jsonb_build_array(round(bucket('bounds', c.id), 2), round(bucket('bounds', c.id), 2))
                 WHEN 'between_low' THEN jsonb_build_array(round(bucket('bounds', c.id), 2), 100)
                 WHEN 'between_high' THEN jsonb_build_array(0, round(bucket('bounds', c.id), 2))
                 ELSE to_jsonb(round(bucket('bounds', c.id), 2)) END
  FROM contacts c CROSS JOIN unnest(ARRAY['lt', 'lte', 'gt', 'gte', 'between_point', 'between_low', 'between_high']) o(op);
UPDATE pct_bound SET seg = segments.create_segment('bound ' || contact || ' ' || op,
    jsonb_build_object('type', 'percentage', 'salt', 'bounds', 'value', value,
                       'op', CASE WHEN op LIKE 'between%' THEN 'between' ELSE op END));
SELECT segments.refresh();
-- the contact on the bound
SELECT op, count(*) AS segments,
       count(*) FILTER (WHERE segments.segment_is_member(contact, seg)) AS bound_contact_in,
       count(*) FILTER (WHERE b <> round(b)) AS fractional_bounds
  FROM pct_bound GROUP BY op ORDER BY op;
-- every contact against the formula
SELECT p.op, count(*) FILTER (WHERE segments.segment_is_member(c.id, p.seg) <>
         CASE p.op WHEN 'lt' THEN bucket('bounds', c.id) < p.b
                   WHEN 'lte' THEN bucket('bounds', c.id) <= p.b
                   WHEN 'gt' THEN bucket('bounds', c.id) > p.b
                   WHEN 'gte' THEN bucket('bounds', c.id) >= p.b
                   WHEN 'between_point' THEN bucket('bounds', c.id) = p.b
                   WHEN 'between_low' THEN bucket('bounds', c.id) >= p.b
                   WHEN 'between_high' THEN bucket('bounds', c.id) <= p.b END) AS disagreements
  FROM pct_bound p CROSS JOIN contacts c GROUP BY p.op ORDER BY p.op;
-- one contact, shown
SELECT op, value, segments.segment_is_member(contact, seg) AS member
  FROM pct_bound WHERE contact = 1 ORDER BY op;
SELECT count(segments.drop_segment(seg)) AS dropped FROM pct_bound;
DROP TABLE pct_bound;

-- 3. Time bounds.  Evaluation reads now() as the transaction's start, so in
-- one transaction a contact can sit exactly on a bound: within_last and
-- within_next include both ends, before and after exclude theirs.

-- Which of the three contacts on a bound (21, 22, 23) a definition takes.
CREATE FUNCTION on_bound(def jsonb) RETURNS bigint[]
LANGUAGE sql VOLATILE AS $$
    SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM unnest(t(def)) id WHERE id IN (21, 22, 23)
$$;
BEGIN;
SET LOCAL ROLE regress_app;  -- the application writes contacts
UPDATE contacts SET last_seen_at = now() - interval '7 days' WHERE id = 21;
UPDATE contacts SET last_seen_at = now() + interval '7 days' WHERE id = 22;
UPDATE contacts SET last_seen_at = now() WHERE id = 23;
UPDATE contacts SET last_seen_at = timestamptz '2024-03-01 00:00:00+00' WHERE id = 24;
RESET ROLE;
SELECT on_bound('{"type":"attribute","field":"last_seen_at","op":"within_last","value":"7 days"}') AS within_last,         -- {21,22,23}
       on_bound('{"type":"attribute","field":"last_seen_at","op":"within_next","value":"7 days"}') AS within_next,         -- {22,23}
       on_bound('{"type":"attribute","field":"last_seen_at","op":"not_within_last","value":"7 days"}') AS not_within_last; -- {}
SELECT 24 = ANY (t('{"type":"attribute","field":"last_seen_at","op":"before","value":"2024-03-01"}')) AS before_own_time,
       24 = ANY (t('{"type":"attribute","field":"last_seen_at","op":"after","value":"2024-03-01"}')) AS after_own_time,
       24 = ANY (t('{"type":"attribute","field":"last_seen_at","op":"between","value":["2024-03-01", "2024-03-01"]}')) AS between_own_time;
ROLLBACK;
DROP FUNCTION on_bound(jsonb);

-- 4. Since.  Membership keeps the time a contact entered each segment, also
-- when the segments were entered at different times and the later one has
-- the lower number (stored as a negative step).  "since" has whole seconds:
-- pg_sleep makes the second refresh at least one second later (a loaded
-- machine only makes it later).
SELECT plan AS plan25 FROM contacts WHERE id = 25 \gset
SELECT segments.create_segment('Since later', '{"type":"attribute","field":"plan","op":"eq","value":"since-test"}') AS later \gset
SELECT segments.create_segment('Since first', '{"type":"attribute","field":"id","op":"eq","value":25}') AS first \gset
SELECT now() AS t0 \gset
SELECT segments.refresh();
SELECT pg_sleep(1.1);
SET ROLE regress_app;
UPDATE contacts SET plan = 'since-test' WHERE id = 25;
RESET ROLE;
SELECT segments.refresh();
SELECT now() AS t1 \gset
SELECT (SELECT since FROM segments.membership WHERE segment_id = :'first' AND contact_id = 25) AS first_since,
       (SELECT since FROM segments.membership WHERE segment_id = :'later' AND contact_id = 25) AS later_since \gset
SELECT :'first_since'::timestamptz BETWEEN date_trunc('second', :'t0'::timestamptz) AND :'t0'::timestamptz + interval '1 second' AS first_since_is_first_refresh,
       :'later_since'::timestamptz >= :'first_since'::timestamptz + interval '1 second' AS later_since_is_later,
       :'later_since'::timestamptz <= :'t1'::timestamptz AS later_since_not_in_future;
SELECT segments.segment_is_member(25, :'first'::uuid) AND segments.segment_is_member(25, :'later'::uuid) AS in_both;
SET ROLE regress_app;
UPDATE contacts SET plan = :'plan25' WHERE id = 25;
RESET ROLE;
SELECT segments.drop_segment(:'later');
SELECT segments.drop_segment(:'first');

DROP FUNCTION bucket(text, bigint);
SELECT count(*) AS segments_left FROM segments.segments;

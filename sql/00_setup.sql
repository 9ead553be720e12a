-- 00_setup: install the extension, the contacts source and the helpers every
-- other file uses.  Data rows 1-16 are handcrafted edge cases; rows 17-30 are
-- plain rows built by formula (see the comment before their INSERT).
\set VERBOSITY default
\set SHOW_CONTEXT never
\set ON_ERROR_STOP 0
SET client_min_messages = warning;
SELECT current_user AS superuser \gset

-- The background worker stays off in this database: every file calls
-- segments.refresh() itself, and a worker applying changes behind its back
-- would turn some checks into races the code could win without doing its
-- part (a departed contact removed by the worker instead of by refresh()).
-- The worker has its own tests (test/worker/*.sh).
DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET segments.enabled = off', current_database()); END $$;

CREATE EXTENSION segments;

-- The application's role: it owns the contacts and writes them, with no
-- privilege on schema segments (writing contacts needs nothing from the
-- extension).  Every file writes contacts as this role; roles are
-- cluster-wide, so a second run finds it.
DO $$ BEGIN CREATE ROLE regress_app LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
GRANT CREATE ON SCHEMA public TO regress_app;
\c - regress_app

CREATE TABLE contacts (
    id bigint PRIMARY KEY,
    org_id text,
    email text,
    name text,
    plan text,
    country text,
    signup_at timestamptz,
    last_seen_at timestamptz,
    birthday date,
    lifetime_value numeric,
    seats int,
    is_active boolean,
    tags text[],
    ip inet,
    app_version text,
    custom_data jsonb
);

-- Handcrafted rows (tenant acme).  Trait keys:
--   plan_t: strings for equality; n: numbers and number-like strings;
--   b: booleans and boolean-like strings; ts: trait timestamps;
--   ver: semver strings; ip: addresses; company: nested object;
--   "a.b": a key with a dot, a: {"b": ...}; arr: arrays; s: text;
--   score: numbers for modulo; nul: JSON null.
INSERT INTO contacts VALUES
(1, 'acme', 'alice@acme.com', 'Alice', 'vip', 'US', '2023-01-15 10:00:00+00', now() - interval '2 days', '1990-05-01', 1500.50, 10, true, '{vip,beta}', '10.0.0.5', '1.2.3',
 '{"plan_t":"Gold","n":42,"b":true,"ts":"2024-01-01T00:00:00Z","ver":"1.0.0","ip":"10.0.0.1","company":{"size":50,"name":"Acme"},"a.b":1,"arr":["x","y"],"s":"hello world","score":10,"nul":null}'),
(2, 'acme', 'bob@acme.com', 'Bob', 'free', 'us', '2023-06-01 00:00:00+00', now() - interval '40 days', '1985-12-31', 0, 1, false, '{}', '10.1.2.3', '1.10.0',
 '{"plan_t":"gold","n":"42","b":"TRUE","ts":"2024-01-01","ver":"1.0.0-alpha","ip":"::1","company":{"size":"50"},"a":{"b":1},"arr":[],"s":"Hello World","score":10.0}'),
(3, 'acme', 'CAROL@ACME.COM', 'Carol', 'trial', 'DE', '2024-02-29 12:30:00+00', now() - interval '10 days', NULL, 99.99, 3, true, '{beta}', '192.168.1.10', '1.2.3-alpha',
 '{"plan_t":"GOLD","n":" +1 ","b":"false","ts":1704067200,"ver":"1.0.0-alpha.1","ip":"2001:db8::5","company":{"size":1000},"a.b":5,"arr":[1,2,3],"s":"say hello","score":-7}'),
(4, 'acme', NULL, 'Dave', 'VIP', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL),
(5, 'acme', '', '', '', '', '2023-01-15 10:00:00+00', now() + interval '3 days', '2000-01-01', -5, 0, true, '{""}', '2001:db8::1', '1.2.3-beta.2',
 '{}'),
(6, 'acme', 'zoë@acme.com', 'Zoë', 'pro', 'FR', '2022-12-31 23:59:59+00', now() - interval '29 days', '1970-01-01', 250, 5, true, '{VIP,Beta}', '10.255.255.255', '1.2.3+build.5',
 '{"plan_t":"silver","n":".5","b":false,"ts":"2024-01-01T02:00:00+02:00","ver":"1.0.0-beta","ip":"garbage","company":{"size":null},"arr":"x","s":"","score":7.5}'),
(7, 'acme', 'eve@example.org', 'Éve', 'pro', 'fr', '2023-01-15 10:00:01+00', now() - interval '31 days', '1999-12-31', 1000, 25, false, '{beta,alpha,gamma}', '11.0.0.1', '2.0.0-rc.1',
 '{"plan_t":"","n":"1e3","b":"yes","ts":"not a date","ver":"1.0.0+build.7","ip":"192.168.0.1","company":"big","arr":["X","Y"],"s":"helloworld","score":"3"}'),
(8, 'acme', 'frank@Example.ORG', 'frank', 'free', 'US', '2021-07-04 00:00:00+00', now() - interval '1 hour', '2001-02-03', 10, 2, true, '{alpha,NULL}', '10.0.0.0/8', 'v1.2.3',
 '{"plan_t":null,"n":"NaN","b":1,"ts":"2024-13-01","ver":"2.0.0","ip":"10.0.0.0/8","company":{"size":49.5},"arr":[["x"]],"s":123,"score":0}'),
(9, 'acme', 'grace@acme.io', 'Grace Hopper', 'trial', 'GB', '2023-01-15 09:59:59.999999+00', now() + interval '40 days', '1980-02-29', 10.0, -3, false, '{"beta tester"}', '::ffff:10.0.0.1', '1.2',
 '{"plan_t":"Gold ","n":1.0,"b":null,"ts":"2024-01-01 00:00:00","ver":"1.10.0","ip":"10.200.0.1","company":{"size":{"x":1}},"arr":null,"s":true,"score":-0.5}'),
(10, 'acme', 'heidi+test@acme.com', 'HEIDI', 'vip', 'US', '2023-01-15 12:00:00+02', now() - interval '400 days', '2024-02-29', -7.5, 7, true, '{x,y,z,w}', '192.168.1.255', '10.0.0',
 '{"plan_t":"gōld","n":1,"b":"True","ts":1704067200.5,"ver":"1.2","ip":167772161,"s":"HELLO","score":2}'),
(11, 'acme', 'ivan@acme.com', NULL, NULL, 'US', '2025-01-01 00:00:00+00', now() + interval '10 days', '1995-07-15', 1000.00, 100, true, '{ALPHA}', '192.168.2.1', '',
 '{"plan_t":"Silver","n":"abc","b":"tRuE","ts":"2024-01-01T00:00","ver":"v1.0.0","ip":"10.0.0.256","s":"Straße","score":"x"}'),
(12, 'acme', 'judy@ACME.com', 'judy', 'Vip', 'ZA', '2019-03-10 08:00:00+00', now() - interval '6 days', '1975-10-10', 0.5, -10, false, '{a,b}', '10.0.0.5', '1.2.3-alpha.10',
 '{"n":true,"ts":"2024-01-01T00:00:00.000001Z","ver":"01.0.0","s":"ÉCOLE"}'),
(13, 'acme', 'ken@acme.com', 'Ken', 'pro', 'DE', '2020-06-15 00:00:00+00', now() - interval '60 days', '1988-08-08', 333, 4, true, '{gamma}', 'fe80::1', '1.2.3-alpha.2',
 '{"n":[1],"ts":"2023-12-31T23:59:59.999999Z","ver":"1.0.0-beta.11","s":"a.b*c","score":1e3}'),
(14, 'acme', 'leo@acme.com', 'Léo', 'free', 'DE', '2020-06-15 00:00:00+00', now() - interval '15 days', '1991-01-01', 42, 6, true, '{beta,beta}', '10.0.0.6', '1.2.3-alpha.beta',
 '{"n":{"a":1},"ts":"2024-01-01T01:00:00+01:00","ver":"1.0.0-beta.2","score":12}'),
(15, 'acme', 'mia@acme.com', 'Mia', 'trial', 'GB', '2020-06-15 00:00:00+00', now() - interval '5 days', '1992-02-02', 7, 9, false, '{Beta}', '10.0.1.1', '1.2.3-rc.1',
 '{"n":"Infinity","ts":"2024-01-01T00:00:00-05:00","ver":100,"s":"xhello"}'),
(16, 'acme', 'ned@acme.com', '日本語', 'pro', 'JP', '2020-06-15 00:00:00+00', now() - interval '90 days', '1993-03-03', 8, 12, true, '{日本}', '192.168.1.0', '1.2.3 ',
 '{"n":1000,"ts":true,"ver":"1.0.0-rc.1","s":"Hello"}');

-- Plain rows 17-30: 17-20 tenant acme, 21-30 tenant globex.
--   plan: g % 4 = 0 free, 1 pro, 2 vip, 3 trial; country: even US, odd DE;
--   signup_at 2020-01-01 + (g - 17) days; last_seen_at now() - 5g days;
--   birthday 1980-01-01 + g; lifetime_value 100g; seats g; is_active even;
--   tags {plain}; ip 172.16.0.g; app_version 1.0.0; traits {"plain": true, "k": g}.
INSERT INTO contacts
SELECT g,
       CASE WHEN g <= 20 THEN 'acme' ELSE 'globex' END,
       'user' || g || '@example.com',
       'User ' || g,
       (ARRAY['free', 'pro', 'vip', 'trial'])[g % 4 + 1],
       CASE WHEN g % 2 = 0 THEN 'US' ELSE 'DE' END,
       timestamptz '2020-01-01 00:00:00+00' + (g - 17) * interval '1 day',
       now() - g * interval '5 days',
       date '1980-01-01' + g,
       100 * g,
       g,
       g % 2 = 0,
       '{plain}',
       ('172.16.0.' || g)::inet,
       '1.0.0',
       jsonb_build_object('plain', true, 'k', g)
  FROM generate_series(17, 30) AS g;
\c - :superuser
SET client_min_messages = warning;
SELECT t.tableowner AS contacts_owner, r.rolsuper AS owner_is_superuser,
       has_schema_privilege(r.rolname, 'segments', 'USAGE') AS owner_uses_segments
  FROM pg_tables t JOIN pg_roles r ON r.rolname = t.tableowner WHERE t.tablename = 'contacts';

SELECT segments.configure(source => 'public.contacts', key_column => 'id',
                          tenant_column => 'org_id', traits_column => 'custom_data');

-- Members of a segment (by name, any tenant), as a sorted array; '{}' if none.
CREATE FUNCTION members(seg_name text) RETURNS bigint[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(m.contact_id ORDER BY m.contact_id), '{}')
      FROM segments.membership m
      JOIN segments.segments s ON s.id = m.segment_id
     WHERE s.name = seg_name
$$;

-- Members of a segment by id, as a sorted array; '{}' if none.
CREATE FUNCTION members_of(seg uuid) RETURNS bigint[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(m.contact_id ORDER BY m.contact_id), '{}')
      FROM segments.membership m
     WHERE m.segment_id = seg
$$;

-- Creates a throw-away segment (no tenant) from a definition, evaluates it,
-- returns its members and drops it again.  Errors from create_segment pass
-- through, so a rejected definition shows its ERROR and HINT.
CREATE FUNCTION t(def jsonb) RETURNS bigint[]
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    sid uuid;
    result bigint[];
BEGIN
    sid := segments.create_segment('_t', def);
    PERFORM segments.refresh(sid);
    result := members_of(sid);
    PERFORM segments.drop_segment(sid);
    RETURN result;
END
$$;

-- The contacts NOT in a set of ids, sorted: negative operators match most
-- contacts, so their tests print what they exclude.
CREATE FUNCTION excluded(ids bigint[]) RETURNS bigint[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(c.id ORDER BY c.id), '{}')
      FROM contacts c WHERE c.id <> ALL (coalesce(ids, '{}'))
$$;

-- Runs a command and returns "ok" or its SQLSTATE and message, with uuids
-- masked: for errors whose message names a generated segment id.
CREATE FUNCTION try(cmd text) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    EXECUTE cmd;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM,
        '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<uuid>', 'g');
END
$$;

-- Sanity of the data itself.
SELECT count(*) AS contacts, count(*) FILTER (WHERE org_id = 'acme') AS acme,
       count(*) FILTER (WHERE org_id = 'globex') AS globex
  FROM contacts;
SELECT count(*) AS segments FROM segments.segments;

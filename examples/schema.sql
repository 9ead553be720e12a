-- Sample schema for the client examples (examples/python, examples/sql):
-- an application's contacts, the actions it gates by segment, and orders
-- to report on.  Run once by the database owner (configure() needs the
-- extension's owner); the examples then run as an ordinary application role.
--   psql -d app -f examples/schema.sql
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS segments;

CREATE TABLE public.contacts (
    id           bigint PRIMARY KEY,
    org_id       text NOT NULL,            -- the tenant
    email        text,
    plan         text,
    country      text,
    last_seen_at timestamptz,
    custom_data  jsonb
);

-- Three contacts the examples talk about, with keys of every integer size a
-- driver may bind: 42 (smallint), 70000 (integer), 9000000001 (bigint).
INSERT INTO public.contacts VALUES
    (42,         'acme',   'ana@acme.example', 'vip',   'DE', now() - interval '1 day',   '{"company": {"size": 5000}}'),
    (70000,      'acme',   'ben@acme.example', 'trial', 'US', now() - interval '2 days',  '{}'),
    (9000000001, 'acme',   'cy@acme.example',  'free',  'FR', now() - interval '40 days', '{}'),
    (43,         'globex', 'dee@globex.example', 'vip', 'DE', now(),                      '{}');
-- 200 more acme contacts: plan by id % 4, country by id % 3, seen id % 60 days ago.
INSERT INTO public.contacts
SELECT g, 'acme', format('user%s@acme.example', g),
       (ARRAY['free', 'trial', 'pro', 'vip'])[g % 4 + 1],
       (ARRAY['DE', 'US', 'FR'])[g % 3 + 1],
       now() - (g % 60) * interval '1 day',
       jsonb_build_object('company', jsonb_build_object('size', g * 10))
  FROM generate_series(100, 299) AS g;

-- Orders: one per contact 100-299 and two for contact 42; amount and age by id.
CREATE TABLE public.orders (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id  bigint NOT NULL REFERENCES public.contacts (id),
    amount      numeric(10, 2) NOT NULL,
    ordered_at  timestamptz NOT NULL
);
INSERT INTO public.orders (contact_id, amount, ordered_at)
SELECT g, (g % 7 + 1) * 10, now() - (g % 45) * interval '1 day'
  FROM generate_series(100, 299) AS g;
INSERT INTO public.orders (contact_id, amount, ordered_at)
VALUES (42, 250, now() - interval '3 days'), (42, 120, now() - interval '10 days');

SELECT segments.configure(source => 'public.contacts', key_column => 'id',
                          tenant_column => 'org_id', traits_column => 'custom_data');

SELECT segments.create_segment('VIP customers',
    '{"or": [{"type": "attribute", "field": "plan", "op": "eq", "value": "vip"},
             {"type": "trait", "path": ["company", "size"], "op": "gte", "value": 2500}]}',
    tenant => 'acme');
SELECT segments.create_segment('Trial users',
    '{"type": "attribute", "field": "plan", "op": "eq", "value": "trial"}', tenant => 'acme');
SELECT segments.create_segment('Germany',
    '{"type": "attribute", "field": "country", "op": "eq", "value": "DE"}', tenant => 'acme');
SELECT segments.create_segment('Inactive 30 days',
    '{"type": "attribute", "field": "last_seen_at", "op": "not_within_last", "value": "30 days"}',
    tenant => 'acme');

-- Support conversations, recorded as they happen: examples/sql/history_report.sql
-- slices them by the segments their contacts were in when each one started.
CREATE TABLE public.conversations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id  bigint NOT NULL REFERENCES public.contacts (id),
    started_at  timestamptz NOT NULL DEFAULT now(),
    csat        integer CHECK (csat BETWEEN 1 AND 5)
);

-- Actions (or AI instructions) restricted to segments: NULL is for everyone.
CREATE TABLE public.actions (
    id            int PRIMARY KEY,
    name          text NOT NULL,
    restricted_to uuid[]
);
INSERT INTO public.actions
SELECT a.id, a.name,
       (SELECT array_agg(s.id ORDER BY s.name) FROM segments.segments s
         WHERE s.name = ANY (a.segment_names))
  FROM (VALUES (1, 'Contact support', NULL::text[]),
               (2, 'Priority phone line', ARRAY['VIP customers']),
               (3, 'Extend trial', ARRAY['Trial users']),
               (4, 'Enterprise AI instructions', ARRAY['VIP customers', 'Germany']),
               (5, 'Win-back offer', ARRAY['Inactive 30 days'])) AS a(id, name, segment_names);

SELECT segments.refresh();

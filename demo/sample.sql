-- Sample data for the demo: a SaaS product's contacts, its segments and its
-- gated actions.  Deterministic (setseed), a few thousand contacts.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

CREATE EXTENSION IF NOT EXISTS segments;

CREATE TABLE public.contacts (
    id             bigint PRIMARY KEY,
    org_id         text NOT NULL,
    email          text,
    plan           text,
    country        text,
    signup_at      timestamptz,
    last_seen_at   timestamptz,
    lifetime_value numeric(12,2),
    seats          int,
    tags           text[],
    app_version    text,
    custom_data    jsonb
);

SELECT setseed(0.42);
INSERT INTO public.contacts
SELECT g,
       (ARRAY['acme','globex','initech'])[1 + g % 3],
       format('user%s@%s.example', g, (ARRAY['acme','globex','initech'])[1 + g % 3]),
       (ARRAY['free','free','free','trial','trial','pro','pro','business','enterprise','vip'])[1 + (random() * 9.99)::int],
       (ARRAY['US','US','GB','DE','FR','NL','ES','BR','IN','JP'])[1 + (random() * 9.99)::int],
       now() - random() * interval '900 days',
       now() - (random() ^ 3) * interval '120 days',
       round((random() ^ 4 * 50000)::numeric, 2),
       1 + (random() ^ 3 * 400)::int,
       (ARRAY(SELECT t FROM unnest(ARRAY['beta','newsletter','webinar','api','mobile','partner']) t
              WHERE random() < 0.3 AND g > 0)),  -- g: re-run per row
       format('%s.%s.%s', 1 + (random() * 2)::int, (random() * 12)::int, (random() * 9)::int),
       jsonb_build_object(
           'company', jsonb_build_object('size', (random() ^ 2 * 5000)::int,
                                         'industry', (ARRAY['saas','retail','fintech','health'])[1 + (random() * 3.99)::int]),
           'csat', round((1 + random() * 4)::numeric, 1),
           'nps', (random() * 10)::int,
           'last_order_at', to_char(now() - random() * interval '200 days', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
           'ip', format('%s.%s.%s.%s', 10 + (random() * 200)::int, (random() * 255)::int,
                        (random() * 255)::int, (random() * 255)::int))
  FROM generate_series(1, 5000) g;

-- A few contacts the summary talks about.
UPDATE public.contacts SET plan = 'vip', lifetime_value = 42000, org_id = 'acme',
       last_seen_at = now() - interval '1 day' WHERE id = 1;
UPDATE public.contacts SET plan = 'trial', lifetime_value = 0, org_id = 'acme',
       signup_at = now() - interval '3 days', last_seen_at = now() - interval '2 hours' WHERE id = 2;

SELECT segments.configure(source => 'public.contacts', key_column => 'id',
                          traits_column => 'custom_data');

SELECT segments.create_segment('VIP customers',
  '{"or": [{"type": "attribute", "field": "plan", "op": "eq", "value": "vip"},
           {"type": "attribute", "field": "lifetime_value", "op": "gte", "value": 25000}]}',
  'High-value customers: faster SLA');
SELECT segments.create_segment('Trial users',
  '{"type": "attribute", "field": "plan", "op": "eq", "value": "trial"}',
  'Trial accounts: no refund action');
SELECT segments.create_segment('Enterprise accounts',
  '{"or": [{"type": "attribute", "field": "plan", "op": "in", "value": ["enterprise", "vip"]},
           {"type": "trait", "path": ["company", "size"], "op": "gte", "value": 1000}]}',
  'Gets the enterprise AI instructions');
SELECT segments.create_segment('Active this week',
  '{"type": "attribute", "field": "last_seen_at", "op": "within_last", "value": "7 days"}');
SELECT segments.create_segment('Inactive 30 days',
  '{"type": "attribute", "field": "last_seen_at", "op": "not_within_last", "value": "30 days"}');
SELECT segments.create_segment('Unhappy customers',
  '{"and": [{"type": "trait", "key": "csat", "op": "lt", "value": 2.5},
            {"type": "segment", "op": "not_in", "value": "Trial users"}]}');
SELECT segments.create_segment('EU',
  '{"type": "attribute", "field": "country", "op": "in", "value": ["GB", "DE", "FR", "NL", "ES"]}');
SELECT segments.create_segment('Beta rollout 10%',
  '{"and": [{"type": "percentage", "op": "lt", "value": 10, "salt": "beta-2026"},
            {"type": "attribute", "field": "app_version", "as": "semver", "op": "gte", "value": "2.0.0"}]}');
SELECT segments.create_segment('Power users',
  '{"type": "attribute", "field": "tags", "as": "length", "op": "gte", "value": 3}');
SELECT segments.create_segment('Corporate network',
  '{"type": "trait", "key": "ip", "op": "in_cidr", "value": ["10.0.0.0/8", "172.16.0.0/12"]}');

CREATE TABLE public.actions (
    id            serial PRIMARY KEY,
    name          text NOT NULL,
    restricted_to uuid[] NOT NULL DEFAULT '{}'
);
INSERT INTO public.actions (name, restricted_to) VALUES
  ('Contact support', '{}'),
  ('Read the docs', '{}'),
  ('Priority SLA (1h)', ARRAY[(SELECT id FROM segments.segments WHERE name = 'VIP customers')]),
  ('Issue a refund', ARRAY(SELECT id FROM segments.segments WHERE name IN ('VIP customers', 'Enterprise accounts'))),
  ('Extend trial', ARRAY[(SELECT id FROM segments.segments WHERE name = 'Trial users')]),
  ('AI: enterprise playbook', ARRAY[(SELECT id FROM segments.segments WHERE name = 'Enterprise accounts')]),
  ('Try the new editor (beta)', ARRAY[(SELECT id FROM segments.segments WHERE name = 'Beta rollout 10%')]);

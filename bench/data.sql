-- Benchmark data: :contacts contacts of a SaaS product, deterministic
-- (setseed), generated in one INSERT.  psql -v contacts=N -f bench/data.sql
--
-- Every timestamp is the generation time G minus (or plus) a whole number
-- of days and 12 hours, so that rules such as "within the last 30 days"
-- give the same answer at any moment of the next 12 hours: the SQL
-- baselines and the extension cannot disagree because a contact crossed a
-- boundary between two measurements.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

CREATE SCHEMA bench;
CREATE TABLE bench.meta (generated_at timestamptz NOT NULL, contacts bigint NOT NULL);
INSERT INTO bench.meta VALUES (date_trunc('second', now()), :contacts);
SELECT generated_at AS g FROM bench.meta \gset

-- Weighted choices: each list repeats an item as many times as its weight
-- (weights sum to 100), so one random() picks one item.
CREATE FUNCTION bench.weighted(spec text) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT array_agg(split_part(w, ':', 1) ORDER BY o, i)
      FROM unnest(string_to_array(spec, ',')) WITH ORDINALITY AS s(w, o),
           generate_series(1, split_part(w, ':', 2)::int) AS i
$$;

CREATE TABLE public.contacts (
    id             bigint PRIMARY KEY,
    org_id         text NOT NULL,
    email          text,
    plan           text,
    country        text,
    signup_at      timestamptz,
    last_seen_at   timestamptz,
    renewal_at     timestamptz,
    lifetime_value numeric(12,2),
    seats          int,
    tags           text[],
    app_version    text,
    email_opt_in   boolean,
    custom_data    jsonb
);

SELECT setseed(0.42) \g /dev/null
INSERT INTO public.contacts
SELECT g,
       'org' || lpad((g % 50)::text, 2, '0'),
       'user' || g || '@' || d.domains[1 + floor(random() * 100)::int],
       d.plans[1 + floor(random() * 100)::int],
       d.countries[1 + floor(random() * 100)::int],
       :'g'::timestamptz - make_interval(days => floor(random() * 1000)::int, hours => 12),
       CASE WHEN random() < 0.03 THEN NULL
            ELSE :'g'::timestamptz - make_interval(days => floor(random() ^ 2 * 180)::int, hours => 12) END,
       CASE WHEN random() < 0.6
            THEN :'g'::timestamptz + make_interval(days => floor(random() * 365)::int, hours => 12) END,
       round((random() ^ 3 * 20000)::numeric, 2),
       1 + floor(random() ^ 3 * 500)::int,
       -- correlated with g, so it is evaluated per row
       ARRAY(SELECT t.tag FROM unnest(d.tag_names, d.tag_odds) AS t(tag, odds)
              WHERE random() < t.odds AND g > 0),
       CASE WHEN random() < 0.05 THEN NULL
            ELSE format('%s.%s.%s', 1 + floor(random() * 3)::int, floor(random() * 13)::int,
                        floor(random() * 10)::int) END,
       random() < 0.6,
       jsonb_strip_nulls(jsonb_build_object(
           'company', jsonb_build_object('size', floor(random() ^ 2 * 5000)::int,
                                         'industry', d.industries[1 + floor(random() * 100)::int]),
           'csat', round((1 + random() * 4)::numeric, 1),
           'nps', floor(random() * 11)::int,
           'last_order_at', CASE WHEN random() < 0.7 THEN
                to_char((:'g'::timestamptz - make_interval(days => floor(random() * 200)::int, hours => 12))
                        AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') END,
           'ip', (ARRAY['10.' || floor(random() * 256)::int || '.',
                        '172.' || (16 + floor(random() * 16)::int) || '.',
                        '192.168.',
                        (20 + floor(random() * 180)::int) || '.' || floor(random() * 256)::int || '.',
                        (20 + floor(random() * 180)::int) || '.' || floor(random() * 256)::int || '.'])
                 [1 + floor(random() * 5)::int]
                 || floor(random() * 256)::int || '.' || floor(random() * 256)::int,
           'lang', d.langs[1 + floor(random() * 100)::int],
           'beta_opt_in', CASE WHEN random() < 0.3 THEN random() < 0.5 END))
  FROM generate_series(1, :contacts) AS g,
       (SELECT bench.weighted('gmail.com:30,yahoo.com:10,outlook.com:15,hotmail.com:5,acme.io:10,globex.com:10,initech.net:10,example.org:10') AS domains,
               bench.weighted('free:35,trial:15,starter:15,pro:20,business:8,enterprise:5,vip:2') AS plans,
               bench.weighted('US:25,IN:12,GB:10,DE:10,FR:8,BR:8,JP:6,CA:6,AU:6,ES:5,NL:4') AS countries,
               bench.weighted('saas:30,retail:25,fintech:20,health:15,education:10') AS industries,
               bench.weighted('en:50,de:10,fr:10,es:10,pt:8,ja:6,it:6') AS langs,
               ARRAY['beta','newsletter','webinar','api','mobile','partner','churn-risk','power','referral','event'] AS tag_names,
               ARRAY[0.10, 0.40, 0.15, 0.20, 0.30, 0.05, 0.08, 0.12, 0.10, 0.15]::float8[] AS tag_odds) AS d;

VACUUM (ANALYZE) public.contacts;

-- The 100 benchmark segments, written once as JSON rules; the SQL
-- predicates of the baselines are generated from the same JSON by
-- bench.rule_sql() below, so both sides evaluate the same rules.  run.sh
-- checks that every predicate counts as many contacts as the extension
-- stores.  Run after bench/data.sql.
--
-- A string "@-Nd" in a definition stands for the date N days before the
-- generation time (YYYY-MM-DD), for absolute-time rules.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

CREATE TABLE bench.seg_def (
    n          int PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    definition jsonb NOT NULL
);

-- "@-Nd" -> the date N days before the generation time, as YYYY-MM-DD.
CREATE FUNCTION bench.expand_dates(def text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    m text[];
BEGIN
    FOR m IN SELECT regexp_matches(def, '"@-([0-9]+)d"', 'g') LOOP
        def := replace(def, format('"@-%sd"', m[1]),
                       format('"%s"', to_char((SELECT generated_at FROM bench.meta) AT TIME ZONE 'UTC'
                                              - make_interval(days => m[1]::int), 'YYYY-MM-DD')));
    END LOOP;
    RETURN def::jsonb;
END
$$;

INSERT INTO bench.seg_def (n, name, definition)
SELECT n, name, bench.expand_dates(def)
  FROM (VALUES
  -- plans
  (1,  'Plan: vip',               '{"type":"attribute","field":"plan","op":"eq","value":"vip"}'),
  (2,  'Paid plans',              '{"type":"attribute","field":"plan","op":"in","value":["starter","pro","business","enterprise","vip"]}'),
  (3,  'Free plan',               '{"type":"attribute","field":"plan","op":"eq","value":"free"}'),
  (4,  'Trial users',             '{"type":"attribute","field":"plan","op":"eq","value":"trial"}'),
  (5,  'Business plan',           '{"type":"attribute","field":"plan","op":"eq","value":"business"}'),
  (6,  'Enterprise accounts',     '{"or":[{"type":"attribute","field":"plan","op":"in","value":["enterprise","vip"]},{"type":"trait","path":["company","size"],"op":"gte","value":3000}]}'),
  -- geography
  (7,  'EU',                      '{"type":"attribute","field":"country","op":"in","value":["GB","DE","FR","ES","NL"]}'),
  (8,  'North America',           '{"type":"attribute","field":"country","op":"in","value":["US","CA"]}'),
  (9,  'APAC',                    '{"type":"attribute","field":"country","op":"in","value":["IN","JP","AU"]}'),
  (10, 'Germany',                 '{"type":"attribute","field":"country","op":"eq","value":"DE"}'),
  (11, 'Outside the US and India','{"type":"attribute","field":"country","op":"not_in","value":["US","IN","GB","DE"]}'),
  (12, 'Brazil',                  '{"type":"attribute","field":"country","op":"eq","value":"BR"}'),
  -- activity
  (13, 'Active 7 days',           '{"type":"attribute","field":"last_seen_at","op":"within_last","value":"7 days"}'),
  (14, 'Active 30 days',          '{"type":"attribute","field":"last_seen_at","op":"within_last","value":"30 days"}'),
  (15, 'Inactive 60 days',        '{"type":"attribute","field":"last_seen_at","op":"not_within_last","value":"60 days"}'),
  (16, 'Inactive 90 days',        '{"type":"attribute","field":"last_seen_at","op":"not_within_last","value":"90 days"}'),
  (17, 'Active today',            '{"type":"attribute","field":"last_seen_at","op":"within_last","value":"1 day"}'),
  (18, 'Never seen',              '{"type":"attribute","field":"last_seen_at","op":"is_not_set"}'),
  -- sign-up and renewal
  (19, 'New signups 30 days',     '{"type":"attribute","field":"signup_at","op":"within_last","value":"30 days"}'),
  (20, 'Signed up last quarter',  '{"type":"attribute","field":"signup_at","op":"within_last","value":"90 days"}'),
  (21, 'Veterans',                '{"type":"attribute","field":"signup_at","op":"before","value":"@-730d"}'),
  (22, 'Signed up this year',     '{"type":"attribute","field":"signup_at","op":"after","value":"@-365d"}'),
  (23, 'Renewing in 30 days',     '{"type":"attribute","field":"renewal_at","op":"within_next","value":"30 days"}'),
  (24, 'Renewing this quarter',   '{"type":"attribute","field":"renewal_at","op":"within_next","value":"90 days"}'),
  (25, 'No renewal date',         '{"type":"attribute","field":"renewal_at","op":"is_not_set"}'),
  -- value and size
  (26, 'High LTV',                '{"type":"attribute","field":"lifetime_value","op":"gte","value":5000}'),
  (27, 'Whales',                  '{"type":"attribute","field":"lifetime_value","op":"gte","value":15000}'),
  (28, 'Low LTV',                 '{"type":"attribute","field":"lifetime_value","op":"lt","value":100}'),
  (29, 'Mid LTV',                 '{"type":"attribute","field":"lifetime_value","op":"between","value":[1000,5000]}'),
  (30, 'Single seat',             '{"type":"attribute","field":"seats","op":"eq","value":1}'),
  (31, 'Teams of 2 to 9',         '{"type":"attribute","field":"seats","op":"between","value":[2,9]}'),
  (32, 'Large teams',             '{"type":"attribute","field":"seats","op":"gte","value":100}'),
  (33, 'Seats multiple of 5',     '{"type":"attribute","field":"seats","op":"modulo","value":[5,0]}'),
  -- tags
  (34, 'Beta testers',            '{"type":"attribute","field":"tags","op":"contains","value":"beta"}'),
  (35, 'Newsletter',              '{"type":"attribute","field":"tags","op":"contains","value":"newsletter"}'),
  (36, 'No newsletter',           '{"type":"attribute","field":"tags","op":"not_contains","value":"newsletter"}'),
  (37, 'Many tags',               '{"type":"attribute","field":"tags","as":"length","op":"gte","value":3}'),
  (38, 'No tags',                 '{"type":"attribute","field":"tags","as":"length","op":"eq","value":0}'),
  (39, 'API users',               '{"type":"attribute","field":"tags","op":"contains","value":"api"}'),
  (40, 'Mobile users',            '{"type":"attribute","field":"tags","op":"contains","value":"mobile"}'),
  -- email
  (41, 'Gmail users',             '{"type":"attribute","field":"email","op":"ends_with","value":"@gmail.com"}'),
  (42, 'Corporate email',         '{"type":"attribute","field":"email","op":"regex","value":"@(acme\\.io|globex\\.com|initech\\.net)$"}'),
  (43, 'Consumer email',          '{"or":[{"type":"attribute","field":"email","op":"ends_with","value":"@gmail.com"},{"type":"attribute","field":"email","op":"ends_with","value":"@yahoo.com"}]}'),
  (44, 'Acme domain',             '{"type":"attribute","field":"email","op":"ends_with","value":"@ACME.IO","case_sensitive":false}'),
  (45, 'Ids starting with 1',     '{"type":"attribute","field":"email","op":"starts_with","value":"user1"}'),
  (46, 'Opted in',                '{"type":"attribute","field":"email_opt_in","op":"eq","value":true}'),
  (47, 'Opted out',               '{"type":"attribute","field":"email_opt_in","op":"eq","value":false}'),
  -- app version
  (48, 'App 3.x',                 '{"type":"attribute","field":"app_version","as":"semver","op":"gte","value":"3.0.0"}'),
  (49, 'Legacy app',              '{"type":"attribute","field":"app_version","as":"semver","op":"lt","value":"1.5.0"}'),
  (50, 'Unknown app version',     '{"type":"attribute","field":"app_version","op":"is_not_set"}'),
  (51, 'App 2.x',                 '{"type":"attribute","field":"app_version","op":"starts_with","value":"2."}'),
  -- traits
  (52, 'Large companies',         '{"type":"trait","path":["company","size"],"op":"gte","value":2000}'),
  (53, 'Small companies',         '{"type":"trait","path":["company","size"],"op":"lt","value":100}'),
  (54, 'SaaS companies',          '{"type":"trait","path":["company","industry"],"op":"eq","value":"saas"}'),
  (55, 'Fintech or health',       '{"type":"trait","path":["company","industry"],"op":"in","value":["fintech","health"]}'),
  (56, 'Unhappy',                 '{"type":"trait","key":"csat","op":"lt","value":2.0}'),
  (57, 'Happy',                   '{"type":"trait","key":"csat","op":"gte","value":4.5}'),
  (58, 'Promoters',               '{"type":"trait","key":"nps","op":"gte","value":9}'),
  (59, 'Detractors',              '{"type":"trait","key":"nps","op":"lte","value":3}'),
  (60, 'Recent buyers',           '{"type":"trait","key":"last_order_at","op":"within_last","value":"30 days"}'),
  (61, 'Lapsed buyers',           '{"type":"trait","key":"last_order_at","op":"not_within_last","value":"150 days"}'),
  (62, 'Never ordered',           '{"type":"trait","key":"last_order_at","op":"is_not_set"}'),
  (63, 'Corporate network',       '{"type":"trait","key":"ip","op":"in_cidr","value":["10.0.0.0/8","172.16.0.0/12"]}'),
  (64, 'Home network',            '{"type":"trait","key":"ip","op":"in_cidr","value":"192.168.0.0/16"}'),
  (65, 'German or French',        '{"type":"trait","key":"lang","op":"in","value":["de","fr"]}'),
  (66, 'Beta opt-in',             '{"type":"trait","key":"beta_opt_in","op":"eq","value":true}'),
  (67, 'Beta opt-out',            '{"type":"trait","key":"beta_opt_in","op":"eq","value":false}'),
  (68, 'NPS 0, 5 or 10',          '{"type":"trait","key":"nps","op":"modulo","value":[5,0]}'),
  -- percentage rollouts
  (69, 'Rollout 10%',             '{"type":"percentage","op":"lt","value":10,"salt":"rollout-a"}'),
  (70, 'Rollout 25%',             '{"type":"percentage","op":"lt","value":25,"salt":"rollout-b"}'),
  (71, 'Holdout 5%',              '{"type":"percentage","op":"gte","value":95,"salt":"holdout"}'),
  (72, 'A/B bucket B',            '{"type":"percentage","op":"between","value":[50,74.99],"salt":"ab-1"}'),
  -- combinations
  (73, 'VIP customers',           '{"or":[{"type":"attribute","field":"plan","op":"eq","value":"vip"},{"type":"attribute","field":"lifetime_value","op":"gte","value":15000}]}'),
  (74, 'At-risk paying',          '{"and":[{"type":"segment","op":"in","value":"Paid plans"},{"type":"attribute","field":"last_seen_at","op":"not_within_last","value":"60 days"}]}'),
  (75, 'Engaged trials',          '{"and":[{"type":"attribute","field":"plan","op":"eq","value":"trial"},{"type":"attribute","field":"last_seen_at","op":"within_last","value":"7 days"}]}'),
  (76, 'EU paid',                 '{"and":[{"type":"segment","op":"in","value":"EU"},{"type":"segment","op":"in","value":"Paid plans"}]}'),
  (77, 'EU newsletter',           '{"and":[{"type":"attribute","field":"country","op":"in","value":["GB","DE","FR","ES","NL"]},{"type":"attribute","field":"tags","op":"contains","value":"newsletter"}]}'),
  (78, 'US enterprise prospects', '{"and":[{"type":"attribute","field":"country","op":"eq","value":"US"},{"type":"trait","path":["company","size"],"op":"gte","value":1000},{"type":"attribute","field":"plan","op":"in","value":["free","trial","starter"]}]}'),
  (79, 'Upsell candidates',       '{"and":[{"type":"attribute","field":"plan","op":"in","value":["starter","pro"]},{"type":"attribute","field":"seats","op":"gte","value":50}]}'),
  (80, 'Churn risk',              '{"or":[{"and":[{"type":"attribute","field":"tags","op":"contains","value":"churn-risk"}]},{"and":[{"type":"trait","key":"csat","op":"lt","value":2.0},{"type":"attribute","field":"last_seen_at","op":"not_within_last","value":"60 days"}]}]}'),
  (81, 'Power users',             '{"and":[{"type":"attribute","field":"tags","as":"length","op":"gte","value":2},{"type":"attribute","field":"last_seen_at","op":"within_last","value":"14 days"}]}'),
  (82, 'Mobile on new app',       '{"and":[{"type":"attribute","field":"tags","op":"contains","value":"mobile"},{"type":"attribute","field":"app_version","as":"semver","op":"gte","value":"2.0.0"}]}'),
  (83, 'Onboarding',              '{"and":[{"type":"attribute","field":"signup_at","op":"within_last","value":"60 days"},{"type":"attribute","field":"plan","op":"neq","value":"free"}]}'),
  (84, 'Unhappy paying',          '{"and":[{"type":"segment","op":"in","value":"Unhappy"},{"type":"segment","op":"not_in","value":"Free plan"}]}'),
  (85, 'Happy or promoter',       '{"or":[{"type":"trait","key":"csat","op":"gte","value":4.5},{"type":"trait","key":"nps","op":"gte","value":9}]}'),
  (86, 'Referral targets',        '{"and":[{"type":"trait","key":"nps","op":"gte","value":9},{"type":"attribute","field":"tags","op":"not_contains","value":"referral"}]}'),
  (87, 'Webinar invitees',        '{"or":[{"type":"attribute","field":"tags","op":"contains","value":"webinar"},{"and":[{"type":"attribute","field":"plan","op":"eq","value":"trial"},{"type":"attribute","field":"country","op":"in","value":["US","GB","CA"]}]}]}'),
  (88, 'Win-back',                '{"and":[{"type":"attribute","field":"plan","op":"eq","value":"free"},{"type":"attribute","field":"signup_at","op":"before","value":"@-365d"},{"type":"attribute","field":"last_seen_at","op":"not_within_last","value":"30 days"}]}'),
  (89, 'API enterprise',          '{"and":[{"type":"attribute","field":"tags","op":"contains","value":"api"},{"or":[{"type":"attribute","field":"plan","op":"eq","value":"enterprise"},{"type":"attribute","field":"seats","op":"gte","value":200}]}]}'),
  (90, 'High-value EU',           '{"and":[{"type":"segment","op":"in","value":"EU"},{"type":"attribute","field":"lifetime_value","op":"gte","value":5000}]}'),
  (91, 'Rest of world',           '{"none":[{"type":"attribute","field":"country","op":"in","value":["GB","DE","FR","ES","NL"]},{"type":"attribute","field":"country","op":"in","value":["US","CA"]}]}'),
  (92, 'Neither free nor trial',  '{"type":"attribute","field":"plan","op":"in","value":["free","trial"],"negate":true}'),
  (93, 'US consumer email',       '{"and":[{"type":"attribute","field":"country","op":"eq","value":"US"},{"or":[{"type":"attribute","field":"email","op":"ends_with","value":"@gmail.com"},{"type":"attribute","field":"email","op":"ends_with","value":"@yahoo.com"}]}]}'),
  (94, 'Large fintech',           '{"and":[{"type":"trait","path":["company","industry"],"op":"eq","value":"fintech"},{"type":"trait","path":["company","size"],"op":"gte","value":1000}]}'),
  (95, 'Small retail',            '{"and":[{"type":"trait","path":["company","industry"],"op":"eq","value":"retail"},{"type":"trait","path":["company","size"],"op":"lt","value":500}]}'),
  (96, 'Active recent buyers',    '{"and":[{"type":"trait","key":"last_order_at","op":"within_last","value":"60 days"},{"type":"attribute","field":"last_seen_at","op":"within_last","value":"30 days"}]}'),
  (97, 'Seats 5 to 20',           '{"type":"attribute","field":"seats","op":"between","value":[5,20]}'),
  (98, 'Org group A',             '{"type":"attribute","field":"org_id","op":"in","value":["org00","org01","org02","org03","org04","org05","org06","org07","org08","org09"]}'),
  (99, 'Orgs ending in 0 or 5',   '{"type":"attribute","field":"org_id","op":"regex","value":"[05]$"}'),
  (100,'EU rollout 50%',          '{"and":[{"type":"segment","op":"in","value":"EU"},{"type":"percentage","op":"lt","value":50,"salt":"eu-rollout"}]}')
  ) AS v(n, name, def);

-- ----------------------------------------------------------------
-- JSON rule -> SQL predicate over public.contacts, for the subset of the
-- rule language the definitions above use, following docs/rules.md:
-- positive operators are false on a missing value (coalesce(..., false)),
-- their negative twins are exact negations, negate inverts the result.
-- ----------------------------------------------------------------

-- A JSON scalar as an SQL literal of the given kind.
CREATE FUNCTION bench.lit(v jsonb, kind text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE kind
             WHEN 'number'    THEN '(' || (v #>> '{}')::numeric || ')::numeric'
             WHEN 'boolean'   THEN (v #>> '{}')::boolean::text
             WHEN 'timestamp' THEN quote_literal(v #>> '{}') || '::timestamptz'
             WHEN 'inet'      THEN quote_literal(v #>> '{}') || '::inet'
             WHEN 'semver'    THEN quote_literal(string_to_array(v #>> '{}', '.')::int[]::text) || '::int[]'
             ELSE quote_literal(v #>> '{}')
           END
$$;

CREATE FUNCTION bench.rule_sql(node jsonb) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    op       text := node->>'op';
    v        jsonb := node->'value';
    neg      boolean := false;
    kind     text;
    f        text;
    p        text;
    ci       boolean := coalesce((node->>'case_sensitive')::boolean, true) = false;
    coltype  text;
    sep      text;
    grp      jsonb;
BEGIN
    -- groups
    IF node ?| ARRAY['and', 'all', 'or', 'any', 'none'] THEN
        grp := coalesce(node->'and', node->'all', node->'or', node->'any', node->'none');
        sep := CASE WHEN node ?| ARRAY['and', 'all'] THEN ' AND ' ELSE ' OR ' END;
        SELECT coalesce(string_agg('(' || bench.rule_sql(e) || ')', sep ORDER BY i),
                        CASE WHEN sep = ' AND ' THEN 'true' ELSE 'false' END)
          INTO p FROM jsonb_array_elements(grp) WITH ORDINALITY AS x(e, i);
        RETURN CASE WHEN node ? 'none' THEN 'NOT (' || p || ')' ELSE p END;
    ELSIF node ? 'not' THEN
        RETURN 'NOT (' || bench.rule_sql(node->'not') || ')';
    END IF;

    IF op IN ('neq', 'not_in', 'not_contains', 'not_regex', 'not_within_last', 'is_not_set') THEN
        neg := true;
        op := CASE op WHEN 'neq' THEN 'eq' WHEN 'not_in' THEN 'in' WHEN 'not_contains' THEN 'contains'
                      WHEN 'not_regex' THEN 'regex' WHEN 'not_within_last' THEN 'within_last'
                      ELSE 'is_set' END;
    END IF;

    CASE node->>'type'
    WHEN 'segment' THEN
        SELECT '(' || bench.rule_sql(s.definition) || ')' INTO p
          FROM bench.seg_def s WHERE s.name = node->>'value';
        IF p IS NULL THEN RAISE EXCEPTION 'unknown segment %', node->>'value'; END IF;
        p := CASE WHEN node->>'op' = 'not_in' THEN 'NOT ' || p ELSE p END;
        RETURN CASE WHEN (node->>'negate')::boolean THEN 'NOT (' || p || ')' ELSE p END;
    WHEN 'percentage' THEN
        f := format('(((''x'' || left(md5(%L || '':'' || id::text), 8))::bit(32)::bigint %% 10000) / 100.0)',
                    node->>'salt');
        kind := 'number';
    WHEN 'attribute' THEN
        SELECT format_type(a.atttypid, NULL) INTO coltype
          FROM pg_attribute a
         WHERE a.attrelid = 'public.contacts'::regclass AND a.attname = node->>'field' AND NOT a.attisdropped;
        IF coltype IS NULL THEN RAISE EXCEPTION 'unknown column %', node->>'field'; END IF;
        f := quote_ident(node->>'field');
        kind := CASE WHEN node->>'as' = 'semver' THEN 'semver'
                     WHEN node->>'as' = 'length' THEN 'number'
                     WHEN coltype IN ('numeric', 'integer', 'bigint') THEN 'number'
                     WHEN coltype = 'boolean' THEN 'boolean'
                     WHEN coltype LIKE 'timestamp%' THEN 'timestamp'
                     WHEN coltype = 'text[]' THEN 'array'
                     ELSE 'text' END;
        IF node->>'as' = 'semver' THEN
            f := format('string_to_array(%s, ''.'')::int[]', f);
        ELSIF node->>'as' = 'length' THEN
            f := CASE WHEN coltype = 'text[]' THEN format('cardinality(%s)', f)
                      ELSE format('char_length(%s)', f) END;
        END IF;
    WHEN 'trait' THEN
        f := format('custom_data #> %L',
                    CASE WHEN node ? 'key' THEN ARRAY[node->>'key'] ELSE ARRAY(SELECT jsonb_array_elements_text(node->'path')) END);
        IF op = 'is_set' THEN
            p := format('jsonb_typeof(%s) <> ''null''', f);
        END IF;
        kind := CASE WHEN op IN ('before', 'after', 'within_last', 'within_next') THEN 'timestamp'
                     WHEN op = 'in_cidr' THEN 'inet'
                     WHEN op = 'modulo' THEN 'number'
                     WHEN op IN ('contains', 'starts_with', 'ends_with', 'regex') THEN 'text'
                     WHEN jsonb_typeof(CASE WHEN jsonb_typeof(v) = 'array' THEN v->0 ELSE v END) = 'number' THEN 'number'
                     WHEN jsonb_typeof(CASE WHEN jsonb_typeof(v) = 'array' THEN v->0 ELSE v END) = 'boolean' THEN 'boolean'
                     ELSE 'text' END;
        f := CASE kind WHEN 'number' THEN format('(%s #>> ''{}'')::numeric', f)
                       WHEN 'boolean' THEN format('(%s #>> ''{}'')::boolean', f)
                       WHEN 'timestamp' THEN format('(%s #>> ''{}'')::timestamptz', f)
                       WHEN 'inet' THEN format('(%s #>> ''{}'')::inet', f)
                       ELSE format('(%s #>> ''{}'')', f) END;
    ELSE
        RAISE EXCEPTION 'condition type % is not supported by bench.rule_sql', node->>'type';
    END CASE;

    IF ci THEN
        f := format('lower(%s)', f);
    END IF;

    IF p IS NULL THEN
        p := CASE op
            WHEN 'eq'  THEN format('%s = %s', f, bench.lit(v, kind))
            WHEN 'gt'  THEN format('%s > %s', f, bench.lit(v, kind))
            WHEN 'gte' THEN format('%s >= %s', f, bench.lit(v, kind))
            WHEN 'lt'  THEN format('%s < %s', f, bench.lit(v, kind))
            WHEN 'lte' THEN format('%s <= %s', f, bench.lit(v, kind))
            WHEN 'between' THEN format('%s BETWEEN %s AND %s', f, bench.lit(v->0, kind), bench.lit(v->1, kind))
            WHEN 'in' THEN CASE WHEN jsonb_array_length(v) = 0 THEN 'false' ELSE
                 format('%s IN (%s)', f, (SELECT string_agg(CASE WHEN ci THEN 'lower(' || bench.lit(e, kind) || ')'
                                                                 ELSE bench.lit(e, kind) END, ', ')
                                            FROM jsonb_array_elements(v) e)) END
            WHEN 'contains' THEN CASE WHEN kind = 'array' THEN format('%s = ANY (%s)', bench.lit(v, 'text'), f)
                                      ELSE format('strpos(%s, %s) > 0', f, bench.lit(v, 'text')) END
            WHEN 'starts_with' THEN format('starts_with(%s, %s)', f, bench.lit(v, 'text'))
            WHEN 'ends_with' THEN format('right(%s, %s) = %s', f, char_length(v #>> '{}'),
                                         CASE WHEN ci THEN 'lower(' || bench.lit(v, 'text') || ')' ELSE bench.lit(v, 'text') END)
            WHEN 'regex' THEN format('%s %s %s', f, CASE WHEN ci THEN '~*' ELSE '~' END, bench.lit(v, 'text'))
            WHEN 'is_set' THEN format('%s IS NOT NULL', f)
            WHEN 'modulo' THEN format('mod(%s, %s) = %s', f, bench.lit(v->0, 'number'), bench.lit(v->1, 'number'))
            WHEN 'before' THEN format('%s < %s', f, bench.lit(v, 'timestamp'))
            WHEN 'after' THEN format('%s > %s', f, bench.lit(v, 'timestamp'))
            WHEN 'within_last' THEN format('%s >= now() - %L::interval', f, v #>> '{}')
            WHEN 'within_next' THEN format('%s BETWEEN now() AND now() + %L::interval', f, v #>> '{}')
            WHEN 'in_cidr' THEN format('%s <<= ANY (%L::inet[])', f,
                 CASE WHEN jsonb_typeof(v) = 'array' THEN ARRAY(SELECT jsonb_array_elements_text(v))::text
                      ELSE ARRAY[v #>> '{}']::text END)
            END;
        IF p IS NULL THEN RAISE EXCEPTION 'operator % is not supported by bench.rule_sql', op; END IF;
        IF ci AND op = 'eq' THEN
            p := format('%s = lower(%s)', f, bench.lit(v, kind));
        END IF;
    END IF;

    p := format('coalesce(%s, false)', p);
    IF neg THEN p := 'NOT ' || p; END IF;
    IF coalesce((node->>'negate')::boolean, false) THEN p := 'NOT (' || p || ')'; END IF;
    RETURN p;
END
$$;

ALTER TABLE bench.seg_def ADD COLUMN predicate text;
UPDATE bench.seg_def SET predicate = bench.rule_sql(definition);

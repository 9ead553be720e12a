-- 25: the reading functions are declared PARALLEL SAFE, so the planner may
-- run them in parallel workers: processes with a catalog cache of their own,
-- loaded with the query's snapshot (src/catalog.c), and the session's
-- tenant passed to them as a setting.  Every answer must be the one the
-- session's own process gives: for every contact, by id and by name, for
-- the gate, for a tenant's role, and through segments.membership.
-- (force_parallel_mode puts the whole query under a Gather run by a worker;
-- when none can start, the leader runs it, with the same answers.)  A
-- database of its own, the worker off.
\set VERBOSITY terse
SET client_min_messages = warning;
DROP DATABASE IF EXISTS segments_parallel;
DROP ROLE IF EXISTS par_owner, par_acme;
RESET client_min_messages;
CREATE DATABASE segments_parallel;
ALTER DATABASE segments_parallel SET segments.enabled = off;
CREATE ROLE par_owner LOGIN;
CREATE ROLE par_acme LOGIN IN ROLE segments_read;
ALTER ROLE par_acme SET segments.tenant = 'acme';

\c segments_parallel
CREATE EXTENSION segments;
GRANT CREATE ON SCHEMA public TO par_owner;

\c - par_owner
CREATE TABLE contacts (id bigint PRIMARY KEY, org text, plan text, seats int);
INSERT INTO contacts
SELECT g, CASE WHEN g % 5 = 0 THEN NULL WHEN g % 2 = 0 THEN 'acme' ELSE 'globex' END,
       (ARRAY['vip', 'free', 'pro'])[g % 3 + 1], g % 40
  FROM generate_series(1, 300) g;
GRANT SELECT ON contacts TO par_acme;

\c - postgres
SELECT segments.configure('public.contacts', 'id', tenant_column => 'org');
SELECT segments.create_segment('VIP', '{"type":"attribute","field":"plan","op":"eq","value":"vip"}') AS vip \gset
SELECT segments.create_segment('Big', '{"type":"attribute","field":"seats","op":"gte","value":20}', tenant => 'acme') AS big \gset
SELECT segments.create_segment('Big', '{"type":"attribute","field":"seats","op":"gte","value":30}', tenant => 'globex') AS big_globex \gset
SELECT segments.refresh();

-- the answers the session's own process gives, kept in a plain table (a
-- temporary one would keep the queries below out of parallel workers)
CREATE TABLE public.answers (who text, id bigint, vip_by_id boolean, vip_by_name boolean,
                             big_by_name boolean, gated boolean, segs uuid[]);
GRANT SELECT, INSERT ON public.answers TO par_acme;
\set answers 'SELECT c.id, segments.segment_is_member(c.id, ' :'vip' '::uuid), segments.segment_is_member(c.id, ''VIP''), segments.segment_is_member(c.id, ''Big''), segments.filter_restricted(c.id, ARRAY[' :'big' ', ' :'big_globex' ']::uuid[]), segments._contact_segment_ids(c.id) FROM public.contacts c'
SET force_parallel_mode = off;
INSERT INTO public.answers SELECT 'serial admin', a.* FROM (:answers) a;

\c - par_acme
SET force_parallel_mode = off;
INSERT INTO public.answers SELECT 'serial acme', a.* FROM (:answers) a;

-- the same in a parallel worker: the plan is a Gather over the query
SET force_parallel_mode = on;
EXPLAIN (COSTS OFF) SELECT count(*) FROM (:answers) a;
SELECT count(*) AS acme_rows,
       count(*) FILTER (WHERE p IS DISTINCT FROM s) AS acme_differences
  FROM (SELECT a AS p, a.id FROM (:answers) a) x
  JOIN (SELECT (a.id, a.vip_by_id, a.vip_by_name, a.big_by_name, a.gated, a.segs) AS s, a.id
          FROM public.answers a WHERE who = 'serial acme') y USING (id);
SELECT count(*) AS acme_members FROM segments.membership m WHERE m.segment_id = :'big';
RESET force_parallel_mode;
SELECT count(*) AS acme_members_serial FROM segments.membership m WHERE m.segment_id = :'big';

\c - postgres
SET force_parallel_mode = on;
SELECT count(*) AS admin_rows,
       count(*) FILTER (WHERE p IS DISTINCT FROM s) AS admin_differences
  FROM (SELECT a AS p, a.id FROM (:answers) a) x
  JOIN (SELECT (a.id, a.vip_by_id, a.vip_by_name, a.big_by_name, a.gated, a.segs) AS s, a.id
          FROM public.answers a WHERE who = 'serial admin') y USING (id);
-- a segment created after the session cached its catalog: a worker's query
-- knows it, and so does the session's own process after the query
SELECT segments.segment_is_member(2, 'VIP') AS cached_vip;
SELECT segments.create_segment('Late', '{"type":"attribute","field":"plan","op":"eq","value":"free"}') AS late \gset
SELECT segments.refresh();
SELECT count(*) FILTER (WHERE segments.segment_is_member(id, 'Late')) AS late_members_parallel,
       count(*) FILTER (WHERE plan = 'free') AS free_contacts
  FROM public.contacts;
RESET force_parallel_mode;
SELECT count(*) FILTER (WHERE segments.segment_is_member(id, 'Late')) AS late_members_serial
  FROM public.contacts;
-- the serial answers themselves: the admin sees the 100 vip contacts, the
-- acme role the 40 of its tenant (a tenant sees its own contacts only); the
-- gate lets the admin through either tenant's Big, the acme role through
-- acme's only; 'Big' is looked up in each contact's tenant
SELECT who, count(*) FILTER (WHERE vip_by_id AND vip_by_name) AS vip,
       count(*) FILTER (WHERE big_by_name) AS big_by_name, count(*) FILTER (WHERE gated) AS gated
  FROM public.answers GROUP BY who ORDER BY who;
SELECT count(*) FILTER (WHERE plan = 'vip') AS vip_contacts,
       count(*) FILTER (WHERE plan = 'vip' AND org = 'acme') AS acme_vip,
       count(*) FILTER (WHERE org = 'acme' AND seats >= 20) AS acme_big,
       count(*) FILTER (WHERE org = 'acme' AND seats >= 20 OR org = 'globex' AND seats >= 30) AS either_big
  FROM public.contacts;
-- the answers differ between the roles where they should (tenant applied)
SELECT count(*) FILTER (WHERE a.gated IS DISTINCT FROM b.gated) > 0 AS gates_differ,
       count(*) FILTER (WHERE a.segs IS DISTINCT FROM b.segs) > 0 AS segments_differ
  FROM public.answers a JOIN public.answers b USING (id)
 WHERE a.who = 'serial admin' AND b.who = 'serial acme';

\c postgres
SET client_min_messages = warning;
DROP DATABASE segments_parallel;
DROP ROLE par_owner, par_acme;

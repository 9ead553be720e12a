-- The GIN index of segments.member finds every stored row, whenever a
-- pass adds its entries: a pass gathers them across its statements and
-- adds them at its end, or midway when maintenance_work_mem is full
-- (src/member_bulk.c).  Each check counts every segment's members through
-- the index (a bitmap scan of member_segs_idx) and from the rows
-- themselves, inside the pass's own transaction: after a first pass,
-- after passes that replace rows scattered over a vacuumed table, and with
-- maintenance_work_mem at its least.  A DBA's trigger on segments.member
-- that reads the table through the index sees, at each statement, every
-- row written before it (entries do not wait while such a trigger is
-- there).  Contacts are written by their owner role, segments managed and
-- refreshed by a segments_admin role; the worker is off in this database.
\set VERBOSITY terse
SELECT current_user AS superuser \gset
SET client_min_messages = warning;
DROP DATABASE IF EXISTS segments_gin_deferred;
DROP ROLE IF EXISTS gind_owner, gind_admin;
RESET client_min_messages;
CREATE DATABASE segments_gin_deferred;
ALTER DATABASE segments_gin_deferred SET segments.enabled = off;
CREATE ROLE gind_owner LOGIN;
CREATE ROLE gind_admin LOGIN IN ROLE segments_admin;

\c segments_gin_deferred
CREATE EXTENSION segments;
GRANT CREATE ON SCHEMA public TO gind_owner;

-- Per segment: its members through the GIN index, and from the stored rows.
CREATE FUNCTION public.index_vs_rows()
RETURNS TABLE (segments bigint, memberships bigint, mismatched bigint, index_used boolean)
LANGUAGE plpgsql SECURITY DEFINER SET enable_seqscan = off SET search_path = pg_catalog AS $$
DECLARE
    plan text;
BEGIN
    index_used := false;
    FOR plan IN EXECUTE 'EXPLAIN (COSTS OFF) SELECT count(*) FROM segments.member m'
                        ' WHERE segments._member_segs(m.data) @> ARRAY[1]' LOOP
        index_used := index_used OR plan LIKE '%member_segs_idx%';
    END LOOP;
    SELECT count(*), sum(c.by_index), count(*) FILTER (WHERE c.by_index <> c.by_rows)
      INTO segments, memberships, mismatched
      FROM (SELECT s.num,
                   (SELECT count(*) FROM segments.member m
                     WHERE segments._member_segs(m.data) @> ARRAY[s.num]) AS by_index,
                   (SELECT count(*) FROM segments.member m
                     WHERE s.num = ANY (segments._member_segs(m.data))) AS by_rows
              FROM segments.segment s) c;
    RETURN NEXT;
END
$$;
GRANT EXECUTE ON FUNCTION public.index_vs_rows() TO gind_admin;

-- 16,000 contacts, n a permutation of 1 to 16,000 (each batch of 4,096
-- holds as many members as the next); segment k (1 to 20) holds those with
-- n <= 480 k: 100,800 memberships, rows of 0 to 20 segments.
\c - gind_owner
CREATE TABLE contacts (id bigint PRIMARY KEY, n int NOT NULL);
INSERT INTO contacts SELECT g, (g * 7919) % 16000 + 1 FROM generate_series(1, 16000) g;
GRANT SELECT ON contacts TO gind_admin;
\c - :superuser
SELECT segments.configure('public.contacts', 'id');
-- no VACUUM but this file's own
ALTER TABLE segments.member SET (autovacuum_enabled = off);
\c - gind_admin
SELECT count(segments.create_segment('s' || k,
         format('{"type": "attribute", "field": "n", "op": "lte", "value": %s}', 480 * k)::jsonb))
  FROM generate_series(1, 20) k;

-- A first pass into the empty table: the index finds every row before the
-- pass's transaction ends.
BEGIN;
SELECT segments.refresh();
SELECT * FROM public.index_vs_rows();
COMMIT;
SELECT * FROM public.index_vs_rows();

-- Every contact's membership reversed, the old row versions vacuumed away:
-- the pass's new versions land in the free space all over the table.
\c - gind_owner
UPDATE contacts SET n = 16001 - n;
\c - :superuser
VACUUM segments.member;
\c - gind_admin
BEGIN;
SELECT segments.refresh();
SELECT * FROM public.index_vs_rows();
COMMIT;

-- maintenance_work_mem at its least holds 65,536 entries: a pass of
-- 100,800 in four statements adds those of the first three after the
-- third, and the rest at its end.
\c - gind_owner
UPDATE contacts SET n = 16001 - n;
\c - :superuser
VACUUM segments.member;
\c - gind_admin
SET maintenance_work_mem = '1MB';
BEGIN;
SELECT segments.refresh();
SELECT * FROM public.index_vs_rows();
COMMIT;
RESET maintenance_work_mem;

-- A DBA's statement trigger counting segment s20 through the index: at
-- every statement of the pass it finds what the rows hold.
\c - :superuser
CREATE TABLE public.trigger_seen (by_index bigint, by_rows bigint);
CREATE FUNCTION public.count_s20() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off AS $$
DECLARE
    num int := (SELECT s.num FROM segments.segment s WHERE s.name = 's20');
BEGIN
    INSERT INTO public.trigger_seen
    SELECT (SELECT count(*) FROM segments.member m WHERE segments._member_segs(m.data) @> ARRAY[num]),
           (SELECT count(*) FROM segments.member m WHERE num = ANY (segments._member_segs(m.data)));
    RETURN NULL;
END
$$;
CREATE TRIGGER count_s20 AFTER INSERT OR UPDATE ON segments.member
    FOR EACH STATEMENT EXECUTE FUNCTION public.count_s20();
TRUNCATE segments.member;
SELECT segments.refresh();
SELECT count(*) AS statements, count(*) FILTER (WHERE by_index <> by_rows) AS mismatched,
       max(by_rows) AS s20_members
  FROM public.trigger_seen;
DROP TRIGGER count_s20 ON segments.member;
SELECT * FROM public.index_vs_rows();

\c postgres
SET client_min_messages = warning;
DROP DATABASE segments_gin_deferred;
DROP ROLE gind_owner, gind_admin;

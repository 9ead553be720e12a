-- The database of the capture and worker benchmarks (bench/capture_cost.sh,
-- bench/worker_stream.sh), run after bench/data.sql and bench/segments.sql:
-- a column no rule reads (note), segments configured on the contacts, and
-- the segments of bench.seg_def numbered :segs created and evaluated.
-- Default: the 20 reading plan, country, lifetime_value and seats, none
-- depending on the time, so that the worker's work is applying changes.
\if :{?segs}
\else
\set segs '1,2,3,4,5,7,8,9,10,11,12,26,27,28,29,30,31,32,33,73'
\endif
\set ON_ERROR_STOP on
ALTER TABLE public.contacts ADD COLUMN note text;
VACUUM ANALYZE public.contacts;
CREATE EXTENSION segments;
SELECT segments.configure('public.contacts', 'id', traits_column => 'custom_data');
SELECT count(segments.create_segment(name, definition))
  FROM (SELECT name, definition FROM bench.seg_def WHERE n IN (:segs) ORDER BY n) s;
SELECT segments.wait('10 min');

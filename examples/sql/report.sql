-- A report sliced by segment in plain SQL: revenue and buyers of the last
-- 30 days per segment, the application's orders joined to membership.  A
-- contact in several segments counts in each.
SELECT s.name AS segment,
       count(DISTINCT o.contact_id) AS buyers,
       sum(o.amount) AS revenue
  FROM orders o
  JOIN segments.membership m ON m.contact_id = o.contact_id
  JOIN segments.segments s ON s.id = m.segment_id
 WHERE o.ordered_at >= now() - interval '30 days'
 GROUP BY s.name
 ORDER BY revenue DESC, s.name;

-- Members of one segment, for an export (by name: a typo is an error, not
-- an empty file).
SELECT count(*) AS vip_members FROM segments.segment_members('VIP customers');

-- A report on the past sliced by the segments contacts were in at the time:
-- the last quarter's support conversations and their satisfaction per
-- segment, each conversation counted in the segments its contact belonged
-- to when it started -- not in today's segments (a contact who became a VIP
-- last week does not turn last month's trial conversations into VIP ones).
-- segments.membership_history has one row per period of membership,
-- valid_from inclusive, valid_to exclusive (NULL: still a member).
SELECT s.name AS segment,
       count(*) AS conversations,
       round(avg(c.csat), 2) AS avg_csat
  FROM conversations c
  JOIN segments.membership_history h
    ON h.contact_id = c.contact_id
   AND h.valid_from <= c.started_at
   AND (h.valid_to IS NULL OR c.started_at < h.valid_to)
  JOIN segments.segments s ON s.id = h.segment_id
 WHERE c.started_at >= now() - interval '3 months'
 GROUP BY s.name
 ORDER BY s.name;

-- The same question for one conversation: was its contact a VIP then?
SELECT c.id, segments.was_member(c.contact_id, 'VIP customers', c.started_at) AS vip_then
  FROM conversations c
 ORDER BY c.id;

-- Daily member counts of a segment for a chart: the last 7 days, the count
-- at the end of each day (UTC).
SELECT day, members FROM segments.segment_counts('VIP customers', current_date - 6, current_date);

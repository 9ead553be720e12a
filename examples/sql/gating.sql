-- Gating in plain SQL: which actions may contact 42 use?  The contact is a
-- bound parameter, as an application (or a reporting tool) sends it.
PREPARE actions_for(bigint) AS
    SELECT name FROM actions
     WHERE segments.filter_restricted($1, restricted_to)
     ORDER BY id;
EXECUTE actions_for(42);
EXECUTE actions_for(9000000001);

-- Is contact 42 in "VIP customers"?  By name, and by id.
SELECT segments.segment_is_member(42, 'VIP customers') AS vip_by_name;
SELECT segments.segment_is_member(42, s.id) AS vip_by_id
  FROM segments.segments s WHERE s.name = 'VIP customers';

-- Gating for one item that is not in a table: restricted to these segments.
SELECT segments.filter_restricted(42, ARRAY(SELECT id FROM segments.segments
                                            WHERE name IN ('Trial users', 'Germany')))
       AS may_use_trial_or_germany_item;

-- The segments contact 42 is in.
SELECT name FROM segments.contact_segments(42) ORDER BY name;

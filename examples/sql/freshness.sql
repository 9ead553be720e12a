-- Waiting for freshness in plain SQL: change a contact, commit (psql
-- commits each statement), wait until membership reflects it, read.
UPDATE contacts SET plan = 'vip' WHERE id = 9000000001;
SELECT segments.wait('5 s') AS fresh;
SELECT segments.segment_is_member(9000000001, 'VIP customers') AS now_vip;

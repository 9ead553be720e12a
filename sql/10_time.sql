-- 10: before / after (strict), within_last / not_within_last / within_next
-- (inclusive, relative to now()), date-only and no-offset values as UTC.
\set VERBOSITY default
\set SHOW_CONTEXT never
\set ON_ERROR_STOP 0
-- Definition values are parsed as UTC, not in the session's time zone.
SET TimeZone = 'Pacific/Auckland';

-- last_seen_at relative to setup: 1 -2d, 2 -40d, 3 -10d, 4 NULL, 5 +3d, 6 -29d, 7 -31d,
-- 8 -1h, 9 +40d, 10 -400d, 11 +10d, 12 -6d, 13 -60d, 14 -15d, 15 -5d, 16 -90d, 17-30 -5g days.
SELECT t('{"type":"attribute","field":"last_seen_at","op":"within_last","value":"30 days"}') AS within_30d;      -- {1,3,5,6,8,9,11,12,14,15}: future included
SELECT t('{"type":"attribute","field":"last_seen_at","op":"not_within_last","value":"30 days"}') AS not_within_30d; -- {2,4,7,10,13,16,17..30}
SELECT t('{"type":"attribute","field":"last_seen_at","op":"within_last","value":"1 day"}') AS within_1d;         -- {5,8,9,11}
SELECT t('{"type":"attribute","field":"last_seen_at","op":"within_last","value":"720 hours"}') AS within_720h;   -- {1,3,5,6,8,9,11,12,14,15}
SELECT t('{"type":"attribute","field":"last_seen_at","op":"within_last","value":"4 weeks 2 days"}') AS within_4w2d; -- {1,3,5,6,8,9,11,12,14,15}
SELECT excluded(t('{"type":"attribute","field":"last_seen_at","op":"within_last","value":"1 year"}')) AS within_1y_excludes; -- {4,10}
SELECT t('{"type":"attribute","field":"last_seen_at","op":"within_next","value":"7 days"}') AS next_7d;          -- {5}
SELECT t('{"type":"attribute","field":"last_seen_at","op":"within_next","value":"2 weeks"}') AS next_2w;         -- {5,11}
SELECT t('{"type":"attribute","field":"last_seen_at","op":"within_next","value":"60 days"}') AS next_60d;        -- {5,9,11}
SELECT t('{"type":"attribute","field":"last_seen_at","op":"within_last","value":"30 days","negate":true}') AS within_negated; -- {2,4,7,10,13,16,17..30}

-- Inclusive bounds: inside one transaction now() is fixed, so a value exactly
-- at now() - interval, at now() and at now() + interval matches.
BEGIN;
SET LOCAL ROLE regress_app;  -- the application writes contacts
UPDATE contacts SET last_seen_at = now() - interval '30 days' WHERE id = 20;
UPDATE contacts SET last_seen_at = now() + interval '7 days' WHERE id = 21;
UPDATE contacts SET last_seen_at = now() WHERE id = 22;
UPDATE contacts SET last_seen_at = now() - interval '30 days' - interval '1 microsecond' WHERE id = 23;
UPDATE contacts SET last_seen_at = now() + interval '7 days' + interval '1 microsecond' WHERE id = 24;
RESET ROLE;
SELECT t('{"type":"attribute","field":"last_seen_at","op":"within_last","value":"30 days"}') AS boundary_within_last;     -- {1,3,5,6,8,9,11,12,14,15,20,21,22,24}
SELECT t('{"type":"attribute","field":"last_seen_at","op":"not_within_last","value":"30 days"}') AS boundary_not_within_last; -- {2,4,7,10,13,16,17,18,19,23,25..30}
SELECT t('{"type":"attribute","field":"last_seen_at","op":"within_next","value":"7 days"}') AS boundary_within_next;      -- {5,21,22}
SELECT t('{"type":"attribute","field":"last_seen_at","op":"within_last","value":"0 seconds"}') AS boundary_zero;          -- {5,9,11,21,22,24}
ROLLBACK;

-- before / after are strict (signup_at: 1, 5, 10 at 2023-01-15 10:00 UTC; 7 one second
-- later; 9 one microsecond earlier).
SELECT t('{"type":"attribute","field":"signup_at","op":"before","value":"2023-01-15T10:00:00Z"}') AS before_;        -- {6,8,9,12,13,14,15,16,17..30}
SELECT t('{"type":"attribute","field":"signup_at","op":"after","value":"2023-01-15T10:00:00Z"}') AS after_;          -- {2,3,7,11}
SELECT t('{"type":"attribute","field":"signup_at","op":"before","value":"2023-01-15T10:00:00.000001Z"}') AS before_plus_1us; -- {1,5,6,8,9,10,12,13,14,15,16,17..30}
SELECT t('{"type":"attribute","field":"signup_at","op":"after","value":"2023-01-15T09:59:59.999999Z"}') AS after_minus_1us;  -- {1,2,3,5,7,10,11}
SELECT t('{"type":"attribute","field":"signup_at","op":"after","value":"2023-01-15T10:00:00","negate":true}') AS not_after; -- {1,4,5,6,8,9,10,12,13,14,15,16,17..30}
-- No offset means UTC: the session's Pacific/Auckland (UTC+13 in January) plays no part.
SELECT t('{"type":"attribute","field":"signup_at","op":"between","value":["2023-01-15T09:00:00","2023-01-15T10:00:00"]}') AS no_offset_utc; -- {1,5,9,10}
SELECT t('{"type":"attribute","field":"signup_at","op":"after","value":"2023-01-15T09:00"}') AS minutes_only;        -- {1,2,3,5,7,9,10,11}
SELECT t('{"type":"attribute","field":"signup_at","op":"after","value":"2024-02-29"}') AS date_only_midnight_utc;   -- {3,11}
SELECT t('{"type":"attribute","field":"signup_at","op":"before","value":"2023-01-15T11:00:00+01:00"}') AS offset_before; -- {6,8,9,12,13,14,15,16,17..30}
SELECT t('{"type":"attribute","field":"signup_at","op":"after","value":"2023-01-15T05:00:00-05:00"}') AS offset_after;   -- {2,3,7,11}
-- A date column is read as its midnight UTC (birthday: 7 1999-12-31, 5 2000-01-01, 8 2001-02-03, 10 2024-02-29).
SELECT t('{"type":"attribute","field":"birthday","op":"after","value":"1999-12-31"}') AS date_after;                 -- {5,8,10}
SELECT t('{"type":"attribute","field":"birthday","op":"after","value":"1999-12-30T23:59:59Z"}') AS date_after_ts;    -- {5,7,8,10}
SELECT t('{"type":"attribute","field":"birthday","op":"before","value":"1999-12-31T00:00:01Z","negate":true}') AS date_not_before; -- {3,4,5,8,10}
SELECT t('{"type":"attribute","field":"birthday","op":"before","value":"1970-01-01T00:00:00.000001Z"}') AS date_before_epoch; -- {6}

-- Trait timestamps (time operators read the field as a timestamp without as).
-- ts: 1,2,3,6,11,14 = 2024-01-01T00:00Z; 10 +0.5 s; 12 +1 µs; 13 -1 µs; 15 05:00Z;
-- unreadable: 7, 8, 9 (a space, outside the profile), 16 (true).
SELECT t('{"type":"trait","key":"ts","op":"before","value":"2024-01-01T00:00:00Z"}') AS ts_before;             -- {13}
SELECT t('{"type":"trait","key":"ts","op":"after","value":"2024-01-01T00:00:00Z"}') AS ts_after;               -- {10,12,15}
SELECT t('{"type":"trait","key":"ts","op":"after","value":"2023-12-31T23:59:59.999999Z"}') AS ts_after_minus_1us; -- {1,2,3,6,10,11,12,14,15}
SELECT t('{"type":"trait","key":"ts","op":"before","value":"2024-01-01T05:00:00Z","as":"timestamp"}') AS ts_before_as; -- {1,2,3,6,10,11,12,13,14}
SELECT excluded(t('{"type":"trait","key":"ts","op":"not_within_last","value":"1 day"}')) AS ts_not_within_excludes; -- {}
-- Relative trait values: an ISO string, epoch seconds, an offset (17-19 only, removed below).
SET ROLE regress_app;
UPDATE contacts SET custom_data = custom_data || jsonb_build_object('seen',
         to_char((now() - interval '2 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')) WHERE id = 17;
UPDATE contacts SET custom_data = custom_data || jsonb_build_object('seen',
         floor(extract(epoch FROM now() - interval '40 days'))) WHERE id = 18;
UPDATE contacts SET custom_data = custom_data || jsonb_build_object('seen',
         to_char((now() + interval '5 days') AT TIME ZONE 'UTC' + interval '2 hours', 'YYYY-MM-DD"T"HH24:MI:SS"+02:00"')) WHERE id = 19;
RESET ROLE;
SELECT t('{"type":"trait","key":"seen","op":"within_last","value":"30 days"}') AS trait_within_last;        -- {17,19}
SELECT t('{"type":"trait","key":"seen","op":"within_last","value":"41 days"}') AS trait_within_last_epoch; -- {17,18,19}
SELECT t('{"type":"trait","key":"seen","op":"within_next","value":"7 days"}') AS trait_within_next;        -- {19}
SELECT excluded(t('{"type":"trait","key":"seen","op":"not_within_last","value":"30 days"}')) AS trait_not_within_excludes; -- {17,19}
SET ROLE regress_app;
UPDATE contacts SET custom_data = custom_data - 'seen' WHERE id IN (17, 18, 19);
RESET ROLE;

RESET TimeZone;
SELECT count(*) AS segments_left FROM segments.segments;

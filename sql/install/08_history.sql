-- segments install script: membership history and change feed (src/history.c).
--
-- Every entry and exit written to segments.member is recorded, in the
-- writer's transaction, in segments.change_log (made by configure(), as it
-- holds contact keys): one row per contact and statement, holding the
-- segments it entered and left in the compact form of stored membership,
-- numbered by change_id in commit order.  Read it through segments.membership_changes (the feed),
-- segments.consume_changes() (a cursor per consumer), segments.was_member()
-- and segments.membership_history (point in time), segments.segment_counts().

-- Change ids.  CACHE 1 (the default) and drawn only while holding the lock
-- on segments.member: ids then follow commit order (README.md).
CREATE SEQUENCE segments.change_id_seq AS bigint;
COMMENT ON SEQUENCE segments.change_id_seq IS
    'Ids of recorded membership changes, in commit order; never reused.';

-- Dropped segments whose changes are still kept: the feed shows their id
-- and checks their tenant after the segment itself is gone.
CREATE TABLE segments.dropped_segment (
    num        integer PRIMARY KEY,
    id         uuid NOT NULL,
    tenant     text,
    name       text NOT NULL,
    dropped_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE segments.dropped_segment IS
    'Dropped segments that recorded membership changes still name; trimmed with them.';

-- Where each consumer of the feed got to (consume_changes()), per tenant.
CREATE TABLE segments.change_cursor (
    tenant         text,
    consumer       text NOT NULL,
    last_change_id bigint NOT NULL DEFAULT 0,
    -- NULL: every change of last_change_id's row went out; n: its first n
    -- (in consume_changes()'s order), a batch having ended inside the row
    last_offset    integer CHECK (last_offset > 0),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (tenant, consumer)
);
COMMENT ON TABLE segments.change_cursor IS
    'Where each consumer of segments.consume_changes() got to, per tenant: a change id, and how many of its row''s changes when a batch ended inside the row.';

CREATE FUNCTION segments._member_history() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'segments_member_history';
COMMENT ON FUNCTION segments._member_history() IS
    'Internal: records the entries and exits of a statement on segments.member in segments.change_log.';
CREATE FUNCTION segments._history_on() RETURNS boolean
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'segments_history_on';
COMMENT ON FUNCTION segments._history_on() IS
    'Internal: is segments.history on?';
CREATE FUNCTION segments._history_exit(data bytea, num integer) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'segments_history_exit';
COMMENT ON FUNCTION segments._history_exit(bytea, integer) IS
    'Internal: the exit of a stored membership from one segment, as the change log records it.';
CREATE FUNCTION segments._history_cause(cause text) RETURNS void
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'segments_history_cause';
COMMENT ON FUNCTION segments._history_cause(text) IS
    'Internal: the cause recorded for the membership changes of this transaction.';

CREATE FUNCTION segments.trim_history(max integer DEFAULT 10000) RETURNS bigint
    LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'segments_trim_history';
COMMENT ON FUNCTION segments.trim_history(integer) IS
    'Deletes up to max recorded membership changes older than segments.history_retention (the worker does it by itself); returns how many.';

-- Every segment a recorded change may name: the existing ones and the
-- dropped ones still kept (numbers are never reused).
CREATE VIEW segments._history_segments AS
    SELECT s.num, s.id, s.tenant FROM segments.segment s
    UNION ALL
    SELECT d.num, d.id, d.tenant FROM segments.dropped_segment d;

-- True where membership history is kept; on a contact source distributed
-- by Citus it is not (the statement triggers on segments.member cannot run
-- on its shards), and every reader of history says so instead of returning
-- nothing.
CREATE FUNCTION segments._history_kept() RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS
$$
BEGIN
    IF segments._citus_active() THEN
        RAISE EXCEPTION 'membership history is not kept for a contact source distributed by Citus'
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Read current membership (segments.membership); see docs/citus.md.';
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION segments._history_kept() IS
    'Internal: true, or an error where history is not kept (a Citus source).';

-- The number of a segment, existing or dropped, given by id, if the
-- session may see it; NULL otherwise.
CREATE FUNCTION segments._history_num(segment uuid) RETURNS integer
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS
$$ SELECT h.num FROM segments._history_segments h
    WHERE h.id OPERATOR(pg_catalog.=) $1 AND segments._tenant_visible(h.tenant)
      AND segments._history_kept() $$;
COMMENT ON FUNCTION segments._history_num(uuid) IS
    'Internal: the number of a visible segment, existing or dropped, or NULL.';

-- The changes of one change log row: exits first (with since when the
-- membership had lasted), then entries; in number order.
CREATE FUNCTION segments._history_rows(entered bytea, exited bytea,
                                       OUT num integer, OUT entered boolean, OUT since timestamptz)
RETURNS SETOF record
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT u.num, false, u.since FROM segments._member_rows($2) AS u
    UNION ALL
    SELECT u.num, true, NULL::timestamptz FROM segments._member_rows($1) AS u
$$;
COMMENT ON FUNCTION segments._history_rows(bytea, bytea) IS
    'Internal: the exits and entries one change log row records.';

-- The contacts of one change log row (its columns from contact_id on),
-- each with its tenant and the segments it entered and left: the row's
-- own, or a bulk row's by position.
CREATE FUNCTION segments._history_contacts(anyelement, text, bytea, bytea,
                                           anyarray, text[], bytea[], bytea[],
                                           OUT contact_id anyelement, OUT tenant text,
                                           OUT entered bytea, OUT exited bytea)
RETURNS SETOF record
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT $1, $2, $3, $4 WHERE $5 IS NULL
    UNION ALL
    SELECT u.k, u.t, u.e, u.x
      FROM ROWS FROM (pg_catalog.unnest($5), pg_catalog.unnest($6),
                      pg_catalog.unnest($7), pg_catalog.unnest($8)) AS u(k, t, e, x)
$$;
COMMENT ON FUNCTION segments._history_contacts(anyelement, text, bytea, bytea, anyarray, text[], bytea[], bytea[]) IS
    'Internal: the contacts one change log row records, with their tenants, entries and exits.';

-- Dropping a segment is an exit of each of its members: recorded before
-- the row goes, under the lock that orders change ids.  (Stored membership
-- keeps the dropped number until rows are rewritten; the member trigger
-- ignores numbers with no segment.)
CREATE FUNCTION segments._segment_dropped() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS
$$
BEGIN
    IF pg_catalog.to_regclass('segments.change_log') IS NULL THEN
        RETURN OLD;
    END IF;
    INSERT INTO segments.dropped_segment AS d (num, id, tenant, name)
    VALUES (OLD.num, OLD.id, OLD.tenant, OLD.name)
    ON CONFLICT (num) DO NOTHING;
    IF segments._history_on() THEN
        PERFORM segments._lock_member_writers();
        -- bulk rows of 256 members, as the member trigger writes them
        -- (a few members: a row each)
        INSERT INTO segments.change_log (at, cause, contact_id, tenant, exited,
                                         contact_lo, contact_hi, contacts, tenants, entereds, exiteds)
        SELECT pg_catalog.now(), 'd',
               CASE WHEN b.n < 64 THEN b.keys[i] END, CASE WHEN b.n < 64 THEN b.tenants[i] END,
               CASE WHEN b.n < 64 THEN b.exits[i] END,
               CASE WHEN b.n >= 64 THEN b.keys[1] END, CASE WHEN b.n >= 64 THEN b.keys[b.n] END,
               CASE WHEN b.n >= 64 THEN b.keys END, CASE WHEN b.n >= 64 THEN b.tenants END,
               CASE WHEN b.n >= 64 THEN pg_catalog.array_fill(NULL::bytea, ARRAY[b.n]) END,
               CASE WHEN b.n >= 64 THEN b.exits END
          FROM (SELECT g.chunk, g.keys, g.tenants, g.exits, pg_catalog.cardinality(g.keys) AS n
                  FROM (SELECT r.chunk,
                               pg_catalog.array_agg(r.contact_id ORDER BY r.contact_id) AS keys,
                               pg_catalog.array_agg(r.tenant ORDER BY r.contact_id) AS tenants,
                               pg_catalog.array_agg(r.exit ORDER BY r.contact_id) AS exits
                          FROM (SELECT m.contact_id, m.tenant, segments._history_exit(m.data, OLD.num) AS exit,
                                       (pg_catalog.row_number() OVER (ORDER BY m.contact_id) OPERATOR(pg_catalog.-) 1)
                                       OPERATOR(pg_catalog./) 256 AS chunk
                                  FROM segments.member m
                                 WHERE segments._member_segs(m.data) OPERATOR(pg_catalog.@>) ARRAY[OLD.num]) r
                         GROUP BY r.chunk) g) b
          CROSS JOIN LATERAL pg_catalog.generate_series(1, CASE WHEN b.n < 64 THEN b.n ELSE 1 END) AS i
         ORDER BY b.chunk, i;
    END IF;
    RETURN OLD;
END
$$;
COMMENT ON FUNCTION segments._segment_dropped() IS
    'Internal: records the exits of a dropped segment''s members.';
CREATE TRIGGER segment_dropped
    BEFORE DELETE ON segments.segment
    FOR EACH ROW EXECUTE FUNCTION segments._segment_dropped();

-- Daily member counts of a segment, for charts: the count at the end of
-- each day (UTC) from `from` to `to`, derived from today's count and the
-- recorded changes since.  A tenant session counts its own contacts only.
CREATE FUNCTION segments.segment_counts(segment uuid, "from" date, "to" date)
RETURNS TABLE (day date, members bigint)
LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_num     integer := segments._history_num(segment);
    v_tenant  text := segments._contact_tenant();
    v_current bigint := 0;
BEGIN
    IF "from" > "to" THEN
        RAISE EXCEPTION 'segment_counts: "from" (%) is after "to" (%)', "from", "to"
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass the earlier day first.';
    END IF;
    IF "to" - "from" > 3660 THEN
        RAISE EXCEPTION 'segment_counts: % days asked for, at most 3661 are returned', "to" - "from" + 1
            USING ERRCODE = 'program_limit_exceeded',
                  HINT = 'Ask for ten years or less at a time.';
    END IF;
    IF v_num IS NULL OR pg_catalog.to_regclass('segments.change_log') IS NULL THEN
        RETURN;                 -- unknown, invisible, or nothing recorded yet
    END IF;
    IF EXISTS (SELECT 1 FROM segments.segment s WHERE s.num OPERATOR(pg_catalog.=) v_num) THEN
        SELECT pg_catalog.count(*) INTO v_current FROM segments.member m
         WHERE segments._member_segs(m.data) OPERATOR(pg_catalog.@>) ARRAY[v_num]
           AND segments._contact_visible(m.tenant);
    END IF;
    RETURN QUERY
    WITH deltas AS (
        SELECT (c.at AT TIME ZONE 'UTC')::date AS d,
               pg_catalog.sum(CASE WHEN x.entered THEN 1 ELSE -1 END) AS delta
          FROM segments.change_log c
         CROSS JOIN LATERAL segments._history_contacts(c.contact_id, c.tenant, c.entered, c.exited, c.contacts, c.tenants, c.entereds, c.exiteds) AS p
         CROSS JOIN LATERAL segments._history_rows(p.entered, p.exited) AS x
         WHERE c.at OPERATOR(pg_catalog.>=) (("from" + 1)::timestamp AT TIME ZONE 'UTC')
           AND x.num OPERATOR(pg_catalog.=) v_num
           AND segments._contact_visible(p.tenant)
         GROUP BY 1)
    SELECT g.day::date,
           v_current OPERATOR(pg_catalog.-)
           coalesce((SELECT pg_catalog.sum(x.delta) FROM deltas x
                      WHERE x.d OPERATOR(pg_catalog.>) g.day::date), 0)::bigint
      FROM pg_catalog.generate_series("from"::timestamp, "to"::timestamp, interval '1 day') AS g(day)
     ORDER BY 1;
END
$$;
COMMENT ON FUNCTION segments.segment_counts(uuid, date, date) IS
    'Members of a segment at the end of each day (UTC) from "from" to "to", from recorded membership changes.';
CREATE FUNCTION segments.segment_counts(segment text, "from" date, "to" date)
RETURNS TABLE (day date, members bigint)
LANGUAGE sql STABLE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM segments.segment_counts(segments._segment_id($1), $2, $3) $$;
COMMENT ON FUNCTION segments.segment_counts(text, date, date) IS
    'segment_counts() of a segment given by name (the session''s tenant first) or id.';

-- Drops what _build_history() made over segments.member, before
-- configure() rebuilds the membership storage; the change log too when the
-- new key type is not the one it holds (its keys would not fit).
CREATE FUNCTION segments._drop_history(p_key_type regtype)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_obj text;
BEGIN
    FOR v_obj IN
        SELECT p.oid::regprocedure::text FROM pg_proc p
         WHERE p.pronamespace = 'segments'::regnamespace
           AND p.proname IN ('was_member', '_was_member', 'consume_changes')
    LOOP
        EXECUTE 'ALTER EXTENSION segments DROP FUNCTION ' || v_obj;
        EXECUTE 'DROP FUNCTION ' || v_obj;
    END LOOP;
    FOREACH v_obj IN ARRAY ARRAY['segments.membership_history', 'segments.membership_changes'] LOOP
        IF to_regclass(v_obj) IS NOT NULL THEN
            EXECUTE 'ALTER EXTENSION segments DROP VIEW ' || v_obj;
            EXECUTE 'DROP VIEW ' || v_obj;
        END IF;
    END LOOP;
    -- what the views read through
    FOR v_obj IN
        SELECT p.oid::regprocedure::text FROM pg_proc p
         WHERE p.pronamespace = 'segments'::regnamespace
           AND p.proname = '_history_of'
    LOOP
        EXECUTE 'ALTER EXTENSION segments DROP FUNCTION ' || v_obj;
        EXECUTE 'DROP FUNCTION ' || v_obj;
    END LOOP;
    IF to_regclass('segments.change_log') IS NOT NULL AND
       (SELECT a.atttypid FROM pg_attribute a
         WHERE a.attrelid = to_regclass('segments.change_log') AND a.attname = 'contact_id')
       IS DISTINCT FROM p_key_type THEN
        EXECUTE 'ALTER EXTENSION segments DROP TABLE segments.change_log';
        DROP TABLE segments.change_log;
        DELETE FROM segments.change_cursor;
        DELETE FROM segments.dropped_segment;
    END IF;
END
$$;
COMMENT ON FUNCTION segments._drop_history(regtype) IS
    'Internal: drops what reads the change log, and the log itself when the contact key type changes.';

-- The objects that hold or return contact keys, made by configure() for
-- the key type (from _build_readers(), so upgrades make them too): the
-- change log, the feed and point-in-time reads.  A new key type starts the
-- history afresh.  CREATE OR REPLACE, since a user's object may depend on them.
CREATE FUNCTION segments._build_history(p_key_type regtype)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_types  text[];
    v_ctype  text;
    v_arg    text;
    v_fn     text;
BEGIN
    IF to_regclass('segments.change_log') IS NULL THEN
        -- One row per contact and statement: the segments it entered and
        -- those it left (with since when it had been in them), in the
        -- compact form of segments.member (src/member_codec.c); or, for a
        -- statement changing many contacts, bulk rows of up to 256
        -- contacts: contacts, tenants, entereds and exiteds in arrays (by
        -- position), contact_lo and contact_hi their keys' range.
        EXECUTE format($f$
            CREATE TABLE segments.change_log (
                change_id  bigint PRIMARY KEY DEFAULT nextval('segments.change_id_seq'),
                at         timestamptz NOT NULL,
                cause      "char" NOT NULL,
                contact_id %1$s,
                tenant     text,
                entered    bytea,
                exited     bytea,
                contact_lo %1$s,
                contact_hi %1$s,
                contacts   %1$s[],
                tenants    text[],
                entereds   bytea[],
                exiteds    bytea[],
                CHECK ((contact_id IS NULL) <> (contacts IS NULL))
            )$f$, p_key_type);
        -- was_member() reads a contact's changes: its own rows, and the
        -- bulk rows whose range holds it; segment_counts() those since a
        -- day (a BRIN index: time follows ids, and costs nothing)
        CREATE INDEX change_log_contact_idx ON segments.change_log (contact_id, change_id);
        CREATE INDEX change_log_range_idx ON segments.change_log (contact_lo, contact_hi)
            WHERE contacts IS NOT NULL;
        CREATE INDEX change_log_at_idx ON segments.change_log USING brin (at);
        COMMENT ON TABLE segments.change_log IS
            'Recorded membership changes (entries and exits), in commit order; read them through segments.membership_changes.';
        REVOKE ALL ON segments.change_log FROM PUBLIC;
        PERFORM segments._extension_add('pg_class', 'segments.change_log'::regclass,
                                        'TABLE segments.change_log');
    ELSIF NOT EXISTS (SELECT 1 FROM pg_attribute a
                       WHERE a.attrelid = 'segments.change_log'::regclass AND a.attname = 'contacts') THEN
        -- a change log of a 0.2.0 development build: bulk rows added
        EXECUTE format($f$
            ALTER TABLE segments.change_log ALTER COLUMN contact_id DROP NOT NULL,
                ADD COLUMN contact_lo %1$s, ADD COLUMN contact_hi %1$s,
                ADD COLUMN contacts %1$s[], ADD COLUMN tenants text[],
                ADD COLUMN entereds bytea[], ADD COLUMN exiteds bytea[],
                ADD CHECK ((contact_id IS NULL) <> (contacts IS NULL))
            $f$, p_key_type);
        CREATE INDEX change_log_range_idx ON segments.change_log (contact_lo, contact_hi)
            WHERE contacts IS NOT NULL;
    END IF;
    IF (SELECT a.attcompression FROM pg_attribute a
         WHERE a.attrelid = 'segments.change_log'::regclass AND a.attname = 'contacts') = '' THEN
        -- bulk rows are stored out of line: lz4 compresses them several
        -- times faster than pglz, where the server has it
        IF EXISTS (SELECT 1 FROM pg_settings
                    WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
            ALTER TABLE segments.change_log ALTER COLUMN contacts SET COMPRESSION lz4,
                ALTER COLUMN tenants SET COMPRESSION lz4,
                ALTER COLUMN entereds SET COMPRESSION lz4,
                ALTER COLUMN exiteds SET COMPRESSION lz4;
        END IF;
    END IF;

    -- The triggers that record changes (a new segments.member has none).
    -- ENABLE ALWAYS: recorded whatever session_replication_role is.
    FOR v_fn IN SELECT t.tgname FROM pg_trigger t
                 WHERE t.tgrelid = 'segments.member'::regclass
                   AND t.tgname IN ('member_history_insert', 'member_history_update',
                                    'member_history_delete')
    LOOP
        EXECUTE format('DROP TRIGGER %I ON segments.member', v_fn);
    END LOOP;
    CREATE TRIGGER member_history_insert AFTER INSERT ON segments.member
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION segments._member_history();
    CREATE TRIGGER member_history_update AFTER UPDATE ON segments.member
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION segments._member_history();
    CREATE TRIGGER member_history_delete AFTER DELETE ON segments.member
        REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION segments._member_history();
    ALTER TABLE segments.member ENABLE ALWAYS TRIGGER member_history_insert;
    ALTER TABLE segments.member ENABLE ALWAYS TRIGGER member_history_update;
    ALTER TABLE segments.member ENABLE ALWAYS TRIGGER member_history_delete;

    -- Every recorded change of one contact, through the indexes: its own
    -- rows by contact_id, the bulk rows whose key range holds it.  Read
    -- by membership_history as its caller: nothing of a contact the
    -- session may not see.
    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION segments._history_of(contact %1$s,
            OUT change_id bigint, OUT at timestamptz, OUT tenant text,
            OUT num integer, OUT entered boolean, OUT since timestamptz)
        RETURNS SETOF record
        LANGUAGE plpgsql STABLE SECURITY DEFINER
        SET search_path = pg_catalog, pg_temp
        AS $b$
        BEGIN
            -- (plpgsql: its plan is kept for the session.  OFFSET 0: a
            -- bulk row's arrays are read, and detoasted, once each, in the
            -- rows whose range holds the contact only.)
            RETURN QUERY
            SELECT h.change_id, h.at, h.tenant, x.num, x.entered, x.since
              FROM (SELECT c.change_id, c.at, c.tenant, c.entered AS e, c.exited AS x
                      FROM segments.change_log c
                     WHERE c.contact_id OPERATOR(pg_catalog.=) _history_of.contact
                    UNION ALL
                    SELECT b.change_id, b.at, b.tenants[b.i], b.entereds[b.i], b.exiteds[b.i]
                      FROM (SELECT c.change_id, c.at, c.tenants, c.entereds, c.exiteds,
                                   pg_catalog.array_position(c.contacts, _history_of.contact) AS i
                              FROM segments.change_log c
                             WHERE c.contacts IS NOT NULL
                               AND c.contact_lo OPERATOR(pg_catalog.<=) _history_of.contact
                               AND c.contact_hi OPERATOR(pg_catalog.>=) _history_of.contact
                            OFFSET 0) AS b
                     WHERE b.i IS NOT NULL
                    OFFSET 0) AS h
             CROSS JOIN LATERAL segments._history_rows(h.e, h.x) AS x
             WHERE segments._contact_visible(h.tenant);
        END
        $b$
        $f$, p_key_type);
    EXECUTE format('REVOKE ALL ON FUNCTION segments._history_of(%s) FROM PUBLIC', p_key_type);
    EXECUTE format('GRANT EXECUTE ON FUNCTION segments._history_of(%s) TO segments_read', p_key_type);
    PERFORM segments._extension_add('pg_proc',
        format('segments._history_of(%s)', p_key_type)::regprocedure,
        format('FUNCTION segments._history_of(%s)', p_key_type));

    -- The feed: changes of visible segments (dropped ones too) and, for a
    -- tenant session, of its own contacts only.
    CREATE OR REPLACE VIEW segments.membership_changes WITH (security_barrier) AS
        SELECT c.change_id, s.id AS segment_id, p.contact_id, x.entered, c.at,
               CASE c.cause
                    WHEN 'c' THEN 'change' WHEN 't' THEN 'time'
                    WHEN 'e' THEN 'evaluation' WHEN 's' THEN 'schedule'
                    WHEN 'r' THEN 'refresh' WHEN 'k' THEN 'refresh_contacts'
                    WHEN 'f' THEN 'failed' WHEN 'd' THEN 'dropped'
                    WHEN 'g' THEN 'configure' ELSE 'other' END AS cause
          FROM segments.change_log c
         CROSS JOIN LATERAL segments._history_contacts(c.contact_id, c.tenant, c.entered, c.exited, c.contacts, c.tenants, c.entereds, c.exiteds) AS p
         CROSS JOIN LATERAL segments._history_rows(p.entered, p.exited) AS x
          JOIN segments._history_segments s ON s.num = x.num
         WHERE segments._contact_visible(p.tenant)
           AND segments._tenant_visible(s.tenant)
           AND segments._history_kept();
    COMMENT ON VIEW segments.membership_changes IS
        'Every recorded entry (entered) and exit of a contact in a segment, in commit order of change_id (shared by the segments one contact entered or left in one statement).';

    -- Point in time: one row per period of membership, valid_from
    -- inclusive, valid_to exclusive (NULL: still a member).  A period whose
    -- entry is not recorded (before history began, or trimmed) starts at
    -- the membership's `since`, which exits record.
    --
    -- A bulk row's contacts are read through a join of the contacts that
    -- have history (those with stored membership or a row of their own; a
    -- contact leaving membership storage gets a row of its own, see
    -- history.c) with the bulk rows whose range holds them: read for one
    -- contact (WHERE contact_id = ...), the condition reaches that set's
    -- indexes and, through the join, the range index of the bulk rows;
    -- read whole, it is a hash join of every bulk row's contacts.
    CREATE OR REPLACE VIEW segments.membership_history WITH (security_barrier) AS
        SELECT s.id AS segment_id, p.contact_id, p.valid_from, p.valid_to
          FROM (SELECT w.num, w.contact_id, w.tenant,
                       CASE WHEN w.entered THEN w.at ELSE w.since END AS valid_from,
                       CASE WHEN w.entered THEN w.next_at ELSE w.at END AS valid_to
                  FROM (SELECT x.num, r.contact_id, r.tenant, x.entered, r.at, x.since,
                               lead(r.at) OVER w AS next_at,
                               lag(x.entered) OVER w AS prev_entered
                          FROM (SELECT c.change_id, c.at, c.contact_id, c.tenant,
                                       c.entered AS e, c.exited AS x
                                  FROM segments.change_log c
                                 WHERE c.contacts IS NULL
                                UNION ALL
                                SELECT c.change_id, c.at, k.contact_id, u.t, u.e, u.x
                                  FROM (SELECT m.contact_id FROM segments.member m
                                        UNION
                                        SELECT c.contact_id FROM segments.change_log c
                                         WHERE c.contacts IS NULL) k
                                  JOIN segments.change_log c
                                    ON c.contacts IS NOT NULL
                                   AND c.contact_lo OPERATOR(pg_catalog.<=) k.contact_id
                                   AND c.contact_hi OPERATOR(pg_catalog.>=) k.contact_id
                                 CROSS JOIN LATERAL ROWS FROM (pg_catalog.unnest(c.contacts), pg_catalog.unnest(c.tenants),
                                                              pg_catalog.unnest(c.entereds), pg_catalog.unnest(c.exiteds))
                                       AS u(k, t, e, x)
                                 WHERE u.k = k.contact_id) r
                         CROSS JOIN LATERAL segments._history_rows(r.e, r.x) AS x
                        WINDOW w AS (PARTITION BY x.num, r.contact_id ORDER BY r.change_id)) w
                 WHERE w.entered OR w.prev_entered IS NOT TRUE
                UNION ALL
                -- current members whose latest recorded change is not their
                -- entry (stored rows keep a dropped segment's number a while)
                SELECT u.num, m.contact_id, m.tenant, u.since, NULL
                  FROM segments.member m
                 CROSS JOIN LATERAL segments._member_rows(m.data) AS u
                 WHERE EXISTS (SELECT 1 FROM segments.segment x WHERE x.num = u.num)
                   AND (SELECT h.entered FROM segments._history_of(m.contact_id) AS h
                         WHERE h.num = u.num
                         ORDER BY h.change_id DESC LIMIT 1) IS NOT TRUE) p
          JOIN segments._history_segments s ON s.num = p.num
         WHERE segments._contact_visible(p.tenant)
           AND segments._tenant_visible(s.tenant)
           AND segments._history_kept();
    COMMENT ON VIEW segments.membership_history IS
        'Periods of membership: the contact was in the segment from valid_from (inclusive) to valid_to (exclusive; NULL: still is).';

    -- The feed with a cursor per consumer (and tenant): the next `max`
    -- changes (at most) after the last one this consumer received; the
    -- cursor advances in the caller's transaction, so a rollback delivers
    -- them again.  The cursor is a change id and, when a batch ended inside
    -- that id's row (a bulk row holds thousands of changes), how many of
    -- the row's changes, in delivery order, went out.
    CREATE OR REPLACE FUNCTION segments.consume_changes(consumer text, max integer DEFAULT 100)
    RETURNS SETOF segments.membership_changes
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $b$
    #variable_conflict use_column
    DECLARE
        -- a session that sees no changes (no tenant, not an admin) must not
        -- move the cursor it would share with the admins: refused
        v_tenant text := segments._manage_tenant();
        v_last   bigint;
        v_off    integer;
        v_high   bigint;
        v_got    integer := 0;
        v_end_id bigint;
        v_end_n  integer;
        v_row    bigint;
        r        record;
    BEGIN
        IF consumer IS NULL OR consumer = '' THEN
            RAISE EXCEPTION 'consume_changes: consumer must be a non-empty name'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Name the consumer, e.g. consume_changes(''crm-sync'', 100).';
        END IF;
        IF max IS NULL OR max < 1 OR max > 100000 THEN
            RAISE EXCEPTION 'consume_changes: max must be between 1 and 100000, not %', coalesce(max::text, 'NULL')
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        -- the loop below reads the change log itself, not through the view
        -- that refuses where history is not kept (a Citus source)
        PERFORM segments._history_kept();
        INSERT INTO segments.change_cursor AS k (tenant, consumer) VALUES (v_tenant, consume_changes.consumer)
        ON CONFLICT (tenant, consumer) DO NOTHING;
        -- one call at a time per consumer: a second one waits, then goes on
        -- from where the first one's transaction left the cursor
        SELECT k.last_change_id, k.last_offset INTO v_last, v_off FROM segments.change_cursor k
         WHERE k.tenant IS NOT DISTINCT FROM v_tenant AND k.consumer = consume_changes.consumer
           FOR UPDATE;
        -- every id up to the highest committed one is committed or gone for
        -- good (ids follow commit order): the cursor may pass it
        SELECT coalesce(pg_catalog.max(c.change_id), 0) INTO v_high FROM segments.change_log c;
        -- the rest of a row a batch ended inside, then the next rows; in
        -- one order (a row's changes are unique by contact, direction and
        -- segment), so that a count of them is a position
        IF v_off IS NOT NULL THEN
            FOR r IN SELECT * FROM segments.membership_changes c
                      WHERE c.change_id = v_last
                      ORDER BY c.contact_id, c.entered, c.segment_id
                     OFFSET v_off LIMIT consume_changes.max
            LOOP
                RETURN NEXT r;
                v_got := v_got + 1;
            END LOOP;
            v_end_id := v_last;
            v_end_n := v_off + v_got;
        END IF;
        -- (row by row, in id order through the primary key: one query
        -- sorting every change after the cursor would expand every bulk
        -- row of a long backlog)
        FOR v_row IN SELECT c.change_id FROM segments.change_log c
                      WHERE c.change_id > v_last AND c.change_id <= v_high
                      ORDER BY c.change_id
        LOOP
            EXIT WHEN v_got >= consume_changes.max;
            FOR r IN SELECT * FROM segments.membership_changes c
                      WHERE c.change_id = v_row
                      ORDER BY c.contact_id, c.entered, c.segment_id
                      LIMIT consume_changes.max - v_got
            LOOP
                RETURN NEXT r;
                v_got := v_got + 1;
                IF r.change_id = v_end_id THEN
                    v_end_n := v_end_n + 1;
                ELSE
                    v_end_id := r.change_id;
                    v_end_n := 1;
                END IF;
            END LOOP;
        END LOOP;
        IF v_got < consume_changes.max THEN
            -- nothing more: the cursor passes everything up to v_high, so
            -- changes this session may not see (other tenants') are not
            -- read again
            v_end_id := GREATEST(v_last, v_high);
            v_end_n := NULL;
        END IF;
        IF (v_end_id, v_end_n) IS DISTINCT FROM (v_last, v_off) THEN
            UPDATE segments.change_cursor k
               SET last_change_id = v_end_id, last_offset = v_end_n, updated_at = pg_catalog.now()
             WHERE k.tenant IS NOT DISTINCT FROM v_tenant AND k.consumer = consume_changes.consumer;
        END IF;
    END
    $b$;
    COMMENT ON FUNCTION segments.consume_changes(text, integer) IS
        'The next membership changes for this consumer, in change_id order; its cursor advances with the caller''s transaction (at-least-once).';

    -- was_member(): the core, by segment number, then one variant per type
    -- a contact may be passed as (as segment_is_member()).
    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION segments._was_member(contact %1$s, num integer, at timestamptz)
        RETURNS boolean
        LANGUAGE plpgsql STABLE SECURITY DEFINER
        SET search_path = pg_catalog, pg_temp
        AS $b$
        DECLARE
            r record;
        BEGIN
            IF contact IS NULL OR num IS NULL OR at IS NULL THEN
                RETURN false;
            END IF;
            -- the latest change up to then decides
            SELECT h.entered, h.tenant INTO r FROM segments._history_of(contact) AS h
             WHERE h.num = _was_member.num AND h.at <= _was_member.at
             ORDER BY h.change_id DESC LIMIT 1;
            IF FOUND THEN
                RETURN r.entered AND segments._contact_visible(r.tenant);
            END IF;
            -- none: a later exit tells since when that membership lasted
            SELECT h.entered, h.tenant, h.since INTO r FROM segments._history_of(contact) AS h
             WHERE h.num = _was_member.num
             ORDER BY h.change_id LIMIT 1;
            IF FOUND THEN
                RETURN NOT r.entered AND r.since <= _was_member.at
                       AND segments._contact_visible(r.tenant);
            END IF;
            -- nothing recorded: stored membership, since when it began
            SELECT u.since, m.tenant INTO r FROM segments.member m
             CROSS JOIN LATERAL segments._member_rows(m.data) AS u
             WHERE m.contact_id = _was_member.contact AND u.num = _was_member.num
               AND EXISTS (SELECT 1 FROM segments.segment s WHERE s.num = _was_member.num);
            RETURN FOUND AND r.since <= _was_member.at AND segments._contact_visible(r.tenant);
        END
        $b$
        $f$, p_key_type);
    EXECUTE format('REVOKE ALL ON FUNCTION segments._was_member(%s, integer, timestamptz) FROM PUBLIC',
                   p_key_type);
    PERFORM segments._extension_add('pg_proc',
        format('segments._was_member(%s, integer, timestamptz)', p_key_type)::regprocedure,
        format('FUNCTION segments._was_member(%s, integer, timestamptz)', p_key_type));

    v_types := ARRAY[p_key_type::text];
    IF p_key_type <> 'text'::regtype THEN
        v_types := v_types || 'text'::text;
    END IF;
    IF p_key_type IN ('bigint'::regtype, 'integer'::regtype) THEN
        v_types := ARRAY['bigint', 'integer', 'smallint', 'text'];
    END IF;
    FOREACH v_ctype IN ARRAY v_types LOOP
        FOREACH v_arg IN ARRAY ARRAY['uuid', 'text'] LOOP
            EXECUTE format($f$
                CREATE OR REPLACE FUNCTION segments.was_member(contact %1$s, segment %2$s, at timestamptz)
                RETURNS boolean
                LANGUAGE sql STABLE SECURITY DEFINER
                SET search_path = pg_catalog, pg_temp
                AS $b$ SELECT segments._was_member($1::%3$s, segments._history_num(%4$s), $3) $b$
                $f$, v_ctype, v_arg, p_key_type,
                CASE v_arg WHEN 'text' THEN 'segments._segment_id($2)' ELSE '$2' END);
            EXECUTE format('REVOKE ALL ON FUNCTION segments.was_member(%s, %s, timestamptz) FROM PUBLIC',
                           v_ctype, v_arg);
            EXECUTE format('GRANT EXECUTE ON FUNCTION segments.was_member(%s, %s, timestamptz) TO segments_read',
                           v_ctype, v_arg);
            PERFORM segments._extension_add('pg_proc',
                format('segments.was_member(%s, %s, timestamptz)', v_ctype, v_arg)::regprocedure,
                format('FUNCTION segments.was_member(%s, %s, timestamptz)', v_ctype, v_arg));
        END LOOP;
    END LOOP;

    REVOKE ALL ON FUNCTION segments.consume_changes(text, integer) FROM PUBLIC;
    GRANT SELECT ON segments.membership_changes, segments.membership_history TO segments_read;
    GRANT EXECUTE ON FUNCTION segments.consume_changes(text, integer) TO segments_read;
    PERFORM segments._extension_add('pg_class', 'segments.membership_changes'::regclass,
                                    'VIEW segments.membership_changes');
    PERFORM segments._extension_add('pg_class', 'segments.membership_history'::regclass,
                                    'VIEW segments.membership_history');
    PERFORM segments._extension_add('pg_proc', 'segments.consume_changes(text, integer)'::regprocedure,
                                    'FUNCTION segments.consume_changes(text, integer)');
END
$$;
COMMENT ON FUNCTION segments._build_history(regtype) IS
    'Internal: (re)creates the change log, the change feed and the point-in-time reads for a contact key type.';

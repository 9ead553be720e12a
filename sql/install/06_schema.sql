-- segments install script, part 6: the source table changing shape, and
-- dump / restore.
--
-- Segments depend on the source's columns as a view depends on its table's
-- (src/schema_ddl.c): a column rename is followed in the configuration and
-- in every saved definition; a type change re-evaluates the segments that
-- read the column, or is refused when a definition would no longer be
-- valid; dropping the source, its key, tenant or traits column, a column a
-- segment reads or the key's unique index is refused.
--
-- pg_dump saves segments.config, segments.segment and the number sequence
-- (configuration tables), and the capture triggers with the source.  On
-- restore the configuration row arrives as data: a trigger rebuilds the
-- membership storage for its key type and sets every segment pending; the
-- worker waits for the capture triggers (the restore's last step) and then
-- evaluates them.

-- A definition with every attribute condition on column old_name renamed.
CREATE FUNCTION segments._rename_field(node jsonb, old_name text, new_name text)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k text;
BEGIN
    IF jsonb_typeof(node) = 'array' THEN
        RETURN (SELECT coalesce(jsonb_agg(segments._rename_field(e, old_name, new_name) ORDER BY i), '[]')
                  FROM jsonb_array_elements(node) WITH ORDINALITY AS a(e, i));
    END IF;
    IF jsonb_typeof(node) <> 'object' THEN
        RETURN node;
    END IF;
    IF node ->> 'type' = 'attribute' AND node ->> 'field' = old_name THEN
        node := jsonb_set(node, '{field}', to_jsonb(new_name));
    END IF;
    FOREACH k IN ARRAY ARRAY['and', 'or', 'not', 'all', 'any', 'none'] LOOP
        IF node ? k THEN
            node := jsonb_set(node, ARRAY[k], segments._rename_field(node -> k, old_name, new_name));
        END IF;
    END LOOP;
    RETURN node;
END
$$;
COMMENT ON FUNCTION segments._rename_field(jsonb, text, text) IS
    'Internal: a definition with the attribute conditions on a renamed column following the new name.';

-- Follows a rename of a source column (called by the ddl_command_end
-- trigger, as the extension owner).
CREATE FUNCTION segments._rename_column(old_name text, new_name text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE segments.config c
       SET key_column = CASE WHEN c.key_column = old_name THEN new_name ELSE c.key_column END,
           tenant_column = CASE WHEN c.tenant_column = old_name THEN new_name ELSE c.tenant_column END,
           traits_column = CASE WHEN c.traits_column = old_name THEN new_name ELSE c.traits_column END
     WHERE old_name IN (c.key_column, c.tenant_column, c.traits_column);
    UPDATE segments.segment s
       SET definition = segments._rename_field(s.definition, old_name, new_name)
     WHERE jsonb_path_exists(s.definition, '$.** ? (@.type == "attribute" && @.field == $f)',
                             jsonb_build_object('f', old_name));
END
$$;
COMMENT ON FUNCTION segments._rename_column(text, text) IS
    'Internal: follows a rename of a source column in the configuration and in segment definitions.';

-- Not SECURITY DEFINER: it resolves names as the command will, and runs no SQL.
CREATE FUNCTION segments._ddl_start() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'segments_ddl_start';
COMMENT ON FUNCTION segments._ddl_start() IS
    'Internal: refuses a new type for the key column before the table is rewritten (ddl_command_start).';
CREATE FUNCTION segments._ddl_end() RETURNS event_trigger
    LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'segments_ddl_end';
COMMENT ON FUNCTION segments._ddl_end() IS
    'Internal: follows renames and type changes of the source''s columns (ddl_command_end).';
CREATE FUNCTION segments._sql_drop() RETURNS event_trigger
    LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'segments_sql_drop';
COMMENT ON FUNCTION segments._sql_drop() IS
    'Internal: refuses to drop the source, the columns segments read, or the key''s unique index (sql_drop).';

CREATE EVENT TRIGGER segments_ddl_end ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'CREATE TRIGGER')
    EXECUTE FUNCTION segments._ddl_end();
CREATE EVENT TRIGGER segments_ddl_start ON ddl_command_start
    WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION segments._ddl_start();
CREATE EVENT TRIGGER segments_sql_drop ON sql_drop
    EXECUTE FUNCTION segments._sql_drop();
-- also under session_replication_role = replica (replication, many ETL tools)
ALTER EVENT TRIGGER segments_ddl_start ENABLE ALWAYS;
ALTER EVENT TRIGGER segments_ddl_end ENABLE ALWAYS;
ALTER EVENT TRIGGER segments_sql_drop ENABLE ALWAYS;

-- A configuration row written by configure() or loaded by a restore: the
-- membership storage matches its key type, and every segment is evaluated
-- again.
CREATE FUNCTION segments._config_changed() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- Citus: a restored configuration of a distributed source gets its
    -- membership distributed with it, as configure() does (11_citus.sql)
    IF segments._citus_config_arrived(NEW.source, NEW.key_column, NEW.tenant_column, NEW.key_type) THEN
        NULL;
    ELSIF to_regclass('segments.member') IS NULL
       OR (SELECT a.atttypid FROM pg_attribute a
            WHERE a.attrelid = to_regclass('segments.member') AND a.attnum = 1)
          IS DISTINCT FROM NEW.key_type THEN
        PERFORM segments._build_storage(NEW.key_type);
    END IF;
    UPDATE segments.segment_state SET state = 'pending', requested_at = clock_timestamp();
    PERFORM segments._notify_worker();
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION segments._config_changed() IS
    'Internal: builds the membership storage for the configured key type and sets every segment pending.';
CREATE TRIGGER config_changed_row
    AFTER INSERT OR UPDATE ON segments.config
    FOR EACH ROW EXECUTE FUNCTION segments._config_changed();

-- Every segment has a state row, also one a restore loaded (pending).
CREATE FUNCTION segments._segment_added() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO segments.segment_state (segment_id) VALUES (NEW.id)
        ON CONFLICT (segment_id) DO NOTHING;
    PERFORM segments._notify_worker();
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION segments._segment_added() IS
    'Internal: gives a new (or restored) segment its pending state row.';
CREATE TRIGGER segment_added
    AFTER INSERT ON segments.segment
    FOR EACH ROW EXECUTE FUNCTION segments._segment_added();

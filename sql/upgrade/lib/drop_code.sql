
-- Step 1 of every upgrade (sql/upgrade/lib/drop_code.sql): drop the code
-- objects of the old version, so that the new version's install code can
-- create them as they are now (signatures, result types and view columns
-- may have changed, objects may be gone).  Tables, sequences and their
-- data stay.  Triggers and policies on the extension's tables and its
-- event triggers go first; then every function and view of the extension
-- that nothing outside it depends on.  Those that a user's object (a view,
-- a policy, a trigger on the source table) or an index depends on are kept
-- and replaced in place by CREATE OR REPLACE below.
DO $drop_code$
DECLARE
    v_ext   oid := (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname = 'segments');
    r       record;
    v_todo  text[];
    v_left  text[];
    v_stmt  text;
BEGIN
    FOR r IN
        SELECT pg_catalog.format('DROP TRIGGER %I ON %s', t.tgname, t.tgrelid::regclass) AS stmt
          FROM pg_catalog.pg_trigger t
          JOIN pg_catalog.pg_depend d
            ON d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = t.tgrelid
           AND d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.refobjid = v_ext
           AND d.deptype = 'e'
         WHERE NOT t.tgisinternal
        UNION ALL
        SELECT pg_catalog.format('DROP POLICY %I ON %s', p.polname, p.polrelid::regclass)
          FROM pg_catalog.pg_policy p
          JOIN pg_catalog.pg_depend d
            ON d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = p.polrelid
           AND d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.refobjid = v_ext
           AND d.deptype = 'e'
        UNION ALL
        SELECT pg_catalog.format('DROP EVENT TRIGGER %I', ev.evtname)
          FROM pg_catalog.pg_event_trigger ev
          JOIN pg_catalog.pg_depend d
            ON d.classid = 'pg_catalog.pg_event_trigger'::regclass AND d.objid = ev.oid
           AND d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.refobjid = v_ext
           AND d.deptype = 'e'
    LOOP
        EXECUTE r.stmt;
    END LOOP;

    SELECT pg_catalog.array_agg(x.stmt ORDER BY x.ord, x.stmt) INTO v_todo
      FROM (SELECT 1 AS ord, pg_catalog.format('DROP VIEW %s', c.oid::regclass) AS stmt
              FROM pg_catalog.pg_class c
              JOIN pg_catalog.pg_depend d
                ON d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
               AND d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.refobjid = v_ext
               AND d.deptype = 'e'
             WHERE c.relkind IN ('v', 'm')
            UNION ALL
            SELECT 2, pg_catalog.format('DROP %s %s',
                          CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE'
                                         ELSE 'FUNCTION' END,
                          p.oid::regprocedure)
              FROM pg_catalog.pg_proc p
              JOIN pg_catalog.pg_depend d
                ON d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid
               AND d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.refobjid = v_ext
               AND d.deptype = 'e') x;

    -- Objects depend on each other (views on functions, functions on a
    -- view's row type): drop what can be dropped, again, until nothing more.
    LOOP
        v_left := '{}';
        FOREACH v_stmt IN ARRAY coalesce(v_todo, '{}') LOOP
            BEGIN
                EXECUTE v_stmt;
            EXCEPTION WHEN dependent_objects_still_exist THEN
                v_left := v_left || v_stmt;
            END;
        END LOOP;
        EXIT WHEN pg_catalog.cardinality(v_left) = pg_catalog.cardinality(coalesce(v_todo, '{}'));
        v_todo := v_left;
    END LOOP;
END
$drop_code$;

-- Step 2: the table changes of this upgrade (sql/upgrade/FROM--TO.sql).

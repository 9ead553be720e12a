-- Every object of the extension in this database, one line each, sorted:
-- what test/upgrade/01_upgrade.sh compares between an upgraded database and
-- a fresh install.  Table columns are listed by name (an upgrade adds columns
-- at the end); function and view definitions, comments, ACLs, constraints,
-- indexes, triggers, policies, event triggers, sequences, types, the
-- extension's dump configuration and the capture triggers on the source.
\pset format unaligned
\pset tuples_only on
WITH ext AS (
    SELECT e.oid, e.extconfig, e.extcondition FROM pg_extension e WHERE e.extname = 'segments'
), members AS (
    SELECT d.classid, d.objid
      FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
), rels AS (
    SELECT c.* FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
), procs AS (
    SELECT p.* FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
), lines(l) AS (
    SELECT 'member ' || pg_describe_object(m.classid, m.objid, 0) FROM members m
    UNION ALL
    SELECT 'comment ' || pg_describe_object(m.classid, m.objid, 0) || ': '
           || coalesce(d.description, '(none)')
      FROM members m
      LEFT JOIN pg_description d ON d.classoid = m.classid AND d.objoid = m.objid AND d.objsubid = 0
    UNION ALL
    SELECT 'function ' || p.oid::regprocedure || ': '
           || replace(pg_get_functiondef(p.oid), E'\n', '\n')
      FROM procs p WHERE p.prokind IN ('f', 'p')
    UNION ALL
    SELECT 'function acl ' || p.oid::regprocedure || ': '
           || coalesce(array(SELECT x::text FROM unnest(p.proacl) x ORDER BY 1)::text, 'default')
      FROM procs p
    UNION ALL
    SELECT 'relation ' || c.oid::regclass || ': kind ' || c.relkind::text || ', persistence '
           || c.relpersistence::text || ', options '
           || coalesce(array(SELECT x FROM unnest(c.reloptions) x ORDER BY 1)::text, '{}')
           || ', row security ' || c.relrowsecurity || '/' || c.relforcerowsecurity
           || ', acl ' || coalesce(array(SELECT x::text FROM unnest(c.relacl) x ORDER BY 1)::text, 'default')
      FROM rels c
    UNION ALL
    SELECT 'view ' || c.oid::regclass || ': ' || replace(pg_get_viewdef(c.oid, true), E'\n', '\n')
      FROM rels c WHERE c.relkind IN ('v', 'm')
    UNION ALL
    SELECT 'column ' || c.oid::regclass || '.' || quote_ident(a.attname) || ': '
           || format_type(a.atttypid, a.atttypmod)
           || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
           || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
           || CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END
           || CASE WHEN a.attgenerated <> '' THEN ' generated' ELSE '' END
           || coalesce(' collate ' || NULLIF(a.attcollation, 0)::regcollation::text, '')
           || coalesce(' acl ' || array(SELECT x::text FROM unnest(a.attacl) x ORDER BY 1)::text, '')
           || coalesce(' comment ' || col_description(c.oid, a.attnum), '')
           || CASE WHEN c.relkind IN ('v', 'm') THEN ' position ' || a.attnum ELSE '' END
      FROM rels c
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
     WHERE c.relkind IN ('r', 'p', 'v', 'm')
    UNION ALL
    SELECT 'constraint ' || co.conrelid::regclass || ' ' || quote_ident(co.conname) || ': '
           || pg_get_constraintdef(co.oid)
      FROM pg_constraint co JOIN rels c ON c.oid = co.conrelid
    UNION ALL
    SELECT 'index ' || pg_get_indexdef(i.indexrelid)
      FROM pg_index i JOIN rels c ON c.oid = i.indrelid
    UNION ALL
    SELECT 'trigger ' || pg_get_triggerdef(t.oid) || ' enabled ' || t.tgenabled::text
      FROM pg_trigger t
     WHERE NOT t.tgisinternal
       AND (t.tgrelid IN (SELECT oid FROM rels) OR t.tgfoid IN (SELECT oid FROM procs))
    UNION ALL
    SELECT 'policy ' || p.polrelid::regclass || ' ' || quote_ident(p.polname) || ': '
           || p.polcmd::text || ' ' || p.polpermissive::text || ' to '
           || array(SELECT CASE r WHEN 0 THEN 'public' ELSE r::regrole::text END
                      FROM unnest(p.polroles) r ORDER BY 1)::text
           || coalesce(' using ' || pg_get_expr(p.polqual, p.polrelid), '')
           || coalesce(' check ' || pg_get_expr(p.polwithcheck, p.polrelid), '')
      FROM pg_policy p JOIN rels c ON c.oid = p.polrelid
    UNION ALL
    SELECT 'event trigger ' || quote_ident(ev.evtname) || ': ' || ev.evtevent || ' '
           || coalesce(array(SELECT x FROM unnest(ev.evttags) x ORDER BY 1)::text, '{}') || ' '
           || ev.evtfoid::regproc || ' enabled ' || ev.evtenabled::text
      FROM pg_event_trigger ev
      JOIN members m ON m.classid = 'pg_event_trigger'::regclass AND m.objid = ev.oid
    UNION ALL
    SELECT 'sequence ' || s.seqrelid::regclass || ': ' || format_type(s.seqtypid, NULL) || ' start '
           || s.seqstart || ' by ' || s.seqincrement || ' min ' || s.seqmin || ' max ' || s.seqmax
           || ' cache ' || s.seqcache || ' cycle ' || s.seqcycle
           || coalesce(' owned by ' || (SELECT d.refobjid::regclass || '.' || quote_ident(a.attname)
                                          FROM pg_depend d
                                          JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                                         WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid
                                           AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a'), '')
      FROM pg_sequence s JOIN rels c ON c.oid = s.seqrelid
    UNION ALL
    SELECT 'type ' || t.oid::regtype || ': ' || t.typtype::text
           || coalesce(' ' || array(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid
                                   ORDER BY e.enumsortorder)::text, '')
      FROM pg_type t JOIN members m ON m.classid = 'pg_type'::regclass AND m.objid = t.oid
    UNION ALL
    SELECT 'dumped with data: ' || x.rel::regclass || ' where ' || quote_literal(x.cond)
      FROM ext, unnest(ext.extconfig, ext.extcondition) AS x(rel, cond)
    UNION ALL
    SELECT 'schema acl: ' || coalesce(array(SELECT x::text FROM unnest(n.nspacl) x ORDER BY 1)::text, 'default')
      FROM pg_namespace n WHERE n.nspname = 'segments'
)
SELECT l FROM lines ORDER BY l COLLATE "C";

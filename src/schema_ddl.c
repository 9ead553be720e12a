/*-------------------------------------------------------------------------
 *
 * schema_ddl.c
 *		Segments depend on the source's columns as a view depends on its
 *		table's: event triggers follow column renames, re-evaluate the
 *		segments reading a column whose type changed, and refuse the DDL
 *		that would leave a saved definition or the configuration unusable.
 *
 * segments._ddl_end() runs at ddl_command_end of ALTER TABLE and CREATE
 * TRIGGER, segments._sql_drop() at sql_drop of every command (a column
 * also goes when its type is dropped with CASCADE).  Both are SECURITY
 * DEFINER: the table owner running the DDL needs no privilege on schema
 * segments.  Both return at once when the command did not touch the
 * configured source, so other DDL costs one read of segments.config.
 * Table renames and moves to another schema need nothing: the source is
 * configured by OID.
 *
 *-------------------------------------------------------------------------
 */
#include "catalog.h"
#include "worker.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parse_type.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

PG_FUNCTION_INFO_V1(segments_ddl_start);
PG_FUNCTION_INFO_V1(segments_ddl_end);

/*
 * The DropStmt of an event trigger's command when that command is DROP
 * EXTENSION naming segments, by a role that may drop it; NULL for any
 * other command.  The drop event triggers (capture's, Citus's) share it so
 * that they agree on what is "our" drop.  A role that may not drop the
 * extension gets PostgreSQL's own "must be owner of extension segments",
 * not an error from what the triggers would have cleaned up first.
 */
DropStmt *
DdlDroppingSegments(FunctionCallInfo fcinfo, const char *trigger)
{
	EventTriggerData *trigdata;
	DropStmt   *stmt;
	ListCell   *lc;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "%s: not fired by event trigger manager", trigger);
	trigdata = (EventTriggerData *) fcinfo->context;
	if (!IsA(trigdata->parsetree, DropStmt))
		return NULL;
	stmt = (DropStmt *) trigdata->parsetree;
	if (stmt->removeType != OBJECT_EXTENSION)
		return NULL;
	foreach(lc, stmt->objects)
	{
		Node	   *obj = lfirst(lc);

		if (IsA(obj, String) && strcmp(strVal(obj), "segments") == 0)
		{
			Oid			ext = get_extension_oid("segments", true);

			return OidIsValid(ext) && pg_extension_ownercheck(ext, GetUserId()) ? stmt : NULL;
		}
	}
	return NULL;
}
PG_FUNCTION_INFO_V1(segments_sql_drop);

/* The configured column names (NULL when not configured). */
typedef struct ConfigNames
{
	char	   *key;
	char	   *tenant;
	char	   *traits;
} ConfigNames;

/* Text of column col of SPI row 0, or NULL. */
static char *
spi_text0(int col)
{
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col);
}

/*
 * The configured source and its column names; InvalidOid when there is
 * no configuration (or the extension itself is being dropped).  In SPI.
 */
static Oid
config_source(ConfigNames *names)
{
	bool		isnull;
	Datum		d;

	memset(names, 0, sizeof(*names));
	if (!OidIsValid(CatalogRelid("config", true)))
		return InvalidOid;
	if (SPI_execute("SELECT source::pg_catalog.oid, key_column, tenant_column, traits_column"
					"  FROM segments.config", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read segments.config");
	if (SPI_processed != 1)
		return InvalidOid;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	names->key = spi_text0(2);
	names->tenant = spi_text0(3);
	names->traits = spi_text0(4);
	return DatumGetObjectId(d);
}

/*
 * The configured source's OID, read from segments.config directly (no SQL:
 * segments_ddl_start() runs as the caller), without opening the source;
 * InvalidOid when not configured.
 */
static Oid
configured_source(void)
{
	Relation	rel = table_open(CatalogRelid("config", false), AccessShareLock);
	TableScanDesc scan = table_beginscan_catalog(rel, 0, NULL);
	HeapTuple	tuple;
	Oid			source = InvalidOid;

	if ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, SPI_fnumber(RelationGetDescr(rel), "source"),
									 RelationGetDescr(rel), &isnull);

		if (!isnull)
			source = DatumGetObjectId(d);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	return source;
}

/* Is relid the source, or a table it inherits from (a change recurses)? */
static bool
touches_source(Oid relid, Oid source)
{
	if (relid == source)
		return true;
	return has_superclass(source) &&
		list_member_oid(find_all_inheritors(relid, NoLock, NULL), source);
}

/* Is s one of the non-NULL names? */
static bool
name_is(const char *s, const char *name)
{
	return name != NULL && strcmp(s, name) == 0;
}

/*
 * The ids of the segments whose definitions read one of these columns (an
 * attribute condition with that field), as a uuid[] Datum and a count.
 */
static Datum
segments_reading(List *columns, int *count)
{
	Datum	   *elems = palloc(Max(list_length(columns), 1) * sizeof(Datum));
	ListCell   *lc;
	int			n = 0;
	Oid			argtype = TEXTARRAYOID;
	Datum		arg;
	bool		isnull;

	foreach(lc, columns)
		elems[n++] = CStringGetTextDatum((char *) lfirst(lc));
	arg = PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
	if (SPI_execute_with_args("SELECT coalesce(pg_catalog.array_agg(s.id), '{}'), pg_catalog.count(*)"
							  "  FROM segments.segment s"
							  " WHERE EXISTS (SELECT 1 FROM pg_catalog.unnest($1) f(name)"
							  "   WHERE pg_catalog.jsonb_path_exists(s.definition,"
							  "     '$.** ? (@.type == \"attribute\" && @.field == $f)',"
							  "     pg_catalog.jsonb_build_object('f', f.name)))",
							  1, &argtype, &arg, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read segment definitions");
	*count = (int) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 2, &isnull));
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
}

/*
 * The names of segments (uuid[]) for an error message: those this session
 * may see, quoted, and how many it may not see (never named).
 */
static char *
segment_names(Datum ids)
{
	Oid			argtype = UUIDARRAYOID;
	StringInfoData buf;
	int			hidden = 0;

	if (SPI_execute_with_args("SELECT s.name, segments._tenant_visible(s.tenant)"
							  "  FROM segments.segment s WHERE s.id OPERATOR(pg_catalog.=) ANY ($1)"
							  " ORDER BY s.name",
							  1, &argtype, &ids, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read segment names");
	initStringInfo(&buf);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;

		if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull)))
		{
			hidden++;
			continue;
		}
		appendStringInfo(&buf, "%s\"%s\"", buf.len > 0 ? ", " : "",
						 SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1));
	}
	if (hidden > 0)
		appendStringInfo(&buf, "%s%d segment%s this session may not see", buf.len > 0 ? " and " : "",
						 hidden, hidden == 1 ? "" : "s");
	return buf.data;
}

/* "schema.table" of a relation, quoted as needed. */
static char *
rel_display(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/* Sets segments (uuid[]) pending and wakes the worker at commit. */
static void
request_evaluation(Datum ids)
{
	Oid			argtype = UUIDARRAYOID;

	if (SPI_execute_with_args("UPDATE segments.segment_state"
							  "   SET state = 'pending', requested_at = pg_catalog.clock_timestamp()"
							  " WHERE segment_id OPERATOR(pg_catalog.=) ANY ($1)",
							  1, &argtype, &ids, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update segments.segment_state");
	SharedNotifyAtCommit();
}

/*
 * After ALTER COLUMN ... TYPE on the source: the key keeps its type (the
 * probes and segments.member are built for it), the traits column stays
 * jsonb, every definition reading a retyped column still compiles; then
 * the segments reading it are re-evaluated, as any change of their data
 * would be.  Otherwise the command is refused.
 */
static void
source_retyped(Oid source, const ConfigNames *names, List *columns)
{
	SegmentCatalog *cat = CatalogLoad(CurrentMemoryContext, true);
	ListCell   *lc;
	Datum		ids;
	int			nids;
	bool		tenant_changed = false;

	foreach(lc, columns)
	{
		const char *col = lfirst(lc);
		Oid			type = get_atttype(source, get_attnum(source, col));

		if (name_is(col, names->key) && type != cat->config.key_type)
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot change the type of column \"%s\" of %s to %s: it is the key column of segments, configured as %s",
							col, rel_display(source), format_type_be(type),
							format_type_be(cat->config.key_type)),
					 errhint("Call segments.configure(NULL) first, change the type, then call segments.configure() again; membership is rebuilt.")));
		if (name_is(col, names->traits) && type != JSONBOID)
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot change the type of column \"%s\" of %s to %s: it is the traits column of segments, which must be jsonb",
							col, rel_display(source), format_type_be(type)),
					 errhint("Call segments.configure() with another traits column, or none, first.")));
		tenant_changed |= name_is(col, names->tenant);
	}

	ids = segments_reading(columns, &nids);
	if (nids > 0)
	{
		Relation	rel = table_open(source, NoLock);
		RuleParseContext pctx;
		ArrayType  *arr = DatumGetArrayTypeP(ids);
		pg_uuid_t  *uuids = (pg_uuid_t *) ARR_DATA_PTR(arr);
		StringInfoData failures;
		Datum	   *bad = palloc(nids * sizeof(Datum));
		int			nbad = 0;
		char	   *first_error = NULL;

		initStringInfo(&failures);
		for (int i = 0; i < nids; i++)
		{
			const CatalogSegment *seg = CatalogFindById(cat, &uuids[i]);
			char	   *error = NULL;

			if (seg == NULL)
				continue;
			CatalogBuildParseContext(&pctx, rel, &cat->config);
			if (CatalogParseSaved(seg, &pctx, &error) == NULL)
			{
				bad[nbad++] = UUIDPGetDatum(&seg->id);
				if (first_error == NULL && CatalogTenantVisible(seg->tenant))
					first_error = error;
			}
		}
		table_close(rel, NoLock);
		if (nbad > 0)
		{
			Datum		badids = PointerGetDatum(construct_array(bad, nbad, UUIDOID, UUID_LEN,
																 false, TYPALIGN_CHAR));

			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot change the type of column \"%s\" of %s: segment definitions reading it would no longer be valid",
							(char *) linitial(columns), rel_display(source)),
					 errdetail("Segments no longer valid: %s.%s%s", segment_names(badids),
							   first_error ? " First error: " : "",
							   first_error ? first_error : ""),
					 errhint("Update or drop those segments first, or choose a type their rules can read.")));
		}
	}
	if (tenant_changed)
	{
		/* tenant-scoped segments compare the column's text: every segment */
		if (SPI_execute("SELECT coalesce(pg_catalog.array_agg(id), '{}') FROM segments.segment",
						true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read segments");
		{
			bool		isnull;

			ids = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		}
		nids = 1;
	}
	if (nids > 0)
		request_evaluation(ids);
}

/* The relations (pg_class objects) the current command reported. */
static List *
command_relids(void)
{
	List	   *relids = NIL;

	if (SPI_execute("SELECT DISTINCT objid FROM pg_catalog.pg_event_trigger_ddl_commands()"
					" WHERE classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the commands of this event");
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;

		relids = lappend_oid(relids,
							 DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[r],
															SPI_tuptable->tupdesc, 1, &isnull)));
	}
	return relids;
}

/*
 * segments._ddl_start() RETURNS event_trigger
 *
 * ddl_command_start of ALTER TABLE: refuses a new type for the key column
 * before the table is rewritten (segments._ddl_end() would refuse it too,
 * after the rewrite).  Not SECURITY DEFINER, and it runs no SQL: the table
 * and type names resolve with the caller's search_path, as the command's
 * own will; segments.config is read directly.
 */
Datum
segments_ddl_start(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	AlterTableStmt *stmt;
	SegmentsConfig config;
	Oid			relid;
	ListCell   *lc;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "segments_ddl_start: not fired by event trigger manager");
	trigdata = (EventTriggerData *) fcinfo->context;
	if (!IsA(trigdata->parsetree, AlterTableStmt))
		PG_RETURN_VOID();
	stmt = (AlterTableStmt *) trigdata->parsetree;
	if (stmt->objtype != OBJECT_TABLE || !OidIsValid(CatalogRelid("config", true)))
		PG_RETURN_VOID();
	/*
	 * Another table than the source: return before CatalogLoadConfig()
	 * locks the source.  On Citus the DDL of a shard runs in a session of
	 * the distributed transaction that may not be the one altering the
	 * source's table on that node: waiting for its lock is a distributed
	 * deadlock.
	 */
	relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	if (!OidIsValid(relid) || !touches_source(relid, configured_source()))
		PG_RETURN_VOID();
	CatalogLoadConfig(&config);
	if (!config.has_row || config.key_attnum <= 0 || get_rel_name(config.source_relid) == NULL)
		PG_RETURN_VOID();

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);
		ColumnDef  *def = (ColumnDef *) cmd->def;
		Oid			type;
		char	   *key = get_attname(config.source_relid, config.key_attnum, true);

		if (cmd->subtype != AT_AlterColumnType || cmd->name == NULL || key == NULL ||
			strcmp(cmd->name, key) != 0 || def == NULL || !IsA(def, ColumnDef) ||
			def->typeName == NULL)
			continue;
		type = LookupTypeNameOid(NULL, def->typeName, true);
		if (OidIsValid(type) && type != config.key_type)
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot change the type of column \"%s\" of %s to %s: it is the key column of segments, configured as %s",
							key, rel_display(config.source_relid), format_type_be(type),
							format_type_be(config.key_type)),
					 errhint("Call segments.configure(NULL) first, change the type, then call segments.configure() again; membership is rebuilt.")));
	}
	PG_RETURN_VOID();
}

/*
 * segments._ddl_end() RETURNS event_trigger
 *
 * ddl_command_end of ALTER TABLE and CREATE TRIGGER.
 */
Datum
segments_ddl_end(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	Node	   *tree;
	ConfigNames names;
	Oid			source;
	bool		touched = false;
	ListCell   *lc;
	List	   *relids;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "segments_ddl_end: not fired by event trigger manager");
	trigdata = (EventTriggerData *) fcinfo->context;
	tree = trigdata->parsetree;
	if (!IsA(tree, AlterTableStmt) && !IsA(tree, RenameStmt) && !IsA(tree, CreateTrigStmt) &&
		!IsA(tree, AlterObjectSchemaStmt))
		PG_RETURN_VOID();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	source = config_source(&names);
	if (!OidIsValid(source))
	{
		SPI_finish();
		PG_RETURN_VOID();
	}

	if (IsA(tree, CreateTrigStmt))
	{
		/* capture coming back (a restore's last step): let the worker look */
		SharedNotifyAtCommit();
		SPI_finish();
		PG_RETURN_VOID();
	}

	relids = command_relids();
	foreach(lc, relids)
		touched |= touches_source(lfirst_oid(lc), source);
	if (!touched)
	{
		SPI_finish();
		PG_RETURN_VOID();
	}
	/* the worker checks the source again (capture enabled or disabled...) */
	SharedNotifyAtCommit();

	if (IsA(tree, AlterObjectSchemaStmt) ||
		(IsA(tree, RenameStmt) && ((RenameStmt *) tree)->renameType == OBJECT_TABLE))
	{
		/* Citus: the workers' catalog copy names the source anew */
		if (SPI_execute("SELECT segments._citus_push_catalog()", false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not follow the rename of the source");
	}
	else if (IsA(tree, RenameStmt))
	{
		RenameStmt *stmt = (RenameStmt *) tree;

		if (stmt->renameType == OBJECT_COLUMN && stmt->subname && stmt->newname)
		{
			Oid			types[2] = {TEXTOID, TEXTOID};
			Datum		values[2] = {CStringGetTextDatum(stmt->subname),
			CStringGetTextDatum(stmt->newname)};

			if (SPI_execute_with_args("SELECT segments._rename_column($1, $2)", 2, types,
									  values, NULL, false, 0) != SPI_OK_SELECT)
				elog(ERROR, "could not follow the column rename");
		}
	}
	else
	{
		AlterTableStmt *stmt = (AlterTableStmt *) tree;
		List	   *retyped = NIL;

		foreach(lc, stmt->cmds)
		{
			AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

			if (cmd->subtype == AT_AlterColumnType && cmd->name != NULL)
				retyped = lappend(retyped, cmd->name);
		}
		if (retyped != NIL)
			source_retyped(source, &names, retyped);
	}
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * segments._sql_drop() RETURNS event_trigger
 *
 * sql_drop of every command: refuses to drop the configured source, its
 * key, tenant or traits column, a column a segment reads, or the last
 * unique index on the key.  Raising the error undoes the whole command.
 */
Datum
segments_sql_drop(PG_FUNCTION_ARGS)
{
	ConfigNames names;
	Oid			source;
	Oid			argtype = OIDOID;
	Datum		arg;
	List	   *columns = NIL;
	bool		index_dropped = false;
	char	   *relname;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "segments_sql_drop: not fired by event trigger manager");
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	source = config_source(&names);
	if (!OidIsValid(source))
	{
		SPI_finish();
		PG_RETURN_VOID();
	}

	arg = ObjectIdGetDatum(source);
	if (SPI_execute_with_args("SELECT objsubid, object_type,"
							  "       address_names[pg_catalog.array_upper(address_names, 1)],"
							  "       object_identity"
							  "  FROM pg_catalog.pg_event_trigger_dropped_objects()"
							  " WHERE (classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
							  "        AND objid OPERATOR(pg_catalog.=) $1)"
							  "    OR object_type OPERATOR(pg_catalog.=) 'index'",
							  1, &argtype, &arg, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the dropped objects");
	if (SPI_processed == 0)
	{
		SPI_finish();
		PG_RETURN_VOID();
	}
	relname = NULL;
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int32		subid = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		char	   *type = SPI_getvalue(tup, desc, 2);
		char	   *name = SPI_getvalue(tup, desc, 3);

		if (strcmp(type, "index") == 0)
		{
			index_dropped = true;
			continue;
		}
		if (subid == 0)
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot drop table %s because segments reads its contacts from it",
							SPI_getvalue(tup, desc, 4)),
					 errhint("Call segments.configure(NULL) first to unconfigure segments.")));
		if (name == NULL)
			continue;
		if (relname == NULL)
		{
			/* "schema.table.column": the table part */
			char	   *identity = SPI_getvalue(tup, desc, 4);
			char	   *dot = identity ? strrchr(identity, '.') : NULL;

			relname = dot ? pnstrdup(identity, dot - identity) : get_rel_name(source);
		}
		if (name_is(name, names.key) || name_is(name, names.tenant) || name_is(name, names.traits))
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot drop column \"%s\" of table %s because it is the %s column of segments",
							name, relname,
							name_is(name, names.key) ? "key" :
							name_is(name, names.tenant) ? "tenant" : "traits"),
					 errhint("Call segments.configure() without it, or segments.configure(NULL) to unconfigure segments, first.")));
		columns = lappend(columns, pstrdup(name));
	}

	if (columns != NIL)
	{
		int			nids;
		Datum		ids = segments_reading(columns, &nids);

		if (nids > 0)
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot drop column \"%s\" of table %s because segments read it",
							(char *) linitial(columns), relname),
					 errdetail("Segments reading it: %s.", segment_names(ids)),
					 errhint("Update or drop those segments first.")));
	}

	if (index_dropped && names.key != NULL)
	{
		AttrNumber	key_attnum = get_attnum(source, names.key);
		Relation	rel;
		bool		has_index;

		rel = table_open(source, AccessShareLock);
		has_index = key_attnum <= 0 || OidIsValid(CatalogFindKeyIndex(rel, key_attnum));
		table_close(rel, NoLock);
		if (!has_index)
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot drop the unique index on key column \"%s\" of %s: segments looks contacts up through it",
							names.key, rel_display(source)),
					 errhint("Create another unique index on the key column first.")));
	}
	SPI_finish();
	PG_RETURN_VOID();
}

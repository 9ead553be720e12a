/*-------------------------------------------------------------------------
 *
 * catalog.c
 *		Reads segments.config and segments.segment, and keeps a per-backend
 *		cache of them for the reading functions.
 *
 * The cache is dropped on a relcache invalidation of the catalog tables:
 * a statement trigger on them (segments_catalog_changed) sends one, so a
 * change made by any backend reaches every reader at its next command.
 *
 *-------------------------------------------------------------------------
 */
#include "catalog.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

PG_FUNCTION_INFO_V1(segments_catalog_changed);

/* The cached catalog and the relations whose changes invalidate it. */
static SegmentCatalog *cached_catalog = NULL;
static uint64 cached_catalog_loads = 0;
static MemoryContext cached_catalog_cxt = NULL;
static bool cached_catalog_latest = false;	/* false: loaded in parallel mode */
static Oid	watched_relids[6];

/*
 * Relcache callback: forget the cached catalog when one of its tables (or
 * everything, relid InvalidOid) was invalidated.
 */
static void
catalog_invalidate(Datum arg, Oid relid)
{
	if (cached_catalog == NULL)
		return;
	for (int i = 0; i < lengthof(watched_relids); i++)
	{
		if (relid == InvalidOid || relid == watched_relids[i])
		{
			cached_catalog = NULL;
			return;
		}
	}
}

/* Registers the invalidation callback; called once from _PG_init. */
void
CatalogInitCallbacks(void)
{
	CacheRegisterRelcacheCallback(catalog_invalidate, (Datum) 0);
}

/*
 * Trigger function on the catalog tables: make every backend drop its
 * cached catalog once this transaction commits.
 */
Datum
segments_catalog_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "segments_catalog_changed: not called by trigger manager");
	CacheInvalidateRelcacheByRelid(RelationGetRelid(trigdata->tg_relation));
	return PointerGetDatum(NULL);
}

/* The OID of a relation in schema segments; InvalidOid if missing_ok. */
Oid
CatalogRelid(const char *relname, bool missing_ok)
{
	Oid			nsp = get_namespace_oid("segments", missing_ok);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid(relname, nsp) : InvalidOid;

	if (!OidIsValid(relid) && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"segments.%s\" does not exist", relname),
				 errhint("Is the segments extension installed in this database?")));
	return relid;
}

/*
 * Does the installed SQL have failure handling (0.2.0: segment_state's
 * retry columns, change_queue_failed, _member_without)?  A server running
 * this library with the extension still at 0.1.0, before ALTER EXTENSION
 * UPDATE, behaves as 0.1.0 did: no retries, nothing set aside.
 */
bool
CatalogHasFailureHandling(void)
{
	return OidIsValid(CatalogRelid("change_queue_failed", true));
}

/* The snapshot to read the catalog tables with. */
static Snapshot
catalog_snapshot(void)
{
	return ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();
}

/* Text of a column, or NULL; palloc'd in the current context. */
static char *
column_cstring(Datum *values, bool *nulls, int attnum, Oid typid)
{
	Oid			outfunc;
	bool		isvarlena;

	if (attnum <= 0 || nulls[attnum - 1])
		return NULL;
	getTypeOutputInfo(typid, &outfunc, &isvarlena);
	return OidOutputFunctionCall(outfunc, values[attnum - 1]);
}

/* The unique single-column index of relid on attnum, or InvalidOid. */
Oid
CatalogFindKeyIndex(Relation rel, AttrNumber attnum)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	Oid			found = InvalidOid;

	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index form = index->rd_index;

		if (form->indisunique && form->indisvalid && form->indnatts == 1 &&
			form->indkey.values[0] == attnum &&
			heap_attisnull(index->rd_indextuple, Anum_pg_index_indpred, NULL) &&
			heap_attisnull(index->rd_indextuple, Anum_pg_index_indexprs, NULL))
			found = RelationGetRelid(index);
		index_close(index, AccessShareLock);
		if (OidIsValid(found))
			break;
	}
	list_free(indexes);
	return found;
}

/* The type of column attnum of relid, or InvalidOid. */
static Oid
column_type(Oid relid, AttrNumber attnum)
{
	return attnum > 0 ? get_atttype(relid, attnum) : InvalidOid;
}

/*
 * Resolves the configured column names against the source as it is now,
 * and checks everything the C paths rely on: the key column still has the
 * configured type (probes search its index with that type) and a unique
 * index, segments.member was built for that type, the tenant and traits
 * columns exist.  Returns why the configuration is unusable, or NULL.
 * The source's own DDL is refused before it gets here (schema_ddl.c);
 * this is the last line, for what bypassed that.
 */
static char *
check_source(SegmentsConfig *config, const char *key_column,
			 const char *tenant_column, const char *traits_column)
{
	Oid			relid = config->source_relid;
	char	   *relname;
	Relation	source;
	Oid			key_type;

	if (get_rel_name(relid) == NULL)
		return psprintf("the source table (OID %u) no longer exists", relid);
	relname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
										 get_rel_name(relid));
	config->key_attnum = key_column ? get_attnum(relid, key_column) : InvalidAttrNumber;
	if (config->key_attnum <= 0)
		return psprintf("key column \"%s\" of %s no longer exists", key_column, relname);
	key_type = column_type(relid, config->key_attnum);
	if (key_type != config->key_type)
		return psprintf("key column \"%s\" of source \"%s\" has type %s, not %s as configured",
						key_column, relname, format_type_be(key_type),
						format_type_be(config->key_type));
	if (tenant_column != NULL)
	{
		config->tenant_attnum = get_attnum(relid, tenant_column);
		if (config->tenant_attnum <= 0)
			return psprintf("tenant column \"%s\" of %s no longer exists", tenant_column, relname);
		config->tenant_type = column_type(relid, config->tenant_attnum);
	}
	if (traits_column != NULL)
	{
		config->traits_attnum = get_attnum(relid, traits_column);
		if (config->traits_attnum <= 0)
			return psprintf("traits column \"%s\" of %s no longer exists", traits_column, relname);
		if (column_type(relid, config->traits_attnum) != JSONBOID)
			return psprintf("traits column \"%s\" of source \"%s\" has type %s, not jsonb",
							traits_column, relname,
							format_type_be(column_type(relid, config->traits_attnum)));
	}
	if (!OidIsValid(config->member_relid) || !OidIsValid(config->member_pkey) ||
		column_type(config->member_relid, 1) != config->key_type)
		return psprintf("the membership storage does not match key type %s",
						format_type_be(config->key_type));
	source = table_open(relid, AccessShareLock);
	config->source_key_index = CatalogFindKeyIndex(source, config->key_attnum);
	table_close(source, AccessShareLock);
	if (!OidIsValid(config->source_key_index))
		return psprintf("key column \"%s\" of %s has no unique index", key_column, relname);
	return NULL;
}

/*
 * The error of a reading or evaluating path when the source is not
 * usable: never configured, or configured and broken (with the reason).
 */
void
CatalogNotConfiguredError(const SegmentsConfig *config)
{
	if (config->has_row && config->problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("segments cannot use its contact source: %s", config->problem),
				 errhint("Restore the source table's shape, or call segments.configure() again.")));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("segments is not configured"),
			 errhint("Call segments.configure(source => ..., key_column => ...) first.")));
}

/*
 * Reads the singleton row of segments.config into *config, resolved
 * against the source as it is now (config->problem says what is wrong).
 */
void
CatalogLoadConfig(SegmentsConfig *config)
{
	Oid			relid = CatalogRelid("config", false);
	Relation	rel = table_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	TableScanDesc scan = table_beginscan(rel, catalog_snapshot(), 0, NULL);
	HeapTuple	tuple;

	memset(config, 0, sizeof(*config));
	if ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Datum	   *values = palloc(desc->natts * sizeof(Datum));
		bool	   *nulls = palloc(desc->natts * sizeof(bool));
		char	   *key_column;
		char	   *tenant_column;
		char	   *traits_column;

		heap_deform_tuple(tuple, desc, values, nulls);
		config->source_relid = DatumGetObjectId(values[SPI_fnumber(desc, "source") - 1]);
		config->key_type = DatumGetObjectId(values[SPI_fnumber(desc, "key_type") - 1]);
		key_column = column_cstring(values, nulls, SPI_fnumber(desc, "key_column"), NAMEOID);
		tenant_column = column_cstring(values, nulls, SPI_fnumber(desc, "tenant_column"), NAMEOID);
		traits_column = column_cstring(values, nulls, SPI_fnumber(desc, "traits_column"), NAMEOID);

		config->has_tenant_column = tenant_column != NULL;
		config->tenant_column = tenant_column;
		config->has_row = true;
		config->member_relid = CatalogRelid("member", true);
		config->member_pkey = CatalogRelid("member_pkey", true);
		if (OidIsValid(config->member_relid))
			config->member_tenant_attnum = get_attnum(config->member_relid, "tenant");
		config->problem = check_source(config, key_column, tenant_column, traits_column);
		config->configured = (config->problem == NULL);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
}

/* Raises the error of a source column whose type is not what it must be. */
static void
source_column_error(Relation source, AttrNumber attnum, const char *role,
					const char *detail)
{
	Form_pg_attribute att = TupleDescAttr(RelationGetDescr(source), attnum - 1);

	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("%s column \"%s\" of source \"%s\" has type %s, %s",
					role, NameStr(att->attname),
					quote_qualified_identifier(get_namespace_name(RelationGetNamespace(source)),
											   RelationGetRelationName(source)),
					format_type_be(att->atttypid), detail),
			 errhint("Change the column back, or call segments.configure() again to re-point segments at the source.")));
}

/*
 * Checks, before an evaluation pass reads the source, that its key, tenant
 * and traits columns still have the types the pass will read them as: the
 * configured key type, jsonb, a built-in type for the tenant (whose text
 * the pass reads).  A column changed behind configure()'s back fails the
 * pass with an error naming it, instead of being read as another type.
 */
void
CatalogCheckSource(const SegmentsConfig *config, Relation source)
{
	TupleDesc	desc = RelationGetDescr(source);

	if (config->key_attnum <= 0 || config->key_attnum > desc->natts ||
		(config->tenant_attnum > desc->natts) || (config->traits_attnum > desc->natts))
		elog(ERROR, "segments: the configured columns are not in the source");
	if (TupleDescAttr(desc, config->key_attnum - 1)->atttypid != config->key_type)
		source_column_error(source, config->key_attnum, "key",
							psprintf("not %s as configured", format_type_be(config->key_type)));
	if (config->traits_attnum > 0 &&
		TupleDescAttr(desc, config->traits_attnum - 1)->atttypid != JSONBOID)
		source_column_error(source, config->traits_attnum, "traits", "not jsonb");
	if (config->tenant_attnum > 0 &&
		TupleDescAttr(desc, config->tenant_attnum - 1)->atttypid >= FirstNormalObjectId)
		source_column_error(source, config->tenant_attnum, "tenant", "which is not a built-in type");
}

/* Qsort comparator of CatalogSegment by num. */
static int
segment_num_cmp(const void *a, const void *b)
{
	int32		na = ((const CatalogSegment *) a)->num;
	int32		nb = ((const CatalogSegment *) b)->num;

	return (na > nb) - (na < nb);
}

/* Qsort comparator of CatalogSegment pointers by id. */
static int
segment_id_cmp(const void *a, const void *b)
{
	return memcmp(&(*(CatalogSegment *const *) a)->id,
				  &(*(CatalogSegment *const *) b)->id, sizeof(pg_uuid_t));
}

/*
 * Reads the configuration and every segment (all tenants) into a new
 * SegmentCatalog allocated in cxt.  with_definitions also copies each
 * segment's definition and refs, which the evaluator needs.
 */
SegmentCatalog *
CatalogLoad(MemoryContext cxt, bool with_definitions)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	SegmentCatalog *cat = palloc0(sizeof(SegmentCatalog));
	Oid			relid = CatalogRelid("segment", false);
	Relation	rel = table_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	TableScanDesc scan;
	HeapTuple	tuple;
	int			allocated = 16;
	int			att_id = SPI_fnumber(desc, "id");
	int			att_num = SPI_fnumber(desc, "num");
	int			att_tenant = SPI_fnumber(desc, "tenant");
	int			att_name = SPI_fnumber(desc, "name");
	int			att_definition = SPI_fnumber(desc, "definition");
	int			att_refs = SPI_fnumber(desc, "refs");
	int			att_depends = SPI_fnumber(desc, "depends_on");
	Datum	   *values = palloc(desc->natts * sizeof(Datum));
	bool	   *nulls = palloc(desc->natts * sizeof(bool));

	CatalogLoadConfig(&cat->config);
	cat->segments = palloc(allocated * sizeof(CatalogSegment));

	scan = table_beginscan(rel, catalog_snapshot(), 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		CatalogSegment *seg;
		ArrayType  *deps;

		if (cat->nsegments == allocated)
		{
			allocated *= 2;
			cat->segments = repalloc(cat->segments, allocated * sizeof(CatalogSegment));
		}
		seg = &cat->segments[cat->nsegments++];
		memset(seg, 0, sizeof(*seg));
		heap_deform_tuple(tuple, desc, values, nulls);
		memcpy(&seg->id, DatumGetUUIDP(values[att_id - 1]), sizeof(pg_uuid_t));
		seg->num = DatumGetInt32(values[att_num - 1]);
		seg->tenant = nulls[att_tenant - 1] ? NULL : TextDatumGetCString(values[att_tenant - 1]);
		seg->name = TextDatumGetCString(values[att_name - 1]);

		deps = DatumGetArrayTypeP(values[att_depends - 1]);
		seg->ndepends = ArrayGetNItems(ARR_NDIM(deps), ARR_DIMS(deps));
		seg->depends_on = palloc(Max(seg->ndepends, 1) * sizeof(pg_uuid_t));
		memcpy(seg->depends_on, ARR_DATA_PTR(deps), seg->ndepends * sizeof(pg_uuid_t));

		if (with_definitions)
		{
			seg->definition = DatumGetJsonbPCopy(values[att_definition - 1]);
			seg->refs = DatumGetJsonbPCopy(values[att_refs - 1]);
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);

	qsort(cat->segments, cat->nsegments, sizeof(CatalogSegment), segment_num_cmp);
	cat->by_id = palloc(Max(cat->nsegments, 1) * sizeof(CatalogSegment *));
	for (int i = 0; i < cat->nsegments; i++)
		cat->by_id[i] = &cat->segments[i];
	qsort(cat->by_id, cat->nsegments, sizeof(CatalogSegment *), segment_id_cmp);
	MemoryContextSwitchTo(old);
	return cat;
}

/*
 * The catalog as committed now (and as this transaction changed it), in a
 * new SegmentCatalog in cxt, without definitions, whatever the caller's
 * snapshot.  In parallel mode, where no snapshot can be taken, as the
 * active snapshot sees it; *latest says which.
 */
SegmentCatalog *
CatalogLoadLatest(MemoryContext cxt, bool *latest)
{
	SegmentCatalog *cat;

	*latest = !IsInParallelMode();
	if (*latest)
		PushActiveSnapshot(GetLatestSnapshot());
	cat = CatalogLoad(cxt, false);
	if (*latest)
		PopActiveSnapshot();
	return cat;
}

/*
 * The catalog as cached for this backend, loaded on first use and after an
 * invalidation.  The result stays valid until the next command.
 *
 * Loaded with a snapshot taken then, not the caller's: a change's
 * invalidation is sent after its commit, so a load after the invalidation
 * was processed must see the commit.  With the snapshot of a REPEATABLE
 * READ transaction, or of a statement begun before the commit, the cache
 * kept the old catalog once the invalidation was gone, in every later
 * transaction of the session: segment_is_member() did not know a new
 * segment, and the worker's history trigger took its number for a dropped
 * one's and recorded none of its entries.  A load in parallel mode (the
 * query's snapshot) is replaced at the first call after it.
 */
const SegmentCatalog *
CatalogGet(void)
{
	if (cached_catalog != NULL && !cached_catalog_latest && !IsInParallelMode())
		cached_catalog = NULL;
	if (cached_catalog == NULL)
	{
		if (cached_catalog_cxt == NULL)
			cached_catalog_cxt = AllocSetContextCreate(CacheMemoryContext,
													   "segments catalog cache",
													   ALLOCSET_SMALL_SIZES);
		else
			MemoryContextReset(cached_catalog_cxt);

		watched_relids[0] = CatalogRelid("segment", false);
		watched_relids[1] = CatalogRelid("config", false);
		cached_catalog = CatalogLoadLatest(cached_catalog_cxt, &cached_catalog_latest);
		cached_catalog->generation = ++cached_catalog_loads;
		watched_relids[2] = cached_catalog->config.member_relid;
		watched_relids[3] = cached_catalog->config.source_relid;
		/*
		 * The indexes read by oid: REINDEX CONCURRENTLY (the worker's
		 * rebuild of member_pkey, or a user's of the source's key index)
		 * gives the rebuilt index a new oid and drops the old one.
		 */
		watched_relids[4] = cached_catalog->config.member_pkey;
		watched_relids[5] = cached_catalog->config.source_key_index;
	}
	return cached_catalog;
}

/* The segment with this number, or NULL (binary search). */
const CatalogSegment *
CatalogFindByNum(const SegmentCatalog *cat, int32 num)
{
	int			lo = 0,
				hi = cat->nsegments - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;
		int32		n = cat->segments[mid].num;

		if (n == num)
			return &cat->segments[mid];
		if (n < num)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

/* The segment with this id, or NULL (binary search). */
const CatalogSegment *
CatalogFindById(const SegmentCatalog *cat, const pg_uuid_t *id)
{
	int			lo = 0,
				hi = cat->nsegments - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;
		int			c = memcmp(&cat->by_id[mid]->id, id, sizeof(pg_uuid_t));

		if (c == 0)
			return cat->by_id[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

/* Fills the parts of a RuleParseContext that describe the source. */
void
CatalogBuildParseContext(RuleParseContext *pctx, Relation source,
						 const SegmentsConfig *config)
{
	memset(pctx, 0, sizeof(*pctx));
	if (source != NULL)
	{
		pctx->source_desc = RelationGetDescr(source);
		pctx->traits_attnum = config->traits_attnum;
	}
}

/* Reference resolver for saved definitions: through the segment's refs map. */
bool
CatalogResolveSavedRef(const char *ref, pg_uuid_t *id, void *arg)
{
	Jsonb	   *refs = (Jsonb *) arg;
	JsonbValue	k;
	JsonbValue *v;
	char	   *text;

	k.type = jbvString;
	k.val.string.val = (char *) ref;
	k.val.string.len = strlen(ref);
	v = findJsonbValueFromContainer(&refs->root, JB_FOBJECT, &k);
	if (v == NULL || v->type != jbvString)
		return false;
	text = pnstrdup(v->val.string.val, v->val.string.len);
	return CatalogParseUuid(text, id);
}

/*
 * Compiles a saved definition, its references resolved through its refs
 * map.  On failure returns NULL and, when error is given, the message:
 * one broken segment must not stop a pass over the others.
 */
RuleNode *
CatalogParseSaved(const CatalogSegment *seg, RuleParseContext *pctx, char **error)
{
	MemoryContext cxt = CurrentMemoryContext;
	RuleNode   *volatile root = NULL;

	pctx->resolve = CatalogResolveSavedRef;
	pctx->resolve_arg = seg->refs;
	PG_TRY();
	{
		root = RuleParse(seg->definition, pctx)->root;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (!RuleErrorIsInput(edata->sqlerrcode))
			PG_RE_THROW();
		FlushErrorState();
		if (error != NULL)
			*error = edata->message;
	}
	PG_END_TRY();
	return root;
}

/*-------------------------------------------------------------------------
 *
 * functions.c
 *		The SQL-callable reading and gating functions: segment_is_member,
 *		filter_restricted, _contact_segment_ids and _segment_num.
 *
 * They never write, so they run on a hot standby and in read-only
 * transactions.  Unknown, dropped or invisible segments never grant
 * membership: these checks fail closed instead of raising.
 *
 *-------------------------------------------------------------------------
 */
#include "catalog.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

PG_FUNCTION_INFO_V1(segments_segment_is_member);
PG_FUNCTION_INFO_V1(segments_filter_restricted);
PG_FUNCTION_INFO_V1(segments_contact_segment_ids);
PG_FUNCTION_INFO_V1(segments_segment_num);

/* The catalog, or an error when segments.configure() was never called. */
static const SegmentCatalog *
configured_catalog(void)
{
	const SegmentCatalog *cat = CatalogGet();

	if (!cat->config.configured)
		CatalogNotConfiguredError(&cat->config);
	return cat;
}

/* A segment by id that a session with this view may see, or NULL. */
static const CatalogSegment *
visible_by_id(const SegmentCatalog *cat, const TenantView *view, const pg_uuid_t *id)
{
	const CatalogSegment *seg = CatalogFindById(cat, id);

	return (seg != NULL && CatalogSegmentVisibleIn(view, seg->tenant)) ? seg : NULL;
}

/*
 * The last name looked up by visible_by_text, for the common case of one
 * name checked over and over (a prepared statement): valid for the same
 * catalog load and session view, when the name was not ambiguous.
 */
static struct
{
	uint64		generation;		/* 0: empty */
	TenantScope scope;
	char	   *tenant;			/* NULL: none */
	char	   *ref;
	const CatalogSegment *match;
}			last_name;

static bool
last_name_hit(const SegmentCatalog *cat, const TenantView *view, const char *ref)
{
	return last_name.generation != 0 && last_name.generation == cat->generation &&
		last_name.scope == view->scope && strcmp(last_name.ref, ref) == 0 &&
		(view->tenant == NULL ? last_name.tenant == NULL :
		 last_name.tenant != NULL && strcmp(last_name.tenant, view->tenant) == 0);
}

static void
last_name_store(const SegmentCatalog *cat, const TenantView *view, const char *ref,
				const CatalogSegment *match)
{
	if (cat->generation == 0)
		return;
	if (last_name.ref)
		pfree(last_name.ref);
	if (last_name.tenant)
		pfree(last_name.tenant);
	last_name.ref = MemoryContextStrdup(TopMemoryContext, ref);
	last_name.tenant = view->tenant ? MemoryContextStrdup(TopMemoryContext, view->tenant) : NULL;
	last_name.scope = view->scope;
	last_name.match = match;
	last_name.generation = cat->generation;
}

/*
 * A visible segment given as text: its id if the text is one, else its
 * name.  A tenant session finds its tenant's segment first, then a global
 * one.  A session that sees every tenant, when several use the name, takes
 * the contact's tenant's (key may be (Datum) 0 when no contact is known),
 * else the global one.
 */
static const CatalogSegment *
visible_by_text(const SegmentCatalog *cat, const TenantView *view, const char *ref,
				bool have_key, Datum key)
{
	const CatalogSegment *match = NULL;
	const CatalogSegment *global = NULL;
	int			nmatches = 0;
	char	   *contact_tenant;
	pg_uuid_t	id;

	if (view->scope == TENANT_SCOPE_NONE)
		return NULL;
	if (last_name_hit(cat, view, ref))
		return last_name.match;
	if (CatalogParseUuid(ref, &id) && (match = visible_by_id(cat, view, &id)) != NULL)
		return match;
	for (int i = 0; i < cat->nsegments; i++)
	{
		const CatalogSegment *seg = &cat->segments[i];

		if (strcmp(seg->name, ref) != 0 || !CatalogSegmentVisibleIn(view, seg->tenant))
			continue;
		if (seg->tenant == NULL)
			global = seg;
		else if (view->scope == TENANT_SCOPE_ONE)
			match = seg;		/* the session's own tenant */
		else
		{
			match = seg;
			nmatches++;
		}
	}
	if (view->scope == TENANT_SCOPE_ONE || nmatches == 0)
		match = match ? match : global;
	if (view->scope == TENANT_SCOPE_ONE || nmatches + (global != NULL) <= 1)
	{
		last_name_store(cat, view, ref, match);
		return match;
	}
	if (!have_key)
		return global;			/* ambiguous among tenants: only a global one */

	/* the same name in several tenants: take the contact's */
	contact_tenant = MembershipContactTenant(&cat->config, key);
	if (contact_tenant != NULL)
	{
		for (int i = 0; i < cat->nsegments; i++)
		{
			const CatalogSegment *seg = &cat->segments[i];

			if (seg->tenant != NULL && strcmp(seg->name, ref) == 0 &&
				strcmp(seg->tenant, contact_tenant) == 0)
				return seg;
		}
	}
	return global;
}

/* The segment argument argno (uuid or text), or NULL. */
static const CatalogSegment *
segment_arg(FunctionCallInfo fcinfo, int argno, const SegmentCatalog *cat,
			const TenantView *view, bool have_key, Datum key)
{
	Oid			argtype = get_fn_expr_argtype(fcinfo->flinfo, argno);

	if (argtype == UUIDOID)
		return visible_by_id(cat, view, PG_GETARG_UUID_P(argno));
	return visible_by_text(cat, view, text_to_cstring(PG_GETARG_TEXT_PP(argno)),
						   have_key, key);
}

/*
 * The segment argument argno of a reading function, resolved as
 * segment_is_member resolves it (key, when have_key: the contact, for a
 * name several tenants use); NULL when the session sees no such segment.
 */
const CatalogSegment *
ReadSegmentArg(FunctionCallInfo fcinfo, int argno, const SegmentCatalog *cat,
			   const TenantView *view, bool have_key, Datum key)
{
	return segment_arg(fcinfo, argno, cat, view, have_key, key);
}

/* The contact argument 0 as a key; false if it cannot be one. */
static bool
contact_arg(FunctionCallInfo fcinfo, const SegmentCatalog *cat, Datum *key)
{
	return MembershipKeyFromArg(&cat->config, PG_GETARG_DATUM(0),
								get_fn_expr_argtype(fcinfo->flinfo, 0), key);
}

/*
 * segments.segment_is_member(contact, segment) RETURNS boolean
 *
 * One probe of the stored membership.  NULL arguments, unknown segments
 * and contacts of another tenant than the session's give false.
 */
Datum
segments_segment_is_member(PG_FUNCTION_ARGS)
{
	const SegmentCatalog *cat;
	const CatalogSegment *seg;
	TenantView	view;
	Datum		key;
	int32	   *nums;
	int			n;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_BOOL(false);
	cat = configured_catalog();
	view = CatalogTenantViewOf(cat);
	if (!contact_arg(fcinfo, cat, &key))
		PG_RETURN_BOOL(false);
	seg = segment_arg(fcinfo, 1, cat, &view, true, key);
	if (seg == NULL)
		PG_RETURN_BOOL(false);
	n = MembershipFetch(&cat->config, key, &nums, &view);
	PG_RETURN_BOOL(MembershipContains(nums, n, seg->num));
}

/*
 * Per-query cache of filter_restricted: the last contact and its segment
 * numbers, so a query gating many rows for one contact probes once.
 */
typedef struct GateCache
{
	bool		valid;
	Oid			argtype;
	int16		typlen;
	bool		typbyval;
	Datum		contact;
	Snapshot	snapshot;		/* what the stored membership was read with */
	CommandId	curcid;
	TransactionId xmin;
	TransactionId xmax;
	int			nnums;
	int32	   *nums;
	uint64		generation;		/* catalog load granted was built for */
	struct GateId *granted;		/* ids of the contact's visible segments */
	int			ngranted;
	TenantView	view;			/* the session's, when the contact was read */
} GateCache;

/* A uuid as two integers: compared in two instructions, not a memcmp. */
typedef struct GateId
{
	uint64		hi;
	uint64		lo;
} GateId;

static inline GateId
gate_id(const char *bytes)
{
	GateId		id;

	memcpy(&id.hi, bytes, sizeof(uint64));
	memcpy(&id.lo, bytes + sizeof(uint64), sizeof(uint64));
	return id;
}

static int
gate_id_order(const void *a, const void *b)
{
	const GateId *x = a;
	const GateId *y = b;

	if (x->hi != y->hi)
		return x->hi < y->hi ? -1 : 1;
	return (x->lo > y->lo) - (x->lo < y->lo);
}

/* Is the uuid at bytes among the granted ids? */
static inline bool
gate_has(const GateCache *cache, const char *bytes)
{
	GateId		id = gate_id(bytes);
	int			lo = 0,
				hi = cache->ngranted - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;
		const GateId *g = &cache->granted[mid];

		if (g->hi == id.hi && g->lo == id.lo)
			return true;
		if (g->hi < id.hi || (g->hi == id.hi && g->lo < id.lo))
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return false;
}

/*
 * The ids of the segments the contact holds and the session may see,
 * sorted: gating a row is then a search of its few ids in this short list.
 */
static void
gate_build_granted(GateCache *cache, const SegmentCatalog *cat, MemoryContext cxt)
{
	if (cache->granted)
		pfree(cache->granted);
	cache->granted = MemoryContextAlloc(cxt, Max(cache->nnums, 1) * sizeof(GateId));
	cache->ngranted = 0;
	for (int i = 0; i < cache->nnums; i++)
	{
		const CatalogSegment *seg = CatalogFindByNum(cat, cache->nums[i]);

		if (seg != NULL && CatalogSegmentVisibleIn(&cache->view, seg->tenant))
			cache->granted[cache->ngranted++] = gate_id((const char *) seg->id.data);
	}
	qsort(cache->granted, cache->ngranted, sizeof(GateId), gate_id_order);
	cache->generation = cat->generation;
}

/* Was the cached membership read with the active snapshot? */
static bool
same_snapshot(const GateCache *cache)
{
	Snapshot	snap = ActiveSnapshotSet() ? GetActiveSnapshot() : NULL;

	return snap != NULL && snap == cache->snapshot && snap->curcid == cache->curcid &&
		snap->xmin == cache->xmin && snap->xmax == cache->xmax;
}

static void
remember_snapshot(GateCache *cache)
{
	Snapshot	snap = ActiveSnapshotSet() ? GetActiveSnapshot() : NULL;

	cache->snapshot = snap;
	if (snap != NULL)
	{
		cache->curcid = snap->curcid;
		cache->xmin = snap->xmin;
		cache->xmax = snap->xmax;
	}
}

/* The segment numbers of the contact in argument 0, cached per query. */
static GateCache *
gate_cache_lookup(FunctionCallInfo fcinfo, const SegmentCatalog *cat)
{
	GateCache  *cache = (GateCache *) fcinfo->flinfo->fn_extra;
	Datum		contact = PG_GETARG_DATUM(0);
	Datum		key;
	MemoryContext old;

	if (cache == NULL)
	{
		cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(GateCache));
		cache->argtype = get_fn_expr_argtype(fcinfo->flinfo, 0);
		get_typlenbyval(cache->argtype, &cache->typlen, &cache->typbyval);
		fcinfo->flinfo->fn_extra = cache;
	}
	/*
	 * Valid for the same contact under the same snapshot: one query gating
	 * many rows, not a PL/pgSQL expression evaluated again after changes.
	 */
	if (cache->valid && same_snapshot(cache) &&
		datumIsEqual(cache->contact, contact, cache->typbyval, cache->typlen))
		return cache;

	if (cache->valid)
	{
		if (!cache->typbyval)
			pfree(DatumGetPointer(cache->contact));
		if (cache->nums)
			pfree(cache->nums);
		cache->valid = false;
	}
	cache->generation = 0;		/* granted is the previous contact's */
	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	/* the session's view, read once per contact and snapshot, not per row */
	if (cache->view.tenant != NULL)
		pfree((char *) cache->view.tenant);
	cache->view = CatalogTenantViewOf(cat);
	if (cache->view.tenant != NULL)
		cache->view.tenant = pstrdup(cache->view.tenant);
	cache->nums = NULL;
	cache->nnums = 0;
	if (MembershipKeyFromArg(&cat->config, contact, cache->argtype, &key))
		cache->nnums = MembershipFetch(&cat->config, key, &cache->nums, &cache->view);
	cache->contact = datumCopy(contact, cache->typbyval, cache->typlen);
	remember_snapshot(cache);
	cache->valid = true;
	MemoryContextSwitchTo(old);
	return cache;
}

/*
 * The header of a uuid[] read in place, also in its packed (short header)
 * form as stored in a row, so that gating a row neither copies nor
 * allocates.  The bytes after the header are those of ArrayType.
 */
typedef struct GateList
{
	int			nitems;
	bool		hasnulls;
	const char *data;			/* the uuids, when !hasnulls */
} GateList;

static GateList
gate_list(Datum d)
{
	struct varlena *v = (struct varlena *) PG_DETOAST_DATUM_PACKED(d);
	const char *payload = VARDATA_ANY(v);
	GateList	list = {0, false, NULL};
	int32		ndim;
	int32		dataoffset;

	memcpy(&ndim, payload, sizeof(int32));
	memcpy(&dataoffset, payload + sizeof(int32), sizeof(int32));
	if (ndim <= 0)
		return list;
	list.nitems = 1;
	for (int i = 0; i < ndim; i++)
	{
		int32		dim;

		memcpy(&dim, payload + 3 * sizeof(int32) + i * sizeof(int32), sizeof(int32));
		list.nitems *= dim;
	}
	list.hasnulls = dataoffset != 0;
	list.data = payload + ARR_OVERHEAD_NONULLS(ndim) - VARHDRSZ;
	return list;
}

static bool
gate_list_empty(Datum d)
{
	return gate_list(d).nitems == 0;
}

/* Is one of the segments of the list visible and held by the contact? */
static bool
gate_grants(const GateCache *cache, Datum d)
{
	GateList	list = gate_list(d);
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (!list.hasnulls)
	{
		for (int i = 0; i < list.nitems; i++)
		{
			if (gate_has(cache, list.data + i * UUID_LEN))
				return true;
		}
		return false;
	}
	/* NULL elements never grant: the general path */
	deconstruct_array(DatumGetArrayTypeP(d), UUIDOID, UUID_LEN, false, TYPALIGN_CHAR,
					  &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		if (!nulls[i] && gate_has(cache, (const char *) DatumGetUUIDP(elems[i])->data))
			return true;
	}
	return false;
}

/*
 * segments.filter_restricted(contact, restricted_to uuid[]) RETURNS boolean
 *
 * True for an empty or NULL list; false for an anonymous (NULL) contact
 * otherwise; else true iff the contact is in one of the listed segments.
 */
Datum
segments_filter_restricted(PG_FUNCTION_ARGS)
{
	const SegmentCatalog *cat;
	GateCache  *cache;

	if (PG_ARGISNULL(1) || gate_list_empty(PG_GETARG_DATUM(1)))
		PG_RETURN_BOOL(true);
	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);

	cat = configured_catalog();
	cache = gate_cache_lookup(fcinfo, cat);
	if (cache->nnums == 0)
		PG_RETURN_BOOL(false);
	if (cache->generation != cat->generation || cat->generation == 0)
		gate_build_granted(cache, cat, fcinfo->flinfo->fn_mcxt);
	PG_RETURN_BOOL(gate_grants(cache, PG_GETARG_DATUM(1)));
}

/*
 * segments._contact_segment_ids(contact) RETURNS uuid[]
 *
 * The ids of the visible segments the contact is in; behind
 * contact_segments().
 */
Datum
segments_contact_segment_ids(PG_FUNCTION_ARGS)
{
	const SegmentCatalog *cat;
	TenantView	view;
	Datum		key;
	int32	   *nums = NULL;
	int			n = 0;
	Datum	   *ids;
	int			nids = 0;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	cat = configured_catalog();
	view = CatalogTenantViewOf(cat);
	if (contact_arg(fcinfo, cat, &key))
		n = MembershipFetch(&cat->config, key, &nums, &view);
	ids = palloc(Max(n, 1) * sizeof(Datum));
	for (int i = 0; i < n; i++)
	{
		const CatalogSegment *seg = CatalogFindByNum(cat, nums[i]);

		if (seg != NULL && CatalogSegmentVisibleIn(&view, seg->tenant))
		{
			pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));

			memcpy(id, &seg->id, sizeof(pg_uuid_t));
			ids[nids++] = UUIDPGetDatum(id);
		}
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(ids, nids, UUIDOID, UUID_LEN, false,
										  TYPALIGN_CHAR));
}

/*
 * segments._segment_num(segment uuid|text) RETURNS integer
 *
 * The stored number of a visible segment, NULL when there is none; used by
 * segment_members() to probe the GIN index.
 */
Datum
segments_segment_num(PG_FUNCTION_ARGS)
{
	const CatalogSegment *seg;
	const SegmentCatalog *cat;
	TenantView	view;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	cat = configured_catalog();
	view = CatalogTenantViewOf(cat);
	seg = segment_arg(fcinfo, 0, cat, &view, false, (Datum) 0);
	if (seg == NULL)
		PG_RETURN_NULL();
	PG_RETURN_INT32(seg->num);
}

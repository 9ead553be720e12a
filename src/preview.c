/*-------------------------------------------------------------------------
 *
 * preview.c
 *		segments.preview(definition jsonb, sample integer DEFAULT 10):
 *		how many contacts a definition would hold, without saving it.
 *
 * The definition is validated exactly as create_segment() validates it
 * (the same parser, the same errors, the caller's column privileges, the
 * session's tenant), then evaluated as a segment of that tenant by a full
 * pass over the source (EvaluateDefinition in evaluate.c): one scan,
 * memory bounded per contact, nothing written, no catalog row, no
 * sequence.  Segments it references are evaluated afresh in the same
 * scan, as refresh() does for the segments a segment reads.
 *
 * The sample is the `sample` smallest member keys in the key type's order,
 * kept in a bounded heap: deterministic, and memory bounded by the sample.
 *
 *-------------------------------------------------------------------------
 */
#include "catalog.h"
#include "privilege.h"

#include "access/htup_details.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

PG_FUNCTION_INFO_V1(segments_preview);

/* The largest sample preview() returns. */
#define PREVIEW_MAX_SAMPLE 10000

typedef struct Preview
{
	MemoryContext cxt;			/* holds the sample */
	TenantView	view;
	int64		members;
	int64		contacts;		/* contacts the session may see */
	int			sample;			/* wanted */
	int			nkeys;
	Datum	   *keys;			/* max-heap of the smallest member keys */
	FmgrInfo	cmp;			/* btree order of the key type, collation C */
	int16		typlen;
	bool		typbyval;
} Preview;

static int
key_cmp(Preview *pv, Datum a, Datum b)
{
	return DatumGetInt32(FunctionCall2Coll(&pv->cmp, C_COLLATION_OID, a, b));
}

static void
heap_swap(Preview *pv, int i, int j)
{
	Datum		t = pv->keys[i];

	pv->keys[i] = pv->keys[j];
	pv->keys[j] = t;
}

/* Keeps key if it is among the `sample` smallest seen. */
static void
sample_add(Preview *pv, Datum key)
{
	int			i;

	if (pv->sample == 0)
		return;
	if (pv->nkeys == pv->sample)
	{
		if (key_cmp(pv, key, pv->keys[0]) >= 0)
			return;
		/* replace the largest and sift it down */
		if (!pv->typbyval)
			pfree(DatumGetPointer(pv->keys[0]));
		pv->keys[0] = datumCopy(key, pv->typbyval, pv->typlen);
		i = 0;
		for (;;)
		{
			int			l = 2 * i + 1;
			int			r = l + 1;
			int			largest = i;

			if (l < pv->nkeys && key_cmp(pv, pv->keys[l], pv->keys[largest]) > 0)
				largest = l;
			if (r < pv->nkeys && key_cmp(pv, pv->keys[r], pv->keys[largest]) > 0)
				largest = r;
			if (largest == i)
				break;
			heap_swap(pv, i, largest);
			i = largest;
		}
		return;
	}
	/* push and sift up */
	i = pv->nkeys++;
	pv->keys[i] = datumCopy(key, pv->typbyval, pv->typlen);
	while (i > 0 && key_cmp(pv, pv->keys[(i - 1) / 2], pv->keys[i]) < 0)
	{
		heap_swap(pv, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

/* EvaluateVisitFn: counts the contact, samples a member. */
static void
visit(Datum key, const char *tenant, bool member, void *arg)
{
	Preview    *pv = (Preview *) arg;
	MemoryContext old;

	if (pv->view.filter_contacts &&
		!CatalogContactVisibleIn(&pv->view, tenant, tenant ? strlen(tenant) : 0))
		return;
	pv->contacts++;
	if (!member)
		return;
	pv->members++;
	old = MemoryContextSwitchTo(pv->cxt);
	sample_add(pv, key);
	MemoryContextSwitchTo(old);
}

static int
sort_keys(const void *a, const void *b, void *arg)
{
	return key_cmp((Preview *) arg, *(const Datum *) a, *(const Datum *) b);
}

/*
 * segments.preview(definition jsonb, sample integer DEFAULT 10,
 *                  OUT member_count bigint, OUT contact_count bigint,
 *                  OUT sample_keys text[]) RETURNS record
 *
 * The members a segment with this definition would have in the session's
 * tenant, counted over the contacts the session may see, and the keys of
 * the first `sample` members in key order, as text.
 */
Datum
segments_preview(PG_FUNCTION_ARGS)
{
	const SegmentCatalog *cat = CatalogGet();
	Preview    *pv = palloc0(sizeof(Preview));
	RuleParseResult *parsed;
	TypeCacheEntry *tce;
	PrivilegeContext pctx;
	TupleDesc	desc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	Datum	   *texts;
	Oid			outfunc;
	bool		isvarlena;
	Oid			key_type;

	/* checked in create_segment()'s order: tenant, definition, rules */
	pv->view = CatalogManageView();
	/* copied: the cached tenant and catalog may be reloaded during the scan */
	if (pv->view.tenant != NULL)
		pv->view.tenant = pstrdup(pv->view.tenant);
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("segment definition must not be null"),
				 errhint("Use {\"and\": []} for a segment of every contact.")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("sample must not be NULL"),
				 errhint("Pass the number of member keys to show, 0 for none.")));
	pv->sample = PG_GETARG_INT32(1);
	if (pv->sample < 0 || pv->sample > PREVIEW_MAX_SAMPLE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sample must be between 0 and %d, not %d", PREVIEW_MAX_SAMPLE, pv->sample),
				 errhint("segments.segment_members() lists every member of a saved segment.")));
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "preview must return a row");
	parsed = DefinitionParse(PG_GETARG_JSONB_P(0), pv->view.tenant, cat);
	if (!cat->config.configured)
		CatalogNotConfiguredError(&cat->config);

	key_type = cat->config.key_type;
	pv->cxt = CurrentMemoryContext;
	pv->keys = palloc(Max(pv->sample, 1) * sizeof(Datum));
	tce = lookup_type_cache(key_type, TYPECACHE_CMP_PROC_FINFO);
	fmgr_info_copy(&pv->cmp, &tce->cmp_proc_finfo, CurrentMemoryContext);
	get_typlenbyval(key_type, &pv->typlen, &pv->typbyval);

	/* the source is read with the extension's rights, running no user code */
	PrivilegeBecomeOwner(&pctx, SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		EvaluateDefinition(parsed->root, pv->view.tenant, parsed->refs, parsed->nrefs,
						   visit, pv);
	}
	PG_CATCH();
	{
		PrivilegeRestore(&pctx, false);
		PG_RE_THROW();
	}
	PG_END_TRY();
	PrivilegeRestore(&pctx, true);

	qsort_arg(pv->keys, pv->nkeys, sizeof(Datum), sort_keys, pv);
	texts = palloc(Max(pv->nkeys, 1) * sizeof(Datum));
	getTypeOutputInfo(key_type, &outfunc, &isvarlena);
	for (int i = 0; i < pv->nkeys; i++)
		texts[i] = CStringGetTextDatum(OidOutputFunctionCall(outfunc, pv->keys[i]));
	values[0] = Int64GetDatum(pv->members);
	values[1] = Int64GetDatum(pv->contacts);
	values[2] = PointerGetDatum(construct_array(texts, pv->nkeys, TEXTOID, -1, false,
												TYPALIGN_INT));
	desc = BlessTupleDesc(desc);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

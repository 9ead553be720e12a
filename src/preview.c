/*-------------------------------------------------------------------------
 *
 * preview.c
 *		segments.preview(definition jsonb, sample integer DEFAULT 10):
 *		how many contacts a definition would hold, without saving it.
 *
 * The definition is validated exactly as create_segment() validates it
 * (the same parser, the same errors, the caller's column privileges, the
 * session's tenant), then evaluated as a segment of that tenant by a full
 * pass over the source (EvaluateDefinition, below): one scan,
 * memory bounded per contact, nothing written, no catalog row, no
 * sequence.  Segments it references are evaluated afresh in the same
 * scan, as refresh() does for the segments a segment reads.
 *
 * The sample is the `sample` smallest member keys in the key type's order,
 * kept in a bounded heap: deterministic, and memory bounded by the sample.
 *
 * On the Citus coordinator of a distributed source the definition is
 * validated here the same way, then each worker evaluates it over the
 * shards placed on it (segments._citus_preview_local()): the counts add up,
 * and the sample is the smallest keys of the workers' samples, each its
 * own `sample` smallest, so the result is the one node's.
 *
 *-------------------------------------------------------------------------
 */
#include "catalog.h"
#include "citus.h"
#include "eval_pass.h"
#include "privilege.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
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

/* Sets up pv's sample of the key type's smallest keys (in CurrentMemoryContext). */
static void
preview_init(Preview *pv, int sample, Oid key_type)
{
	TypeCacheEntry *tce;

	pv->sample = sample;
	pv->cxt = CurrentMemoryContext;
	pv->keys = palloc(Max(pv->sample, 1) * sizeof(Datum));
	tce = lookup_type_cache(key_type, TYPECACHE_CMP_PROC_FINFO);
	if (!OidIsValid(tce->cmp_proc_finfo.fn_oid))
		elog(ERROR, "key type %s has no btree order", format_type_be(key_type));
	fmgr_info_copy(&pv->cmp, &tce->cmp_proc_finfo, CurrentMemoryContext);
	get_typlenbyval(key_type, &pv->typlen, &pv->typbyval);
}

/*
 * Evaluates the parsed definition over the contacts here (the source, or,
 * with shards_here, the shards of a distributed source placed on this
 * node) into pv: the source is read with the extension's rights, running
 * no user code.
 */
static void
preview_evaluate(Preview *pv, RuleParseResult *parsed, bool shards_here)
{
	PrivilegeContext pctx;

	PrivilegeBecomeOwner(&pctx, SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		EvaluateDefinition(parsed->root, pv->view.tenant, parsed->refs, parsed->nrefs,
						   shards_here, visit, pv);
	}
	PG_CATCH();
	{
		PrivilegeRestore(&pctx, false);
		PG_RE_THROW();
	}
	PG_END_TRY();
	PrivilegeRestore(&pctx, true);
}

/* pv's sample in key order, as text (palloc'd array of pv->nkeys C strings). */
static char **
preview_sample_text(Preview *pv, Oid key_type)
{
	char	  **out = palloc(Max(pv->nkeys, 1) * sizeof(char *));
	Oid			outfunc;
	bool		isvarlena;

	qsort_arg(pv->keys, pv->nkeys, sizeof(Datum), sort_keys, pv);
	getTypeOutputInfo(key_type, &outfunc, &isvarlena);
	for (int i = 0; i < pv->nkeys; i++)
		out[i] = OidOutputFunctionCall(outfunc, pv->keys[i]);
	return out;
}

/*
 * segments.preview(definition jsonb, sample integer DEFAULT 10,
 *                  OUT member_count bigint, OUT contact_count bigint,
 *                  OUT sample_keys text[]) RETURNS record
 *
 * The members a segment with this definition would have in the session's
 * tenant, counted over the contacts the session may see, and the keys of
 * the first `sample` members in key order, as text.
 *
 * On the Citus coordinator of a distributed source, validated here as on
 * one node, then evaluated by every worker over its own shards
 * (segments._citus_preview_local(), through CitusPreview()): the counts
 * add up, and the sample is the smallest of the workers' samples.
 */
Datum
segments_preview(PG_FUNCTION_ARGS)
{
	const SegmentCatalog *cat = CatalogGet();
	Preview    *pv = palloc0(sizeof(Preview));
	RuleParseResult *parsed;
	TupleDesc	desc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	Datum	   *texts;
	char	  **sample;
	int			nremote;
	char	  **remote;
	Oid			key_type;
	int			sample_wanted;

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
	sample_wanted = PG_GETARG_INT32(1);
	if (sample_wanted < 0 || sample_wanted > PREVIEW_MAX_SAMPLE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sample must be between 0 and %d, not %d", PREVIEW_MAX_SAMPLE, sample_wanted),
				 errhint("segments.segment_members() lists every member of a saved segment.")));
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "preview must return a row");
	parsed = DefinitionParse(PG_GETARG_JSONB_P(0), pv->view.tenant, cat);
	if (!cat->config.configured)
		CatalogNotConfiguredError(&cat->config);

	key_type = cat->config.key_type;
	preview_init(pv, sample_wanted, key_type);

	if (CitusPreviewOnWorkers(cat->config.source_relid))
	{
		int64		members;
		int64		contacts;
		Oid			typinput;
		Oid			typioparam;

		/*
		 * Here first, as on one node: the plan of the definition and of the
		 * segments it reads (a referenced segment that does not compile
		 * fails here, with the one node's error), over the shards placed
		 * here (none, on a coordinator that holds none).
		 */
		preview_evaluate(pv, parsed, true);
		CitusPreview(PG_GETARG_JSONB_P(0), pv->view.tenant, pv->view.filter_contacts,
					 pv->sample, &members, &contacts, &nremote, &remote);
		pv->members += members;
		pv->contacts += contacts;
		/* the workers' samples, each its smallest keys: the smallest of all */
		getTypeInputInfo(key_type, &typinput, &typioparam);
		for (int i = 0; i < nremote; i++)
			sample_add(pv, OidInputFunctionCall(typinput, remote[i], typioparam, -1));
	}
	else
		preview_evaluate(pv, parsed, false);

	sample = preview_sample_text(pv, key_type);
	texts = palloc(Max(pv->nkeys, 1) * sizeof(Datum));
	for (int i = 0; i < pv->nkeys; i++)
		texts[i] = CStringGetTextDatum(sample[i]);
	values[0] = Int64GetDatum(pv->members);
	values[1] = Int64GetDatum(pv->contacts);
	values[2] = PointerGetDatum(construct_array(texts, pv->nkeys, TEXTOID, -1, false,
												TYPALIGN_INT));
	desc = BlessTupleDesc(desc);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/*
 * segments._citus_preview_local(definition jsonb, tenant text,
 *                               filter_contacts boolean, sample integer)
 *     RETURNS jsonb
 *
 * On a Citus node, its part of a coordinator's preview(): the definition,
 * validated on the coordinator, evaluated as a segment of `tenant` (NULL:
 * global) over the shards of the source placed here, counting only that
 * tenant's contacts when filter_contacts.  Returns {"members": n,
 * "contacts": n, "sample": [the `sample` smallest member keys here, as
 * text, in key order]}.  The extension's owner only (the coordinator
 * calls it as the owner); parsed again here, against this node's copy of
 * the catalog, so the evaluation is the one a pass would do here.
 */
PG_FUNCTION_INFO_V1(segments_citus_preview_local);

Datum
segments_citus_preview_local(PG_FUNCTION_ARGS)
{
	const SegmentCatalog *cat = CatalogGet();
	Preview    *pv = palloc0(sizeof(Preview));
	RuleParseResult *parsed;
	char	  **sample;
	StringInfoData buf;
	int			sample_wanted;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		elog(ERROR, "segments._citus_preview_local() needs a definition, a filter and a sample");
	sample_wanted = PG_GETARG_INT32(3);
	if (sample_wanted < 0 || sample_wanted > PREVIEW_MAX_SAMPLE)
		elog(ERROR, "sample must be between 0 and %d, not %d", PREVIEW_MAX_SAMPLE, sample_wanted);
	pv->view.tenant = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	pv->view.scope = pv->view.tenant != NULL ? TENANT_SCOPE_ONE : TENANT_SCOPE_ALL;
	pv->view.filter_contacts = PG_GETARG_BOOL(2);
	if (pv->view.filter_contacts && pv->view.tenant == NULL)
		elog(ERROR, "contacts can only be filtered by a tenant");
	parsed = DefinitionParse(PG_GETARG_JSONB_P(0), pv->view.tenant, cat);
	if (!cat->config.configured)
		CatalogNotConfiguredError(&cat->config);
	preview_init(pv, sample_wanted, cat->config.key_type);
	preview_evaluate(pv, parsed, true);

	sample = preview_sample_text(pv, cat->config.key_type);
	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"members\": " INT64_FORMAT ", \"contacts\": " INT64_FORMAT
					 ", \"sample\": [", pv->members, pv->contacts);
	for (int i = 0; i < pv->nkeys; i++)
	{
		if (i > 0)
			appendStringInfoString(&buf, ", ");
		escape_json(&buf, sample[i]);
	}
	appendStringInfoString(&buf, "]}");
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

/* ----------------------------------------------------------------
 * The scan preview() makes (EvaluateDefinition)
 * ---------------------------------------------------------------- */

/*
 * segments.preview() (preview.c): evaluates an unsaved definition (rule,
 * parsed against the current catalog: refs are the nrefs segments it reads)
 * as a segment of `tenant` (NULL: global) would be by a full pass: one scan
 * of the source, the segments it reads evaluated afresh, nothing written.
 * visit() is called for every contact, in the contact's memory context
 * (reset after each), with its key, its tenant and whether it is a member.
 * A percentage condition without a salt hashes with the nil uuid: a
 * saved segment's default salt, its id, does not exist yet.
 *
 * On Citus the scan is of the source's shards placed on this node
 * (CitusScanRelations(), as verify() reads them), and only with
 * shards_here: a worker's part of the coordinator's preview
 * (segments._citus_preview_local()).  Otherwise a distributed source is
 * refused (the coordinator's preview goes to the workers before this).
 */
void
EvaluateDefinition(RuleNode *rule, const char *tenant, const pg_uuid_t *refs, int nrefs,
				   bool shards_here, EvaluateVisitFn visit, void *arg)
{
	MemoryContext pass_cxt = AllocSetContextCreate(CurrentMemoryContext, "segments preview",
												   ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(pass_cxt);
	MemoryContext contact_cxt = AllocSetContextCreate(pass_cxt, "segments contact",
													  ALLOCSET_DEFAULT_SIZES);
	EvalPlan   *plan;
	CatalogSegment *seg;
	EvalSegment *es;
	char	   *error = NULL;
	int			self;
	List	   *rels;
	List	   *members;
	ListCell   *lc;

	if (!shards_here)
		CitusRefuse("segments.preview() on a Citus worker");	/* a part of the data */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = EvalPlanBuild(NULL, 0, true, true);

	/* the definition as one more segment, after those it reads */
	seg = palloc0(sizeof(CatalogSegment));
	seg->num = plan->max_num + 1;
	seg->tenant = tenant ? pstrdup(tenant) : NULL;
	seg->name = "preview";
	seg->ndepends = nrefs;
	seg->depends_on = (pg_uuid_t *) refs;
	self = plan->nsegments;
	plan->segments = repalloc(plan->segments, (self + 1) * sizeof(EvalSegment));
	plan->results = repalloc(plan->results, (self + 1) * sizeof(bool));
	plan->nsegments = self + 1;
	es = &plan->segments[self];
	memset(es, 0, sizeof(EvalSegment));
	es->seg = seg;
	es->id_text = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&seg->id)));
	if (!EvalPlanLink(plan, rule, self, &error))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot preview this definition: %s", error),
				 errhint("Fix the referenced segment first; segments.status shows its last error.")));
	es->rule = RuleCompact(rule);
	es->entry = RuleEntry(es->rule);

	/* evaluate it and what it reads, nothing else */
	for (int i = 0; i < self; i++)
		plan->segments[i].writable = plan->segments[i].reported = plan->segments[i].needed = false;
	es->needed = true;
	EvalPlanMarkNeeded(plan, self);
	plan->max_num = seg->num;
	plan->by_num = palloc0((plan->max_num + 1) * sizeof(EvalSegment *));
	for (int i = 0; i < plan->nsegments; i++)
		plan->by_num[plan->segments[i].seg->num] = &plan->segments[i];

	/* the source, or on Citus its shards placed here */
	rels = CitusScanRelations(plan->source, plan->cat->config.member_relid, plan->snapshot,
							  &members);
	foreach(lc, rels)
	{
		TableScanDesc scan = table_beginscan(lfirst(lc), plan->snapshot, 0, NULL);
		TupleTableSlot *slot = table_slot_create(lfirst(lc), NULL);

		while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
		{
			int32	   *nums;
			char	   *contact_tenant;
			MemoryContext prev;

			CHECK_FOR_INTERRUPTS();
			if (!EvalRowHasKey(plan, slot))
				continue;
			prev = MemoryContextSwitchTo(contact_cxt);
			slot_getallattrs(slot);
			(void) EvalPlanContact(plan, slot, &nums, &contact_tenant);
			visit(slot->tts_values[plan->cat->config.key_attnum - 1], contact_tenant,
				  plan->results[self], arg);
			MemoryContextSwitchTo(prev);
			MemoryContextReset(contact_cxt);
		}
		ExecDropSingleTupleTableSlot(slot);
		table_endscan(scan);
	}
	CitusCloseScanRelations(rels, plan->source);
	EvalPassEnd(plan, old, pass_cxt);
}

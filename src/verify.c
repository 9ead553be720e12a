/*-------------------------------------------------------------------------
 *
 * verify.c
 *		verify(): every segment (or one) evaluated for every contact, as
 *		refresh() would, and compared with stored membership without writing:
 *		missing members, extra ones, and sample keys of each.
 *
 *-------------------------------------------------------------------------
 */
#include "citus.h"
#include "eval_pass.h"
#include "member_codec.h"

#include "access/table.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

PG_FUNCTION_INFO_V1(segments_verify);
PG_FUNCTION_INFO_V1(segments_citus_verify_local);

/* Keeps a sample key of a difference (in the pass's context). */
static void
verify_sample(EvalPlan *plan, char **samples, int *nsamples, Datum key)
{
	if (*nsamples < VERIFY_SAMPLES)
		samples[(*nsamples)++] = MemoryContextStrdup(GetMemoryChunkContext(plan),
													  OutputFunctionCall(&plan->key_out, key));
}

/*
 * verify(): compares a batch's evaluated membership with the stored rows
 * (nrows of tuptable, in any order) of the reported segments.
 */
void
VerifyBatch(EvalPlan *plan, MemberBatch *batch, SPITupleTable *tuptable, uint64 nrows)
{
	bool	   *seen = palloc0(batch->n * sizeof(bool));

	for (uint64 r = 0; r < nrows + batch->n; r++)
	{
		MemberBatchEntry *entry;
		int			nold = 0;
		int32	   *old_segs = NULL;
		int			i = 0,
					j = 0;

		if (r < nrows)
		{
			bool		isnull;
			Datum		key = SPI_getbinval(tuptable->vals[r], tuptable->tupdesc, 1, &isnull);
			Datum		data = SPI_getbinval(tuptable->vals[r], tuptable->tupdesc, 2, &isnull);

			entry = MemberBatchFind(plan, batch, key);
			if (entry == NULL)
				continue;
			plan->stored_seen++;
			seen[entry - batch->entries] = true;
			nold = MemberDecode(DatumGetByteaPP(data), &old_segs, NULL);
		}
		else
		{
			entry = &batch->entries[r - nrows];
			if (seen[r - nrows])
				continue;
		}
		/* a tenant's session compares its own contacts only (README: Security model) */
		if (!CatalogContactVisibleIn(&plan->contact_view, entry->tenant,
									 entry->tenant != NULL ? strlen(entry->tenant) : 0))
			continue;
		/* both lists are sorted: walk them together */
		while (i < nold || j < entry->nnums)
		{
			bool		stored = i < nold && (j >= entry->nnums || old_segs[i] <= entry->nums[j]);
			bool		evaluated = j < entry->nnums && (i >= nold || entry->nums[j] <= old_segs[i]);
			EvalSegment *es = EvalSegmentOfNum(plan, stored ? old_segs[i] : entry->nums[j]);

			if (es != NULL && es->reported && stored != evaluated)
			{
				if (stored)
				{
					es->extra++;
					verify_sample(plan, es->extra_sample, &es->nextra_sample, entry->key);
				}
				else
				{
					es->missing++;
					verify_sample(plan, es->missing_sample, &es->nmissing_sample, entry->key);
				}
			}
			i += stored;
			j += evaluated;
		}
	}
}

/*
 * verify(): stored rows of contacts no longer in the source are extra
 * members of every reported segment they name; counted in SQL, with a few
 * sample keys per segment.  On Citus, per shard of the source here and its
 * membership shard (plan->member_table).
 */
static void
verify_departed(EvalPlan *plan, Relation source)
{
	const SegmentsConfig *config = &plan->cat->config;
	StringInfoData sql;
	const char *keycol = get_attname(config->source_relid, config->key_attnum, false);

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT u.num, pg_catalog.count(*),"
					 "       (pg_catalog.array_agg(m.contact_id::pg_catalog.text"
					 "                             ORDER BY m.contact_id))[1:%d]"
					 "  FROM %s m,"
					 "       LATERAL pg_catalog.unnest(segments._member_segs(m.data)) u(num)"
					 " WHERE NOT EXISTS (SELECT 1 FROM %s.%s s"
					 "                    WHERE s.%s OPERATOR(pg_catalog.=) m.contact_id)"
					 "%s"
					 " GROUP BY u.num",
					 VERIFY_SAMPLES, plan->member_table,
					 quote_identifier(get_namespace_name(RelationGetNamespace(source))),
					 quote_identifier(RelationGetRelationName(source)),
					 quote_identifier(keycol),
					 /* a tenant's session: its own departed contacts, by their stored tenant */
					 plan->contact_view.filter_contacts ?
					 "   AND m.tenant OPERATOR(pg_catalog.=) $1" : "");
	if ((plan->contact_view.filter_contacts ?
		 EvalPlanExecuteSqlText(plan, sql.data, plan->contact_view.tenant) :
		 EvalPlanExecuteSql(plan, sql.data)) != SPI_OK_SELECT)
		elog(ERROR, "could not read the membership of departed contacts");
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		bool		isnull;
		EvalSegment *es = EvalSegmentOfNum(plan, DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull)));
		ArrayType  *sample;
		Datum	   *keys;
		int			nkeys;

		if (es == NULL || !es->reported)
			continue;
		es->extra += DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
		sample = DatumGetArrayTypeP(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull));
		deconstruct_array(sample, TEXTOID, -1, false, TYPALIGN_INT, &keys, NULL, &nkeys);
		for (int k = 0; k < nkeys && es->nextra_sample < VERIFY_SAMPLES; k++)
			es->extra_sample[es->nextra_sample++] =
				MemoryContextStrdup(GetMemoryChunkContext(plan), TextDatumGetCString(keys[k]));
	}
}

/* A text[] of n strings. */
static Datum
text_array(char **strings, int n)
{
	Datum	   *elems = palloc(Max(n, 1) * sizeof(Datum));

	for (int i = 0; i < n; i++)
		elems[i] = CStringGetTextDatum(strings[i]);
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

static void verify_rows(ReturnSetInfo *rsinfo, pg_uuid_t *only, const TenantView *view,
						bool coordinator);

/*
 * segments.verify(segment uuid DEFAULT NULL)
 *   RETURNS TABLE (segment_id uuid, name text, state text, missing bigint,
 *                  extra bigint, missing_sample text[], extra_sample text[])
 *
 * Evaluates every visible segment (or one) for every contact, as refresh()
 * would, and compares with stored membership without writing anything:
 * missing are contacts the rules select that membership lacks, extra the
 * reverse.  A segment that cannot be evaluated (failed) should have no
 * stored members: its stored ones are extra.  One row per segment, in
 * name order.
 */
Datum
segments_verify(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	pg_uuid_t  *only = PG_ARGISNULL(0) ? NULL : PG_GETARG_UUID_P(0);
	TenantView	view = CatalogManageView();

	SEGMENTS_INIT_SRF(fcinfo);
	verify_rows(rsinfo, only, &view, true);
	PG_RETURN_VOID();
}

/*
 * segments._citus_verify_local(segment uuid, tenant text)
 *   RETURNS the rows of verify()
 *
 * verify() of the shards on this Citus worker node for the coordinator's
 * session, whose tenant (NULL: none) is passed here: the coordinator
 * reaches the workers as the extension's owner, who has no tenant of its
 * own, and a tenant's verify() compares that tenant's contacts only.
 */
Datum
segments_citus_verify_local(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	pg_uuid_t  *only = PG_ARGISNULL(0) ? NULL : PG_GETARG_UUID_P(0);
	TenantView	view = CatalogManageView();

	SEGMENTS_INIT_SRF(fcinfo);
	if (!PG_ARGISNULL(1))
		view = CatalogTenantViewFor(CatalogGet(), text_to_cstring(PG_GETARG_TEXT_PP(1)));
	verify_rows(rsinfo, only, &view, false);
	PG_RETURN_VOID();
}

/*
 * The rows of verify() into rsinfo: the segments view may see (or only
 * one), compared over the contacts it may see.  coordinator: a Citus
 * coordinator asks its workers (CitusVerify()).
 */
static void
verify_rows(ReturnSetInfo *rsinfo, pg_uuid_t *only, const TenantView *view, bool coordinator)
{
	MemoryContext pass_cxt;
	MemoryContext old;
	MemoryContext contact_cxt;
	EvalPlan   *plan;
	MemberBatch *batch;
	TableScanDesc scan;
	TupleTableSlot *slot;
	Datum	   *states;
	bool	   *state_nulls;
	List	   *rels;
	List	   *members;
	ListCell   *lc;
	ListCell   *mc;

	if (only != NULL)
	{
		const CatalogSegment *seg = CatalogFindById(CatalogGet(), only);

		if (seg == NULL || !CatalogSegmentVisibleIn(view, seg->tenant))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("segment \"%s\" does not exist",
							DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(only))))));
	}
	/* Citus: the coordinator's verify() is every worker's (citus.c) */
	if (coordinator && CitusVerify(only, view, rsinfo))
		return;
	pass_cxt = AllocSetContextCreate(CurrentMemoryContext, "segments verify",
									 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(pass_cxt);
	contact_cxt = AllocSetContextCreate(pass_cxt, "segments contact", ALLOCSET_DEFAULT_SIZES);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = EvalPlanBuild(only, only ? 1 : 0, true, true);
	plan->contact_view = *view;
	for (int i = 0; i < plan->nsegments; i++)
		plan->segments[i].reported &= CatalogSegmentVisibleIn(view, plan->segments[i].seg->tenant);
	batch = MemberBatchCreate();

	/* Citus: each shard here, compared with its colocated membership shard */
	rels = CitusScanRelations(plan->source, plan->cat->config.member_relid, plan->snapshot,
							  &members);
	forboth(lc, rels, mc, members)
	{
		EvalPlanRetarget(plan, lfirst_oid(mc));
		scan = table_beginscan(lfirst(lc), plan->snapshot, 0, NULL);
		slot = table_slot_create(lfirst(lc), NULL);
		while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
		{
			/* contact by contact, walking the trees: a check of the batches */
			MemoryContext prev = MemoryContextSwitchTo(contact_cxt);
			int32	   *nums;
			char	   *tenant;
			int			n;

			CHECK_FOR_INTERRUPTS();
			if (!EvalRowHasKey(plan, slot))
			{
				MemoryContextSwitchTo(prev);
				continue;
			}
			slot_getallattrs(slot);
			n = EvalPlanContact(plan, slot, &nums, &tenant);
			MemoryContextSwitchTo(prev);
			MemberBatchAdd(plan, batch, slot->tts_values[plan->cat->config.key_attnum - 1],
						   n, nums, tenant, true);
			MemoryContextReset(contact_cxt);
		}
		MemberBatchApply(plan, batch);
		ExecDropSingleTupleTableSlot(slot);
		table_endscan(scan);
		verify_departed(plan, lfirst(lc));
	}
	CitusCloseScanRelations(rels, plan->source);

	/* the state of each segment, as segments.status shows it */
	states = palloc0(Max(plan->nsegments, 1) * sizeof(Datum));
	state_nulls = palloc(Max(plan->nsegments, 1) * sizeof(bool));
	for (int i = 0; i < plan->nsegments; i++)
		state_nulls[i] = true;
	if (EvalPlanExecuteSql(plan, "SELECT segment_id, state FROM segments.segment_state") != SPI_OK_SELECT)
		elog(ERROR, "could not read segments.segment_state");
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int			pos = EvalPlanPosition(plan, DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[r],
																			 SPI_tuptable->tupdesc, 1, &isnull)));

		if (pos >= 0)
		{
			states[pos] = CStringGetTextDatum(SPI_getvalue(SPI_tuptable->vals[r],
														   SPI_tuptable->tupdesc, 2));
			state_nulls[pos] = false;
		}
	}

	for (int i = 0; i < plan->nsegments; i++)
	{
		EvalSegment *es = &plan->segments[i];
		Datum		values[7];
		bool		nulls[7] = {0};

		if (!es->reported)
			continue;
		values[0] = UUIDPGetDatum(&es->seg->id);
		values[1] = CStringGetTextDatum(es->seg->name);
		values[2] = state_nulls[i] ? CStringGetTextDatum("pending") : states[i];
		values[3] = Int64GetDatum(es->missing);
		values[4] = Int64GetDatum(es->extra);
		values[5] = text_array(es->missing_sample, es->nmissing_sample);
		values[6] = text_array(es->extra_sample, es->nextra_sample);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	EvalPassEnd(plan, old, pass_cxt);
}

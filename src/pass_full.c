/*-------------------------------------------------------------------------
 *
 * pass_full.c
 *		refresh(): a full pass.  One scan of the source evaluates every
 *		segment (or those named, and the segments that read them) for every
 *		contact, in the caller's transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "citus.h"
#include "eval_pass.h"
#include "history.h"

#include "access/table.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

PG_FUNCTION_INFO_V1(segments_refresh);

/*
 * How many rows the membership table holds that the pass's snapshot sees
 * (before the pass writes any).  None: the pass writes into an empty
 * table.  The pass's lock keeps other writers out until it commits; were
 * one to write a row anyway, the pass's insertion of that contact would
 * fail on the primary key rather than store a second row.  A full pass
 * reads back the stored row of every contact it visits: when it read them
 * all, no contact departed, and the anti-join that looks for departed
 * contacts (PassDeleteDeparted, a tenth of a nothing-changed pass) is not
 * run.  (The source's key has a unique index: no contact is visited twice.)
 */
static int64
member_count_rows(Oid relid, Snapshot snapshot)
{
	Relation	member = table_open(relid, AccessShareLock);
	TableScanDesc scan = table_beginscan(member, snapshot, 0, NULL);
	TupleTableSlot *slot = table_slot_create(member, NULL);
	int64		n = 0;

	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		if ((++n & 0xffff) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	table_close(member, NoLock);
	return n;
}

/*
 * A full pass over every segment reflects every change committed before
 * its snapshot: the queue entries it can see are done (without the worker,
 * that is how the whole-source entries of capture clear).  Entries a
 * worker is applying right now are left to it.
 */
static void
clear_covered_changes(EvalPlan *plan)
{
	for (int i = 0; i < plan->nsegments; i++)
	{
		if (!plan->segments[i].targeted)
			return;
	}
	if (EvalPlanExecuteSql(plan, "DELETE FROM segments.change_queue WHERE id OPERATOR(pg_catalog.=) ANY"
						   " (ARRAY(SELECT id FROM segments.change_queue FOR UPDATE SKIP LOCKED))")
		!= SPI_OK_DELETE)
		elog(ERROR, "could not clear segments.change_queue");
}

/*
 * Full pass: one scan of the source evaluates every segment for every
 * contact; segments outside `only_segments` (when given: nonly ids, and
 * the segments that reference them) keep their membership.
 */
void
EvaluateRefresh(const pg_uuid_t *only_segments, int nonly)
{
	MemoryContext pass_cxt = AllocSetContextCreate(CurrentMemoryContext,
												   "segments refresh",
												   ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(pass_cxt);
	MemoryContext contact_cxt = AllocSetContextCreate(pass_cxt, "segments contact",
													  ALLOCSET_DEFAULT_SIZES);
	TimestampTz started = GetCurrentTimestamp();
	EvalPlan   *plan;
	MemberBatch *batch;
	ContactBatch *cb;
	TableScanDesc scan;
	TupleTableSlot *slot;
	List	   *rels;
	List	   *members;
	ListCell   *lc;
	ListCell   *mc;

	/* Citus: the coordinator's pass is every node's (citus.c) */
	if (CitusPass(only_segments, nonly))
	{
		MemoryContextSwitchTo(old);
		MemoryContextDelete(pass_cxt);
		return;
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = EvalPlanBuild(only_segments, nonly, true, false);
	batch = MemberBatchCreate();
	cb = ContactBatchCreate(plan, true);

	/* see every contact committed by now, after taking the lock */
	rels = CitusScanRelations(plan->source, plan->cat->config.member_relid, plan->snapshot,
							  &members);
	forboth(lc, rels, mc, members)
	{
		/* Citus: a shard here, its membership in the colocated shard */
		plan->stored_rows = -1;
		if (OidIsValid(lfirst_oid(mc)))
			EvalPlanTargetMember(plan, lfirst_oid(mc));
		else
		{
			MemberBatchReclaimSpace(plan);
			plan->stored_rows = member_count_rows(plan->cat->config.member_relid,
												  plan->snapshot);
			plan->stored_seen = 0;
			plan->member_empty = OidIsValid(plan->bulk_relid) && plan->stored_rows == 0;
		}
		/* a large local source: shared with helper processes (pass_parallel.c) */
		if (lfirst(lc) != plan->source || !PassParallelScan(plan, cb, batch, contact_cxt))
		{
			scan = table_beginscan(lfirst(lc), plan->snapshot, 0, NULL);
			slot = table_slot_create(lfirst(lc), NULL);
			while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
			{
				CHECK_FOR_INTERRUPTS();
				if (EvalRowHasKey(plan, slot))
					ContactBatchEvaluate(plan, cb, batch, slot, contact_cxt);
			}
			ExecDropSingleTupleTableSlot(slot);
			table_endscan(scan);
		}
		/* the shard's last contacts go to the shard's membership */
		ContactBatchFlush(plan, cb, batch);
		MemberBatchApply(plan, batch);
		MemberBatchFlushWrites(plan);
		/* every stored row read back: no contact departed */
		if (!plan->member_empty && plan->stored_seen != plan->stored_rows)
			PassDeleteDeparted(plan, lfirst(lc), NULL, NULL, NULL);
	}
	CitusCloseScanRelations(rels, plan->source);
	PassRecordState(plan, started);
	clear_covered_changes(plan);
	EvalPassEnd(plan, old, pass_cxt);
}

/*
 * segments.refresh(segment uuid DEFAULT NULL) RETURNS void
 *
 * Synchronous full re-evaluation of the segments the session may see, or
 * of one of them and the segments that reference it.
 */
Datum
segments_refresh(PG_FUNCTION_ARGS)
{
	/* fails closed before anything else: no tenant and not an admin */
	TenantView	view = CatalogManageView();
	const SegmentCatalog *cat = CatalogGet();

	HistoryDefaultCause(HISTORY_CAUSE_REFRESH); /* history: unless configure() */

	/*
	 * Writers in flight may have missed a definition this refresh evaluates
	 * for the first time (writers.c): wait for them, before taking the lock
	 * so that the worker is not held up meanwhile.
	 */
	if (cat->config.configured)
	{
		WriterWait	ww;

		WritersBegin(&ww, CurrentMemoryContext, false);
		(void) WritersDone(&ww, cat->config.source_relid, true);
	}
	if (PG_ARGISNULL(0))
	{
		pg_uuid_t  *ids;
		int			nids = 0;

		if (view.scope == TENANT_SCOPE_ALL)
		{
			EvaluateRefresh(NULL, 0);
			PG_RETURN_VOID();
		}
		/* a tenant session: its own and the global segments, no others */
		ids = palloc(Max(cat->nsegments, 1) * sizeof(pg_uuid_t));
		for (int i = 0; i < cat->nsegments; i++)
		{
			if (CatalogSegmentVisibleIn(&view, cat->segments[i].tenant))
				ids[nids++] = cat->segments[i].id;
		}
		if (nids > 0)
			EvaluateRefresh(ids, nids);
	}
	else
	{
		pg_uuid_t  *id = PG_GETARG_UUID_P(0);
		const CatalogSegment *seg = CatalogFindById(cat, id);

		if (seg == NULL || !CatalogSegmentVisibleIn(&view, seg->tenant))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("segment \"%s\" does not exist",
							DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(id))))));
		EvaluateRefresh(id, 1);
	}
	PG_RETURN_VOID();
}

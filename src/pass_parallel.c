/*-------------------------------------------------------------------------
 *
 * pass_parallel.c
 *		refresh()'s scan shared with helper processes (pass_helper.c): the
 *		source's blocks are dealt out in chunks that the pass and its
 *		helpers claim in turn, and the pass writes what every one of them
 *		evaluated.
 *
 * A helper sends a chunk's contacts as one message, so a chunk arrives
 * whole or not at all; once every helper has gone, the pass scans the
 * chunks it has neither scanned nor received.  The pass takes the helpers'
 * messages before each chunk of its own, so that they do not wait on a
 * full queue: writing, it claims few chunks itself.
 *
 *-------------------------------------------------------------------------
 */
#include "pass_helper.h"

#include "access/heapam.h"
#include "access/tableam.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/memutils.h"

/* Scans one chunk of blocks into the contact batch. */
static void
scan_chunk(EvalPlan *plan, TableScanDesc scan, TupleTableSlot *slot, BlockNumber nblocks,
		   uint32 chunk, ContactBatch *cb, MemberBatch *batch, MemoryContext contact_cxt)
{
	BlockNumber start = chunk * HELPER_CHUNK_BLOCKS;

	table_rescan(scan, NULL);
	heap_setscanlimits(scan, start, Min(HELPER_CHUNK_BLOCKS, nblocks - start));
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		CHECK_FOR_INTERRUPTS();
		if (EvalRowHasKey(plan, slot))
			ContactBatchEvaluate(plan, cb, batch, slot, contact_cxt);
	}
}

/* Adds the contacts of a helper's chunk to the membership batch. */
static void
receive_chunk(EvalPlan *plan, HelperMessage *msg, MemberBatch *batch, MemoryContext scratch)
{
	MemoryContext old = MemoryContextSwitchTo(scratch);
	Datum		key;
	int			nnums;
	int32	   *nums;
	char	   *tenant;

	while (HelperMessageNext(plan, msg, &key, &nnums, &nums, &tenant))
	{
		/* members counted as ContactBatchFlush counts the pass's own */
		for (int k = 0; k < nnums; k++)
		{
			EvalSegment *es = EvalSegmentOfNum(plan, nums[k]);

			if (es != NULL)
				es->count++;
		}
		MemberBatchAdd(plan, batch, key, nnums, nums, tenant, true);
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(scratch);
}

/*
 * Takes what the helpers have sent, marking their chunks done; with wait,
 * until every helper has gone.  Returns the chunks received.
 */
static uint32
drain_helpers(EvalPlan *plan, PassHelpers *ph, bool *done, MemberBatch *batch,
			  MemoryContext scratch, bool wait)
{
	volatile uint32 received = 0;

	for (;;)
	{
		bool		any_left = false;
		bool		got = false;

		for (int h = 0; h < ph->nhelpers; h++)
		{
			HelperMessage msg;
			shm_mq_result res = PassHelpersReceive(ph, h, &msg);

			if (res == SHM_MQ_SUCCESS)
			{
				if (msg.tag >= PassHelpersChunks(ph) || done[msg.tag])
					elog(ERROR, "segments pass helper sent chunk %u twice or out of range", msg.tag);
				receive_chunk(plan, &msg, batch, scratch);
				done[msg.tag] = true;
				received++;
				got = true;
			}
			if (res != SHM_MQ_DETACHED)
				any_left = true;
		}
		if (!any_left || (!wait && !got))
			return received;
		if (!got)
			PassHelpersWait(ph);
	}
}

/*
 * Scans the source of a full pass (local, heap) with helpers, when it is
 * large enough and a helper can take the pass's view.  Returns false,
 * having done nothing, when the pass should scan alone.
 */
bool
PassParallelScan(EvalPlan *plan, ContactBatch *cb, MemberBatch *batch, MemoryContext contact_cxt)
{
	Relation	source = plan->source;
	BlockNumber nblocks;
	PassHelpers *ph;
	MemoryContext scratch;
	TableScanDesc scan;
	TupleTableSlot *slot;
	bool	   *done;
	uint32		nchunks;
	uint32		chunk;
	volatile uint32 received = 0;

	if (!plan->full_pass ||
		!PassHelpersWanted(plan, source, (BlockNumber) segments_pass_helper_min_pages))
		return false;
	nblocks = RelationGetNumberOfBlocks(source);
	ph = PassHelpersStart(plan, HELPER_BLOCKS, segments_pass_helpers, nblocks, InvalidOid,
						  NULL, 0);
	if (ph == NULL)
		return false;
	nchunks = PassHelpersChunks(ph);
	done = palloc0(nchunks * sizeof(bool));
	scratch = AllocSetContextCreate(CurrentMemoryContext, "segments helper message",
									ALLOCSET_DEFAULT_SIZES);
	scan = table_beginscan_strat(source, plan->snapshot, 0, NULL, true, false);
	slot = table_slot_create(source, NULL);
	PG_TRY();
	{
		/* the helpers' chunks first, so that they never wait on a full queue */
		while (received += drain_helpers(plan, ph, done, batch, scratch, false),
			   PassHelpersClaim(ph, &chunk))
		{
			scan_chunk(plan, scan, slot, nblocks, chunk, cb, batch, contact_cxt);
			done[chunk] = true;
		}
		received += drain_helpers(plan, ph, done, batch, scratch, true);
		/* what a helper claimed and did not deliver */
		for (chunk = 0; chunk < nchunks; chunk++)
		{
			if (!done[chunk])
				scan_chunk(plan, scan, slot, nblocks, chunk, cb, batch, contact_cxt);
		}
	}
	PG_CATCH();
	{
		PassHelpersStop(ph);
		PG_RE_THROW();
	}
	PG_END_TRY();
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	elog(DEBUG1, "refresh(): %d helper process(es) evaluated %u of the %u chunks of the source",
		 ph->nhelpers, received, nchunks);
	PassHelpersEnd(ph);
	MemoryContextDelete(scratch);
	return true;
}

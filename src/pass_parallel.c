/*-------------------------------------------------------------------------
 *
 * pass_parallel.c
 *		A full pass's scan shared with a helper process: the helper
 *		evaluates part of the source's blocks and sends each contact's
 *		segments to the pass, which writes them with its own.
 *
 * Writing membership is the pass's alone (one transaction, its lock), and
 * it is half of a first pass; reading and evaluating contacts is most of
 * the other half.  A helper on another core takes part of that half while
 * the pass writes.
 *
 * PostgreSQL's parallel workers cannot be used: while they run, the leader
 * is in parallel mode, where it may not update rows or start a command,
 * and a pass must do both as it goes.  The helper is a background worker
 * with a transaction of its own that reads with the pass's snapshot
 * (serialized into dynamic shared memory).  That is only the pass's view
 * when the pass's transaction has written nothing yet (no transaction id):
 * otherwise the helper could not see the pass's own uncommitted rows, and
 * the pass scans alone.  So does a SERIALIZABLE one, whose reads of the
 * source take the transaction's predicate locks.
 *
 * The source's blocks are split into chunks that the pass and the helper
 * claim in turn from a shared counter.  The helper sends a chunk's contacts
 * as one message through a shared queue, so a chunk arrives whole or not
 * at all; after the helper has gone (finished, failed, never started) the
 * pass scans every chunk it has neither scanned nor received.  Nothing the
 * helper does can change the result: only who computed it.
 *
 * The helper waits for no lock that the pass could be waiting behind: it
 * takes its locks (the catalog, the source) before it claims a chunk, with
 * a short lock_timeout, and the pass goes on claiming chunks meanwhile.
 *
 *-------------------------------------------------------------------------
 */
#include "pass_helper.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/bufmgr.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "storage/shm_toc.h"
#include "tcop/tcopprot.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

PGDLLEXPORT void segments_pass_helper_main(Datum arg);

/* Settings; see README.md, Settings (also the worker's: pass_chunk_helper.c). */
int			segments_pass_helpers = 1;
int			segments_pass_helper_min_pages = 4096;	/* 32 MB of 8 kB pages */

#define MAX_HELPERS			4
#define CHUNK_BLOCKS		16
#define QUEUE_SIZE			(1024 * 1024)
#define TOC_MAGIC			0x5e6e7a11
#define KEY_SHARED			1
#define KEY_SNAPSHOT		2
#define KEY_NEEDED			3
#define KEY_QUEUES			4

typedef struct HelperShared
{
	HelperIdentity identity;
	Oid			source_relid;
	TimestampTz now;
	uint32		nchunks;
	BlockNumber nblocks;
	int			nneeded;
	pg_atomic_uint32 next_chunk;
} HelperShared;

void
PassParallelInit(void)
{
	DefineCustomIntVariable("segments.pass_helpers",
							"Helper processes that evaluate contacts for a refresh() of a large source.",
							"Each takes one of max_worker_processes while the pass runs; 0 makes "
							"refresh() scan alone.",
							&segments_pass_helpers,
							1, 0, MAX_HELPERS,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("segments.pass_helper_min_size",
							"Smallest source for which refresh() starts helper processes.",
							NULL,
							&segments_pass_helper_min_pages,
							4096, 0, INT_MAX,
							PGC_SUSET,
							GUC_UNIT_BLOCKS,
							NULL, NULL, NULL);
}

/* Claims the next chunk, or returns false when none is left. */
static bool
claim_chunk(HelperShared *shared, uint32 *chunk)
{
	*chunk = pg_atomic_fetch_add_u32(&shared->next_chunk, 1);
	return *chunk < shared->nchunks;
}

/* Scans one chunk of blocks into the contact batch (its results flushed by the caller). */
static void
scan_chunk(EvalPlan *plan, TableScanDesc scan, TupleTableSlot *slot, HelperShared *shared,
		   uint32 chunk, ContactBatch *cb, MemberBatch *batch, MemoryContext contact_cxt)
{
	BlockNumber start = chunk * CHUNK_BLOCKS;

	table_rescan(scan, NULL);
	heap_setscanlimits(scan, start, Min(CHUNK_BLOCKS, shared->nblocks - start));
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		CHECK_FOR_INTERRUPTS();
		if (EvalRowHasKey(plan, slot))
			ContactBatchEvaluate(plan, cb, batch, slot, contact_cxt);
	}
}

/* ----------------------------------------------------------------
 * The helper
 * ---------------------------------------------------------------- */

/*
 * Entry point of a helper (bgw_main_arg: the dynamic shared memory
 * segment's handle; bgw_extra: its number).  Any error ends it: the pass
 * scans what it did not deliver.
 */
void
segments_pass_helper_main(Datum arg)
{
	dsm_segment *seg;
	shm_toc    *toc;
	HelperShared *shared;
	shm_mq	   *mq;
	shm_mq_handle *mqh;
	int			me;
	Snapshot	snapshot;
	Relation	source;
	EvalPlan   *plan;
	ContactBatch *cb;
	HelperMessage msg;
	TableScanDesc scan;
	TupleTableSlot *slot;
	MemoryContext contact_cxt;
	uint32		chunk;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	memcpy(&me, MyBgworkerEntry->bgw_extra, sizeof(int));
	CurrentResourceOwner = ResourceOwnerCreate(NULL, "segments pass helper");
	seg = dsm_attach(DatumGetUInt32(arg));
	if (seg == NULL)
		return;					/* the pass ended already */
	toc = shm_toc_attach(TOC_MAGIC, dsm_segment_address(seg));
	if (toc == NULL)
		return;
	shared = shm_toc_lookup(toc, KEY_SHARED, false);
	mq = (shm_mq *) ((char *) shm_toc_lookup(toc, KEY_QUEUES, false) + me * QUEUE_SIZE);
	shm_mq_set_sender(mq, MyProc);
	mqh = shm_mq_attach(mq, seg, NULL);

	HelperConnect(&shared->identity, "segments pass helper");

	StartTransactionCommand();
	snapshot = RegisterSnapshot(RestoreSnapshot(shm_toc_lookup(toc, KEY_SNAPSHOT, false)));
	PushActiveSnapshot(snapshot);
	source = table_open(shared->source_relid, AccessShareLock);
	plan = EvalPlanBuildHelper(CatalogLoad(CurrentMemoryContext, true), source,
							   shm_toc_lookup(toc, KEY_NEEDED, false), shared->nneeded,
							   shared->now);
	if (plan == NULL || source->rd_tableam != GetHeapamTableAmRoutine())
		elog(ERROR, "segments pass helper: the pass's segments do not compile here");

	cb = HelperContactBatch(plan, &msg);
	contact_cxt = AllocSetContextCreate(CurrentMemoryContext, "segments contact",
										ALLOCSET_DEFAULT_SIZES);
	scan = table_beginscan_strat(source, snapshot, 0, NULL, true, false);
	slot = table_slot_create(source, NULL);
	pgstat_report_activity(STATE_RUNNING, "evaluating contacts for a refresh()");
	while (claim_chunk(shared, &chunk))
	{
		HelperMessageBegin(&msg);
		scan_chunk(plan, scan, slot, shared, chunk, cb, NULL, contact_cxt);
		ContactBatchFlush(plan, cb, NULL);
		if (HelperMessageSend(mqh, &msg, chunk, 0) != SHM_MQ_SUCCESS)
			break;				/* the pass is gone */
	}
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	table_close(source, NoLock);
	PopActiveSnapshot();
	UnregisterSnapshot(snapshot);
	CommitTransactionCommand();
	shm_mq_detach(mqh);
	dsm_detach(seg);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* ----------------------------------------------------------------
 * The pass
 * ---------------------------------------------------------------- */

typedef struct ParallelScan
{
	dsm_segment *seg;
	HelperShared *shared;
	int			nhelpers;
	shm_mq_handle *queues[MAX_HELPERS];
	BackgroundWorkerHandle *handles[MAX_HELPERS];
	bool		gone[MAX_HELPERS];
	bool	   *done;			/* by chunk: scanned or received */
	uint32		received;		/* chunks the helpers delivered */
	bool		latch_reset;	/* a wait reset this process's latch */
} ParallelScan;

/* Adds the contacts of one helper message to the membership batch. */
static void
receive_chunk(EvalPlan *plan, ParallelScan *ps, MemberBatch *batch, void *data, Size len,
			  MemoryContext scratch)
{
	MemoryContext old = MemoryContextSwitchTo(scratch);
	HelperReader r;
	Datum		key;
	char	   *tenant;
	int			nnums;
	int32	   *nums;

	HelperReaderStart(&r, data, len);
	if (r.tag >= ps->shared->nchunks || ps->done[r.tag])
		elog(ERROR, "segments pass helper sent chunk %u twice or out of range", r.tag);
	while (HelperReaderNext(&r, &key, &tenant, &nnums, &nums))
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
	ps->done[r.tag] = true;
	ps->received++;
	MemoryContextSwitchTo(old);
	MemoryContextReset(scratch);
}

/* Takes what the helpers have sent; with wait, until every helper has gone. */
static void
drain_helpers(EvalPlan *plan, ParallelScan *ps, MemberBatch *batch, MemoryContext scratch,
			  bool wait)
{
	for (;;)
	{
		bool		any_left = false;
		bool		got = false;

		for (int h = 0; h < ps->nhelpers; h++)
		{
			Size		len;
			void	   *data;
			shm_mq_result res;

			if (ps->gone[h])
				continue;
			res = shm_mq_receive(ps->queues[h], &len, &data, true);
			if (res == SHM_MQ_SUCCESS)
			{
				receive_chunk(plan, ps, batch, data, len, scratch);
				got = true;
			}
			else if (res == SHM_MQ_DETACHED)
				ps->gone[h] = true;
			if (!ps->gone[h])
				any_left = true;
		}
		if (!any_left || (!wait && !got))
			return;
		if (!got)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100,
							 PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			ps->latch_reset = true;
		}
		CHECK_FOR_INTERRUPTS();
	}
}

/* Starts the helpers; returns how many started (none: the pass scans alone). */
static int
start_helpers(ParallelScan *ps, char *queues, int nhelpers)
{
	int			started = 0;

	for (int h = 0; h < nhelpers; h++)
	{
		if (!HelperRegister("segments_pass_helper_main", "segments pass helper", ps->seg, h,
							(shm_mq *) (queues + h * QUEUE_SIZE), &ps->handles[h],
							&ps->queues[h]))
			break;				/* no slot: fewer helpers */
		started++;
	}
	return started;
}

/*
 * Scans the source of a full pass (local, heap) with helpers, when it is
 * large enough and the pass's transaction has written nothing.  Returns
 * false, having done nothing, when the pass should scan alone.
 */
bool
PassParallelScan(EvalPlan *plan, ContactBatch *cb, MemberBatch *batch, MemoryContext contact_cxt)
{
	Relation	source = plan->source;
	BlockNumber nblocks;
	shm_toc_estimator e;
	shm_toc    *toc;
	Size		snap_size;
	int			nneeded = 0;
	pg_uuid_t  *needed;
	ParallelScan ps;
	char	   *queues;
	MemoryContext scratch;
	TableScanDesc scan;
	TupleTableSlot *slot;
	uint32		chunk;

	if (!plan->full_pass || (nblocks = HelperSourceBlocks(plan)) == 0)
		return false;

	memset(&ps, 0, sizeof(ps));
	snap_size = EstimateSnapshotSpace(plan->snapshot);
	shm_toc_initialize_estimator(&e);
	shm_toc_estimate_chunk(&e, sizeof(HelperShared));
	shm_toc_estimate_chunk(&e, snap_size);
	shm_toc_estimate_chunk(&e, Max(plan->nsegments, 1) * sizeof(pg_uuid_t));
	shm_toc_estimate_chunk(&e, (Size) segments_pass_helpers * QUEUE_SIZE);
	shm_toc_estimate_keys(&e, 4);
	ps.seg = dsm_create(shm_toc_estimate(&e), DSM_CREATE_NULL_IF_MAXSEGMENTS);
	if (ps.seg == NULL)
		return false;
	toc = shm_toc_create(TOC_MAGIC, dsm_segment_address(ps.seg), shm_toc_estimate(&e));

	ps.shared = shm_toc_allocate(toc, sizeof(HelperShared));
	memset(ps.shared, 0, sizeof(HelperShared));
	HelperIdentityCapture(&ps.shared->identity);
	ps.shared->source_relid = RelationGetRelid(source);
	ps.shared->now = plan->now;
	ps.shared->nblocks = nblocks;
	ps.shared->nchunks = (nblocks + CHUNK_BLOCKS - 1) / CHUNK_BLOCKS;
	pg_atomic_init_u32(&ps.shared->next_chunk, 0);
	shm_toc_insert(toc, KEY_SHARED, ps.shared);
	{
		char	   *snap = shm_toc_allocate(toc, snap_size);

		SerializeSnapshot(plan->snapshot, snap);
		shm_toc_insert(toc, KEY_SNAPSHOT, snap);
	}
	needed = shm_toc_allocate(toc, Max(plan->nsegments, 1) * sizeof(pg_uuid_t));
	for (int i = 0; i < plan->nsegments; i++)
	{
		if (plan->segments[i].rule != NULL && plan->segments[i].needed)
			needed[nneeded++] = plan->segments[i].seg->id;
	}
	ps.shared->nneeded = nneeded;
	shm_toc_insert(toc, KEY_NEEDED, needed);
	queues = shm_toc_allocate(toc, (Size) segments_pass_helpers * QUEUE_SIZE);
	for (int h = 0; h < segments_pass_helpers; h++)
		(void) shm_mq_create(queues + h * QUEUE_SIZE, QUEUE_SIZE);
	shm_toc_insert(toc, KEY_QUEUES, queues);

	ps.nhelpers = start_helpers(&ps, queues, segments_pass_helpers);
	if (ps.nhelpers == 0)
	{
		dsm_detach(ps.seg);
		return false;
	}
	ps.done = palloc0(ps.shared->nchunks * sizeof(bool));
	scratch = AllocSetContextCreate(CurrentMemoryContext, "segments helper message",
									ALLOCSET_DEFAULT_SIZES);
	scan = table_beginscan_strat(source, plan->snapshot, 0, NULL, true, false);
	slot = table_slot_create(source, NULL);
	PG_TRY();
	{
		/* the helpers' chunks first, so that they never wait on a full queue */
		for (;;)
		{
			drain_helpers(plan, &ps, batch, scratch, false);
			if (!claim_chunk(ps.shared, &chunk))
				break;
			scan_chunk(plan, scan, slot, ps.shared, chunk, cb, batch, contact_cxt);
			ps.done[chunk] = true;
		}
		drain_helpers(plan, &ps, batch, scratch, true);
		/* what a helper claimed and did not deliver */
		for (chunk = 0; chunk < ps.shared->nchunks; chunk++)
		{
			if (!ps.done[chunk])
				scan_chunk(plan, scan, slot, ps.shared, chunk, cb, batch, contact_cxt);
		}
	}
	PG_CATCH();
	{
		for (int h = 0; h < ps.nhelpers; h++)
			TerminateBackgroundWorker(ps.handles[h]);
		PG_RE_THROW();
	}
	PG_END_TRY();
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	elog(DEBUG1, "refresh(): %d helper process(es) evaluated %u of the %u chunks of the source",
		 ps.nhelpers, ps.received, ps.shared->nchunks);
	dsm_detach(ps.seg);
	/* a wait took a wake-up that may have been meant for someone else (a worker's) */
	if (ps.latch_reset)
		SetLatch(MyLatch);
	MemoryContextDelete(scratch);
	return true;
}

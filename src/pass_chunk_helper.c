/*-------------------------------------------------------------------------
 *
 * pass_chunk_helper.c
 *		A helper process for the worker's chunked pass: it reads and
 *		evaluates each chunk's contacts in key order, with the chunk's
 *		snapshot, and sends them to the worker, which writes them.
 *
 * Writing membership is the worker's alone, and it is about half of a
 * chunk; reading and evaluating contacts is the other half.  One helper
 * lives for the whole pass: started at its first large chunk, ended with
 * the pass (a helper started per chunk cost more than it saved).  For each
 * chunk the worker publishes the chunk's snapshot, its first key and its
 * limit, and a new generation number; the helper reads the key index from
 * that key, as the worker would, and sends the contacts as it evaluates
 * them, a message per evaluation batch, then an end message.
 *
 * The worker writes the contacts in the order they come, so the range it
 * wrote is a key range from the cursor, as when it reads alone.  It cuts a
 * chunk as it would alone (its budget, or changes waiting): it tells the
 * helper, and drops what the helper sent after the cut (a few batches).
 * When the helper goes midway (an error, a kill), the worker reads on from
 * the last key it wrote, alone, for the rest of the pass.
 *
 * The helper sees what the worker's chunk sees only while the chunk's
 * transaction has written nothing (no transaction id): the worker asks for
 * a helper only then, at the start of a chunk's scan.  The chunk's snapshot
 * is the worker's until its transaction ends, and the worker does not end
 * it before the helper has ended the chunk.
 *
 * The helper's messages set the worker's latch, which during a chunk no
 * longer says that changes wait: EvaluateChangesWaiting() counts the
 * writers' wake-ups instead (WorkerWokenSinceApply()).
 *
 *-------------------------------------------------------------------------
 */
#include "pass_chunk_helper.h"
#include "worker.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/bufmgr.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#define QUEUE_SIZE			(256 * 1024)
#define SNAPSHOT_SPACE		(512 * 1024)
#define KEY_SPACE			2048
#define NEEDED_MAX			4096

/* Fewest contacts of a chunk read with the helper: below, alone. */
#define CHUNK_HELPER_MIN	2048

/*
 * A helper that sends nothing for this long (stuck, or not started) is
 * ended, and the pass reads on alone.
 */
#define HELPER_SILENCE_MS	5000

/* An idle helper whose worker no longer asks ends after this. */
#define HELPER_IDLE_MS		(5 * 60 * 1000)

/* What the worker and its helper share (dynamic shared memory). */
typedef struct ChunkShared
{
	HelperIdentity identity;
	int			worker_pid;
	pg_atomic_uint32 helper_procno;	/* +1; 0 until the helper is connected */
	pg_atomic_uint32 asked;		/* generation of the last chunk asked for */
	pg_atomic_uint32 cut;		/* generation of the last chunk cut short */
	pg_atomic_uint32 quit;
	/* the chunk asked for: written before asked moves */
	Oid			source_relid;
	Oid			index_relid;
	TimestampTz now;
	int64		limit;
	int			nneeded;
	Size		lo_len;			/* 0: from the first key */
	pg_uuid_t	needed[NEEDED_MAX];
	char		lo[KEY_SPACE];
	char		snapshot[SNAPSHOT_SPACE];
} ChunkShared;

#define QUEUE_OFFSET	MAXALIGN(sizeof(ChunkShared))

/* ----------------------------------------------------------------
 * The helper
 * ---------------------------------------------------------------- */

/* Has the worker cut this chunk short? */
static bool
chunk_is_cut(ChunkShared *shared, uint32 gen)
{
	return pg_atomic_read_u32(&shared->cut) == gen;
}

/*
 * One chunk: reads the key index after the chunk's first key, with its
 * snapshot, and sends the contacts as they are evaluated, then the end.
 * Returns false when the worker has gone.
 */
static bool
helper_chunk(ChunkShared *shared, shm_mq_handle *mqh, uint32 gen)
{
	HelperMessage msg;
	Snapshot	snapshot;
	Relation	source;
	Relation	index;
	EvalPlan   *plan;
	ContactBatch *cb;
	IndexScanDesc scan;
	ScanKeyData skey;
	TupleTableSlot *slot;
	MemoryContext contact_cxt;
	Oid			key_type;
	int			nkeys = shared->lo_len > 0 ? 1 : 0;
	int64		visited = 0;
	bool		more = true;
	bool		sent = true;

	if (chunk_is_cut(shared, gen))
	{
		/* cut before it began: only the end */
		msg.plan = NULL;
		initStringInfo(&msg.buf);
		HelperMessageBegin(&msg);
		return HelperMessageSend(mqh, &msg, gen, CHUNK_MESSAGE_END | CHUNK_MESSAGE_MORE) ==
			SHM_MQ_SUCCESS;
	}

	StartTransactionCommand();
	snapshot = RegisterSnapshot(RestoreSnapshot(shared->snapshot));
	PushActiveSnapshot(snapshot);
	source = table_open(shared->source_relid, AccessShareLock);
	index = index_open(shared->index_relid, AccessShareLock);
	plan = EvalPlanBuildHelper(CatalogLoad(CurrentMemoryContext, true), source,
							   shared->needed, shared->nneeded, shared->now);
	if (plan == NULL || source->rd_tableam != GetHeapamTableAmRoutine())
		elog(ERROR, "segments chunk helper: the pass's segments do not compile here");
	key_type = plan->cat->config.key_type;
	if (TupleDescAttr(RelationGetDescr(index), 0)->atttypid != key_type)
		elog(ERROR, "segments chunk helper: the key index is not on the key type");
	if (nkeys > 0)
	{
		char	   *p = palloc(shared->lo_len);
		bool		isnull;
		Datum		lo;
		Oid			op = get_opfamily_member(index->rd_opfamily[0], key_type, key_type,
											 BTGreaterStrategyNumber);

		memcpy(p, shared->lo, shared->lo_len);
		lo = datumRestore(&p, &isnull);
		if (!OidIsValid(op) || isnull)
			elog(ERROR, "segments chunk helper: no key to read from");
		ScanKeyEntryInitialize(&skey, 0, 1, BTGreaterStrategyNumber, InvalidOid,
							   index->rd_indcollation[0], get_opcode(op), lo);
	}

	cb = HelperContactBatch(plan, &msg);
	contact_cxt = AllocSetContextCreate(CurrentMemoryContext, "segments contact",
										ALLOCSET_DEFAULT_SIZES);
	/* key order from the chunk's first key: what the worker would read */
	scan = index_beginscan(source, index, snapshot, nkeys, 0);
	index_rescan(scan, nkeys > 0 ? &skey : NULL, nkeys, NULL, 0);
	slot = table_slot_create(source, NULL);
	while (visited < shared->limit && !chunk_is_cut(shared, gen) &&
		   (more = index_getnext_slot(scan, ForwardScanDirection, slot)))
	{
		CHECK_FOR_INTERRUPTS();
		/* NULL keys come last in the index: not contacts */
		if (!EvalRowHasKey(plan, slot))
			continue;
		ContactBatchEvaluate(plan, cb, NULL, slot, contact_cxt);
		visited++;
		if (msg.ncontacts > 0)
		{
			/* a batch evaluated: sent (the wait for room ends with the worker's reads) */
			if (HelperMessageSend(mqh, &msg, gen, 0) != SHM_MQ_SUCCESS)
			{
				sent = false;
				break;
			}
			HelperMessageBegin(&msg);
		}
	}
	if (sent)
	{
		ContactBatchFlush(plan, cb, NULL);
		sent = HelperMessageSend(mqh, &msg, gen,
								 CHUNK_MESSAGE_END | (more ? CHUNK_MESSAGE_MORE : 0)) ==
			SHM_MQ_SUCCESS;
	}
	ExecDropSingleTupleTableSlot(slot);
	index_endscan(scan);
	index_close(index, AccessShareLock);
	table_close(source, AccessShareLock);
	PopActiveSnapshot();
	UnregisterSnapshot(snapshot);
	CommitTransactionCommand();
	return sent;
}

/*
 * Entry point of a worker's chunk helper (bgw_main_arg: the dynamic shared
 * memory segment's handle).  It waits for the worker's chunks and reads
 * each; it ends when the worker says so or has gone.  Any error ends it:
 * the worker reads on alone.
 */
void
segments_chunk_helper_main(Datum arg)
{
	dsm_segment *seg;
	ChunkShared *shared;
	shm_mq_handle *mqh;
	shm_mq	   *mq;
	uint32		done = 0;
	TimestampTz idle_since;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	ProcessKeepFreedMemory();	/* chunk after chunk, as the worker */
	CurrentResourceOwner = ResourceOwnerCreate(NULL, "segments chunk helper");
	seg = dsm_attach(DatumGetUInt32(arg));
	if (seg == NULL)
		return;					/* the worker ended the pass already */
	shared = dsm_segment_address(seg);
	mq = (shm_mq *) ((char *) shared + QUEUE_OFFSET);
	shm_mq_set_sender(mq, MyProc);
	mqh = shm_mq_attach(mq, seg, NULL);
	HelperConnect(&shared->identity, "segments chunk helper");
	pg_atomic_write_u32(&shared->helper_procno, MyProc->pgprocno + 1);
	pgstat_report_activity(STATE_IDLE, NULL);

	idle_since = GetCurrentTimestamp();
	for (;;)
	{
		uint32		asked;

		CHECK_FOR_INTERRUPTS();
		if (pg_atomic_read_u32(&shared->quit) != 0)
			break;
		asked = pg_atomic_read_u32(&shared->asked);
		if (asked != done)
		{
			pg_read_barrier();	/* the chunk's description, written before */
			pgstat_report_activity(STATE_RUNNING, "evaluating a chunk of the worker's pass");
			if (!helper_chunk(shared, mqh, asked))
				break;			/* the worker is gone */
			pgstat_report_activity(STATE_IDLE, NULL);
			done = asked;
			idle_since = GetCurrentTimestamp();
			continue;
		}
		if (BackendPidGetProc(shared->worker_pid) == NULL ||
			TimestampDifferenceExceeds(idle_since, GetCurrentTimestamp(), HELPER_IDLE_MS))
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	shm_mq_detach(mqh);
	dsm_detach(seg);
}

/* ----------------------------------------------------------------
 * The worker's side
 * ---------------------------------------------------------------- */

typedef struct ChunkHelper
{
	dsm_segment *seg;
	ChunkShared *shared;
	shm_mq_handle *mqh;
	BackgroundWorkerHandle *handle;
	uint32		gen;			/* the chunk last asked for */
	bool		in_chunk;		/* asked, its end not received yet */
	TimestampTz heard_at;		/* its last message, or when asked */
} ChunkHelper;

static ChunkHelper *helper = NULL;	/* in TopMemoryContext */
static bool helper_went = false;	/* went midway: the pass reads alone */
static bool chunk_active = false;	/* this chunk is read by the helper */
static bool latch_reset = false;	/* a wait reset this process's latch */

/* Tells the helper (once connected) that something changed for it. */
static void
wake_helper(void)
{
	uint32		procno = pg_atomic_read_u32(&helper->shared->helper_procno);

	if (procno > 0)
		SetLatch(&ProcGlobal->allProcs[procno - 1].procLatch);
}

/* Forgets the helper; with terminate, ends it (it may be midway). */
static void
helper_release(bool terminate)
{
	if (helper == NULL)
		return;
	pg_atomic_write_u32(&helper->shared->quit, 1);
	wake_helper();
	if (terminate)
		TerminateBackgroundWorker(helper->handle);
	shm_mq_detach(helper->mqh);
	dsm_detach(helper->seg);
	pfree(helper->handle);
	pfree(helper);
	helper = NULL;
	chunk_active = false;
}

/* Starts the pass's helper; false when none could start. */
static bool
helper_start(void)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	ChunkHelper *h = palloc0(sizeof(ChunkHelper));
	shm_mq	   *mq;

	h->seg = dsm_create(QUEUE_OFFSET + QUEUE_SIZE, DSM_CREATE_NULL_IF_MAXSEGMENTS);
	if (h->seg == NULL)
	{
		pfree(h);
		MemoryContextSwitchTo(old);
		return false;
	}
	dsm_pin_mapping(h->seg);	/* the pass's, across its chunks' transactions */
	h->shared = dsm_segment_address(h->seg);
	memset(h->shared, 0, sizeof(ChunkShared));
	HelperIdentityCapture(&h->shared->identity);
	h->shared->worker_pid = MyProcPid;
	pg_atomic_init_u32(&h->shared->helper_procno, 0);
	pg_atomic_init_u32(&h->shared->asked, 0);
	pg_atomic_init_u32(&h->shared->cut, 0);
	pg_atomic_init_u32(&h->shared->quit, 0);
	mq = shm_mq_create((char *) h->shared + QUEUE_OFFSET, QUEUE_SIZE);
	if (!HelperRegister("segments_chunk_helper_main", "segments chunk helper", h->seg, 0, mq,
						&h->handle, &h->mqh))
	{
		dsm_detach(h->seg);
		pfree(h);
		MemoryContextSwitchTo(old);
		return false;
	}
	MemoryContextSwitchTo(old);
	helper = h;
	return true;
}

/*
 * Asks the helper to read a chunk (starting it at the pass's first large
 * chunk): the contacts after *lo (NULL: from the first key) in the order
 * of index_relid, limit at most, with the chunk's snapshot.  False when
 * the chunk should be read alone.
 */
bool
ChunkHelperAsk(EvalPlan *plan, Oid index_relid, const Datum *lo, int64 limit)
{
	Relation	source = plan->source;
	ChunkShared *shared;
	Size		snap_size;
	Size		lo_size = 0;
	int			nneeded = 0;

	chunk_active = false;
	latch_reset = false;
	if (helper_went || limit < CHUNK_HELPER_MIN || HelperSourceBlocks(plan) == 0)
		return false;
	snap_size = EstimateSnapshotSpace(plan->snapshot);
	if (lo != NULL)
		lo_size = datumEstimateSpace(*lo, false, plan->key_byval, plan->key_len);
	for (int i = 0; i < plan->nsegments; i++)
		nneeded += plan->segments[i].rule != NULL && plan->segments[i].needed;
	if (snap_size > SNAPSHOT_SPACE || lo_size > KEY_SPACE || nneeded > NEEDED_MAX)
		return false;

	/* a helper that ended while idle (the idle limit, a kill): another */
	if (helper != NULL)
	{
		pid_t		pid;

		if (GetBackgroundWorkerPid(helper->handle, &pid) == BGWH_STOPPED)
			helper_release(false);
	}
	if (helper == NULL && !helper_start())
		return false;

	shared = helper->shared;
	shared->source_relid = RelationGetRelid(source);
	shared->index_relid = index_relid;
	shared->now = plan->now;
	shared->limit = limit;
	shared->nneeded = 0;
	for (int i = 0; i < plan->nsegments; i++)
	{
		if (plan->segments[i].rule != NULL && plan->segments[i].needed)
			shared->needed[shared->nneeded++] = plan->segments[i].seg->id;
	}
	shared->lo_len = lo_size;
	if (lo != NULL)
	{
		char	   *p = shared->lo;

		datumSerialize(*lo, false, plan->key_byval, plan->key_len, &p);
	}
	SerializeSnapshot(plan->snapshot, shared->snapshot);
	pg_write_barrier();			/* the chunk's description before its number */
	helper->gen++;
	if (helper->gen == 0)
		helper->gen = 1;		/* 0 is the helper's "none yet" */
	pg_atomic_write_u32(&shared->asked, helper->gen);
	helper->in_chunk = true;
	helper->heard_at = GetCurrentTimestamp();
	chunk_active = true;
	wake_helper();
	return true;
}

/* Is this chunk read by the helper? */
bool
ChunkHelperActive(void)
{
	return chunk_active;
}

/*
 * The helper's next message for this chunk, without waiting (read with r,
 * in the current memory context); messages of an earlier chunk are dropped.
 */
ChunkHelperReceipt
ChunkHelperReceive(HelperReader *r)
{
	for (;;)
	{
		Size		len;
		void	   *data;
		shm_mq_result res;

		if (helper == NULL || !helper->in_chunk)
			return CHUNK_HELPER_GONE;
		res = shm_mq_receive(helper->mqh, &len, &data, true);
		if (res == SHM_MQ_WOULD_BLOCK &&
			!TimestampDifferenceExceeds(helper->heard_at, GetCurrentTimestamp(),
										HELPER_SILENCE_MS))
			return CHUNK_HELPER_NOTHING;
		if (res != SHM_MQ_SUCCESS)
		{
			/* gone (or silent) midway: the rest of the pass reads alone */
			elog(DEBUG1, "segments worker: the chunk helper %s during a chunk",
				 res == SHM_MQ_DETACHED ? "went" : "was silent");
			helper_went = true;
			helper_release(true);
			return CHUNK_HELPER_GONE;
		}
		helper->heard_at = GetCurrentTimestamp();
		HelperReaderStart(r, data, len);
		if (r->tag != helper->gen)
			continue;			/* an earlier chunk's */
		if (r->flags & CHUNK_MESSAGE_END)
			helper->in_chunk = false;
		return CHUNK_HELPER_MESSAGE;
	}
}

/* Waits a little for the helper's next message (or an interrupt). */
void
ChunkHelperWait(void)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10,
					 PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	latch_reset = true;
	CHECK_FOR_INTERRUPTS();
}

/*
 * Cuts the chunk short: tells the helper, and drops what it sent after
 * the cut, until its end.
 */
void
ChunkHelperCut(void)
{
	if (helper == NULL || !helper->in_chunk)
		return;
	pg_atomic_write_u32(&helper->shared->cut, helper->gen);
	wake_helper();
	for (;;)
	{
		HelperReader r;
		ChunkHelperReceipt got = ChunkHelperReceive(&r);

		if (got == CHUNK_HELPER_GONE)
			return;
		if (got == CHUNK_HELPER_NOTHING)
			ChunkHelperWait();
		else if (!helper->in_chunk)
			return;				/* its end */
	}
}

/*
 * The chunk is over (the caller has its contacts): a wake-up that a wait
 * took, which may have been a writer's, is given back.
 */
void
ChunkHelperChunkEnd(void)
{
	chunk_active = false;
	if (latch_reset)
		SetLatch(MyLatch);
	latch_reset = false;
}

/*
 * The pass is over (done, abandoned or failed): its helper ends.  With
 * failed, it is ended wherever it is.
 */
void
ChunkHelperEnd(bool failed)
{
	helper_release(failed);
	helper_went = false;
	if (latch_reset)
		SetLatch(MyLatch);
	latch_reset = false;
}

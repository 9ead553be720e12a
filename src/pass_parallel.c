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
#include "eval_pass.h"

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

/* Settings; see README.md, Settings. */
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

/* Settings the helper takes from the pass: they shape values' text forms. */
static const char *const carried_settings[] = {
	"TimeZone", "DateStyle", "IntervalStyle", "extra_float_digits", "search_path"
};
#define NCARRIED lengthof(carried_settings)
#define SETTING_LEN 1024

typedef struct HelperShared
{
	Oid			database_id;
	Oid			session_user_id;	/* authenticated: may log in */
	Oid			user_id;		/* the pass's current user */
	Oid			source_relid;
	TimestampTz now;
	uint32		nchunks;
	BlockNumber nblocks;
	int			nneeded;
	pg_atomic_uint32 next_chunk;
	char		settings[NCARRIED][SETTING_LEN];
} HelperShared;

/*
 * Message from a helper, one per chunk: uint32 chunk, uint32 contacts, then
 * per contact its key (datumSerialize), int32 tenant length (-1: none) and
 * bytes, int32 count and the segment numbers.
 */
typedef struct ChunkMessage
{
	EvalPlan   *plan;
	StringInfoData buf;
	int			ncontacts;
} ChunkMessage;

#define MESSAGE_HEADER (2 * sizeof(uint32))

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

/* ContactBatchEmitFn: a contact appended to the chunk's message. */
static void
message_add(void *arg, Datum key, int nnums, const int32 *nums, const char *tenant)
{
	ChunkMessage *msg = (ChunkMessage *) arg;
	EvalPlan   *plan = msg->plan;
	Size		len = datumEstimateSpace(key, false, plan->key_byval, plan->key_len);
	int32		tlen = tenant != NULL ? (int32) strlen(tenant) : -1;
	char	   *p;

	enlargeStringInfo(&msg->buf, len);
	p = msg->buf.data + msg->buf.len;
	datumSerialize(key, false, plan->key_byval, plan->key_len, &p);
	msg->buf.len = p - msg->buf.data;
	appendBinaryStringInfo(&msg->buf, (char *) &tlen, sizeof(int32));
	if (tlen > 0)
		appendBinaryStringInfo(&msg->buf, tenant, tlen);
	appendBinaryStringInfo(&msg->buf, (char *) &nnums, sizeof(int32));
	appendBinaryStringInfo(&msg->buf, (const char *) nums, nnums * sizeof(int32));
	msg->ncontacts++;
}

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
	ChunkMessage msg;
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

	/* as the session's own user (who may log in), then the pass's */
	BackgroundWorkerInitializeConnectionByOid(shared->database_id, shared->session_user_id, 0);
	SetUserIdAndSecContext(shared->user_id, SECURITY_LOCAL_USERID_CHANGE);
	for (int i = 0; i < (int) NCARRIED; i++)
		SetConfigOption(carried_settings[i], shared->settings[i], PGC_USERSET, PGC_S_SESSION);
	/* never wait long behind a lock the pass may be queued behind */
	SetConfigOption("lock_timeout", "1000", PGC_USERSET, PGC_S_SESSION);
	/* whatever the login role's own settings say: a reader, no more */
	SetConfigOption("default_transaction_read_only", "on", PGC_USERSET, PGC_S_SESSION);
	SetConfigOption("default_transaction_isolation", "read committed", PGC_USERSET, PGC_S_SESSION);
	SetConfigOption("application_name", "segments pass helper", PGC_USERSET, PGC_S_SESSION);
	pgstat_report_appname("segments pass helper");

	StartTransactionCommand();
	snapshot = RegisterSnapshot(RestoreSnapshot(shm_toc_lookup(toc, KEY_SNAPSHOT, false)));
	PushActiveSnapshot(snapshot);
	source = table_open(shared->source_relid, AccessShareLock);
	plan = EvalPlanBuildHelper(CatalogLoad(CurrentMemoryContext, true), source,
							   shm_toc_lookup(toc, KEY_NEEDED, false), shared->nneeded,
							   shared->now);
	if (plan == NULL || source->rd_tableam != GetHeapamTableAmRoutine())
		elog(ERROR, "segments pass helper: the pass's segments do not compile here");

	cb = ContactBatchCreate(plan, false);
	cb->emit = message_add;
	cb->emit_arg = &msg;
	msg.plan = plan;
	initStringInfo(&msg.buf);
	contact_cxt = AllocSetContextCreate(CurrentMemoryContext, "segments contact",
										ALLOCSET_DEFAULT_SIZES);
	scan = table_beginscan_strat(source, snapshot, 0, NULL, true, false);
	slot = table_slot_create(source, NULL);
	pgstat_report_activity(STATE_RUNNING, "evaluating contacts for a refresh()");
	while (claim_chunk(shared, &chunk))
	{
		uint32		header[2];
		shm_mq_result res;

		resetStringInfo(&msg.buf);
		msg.ncontacts = 0;
		enlargeStringInfo(&msg.buf, MESSAGE_HEADER);
		msg.buf.len = MESSAGE_HEADER;	/* filled in below */
		scan_chunk(plan, scan, slot, shared, chunk, cb, NULL, contact_cxt);
		ContactBatchFlush(plan, cb, NULL);
		header[0] = chunk;
		header[1] = msg.ncontacts;
		memcpy(msg.buf.data, header, MESSAGE_HEADER);
		res = shm_mq_send(mqh, msg.buf.len, msg.buf.data, false, true);
		if (res != SHM_MQ_SUCCESS)
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

/* Copies n bytes of a helper's message at *p to dst, checked against its end. */
static void
message_take(char **p, const char *end, void *dst, Size n)
{
	if (n > (Size) (end - *p))
		elog(ERROR, "segments pass helper sent a truncated message");
	memcpy(dst, *p, n);
	*p += n;
}

/* Adds the contacts of one helper message to the membership batch. */
static void
receive_chunk(EvalPlan *plan, ParallelScan *ps, MemberBatch *batch, const char *data,
			  Size len, MemoryContext scratch)
{
	MemoryContext old = MemoryContextSwitchTo(scratch);
	const char *end = data + len;
	uint32		header[2];
	char	   *p = (char *) data;
	int32	   *nums = NULL;
	int			nums_space = 0;

	message_take(&p, end, header, MESSAGE_HEADER);
	if (header[0] >= ps->shared->nchunks || ps->done[header[0]])
		elog(ERROR, "segments pass helper sent chunk %u twice or out of range", header[0]);
	for (uint32 i = 0; i < header[1]; i++)
	{
		bool		isnull;
		Datum		key;
		int32		tlen;
		char	   *tenant = NULL;
		int32		nnums;

		/* (datumRestore reads a length word, then that many bytes) */
		if (sizeof(int) > (Size) (end - p))
			elog(ERROR, "segments pass helper sent a truncated message");
		key = datumRestore(&p, &isnull);
		if (isnull || p > end)
			elog(ERROR, "segments pass helper sent a malformed message");
		message_take(&p, end, &tlen, sizeof(int32));
		if (tlen >= 0)
		{
			tenant = palloc(tlen + 1);
			message_take(&p, end, tenant, tlen);
			tenant[tlen] = '\0';
		}
		message_take(&p, end, &nnums, sizeof(int32));
		if (nnums < 0)
			elog(ERROR, "segments pass helper sent a malformed message");
		if (nnums > nums_space)
		{
			nums_space = Max(nnums, 64);
			nums = palloc(nums_space * sizeof(int32));
		}
		message_take(&p, end, nums, nnums * sizeof(int32));
		/* members counted as ContactBatchFlush counts the pass's own */
		for (int k = 0; k < nnums; k++)
		{
			EvalSegment *es = EvalSegmentOfNum(plan, nums[k]);

			if (es != NULL)
				es->count++;
		}
		MemberBatchAdd(plan, batch, key, nnums, nums, tenant, true);
	}
	ps->done[header[0]] = true;
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
	BackgroundWorker worker;
	int			started = 0;

	for (int h = 0; h < nhelpers; h++)
	{
		shm_mq	   *mq = (shm_mq *) (queues + h * QUEUE_SIZE);

		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_ConsistentState;
		worker.bgw_restart_time = BGW_NEVER_RESTART;
		snprintf(worker.bgw_library_name, BGW_MAXLEN, "segments");
		snprintf(worker.bgw_function_name, BGW_MAXLEN, "segments_pass_helper_main");
		snprintf(worker.bgw_name, BGW_MAXLEN, "segments pass helper for PID %d", MyProcPid);
		snprintf(worker.bgw_type, BGW_MAXLEN, "segments pass helper");
		worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(ps->seg));
		memcpy(worker.bgw_extra, &h, sizeof(int));
		worker.bgw_notify_pid = MyProcPid;
		shm_mq_set_receiver(mq, MyProc);
		if (!RegisterDynamicBackgroundWorker(&worker, &ps->handles[h]))
			break;				/* no slot: fewer helpers */
		ps->queues[h] = shm_mq_attach(mq, ps->seg, ps->handles[h]);
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

	if (segments_pass_helpers <= 0 || !plan->full_pass || plan->verify ||
		IsInParallelMode() || !IsUnderPostmaster ||
		TransactionIdIsValid(GetTopTransactionIdIfAny()) ||
		IsolationIsSerializable() ||	/* the pass's reads take predicate locks */
		source->rd_rel->relpersistence == RELPERSISTENCE_TEMP ||
		source->rd_tableam != GetHeapamTableAmRoutine())
		return false;
	nblocks = RelationGetNumberOfBlocks(source);
	if (nblocks == 0 || nblocks < (BlockNumber) segments_pass_helper_min_pages)
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
	ps.shared->database_id = MyDatabaseId;
	ps.shared->session_user_id = GetAuthenticatedUserId();
	ps.shared->user_id = GetUserId();
	ps.shared->source_relid = RelationGetRelid(source);
	ps.shared->now = plan->now;
	ps.shared->nblocks = nblocks;
	ps.shared->nchunks = (nblocks + CHUNK_BLOCKS - 1) / CHUNK_BLOCKS;
	pg_atomic_init_u32(&ps.shared->next_chunk, 0);
	for (int i = 0; i < (int) NCARRIED; i++)
		strlcpy(ps.shared->settings[i], GetConfigOption(carried_settings[i], false, false),
				SETTING_LEN);
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

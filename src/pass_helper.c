/*-------------------------------------------------------------------------
 *
 * pass_helper.c
 *		Helper processes that read and evaluate contacts for a pass, which
 *		writes what they send: the shared memory of a pass and its helpers,
 *		their messages, and the helper process itself.
 *
 * Writing membership is the pass's alone (one transaction, its lock); the
 * reading and evaluating before it can run on another core.  PostgreSQL's
 * parallel workers cannot do it: while they run, their leader is in
 * parallel mode, where it may not update rows or start a command, and a
 * pass does both as it goes.  A helper is a background worker with a
 * transaction of its own that reads with the pass's snapshot (serialized
 * into dynamic shared memory).  That is only the pass's view when the
 * pass's transaction has written nothing yet (no transaction id): the
 * helper could not see the pass's own uncommitted rows.  Otherwise, or in
 * a SERIALIZABLE transaction (whose reads take predicate locks), the pass
 * reads alone (PassHelpersWanted).
 *
 * A helper sends each contact's key, tenant and segment numbers through a
 * queue of its own.  It reads either chunks of the source's blocks that it
 * claims from a shared counter (refresh(): pass_parallel.c), or the key
 * index from a key on, in key order (a worker's chunk: pass_chunked.c).
 * Whatever a helper does not deliver (it failed, was killed, never
 * started), the pass reads itself: who evaluated a contact never changes
 * the result.
 *
 * A helper waits for no lock that the pass could be waiting behind: it
 * takes its locks (the catalog, the source, the index) before it reads a
 * contact, with a lock_timeout of a second, and the pass does not wait for
 * it meanwhile.  It runs no one's SQL: it connects as the session's login
 * user, evaluates as the pass's role, in a read-only transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "pass_helper.h"
#include "worker.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/nbtree.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shm_toc.h"
#include "tcop/tcopprot.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

PGDLLEXPORT void segments_pass_helper_main(Datum arg);

/* Settings; see README.md, Settings. */
int			segments_pass_helpers = 1;
int			segments_pass_helper_min_pages = 4096;	/* 32 MB of 8 kB pages */

#define QUEUE_SIZE			(1024 * 1024)
#define TOC_MAGIC			0x5e6e7a11
#define KEY_SHARED			1
#define KEY_SNAPSHOT		2
#define KEY_NEEDED			3
#define KEY_QUEUES			4
#define KEY_LO				5
#define MESSAGE_HEADER		(2 * sizeof(uint32))

/* Settings the helper takes from the pass: they shape values' text forms. */
static const char *const carried_settings[] = {
	"TimeZone", "DateStyle", "IntervalStyle", "extra_float_digits", "search_path"
};
#define NCARRIED lengthof(carried_settings)
#define SETTING_LEN 1024

struct HelperShared
{
	HelperMode	mode;
	Oid			database_id;
	Oid			session_user_id;	/* authenticated: may log in */
	Oid			user_id;		/* the pass's current user */
	Oid			source_relid;
	TimestampTz now;
	int			nneeded;
	/* HELPER_BLOCKS */
	BlockNumber nblocks;
	uint32		nchunks;
	pg_atomic_uint32 next_chunk;
	/* HELPER_KEY_RANGE */
	Oid			index_relid;
	bool		has_lo;			/* keys after KEY_LO's; else from the first */
	int64		limit;			/* contacts at most */
	pg_atomic_uint32 stop;		/* the pass has what it needs */
	char		settings[NCARRIED][SETTING_LEN];
};

void
PassHelperInit(void)
{
	DefineCustomIntVariable("segments.pass_helpers",
							"Helper processes that read and evaluate contacts for a pass over a large source.",
							"Each takes one of max_worker_processes while the pass (refresh(), or a "
							"chunk of the worker's pass) runs; 0: passes read alone.",
							&segments_pass_helpers,
							1, 0, HELPERS_MAX,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("segments.pass_helper_min_size",
							"Smallest source for which a pass starts helper processes.",
							NULL,
							&segments_pass_helper_min_pages,
							4096, 0, INT_MAX,
							PGC_SUSET,
							GUC_UNIT_BLOCKS,
							NULL, NULL, NULL);
}

/*
 * May this pass use helpers?  A local heap source of at least min_pages,
 * helpers allowed, and a transaction whose view a helper can take.
 */
bool
PassHelpersWanted(EvalPlan *plan, Relation source, BlockNumber min_pages)
{
	if (segments_pass_helpers <= 0 || plan->verify || plan->trace != NULL ||
		IsInParallelMode() || !IsUnderPostmaster ||
		TransactionIdIsValid(GetTopTransactionIdIfAny()) ||
		IsolationIsSerializable() ||
		source->rd_rel->relpersistence == RELPERSISTENCE_TEMP ||
		source->rd_tableam != GetHeapamTableAmRoutine())
		return false;
	return RelationGetNumberOfBlocks(source) >= Max(min_pages, 1);
}

/* ----------------------------------------------------------------
 * Messages
 * ---------------------------------------------------------------- */

/* What a helper fills and sends. */
typedef struct MessageBuffer
{
	EvalPlan   *plan;
	StringInfoData buf;
	uint32		ncontacts;
} MessageBuffer;

static void
message_begin(MessageBuffer *mb)
{
	resetStringInfo(&mb->buf);
	mb->ncontacts = 0;
	enlargeStringInfo(&mb->buf, MESSAGE_HEADER);
	mb->buf.len = MESSAGE_HEADER;	/* filled in by message_send */
}

/* ContactBatchEmitFn: a contact appended to the message. */
static void
message_add(void *arg, Datum key, int nnums, const int32 *nums, const char *tenant)
{
	MessageBuffer *mb = (MessageBuffer *) arg;
	EvalPlan   *plan = mb->plan;
	int32		tlen = tenant != NULL ? (int32) strlen(tenant) : -1;
	int32		n = nnums;
	char	   *p;

	enlargeStringInfo(&mb->buf, datumEstimateSpace(key, false, plan->key_byval, plan->key_len));
	p = mb->buf.data + mb->buf.len;
	datumSerialize(key, false, plan->key_byval, plan->key_len, &p);
	mb->buf.len = p - mb->buf.data;
	appendBinaryStringInfo(&mb->buf, (char *) &tlen, sizeof(int32));
	if (tlen > 0)
		appendBinaryStringInfo(&mb->buf, tenant, tlen);
	appendBinaryStringInfo(&mb->buf, (char *) &n, sizeof(int32));
	appendBinaryStringInfo(&mb->buf, (const char *) nums, nnums * sizeof(int32));
	mb->ncontacts++;
}

/* Sends the message with its tag and count; false when the pass is gone. */
static bool
message_send(shm_mq_handle *mqh, MessageBuffer *mb, uint32 tag, uint32 count)
{
	uint32		header[2] = {tag, count};

	memcpy(mb->buf.data, header, MESSAGE_HEADER);
	return shm_mq_send(mqh, mb->buf.len, mb->buf.data, false, true) == SHM_MQ_SUCCESS;
}

/*
 * The next contact of a message (key, tenant and numbers allocated in the
 * current memory context); false when there is none left.
 */
bool
HelperMessageNext(EvalPlan *plan, HelperMessage *msg, Datum *key, int *nnums, int32 **nums,
				  char **tenant)
{
	bool		isnull;
	int32		tlen;
	int32		n;

	if (msg->tag == HELPER_MSG_END || msg->decoded >= msg->count)
		return false;
	*key = datumRestore(&msg->next, &isnull);
	if (isnull || msg->next + sizeof(int32) > msg->end)
		elog(ERROR, "segments pass helper sent a malformed message");
	memcpy(&tlen, msg->next, sizeof(int32));
	msg->next += sizeof(int32);
	*tenant = NULL;
	if (tlen >= 0)
	{
		if (msg->next + tlen > msg->end)
			elog(ERROR, "segments pass helper sent a malformed message");
		*tenant = pnstrdup(msg->next, tlen);
		msg->next += tlen;
	}
	if (msg->next + sizeof(int32) > msg->end)
		elog(ERROR, "segments pass helper sent a malformed message");
	memcpy(&n, msg->next, sizeof(int32));
	msg->next += sizeof(int32);
	if (n < 0 || msg->next + n * sizeof(int32) > msg->end)
		elog(ERROR, "segments pass helper sent a malformed message");
	*nums = palloc(Max(n, 1) * sizeof(int32));
	memcpy(*nums, msg->next, n * sizeof(int32));
	msg->next += n * sizeof(int32);
	*nnums = n;
	msg->decoded++;
	(void) plan;
	return true;
}

/* ----------------------------------------------------------------
 * The helper
 * ---------------------------------------------------------------- */

/* Claims the next chunk of blocks, or returns false when none is left. */
static bool
claim_chunk(HelperShared *shared, uint32 *chunk)
{
	*chunk = pg_atomic_fetch_add_u32(&shared->next_chunk, 1);
	return *chunk < shared->nchunks;
}

/* HELPER_BLOCKS: chunks of blocks, a message each. */
static void
helper_blocks(EvalPlan *plan, HelperShared *shared, shm_mq_handle *mqh, ContactBatch *cb,
			  MessageBuffer *mb, MemoryContext contact_cxt)
{
	TableScanDesc scan = table_beginscan_strat(plan->source, plan->snapshot, 0, NULL, true, false);
	TupleTableSlot *slot = table_slot_create(plan->source, NULL);
	uint32		chunk;

	while (claim_chunk(shared, &chunk))
	{
		BlockNumber start = chunk * HELPER_CHUNK_BLOCKS;

		message_begin(mb);
		table_rescan(scan, NULL);
		heap_setscanlimits(scan, start, Min(HELPER_CHUNK_BLOCKS, shared->nblocks - start));
		while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
		{
			CHECK_FOR_INTERRUPTS();
			if (EvalRowHasKey(plan, slot))
				ContactBatchEvaluate(plan, cb, NULL, slot, contact_cxt);
		}
		ContactBatchFlush(plan, cb, NULL);
		if (!message_send(mqh, mb, chunk, mb->ncontacts))
			break;				/* the pass is gone */
	}
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
}

/*
 * HELPER_KEY_RANGE: the key index from the pass's key on, as the pass
 * would read it, a message per evaluation batch, then the end (and whether
 * the index had more), until the limit or until the pass says stop.
 */
static void
helper_key_range(EvalPlan *plan, HelperShared *shared, shm_toc *toc, shm_mq_handle *mqh,
				 ContactBatch *cb, MessageBuffer *mb, MemoryContext contact_cxt)
{
	Relation	index = index_open(shared->index_relid, AccessShareLock);
	Oid			key_type = plan->cat->config.key_type;
	ScanKeyData skey;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	int64		visited = 0;
	bool		more = true;

	if (TupleDescAttr(RelationGetDescr(index), 0)->atttypid != key_type)
		elog(ERROR, "segments pass helper: the key index is not on the key type");
	if (shared->has_lo)
	{
		char	   *p = shm_toc_lookup(toc, KEY_LO, false);
		bool		isnull;
		Datum		lo = datumRestore(&p, &isnull);
		Oid			op = get_opfamily_member(index->rd_opfamily[0], key_type, key_type,
											 BTGreaterStrategyNumber);

		if (!OidIsValid(op))
			elog(ERROR, "segments pass helper: the key index has no > operator");
		ScanKeyEntryInitialize(&skey, 0, 1, BTGreaterStrategyNumber, InvalidOid,
							   index->rd_indcollation[0], get_opcode(op), lo);
	}
	scan = index_beginscan(plan->source, index, plan->snapshot, shared->has_lo ? 1 : 0, 0);
	index_rescan(scan, shared->has_lo ? &skey : NULL, shared->has_lo ? 1 : 0, NULL, 0);
	slot = table_slot_create(plan->source, NULL);
	message_begin(mb);
	while (visited < shared->limit && pg_atomic_read_u32(&shared->stop) == 0 &&
		   (more = index_getnext_slot(scan, ForwardScanDirection, slot)))
	{
		CHECK_FOR_INTERRUPTS();
		if (!EvalRowHasKey(plan, slot))
			continue;
		ContactBatchEvaluate(plan, cb, NULL, slot, contact_cxt);
		visited++;
		if (mb->ncontacts > 0)
		{
			if (!message_send(mqh, mb, HELPER_MSG_CONTACTS, mb->ncontacts))
				break;
			message_begin(mb);
		}
	}
	ContactBatchFlush(plan, cb, NULL);
	if ((mb->ncontacts == 0 || message_send(mqh, mb, HELPER_MSG_CONTACTS, mb->ncontacts)) &&
		pg_atomic_read_u32(&shared->stop) == 0)
	{
		message_begin(mb);
		(void) message_send(mqh, mb, HELPER_MSG_END, more ? 1 : 0);
	}
	ExecDropSingleTupleTableSlot(slot);
	index_endscan(scan);
	index_close(index, AccessShareLock);
}

/*
 * Entry point of a helper (bgw_main_arg: the dynamic shared memory
 * segment's handle; bgw_extra: its number).  Any error ends it: the pass
 * reads what it did not deliver.
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
	MessageBuffer mb;
	MemoryContext contact_cxt;

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
	plan->snapshot = snapshot;

	cb = ContactBatchCreate(plan, false);
	cb->emit = message_add;
	cb->emit_arg = &mb;
	mb.plan = plan;
	initStringInfo(&mb.buf);
	contact_cxt = AllocSetContextCreate(CurrentMemoryContext, "segments contact",
										ALLOCSET_DEFAULT_SIZES);
	pgstat_report_activity(STATE_RUNNING, "evaluating contacts for a pass");
	if (shared->mode == HELPER_BLOCKS)
		helper_blocks(plan, shared, mqh, cb, &mb, contact_cxt);
	else
		helper_key_range(plan, shared, toc, mqh, cb, &mb, contact_cxt);
	table_close(source, NoLock);
	PopActiveSnapshot();
	UnregisterSnapshot(snapshot);
	CommitTransactionCommand();
	shm_mq_detach(mqh);
	dsm_detach(seg);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* ----------------------------------------------------------------
 * The pass's side
 * ---------------------------------------------------------------- */

/* Registers nhelpers helpers on the queues; returns how many started. */
static int
start_helpers(PassHelpers *ph, char *queues, int nhelpers)
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
		worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(ph->seg));
		memcpy(worker.bgw_extra, &h, sizeof(int));
		worker.bgw_notify_pid = MyProcPid;
		shm_mq_set_receiver(mq, MyProc);
		if (!RegisterDynamicBackgroundWorker(&worker, &ph->handles[h]))
			break;				/* no slot: fewer helpers */
		ph->queues[h] = shm_mq_attach(mq, ph->seg, ph->handles[h]);
		started++;
	}
	return started;
}

/*
 * Starts nhelpers helpers for the pass: HELPER_BLOCKS over nblocks blocks
 * of plan->source, or HELPER_KEY_RANGE over index_relid after *lo (NULL:
 * from the first key), limit contacts at most.  NULL when none started.
 */
PassHelpers *
PassHelpersStart(EvalPlan *plan, HelperMode mode, int nhelpers, BlockNumber nblocks,
				 Oid index_relid, const Datum *lo, int64 limit)
{
	PassHelpers *ph = palloc0(sizeof(PassHelpers));
	shm_toc_estimator e;
	shm_toc    *toc;
	Size		snap_size = EstimateSnapshotSpace(plan->snapshot);
	Size		lo_size = lo != NULL ? datumEstimateSpace(*lo, false, plan->key_byval,
														  plan->key_len) : 0;
	HelperShared *shared;
	pg_uuid_t  *needed;
	char	   *queues;
	int			nneeded = 0;

	nhelpers = Min(nhelpers, HELPERS_MAX);
	shm_toc_initialize_estimator(&e);
	shm_toc_estimate_chunk(&e, sizeof(HelperShared));
	shm_toc_estimate_chunk(&e, snap_size);
	shm_toc_estimate_chunk(&e, Max(plan->nsegments, 1) * sizeof(pg_uuid_t));
	shm_toc_estimate_chunk(&e, (Size) nhelpers * QUEUE_SIZE);
	shm_toc_estimate_chunk(&e, Max(lo_size, 1));
	shm_toc_estimate_keys(&e, 5);
	ph->seg = dsm_create(shm_toc_estimate(&e), DSM_CREATE_NULL_IF_MAXSEGMENTS);
	if (ph->seg == NULL)
		return NULL;
	toc = shm_toc_create(TOC_MAGIC, dsm_segment_address(ph->seg), shm_toc_estimate(&e));

	shared = shm_toc_allocate(toc, sizeof(HelperShared));
	memset(shared, 0, sizeof(HelperShared));
	shared->mode = mode;
	shared->database_id = MyDatabaseId;
	shared->session_user_id = GetAuthenticatedUserId();
	shared->user_id = GetUserId();
	shared->source_relid = RelationGetRelid(plan->source);
	shared->now = plan->now;
	shared->nblocks = nblocks;
	shared->nchunks = (nblocks + HELPER_CHUNK_BLOCKS - 1) / HELPER_CHUNK_BLOCKS;
	pg_atomic_init_u32(&shared->next_chunk, 0);
	shared->index_relid = index_relid;
	shared->has_lo = lo != NULL;
	shared->limit = limit;
	pg_atomic_init_u32(&shared->stop, 0);
	for (int i = 0; i < (int) NCARRIED; i++)
		strlcpy(shared->settings[i], GetConfigOption(carried_settings[i], false, false),
				SETTING_LEN);
	shm_toc_insert(toc, KEY_SHARED, shared);
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
	shared->nneeded = nneeded;
	shm_toc_insert(toc, KEY_NEEDED, needed);
	if (lo != NULL)
	{
		char	   *p = shm_toc_allocate(toc, lo_size);

		shm_toc_insert(toc, KEY_LO, p);
		datumSerialize(*lo, false, plan->key_byval, plan->key_len, &p);
	}
	queues = shm_toc_allocate(toc, (Size) nhelpers * QUEUE_SIZE);
	for (int h = 0; h < nhelpers; h++)
		(void) shm_mq_create(queues + h * QUEUE_SIZE, QUEUE_SIZE);
	shm_toc_insert(toc, KEY_QUEUES, queues);
	ph->shared = shared;

	ph->nhelpers = start_helpers(ph, queues, nhelpers);
	if (ph->nhelpers == 0)
	{
		dsm_detach(ph->seg);
		pfree(ph);
		return NULL;
	}
	return ph;
}

/* HELPER_BLOCKS: the pass's own claim of a chunk of blocks. */
bool
PassHelpersClaim(PassHelpers *ph, uint32 *chunk)
{
	return claim_chunk(ph->shared, chunk);
}

/* HELPER_BLOCKS: the chunks of blocks of the source. */
uint32
PassHelpersChunks(PassHelpers *ph)
{
	return ph->shared->nchunks;
}

/*
 * The next message of helper h, without waiting: SHM_MQ_SUCCESS (msg set,
 * valid until the next call), SHM_MQ_WOULD_BLOCK, or SHM_MQ_DETACHED once
 * the helper has gone and its messages have all been taken.
 */
shm_mq_result
PassHelpersReceive(PassHelpers *ph, int h, HelperMessage *msg)
{
	Size		len;
	void	   *data;
	shm_mq_result res;

	if (ph->gone[h])
		return SHM_MQ_DETACHED;
	res = shm_mq_receive(ph->queues[h], &len, &data, true);
	if (res == SHM_MQ_DETACHED)
		ph->gone[h] = true;
	if (res != SHM_MQ_SUCCESS)
		return res;
	if (len < MESSAGE_HEADER)
		elog(ERROR, "segments pass helper sent a malformed message");
	memcpy(&msg->tag, data, sizeof(uint32));
	memcpy(&msg->count, (char *) data + sizeof(uint32), sizeof(uint32));
	msg->decoded = 0;
	msg->next = (char *) data + MESSAGE_HEADER;
	msg->end = (char *) data + len;
	return SHM_MQ_SUCCESS;
}

/*
 * Waits for a message from any helper (or an interrupt), without
 * resetting the latch of a worker, which tells it that changes wait: a
 * short sleep instead.
 */
void
PassHelpersWait(PassHelpers *ph)
{
	if (segments_in_worker)
		(void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1, PG_WAIT_EXTENSION);
	else
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		ph->latch_reset = true;
	}
	CHECK_FOR_INTERRUPTS();
}

/*
 * Tells the helpers to stop and ends them (for an error, or once the pass
 * has what it needs).  Their shared memory goes with PassHelpersEnd().
 */
void
PassHelpersStop(PassHelpers *ph)
{
	pg_atomic_write_u32(&ph->shared->stop, 1);
	for (int h = 0; h < ph->nhelpers; h++)
	{
		if (!ph->gone[h])
			TerminateBackgroundWorker(ph->handles[h]);
	}
}

/* Detaches from the helpers' shared memory (they have gone, or will). */
void
PassHelpersEnd(PassHelpers *ph)
{
	dsm_detach(ph->seg);
	/* a wait took a wake-up that may have been meant for someone else */
	if (ph->latch_reset)
		SetLatch(MyLatch);
	pfree(ph);
}

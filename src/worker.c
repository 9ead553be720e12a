/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The worker of one database: its main loop.
 *
 * Each round, in this order and each step in transactions of its own:
 *   1. applies queued contact changes (segments.change_queue, filled by the
 *      capture trigger) in batches of segments.batch_size: the batch is
 *      deleted from the queue and applied through EvaluateContacts() in
 *      the same transaction, so a crash mid-batch loses nothing; a queued
 *      TRUNCATE makes it a full pass;
 *   2. evaluates the next chunk of the pass in progress (pass_chunked.c),
 *      and gives the passage of time its turn; an error ends the pass and
 *      marks its segments failed with the message (or pending, to be
 *      retried soon, after a transient error);
 *   3. without a pass in progress, starts one for every pending segment
 *      (marked evaluating, committed, so segments.status shows it);
 *   4. applies the passage of time: one chunk of the current time window
 *      (time_window.c: the contacts whose within_* moment on a time column
 *      passed since the last window);
 *   5. one chunk of the current sweep (time rules on traits or text,
 *      re-evaluated contact by contact);
 *   6. starts a sweep, or a pass of the scheduled segments, when due.
 * Changes keep priority: after a second of batches, or one chunk of a
 * pass, window or sweep, the round starts again.  The worker sleeps on
 * its latch, which committing writers set, for at most segments.naptime
 * (or until the next time window, when a segment reads the time).
 *
 * The worker connects as the bootstrap superuser (it must see every
 * database), pins search_path to pg_catalog, pg_temp above any database
 * or role setting, and runs each transaction as the extension's owner in
 * a security-restricted operation: no object a user plants in another
 * schema is found, and nothing runs with more than the owner's rights.
 *
 * A pass can race with a concurrent update_segment(): the pass may have
 * read the old definition and then mark the segment ready.  Every pass
 * therefore remembers requested_at of each segment as its snapshot saw it,
 * and sets back to pending any segment whose request changed meanwhile
 * (a chunked pass keeps them in segments.pass).
 *
 *-------------------------------------------------------------------------
 */
#include "capture_ring.h"
#include "queue_take.h"
#include "catalog.h"
#include "citus.h"
#include "history.h"
#include "member_bulk.h"
#include "member_lock.h"
#include "member_strip.h"
#include "member_vacuum.h"
#include "pass_chunk_helper.h"
#include "pass_chunked.h"
#include "privilege.h"
#include "worker.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "replication/walsender.h"
#include "replication/walsender_private.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/ps_status.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

/* Longest run of change batches before other work gets a turn. */
#define APPLY_BUDGET_MS		1000

/*
 * Under a steady stream of changes, batches start at most this often:
 * writers wake the worker at every commit, and a batch of one change costs
 * about what a batch of hundreds does (the plan, the transaction, the rest
 * of the round).  An idle worker applies a change at once.
 */
#define APPLY_PACE_MS		25

/*
 * CPU time of a chunk of a pass (about: the contacts it has evaluated are
 * written after).  Changes committed meanwhile wait for it, at most
 * 150 ms of wall clock (EvaluateChunk()).
 */
#define PASS_CHUNK_BUDGET_MS	500

static SegmentsWorkerSlot *my_slot = NULL;
static MemoryContext round_cxt = NULL;

/* The owner switch of the transaction begun by begin_xact. */
static PrivilegeContext xact_owner;

/* segments.evaluation_timeout: the timer, and whether it fired. */
static TimeoutId evaluation_timer;
static volatile sig_atomic_t evaluation_timed_out = false;

/* Timer handler: cancels the evaluation in progress, as statement_timeout does. */
static void
evaluation_timeout_handler(void)
{
	evaluation_timed_out = true;
	InterruptPending = true;
	QueryCancelPending = true;
	SetLatch(MyLatch);
}

/* What a pass saw of segment_state when it started (see the banner). */
typedef struct RequestGuard
{
	Datum		ids;			/* uuid[] */
	Datum		requested;		/* timestamptz[] */
	bool		valid;
} RequestGuard;

/* Sets the state shown by segments.worker. */
static void
set_state(SegmentsWorkerState state)
{
	SpinLockAcquire(&segments_shared->mutex);
	my_slot->state = state;
	SpinLockRelease(&segments_shared->mutex);
}

/*
 * Records an error for segments.worker (until the next success) and
 * segments.stat_worker (until stat_reset()).
 */
static void
set_error(const char *message)
{
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&segments_shared->mutex);
	strlcpy(my_slot->last_error, message, SEGMENTS_ERROR_LEN);
	my_slot->last_error_at = now;
	strlcpy(my_slot->stats.last_error, message, SEGMENTS_ERROR_LEN);
	my_slot->stats.last_error_at = now;
	my_slot->stats.errors++;
	SpinLockRelease(&segments_shared->mutex);
}

/*
 * Clears the current error (the cause went away); last_error_at and the
 * counters keep the history.
 */
static void
clear_error(void)
{
	SpinLockAcquire(&segments_shared->mutex);
	my_slot->last_error[0] = '\0';
	SpinLockRelease(&segments_shared->mutex);
}

/* on_shmem_exit callback: the slot no longer has a running worker. */
static void
worker_detach(int code, Datum arg)
{
	SpinLockAcquire(&segments_shared->mutex);
	if (my_slot->pid == MyProcPid)
	{
		my_slot->pid = 0;
		my_slot->latch = NULL;
	}
	SpinLockRelease(&segments_shared->mutex);
	ConditionVariableBroadcast(&segments_shared->progress_cv);
}

static void ring_drain(void);
static void ring_discard(void);

/*
 * Ends the worker on purpose; the launcher reads why from the state.  The
 * ring of captured changes is moved into the queue table first (dropped
 * with the extension).
 */
static void
worker_exit(SegmentsWorkerState why)
{
	if (why == SWS_NO_EXTENSION)
		ring_discard();
	else
		ring_drain();
	set_state(why);
	proc_exit(0);
}

/*
 * The contact source as the last source check saw it (InvalidOid: none).
 * Every transaction of the worker locks it first (ACCESS SHARE, which no
 * writer waits for), before any table of segments: DDL and DROP EXTENSION
 * take the source's lock before segments' tables (the capture trigger on
 * the source goes first), so a worker that took segments.config first and
 * then waited for the source closed a lock cycle with them.  On Citus the
 * distributed deadlock detection then canceled the DDL, not the worker.
 */
static Oid	xact_source_relid = InvalidOid;

static void worker_statements_check(Oid extension);

/*
 * Starts a transaction with an active snapshot and an SPI connection.
 * Ends the worker if the extension was dropped.
 */
static void
begin_xact(const char *activity)
{
	Oid			extension;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	/* a stale oid (the source dropped) locks nothing anyone holds */
	if (OidIsValid(xact_source_relid))
		LockRelationOid(xact_source_relid, AccessShareLock);
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	pgstat_report_activity(STATE_RUNNING, activity);
	extension = get_extension_oid("segments", true);
	if (!OidIsValid(extension))
	{
		ereport(DEBUG1,
				(errmsg("segments worker for database \"%s\" stopping: the extension is not installed",
						get_database_name(MyDatabaseId))));
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		worker_exit(SWS_NO_EXTENSION);
	}
	worker_statements_check(extension);
	/* undone by commit_xact, or by the abort after an error */
	PrivilegeBecomeOwner(&xact_owner, SECURITY_RESTRICTED_OPERATION);
}

/* Commits the transaction begun by begin_xact and tells waiters. */
static void
commit_xact(void)
{
	SPI_finish();
	PrivilegeRestore(&xact_owner, true);
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	ConditionVariableBroadcast(&segments_shared->progress_cv);
}

/*
 * Error recovery inside PG_CATCH: logs the error, aborts the transaction,
 * and returns the error (in round_cxt).
 */
static ErrorData *
abort_xact(void)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(round_cxt);
	edata = CopyErrorData();
	EmitErrorReport();
	FlushErrorState();
	AbortCurrentTransaction();
	pgstat_report_activity(STATE_IDLE, NULL);
	set_error(edata->message);
	return edata;
}

/*
 * Errors that say nothing about the work itself and may well not happen
 * again: a cancel (pg_cancel_backend), a lock timeout, a serialization
 * failure or deadlock, a lack of memory, disk or connections.
 */
static bool
error_is_transient(const ErrorData *edata)
{
	int			code = edata->sqlerrcode;

	return code == ERRCODE_QUERY_CANCELED ||
		code == ERRCODE_LOCK_NOT_AVAILABLE ||
		ERRCODE_TO_CATEGORY(code) == ERRCODE_TRANSACTION_ROLLBACK ||
		ERRCODE_TO_CATEGORY(code) == ERRCODE_INSUFFICIENT_RESOURCES;
}

/* Transient errors in a row while applying changes: the pause grows. */
static int	apply_failures = 0;

/* After an error that is not transient, the next batch is applied entry by entry. */
static bool apply_isolating = false;

/*
 * The worker's statements, parsed and planned once per process: each round
 * runs several, and parsing and planning them again was 7% of the worker's
 * time applying a steady stream of one-row updates.  The plan cache
 * replans them after DDL on what they read.  A few dozen texts exist (some
 * in two versions); more than WORKER_STATEMENTS are run unprepared.
 */
#define WORKER_STATEMENTS 64
#define WORKER_STATEMENT_ARGS 4

typedef struct WorkerStatement
{
	uint32		hash;
	char	   *sql;
	int			nargs;
	Oid			types[WORKER_STATEMENT_ARGS];
	SPIPlanPtr	plan;
} WorkerStatement;

static WorkerStatement worker_statements[WORKER_STATEMENTS];
static int	nworker_statements = 0;
static Oid	worker_statements_extension = InvalidOid;

/*
 * Forgets the statements when the extension was dropped and created again
 * since they were prepared: a constant like 'segments._capture()'::
 * regprocedure is resolved when a statement is parsed, and the plan cache
 * does not replan for it.  In a transaction, with SPI connected.
 */
static void
worker_statements_check(Oid extension)
{
	if (extension == worker_statements_extension)
		return;
	for (int i = 0; i < nworker_statements; i++)
	{
		SPI_freeplan(worker_statements[i].plan);
		pfree(worker_statements[i].sql);
	}
	nworker_statements = 0;
	worker_statements_extension = extension;
}

/* The saved plan of sql, prepared now if new; NULL: run it unprepared. */
static SPIPlanPtr
worker_statement(const char *sql, int nargs, Oid *types)
{
	uint32		hash = hash_bytes((const unsigned char *) sql, strlen(sql));
	WorkerStatement *ws;
	SPIPlanPtr	plan;

	for (int i = 0; i < nworker_statements; i++)
	{
		ws = &worker_statements[i];
		if (ws->hash == hash && ws->nargs == nargs && strcmp(ws->sql, sql) == 0 &&
			(nargs == 0 || memcmp(ws->types, types, nargs * sizeof(Oid)) == 0))
			return ws->plan;
	}
	if (nworker_statements >= WORKER_STATEMENTS || nargs > WORKER_STATEMENT_ARGS)
		return NULL;
	plan = SPI_prepare(sql, nargs, types);
	if (plan == NULL)
		elog(ERROR, "segments worker: could not prepare \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "segments worker: could not keep the plan of \"%s\"", sql);
	ws = &worker_statements[nworker_statements++];
	ws->hash = hash;
	ws->sql = MemoryContextStrdup(TopMemoryContext, sql);
	ws->nargs = nargs;
	if (nargs > 0)
		memcpy(ws->types, types, nargs * sizeof(Oid));
	ws->plan = plan;
	return plan;
}

/*
 * Writers' wake-ups of this worker (shared.c) as of its last batch of
 * changes: one more since says that a committed change waits, where the
 * latch cannot say it (a chunk helper's messages set it too).
 */
static uint64 wakeups_seen = 0;

static void
wakeups_note(void)
{
	SpinLockAcquire(&segments_shared->mutex);
	wakeups_seen = my_slot->wakeups;
	SpinLockRelease(&segments_shared->mutex);
}

bool
WorkerWokenSinceApply(void)
{
	bool		woken;

	if (my_slot == NULL)
		return false;
	SpinLockAcquire(&segments_shared->mutex);
	woken = my_slot->wakeups != wakeups_seen;
	SpinLockRelease(&segments_shared->mutex);
	return woken;
}

/* Runs a statement through SPI; checks the result code. */
void
WorkerRun(const char *sql, int nargs, Oid *types, Datum *values, int expected)
{
	SPIPlanPtr	plan = worker_statement(sql, nargs, types);
	int			rc;

	if (plan != NULL)
		rc = SPI_execute_plan(plan, values, NULL, false, 0);
	else if (nargs == 0)
		rc = SPI_execute(sql, false, 0);
	else
		rc = SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0);
	if (rc != expected)
		elog(ERROR, "segments worker: \"%s\" failed: %s", sql, SPI_result_code_string(rc));
}

/*
 * Is a source configured?  (In a transaction.)  With the extension's SQL
 * still at 0.1.0 under this library (before ALTER EXTENSION UPDATE) the
 * worker waits: its statements need the new catalog.
 */
static bool
is_configured(void)
{
	bool		isnull;

	if (!CatalogHasFailureHandling())
	{
		set_error("the extension is older than its library: run ALTER EXTENSION segments UPDATE");
		return false;
	}

	WorkerRun("SELECT EXISTS (SELECT 1 FROM segments.config)", 0, NULL, NULL, SPI_OK_SELECT);
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* Reads requested_at of every segment with the active snapshot. */
static RequestGuard
guard_begin(void)
{
	RequestGuard guard;
	bool		isnull;

	if (SPI_execute("SELECT coalesce(pg_catalog.array_agg(segment_id), '{}'),"
					"       coalesce(pg_catalog.array_agg(requested_at), '{}')"
					"  FROM segments.segment_state", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read segments.segment_state");
	guard.ids = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	guard.requested = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	guard.valid = true;
	return guard;
}

/* Sets back to pending the segments re-requested since guard_begin. */
static void
guard_end(RequestGuard *guard)
{
	Oid			types[2] = {UUIDARRAYOID, get_array_type(TIMESTAMPTZOID)};
	Datum		values[2] = {guard->ids, guard->requested};

	WorkerRun("UPDATE segments.segment_state st SET state = 'pending'"
		"  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS seen(id, requested_at)"
		" WHERE st.segment_id OPERATOR(pg_catalog.=) seen.id"
		"   AND st.requested_at OPERATOR(pg_catalog.<>) seen.requested_at"
		"   AND st.state OPERATOR(pg_catalog.<>) 'pending'",
		2, types, values, SPI_OK_UPDATE);
}

/*
 * Applies queue entries [lo, hi) of a batch taken apart (see
 * apply_isolated) in a subtransaction; when that fails for a reason other
 * than a transient one, each half again, down to the single entries that
 * cannot be applied: those are set aside in segments.change_queue_failed
 * with their error.  A transient error ends the whole batch (retried).
 */
static void
apply_range(Datum *ids, Datum *contacts, bool *nulls, Datum *enqueued, int lo, int hi)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		if (nulls[lo] && hi - lo == 1)
			EvaluateRefresh(NULL, 0);	/* TRUNCATE, or a gap in capture */
		else
		{
			Datum	   *keys = palloc(Max(hi - lo, 1) * sizeof(Datum));
			int			n = 0;

			for (int i = lo; i < hi; i++)
			{
				if (!nulls[i])
					keys[n++] = contacts[i];
			}
			if (n < hi - lo)
				elog(ERROR, "a whole-source entry is applied on its own");
			EvaluateContacts(construct_array(keys, n, TEXTOID, -1, false, TYPALIGN_INT), NULL);
		}
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		/* transient, or the pass's own error (not a contact's): retried whole */
		if (error_is_transient(edata) || !EvaluateInContacts)
			ReThrowError(edata);
		if (hi - lo > 1)
		{
			int			mid = lo + (hi - lo) / 2;

			apply_range(ids, contacts, nulls, enqueued, lo, mid);
			apply_range(ids, contacts, nulls, enqueued, mid, hi);
		}
		else
		{
			Oid			types[4] = {INT8OID, TEXTOID, TIMESTAMPTZOID, TEXTOID};
			Datum		values[4] = {ids[lo], contacts[lo], enqueued[lo],
			CStringGetTextDatum(edata->message)};
			char		vnulls[4] = {' ', nulls[lo] ? 'n' : ' ', ' ', ' '};

			if (SPI_execute_with_args("INSERT INTO segments.change_queue_failed"
									  " (id, contact, enqueued_at, error) VALUES ($1, $2, $3, $4)",
									  4, types, values, vnulls, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "could not set a queue entry aside");
			ereport(WARNING,
					(errmsg("segments worker set aside the change of contact %s: %s",
							nulls[lo] ? "(all contacts)" : TextDatumGetCString(contacts[lo]),
							edata->message),
					 errhint("Fix the cause, then call segments.retry_failed_changes().")));
			/* whole-source entry set aside: every segment is evaluated anew */
			if (nulls[lo])
				WorkerRun("UPDATE segments.segment_state SET state = 'pending',"
					"       requested_at = pg_catalog.clock_timestamp()"
					" WHERE state OPERATOR(pg_catalog.=) 'ready'",
					0, NULL, NULL, SPI_OK_UPDATE);
		}
	}
	PG_END_TRY();
}

/*
 * Both dequeues delete the oldest entries as a range of ids, the least
 * and greatest of the first batch_size ($1): a range scan of the queue's
 * primary key, whose visible entries are exactly those ids (an entry that
 * commits later is not visible to the statement and stays queued).  The
 * "id = ANY (first ids)" it replaces was planned as a hash join over a
 * sequential scan of the whole queue: draining N entries cost N^2/batch.
 */
#define DEQUEUE_OLDEST \
	"DELETE FROM segments.change_queue" \
	" WHERE id OPERATOR(pg_catalog.>=) (SELECT pg_catalog.min(id) FROM ids)" \
	"   AND id OPERATOR(pg_catalog.<=) (SELECT pg_catalog.max(id) FROM ids)"
#define DEQUEUE_IDS \
	"ids AS MATERIALIZED (SELECT id FROM segments.change_queue ORDER BY id LIMIT $1)"

/*
 * Inserts the keys of ring entries into segments.change_queue, in the
 * current transaction.
 */
static void
ring_to_queue(CaptureRingKey *keys, int n)
{
	Oid			type = TEXTARRAYOID;
	Datum		value = PointerGetDatum(CaptureRingMergeKeys(keys, n,
															 CatalogGet()->config.source_relid,
															 NULL));

	WorkerRun("INSERT INTO segments.change_queue (contact) SELECT pg_catalog.unnest($1)",
			  1, &type, &value, SPI_OK_INSERT);
}

/*
 * After an error that was not transient: takes the same oldest entries
 * apart, so that the ones that cannot be applied are set aside and the
 * others applied.  In begin_xact's transaction.
 */
static int64
apply_isolated(void)
{
	Datum		arg = Int32GetDatum(segments_batch_size);
	Oid			argtype = INT4OID;
	int			n;
	Datum	   *ids;
	Datum	   *contacts;
	Datum	   *enqueued;
	bool	   *nulls;
	int			start = 0;

	WorkerRun("WITH " DEQUEUE_IDS " " DEQUEUE_OLDEST
		" RETURNING id, contact, enqueued_at",
		1, &argtype, &arg, SPI_OK_DELETE_RETURNING);
	n = (int) SPI_processed;
	ids = palloc(Max(n, 1) * sizeof(Datum));
	contacts = palloc(Max(n, 1) * sizeof(Datum));
	enqueued = palloc(Max(n, 1) * sizeof(Datum));
	nulls = palloc(Max(n, 1) * sizeof(bool));
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		ids[i] = SPI_getbinval(tup, desc, 1, &isnull);
		contacts[i] = SPI_getbinval(tup, desc, 2, &nulls[i]);
		if (!nulls[i])
			contacts[i] = PointerGetDatum(DatumGetTextPCopy(contacts[i]));
		enqueued[i] = SPI_getbinval(tup, desc, 3, &isnull);
	}
	SPI_freetuptable(SPI_tuptable);
	/* runs of contact entries, and each whole-source entry on its own */
	for (int i = 0; i <= n; i++)
	{
		if (i == n || nulls[i])
		{
			if (i > start)
				apply_range(ids, contacts, nulls, enqueued, start, i);
			if (i < n)
				apply_range(ids, contacts, nulls, enqueued, i, i + 1);
			start = i + 1;
		}
	}
	return n;
}

/*
 * Where the next batch reads segments.change_queue from (queue_take.c): after
 * the greatest id the last committed batch took, and from the first entry
 * at least once every QUEUE_FROM_START_MS.
 */
#define QUEUE_FROM_START_MS	1000
static int64 queue_resume = QUEUE_NO_RESUME;
static TimestampTz queue_from_start_at = 0;

/* When the last batch that applied something ended (see APPLY_PACE_MS). */
static TimestampTz last_applied_at = 0;

/* Did the last round leave more work (then it is no stream of changes)? */
static bool last_round_more = false;

/*
 * Lets changes gather for what is left of APPLY_PACE_MS since the last
 * batch: only under a steady stream, which keeps setting the latch (so the
 * latch cannot end this wait; a signal is seen right after).
 */
static void
apply_pace(void)
{
	long		waited_ms = (long) ((GetCurrentTimestamp() - last_applied_at) / 1000);

	if (!last_round_more && waited_ms >= 0 && waited_ms < APPLY_PACE_MS)
	{
		(void) WaitLatch(NULL, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 APPLY_PACE_MS - waited_ms, PG_WAIT_EXTENSION);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Applies one batch of queued changes.  Returns the number of queue
 * entries applied, or -1 after an error (logged and shown in the view).
 */
static int64
apply_batch(void)
{
	volatile int64 n = 0;
	CaptureRingKey *ring_keys = NULL;
	int			ring_n;

	/*
	 * The ring's entries first, then the snapshot: an entry is published
	 * once its transaction is visible, so the batch's snapshot sees it.
	 * The writers' wake-ups counted so far are answered by this batch.
	 */
	wakeups_note();
	ring_n = CaptureRingPeek(&ring_keys, segments_batch_size);
	PG_TRY();
	{
		Datum		arg = Int32GetDatum(segments_batch_size);
		Oid			argtype = INT4OID;
		bool		isnull;
		bool		truncated;
		Datum		keys = (Datum) 0;
		ArrayType  *queued;
		QueueTaken	taken;
		bool		queue_taken = false;
		RequestGuard guard;

		EvaluateInContacts = false;
		begin_xact("segments: applying changes");
		/*
		 * Not waiting for the WAL flush is safe: the batch leaves the queue
		 * and enters membership in one transaction, so a crash loses both
		 * or neither, and the entries come back to be applied again.
		 */
		(void) set_config_option("synchronous_commit", "off", PGC_SUSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
		HistorySetCause(HISTORY_CAUSE_CHANGE);	/* history */
		if (is_configured() && apply_isolating)
		{
			guard = guard_begin();
			set_state(SWS_APPLYING);
			/* the ring's entries join the queue, to be taken apart there */
			if (ring_n > 0)
				ring_to_queue(ring_keys, ring_n);
			n = apply_isolated();
			guard_end(&guard);
		}
		else if (is_configured())
		{
			guard = guard_begin();
			if (QueueTake(segments_batch_size, queue_resume,
						  TimestampDifferenceExceeds(queue_from_start_at, GetCurrentTimestamp(),
													 QUEUE_FROM_START_MS),
						  &taken))
			{
				n = taken.n;
				truncated = taken.whole_source;
				queued = taken.contacts;
				queue_taken = true;
			}
			else
			{
				/* the queue has a DBA's triggers or row security: SQL honours them */
				WorkerRun("WITH " DEQUEUE_IDS ","
					" batch AS (" DEQUEUE_OLDEST " RETURNING contact)"
					" SELECT pg_catalog.count(*),"
					"        coalesce(pg_catalog.bool_or(contact IS NULL), false),"
					"        pg_catalog.array_agg(contact) FILTER (WHERE contact IS NOT NULL)"
					"   FROM batch",
					1, &argtype, &arg, SPI_OK_SELECT);
				n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
				truncated = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
				keys = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
				queued = isnull ? NULL : DatumGetArrayTypeP(keys);
			}
			/* the ring's keys and the queue's, deduplicated */
			isnull = (ring_n == 0 && queued == NULL);
			if (!isnull)
				keys = PointerGetDatum(CaptureRingMergeKeys(ring_keys, ring_n,
															CatalogGet()->config.source_relid,
															queued));
			n += ring_n;
			if (n > 0)
			{
				set_state(SWS_APPLYING);
				if (truncated)
				{
					EvaluateRefresh(NULL, 0);
					SpinLockAcquire(&segments_shared->mutex);
					my_slot->stats.passes++;
					SpinLockRelease(&segments_shared->mutex);
				}
				else if (!isnull)
					EvaluateContacts(DatumGetArrayTypeP(keys), NULL);
				guard_end(&guard);
			}
		}
		commit_xact();
		/* applied (or, not configured, moot): the entries leave the ring */
		CaptureRingAdvance(ring_n);
		if (queue_taken)
		{
			/* the next batch reads the queue from where this one ended */
			queue_resume = taken.last_id;
			if (taken.from_start)
				queue_from_start_at = GetCurrentTimestamp();
		}
		apply_isolating = false;
	}
	PG_CATCH();
	{
		ErrorData  *edata = abort_xact();

		queue_resume = QUEUE_NO_RESUME; /* whatever the batch took is back */

		/*
		 * Transient, or the pass's own error (the source's shape, the
		 * configuration): the same batch again after a pause, the error
		 * shown meanwhile.  A contact's error: entry by entry.
		 */
		if (error_is_transient(edata) || !EvaluateInContacts)
			apply_failures++;
		else
			apply_isolating = true;
		n = -1;
	}
	PG_END_TRY();

	if (n >= 0)
		apply_failures = 0;
	if (n > 0)
	{
		last_applied_at = GetCurrentTimestamp();
		SpinLockAcquire(&segments_shared->mutex);
		my_slot->last_batch_at = last_applied_at;
		my_slot->last_batch_size = n;
		my_slot->changes_applied += n;
		my_slot->last_error[0] = '\0';
		my_slot->stats.changes_applied += n;
		my_slot->stats.batches++;
		SpinLockRelease(&segments_shared->mutex);
	}
	return n;
}

/* A uuid[] of ids, in the current memory context. */
static Datum
uuid_array(const pg_uuid_t *ids, int n)
{
	Datum	   *elems = palloc(Max(n, 1) * sizeof(Datum));
	ArrayType  *array;

	for (int i = 0; i < n; i++)
		elems[i] = UUIDPGetDatum(&ids[i]);
	array = construct_array(elems, n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR);
	pfree(elems);
	return PointerGetDatum(array);
}

/*
 * The chunked pass in progress (pass_chunked.c): its segments (uuid[] in
 * TopMemoryContext) and the time this worker spent in its chunks.  Known
 * at start from segments.pass, so that a pass interrupted by a crash is
 * resumed.
 */
static bool pass_active = false;
static Datum pass_ids = (Datum) 0;
static int	pass_nids = 0;
static int64 pass_spent_us = 0;	/* in its chunks, by this worker */

/*
 * Segments that timed out in a pass shared with others: each gets a pass
 * of its own next, and its own limit.
 */
static pg_uuid_t *solo_ids = NULL;	/* in TopMemoryContext */
static int	nsolo = 0;

static bool
solo_contains(const pg_uuid_t *id)
{
	for (int i = 0; i < nsolo; i++)
	{
		if (memcmp(&solo_ids[i], id, sizeof(pg_uuid_t)) == 0)
			return true;
	}
	return false;
}

static void
solo_remove(const pg_uuid_t *id)
{
	for (int i = 0; i < nsolo; i++)
	{
		if (memcmp(&solo_ids[i], id, sizeof(pg_uuid_t)) == 0)
		{
			solo_ids[i] = solo_ids[--nsolo];
			return;
		}
	}
}

/* Remembers the pass just started or found (ids: uuid[]). */
static void
pass_remember(Datum ids)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	ArrayType  *a;

	if (pass_ids != (Datum) 0)
		pfree(DatumGetPointer(pass_ids));
	pass_ids = PointerGetDatum(DatumGetArrayTypePCopy(ids));
	MemoryContextSwitchTo(old);
	a = DatumGetArrayTypeP(pass_ids);
	pass_nids = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
	pass_spent_us = 0;
	pass_active = true;
}

/*
 * Starts a pass of these segments (uuid[]) in the caller's transaction;
 * the caller marked the pending ones evaluating.
 */
static void
pass_begin(Datum ids)
{
	PassStart(ids);
	pass_remember(ids);
	/* no index rebuild beside it */
	MemberVacuumYieldToPass();
}

/* Counts a pass that ended (completed or failed) for the views. */
static void
pass_count(void)
{
	SpinLockAcquire(&segments_shared->mutex);
	my_slot->segments_evaluated += pass_nids;
	my_slot->stats.passes++;
	my_slot->stats.segments_evaluated += pass_nids;
	SpinLockRelease(&segments_shared->mutex);
}

/*
 * After an error in a pass (logged, transaction aborted): the pass ends,
 * and its segments are failed with the message, or left pending to be
 * retried soon after a transient error; segments that timed out together
 * get passes of their own.
 */
static void
pass_failed(ErrorData *edata)
{
	Oid			types[3] = {UUIDARRAYOID, TEXTOID, BOOLOID};
	Datum		values[3];
	char	   *message = edata->message;
	bool		transient;
	bool		isnull;
	int			n = pass_nids;

	values[0] = pass_ids;
	/* past evaluation_timeout: not transient, the same pass takes as long */
	transient = error_is_transient(edata) && !evaluation_timed_out;
	begin_xact("segments: recording a failure");
	if (evaluation_timed_out && n > 1)
	{
		ArrayType  *a = DatumGetArrayTypeP(pass_ids);
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		/* segments due together: each gets a pass of its own, and its own limit */
		solo_ids = solo_ids ? repalloc(solo_ids, (nsolo + n) * sizeof(pg_uuid_t))
			: palloc((nsolo + n) * sizeof(pg_uuid_t));
		MemoryContextSwitchTo(old);
		for (int i = 0; i < n; i++)
		{
			if (!solo_contains(&((pg_uuid_t *) ARR_DATA_PTR(a))[i]))
				solo_ids[nsolo++] = ((pg_uuid_t *) ARR_DATA_PTR(a))[i];
		}
		WorkerRun("UPDATE segments.segment_state SET state = 'pending'"
			" WHERE segment_id OPERATOR(pg_catalog.=) ANY ($1)"
			"   AND state OPERATOR(pg_catalog.=) ANY ('{evaluating,ready}'::pg_catalog.text[])",
			1, types, values, SPI_OK_UPDATE);
	}
	else
	{
		if (evaluation_timed_out)
		{
			message = psprintf("evaluation took longer than segments.evaluation_timeout (%s)",
							   GetConfigOptionByName("segments.evaluation_timeout", NULL, false));
			set_error(message);
			ereport(LOG, (errmsg("segments worker: %s; the segment is failed", message)));
		}

		/*
		 * A transient error leaves the segments pending and retries soon,
		 * four times; any other error, or a fifth, fails them closed: no
		 * membership granted until an evaluation succeeds, tried again
		 * later, less and less often.
		 */
		values[1] = CStringGetTextDatum(message);
		values[2] = BoolGetDatum(transient);
		WorkerRun(psprintf("WITH failure AS ("
					 "  UPDATE segments.segment_state SET"
					 "    state = CASE WHEN $3 AND attempts OPERATOR(pg_catalog.<) 4"
					 "                 THEN 'pending' ELSE 'failed' END,"
					 "    member_count = CASE WHEN $3 AND attempts OPERATOR(pg_catalog.<) 4"
					 "                        THEN member_count ELSE 0 END,"
					 "    retry_at = pg_catalog.now() OPERATOR(pg_catalog.+)"
					 "               segments._retry_after(attempts, $3 AND attempts OPERATOR(pg_catalog.<) 4),"
					 "    attempts = attempts OPERATOR(pg_catalog.+) 1,"
					 "    last_error = $2%s"
					 "   WHERE segment_id OPERATOR(pg_catalog.=) ANY ($1)"
					 "     AND state OPERATOR(pg_catalog.=) ANY ('{evaluating,ready}'::pg_catalog.text[])"
					 "  RETURNING segment_id, state)"
					 " SELECT coalesce(pg_catalog.array_agg(segment_id)"
					 "                 FILTER (WHERE state OPERATOR(pg_catalog.=) 'failed'), '{}')"
					 "   FROM failure",
					 StatsColumnsExist() ?
					 ", errors = errors OPERATOR(pg_catalog.+) 1,"
					 "  last_error_at = pg_catalog.now(), last_failure = $2" : ""),
			3, types, values, SPI_OK_SELECT);
		EvaluateFailClosed(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	PassAbandon();
	commit_xact();
}

/*
 * segments.evaluation_timeout bounds each segment's evaluation.  A pass of
 * N segments evaluates them together, and evaluating them one by one could
 * take as long as N limits: so a pass may take N times the limit (at 10
 * million contacts a pass of 900 new segments takes tens of minutes, and
 * split into 900 passes of one, each a scan of the source, it took hours).
 * It ends sooner, each of its segments then getting a pass of its own and
 * the limit alone (the slow one fails), once it has taken one limit and is
 * on course to take more than N, or when a single chunk, sized to take
 * under a second, takes a whole limit.  Counted: the time in the pass's
 * chunks (not the changes applied between them) since this worker took the
 * pass up (a resumed pass gets the limit anew).  Returns the time the next
 * chunk may take, 0 or less when the pass is over its limit.
 */
static int64
pass_time_left_ms(void)
{
	int64		limit_ms = (int64) segments_evaluation_timeout * Max(pass_nids, 1);
	int64		spent_ms = pass_spent_us / 1000;
	double		done = PassFractionDone();

	if (spent_ms >= segments_evaluation_timeout && done > 0 && spent_ms / done > limit_ms)
		return 0;
	return Min(limit_ms - spent_ms, (int64) segments_evaluation_timeout);
}

/*
 * Evaluates the next chunk of the pass in progress, in a transaction of
 * its own.  Returns whether a pass was in progress.
 */
static bool
pass_step(void)
{
	TimestampTz start = GetCurrentTimestamp();
	volatile PassOutcome outcome = PASS_NONE;

	if (!pass_active)
		return false;
	evaluation_timed_out = false;
	PG_TRY();
	{
		int64		n = 0;

		begin_xact("segments: evaluating segments");
		/*
		 * A chunk commits its writes and the pass's cursor together: a
		 * crash loses both or neither, and the pass resumes from the last
		 * chunk that reached the disk.  Not waiting for the flush of the
		 * chunk's WAL (megabytes of rewritten rows) saves the pass a disk
		 * wait per chunk.
		 */
		(void) set_config_option("synchronous_commit", "off", PGC_SUSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
		if (is_configured())
		{
			set_state(SWS_EVALUATING);
			HistorySetCause(HISTORY_CAUSE_EVALUATION);	/* history: for this chunk's transaction */
			if (segments_evaluation_timeout > 0)
			{
				int64		left_ms = pass_time_left_ms();

				if (left_ms <= 0)
				{
					evaluation_timed_out = true;
					elog(ERROR, "segments worker: evaluation timed out");
				}
				enable_timeout_after(evaluation_timer, (int) Min(left_ms, INT_MAX));
			}
			MemberBulkKeepArrays(true); /* chunk after chunk */
			outcome = PassChunk(segments_pass_chunk_size, PASS_CHUNK_BUDGET_MS, &n);
			disable_timeout(evaluation_timer, false);
			/* the limit passed, even if nothing noticed the cancel in time */
			if (evaluation_timed_out)
				elog(ERROR, "segments worker: evaluation timed out");
		}
		else
			PassAbandon();		/* unconfigured: configure() evaluates anew */
		commit_xact();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		disable_timeout(evaluation_timer, false);
		if (evaluation_timed_out)
			QueryCancelPending = false; /* the cancel was ours: not for the next step */
		ChunkHelperEnd(true);	/* wherever it is */
		MemberBulkKeepArrays(false);
		edata = abort_xact();
		outcome = PASS_DONE;	/* ended, counted */
		PG_TRY();
		{
			pass_failed(edata);
		}
		PG_CATCH();
		{
			/*
			 * Recording the failure failed too (failing closed needs the
			 * membership lock): the pass ends all the same, its segments
			 * pending, retried in 30 s, rather than a worker that exits and
			 * resumes the same pass again.
			 */
			Oid			type = UUIDARRAYOID;
			Datum		ids = pass_ids;

			(void) abort_xact();
			begin_xact("segments: ending a failed pass");
			PassAbandon();
			WorkerRun("UPDATE segments.segment_state"
				"   SET retry_at = pg_catalog.now() OPERATOR(pg_catalog.+) '30 s'::pg_catalog.interval"
				" WHERE segment_id OPERATOR(pg_catalog.=) ANY ($1)"
				"   AND state OPERATOR(pg_catalog.=) 'pending'",
				1, &type, &ids, SPI_OK_UPDATE);
			commit_xact();
		}
		PG_END_TRY();
	}
	PG_END_TRY();
	/* a timer that fired as the chunk ended must not cancel later work */
	if (evaluation_timed_out)
	{
		evaluation_timed_out = false;
		QueryCancelPending = false;
	}

	pass_spent_us += GetCurrentTimestamp() - start;
	SpinLockAcquire(&segments_shared->mutex);
	my_slot->stats.evaluation_ms += (GetCurrentTimestamp() - start) / 1000.0;
	SpinLockRelease(&segments_shared->mutex);
	if (outcome != PASS_CONTINUES)
	{
		ChunkHelperEnd(false);
		MemberBulkKeepArrays(false);
		if (outcome == PASS_DONE)
			pass_count();
		pass_active = false;
	}
	return true;
}

/*
 * Pending segments whose first evaluation waits for writers in flight
 * (writers.c): one wait covers every pending request it saw when it began
 * (by id and requested_at: a new request, by update_segment, waits anew).
 */
static bool wait_active = false;
static WriterWait pending_wait;
static MemoryContext wait_cxt = NULL;	/* the wait and what it covers */
static pg_uuid_t *wait_ids;
static TimestampTz *wait_requested;
static int	wait_n;

/* Does the wait cover this request? */
static bool
wait_covers(const pg_uuid_t *id, TimestampTz requested_at)
{
	for (int i = 0; i < wait_n; i++)
	{
		if (wait_requested[i] == requested_at && memcmp(&wait_ids[i], id, sizeof(pg_uuid_t)) == 0)
			return true;
	}
	return false;
}

/*
 * Takes every pending segment whose writers in flight have ended into one
 * new pass (a segment that timed out in a shared pass: alone).  Returns
 * false when none could be taken.
 */
static bool
evaluate_pending(long *sleep_ms)
{
	bool		started = false;

	begin_xact("segments: taking pending segments");
	if (is_configured())
	{
		bool		isnull;
		Datum		d;
		SPITupleTable *candidates;
		uint64		ncandidates;

		/* failed segments are tried again when due: the cause may have gone */
		WorkerRun("UPDATE segments.segment_state SET state = 'pending'"
			" WHERE state OPERATOR(pg_catalog.=) 'failed'"
			"   AND retry_at OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp()",
			0, NULL, NULL, SPI_OK_UPDATE);
		/* segments waiting to be retried wake the worker when due */
		WorkerRun("SELECT pg_catalog.date_part('epoch', pg_catalog.min(retry_at) OPERATOR(pg_catalog.-)"
			"                                    pg_catalog.clock_timestamp())"
			"  FROM segments.segment_state"
			" WHERE state OPERATOR(pg_catalog.=) ANY ('{pending,failed}'::pg_catalog.text[])"
			"   AND retry_at OPERATOR(pg_catalog.>) pg_catalog.clock_timestamp()",
			0, NULL, NULL, SPI_OK_SELECT);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
			*sleep_ms = Min(*sleep_ms, (long) (DatumGetFloat8(d) * 1000) + 1);
		WorkerRun("SELECT segment_id, requested_at FROM segments.segment_state"
			" WHERE state OPERATOR(pg_catalog.=) 'pending'"
			"   AND (retry_at IS NULL OR retry_at OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp())"
			" ORDER BY requested_at, segment_id",
			0, NULL, NULL, SPI_OK_SELECT);
		candidates = SPI_tuptable;
		ncandidates = SPI_processed;
		if (ncandidates > 0 && !wait_active)
		{
			if (wait_cxt == NULL)
				wait_cxt = AllocSetContextCreate(TopMemoryContext, "segments writer wait",
												 ALLOCSET_SMALL_SIZES);
			MemoryContextReset(wait_cxt);
			wait_ids = MemoryContextAlloc(wait_cxt, ncandidates * sizeof(pg_uuid_t));
			wait_requested = MemoryContextAlloc(wait_cxt, ncandidates * sizeof(TimestampTz));
			for (uint64 r = 0; r < ncandidates; r++)
			{
				memcpy(&wait_ids[r], DatumGetUUIDP(SPI_getbinval(candidates->vals[r],
																 candidates->tupdesc, 1, &isnull)),
					   sizeof(pg_uuid_t));
				wait_requested[r] = DatumGetTimestampTz(SPI_getbinval(candidates->vals[r],
																	  candidates->tupdesc, 2, &isnull));
			}
			wait_n = (int) ncandidates;
			WritersBegin(&pending_wait, wait_cxt, true);
			wait_active = true;
		}
		if (ncandidates > 0 && !WritersDone(&pending_wait, CatalogGet()->config.source_relid, false))
			*sleep_ms = Min(*sleep_ms, 100);	/* poll again soon; changes meanwhile */
		else if (ncandidates > 0)
		{
			Datum	   *ids = palloc(ncandidates * sizeof(Datum));
			Datum	   *requested = palloc(ncandidates * sizeof(Datum));
			int			n = 0;
			bool		alone = false;
			Oid			types[2] = {UUIDARRAYOID, get_array_type(TIMESTAMPTZOID)};
			Datum		values[2];

			wait_active = false;
			for (uint64 r = 0; r < ncandidates && !alone; r++)
			{
				Datum		id = SPI_getbinval(candidates->vals[r], candidates->tupdesc, 1, &isnull);
				Datum		req = SPI_getbinval(candidates->vals[r], candidates->tupdesc, 2, &isnull);
				bool		solo = solo_contains(DatumGetUUIDP(id));

				if (!wait_covers(DatumGetUUIDP(id), DatumGetTimestampTz(req)) || (solo && n > 0))
					continue;
				if (solo)
				{
					solo_remove(DatumGetUUIDP(id));
					alone = true;
				}
				ids[n] = id;
				requested[n++] = req;
			}
			if (n > 0)
			{
				values[0] = PointerGetDatum(construct_array(ids, n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
				values[1] = PointerGetDatum(construct_array(requested, n, TIMESTAMPTZOID, sizeof(TimestampTz),
															FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
				/*
				 * A row locked by a transaction still open (one that changes
				 * the segment again, which the wait skips: writers.c) is
				 * left pending, not waited for: it gets a new requested_at
				 * and a wait of its own once that transaction commits.
				 */
				WorkerRun("UPDATE segments.segment_state st SET state = 'evaluating'"
					"  FROM (SELECT s.segment_id FROM segments.segment_state s,"
					"          ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS c(id, requested_at)"
					"         WHERE s.segment_id OPERATOR(pg_catalog.=) c.id"
					"           AND s.requested_at OPERATOR(pg_catalog.=) c.requested_at"
					"           AND s.state OPERATOR(pg_catalog.=) 'pending'"
					"           FOR UPDATE OF s SKIP LOCKED) k"
					" WHERE st.segment_id OPERATOR(pg_catalog.=) k.segment_id"
					" RETURNING st.segment_id",
					2, types, values, SPI_OK_UPDATE_RETURNING);
				if (SPI_processed > 0)
				{
					Datum	   *taken = palloc(SPI_processed * sizeof(Datum));

					for (uint64 r = 0; r < SPI_processed; r++)
						taken[r] = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull);
					pass_begin(PointerGetDatum(construct_array(taken, (int) SPI_processed, UUIDOID,
															   UUID_LEN, false, TYPALIGN_CHAR)));
					started = true;
				}
			}
		}
	}
	commit_xact();
	return started;
}

/* Longest passage of time looked up by contacts; beyond it, full passes. */
#define MAX_TIME_WINDOW_US	(10 * 60 * USECS_PER_SEC)

/* Time flips are applied up to here; 0 before the first window. */
static TimestampTz time_window_end = 0;

/* Some segment reads the time: an idle worker wakes for the next window. */
static bool have_time_segments = false;

/*
 * Pause between windows: time_resolution, or ten times the last window's
 * duration when longer (a source without an index on its time columns is
 * scanned by each window), so windows take at most a tenth of the worker.
 */
static int64 time_window_pause_us = 0;

/*
 * During a pass, windows are spaced this many times further (the pause,
 * not time_resolution): each looks its contacts up in the source with a
 * plan of its own, and windows took 8% of a pass of 100 new segments at
 * 1,000,000 contacts run every time_resolution (spaced so, 0.5%).
 */
#define PASS_WINDOW_SPACING	4

/* A window in progress: flips in [from, to], looked up chunk by chunk. */
#define WINDOW_CHUNK	50000
static bool window_active = false;
static TimestampTz window_from;
static TimestampTz window_to;
static Datum window_cursor;
static bool window_has_cursor = false;
static int64 window_busy_us;	/* time spent on its chunks */
static MemoryContext window_cxt = NULL; /* holds the cursor */

/*
 * A sweep in progress: time-dependent segments the window cannot serve,
 * re-evaluated contact by contact in chunks (time_window.c).
 */
#define SWEEP_CHUNK		5000
static bool sweep_active = false;
static Datum sweep_cursor;
static bool sweep_has_cursor = false;
static Datum sweep_ids;			/* uuid[] in TopMemoryContext */
static TimestampTz sweep_started;
static MemoryContext sweep_cxt = NULL;	/* holds the cursor */

/* Time-dependent segments the window cannot serve: re-evaluated whole. */
static Datum unwindowable_ids = (Datum) 0;	/* uuid[] in TopMemoryContext */

/*
 * Applies the passage of time since the last window: the contacts whose
 * time conditions may have flipped are re-evaluated through the
 * incremental path (time_window.c).  After a long pause (or at start, when
 * segments were evaluated long ago) the time-dependent segments are set
 * pending instead, for a full evaluation.  Sets *sleep_ms to the time until
 * the next window.  Returns whether it did anything.
 */
static bool
apply_time_window(long *sleep_ms)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz due = time_window_end +
		Max((int64) segments_time_resolution * 1000,
			time_window_pause_us * (pass_active ? PASS_WINDOW_SPACING : 1));
	volatile bool worked = false;
	int64		lock_wait_before = EvaluateLockWaitUs;

	if (!window_active && time_window_end != 0 && now < due)
	{
		if (have_time_segments)
			*sleep_ms = Min(*sleep_ms, (long) ((due - now) / 1000) + 1);
		return false;
	}
	PG_TRY();
	{
		int			n;
		pg_uuid_t  *ids;
		int			nwindowed;
		pg_uuid_t  *windowed;
		ArrayType  *keys;
		bool		done;
		MemoryContext old;

		begin_xact("segments: applying the passage of time");
		HistorySetCause(HISTORY_CAUSE_TIME);	/* history */
		if (!window_active)
		{
			bool		isnull;

			window_to = GetCurrentTransactionStartTimestamp();
			window_from = time_window_end;
			window_busy_us = 0;
			/* a refresh() evaluated at an older instant: cover the flips since */
			{
				TimestampTz rewind = SharedTakeTimeRewind();

				if (rewind != 0 && window_from != 0 && rewind < window_from)
					window_from = Min(rewind, window_to);
			}
			have_time_segments = false;
			if (is_configured())
			{
				WorkerRun("SELECT EXISTS (SELECT 1 FROM segments.segment WHERE uses_time)",
					0, NULL, NULL, SPI_OK_SELECT);
				have_time_segments = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
																SPI_tuptable->tupdesc, 1, &isnull));
			}
			if (have_time_segments && window_from == 0)
			{
				Datum		d;

				/* flips since the oldest evaluation of a time-dependent segment */
				WorkerRun("SELECT pg_catalog.min(st.evaluated_at) FROM segments.segment_state st"
					"  JOIN segments.segment s ON s.id OPERATOR(pg_catalog.=) st.segment_id"
					" WHERE s.uses_time AND st.state OPERATOR(pg_catalog.=) 'ready'",
					0, NULL, NULL, SPI_OK_SELECT);
				d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
				window_from = isnull ? window_to : Min(DatumGetTimestampTz(d), window_to);
			}
			if (!have_time_segments)
				window_from = window_to;	/* nothing to look up */
			else if (window_to - window_from > MAX_TIME_WINDOW_US)
			{
				WorkerRun("UPDATE segments.segment_state st SET state = 'pending',"
					"       requested_at = pg_catalog.now()"
					"  FROM segments.segment s"
					" WHERE s.id OPERATOR(pg_catalog.=) st.segment_id"
					"   AND s.uses_time AND st.state OPERATOR(pg_catalog.=) 'ready'",
					0, NULL, NULL, SPI_OK_UPDATE);
				worked = SPI_processed > 0;
				window_from = window_to;
			}
			else
			{
				if (window_cxt == NULL)
					window_cxt = AllocSetContextCreate(TopMemoryContext, "segments time window",
													   ALLOCSET_SMALL_SIZES);
				MemoryContextReset(window_cxt);
				window_has_cursor = false;
				window_active = true;
			}
		}
		if (window_active)
		{
			keys = TimeWindowCandidates(window_from, window_to, &window_cursor,
										&window_has_cursor, &done, WINDOW_CHUNK, window_cxt,
										&nwindowed, &windowed, &n, &ids);
			if (keys != NULL)
			{
				set_state(SWS_APPLYING);
				/* the time-dependent segments: what passing time can flip */
				EvaluateContactsOf(keys, NULL, windowed, nwindowed);
			}
			worked = true;
			old = MemoryContextSwitchTo(TopMemoryContext);
			if (unwindowable_ids != (Datum) 0)
				pfree(DatumGetPointer(unwindowable_ids));
			unwindowable_ids = uuid_array(ids, n);
			MemoryContextSwitchTo(old);
			if (done)
				window_active = false;
		}
		commit_xact();
		/* waiting for a lock is not work: it must not space windows out */
		window_busy_us += Max(GetCurrentTimestamp() - now - (EvaluateLockWaitUs - lock_wait_before), 0);
		if (!window_active)
		{
			time_window_end = window_to;
			time_window_pause_us = 10 * window_busy_us;
			SpinLockAcquire(&segments_shared->mutex);
			my_slot->time_applied_until = have_time_segments ? time_window_end : 0;
			if (have_time_segments)
				my_slot->stats.time_windows++;
			SpinLockRelease(&segments_shared->mutex);
		}
	}
	PG_CATCH();
	{
		abort_xact();
		window_active = false;	/* start again from the same instant */
	}
	PG_END_TRY();
	if (have_time_segments)
		*sleep_ms = Min(*sleep_ms, (long) segments_time_resolution);
	return worked;
}

/*
 * Sweeps the next chunk of contacts for the segments of the sweep in
 * progress; at the end, records the sweep as their evaluation.  Returns
 * whether a sweep was in progress.
 */
static bool
sweep_step(void)
{
	if (!sweep_active)
		return false;
	PG_TRY();
	{
		int			n;

		begin_xact("segments: sweeping time-dependent segments");
		HistorySetCause(HISTORY_CAUSE_TIME);	/* history */
		set_state(SWS_EVALUATING);
		n = TimeSweepChunk(sweep_ids, &sweep_cursor, &sweep_has_cursor, SWEEP_CHUNK, sweep_cxt);
		if (n == 0)
		{
			Oid			types[2] = {UUIDARRAYOID, TIMESTAMPTZOID};
			Datum		values[2] = {sweep_ids, TimestampTzGetDatum(sweep_started)};

			WorkerRun(StatsColumnsExist() ?
				"UPDATE segments.segment_state"
				"   SET evaluated_at = $2,"
				"       last_duration = pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) $2,"
				"       evaluations = evaluations OPERATOR(pg_catalog.+) 1,"
				"       evaluation_time = evaluation_time OPERATOR(pg_catalog.+)"
				"         (pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) $2)"
				"          OPERATOR(pg_catalog.*) 1000)"
				" WHERE segment_id OPERATOR(pg_catalog.=) ANY ($1) AND state OPERATOR(pg_catalog.=) 'ready'" :
				"UPDATE segments.segment_state"
				"   SET evaluated_at = $2,"
				"       last_duration = pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) $2"
				" WHERE segment_id OPERATOR(pg_catalog.=) ANY ($1) AND state OPERATOR(pg_catalog.=) 'ready'",
				2, types, values, SPI_OK_UPDATE);
			sweep_active = false;
		}
		commit_xact();
		if (!sweep_active)
		{
			SpinLockAcquire(&segments_shared->mutex);
			my_slot->stats.sweeps++;
			SpinLockRelease(&segments_shared->mutex);
		}
	}
	PG_CATCH();
	{
		abort_xact();
		sweep_active = false;	/* the segments come due again */
	}
	PG_END_TRY();
	return true;
}

/* Starts a sweep of these segments (uuid[]) from the first contact. */
static void
sweep_start(const pg_uuid_t *ids, int n)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	if (sweep_ids != (Datum) 0)
		pfree(DatumGetPointer(sweep_ids));
	sweep_ids = uuid_array(ids, n);
	MemoryContextSwitchTo(old);
	if (sweep_cxt == NULL)
		sweep_cxt = AllocSetContextCreate(TopMemoryContext, "segments sweep",
										  ALLOCSET_SMALL_SIZES);
	MemoryContextReset(sweep_cxt);	/* the previous sweep's cursor */
	sweep_has_cursor = false;
	sweep_started = GetCurrentTimestamp();
	sweep_active = true;
}

/*
 * Re-evaluates ready segments that are due: time-dependent rules that the
 * time window cannot serve every segments.time_resolution, scheduled ones
 * every schedule.
 * Sets *sleep_ms to the time until the next one is due (when sooner).
 * Returns whether it evaluated anything.
 */
static bool
evaluate_due(long *sleep_ms)
{
	Oid			types[2] = {INTERVALOID, UUIDARRAYOID};
	Datum		values[2];
	Interval   *resolution = palloc0(sizeof(Interval));
	pg_uuid_t  *due = NULL;
	int			ndue = 0;
	pg_uuid_t  *sweep = NULL;
	int			nsweep = 0;

	resolution->time = (int64) segments_time_resolution * 1000;
	values[0] = IntervalPGetDatum(resolution);
	values[1] = unwindowable_ids != (Datum) 0 ? unwindowable_ids
		: PointerGetDatum(construct_empty_array(UUIDOID));

	begin_xact("segments: looking for due segments");
	if (is_configured())
	{
		/*
		 * A whole re-evaluation for the time comes every time_resolution, or
		 * ten times its last duration if longer, so that large sources do
		 * not keep the worker busy; segments due together share one pass.
		 */
		WorkerRun("SELECT st.segment_id,"
			"       pg_catalog.date_part('epoch',"
			"         LEAST(CASE WHEN s.uses_time AND s.id OPERATOR(pg_catalog.=) ANY ($2)"
			"                    THEN st.evaluated_at OPERATOR(pg_catalog.+)"
			"                         GREATEST($1, st.last_duration OPERATOR(pg_catalog.*) 10::pg_catalog.float8) END,"
			"               st.evaluated_at OPERATOR(pg_catalog.+) s.schedule)"
			"         OPERATOR(pg_catalog.-) pg_catalog.clock_timestamp()),"
			"       s.schedule IS NULL"
			"  FROM segments.segment s"
			"  JOIN segments.segment_state st ON st.segment_id OPERATOR(pg_catalog.=) s.id"
			" WHERE st.state OPERATOR(pg_catalog.=) 'ready'"
			"   AND ((s.uses_time AND s.id OPERATOR(pg_catalog.=) ANY ($2)) OR s.schedule IS NOT NULL)"
			" ORDER BY 2",
			2, types, values, SPI_OK_SELECT);
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull);
			double		seconds = isnull ? 0 : DatumGetFloat8(d);

			if (r == 0 && seconds > 0)
			{
				*sleep_ms = Min(*sleep_ms, (long) (seconds * 1000) + 1);
				break;
			}
			if (seconds * 1000 > segments_time_resolution)
				break;			/* not due yet, nor soon */
			if (due == NULL)
			{
				due = MemoryContextAlloc(round_cxt, SPI_processed * sizeof(pg_uuid_t));
				sweep = MemoryContextAlloc(round_cxt, SPI_processed * sizeof(pg_uuid_t));
			}
			/* due for the time only: swept in chunks; for a schedule: one pass */
			if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 3, &isnull)))
			{
				if (!sweep_active)
					memcpy(&sweep[nsweep++], DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[r],
																		 SPI_tuptable->tupdesc, 1, &isnull)),
						   sizeof(pg_uuid_t));
				continue;
			}
			memcpy(&due[ndue++], DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[r],
															 SPI_tuptable->tupdesc, 1, &isnull)),
				   sizeof(pg_uuid_t));
		}
		/* scheduled segments stay ready, rewritten chunk by chunk */
		if (ndue > 0)
			pass_begin(uuid_array(due, ndue));
	}
	commit_xact();
	if (nsweep > 0)
		sweep_start(sweep, nsweep);
	return ndue > 0 || nsweep > 0;
}

/*
 * Whether the source can be worked on, checked at the start of every round
 * (the checks of the C paths, catalog.c, and the capture triggers):
 *   - not configured: nothing to do;
 *   - configured but unusable (a column or the table gone, the key's type
 *     changed: DDL that bypassed the event triggers): every segment is
 *     failed with the reason and grants nothing (membership cleared) until
 *     it is fixed, when they are evaluated again;
 *   - capture triggers missing or disabled (a restore has not created them
 *     yet, or they were dropped): segments wait, pending, since changes are
 *     not seen.
 * The reason is logged once, when it changes, and shown in segments.worker.
 */
#define SOURCE_FAILED_PREFIX "the contact source cannot be used: "
static char source_problem[SEGMENTS_ERROR_LEN] = "";
static bool source_ok_seen = false;

static bool
source_check(void)
{
	SegmentsConfig config;
	char	   *problem = NULL;
	bool		waiting = false;
	bool		isnull;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	char	   *dbname;

	begin_xact("segments: checking the contact source");
	CatalogLoadConfig(&config);
	xact_source_relid = config.has_row ? config.source_relid : InvalidOid;
	if (!config.has_row)
	{
		commit_xact();
		if (source_problem[0] != '\0')
			clear_error();
		source_problem[0] = '\0';
		return false;
	}
	/*
	 * Missing capture comes first: a restore loads the configuration, then
	 * the rows, the key's index and the triggers last.
	 */
	if (get_rel_name(config.source_relid) != NULL)
	{
		WorkerRun("SELECT pg_catalog.count(*) FROM pg_catalog.pg_trigger t"
			" WHERE t.tgrelid OPERATOR(pg_catalog.=) (SELECT c.source FROM segments.config c)"
			"   AND t.tgfoid OPERATOR(pg_catalog.=) 'segments._capture()'::pg_catalog.regprocedure"
			"   AND t.tgparentid OPERATOR(pg_catalog.=) 0"
			"   AND t.tgenabled OPERATOR(pg_catalog.=) ANY ('{O,A}'::pg_catalog.\"char\"[])",
			0, NULL, NULL, SPI_OK_SELECT);
		if (DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
										&isnull)) < 2)
		{
			waiting = true;
			problem = psprintf("change capture is not installed or is disabled on %s: segments wait for it",
							   get_rel_name(config.source_relid));
		}
	}
	if (problem == NULL && config.problem != NULL)
		problem = psprintf(SOURCE_FAILED_PREFIX "%s", config.problem);

	if (problem == NULL)
	{
		/* usable again: what failed for the source's sake is evaluated again */
		if (!source_ok_seen || source_problem[0] != '\0')
		{
			WorkerRun("UPDATE segments.segment_state"
				"   SET state = 'pending', requested_at = pg_catalog.clock_timestamp()"
				" WHERE state OPERATOR(pg_catalog.=) 'failed'"
				"   AND last_error OPERATOR(pg_catalog.~~) '" SOURCE_FAILED_PREFIX "%'",
				0, NULL, NULL, SPI_OK_UPDATE);
			if (source_problem[0] != '\0')
				ereport(LOG,
						(errmsg("segments worker for database \"%s\": the contact source can be used again",
								get_database_name(MyDatabaseId))));
			source_problem[0] = '\0';
			source_ok_seen = true;
			clear_error();
		}
		CitusNodesCheck(config.source_relid);	/* Citus: a node that joined (citus.c) */
		commit_xact();
		return true;
	}

	values[0] = CStringGetTextDatum(problem);
	if (waiting)
		WorkerRun("UPDATE segments.segment_state"
			"   SET state = 'pending', last_error = $1,"
			"       requested_at = CASE WHEN state OPERATOR(pg_catalog.=) 'ready'"
			"                      THEN pg_catalog.clock_timestamp()"
			"                      ELSE requested_at END"
			" WHERE state OPERATOR(pg_catalog.=) ANY ('{ready,pending}'::pg_catalog.text[])"
			"   AND last_error IS DISTINCT FROM $1",
			1, types, values, SPI_OK_UPDATE);
	else
	{
		WorkerRun("UPDATE segments.segment_state"
			"   SET state = 'failed', last_error = $1, member_count = 0"
			" WHERE state OPERATOR(pg_catalog.<>) 'failed' OR last_error IS DISTINCT FROM $1",
			1, types, values, SPI_OK_UPDATE);
		/* a failed segment grants nothing */
		if (SPI_processed > 0 && OidIsValid(config.member_relid))
		{
			HistorySetCause(HISTORY_CAUSE_FAILED);	/* history */
			MemberLockWriters(config.member_relid);
			WorkerRun("DELETE FROM segments.member", 0, NULL, NULL, SPI_OK_DELETE);
		}
	}
	/* what is logged after the commit lives in the round's context */
	problem = MemoryContextStrdup(round_cxt, problem);
	dbname = MemoryContextStrdup(round_cxt, get_database_name(MyDatabaseId));
	commit_xact();
	if (strncmp(problem, source_problem, sizeof(source_problem) - 1) != 0)
	{
		ereport(waiting ? LOG : WARNING,
				(errmsg("segments worker for database \"%s\": %s", dbname, problem),
				 waiting ? errhint("A restore creates the triggers last; otherwise call segments.configure() again.")
				 : errhint("Restore the source table's shape, or call segments.configure() again.")));
		strlcpy(source_problem, problem, sizeof(source_problem));
	}
	set_error(problem);
	return false;
}

/* source_check, an error (logged) counting as "not now". */
static bool
source_usable(void)
{
	volatile bool usable = false;

	PG_TRY();
	{
		usable = source_check();
	}
	PG_CATCH();
	{
		abort_xact();
		usable = false;
	}
	PG_END_TRY();
	return usable;
}

/*
 * History: recorded membership changes older than
 * segments.history_retention go, TRIM_BATCH at a time, every
 * TRIM_INTERVAL_MS, or again at once after a full batch (history.c).
 * Returns whether more may be due.
 */
#define TRIM_BATCH 10000
#define TRIM_INTERVAL_MS 10000

static TimestampTz history_trimmed_at = 0;

static bool
trim_history(void)
{
	volatile int64 n = 0;

	if (segments_history_retention <= 0 ||
		!TimestampDifferenceExceeds(history_trimmed_at, GetCurrentTimestamp(), TRIM_INTERVAL_MS))
		return false;
	PG_TRY();
	{
		begin_xact("segments: trimming membership history");
		n = HistoryTrim(TRIM_BATCH);
		commit_xact();
	}
	PG_CATCH();
	{
		(void) abort_xact();
	}
	PG_END_TRY();
	if (n < TRIM_BATCH)
		history_trimmed_at = GetCurrentTimestamp();
	return n >= TRIM_BATCH;
}

/*
 * One step of removing dropped segments' numbers from stored rows
 * (member_strip.c), when there is nothing more urgent.
 */
static bool
strip_step(void)
{
	volatile bool more = false;

	if (!MemberStripDue())
		return false;
	PG_TRY();
	{
		begin_xact("segments: removing dropped segments from membership");
		if (is_configured())
			more = MemberStripStep();
		commit_xact();
	}
	PG_CATCH();
	{
		(void) abort_xact();
	}
	PG_END_TRY();
	return more;
}

/*
 * segments.member is vacuumed (member_vacuum.c) once enough of its rows
 * were replaced: looked at, at most this often, between the worker's
 * transactions.
 */
#define VACUUM_CHECK_MS		500

static TimestampTz vacuum_checked_at = 0;

/*
 * The vacuum runs beside the worker, in a process of its own, and takes
 * a core while it does: the next one starts at least ten times the last
 * one's duration after it ended, so that vacuums take at most about a
 * tenth of a core, whatever the table's size.
 */
static TimestampTz vacuum_next_at = 0;

/*
 * Starts the vacuum of segments.member when due and none runs.  Never
 * waits for it: changes go on being applied while it runs.
 */
static void
vacuum_step(void)
{
	volatile bool due = false;
	int64		ran;

	if (MemberVacuumRunning(&ran))
		return;
	if (ran > 0)
		vacuum_next_at = GetCurrentTimestamp() + 10 * ran;
	if (segments_member_vacuum_scale_factor <= 0 ||
		!TimestampDifferenceExceeds(vacuum_checked_at, GetCurrentTimestamp(), VACUUM_CHECK_MS))
		return;
	vacuum_checked_at = GetCurrentTimestamp();
	/* the rows this worker replaced count: its statistics, flushed */
	(void) pgstat_report_stat(true);
	PG_TRY();
	{
		Oid			relid = InvalidOid;

		begin_xact("segments: looking for replaced membership rows");
		if (is_configured())
		{
			bool		pending = pass_active;

			relid = CatalogGet()->config.member_relid;
			/* a pass about to start counts as running: no index rebuild then */
			if (!pending)
			{
				bool		isnull;

				WorkerRun("SELECT EXISTS (SELECT 1 FROM segments.segment_state"
					"  WHERE state OPERATOR(pg_catalog.=) ANY ('{pending,evaluating}'::pg_catalog.text[]))",
					0, NULL, NULL, SPI_OK_SELECT);
				pending = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
			}
			/* an index rebuild does not wait for the vacuums' pacing */
			due = MemberVacuumDue(relid, pending, GetCurrentTimestamp() < vacuum_next_at);
		}
		commit_xact();
		/* no free background worker slot: again in 5 s (logged once) */
		if (due && !MemberVacuumStart(relid))
			vacuum_next_at = GetCurrentTimestamp() + 10 * VACUUM_CHECK_MS * 1000L;
	}
	PG_CATCH();
	{
		(void) abort_xact();
	}
	PG_END_TRY();
}

/*
 * The ring of captured changes (capture_ring.c).  ring_open: this worker
 * claimed its database's ring and opened it to writers.
 */
static bool ring_open = false;
static bool ring_tried = false;

/*
 * SIGTERM: with a ring, the worker ends between rounds, after a clean drain.
 * The postmaster signals a child twice at once (kill() of its pid and of its
 * process group), so a SIGTERM within SHUTDOWN_AGAIN_S of the first is the
 * same request; one that comes later asks to end at once (die()).
 */
#define SHUTDOWN_AGAIN_S 2
static volatile sig_atomic_t shutdown_requested = false;
static volatile time_t shutdown_requested_at = 0;

static void
worker_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;
	time_t		now = time(NULL);	/* async-signal-safe */

	if (!CaptureRingClaimed() ||
		(shutdown_requested && now - shutdown_requested_at >= SHUTDOWN_AGAIN_S))
		die(postgres_signal_arg);	/* as PostgreSQL's own workers */
	else
	{
		if (!shutdown_requested)
			shutdown_requested_at = now;
		shutdown_requested = true;
		SetLatch(MyLatch);
	}
	errno = save_errno;
}

/*
 * Claims the database's ring and opens it.  A fresh ring (the first since
 * the server started, or a crash: shared memory is new) finding
 * segments.capture_state.clean false means that entries of a ring may have
 * been lost: every ready segment is evaluated again, by a full pass (its
 * requested_at kept, so that a wait() begun before counts it).  clean is
 * set false, committed, before writers may use the ring.  Without a ring
 * (rings off, or all taken) clean is set true after that recovery.
 */
static void
ring_start(void)
{
	bool		fresh = false;
	bool		claimed;
	volatile bool ok = false;

	ring_tried = true;
	/* a claim repeated after this check failed is still fresh (capture_ring.c) */
	claimed = CaptureRingClaim(MyLatch, &fresh);
	PG_TRY();
	{
		bool		isnull;
		bool		clean;

		begin_xact("segments: opening change capture");
		/* without it, the extension's SQL is older than the library */
		if (OidIsValid(CatalogRelid("capture_state", true)))
		{
			WorkerRun("SELECT clean FROM segments.capture_state", 0, NULL, NULL, SPI_OK_SELECT);
			clean = (SPI_processed == 0 ||
					 DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
												1, &isnull)));
			if (!clean && (!claimed || fresh))
			{
				WorkerRun("UPDATE segments.segment_state SET state = 'pending'"
					" WHERE state OPERATOR(pg_catalog.=) 'ready'",
					0, NULL, NULL, SPI_OK_UPDATE);
				ereport(LOG,
						(errmsg("segments worker for database \"%s\": changes captured in shared memory may have been lost (crash or failover); every segment is evaluated again",
								get_database_name(MyDatabaseId))));

				/*
				 * The pass resumed by reset_evaluating() is no exception:
				 * its segments took the changes of contacts it had visited
				 * from the ring too (pass_chunked.c), so a change lost with
				 * the ring left such a contact as the chunk before it saw
				 * it, and resuming from the cursor never visits it again.
				 * The pass starts over from the first contact (its segments
				 * and their requests unchanged).
				 */
				if (OidIsValid(CatalogRelid("pass", true)))
				{
					WorkerRun("UPDATE segments.pass SET cursor = NULL, contacts_done = 0"
						" WHERE cursor IS NOT NULL",
						0, NULL, NULL, SPI_OK_UPDATE);
					if (SPI_processed > 0)
						ereport(LOG,
								(errmsg("segments worker for database \"%s\": the evaluation pass in progress starts over from the first contact",
										get_database_name(MyDatabaseId))));
				}
			}
			WorkerRun(claimed ?
				"UPDATE segments.capture_state SET clean = false,"
				"       watermark = pg_catalog.clock_timestamp()" :
				"UPDATE segments.capture_state SET clean = true"
				" WHERE NOT clean",
				0, NULL, NULL, SPI_OK_UPDATE);
			ok = claimed;
		}
		commit_xact();
	}
	PG_CATCH();
	{
		(void) abort_xact();
		ok = false;
		ring_tried = false;		/* again next round */
	}
	PG_END_TRY();
	if (ok)
	{
		CaptureRingOpen();
		ring_open = true;
	}
}

/*
 * A clean exit: closes the ring to writers, waits (at most 5 s) for the
 * transactions that reserved slots, moves what is left into
 * segments.change_queue and records clean = true, in one transaction.
 * When that fails, clean stays false: the next worker claims the ring
 * again, or, after a restart of the server, makes a full pass.
 */
static void
ring_drain(void)
{
	if (!CaptureRingClaimed())
		return;
	ring_open = false;
	if (!CaptureRingClose(5000))
	{
		ereport(LOG,
				(errmsg("segments worker: transactions still hold slots of the change ring; it stays for the next worker")));
		return;
	}
	PG_TRY();
	{
		CaptureRingKey *keys;
		int			n;
		char	   *dbname;

		begin_xact("segments: saving captured changes");
		dbname = MemoryContextStrdup(TopMemoryContext, get_database_name(MyDatabaseId));
		/* closed, none in flight: every entry is published; one peek takes all */
		n = CaptureRingPeek(&keys, INT_MAX);
		if (n > 0 && is_configured())
			ring_to_queue(keys, n);
		if (OidIsValid(CatalogRelid("capture_state", true)))
			WorkerRun("UPDATE segments.capture_state SET clean = true", 0, NULL, NULL, SPI_OK_UPDATE);
		commit_xact();
		CaptureRingAdvance(n);
		CaptureRingRelease();
		if (n > 0)
			ereport(LOG,
					(errmsg("segments worker for database \"%s\" moved %d captured changes from shared memory into segments.change_queue",
							dbname, n)));
	}
	PG_CATCH();
	{
		(void) abort_xact();
	}
	PG_END_TRY();
}

/* The extension is gone: the ring's entries with it. */
static void
ring_discard(void)
{
	CaptureRingKey *keys;
	int			n;

	if (!CaptureRingClaimed())
		return;
	ring_open = false;
	if (!CaptureRingClose(1000))
		return;
	while ((n = CaptureRingPeek(&keys, INT_MAX)) > 0)
		CaptureRingAdvance(n);
	CaptureRingRelease();
}

/*
 * The watermark for hot standbys (see capture_ring.c): at most once a
 * second, when anything was written since the last one, the worker turns
 * writers away from the ring for a moment, waits for reservations in
 * flight, and records a time W such that every commit that used the ring
 * before W is applied: the oldest unapplied entry's commit time, or a few
 * milliseconds ahead, held until then so that no commit through the ring
 * can be stamped before W (its own commit included, mostly: otherwise it
 * writes again).  A standby's wait() compares W with its last replayed
 * commit.  Only while a WAL sender runs (a streaming standby, or a base
 * backup becoming one): fencing sends writers to the table for as long as
 * the watermark's transaction takes, which nobody needs without one.
 */
#define WATERMARK_MS		1000
#define WATERMARK_AHEAD_MS	5

static TimestampTz watermark_at = 0;
static XLogRecPtr watermark_end = InvalidXLogRecPtr;
static bool watermark_again = true;

/* Is any WAL sender running (physical or logical)? */
static bool
wal_sender_running(void)
{
	if (WalSndCtl == NULL)
		return false;
	for (int i = 0; i < max_wal_senders; i++)
	{
		WalSnd	   *walsnd = &WalSndCtl->walsnds[i];
		pid_t		pid;

		SpinLockAcquire(&walsnd->mutex);
		pid = walsnd->pid;
		SpinLockRelease(&walsnd->mutex);
		if (pid != 0)
			return true;
	}
	return false;
}

static void
ring_watermark(void)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz oldest;
	TimestampTz w;

	if (!ring_open || !TimestampDifferenceExceeds(watermark_at, now, WATERMARK_MS))
		return;
	if (!watermark_again && GetXLogInsertRecPtr() == watermark_end)
		return;
	watermark_at = now;
	if (!wal_sender_running())
	{
		watermark_again = true; /* a standby that connects gets one */
		return;
	}
	if (!CaptureRingFence(50, &oldest))
		return;
	w = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), WATERMARK_AHEAD_MS);
	if (oldest != 0 && oldest < w)
		w = oldest;
	PG_TRY();
	{
		Oid			type = TIMESTAMPTZOID;
		Datum		value = TimestampTzGetDatum(w);

		begin_xact("segments: recording the capture watermark");
		(void) set_config_option("synchronous_commit", "off", PGC_SUSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
		WorkerRun("UPDATE segments.capture_state SET watermark = $1", 1, &type, &value,
				  SPI_OK_UPDATE);
		commit_xact();
		now = GetCurrentTimestamp();
		watermark_again = (now >= w);
		if (now < w)
			pg_usleep((long) (w - now));
		watermark_end = GetXLogInsertRecPtr();
	}
	PG_CATCH();
	{
		(void) abort_xact();
		watermark_again = true;
	}
	PG_END_TRY();
	CaptureRingUnfence();
}

/*
 * One round of work (see the banner).  Returns true when more work may be
 * waiting; otherwise sets *sleep_ms.
 */
static bool
worker_round(long *sleep_ms)
{
	TimestampTz start = GetCurrentTimestamp();

	*sleep_ms = segments_naptime;
	if (!ring_tried)
		ring_start();			/* capture_ring.c */
	if (!source_usable())
		return false;
	/* a SIGTERM or a reload (segments.enabled off?) came meanwhile: first that */
	if (shutdown_requested || ConfigReloadPending)
		return true;
	vacuum_step();				/* beside the worker: nothing waits for it */
	apply_pace();
	for (;;)
	{
		int64		n = apply_batch();

		if (n < 0 && apply_isolating)
			return true;		/* the same entries again, one by one */
		if (n < 0)
		{
			/* transient: again after 0.1 s, doubling up to naptime */
			*sleep_ms = Min((long) segments_naptime,
							100L << Min(apply_failures - 1, 16));
			return false;
		}
		if (n < segments_batch_size)
			break;
		if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(), APPLY_BUDGET_MS))
			return true;
	}
	ring_watermark();			/* for hot standbys */
	if (pass_step())
	{
		/*
		 * The passage of time keeps its pace during a long pass, after the
		 * changes: not while a change committed during the chunk waits
		 * (EvaluateChangesWaiting()), which would wait for the window too;
		 * under a steady stream of changes, every fourth chunk.
		 */
		static int	windows_skipped = 0;

		if (!EvaluateChangesWaiting() || ++windows_skipped >= 4)
		{
			windows_skipped = 0;
			(void) apply_time_window(sleep_ms);
		}
		return true;
	}
	if (evaluate_pending(sleep_ms))
		return true;
	if (apply_time_window(sleep_ms))
		return true;
	if (sweep_step())
		return true;
	if (evaluate_due(sleep_ms))
		return true;
	if (trim_history())			/* history */
		return true;
	if (strip_step())			/* member_strip.c */
		return true;
	return false;
}

/*
 * A worker that died (or a server that crashed) while evaluating left
 * segments in state evaluating: they are pending again.
 */
static void
reset_evaluating(void)
{
	char		title[NAMEDATALEN + 64];

	begin_xact("segments: starting");
	if (OidIsValid(CatalogRelid("pass", true)))
	{
		Datum		ids;
		TimestampTz started;

		/*
		 * a pass interrupted midway goes on from its last committed chunk
		 * (from the first contact when changes in the ring were lost:
		 * ring_start)
		 */
		WorkerRun("UPDATE segments.segment_state SET state = 'pending'"
			" WHERE state OPERATOR(pg_catalog.=) 'evaluating'"
			"   AND segment_id OPERATOR(pg_catalog.<>) ALL"
			"       (coalesce((SELECT p.segment_ids FROM segments.pass p), '{}'))",
			0, NULL, NULL, SPI_OK_UPDATE);
		if (PassInProgress(&ids, &started))
		{
			/* the limit of segments.evaluation_timeout starts again */
			pass_remember(ids);
			ereport(LOG,
					(errmsg("segments worker for database \"%s\" resumes the evaluation pass started at %s",
							get_database_name(MyDatabaseId), timestamptz_to_str(started))));
		}
	}
	else
		WorkerRun("UPDATE segments.segment_state SET state = 'pending'"
			" WHERE state OPERATOR(pg_catalog.=) 'evaluating'",
			0, NULL, NULL, SPI_OK_UPDATE);
	ereport(LOG,
			(errmsg("segments worker started for database \"%s\"",
					get_database_name(MyDatabaseId))));
	/* ps shows the database by name (the launcher only knew its oid) */
	snprintf(title, sizeof(title), "segments worker for database \"%s\"",
			 get_database_name(MyDatabaseId));
	commit_xact();
	init_ps_display(title);
}

/* Entry point of a database's worker; arg is the database oid. */
void
segments_worker_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	int			slotno;
	bool		more = true;
	long		sleep_ms = segments_naptime;

	memcpy(&slotno, MyBgworkerEntry->bgw_extra, sizeof(int));
	if (slotno < 0 || slotno >= segments_shared->nslots)
		elog(ERROR, "segments worker: invalid slot %d", slotno);

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, worker_sigterm);
	BackgroundWorkerUnblockSignals();
	ProcessKeepFreedMemory();

	my_slot = &segments_shared->slots[slotno];
	segments_in_worker = true;
	SpinLockAcquire(&segments_shared->mutex);
	if (!my_slot->in_use || my_slot->dboid != dboid || my_slot->pid != 0)
	{
		SpinLockRelease(&segments_shared->mutex);
		elog(LOG, "segments worker: slot %d is not waiting for database %u", slotno, dboid);
		proc_exit(0);
	}
	my_slot->pid = MyProcPid;
	my_slot->latch = MyLatch;
	my_slot->state = SWS_STARTING;
	my_slot->started_at = GetCurrentTimestamp();
	my_slot->last_error[0] = '\0';
	my_slot->time_applied_until = 0;
	SpinLockRelease(&segments_shared->mutex);
	on_shmem_exit(worker_detach, (Datum) 0);

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("segments worker");
	/* above ALTER DATABASE/ROLE ... SET search_path: nothing planted is found */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	/*
	 * The worker's statements are small and many (a chunk of a pass runs a
	 * dozen): compiling them with JIT, as their row estimates can ask, costs
	 * far more than running them (three quarters of a pass, measured).
	 */
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);
	/*
	 * Applying a few changes, the member rows' GIN entries go to the
	 * index's pending list (member_bulk.c), which every search of the index
	 * reads: bounded at 1MB here (4MB by default), its cleanup still merges
	 * thousands of entries at a time.  The index's own reloption wins.
	 */
	SetConfigOption("gin_pending_list_limit", CppAsString2(MEMBER_GIN_PENDING_KB), PGC_SUSET,
					PGC_S_OVERRIDE);
	/*
	 * In a lock cycle with a user's transaction the worker is the one that
	 * gives up: the process that has waited deadlock_timeout runs the check
	 * and ends itself, so the worker's is short.  Its error is transient
	 * and its work is retried, where the user's statement would fail (on
	 * Citus, a column renamed while a node's chunk held the table and
	 * waited for a row the DDL's hook had changed).
	 */
	SetConfigOption("deadlock_timeout", "50ms", PGC_SUSET, PGC_S_OVERRIDE);

	/* segments.enabled may be off for this database (ALTER DATABASE) */
	if (!segments_enabled)
		worker_exit(SWS_DISABLED);

	evaluation_timer = RegisterTimeout(USER_TIMEOUT, evaluation_timeout_handler);
	round_cxt = AllocSetContextCreate(TopMemoryContext, "segments worker round",
									  ALLOCSET_DEFAULT_SIZES);
	reset_evaluating();

	for (;;)
	{
		if (!more)
		{
			set_state(SWS_IDLE);
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 sleep_ms, PG_WAIT_EXTENSION);
		}
		ResetLatch(MyLatch);
		if (shutdown_requested)
		{
			/* the launcher stops workers so when segments.enabled is turned off */
			if (ConfigReloadPending)
			{
				ConfigReloadPending = false;
				ProcessConfigFile(PGC_SIGHUP);
				if (!segments_enabled)
					worker_exit(SWS_DISABLED);	/* drains the ring */
			}
			/* the ring into the queue table, then as die() would */
			ring_drain();
			ereport(FATAL,
					(errcode(ERRCODE_ADMIN_SHUTDOWN),
					 errmsg("terminating background worker \"%s\" due to administrator command",
							MyBgworkerEntry->bgw_type)));
		}
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			if (!segments_enabled)
				worker_exit(SWS_DISABLED);
		}

		MemoryContextSwitchTo(round_cxt);
		more = worker_round(&sleep_ms);
		last_round_more = more;
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(round_cxt);
	}
}

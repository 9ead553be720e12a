/*-------------------------------------------------------------------------
 *
 * shared.c
 *		Shared memory of the workers, and what backends do with it: wake a
 *		worker when they commit changes (segments._notify_worker() and the
 *		capture trigger), wait for the changes to be reflected
 *		(segments.wait()), list the workers (segments.worker), and keep
 *		workers out of the way of DROP DATABASE and friends.
 *
 * Everything here is harmless when the library is not preloaded: there is
 * then no shared memory, nothing to wake, and wait() only looks at what is
 * still pending.
 *
 *-------------------------------------------------------------------------
 */
#include "capture_ring.h"
#include "catalog.h"
#include "citus.h"
#include "worker.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include <signal.h>

PG_FUNCTION_INFO_V1(segments_notify_worker);
PG_FUNCTION_INFO_V1(segments_wait);
PG_FUNCTION_INFO_V1(segments_worker_status);
PG_FUNCTION_INFO_V1(segments_capture_ring);
PG_FUNCTION_INFO_V1(segments_capture_ring_keys);

SegmentsShared *segments_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ProcessUtility_hook_type prev_process_utility_hook = NULL;

/* This transaction wants the worker of its database woken at commit. */
static bool notify_at_commit = false;
static bool xact_callback_registered = false;

/* Size of the shared state for segments.max_workers slots. */
static Size
shared_size(void)
{
	return add_size(offsetof(SegmentsShared, slots),
					mul_size(segments_max_workers, sizeof(SegmentsWorkerSlot)));
}

/* shmem_request_hook: reserves the shared state. */
static void
shared_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(shared_size());
	RequestAddinShmemSpace(CaptureRingShmemSize());	/* capture_ring.c */
}

/* shmem_startup_hook: creates (or, after a crash, recreates) the state. */
static void
shared_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	segments_shared = ShmemInitStruct("segments", shared_size(), &found);
	if (!found)
	{
		memset(segments_shared, 0, shared_size());
		SpinLockInit(&segments_shared->mutex);
		ConditionVariableInit(&segments_shared->progress_cv);
		segments_shared->nslots = segments_max_workers;
	}
	CaptureRingShmemInit();		/* capture_ring.c */
	LWLockRelease(AddinShmemInitLock);
}

/* Installs the shared memory hooks; _PG_init calls it when preloaded. */
void
SharedRequestMemory(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shared_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shared_startup;
}

/* The slot of a database, or NULL.  Caller holds the mutex. */
SegmentsWorkerSlot *
SharedFindSlot(Oid dboid)
{
	for (int i = 0; i < segments_shared->nslots; i++)
	{
		if (segments_shared->slots[i].in_use && segments_shared->slots[i].dboid == dboid)
			return &segments_shared->slots[i];
	}
	return NULL;
}

/*
 * Wakes the worker of this database or, when none runs, asks the launcher
 * to start one.
 */
static void
wake_worker(Oid dboid)
{
	Latch	   *latch = NULL;
	SegmentsWorkerSlot *slot;

	if (segments_shared == NULL)
		return;
	SpinLockAcquire(&segments_shared->mutex);
	slot = SharedFindSlot(dboid);
	if (slot != NULL && slot->pid != 0 && slot->latch != NULL)
	{
		latch = slot->latch;
		slot->wakeups++;		/* WorkerWokenSinceApply() */
		/*
		 * A worker still starting has read segments.enabled as it connected
		 * and may be about to exit because it was off then (the launcher's
		 * restart after a worker was stopped): the request is kept for the
		 * launcher, which starts another once this one has exited.
		 */
		if (slot->state == SWS_STARTING)
			slot->service_requested = true;
	}
	else
	{
		/*
		 * Ask the launcher once: while a request is pending it is not woken
		 * again.  Every committing writer passes here while no worker runs
		 * (segments.enabled off for the database), and a wake-up per commit
		 * cost the writer a signal and the launcher a scan.
		 */
		bool		known = false;

		if (slot != NULL)
		{
			known = slot->service_requested;
			slot->service_requested = true;
		}
		else
		{
			/* no slot (the launcher freed it): ask for this database by oid */
			for (int i = 0; i < segments_shared->nrequests && !known; i++)
				known = (segments_shared->requests[i] == dboid);
			if (!known && segments_shared->nrequests < SEGMENTS_MAX_REQUESTS)
				segments_shared->requests[segments_shared->nrequests++] = dboid;
			else if (!known)
				segments_shared->requests_overflow = true;
		}
		if (!known)
			latch = segments_shared->launcher_latch;
	}
	SpinLockRelease(&segments_shared->mutex);
	if (latch != NULL)
		SetLatch(latch);
}

/* Transaction callback: wake the worker once the changes are committed. */
static void
notify_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (notify_at_commit)
			{
				notify_at_commit = false;
				wake_worker(MyDatabaseId);
			}
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			notify_at_commit = false;
			break;
		default:
			break;
	}
}

/* Asks for the worker of this database to be woken when we commit. */
void
SharedNotifyAtCommit(void)
{
	if (segments_shared == NULL || notify_at_commit)
		return;
	if (!xact_callback_registered)
	{
		RegisterXactCallback(notify_xact_callback, NULL);
		xact_callback_registered = true;
	}
	notify_at_commit = true;
}

/*
 * Stops the worker of a database and keeps it stopped for a while, so that
 * a command that needs the database to itself (DROP DATABASE, ALTER
 * DATABASE ... RENAME, CREATE DATABASE ... TEMPLATE) does not find it
 * connected.
 */
void
SharedPauseDatabase(Oid dboid, int seconds)
{
	SegmentsWorkerSlot *slot;
	pid_t		pid = 0;

	if (segments_shared == NULL || !OidIsValid(dboid))
		return;
	SpinLockAcquire(&segments_shared->mutex);
	slot = SharedFindSlot(dboid);
	if (slot != NULL)
	{
		slot->paused_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														 seconds * 1000);
		pid = slot->pid;
	}
	SpinLockRelease(&segments_shared->mutex);
	if (pid != 0)
		kill(pid, SIGTERM);
}

/* Is database dboid a template (anyone with CREATEDB may copy it)? */
static bool
database_is_template(Oid dboid)
{
	HeapTuple	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dboid));
	bool		result = false;

	if (HeapTupleIsValid(tup))
	{
		result = ((Form_pg_database) GETSTRUCT(tup))->datistemplate;
		ReleaseSysCache(tup);
	}
	return result;
}

/*
 * The database whose worker a utility command needs out of the way, or
 * InvalidOid.  Only once PostgreSQL's own permission checks for the
 * command would pass (the same checks, made first): a role that may not
 * run the command must not be able to stop a worker by trying.
 */
static Oid
database_to_pause(Node *parsetree)
{
	Oid			dboid;

	if (IsA(parsetree, DropdbStmt))
	{
		/* DROP DATABASE: the owner */
		dboid = get_database_oid(((DropdbStmt *) parsetree)->dbname, true);
		if (OidIsValid(dboid) && pg_database_ownercheck(dboid, GetUserId()))
			return dboid;
	}
	else if (IsA(parsetree, RenameStmt) &&
			 ((RenameStmt *) parsetree)->renameType == OBJECT_DATABASE)
	{
		/* ALTER DATABASE ... RENAME: the owner, with CREATEDB */
		dboid = get_database_oid(((RenameStmt *) parsetree)->subname, true);
		if (OidIsValid(dboid) && pg_database_ownercheck(dboid, GetUserId()) &&
			have_createdb_privilege())
			return dboid;
	}
	else if (IsA(parsetree, AlterDatabaseStmt))
	{
		/* only SET TABLESPACE needs the database to itself; the owner */
		AlterDatabaseStmt *stmt = (AlterDatabaseStmt *) parsetree;
		ListCell   *lc;
		bool		moves = false;

		foreach(lc, stmt->options)
			moves |= strcmp(lfirst_node(DefElem, lc)->defname, "tablespace") == 0;
		dboid = get_database_oid(stmt->dbname, true);
		if (moves && OidIsValid(dboid) && pg_database_ownercheck(dboid, GetUserId()))
			return dboid;
	}
	else if (IsA(parsetree, CreatedbStmt))
	{
		/* CREATE DATABASE ... TEMPLATE: CREATEDB, and a template or its owner */
		ListCell   *lc;

		foreach(lc, ((CreatedbStmt *) parsetree)->options)
		{
			DefElem    *opt = lfirst_node(DefElem, lc);

			if (strcmp(opt->defname, "template") != 0 || opt->arg == NULL)
				continue;
			dboid = get_database_oid(defGetString(opt), true);
			if (OidIsValid(dboid) && have_createdb_privilege() &&
				(database_is_template(dboid) || pg_database_ownercheck(dboid, GetUserId())))
				return dboid;
		}
	}
	return InvalidOid;
}

/*
 * A pass outside the worker (refresh(), refresh_contacts()) evaluated the
 * time as of `at`, its transaction's start: the memberships it wrote may
 * be older than the worker's time windows, which must cover the flips
 * since then again.  No-op in the worker and without the preload.
 */
void
SharedTimeEvaluated(TimestampTz at)
{
	SegmentsWorkerSlot *slot;

	if (segments_shared == NULL || segments_in_worker)
		return;
	SpinLockAcquire(&segments_shared->mutex);
	slot = SharedFindSlot(MyDatabaseId);
	if (slot != NULL && (slot->time_rewind_to == 0 || at < slot->time_rewind_to))
		slot->time_rewind_to = at;
	SpinLockRelease(&segments_shared->mutex);
}

/* The worker: the earliest instant a backend's pass evaluated at, or 0. */
TimestampTz
SharedTakeTimeRewind(void)
{
	SegmentsWorkerSlot *slot;
	TimestampTz at = 0;

	if (segments_shared == NULL)
		return 0;
	SpinLockAcquire(&segments_shared->mutex);
	slot = SharedFindSlot(MyDatabaseId);
	if (slot != NULL)
	{
		at = slot->time_rewind_to;
		slot->time_rewind_to = 0;
	}
	SpinLockRelease(&segments_shared->mutex);
	return at;
}

/* ProcessUtility_hook: pauses workers before commands they would block. */
static void
segments_process_utility(PlannedStmt *pstmt, const char *queryString,
						 bool readOnlyTree, ProcessUtilityContext context,
						 ParamListInfo params, QueryEnvironment *queryEnv,
						 DestReceiver *dest, QueryCompletion *qc)
{
	if (segments_shared != NULL)
	{
		Oid			dboid = database_to_pause(pstmt->utilityStmt);

		if (OidIsValid(dboid))
			SharedPauseDatabase(dboid, 10);
	}

	if (prev_process_utility_hook)
		prev_process_utility_hook(pstmt, queryString, readOnlyTree, context,
								  params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

/* Installs the utility hook; _PG_init calls it when preloaded. */
void
SharedInitUtilityHook(void)
{
	prev_process_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = segments_process_utility;
}

/*
 * segments._notify_worker() RETURNS void
 *
 * Wakes this database's worker when the calling transaction commits (or
 * has the launcher start one).  Does nothing without the preload.
 */
Datum
segments_notify_worker(PG_FUNCTION_ARGS)
{
	SharedNotifyAtCommit();
	PG_RETURN_VOID();
}

/* Microseconds of an interval (a month counts 30 days); negative: 0. */
static int64
interval_usecs(const Interval *iv)
{
	int64		us = iv->time + (int64) iv->day * USECS_PER_DAY +
		(int64) iv->month * DAYS_PER_MONTH * USECS_PER_DAY;

	return Max(us, 0);
}

/* Runs a one-value query with the latest snapshot; returns that value. */
static Datum
run_latest(SPIPlanPtr plan, Datum *values, bool *isnull)
{
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
	int			rc = SPI_execute_snapshot(plan, values, NULL, snap, InvalidSnapshot,
										  true, false, 1);
	Datum		d;

	UnregisterSnapshot(snap);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "segments.wait: query failed: %s", SPI_result_code_string(rc));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
	return d;
}

/*
 * For wait(): are the changes captured through the ring before the call
 * applied?  segments.capture_state.clean false means a ring may hold
 * changes: on the primary, until a worker opened a ring since the server
 * started (and requested the full pass that a crash calls for, which the
 * pending segments then show), they may be lost and not yet covered; on a
 * standby, the primary's watermark tells.
 */
static bool
ring_applied(SPIPlanPtr state_plan, bool standby, TimestampTz replayed,
			 bool ring_known, uint64 ring_target)
{
	if (state_plan != NULL && segments_preloaded)
	{
		Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
		int			rc = SPI_execute_snapshot(state_plan, NULL, NULL, snap, InvalidSnapshot,
											  true, false, 1);
		bool		isnull;

		UnregisterSnapshot(snap);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "segments.wait: could not read segments.capture_state: %s",
				 SPI_result_code_string(rc));
		if (SPI_processed == 1 &&
			!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		{
			if (standby)
			{
				TimestampTz watermark =
				DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc, 2, &isnull));

				if (!(replayed < watermark))
					return false;
			}
			else
			{
				uint64		target;
				bool		open = false;

				if (!CaptureRingTarget(MyDatabaseId, &target, &open) || !open)
					return false;
			}
		}
	}
	return !ring_known || CaptureRingReached(MyDatabaseId, ring_target);
}

/*
 * segments.wait(timeout interval DEFAULT '10 s') RETURNS boolean
 *
 * True once every contact change committed before the call (queue entries
 * visible then) has been applied, and every segment whose evaluation was
 * requested before the call is ready or failed; false after the timeout.
 * Reads only: works on a hot standby (where it reports what the primary
 * has applied).
 */
Datum
segments_wait(PG_FUNCTION_ARGS)
{
	Interval   *timeout = PG_ARGISNULL(0) ? NULL : PG_GETARG_INTERVAL_P(0);
	TimestampTz start = GetCurrentTimestamp();
	TimestampTz deadline = start + (timeout ? interval_usecs(timeout) : 10 * USECS_PER_SEC);
	SPIPlanPtr	max_plan;
	SPIPlanPtr	check_plan;
	Oid			types[2] = {INT8OID, TIMESTAMPTZOID};
	Datum		values[2];
	bool		isnull;
	bool		done = false;
	bool		failed_table;
	SPIPlanPtr	state_plan = NULL;
	bool		standby = RecoveryInProgress();
	TimestampTz replayed = 0;
	uint64		ring_target = 0;
	bool		ring_open = false;
	bool		ring_known = false;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	failed_table = CatalogHasFailureHandling();	/* 0.1.0: none */

	/*
	 * Changes captured through the ring of this database (capture_ring.c):
	 * every slot reserved before the call must be applied.  On a standby
	 * the ring is invisible: the primary's watermark must pass the last
	 * commit replayed before the call.
	 */
	if (segments_shared != NULL && !standby)
		ring_known = CaptureRingTarget(MyDatabaseId, &ring_target, &ring_open);
	if (standby)
	{
		replayed = GetLatestXTime();
		if (replayed == 0)
			replayed = start;
	}
	if (OidIsValid(CatalogRelid("capture_state", true)))
		state_plan = SPI_prepare("SELECT clean, coalesce(watermark, '-infinity')"
								 "  FROM segments.capture_state", 0, NULL);
	max_plan = SPI_prepare(failed_table ?
						   "SELECT GREATEST("
						   "  (SELECT pg_catalog.max(id) FROM segments.change_queue),"
						   "  (SELECT pg_catalog.max(id) FROM segments.change_queue_failed))" :
						   "SELECT max(id) FROM segments.change_queue", 0, NULL);
	/*
	 * Not done while a change committed before the call is queued or set
	 * aside (unapplied either way), or a segment this session may see was
	 * requested before the call and is not settled: pending (retries of
	 * transient errors included) or evaluating.  Failed segments are
	 * settled: they grant nothing and show why in segments.status.
	 */
	check_plan = SPI_prepare(failed_table ?
							 "SELECT EXISTS (SELECT 1 FROM segments.change_queue"
							 "                WHERE id OPERATOR(pg_catalog.<=) $1)"
							 "    OR EXISTS (SELECT 1 FROM segments.change_queue_failed"
							 "                WHERE id OPERATOR(pg_catalog.<=) $1)"
							 "    OR EXISTS (SELECT 1 FROM segments.segment_state st"
							 "                JOIN segments.segment s ON s.id OPERATOR(pg_catalog.=) st.segment_id"
							 "                WHERE st.state OPERATOR(pg_catalog.=) ANY ('{pending,evaluating}'::pg_catalog.text[])"
							 "                  AND st.requested_at OPERATOR(pg_catalog.<=) $2"
							 "                  AND segments._tenant_visible(s.tenant))" :
							 "SELECT EXISTS (SELECT 1 FROM segments.change_queue"
							 "                WHERE id OPERATOR(pg_catalog.<=) $1)"
							 "    OR EXISTS (SELECT 1 FROM segments.segment_state st"
							 "                JOIN segments.segment s ON s.id OPERATOR(pg_catalog.=) st.segment_id"
							 "                WHERE st.state OPERATOR(pg_catalog.=) ANY ('{pending,evaluating}'::pg_catalog.text[])"
							 "                  AND st.requested_at OPERATOR(pg_catalog.<=) $2"
							 "                  AND segments._tenant_visible(s.tenant))",
							 2, types);
	if (max_plan == NULL || check_plan == NULL)
		elog(ERROR, "segments.wait: could not prepare: %s", SPI_result_code_string(SPI_result));

	values[0] = run_latest(max_plan, NULL, &isnull);
	if (isnull)
		values[0] = Int64GetDatum(0);
	values[1] = TimestampTzGetDatum(start);

	for (;;)
	{
		TimestampTz now;
		long		sleep_ms;

		if (segments_shared != NULL)
			ConditionVariablePrepareToSleep(&segments_shared->progress_cv);
		if (!DatumGetBool(run_latest(check_plan, values, &isnull)) &&
			ring_applied(state_plan, standby, replayed, ring_known, ring_target))
		{
			done = true;
			break;
		}
		now = GetCurrentTimestamp();
		if (now >= deadline)
			break;
		sleep_ms = Min((deadline - now + 999) / 1000, 1000);
		if (segments_shared != NULL)
			ConditionVariableTimedSleep(&segments_shared->progress_cv, sleep_ms,
										PG_WAIT_EXTENSION);
		else
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 Min(sleep_ms, 100), PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
		CHECK_FOR_INTERRUPTS();
	}
	if (segments_shared != NULL)
		ConditionVariableCancelSleep();
	if (done)
		done = CitusWait(deadline); /* Citus: and every worker's queue */
	SPI_finish();
	PG_RETURN_BOOL(done);
}

/*
 * segments._capture_ring(OUT pending bigint, OUT oldest timestamptz,
 *                        OUT captured bigint)
 *
 * The changes captured through this database's ring and not applied yet
 * (reservations in flight included), the commit time of the oldest, and
 * how many the ring took since its worker claimed it; 0, NULL, 0 without
 * a ring.
 */
Datum
segments_capture_ring(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	TimestampTz oldest = 0;
	uint64		captured = 0;
	bool		open;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	values[0] = Int64GetDatum(segments_shared != NULL ?
							  CaptureRingPending(MyDatabaseId, &oldest) : 0);
	values[1] = TimestampTzGetDatum(oldest);
	nulls[1] = (oldest == 0);
	if (segments_shared != NULL)
		(void) CaptureRingTarget(MyDatabaseId, &captured, &open);
	values[2] = Int64GetDatum((int64) captured);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

/*
 * segments._capture_ring_keys() RETURNS SETOF text
 *
 * The contact keys waiting in this database's ring (tests and diagnosis;
 * the owner's only).
 */
Datum
segments_capture_ring_keys(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	CaptureRingKey *keys;
	int			n;

	SEGMENTS_INIT_SRF(fcinfo);
	if (segments_shared == NULL)
		return (Datum) 0;
	n = CaptureRingList(MyDatabaseId, &keys);
	for (int i = 0; i < n; i++)
	{
		Datum		value = CStringGetTextDatum(keys[i].key);
		bool		isnull = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}
	return (Datum) 0;
}

/* Name of a worker state, as shown by segments.worker. */
static const char *
state_name(SegmentsWorkerState state)
{
	switch (state)
	{
		case SWS_STARTING:
			return "starting";
		case SWS_IDLE:
			return "idle";
		case SWS_APPLYING:
			return "applying changes";
		case SWS_EVALUATING:
			return "evaluating";
		case SWS_NO_EXTENSION:
			return "no extension";
		case SWS_DISABLED:
			return "disabled";
		case SWS_NONE:
			break;
	}
	return "stopped";
}

/*
 * segments._worker_status() RETURNS SETOF record
 *
 * The launcher's slot of this database (other databases' workers are none
 * of this session's business): database oid, pid (NULL when not running),
 * state, started_at, last_batch_at, last_batch_size, changes_applied,
 * segments_evaluated, last_error, last_error_at, time_applied_until.
 * last_error may name any tenant's
 * segment, so only a session that sees every tenant gets it.  Empty
 * without the preload.
 */
Datum
segments_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SegmentsWorkerSlot *copy;
	int			n = 0;
	bool		sees_all;

	SEGMENTS_INIT_SRF(fcinfo);
	if (segments_shared == NULL)
		return (Datum) 0;
	sees_all = CatalogTenantView().scope == TENANT_SCOPE_ALL;

	copy = palloc(segments_shared->nslots * sizeof(SegmentsWorkerSlot));
	SpinLockAcquire(&segments_shared->mutex);
	for (int i = 0; i < segments_shared->nslots; i++)
	{
		if (segments_shared->slots[i].in_use &&
			segments_shared->slots[i].dboid == MyDatabaseId)
			copy[n++] = segments_shared->slots[i];
	}
	SpinLockRelease(&segments_shared->mutex);

	for (int i = 0; i < n; i++)
	{
		SegmentsWorkerSlot *s = &copy[i];
		Datum		values[11];
		bool		nulls[11] = {0};

		values[0] = ObjectIdGetDatum(s->dboid);
		values[1] = Int32GetDatum(s->pid);
		nulls[1] = (s->pid == 0);
		values[2] = CStringGetTextDatum(s->pid != 0 || s->state == SWS_NO_EXTENSION ||
										s->state == SWS_DISABLED ?
										state_name(s->state) : "stopped");
		values[3] = TimestampTzGetDatum(s->started_at);
		nulls[3] = (s->started_at == 0);
		values[4] = TimestampTzGetDatum(s->last_batch_at);
		nulls[4] = (s->last_batch_at == 0);
		values[5] = Int64GetDatum(s->last_batch_size);
		values[6] = Int64GetDatum(s->changes_applied);
		values[7] = Int64GetDatum(s->segments_evaluated);
		s->last_error[SEGMENTS_ERROR_LEN - 1] = '\0';
		values[8] = CStringGetTextDatum(s->last_error);
		nulls[8] = (s->last_error[0] == '\0' || !sees_all);
		values[9] = TimestampTzGetDatum(s->last_error_at);
		nulls[9] = (s->last_error_at == 0);
		values[10] = TimestampTzGetDatum(s->time_applied_until);
		nulls[10] = (s->time_applied_until == 0 || s->pid == 0);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

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
 *   2. evaluates one pending segment: marks it evaluating (committed, so
 *      segments.status shows it), then EvaluateRefresh() of it; an error
 *      marks it failed with the message;
 *   3. applies the passage of time: one chunk of the current time window
 *      (time_window.c: the contacts whose within_* moment on a time column
 *      passed since the last window);
 *   4. one chunk of the current sweep (time rules on traits or text,
 *      re-evaluated contact by contact);
 *   5. starts a sweep, or evaluates scheduled segments, when due.
 * Changes keep priority: after a second of batches, one segment
 * evaluation or one chunk, the round starts again.  The worker sleeps on
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
 * and sets back to pending any segment whose request changed meanwhile.
 *
 *-------------------------------------------------------------------------
 */
#include "catalog.h"
#include "privilege.h"
#include "worker.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/ps_status.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

/* Longest run of change batches before other work gets a turn. */
#define APPLY_BUDGET_MS		1000

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

/* Ends the worker on purpose; the launcher reads why from the state. */
static void
worker_exit(SegmentsWorkerState why)
{
	set_state(why);
	proc_exit(0);
}

/*
 * Starts a transaction with an active snapshot and an SPI connection.
 * Ends the worker if the extension was dropped.
 */
static void
begin_xact(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	pgstat_report_activity(STATE_RUNNING, activity);
	if (!OidIsValid(get_extension_oid("segments", true)))
	{
		ereport(DEBUG1,
				(errmsg("segments worker for database \"%s\" stopping: the extension is not installed",
						get_database_name(MyDatabaseId))));
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		worker_exit(SWS_NO_EXTENSION);
	}
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
 * and returns the message (in round_cxt).
 */
static char *
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
	return edata->message;
}

/* Runs a statement through SPI; checks the result code. */
static void
run(const char *sql, int nargs, Oid *types, Datum *values, int expected)
{
	int			rc;

	if (nargs == 0)
		rc = SPI_execute(sql, false, 0);
	else
		rc = SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0);
	if (rc != expected)
		elog(ERROR, "segments worker: \"%s\" failed: %s", sql, SPI_result_code_string(rc));
}

/* Is a source configured?  (In a transaction.) */
static bool
is_configured(void)
{
	bool		isnull;

	run("SELECT EXISTS (SELECT 1 FROM segments.config)", 0, NULL, NULL, SPI_OK_SELECT);
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

	run("UPDATE segments.segment_state st SET state = 'pending'"
		"  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS seen(id, requested_at)"
		" WHERE st.segment_id OPERATOR(pg_catalog.=) seen.id"
		"   AND st.requested_at OPERATOR(pg_catalog.<>) seen.requested_at"
		"   AND st.state OPERATOR(pg_catalog.<>) 'pending'",
		2, types, values, SPI_OK_UPDATE);
}

/*
 * Applies one batch of queued changes.  Returns the number of queue
 * entries applied, or -1 after an error (logged and shown in the view).
 */
static int64
apply_batch(void)
{
	volatile int64 n = 0;

	PG_TRY();
	{
		Datum		arg = Int32GetDatum(segments_batch_size);
		Oid			argtype = INT4OID;
		bool		isnull;
		bool		truncated;
		Datum		keys;
		RequestGuard guard;

		begin_xact("segments: applying changes");
		if (is_configured())
		{
			guard = guard_begin();
			run("WITH batch AS ("
				"  DELETE FROM segments.change_queue"
				"   WHERE id OPERATOR(pg_catalog.=) ANY (SELECT id FROM segments.change_queue"
				"                                         ORDER BY id LIMIT $1)"
				"  RETURNING contact)"
				" SELECT pg_catalog.count(*),"
				"        coalesce(pg_catalog.bool_or(contact IS NULL), false),"
				"        pg_catalog.array_agg(DISTINCT contact) FILTER (WHERE contact IS NOT NULL)"
				"   FROM batch",
				1, &argtype, &arg, SPI_OK_SELECT);
			n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
			truncated = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
			keys = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
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
					EvaluateContacts(DatumGetArrayTypeP(keys));
				guard_end(&guard);
			}
		}
		commit_xact();
	}
	PG_CATCH();
	{
		abort_xact();
		n = -1;
	}
	PG_END_TRY();

	if (n > 0)
	{
		SpinLockAcquire(&segments_shared->mutex);
		my_slot->last_batch_at = GetCurrentTimestamp();
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
 * Evaluates segments (and the segments that reference them) in one pass
 * and a transaction of its own; on error, marks them failed with the
 * message.
 */
static void
evaluate_segments(const pg_uuid_t *ids, int n)
{
	Oid			types[2] = {UUIDARRAYOID, TEXTOID};
	Datum		values[2];
	TimestampTz started = GetCurrentTimestamp();

	values[0] = uuid_array(ids, n);
	evaluation_timed_out = false;
	PG_TRY();
	{
		bool		isnull;
		RequestGuard guard;
		ArrayType  *existing;
		int			nexisting;

		begin_xact("segments: evaluating segments");
		run("SELECT coalesce(pg_catalog.array_agg(id), '{}') FROM segments.segment"
			" WHERE id OPERATOR(pg_catalog.=) ANY ($1)",
			1, types, values, SPI_OK_SELECT);
		existing = DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 1, &isnull));
		nexisting = ArrayGetNItems(ARR_NDIM(existing), ARR_DIMS(existing));
		if (nexisting > 0)
		{
			guard = guard_begin();
			if (segments_evaluation_timeout > 0)
				enable_timeout_after(evaluation_timer, segments_evaluation_timeout);
			EvaluateRefresh((pg_uuid_t *) ARR_DATA_PTR(existing), nexisting);
			disable_timeout(evaluation_timer, false);
			/* the limit passed, even if nothing noticed the cancel in time */
			if (evaluation_timed_out)
				elog(ERROR, "segments worker: evaluation timed out");
			guard_end(&guard);
		}
		commit_xact();
	}
	PG_CATCH();
	{
		char	   *message;

		disable_timeout(evaluation_timer, false);
		if (evaluation_timed_out)
			QueryCancelPending = false; /* the cancel was ours: not for the next step */
		message = abort_xact();
		begin_xact("segments: recording a failure");
		if (evaluation_timed_out && n > 1)
		{
			/* segments due together: each gets a pass of its own, and its own limit */
			run("UPDATE segments.segment_state SET state = 'pending'"
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
			values[1] = CStringGetTextDatum(message);
			run(StatsColumnsExist() ?
				"UPDATE segments.segment_state SET state = 'failed', last_error = $2,"
				"       errors = errors OPERATOR(pg_catalog.+) 1, last_error_at = pg_catalog.now(),"
				"       last_failure = $2"
				" WHERE segment_id OPERATOR(pg_catalog.=) ANY ($1)"
				"   AND state OPERATOR(pg_catalog.=) ANY ('{evaluating,ready}'::pg_catalog.text[])" :
				"UPDATE segments.segment_state SET state = 'failed', last_error = $2"
				" WHERE segment_id OPERATOR(pg_catalog.=) ANY ($1)"
				"   AND state OPERATOR(pg_catalog.=) ANY ('{evaluating,ready}'::pg_catalog.text[])",
				2, types, values, SPI_OK_UPDATE);
		}
		commit_xact();
	}
	PG_END_TRY();
	/* a timer that fired as the pass ended must not cancel later work */
	if (evaluation_timed_out)
	{
		evaluation_timed_out = false;
		QueryCancelPending = false;
	}

	SpinLockAcquire(&segments_shared->mutex);
	my_slot->segments_evaluated += n;
	my_slot->stats.passes++;
	my_slot->stats.segments_evaluated += n;
	my_slot->stats.evaluation_ms += (GetCurrentTimestamp() - started) / 1000.0;
	SpinLockRelease(&segments_shared->mutex);
}

/*
 * Takes the oldest pending segment and evaluates it.  Returns false when
 * none is pending.
 */
static bool
evaluate_pending(void)
{
	pg_uuid_t	id;
	bool		found = false;

	begin_xact("segments: taking a pending segment");
	if (is_configured())
	{
		run("UPDATE segments.segment_state SET state = 'evaluating'"
			" WHERE segment_id OPERATOR(pg_catalog.=) (SELECT segment_id FROM segments.segment_state"
			"                      WHERE state OPERATOR(pg_catalog.=) 'pending'"
			"                      ORDER BY requested_at, segment_id LIMIT 1"
			"                      FOR UPDATE SKIP LOCKED)"
			" RETURNING segment_id",
			0, NULL, NULL, SPI_OK_UPDATE_RETURNING);
		if (SPI_processed == 1)
		{
			bool		isnull;

			memcpy(&id, DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 1, &isnull)),
				   sizeof(pg_uuid_t));
			found = true;
		}
	}
	commit_xact();
	if (found)
	{
		set_state(SWS_EVALUATING);
		evaluate_segments(&id, 1);
	}
	return found;
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
		Max((int64) segments_time_resolution * 1000, time_window_pause_us);
	volatile bool worked = false;

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
		ArrayType  *keys;
		bool		done;
		MemoryContext old;

		begin_xact("segments: applying the passage of time");
		if (!window_active)
		{
			bool		isnull;

			window_to = GetCurrentTransactionStartTimestamp();
			window_from = time_window_end;
			window_busy_us = 0;
			have_time_segments = false;
			if (is_configured())
			{
				run("SELECT EXISTS (SELECT 1 FROM segments.segment WHERE uses_time)",
					0, NULL, NULL, SPI_OK_SELECT);
				have_time_segments = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
																SPI_tuptable->tupdesc, 1, &isnull));
			}
			if (have_time_segments && window_from == 0)
			{
				Datum		d;

				/* flips since the oldest evaluation of a time-dependent segment */
				run("SELECT pg_catalog.min(st.evaluated_at) FROM segments.segment_state st"
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
				run("UPDATE segments.segment_state st SET state = 'pending',"
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
										&n, &ids);
			if (keys != NULL)
			{
				set_state(SWS_APPLYING);
				EvaluateContacts(keys);
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
		window_busy_us += GetCurrentTimestamp() - now;
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
		set_state(SWS_EVALUATING);
		n = TimeSweepChunk(&sweep_cursor, &sweep_has_cursor, SWEEP_CHUNK, sweep_cxt);
		if (n == 0)
		{
			Oid			types[2] = {UUIDARRAYOID, TIMESTAMPTZOID};
			Datum		values[2] = {sweep_ids, TimestampTzGetDatum(sweep_started)};

			run(StatsColumnsExist() ?
				"UPDATE segments.segment_state"
				"   SET evaluated_at = $2,"
				"       last_duration = pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) $2,"
				"       evaluations = evaluations OPERATOR(pg_catalog.+) 1,"
				"       evaluation_time = evaluation_time OPERATOR(pg_catalog.+)"
				"         pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) $2)"
				"         OPERATOR(pg_catalog.*) 1000"
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
		run("SELECT st.segment_id,"
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
	}
	commit_xact();
	if (nsweep > 0)
		sweep_start(sweep, nsweep);
	if (ndue > 0)
	{
		set_state(SWS_EVALUATING);
		evaluate_segments(due, ndue);
	}
	return ndue > 0 || nsweep > 0;
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
	for (;;)
	{
		int64		n = apply_batch();

		if (n < 0)
			return false;		/* error: retry after naptime */
		if (n < segments_batch_size)
			break;
		if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(), APPLY_BUDGET_MS))
			return true;
	}
	if (evaluate_pending())
		return true;
	if (apply_time_window(sleep_ms))
		return true;
	if (sweep_step())
		return true;
	if (evaluate_due(sleep_ms))
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
	run("UPDATE segments.segment_state SET state = 'pending'"
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
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	my_slot = &segments_shared->slots[slotno];
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
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(round_cxt);
	}
}

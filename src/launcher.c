/*-------------------------------------------------------------------------
 *
 * launcher.c
 *		The launcher: one static background worker that starts a worker per
 *		database where the extension is installed.
 *
 * It cannot see pg_extension of other databases, so it starts a worker
 * for every database that accepts connections (templates excepted); a
 * worker that finds no extension says so in its slot and exits, and the
 * slot is freed (slots are for databases served).  Such a database is
 * probed again when a backend there asks for a worker (CREATE EXTENSION
 * does) or every few minutes.  A worker that dies unexpectedly
 * is restarted after a pause; after a server crash, the launcher (and so
 * every worker) is restarted by the postmaster.  Registered with
 * BgWorkerStart_RecoveryFinished, it does not run on a hot standby and
 * starts on promotion.
 *
 *-------------------------------------------------------------------------
 */
#include "catalog.h"
#include "worker.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include <signal.h>

/* How often the launcher looks for new databases. */
#define LAUNCHER_SCAN_MS		10000
/* Pause before restarting a worker that died. */
#define WORKER_RESTART_MS		5000
/*
 * Least time between two starts of a worker that found segments.enabled
 * off: each committed change asks for one (the setting may have been turned
 * on since), and a start per commit was a process per commit.
 */
#define DISABLED_RETRY_MS		1000
/* How often a database without the extension is probed again. */
#define PROBE_AGAIN_MS			(5 * 60 * 1000)

/* Handles of the workers this launcher started, by slot. */
static BackgroundWorkerHandle **handles = NULL;
static bool slots_full_reported = false;

/*
 * Databases found without the extension.  Their slots are freed at once, so
 * that databases that do use it find one (segments.max_workers counts
 * databases served, not databases probed); they are probed again when a
 * backend there asks for a worker (CREATE EXTENSION does) or after
 * PROBE_AGAIN_MS.
 */
typedef struct ProbedDatabase
{
	Oid			dboid;
	TimestampTz probed_at;
} ProbedDatabase;
static ProbedDatabase *probed = NULL;
static int	nprobed = 0;
static int	probed_allocated = 0;

static int
probed_find(Oid dboid)
{
	for (int i = 0; i < nprobed; i++)
	{
		if (probed[i].dboid == dboid)
			return i;
	}
	return -1;
}

static void
probed_forget(Oid dboid)
{
	int			i = probed_find(dboid);

	if (i >= 0)
		probed[i] = probed[--nprobed];
}

static void
probed_remember(Oid dboid, TimestampTz when)
{
	int			i = probed_find(dboid);

	if (i < 0)
	{
		if (nprobed == probed_allocated)
		{
			probed_allocated = Max(16, probed_allocated * 2);
			probed = probed ? repalloc(probed, probed_allocated * sizeof(ProbedDatabase)) :
				MemoryContextAlloc(TopMemoryContext, probed_allocated * sizeof(ProbedDatabase));
		}
		i = nprobed++;
		probed[i].dboid = dboid;
	}
	probed[i].probed_at = when;
}

/* Backends of databases without a slot asked for a worker: probe them now. */
static void
take_requests(void)
{
	Oid			requests[SEGMENTS_MAX_REQUESTS];
	int			n;
	bool		overflow;

	SpinLockAcquire(&segments_shared->mutex);
	n = segments_shared->nrequests;
	memcpy(requests, segments_shared->requests, n * sizeof(Oid));
	overflow = segments_shared->requests_overflow;
	segments_shared->nrequests = 0;
	segments_shared->requests_overflow = false;
	SpinLockRelease(&segments_shared->mutex);
	if (overflow)
		nprobed = 0;
	for (int i = 0; i < n; i++)
		probed_forget(requests[i]);
}

/* Registers the launcher; _PG_init calls it when preloaded. */
void
LauncherRegister(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 10;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "segments");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "segments_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "segments launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "segments launcher");
	RegisterBackgroundWorker(&worker);
}

/* on_shmem_exit callback: the launcher is gone. */
static void
launcher_detach(int code, Datum arg)
{
	SpinLockAcquire(&segments_shared->mutex);
	if (segments_shared->launcher_pid == MyProcPid)
	{
		segments_shared->launcher_pid = 0;
		segments_shared->launcher_latch = NULL;
	}
	SpinLockRelease(&segments_shared->mutex);
}

/* Starts the worker of a slot; false when no background worker is free. */
static bool
start_worker(int i, Oid dboid)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "segments");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "segments_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "segments worker for database %u", dboid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "segments worker");
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	memcpy(worker.bgw_extra, &i, sizeof(int));
	worker.bgw_notify_pid = MyProcPid;

	if (handles[i] != NULL)
		pfree(handles[i]);
	handles[i] = NULL;
	if (!RegisterDynamicBackgroundWorker(&worker, &handles[i]))
	{
		handles[i] = NULL;
		return false;
	}
	return true;
}

/*
 * Is the worker of slot i still alive?  Through our handle when we started
 * it; else (started by a launcher that died) by the pid it keeps in its
 * slot until it exits.
 */
static bool
worker_alive(int i)
{
	pid_t		pid;

	if (handles[i] == NULL)
	{
		SpinLockAcquire(&segments_shared->mutex);
		pid = segments_shared->slots[i].pid;
		SpinLockRelease(&segments_shared->mutex);
		return pid != 0;
	}
	return GetBackgroundWorkerPid(handles[i], &pid) != BGWH_STOPPED;
}

/* Stops every worker (segments.enabled turned off). */
static void
stop_workers(void)
{
	for (int i = 0; i < segments_shared->nslots; i++)
	{
		pid_t		pid;

		if (handles[i] != NULL)
		{
			if (worker_alive(i))
				TerminateBackgroundWorker(handles[i]);
			continue;
		}
		SpinLockAcquire(&segments_shared->mutex);
		pid = segments_shared->slots[i].pid;
		SpinLockRelease(&segments_shared->mutex);
		if (pid != 0)
			kill(pid, SIGTERM);
	}
}

/* The databases a worker may serve: oids, in a palloc'd array. */
static Oid *
list_databases(int *n)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	int			allocated = 16;
	Oid		   *oids = palloc(allocated * sizeof(Oid));

	*n = 0;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (!db->datallowconn || db->datistemplate)
			continue;
		if (*n == allocated)
		{
			allocated *= 2;
			oids = repalloc(oids, allocated * sizeof(Oid));
		}
		oids[(*n)++] = db->oid;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
	return oids;
}

/*
 * A database as a DBA knows it, for messages: its quoted name (in the
 * current memory context), or its OID when it is already gone.
 */
static char *
database_label(Oid dboid)
{
	MemoryContext caller = CurrentMemoryContext;
	char	   *name;
	char	   *label;

	StartTransactionCommand();
	name = get_database_name(dboid);
	label = name ? MemoryContextStrdup(caller, quote_identifier(name)) : NULL;
	CommitTransactionCommand();
	MemoryContextSwitchTo(caller);
	return label ? label : psprintf("with OID %u", dboid);
}

/*
 * One round: frees slots of databases that are gone, assigns slots to new
 * databases, and starts the workers that should run.  Returns how long the
 * launcher may sleep: until the next scan, or sooner when a paused worker
 * is due for a restart.
 */
static long
launcher_round(MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	int			ndb;
	Oid		   *dbs = list_databases(&ndb);
	TimestampTz now = GetCurrentTimestamp();
	int			nslots = segments_shared->nslots;
	TimestampTz wake_at = TimestampTzPlusMilliseconds(now, LAUNCHER_SCAN_MS);

	MemoryContextSwitchTo(old);

	for (int i = 0; i < nslots; i++)
	{
		SegmentsWorkerSlot *slot = &segments_shared->slots[i];
		bool		alive = worker_alive(i);
		bool		exists = false;
		bool		start = false;

		for (int d = 0; d < ndb && !exists; d++)
			exists = (slot->in_use && dbs[d] == slot->dboid);

		SpinLockAcquire(&segments_shared->mutex);
		if (slot->in_use && !exists && !alive)
			memset(slot, 0, sizeof(*slot));		/* database dropped */
		else if (slot->in_use && !alive && slot->state == SWS_NO_EXTENSION &&
				 !slot->service_requested)
		{
			/* no extension there: free the slot, remember the probe */
			probed_remember(slot->dboid, slot->probed_at);
			memset(slot, 0, sizeof(*slot));
		}
		else if (slot->in_use && !alive)
		{
			if (slot->pid != 0)
			{
				/* died without detaching: postmaster restarts everything */
				slot->pid = 0;
				slot->latch = NULL;
			}
			if (slot->state != SWS_NONE && slot->state != SWS_NO_EXTENSION &&
				slot->state != SWS_DISABLED)
			{
				/* exited unexpectedly: restart after a pause */
				slot->state = SWS_NONE;
				slot->paused_until = Max(slot->paused_until,
										 TimestampTzPlusMilliseconds(now, WORKER_RESTART_MS));
			}
			if (now >= slot->paused_until)
			{
				if (slot->state == SWS_NONE || slot->service_requested)
					start = true;
				else if (slot->state == SWS_NO_EXTENSION &&
						 TimestampDifferenceExceeds(slot->probed_at, now, PROBE_AGAIN_MS))
					start = true;
			}
			if (start)
			{
				if (slot->state == SWS_DISABLED)
					slot->paused_until = TimestampTzPlusMilliseconds(now, DISABLED_RETRY_MS);
				slot->service_requested = false;
				slot->state = SWS_STARTING;
				slot->probed_at = now;
			}
			else if (now < slot->paused_until &&
					 (slot->state == SWS_NONE || slot->service_requested))
				wake_at = Min(wake_at, slot->paused_until);	/* restart when due */
		}
		SpinLockRelease(&segments_shared->mutex);

		if (start && !start_worker(i, slot->dboid))
		{
			SpinLockAcquire(&segments_shared->mutex);
			slot->state = SWS_NONE;
			slot->paused_until = TimestampTzPlusMilliseconds(now, WORKER_RESTART_MS);
			SpinLockRelease(&segments_shared->mutex);
			wake_at = Min(wake_at, TimestampTzPlusMilliseconds(now, WORKER_RESTART_MS));
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("segments launcher could not start a worker for database %s",
							database_label(slot->dboid)),
					 errhint("Raise max_worker_processes.")));
		}
	}

	/* databases without a slot get one, and a first worker */
	for (int d = 0; d < ndb; d++)
	{
		int			free_slot = -1;
		bool		found = false;
		bool		probing = false;
		int			p = probed_find(dbs[d]);

		/* known to have no extension, and not asked for: not yet again */
		if (p >= 0 && !TimestampDifferenceExceeds(probed[p].probed_at, now, PROBE_AGAIN_MS))
			continue;
		SpinLockAcquire(&segments_shared->mutex);
		for (int i = 0; i < nslots && !found; i++)
		{
			if (segments_shared->slots[i].in_use)
			{
				found = (segments_shared->slots[i].dboid == dbs[d]);
				/* a probe in progress will free its slot soon */
				probing |= (segments_shared->slots[i].state == SWS_STARTING ||
							segments_shared->slots[i].state == SWS_NO_EXTENSION);
			}
			else if (free_slot < 0)
				free_slot = i;
		}
		if (!found && free_slot >= 0)
		{
			SegmentsWorkerSlot *slot = &segments_shared->slots[free_slot];

			memset(slot, 0, sizeof(*slot));
			slot->in_use = true;
			slot->dboid = dbs[d];
			slot->state = SWS_STARTING;
			slot->probed_at = now;
		}
		SpinLockRelease(&segments_shared->mutex);

		if (!found && free_slot >= 0)
			probed_forget(dbs[d]);
		if (!found && free_slot < 0 && probing)
			wake_at = Min(wake_at, TimestampTzPlusMilliseconds(now, 1000));
		else if (!found && free_slot < 0)
		{
			if (!slots_full_reported)
				ereport(WARNING,
						(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
						 errmsg("segments.max_workers (%d) is too low to serve every database",
								nslots),
						 errhint("Raise segments.max_workers (and max_worker_processes) and restart the server.")));
			slots_full_reported = true;
		}
		else if (!found && !start_worker(free_slot, dbs[d]))
		{
			SpinLockAcquire(&segments_shared->mutex);
			segments_shared->slots[free_slot].state = SWS_NONE;
			segments_shared->slots[free_slot].paused_until =
				TimestampTzPlusMilliseconds(now, WORKER_RESTART_MS);
			SpinLockRelease(&segments_shared->mutex);
			wake_at = Min(wake_at, TimestampTzPlusMilliseconds(now, WORKER_RESTART_MS));
		}
	}
	MemoryContextReset(cxt);

	now = GetCurrentTimestamp();
	if (wake_at <= now)
		return 1;
	/* round up, so that the next round finds the pause over */
	return Min((long) ((wake_at - now + 999) / 1000), (long) LAUNCHER_SCAN_MS);
}

/* Entry point of the launcher. */
void
segments_launcher_main(Datum arg)
{
	MemoryContext cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	handles = MemoryContextAllocZero(TopMemoryContext,
									 segments_shared->nslots * sizeof(BackgroundWorkerHandle *));
	cxt = AllocSetContextCreate(TopMemoryContext, "segments launcher",
								ALLOCSET_DEFAULT_SIZES);

	SpinLockAcquire(&segments_shared->mutex);
	segments_shared->launcher_pid = MyProcPid;
	segments_shared->launcher_latch = MyLatch;
	/* a restarted launcher forgets the workers of its predecessor */
	for (int i = 0; i < segments_shared->nslots; i++)
	{
		if (segments_shared->slots[i].pid == 0)
			segments_shared->slots[i].state = SWS_NONE;
	}
	SpinLockRelease(&segments_shared->mutex);
	on_shmem_exit(launcher_detach, (Datum) 0);

	ereport(LOG, (errmsg("segments launcher started")));

	for (;;)
	{
		long		sleep_ms = LAUNCHER_SCAN_MS;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (segments_enabled)
		{
			take_requests();
			sleep_ms = launcher_round(cxt);
		}
		else
			stop_workers();

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

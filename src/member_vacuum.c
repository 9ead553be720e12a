/*-------------------------------------------------------------------------
 *
 * member_vacuum.c
 *		The worker's VACUUM of segments.member, in a process of its own.
 *
 * Every row a pass or a change rewrites leaves a dead version behind: its
 * line pointer and its index entries (a few dozen in the GIN index on the
 * segment numbers, since no such update is HOT).  Pruning before a pass
 * (member_space.c) gives the tuple's bytes back, but only VACUUM frees the
 * line pointers and the index entries.  Autovacuum, which looks at a
 * database once a minute and at a table only past its own thresholds,
 * falls behind passes that rewrite every row in seconds.  So the worker
 * has the table vacuumed once enough rows were replaced since the last
 * vacuum (segments.member_vacuum_scale_factor).
 *
 * Writers hold only ROW EXCLUSIVE on the table (member_lock.c), which
 * VACUUM's SHARE UPDATE EXCLUSIVE does not conflict with.  The vacuum runs
 * in a dynamic background worker the worker starts (MemberVacuumStart),
 * the way autovacuum calls vacuum() from a background process, while the
 * worker goes on applying changes and evaluating: at a million contacts
 * it takes seconds, which changes no longer wait for.  One at a time: the
 * worker starts no other while it runs (and VACUUM's lock would skip a
 * second).  It ends on SIGTERM like any backend's query, notes a SIGHUP
 * (its settings are those it started with), and ends with the worker.  Its
 * failure (an error, a SIGTERM) is its own: the worker starts another
 * when one is due again.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/vacuum.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "member_vacuum.h"

/* segments.member_vacuum_scale_factor: 0 turns the worker's vacuum off. */
double		segments_member_vacuum_scale_factor = 0.1;

/* Fewest replaced rows worth a vacuum, whatever the table's size. */
#define MEMBER_VACUUM_MIN_ROWS	1000

/*
 * Rows replaced or deleted in segments.member as of its last vacuum (of
 * anyone's), and how many vacuums the statistics counted then: a vacuum
 * by autovacuum or by hand moves the baseline too.
 */
static Oid	baseline_relid = InvalidOid;
static PgStat_Counter baseline_replaced = 0;
static PgStat_Counter baseline_vacuums = -1;

/*
 * Rows replaced as of the last look, and as of the start of the vacuum
 * this worker started last (-1: none since the baseline moved): rows
 * replaced while it ran were not all dead when it began.
 */
static PgStat_Counter looked_replaced = 0;
static PgStat_Counter started_replaced = -1;

/* The vacuum process this worker started, until it is seen gone. */
static BackgroundWorkerHandle *vacuum_handle = NULL;
static TimestampTz vacuum_started_at = 0;
static bool stop_registered = false;
static bool start_failure_logged = false;

void
MemberVacuumInit(void)
{
	DefineCustomRealVariable("segments.member_vacuum_scale_factor",
							 "Fraction of segments.member's rows replaced since its last vacuum "
							 "after which the worker vacuums it.",
							 "Passes and changes replace stored rows; the worker vacuums "
							 "between its transactions, when no change is waiting.  "
							 "0 leaves it to autovacuum.",
							 &segments_member_vacuum_scale_factor,
							 0.1, 0.0, 100.0,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);
}

/* Rows updated (not HOT) or deleted, cumulative, from the statistics. */
static PgStat_Counter
replaced_rows(const PgStat_StatTabEntry *tab)
{
	return tab->tuples_updated - tab->tuples_hot_updated + tab->tuples_deleted;
}

/*
 * During a pass, a vacuum is due once this fraction of the rows were
 * replaced, at least: a pass that rewrites every row then pays for two
 * scans of the indexes, not one per scale factor's worth of rows, and its
 * second half reuses the space of the versions its first half replaced.
 */
#define MEMBER_VACUUM_IN_PASS	0.5

/*
 * Is a vacuum of segments.member (relid) due?  In a transaction; reads the
 * cumulative statistics, to which the caller flushed its own counts.
 * in_pass: a pass is in progress (see MEMBER_VACUUM_IN_PASS).
 */
bool
MemberVacuumDue(Oid relid, bool in_pass)
{
	double		factor = segments_member_vacuum_scale_factor;

	PgStat_StatTabEntry *tab;
	PgStat_Counter vacuums;
	double		threshold;

	if (in_pass)
		factor = Max(factor, MEMBER_VACUUM_IN_PASS);
	if (segments_member_vacuum_scale_factor <= 0 || !OidIsValid(relid))
		return false;
	pgstat_clear_snapshot();	/* the counts as of now, not of an earlier read */
	tab = pgstat_fetch_stat_tabentry(relid);
	if (tab == NULL)
		return false;
	vacuums = tab->vacuum_count + tab->autovac_vacuum_count;
	if (relid != baseline_relid)
	{
		/*
		 * First look (a worker that started) or a new table (configure()):
		 * the rows replaced since the last vacuum are about the dead ones
		 * the statistics count (fewer: pruning subtracts the versions it
		 * removed), or all of them when it was never vacuumed.
		 */
		baseline_relid = relid;
		baseline_vacuums = vacuums;
		baseline_replaced = vacuums == 0 ? 0 :
			replaced_rows(tab) - Max(tab->n_dead_tuples, 0);
	}
	else if (vacuums != baseline_vacuums)
	{
		/*
		 * Vacuumed since, by the worker or another: what was replaced is
		 * done with, even the versions an old snapshot kept it from
		 * removing (counting those again would vacuum in vain until that
		 * snapshot goes).
		 */
		baseline_vacuums = vacuums;
		baseline_replaced = started_replaced >= 0 ?
			Min(started_replaced, replaced_rows(tab)) : replaced_rows(tab);
		started_replaced = -1;
	}
	looked_replaced = replaced_rows(tab);
	threshold = MEMBER_VACUUM_MIN_ROWS + factor * Max(tab->n_live_tuples, 0);
	return replaced_rows(tab) - baseline_replaced >= threshold;
}

/*
 * VACUUM segments.member (relid), as autovacuum does, outside any
 * transaction (vacuum() commits the one it is given and runs its own).
 * Skips the table when another session holds its lock (a VACUUM by hand,
 * autovacuum, a vacuum process that is still ending).  Errors propagate.
 */
static void
member_vacuum(Oid relid)
{
	VacuumParams params;
	MemoryContext portal = AllocSetContextCreate(TopMemoryContext, "segments vacuum",
												 ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(portal);
	MemoryContext saved_portal = PortalContext;

	Assert(!IsTransactionState());
	memset(&params, 0, sizeof(params));
	params.options = VACOPT_VACUUM | VACOPT_SKIP_LOCKED | VACOPT_PROCESS_TOAST;
	params.freeze_min_age = -1;
	params.freeze_table_age = -1;
	params.multixact_freeze_min_age = -1;
	params.multixact_freeze_table_age = -1;
	params.is_wraparound = false;
	params.log_min_duration = -1;
	params.index_cleanup = VACOPTVALUE_AUTO;
	params.truncate = VACOPTVALUE_AUTO;
	params.nworkers = -1;		/* no parallel workers: one core, like a pass */

	/* vacuum() keeps its memory under PortalContext, as in autovacuum */
	PortalContext = portal;
	PG_TRY();
	{
		StartTransactionCommand();
		vacuum(list_make1(makeVacuumRelation(NULL, relid, NIL)), &params, NULL, true);
		CommitTransactionCommand();
	}
	PG_FINALLY();
	{
		/* an error's data lives in ErrorContext: the portal may go */
		PortalContext = saved_portal;
		MemoryContextSwitchTo(old);
		MemoryContextDelete(portal);
	}
	PG_END_TRY();
	/* vacuum() counted itself in the statistics: the next look moves the baseline */
	pgstat_report_stat(true);
}

/* on_shmem_exit callback of the worker: its vacuum process ends with it. */
static void
vacuum_stop(int code, Datum arg)
{
	if (vacuum_handle != NULL)
		TerminateBackgroundWorker(vacuum_handle);
}

/*
 * Is the vacuum process this worker started still running?  Once it is
 * seen gone, sets *ran to how long it ran (from its start to now) and
 * forgets it; *ran is 0 otherwise.
 */
bool
MemberVacuumRunning(int64 *ran)
{
	pid_t		pid;

	*ran = 0;
	if (vacuum_handle == NULL)
		return false;
	switch (GetBackgroundWorkerPid(vacuum_handle, &pid))
	{
		case BGWH_STARTED:
		case BGWH_NOT_YET_STARTED:
			return true;
		case BGWH_STOPPED:
		case BGWH_POSTMASTER_DIED:
			break;
	}
	pfree(vacuum_handle);
	vacuum_handle = NULL;
	*ran = GetCurrentTimestamp() - vacuum_started_at;
	return false;
}

/*
 * Starts the vacuum of segments.member (relid) in a background worker of
 * this database, unless one runs already.  False when none could be
 * started (no free background worker slot: max_worker_processes), which
 * is logged once until a start succeeds; the caller tries again later.
 */
bool
MemberVacuumStart(Oid relid)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	MemoryContext old;
	int64		ran;

	if (MemberVacuumRunning(&ran))
		return true;
	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "segments");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "segments_member_vacuum_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "segments member vacuum for database %u", MyDatabaseId);
	snprintf(worker.bgw_type, BGW_MAXLEN, "segments member vacuum");
	worker.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
	memcpy(worker.bgw_extra, &relid, sizeof(Oid));
	worker.bgw_notify_pid = MyProcPid;	/* its end sets the worker's latch */

	old = MemoryContextSwitchTo(TopMemoryContext);
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		MemoryContextSwitchTo(old);
		if (!start_failure_logged)
			ereport(LOG,
					(errmsg("segments worker for database %u could not start a vacuum of segments.member",
							MyDatabaseId),
					 errdetail("No background worker slot is free."),
					 errhint("Raise max_worker_processes; meanwhile the worker tries again and autovacuum may vacuum the table.")));
		start_failure_logged = true;
		return false;
	}
	MemoryContextSwitchTo(old);
	start_failure_logged = false;
	vacuum_handle = handle;
	vacuum_started_at = GetCurrentTimestamp();
	started_replaced = looked_replaced;
	if (!stop_registered)
	{
		on_shmem_exit(vacuum_stop, (Datum) 0);
		stop_registered = true;
	}
	return true;
}

/*
 * Entry point of the vacuum process: arg is the database oid, bgw_extra
 * segments.member's oid.  Runs as the bootstrap superuser, like the
 * worker; vacuum() itself runs as the table's owner, in a
 * security-restricted operation.
 */
void
segments_member_vacuum_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	Oid			relid;

	memcpy(&relid, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("segments member vacuum");
	/* above ALTER DATABASE/ROLE ... SET search_path, as in the worker */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	pgstat_report_activity(STATE_RUNNING, "segments: vacuuming segments.member");
	member_vacuum(relid);
	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}

/*-------------------------------------------------------------------------
 *
 * segments.c
 *		Module entry: _PG_init, settings (GUCs) and background worker
 *		registration.
 *
 *-------------------------------------------------------------------------
 */
#include "capture_ring.h"
#include "catalog.h"
#include "eval_pass.h"
#include "history.h"
#include "member_compact.h"
#include "member_vacuum.h"
#include "worker.h"

#include "miscadmin.h"
#include "utils/guc.h"

#include <limits.h>

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * segments.tenant: the session's tenant.  PGC_SUSET, so only superusers and
 * roles granted SET on it change it; ALTER ROLE ... SET fixes it per role.
 * Loaded late (no preload), PostgreSQL re-applies a value set before the
 * load only if whoever set it had that privilege.
 */
static char *segments_tenant = NULL;

/* Worker settings; see README.md, Operations. */
bool		segments_enabled = true;
int			segments_naptime = 5000;
int			segments_batch_size = 5000;
int			segments_pass_chunk_size = 20000;
int			segments_max_workers = 8;
int			segments_time_resolution = 2000;
int			segments_evaluation_timeout = 5 * 60 * 1000;

/* Set in the postmaster when preloaded; inherited by every child. */
bool		segments_preloaded = false;

/* Set by the worker of a database at start. */
bool		segments_in_worker = false;

/* Defines the settings and, when preloaded, registers the worker. */
void
_PG_init(void)
{
	DefineCustomStringVariable("segments.tenant",
							   "Limits the session to the segments and contacts of this tenant.",
							   "Empty (the default): no tenant; with a tenant column configured, "
							   "only members of segments_admin then see segments.",
							   &segments_tenant,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomBoolVariable("segments.enabled",
							 "Runs the background workers that keep membership fresh.",
							 "Off stops the workers; contact changes keep being queued "
							 "and are applied once it is on again.  Can be set per "
							 "database with ALTER DATABASE.",
							 &segments_enabled,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("segments.naptime",
							"Longest time a worker sleeps when it has nothing to do.",
							"Committed changes wake the worker at once; this is the "
							"fallback poll.",
							&segments_naptime,
							5000, 10, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("segments.batch_size",
							"Queued contact changes a worker applies per transaction.",
							NULL,
							&segments_batch_size,
							5000, 1, 1000000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("segments.pass_chunk_size",
							"Most contacts a worker evaluates per transaction of a pass over the source.",
							"Chunks are sized to take about 500 ms of CPU (150 ms of wall clock when changes wait); queued contact changes are applied between them.",
							&segments_pass_chunk_size,
							20000, 100, 10000000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("segments.time_resolution",
							"Pause between re-evaluations of a segment whose rules depend on the current time.",
							"A contact enters or leaves such a segment at most this long "
							"(plus the duration of one evaluation) after the moment it should.",
							&segments_time_resolution,
							2000, 100, 24 * 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("segments.evaluation_timeout",
							"Longest evaluation of a segment by the worker.",
							"A segment whose evaluation takes longer fails with this reason, "
							"and the worker goes on with other work.  0 turns the limit off.",
							&segments_evaluation_timeout,
							5 * 60 * 1000, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	/*
	 * A postmaster setting can only be defined at start-up: loaded later
	 * (no preload, so no workers) it would end the session.
	 */
	if (process_shared_preload_libraries_in_progress)
		DefineCustomIntVariable("segments.max_workers",
								"Maximum number of databases served by background workers.",
								"Each takes one of max_worker_processes, as does the launcher.",
								&segments_max_workers,
								8, 1, 1024,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);
	if (process_shared_preload_libraries_in_progress)
		DefineCustomIntVariable("segments.capture_ring_size",
								"Entries of each shared-memory ring of captured changes (capture_ring.c).",
								"Small transactions hand their changed keys to the worker through "
								"a ring in shared memory instead of segments.change_queue; 0 turns "
								"the rings off.  After a crash, a full pass re-evaluates every segment.",
								&segments_capture_ring_size,
								32768, 0, 1 << 24,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);

	DefineCustomBoolVariable("segments.capture_ring",
							 "Lets small transactions hand their captured changes to the worker's shared-memory ring.",
							 "Off: every captured change goes through segments.change_queue "
							 "(as with segments.capture_ring_size = 0, for this session).",
							 &segments_capture_ring_on,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	HistoryInit();				/* segments.history* settings */
	MemberVacuumInit();			/* segments.member_vacuum_scale_factor */
	MemberCompactInit();		/* segments.member_compact_fraction */
	PassParallelInit();			/* segments.pass_helper* */
	MarkGUCPrefixReserved("segments");
	CatalogInitCallbacks();
	CaptureInitCallbacks();
	MembershipPlanInit();		/* segments.membership flattened (membership_plan.c) */

	if (process_shared_preload_libraries_in_progress)
	{
		segments_preloaded = true;
		SharedRequestMemory();
		SharedInitUtilityHook();
		LauncherRegister();
	}
}

/*-------------------------------------------------------------------------
 *
 * worker.h
 *		Background workers, change capture and the shared memory they use.
 *
 * With shared_preload_libraries = 'segments', a static launcher starts one
 * dynamic worker per database where the extension is installed.  Each
 * worker drains its database's change queue (filled by the capture
 * trigger on the contact source), evaluates pending segments, and
 * re-evaluates time-dependent and scheduled segments.  The slots below
 * tell the launcher, the workers, segments.wait() and the worker view
 * about each other.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SEGMENTS_WORKER_H
#define SEGMENTS_WORKER_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/spin.h"

/* Settings (segments.c). */
extern bool segments_enabled;
extern int	segments_naptime;		/* ms */
extern int	segments_batch_size;
extern int	segments_pass_chunk_size;
extern int	segments_max_workers;
extern int	segments_time_resolution;	/* ms */
extern int	segments_evaluation_timeout;	/* ms; 0: none */

/* True in processes forked from a postmaster that preloaded the library. */
extern bool segments_preloaded;

/* process_memory.c: a background process keeps the memory it frees. */
extern void ProcessKeepFreedMemory(void);

/* True in a database's worker. */
extern bool segments_in_worker;

/* What a worker is doing, as shown by segments.worker. */
typedef enum SegmentsWorkerState
{
	SWS_NONE = 0,				/* slot not running */
	SWS_STARTING,
	SWS_IDLE,
	SWS_APPLYING,				/* applying queued contact changes */
	SWS_EVALUATING,				/* evaluating a segment */
	SWS_NO_EXTENSION,			/* exited: extension not installed */
	SWS_DISABLED				/* exited: segments.enabled is off */
} SegmentsWorkerState;

#define SEGMENTS_ERROR_LEN 256

/*
 * Cumulative counters of a database's workers, for segments.stat_worker:
 * kept across worker restarts (they live in the launcher's slot), zeroed
 * by segments.stat_reset() and when the server starts.
 */
typedef struct SegmentsWorkerStats
{
	int64		changes_applied;	/* queued contact changes applied */
	int64		batches;		/* transactions that applied them */
	int64		passes;			/* evaluation passes over the source */
	int64		segments_evaluated; /* segments those passes evaluated */
	double		evaluation_ms;	/* time spent in those passes */
	int64		time_windows;	/* passages of time applied */
	int64		sweeps;			/* whole re-checks of time segments */
	int64		errors;			/* failed transactions */
	char		last_error[SEGMENTS_ERROR_LEN]; /* kept after a success */
	TimestampTz last_error_at;
	TimestampTz reset_at;		/* 0: since the server started */
} SegmentsWorkerStats;

/* One database served (or probed) by a worker. */
typedef struct SegmentsWorkerSlot
{
	bool		in_use;			/* assigned to dboid by the launcher */
	Oid			dboid;
	pid_t		pid;			/* 0 when no worker runs */
	Latch	   *latch;			/* the worker's latch while it runs */
	SegmentsWorkerState state;
	bool		service_requested;	/* a backend asked for a worker */
	TimestampTz probed_at;		/* when the worker last started */
	TimestampTz paused_until;	/* launcher does not start it before */
	TimestampTz started_at;
	TimestampTz last_batch_at;
	int64		last_batch_size;
	int64		changes_applied;	/* queue entries applied */
	uint64		wakeups;		/* by committing writers (shared.c) */
	int64		segments_evaluated;
	TimestampTz time_rewind_to;	/* a backend's pass evaluated the time as of
								 * then: the worker's next window starts there */
	char		last_error[SEGMENTS_ERROR_LEN]; /* cleared by a success */
	TimestampTz last_error_at;	/* kept after a success */
	TimestampTz time_applied_until; /* time flips applied up to; 0: none */
	SegmentsWorkerStats stats;	/* segments.stat_worker */
} SegmentsWorkerSlot;

typedef struct SegmentsShared
{
	slock_t		mutex;			/* protects everything below but the CV */
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	ConditionVariable progress_cv;	/* broadcast after each worker commit */
	/* databases with no slot whose backends asked for a worker */
#define SEGMENTS_MAX_REQUESTS 16
	int			nrequests;
	bool		requests_overflow;	/* more asked: probe every database */
	Oid			requests[SEGMENTS_MAX_REQUESTS];
	int			nslots;
	SegmentsWorkerSlot slots[FLEXIBLE_ARRAY_MEMBER];
} SegmentsShared;

/* shared.c */
extern SegmentsShared *segments_shared;
extern void SharedRequestMemory(void);
extern void SharedInitMemory(void);
extern void WorkerRun(const char *sql, int nargs, Oid *types, Datum *values,
					  int expected);
extern SegmentsWorkerSlot *SharedFindSlot(Oid dboid);
extern void SharedNotifyAtCommit(void);
extern void SharedPauseDatabase(Oid dboid, int seconds);
extern TimestampTz SharedTakeTimeRewind(void);
extern void SharedInitUtilityHook(void);

/* launcher.c, worker.c: background worker entry points */
extern PGDLLEXPORT void segments_launcher_main(Datum arg);
extern PGDLLEXPORT void segments_worker_main(Datum arg);
extern bool WorkerWokenSinceApply(void);
extern void LauncherRegister(void);

/* capture.c */
extern void CaptureInitCallbacks(void);

#endif							/* SEGMENTS_WORKER_H */

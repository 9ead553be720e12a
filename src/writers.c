/*-------------------------------------------------------------------------
 *
 * writers.c
 *		Waiting for the writers a new segment definition may have missed.
 *
 * The capture trigger queues an UPDATE only when a column some rule reads
 * changed, from a per-backend cache of those columns that a change of the
 * segment catalog invalidates.  A transaction that was already writing the
 * source when a definition reading a new column committed may have
 * updated that column with the old cache: nothing queued, and its rows
 * invisible to an evaluation that starts before it commits.  So, as CREATE
 * INDEX CONCURRENTLY waits for older transactions, a definition's first
 * evaluation waits, in two phases, for
 *   1. the transactions still writing the segment catalog (once they end,
 *      the invalidations of every committed definition have been sent:
 *      any writer that locks the source afterwards reloads its cache), then
 *   2. the transactions holding a write lock on the source or one of its
 *      partitions at that moment (the only ones that can hold a stale
 *      cache).
 * Writers that start later are not waited for.  refresh() waits; the
 * worker polls, doing other work meanwhile.
 *
 * The worker's phase 1 skips the catalog writers that have not committed
 * yet: it takes only the pending segments it read before the wait began,
 * none of which such a transaction wrote, and a segment it writes is
 * taken by a later wait (worker.c, wait_covers).  So a session that
 * changed a segment and left its transaction open holds back no other
 * segment's first evaluation, whatever its tenant.  refresh() evaluates
 * what it sees after the wait, which may include such a transaction once
 * it commits: it still waits for every catalog writer.
 *
 *-------------------------------------------------------------------------
 */
#include "catalog.h"

#include "catalog/pg_inherits.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/sinvaladt.h"

/*
 * Is the transaction vxid still running, not yet committed or aborted?
 * Ending takes a transaction out of the proc array (lxid reset, under
 * ProcArrayLock, as its commit becomes visible) before it sends its
 * invalidations and releases its locks: one found here has sent none and
 * made nothing visible.  A prepared transaction has no backend: not
 * running here, so waited for.
 */
static bool
still_running(VirtualTransactionId vxid)
{
	PGPROC	   *proc = BackendIdGetProc(vxid.backendId);
	bool		running;

	if (proc == NULL)
		return false;
	LWLockAcquire(ProcArrayLock, LW_SHARED);
	running = proc->lxid == vxid.localTransactionId;
	LWLockRelease(ProcArrayLock);
	return running;
}

/*
 * Transactions (not ours) holding a lock on relid that conflicts with
 * SHARE; with committing_only, not those still running.
 */
static void
add_lockers(WriterWait *ww, Oid relid, bool committing_only)
{
	LOCKTAG		tag;
	VirtualTransactionId *vxids;
	int			n;

	SET_LOCKTAG_RELATION(tag, MyDatabaseId, relid);
	vxids = GetLockConflicts(&tag, ShareLock, &n);
	for (int i = 0; i < n; i++)
	{
		bool		dup = false;

		for (int j = 0; j < ww->n && !dup; j++)
			dup = VirtualTransactionIdEquals(ww->vxids[j], vxids[i]);
		if (dup || (committing_only && still_running(vxids[i])))
			continue;
		if (ww->n == ww->allocated)
		{
			ww->allocated = Max(8, ww->allocated * 2);
			ww->vxids = ww->vxids ?
				repalloc(ww->vxids, ww->allocated * sizeof(VirtualTransactionId)) :
				MemoryContextAlloc(ww->cxt, ww->allocated * sizeof(VirtualTransactionId));
		}
		ww->vxids[ww->n++] = vxids[i];
	}
}

/*
 * Starts a wait (phase 1) in memory context cxt.  committing_only: skip
 * the catalog writers still running (the worker's wait, see above).
 */
void
WritersBegin(WriterWait *ww, MemoryContext cxt, bool committing_only)
{
	memset(ww, 0, sizeof(*ww));
	ww->cxt = cxt;
	ww->phase = 1;
	add_lockers(ww, CatalogRelid("segment", false), committing_only);
}

/*
 * Advances the wait: drops the transactions that ended (waiting for each
 * when `wait`), and moves to phase 2 once phase 1 is over.  Returns true
 * when every writer that could have missed the definition has ended.  In
 * a transaction (the catalog is read).
 */
bool
WritersDone(WriterWait *ww, Oid source_relid, bool wait)
{
	for (;;)
	{
		int			kept = 0;

		for (int i = 0; i < ww->n; i++)
		{
			CHECK_FOR_INTERRUPTS();
			if (!VirtualXactLock(ww->vxids[i], wait))
				ww->vxids[kept++] = ww->vxids[i];
		}
		ww->n = kept;
		if (ww->n > 0)
			return false;
		if (ww->phase == 2)
			return true;
		ww->phase = 2;
		if (OidIsValid(source_relid))
		{
			List	   *rels = find_all_inheritors(source_relid, NoLock, NULL);
			ListCell   *lc;

			foreach(lc, rels)
				add_lockers(ww, lfirst_oid(lc), false);
		}
	}
}

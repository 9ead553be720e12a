/*-------------------------------------------------------------------------
 *
 * member_compact.c
 *		Moving rows of segments.member off the end of its file, so that
 *		VACUUM can give the emptied pages back to the disk.
 *
 * VACUUM returns space to the disk only from the end of the file, and
 * only pages with no row left.  Passes that add a hundred segment numbers
 * to every row and drops that strip them again leave the live rows spread
 * over every page of the largest file they ever needed: after three rounds
 * of 100 segments created and dropped at 200,000 contacts, 55.7 MB of heap
 * held 16.6 MB of rows (65% free) and nothing could be truncated.  VACUUM
 * FULL would pack it, under an ACCESS EXCLUSIVE lock that stops every
 * segment_is_member() for as long as it runs.
 *
 * So after its vacuum, the vacuum process (member_vacuum.c) reads the free
 * space map that vacuum just filled.  When the rows of the last pages fit
 * into the room of the pages before them, and those last pages are a
 * segments.member_compact_fraction of the file (and at least a megabyte),
 * it moves their rows there, last page first, and vacuums again, which
 * truncates the emptied tail.  A move is a delete of the row and an
 * insert of the same values elsewhere, with their index entries, in short
 * transactions that hold the writers' lock (member_lock.c), so no writer
 * changes a row while it moves.  Readers are never blocked and see each
 * row once: before the commit the old version, after it the new one.  No
 * membership changes, so the history triggers do not fire (the rows are
 * written below the executor, as VACUUM FULL writes them).  The free space
 * map is told the tail is full first, so that the inserts, and the
 * writers' updates between the batches, go to the pages that stay.
 *
 * Not on Citus (the rows live in the nodes' shards), not while a pass is
 * pending or running (its rows are about to change; compaction stops at
 * the next batch when one starts), and not while the worker strips
 * dropped segments' numbers (the worker does not ask then).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/bufmgr.h"
#include "storage/freespace.h"
#include "storage/latch.h"
#include "storage/procarray.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "member_compact.h"
#include "member_lock.h"

/* segments.member_compact_fraction: 0 turns compaction off. */
double		segments_member_compact_fraction = 0.2;

/* Fewer pages to give back are not worth the moves: 1 MB. */
#define COMPACT_MIN_PAGES	128

/*
 * The room before the tail must exceed the tail's rows by this factor:
 * a row fits only where its whole length does.
 */
#define COMPACT_ROOM_MARGIN	1.25

/* Pages moved per transaction (the writers' lock is held that long). */
#define COMPACT_BATCH_PAGES	8

/* How long to wait for snapshots older than the moves before vacuuming. */
#define COMPACT_SNAPSHOT_WAIT_MS	30000

void
MemberCompactInit(void)
{
	DefineCustomRealVariable("segments.member_compact_fraction",
							 "Fraction of segments.member's pages that must be free to give "
							 "back before the worker moves rows off the end of the table.",
							 "Checked after the worker's vacuum of segments.member; the rows "
							 "of the last pages move into the room of the pages before them "
							 "and the next vacuum truncates the table.  0 turns it off.",
							 &segments_member_compact_fraction,
							 0.2, 0.0, 1.0,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);
}

/*
 * Where the tail to empty begins: the first of the last pages whose rows
 * fit into the room of the pages before them, or InvalidBlockNumber when
 * that tail is too short to be worth it (or compaction is off).  Reads the
 * free space map the vacuum just filled (what a page does not have free,
 * rows take), not the table: cheap at any size.
 */
static BlockNumber
tail_start(Relation rel, BlockNumber nblocks)
{
	const double usable = BLCKSZ - SizeOfPageHeaderData;
	double		total_room = 0;
	double		tail_live = 0;
	double		tail_room = 0;
	BlockNumber cut = nblocks;

	if (segments_member_compact_fraction <= 0 || nblocks < COMPACT_MIN_PAGES)
		return InvalidBlockNumber;
	for (BlockNumber blk = 0; blk < nblocks; blk++)
		total_room += GetRecordedFreeSpace(rel, blk);
	if (total_room < segments_member_compact_fraction * nblocks * usable)
		return InvalidBlockNumber;
	for (BlockNumber blk = nblocks; blk > 0; blk--)
	{
		double		room = GetRecordedFreeSpace(rel, blk - 1);

		tail_room += room;
		tail_live += usable - room;
		if (total_room - tail_room < COMPACT_ROOM_MARGIN * tail_live)
			break;
		cut = blk - 1;
	}
	if (nblocks - cut < COMPACT_MIN_PAGES ||
		nblocks - cut < segments_member_compact_fraction * nblocks)
		return InvalidBlockNumber;
	return cut;
}

/*
 * Moves the rows of page blk (the caller's transaction holds the writers'
 * lock; snapshot sees every committed writer) to pages before `cut`.
 * False when a row went to a page at or past `cut` (no room left before
 * it): the caller stops.  Adds the rows moved to *moved.
 */
static bool
move_page(Relation rel, ResultRelInfo *rri, EState *estate, TupleTableSlot *slot,
		  BlockNumber blk, BlockNumber cut, Snapshot snapshot, uint64 *moved)
{
	OffsetNumber offsets[MaxHeapTuplesPerPage];
	int			noffsets = 0;
	bool		room_left = true;
	Buffer		buf = ReadBuffer(rel, blk);
	Page		page;
	OffsetNumber maxoff;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	maxoff = PageIsNew(page) ? InvalidOffsetNumber : PageGetMaxOffsetNumber(page);
	for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off = OffsetNumberNext(off))
		if (ItemIdIsNormal(PageGetItemId(page, off)))
			offsets[noffsets++] = off;
	UnlockReleaseBuffer(buf);

	for (int i = 0; i < noffsets; i++)
	{
		HeapTupleData old;
		HeapTuple	copy;
		Buffer		oldbuf;
		TM_FailureData tmfd;

		CHECK_FOR_INTERRUPTS();
		ItemPointerSet(&old.t_self, blk, offsets[i]);
		/* dead and replaced versions stay for VACUUM; only the live row moves */
		if (!heap_fetch(rel, snapshot, &old, &oldbuf, false))
			continue;
		copy = heap_copytuple(&old);
		ReleaseBuffer(oldbuf);

		/*
		 * A row a session holds locked (FOR UPDATE, ...) stays where it is:
		 * no wait while holding the writers' lock.  The delete first, then
		 * the insert, which copies an out-of-line value to a new TOAST value
		 * (TOAST reads ignore the delete of the old one, as they must).
		 */
		if (heap_delete(rel, &old.t_self, GetCurrentCommandId(true), InvalidSnapshot,
						false, &tmfd, false) != TM_Ok)
		{
			heap_freetuple(copy);
			continue;
		}
		simple_heap_insert(rel, copy);
		ExecStoreHeapTuple(copy, slot, false);
		/* the old key is deleted by this transaction: no conflict with it */
		list_free(ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL));
		ExecClearTuple(slot);
		ResetExprContext(GetPerTupleExprContext(estate));
		if (ItemPointerGetBlockNumber(&copy->t_self) >= cut)
			room_left = false;
		heap_freetuple(copy);
		(*moved)++;
	}
	return room_left;
}

/*
 * Waits (up to COMPACT_SNAPSHOT_WAIT_MS) until no snapshot can see the
 * versions the moves replaced, so that the vacuum after them removes them
 * and truncates: a reader's query that began before the last move would
 * otherwise keep the tail for the next vacuum.
 */
static void
wait_for_older_snapshots(Oid relid, TransactionId last)
{
	for (int waited = 0; waited < COMPACT_SNAPSHOT_WAIT_MS; waited += 100)
	{
		TransactionId oldest;
		Relation	rel;

		StartTransactionCommand();
		rel = try_relation_open(relid, AccessShareLock);
		if (rel == NULL)
		{
			CommitTransactionCommand();
			return;
		}
		oldest = GetOldestNonRemovableTransactionId(rel);
		relation_close(rel, AccessShareLock);
		CommitTransactionCommand();
		if (TransactionIdPrecedes(last, oldest))
			return;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Has a reload set segments.member_compact_fraction to 0?  The vacuum
 * process reads the configuration files when it starts, and may have
 * started long before (its vacuum first): a DBA who turns compaction off
 * stops the moves at the next batch.
 */
static bool
compaction_turned_off(void)
{
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
	return segments_member_compact_fraction <= 0;
}

/* The table, if it is one this can compact (not a Citus shell, say). */
static Relation
open_compactable(Oid relid)
{
	Relation	rel = try_relation_open(relid, AccessShareLock);

	if (rel != NULL && rel->rd_rel->relkind != RELKIND_RELATION)
	{
		relation_close(rel, AccessShareLock);
		rel = NULL;
	}
	return rel;
}

/*
 * Is a compaction of segments.member (relid) worth it, by the free space
 * map as the last vacuum (anyone's) left it?  In a transaction.  The
 * worker asks after every vacuum: autovacuum's too.
 */
bool
MemberCompactDue(Oid relid)
{
	Relation	rel;
	bool		due;

	if ((rel = open_compactable(relid)) == NULL)
		return false;
	due = tail_start(rel, RelationGetNumberOfBlocks(rel)) != InvalidBlockNumber;
	relation_close(rel, AccessShareLock);
	return due;
}

/*
 * Compacts segments.member (relid) when it is worth it (see the banner).
 * Outside any transaction; each batch is one.  pass_pending is asked
 * before each batch.  True when there was a tail to empty: the caller
 * vacuums again to truncate it.
 */
bool
MemberCompact(Oid relid, bool (*pass_pending) (void))
{
	Relation	rel;
	BlockNumber nblocks;
	BlockNumber cut;
	BlockNumber blk;
	uint64		moved = 0;
	TransactionId last = InvalidTransactionId;
	TimestampTz start = GetCurrentTimestamp();
	bool		room_left = true;

	if (compaction_turned_off())
		return false;
	/* where the tail begins, and the free space map told it is full */
	StartTransactionCommand();
	if ((rel = open_compactable(relid)) == NULL)
	{
		CommitTransactionCommand();
		return false;
	}
	nblocks = RelationGetNumberOfBlocks(rel);
	cut = tail_start(rel, nblocks);
	if (cut != InvalidBlockNumber)
	{
		for (blk = cut; blk < nblocks; blk++)
			RecordPageWithFreeSpace(rel, blk, 0);
		FreeSpaceMapVacuumRange(rel, cut, nblocks);
	}
	relation_close(rel, AccessShareLock);
	CommitTransactionCommand();
	if (cut == InvalidBlockNumber)
		return false;
	ereport(DEBUG1,
			(errmsg("segments: moving the rows of the last %u of %u pages of segments.member",
					nblocks - cut, nblocks)));
	pgstat_report_activity(STATE_RUNNING, "segments: moving rows of segments.member off its tail");

	blk = nblocks;
	while (blk > cut && room_left)
	{
		EState	   *estate;
		ResultRelInfo *rri;
		TupleTableSlot *slot;
		Snapshot	snapshot;
		BlockNumber stop;

		if (pass_pending())
		{
			ereport(DEBUG1, (errmsg("segments: compaction of segments.member ends: a pass is pending")));
			break;
		}
		if (compaction_turned_off())
		{
			ereport(LOG,
					(errmsg("segments: compaction of segments.member ends: segments.member_compact_fraction is 0")));
			break;
		}
		StartTransactionCommand();
		MemberLockWriters(relid);
		/* after the lock: sees every writer before it */
		snapshot = RegisterSnapshot(GetLatestSnapshot());
		PushActiveSnapshot(snapshot);
		/* configure() may have replaced the table meanwhile: nothing to do */
		rel = try_relation_open(relid, RowExclusiveLock);
		if (rel == NULL)
		{
			PopActiveSnapshot();
			UnregisterSnapshot(snapshot);
			CommitTransactionCommand();
			break;
		}
		/* the table may have been truncated meanwhile (TRUNCATE, VACUUM) */
		blk = Min(blk, RelationGetNumberOfBlocks(rel));
		stop = blk > cut + COMPACT_BATCH_PAGES ? blk - COMPACT_BATCH_PAGES : cut;
		estate = CreateExecutorState();
		estate->es_snapshot = snapshot;
		estate->es_output_cid = GetCurrentCommandId(true);
		rri = makeNode(ResultRelInfo);
		InitResultRelInfo(rri, rel, 1, NULL, 0);
		ExecOpenIndices(rri, false);
		slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsHeapTuple);
		while (blk > stop && room_left)
		{
			blk--;
			room_left = move_page(rel, rri, estate, slot, blk, cut, snapshot, &moved);
		}
		ExecDropSingleTupleTableSlot(slot);
		ExecCloseIndices(rri);
		FreeExecutorState(estate);
		relation_close(rel, NoLock);
		PopActiveSnapshot();
		UnregisterSnapshot(snapshot);
		if (TransactionIdIsValid(GetTopTransactionIdIfAny()))
			last = GetTopTransactionIdIfAny();
		CommitTransactionCommand();
	}
	/* nothing moved (rows locked, or moved already): no news for the log */
	ereport(moved > 0 ? LOG : DEBUG1,
			(errmsg("segments: moved " UINT64_FORMAT " rows of segments.member off its last %u pages in %ld ms",
					moved, nblocks - blk, (long) ((GetCurrentTimestamp() - start) / 1000)),
			 room_left ? 0 : errdetail("The pages before the tail had less room than counted; the moves stopped.")));
	if (TransactionIdIsValid(last))
		wait_for_older_snapshots(relid, last);
	return true;
}

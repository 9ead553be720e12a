/*-------------------------------------------------------------------------
 *
 * member_space.c
 *		Keeping segments.member compact between vacuums.
 *
 * A pass rewrites the stored row of every contact whose membership
 * changed, and the GIN index on the segment numbers makes every such
 * update a non-HOT one: the new version goes wherever the free space map
 * says there is room.  Only VACUUM fills that map, and a pass holds a lock
 * that makes autovacuum skip the table, so passes that follow each other
 * (100 new segments, then a redefinition, ...) each appended a whole copy
 * of the rows they rewrote: 17 MB of heap became 97 MB in five passes at
 * 200,000 contacts.  Before a pass writes, this prunes the pages holding
 * the versions earlier passes replaced (what VACUUM's first phase does,
 * without the index phase) and records their free space, so that the
 * pass's new versions fill them instead of new pages.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/bufpage.h"
#include "storage/freespace.h"
#include "utils/rel.h"

#include "member_space.h"

/* Free space worth recording: room for a dozen stored rows. */
#define RECLAIM_MIN_FREE (BLCKSZ / 8)

/*
 * Prunes every page of segments.member (the caller holds the pass's lock)
 * of row versions no transaction can see any more, and records the pages
 * with room in the free space map.  Reads each page once: a few
 * milliseconds per 100,000 contacts.
 */
void
MemberReclaimSpace(Relation member)
{
	MemberReclaimRange(member, 0, RelationGetNumberOfBlocks(member));
}

/* Prunes one page and records its room; returns whether it had room. */
static bool
reclaim_block(Relation member, BlockNumber blk)
{
	Buffer		buf;
	Size		avail;

	CHECK_FOR_INTERRUPTS();
	buf = ReadBuffer(member, blk);
	/* prunes only when the page is nearly full and has something to prune */
	heap_page_prune_opt(member, buf);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	avail = PageIsNew(BufferGetPage(buf)) ? 0 : PageGetHeapFreeSpace(BufferGetPage(buf));
	UnlockReleaseBuffer(buf);
	if (avail < RECLAIM_MIN_FREE)
		return false;
	RecordPageWithFreeSpace(member, blk, avail);
	return true;
}

/*
 * The same for the pages [start, end) only: the worker's strip of dropped
 * segment numbers (member_strip.c) reclaims the pages of its previous
 * chunk, so that the next chunk's new versions fill them.
 */
void
MemberReclaimRange(Relation member, BlockNumber start, BlockNumber end)
{
	BlockNumber recorded = 0;

	end = Min(end, RelationGetNumberOfBlocks(member));
	for (BlockNumber blk = start; blk < end; blk++)
		recorded += reclaim_block(member, blk);
	/* make the new entries findable from the map's upper levels */
	if (recorded > 0)
		FreeSpaceMapVacuumRange(member, start, end);
}

/*
 * The same for the pages in `blocks` (a set of block numbers): those that
 * held the versions a chunk of the worker's pass replaced, reclaimed once
 * it has committed, so that the next chunk's new versions fill them
 * (instead of new pages until the next vacuum).
 */
void
MemberReclaimBlocks(Relation member, const Bitmapset *blocks)
{
	BlockNumber nblocks = RelationGetNumberOfBlocks(member);
	BlockNumber lo = InvalidBlockNumber;
	BlockNumber hi = 0;
	int			b = -1;

	while ((b = bms_next_member(blocks, b)) >= 0 && (BlockNumber) b < nblocks)
	{
		if (reclaim_block(member, (BlockNumber) b))
		{
			lo = Min(lo, (BlockNumber) b);
			hi = (BlockNumber) b;
		}
	}
	if (lo != InvalidBlockNumber)
		FreeSpaceMapVacuumRange(member, lo, hi + 1);
}

/*-------------------------------------------------------------------------
 *
 * member_strip.c
 *		The worker's removal of dropped segments' numbers from stored rows.
 *
 * drop_segment() deletes the segment, not its number from the rows of its
 * members (that would rewrite them all in the caller's transaction).
 * Readers ignore numbers with no segment, but the rows and the GIN index
 * keep them: after 50 of 150 segments were dropped, a third of the stored
 * bytes served nobody, until a pass happened to rewrite those rows.
 *
 * So the worker, when it has nothing more urgent to do, looks for numbers
 * of dropped segments still held by some row (one GIN probe per dropped
 * number), and strips them in chunks of heap pages (a TID range scan,
 * whatever the index says: one decode per row, each page read once), one
 * short transaction per chunk that holds the writers' lock (member_lock.c)
 * like any writer; readers are never blocked.  Each chunk first reclaims
 * the pages of the previous one and its own (member_space.c), so that the
 * new, shorter versions fill the room the old ones left instead of new
 * pages.  A crash loses nothing: a chunk commits whole, and the next
 * worker looks again.
 * When a round ends the worker looks once more (a writer whose snapshot
 * predates the drop may have written a number behind the round).
 *
 * Numbers are never reused (segments.segment_num_seq): a number held by a
 * row without a segment can only be a dropped segment's.  The chunk checks
 * again, under the lock, that no segment has it.
 *
 *-------------------------------------------------------------------------
 */
#include "catalog.h"
#include "citus.h"

#include "access/relation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "storage/bufmgr.h"
#include "storage/itemptr.h"
#include "utils/array.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "member_lock.h"
#include "member_space.h"
#include "member_strip.h"

/* Heap pages per chunk: about 7,000 rows, a few tenths of a second. */
#define STRIP_CHUNK_PAGES	128

/* Looks again at least this often, even if no segment changed. */
#define STRIP_LOOK_MS		60000

/* Checks this often whether the segments changed (no SQL when not). */
#define STRIP_CHECK_MS		1000

/* The round in progress: the numbers, and the pages left to visit. */
static bool strip_active = false;
static ArrayType *strip_nums = NULL;	/* in TopMemoryContext */
static BlockNumber strip_next = 0;
static BlockNumber strip_end = 0;
static BlockNumber strip_prev = InvalidBlockNumber;	/* previous chunk's start */

/* The last look: the catalog it saw, and when. */
static uint64 looked_generation = 0;
static TimestampTz looked_at = 0;
static bool look_again = true;
static TimestampTz checked_at = 0;

bool
MemberStripActive(void)
{
	return strip_active;
}

/* Is it time to look for dropped numbers?  (No transaction needed.) */
bool
MemberStripDue(void)
{
	return strip_active || look_again ||
		TimestampDifferenceExceeds(checked_at, GetCurrentTimestamp(), STRIP_CHECK_MS);
}

/*
 * A look probes this many numbers a step (a transaction): the GIN index
 * answers a probe with the bitmap of every row holding the number, so a
 * dropped number still held by 200,000 rows costs about 15 ms of CPU, and
 * a look at 100 such numbers in one step (1.4 s of CPU at 1,000,000
 * contacts, 7.5 s of wall clock at load 7) held changes back that long.
 */
#define STRIP_LOOK_NUMBERS	16

/* A look in progress: the next number to probe (0: none), what it found. */
static int32 look_next = 0;
static List *look_held = NIL;	/* int32 numbers, in TopMemoryContext */
static uint64 look_generation = 0;

/*
 * The numbers in [from, from + STRIP_LOOK_NUMBERS) that no segment has and
 * some stored row holds, appended to look_held.  The GIN index answers for
 * each number: a sequential scan would read the whole table per number.
 * Returns the last number given so far (the sequence's last value).
 */
static int32
dropped_held(int32 from)
{
	Oid			type = INT4OID;
	Datum		arg = Int32GetDatum(from);
	int32		last;
	MemoryContext old;

	if (SPI_execute("SELECT pg_catalog.set_config('enable_seqscan', 'off', true)", false, 0) != SPI_OK_SELECT ||
		SPI_execute_with_args("SELECT d.n, (SELECT q.last_value::integer FROM segments.segment_num_seq q)"
							  "  FROM pg_catalog.generate_series($1, LEAST($1 OPERATOR(pg_catalog.+) " CppAsString2(STRIP_LOOK_NUMBERS) " OPERATOR(pg_catalog.-) 1,"
							  "         (SELECT q.last_value::integer FROM segments.segment_num_seq q))) d(n)"
							  " WHERE NOT EXISTS (SELECT FROM segments.segment s WHERE s.num OPERATOR(pg_catalog.=) d.n)"
							  "   AND EXISTS (SELECT FROM segments.member m"
							  "                WHERE segments._member_segs(m.data) OPERATOR(pg_catalog.@>) ARRAY[d.n])"
							  " UNION ALL SELECT NULL, (SELECT q.last_value::integer FROM segments.segment_num_seq q)",
							  1, &type, &arg, NULL, true, 0) != SPI_OK_SELECT || SPI_processed < 1)
		elog(ERROR, "could not look for dropped segment numbers in segments.member");
	old = MemoryContextSwitchTo(TopMemoryContext);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		Datum		n = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			look_held = lappend_int(look_held, DatumGetInt32(n));
	}
	MemoryContextSwitchTo(old);
	{
		bool		isnull;

		last = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[SPI_processed - 1],
										   SPI_tuptable->tupdesc, 2, &isnull));
	}
	if (SPI_execute("SELECT pg_catalog.set_config('enable_seqscan', 'on', true)", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not look for dropped segment numbers in segments.member");
	return last;
}

/* Strips the round's numbers from the rows of pages [start, end). */
static void
strip_pages(Datum nums, BlockNumber start, BlockNumber end)
{
	Oid			types[3] = {INT4ARRAYOID, TIDOID, TIDOID};
	Datum		values[3];
	ItemPointerData lo;
	ItemPointerData hi;

	ItemPointerSet(&lo, start, 0);
	ItemPointerSet(&hi, end, 0);
	values[0] = nums;
	values[1] = PointerGetDatum(&lo);
	values[2] = PointerGetDatum(&hi);
	/* _member_without() is not indexable: the TID range decides the plan */
	if (SPI_execute_with_args("DELETE FROM segments.member m"
							  " WHERE m.ctid OPERATOR(pg_catalog.>=) $2 AND m.ctid OPERATOR(pg_catalog.<) $3"
							  "   AND segments._member_without(m.data, $1) IS NULL",
							  3, types, values, NULL, false, 0) != SPI_OK_DELETE ||
		SPI_execute_with_args("UPDATE segments.member m SET data = segments._member_without(m.data, $1)"
							  " WHERE m.ctid OPERATOR(pg_catalog.>=) $2 AND m.ctid OPERATOR(pg_catalog.<) $3"
							  "   AND segments._member_without(m.data, $1) OPERATOR(pg_catalog.<>) m.data",
							  3, types, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not strip dropped segment numbers from segments.member");
}

/* The round's numbers that still have no segment, as seen under the lock. */
static Datum
still_dropped(void)
{
	Oid			type = INT4ARRAYOID;
	Datum		arg = PointerGetDatum(strip_nums);
	bool		isnull;

	if (SPI_execute_with_args("SELECT coalesce(pg_catalog.array_agg(n), '{}') FROM pg_catalog.unnest($1) n"
							  " WHERE NOT EXISTS (SELECT FROM segments.segment s WHERE s.num OPERATOR(pg_catalog.=) n)",
							  1, &type, &arg, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read segments.segment");
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
}

static void
strip_reset(void)
{
	strip_active = false;
	if (strip_nums != NULL)
		pfree(strip_nums);
	strip_nums = NULL;
	strip_prev = InvalidBlockNumber;
}

/*
 * One step, in the caller's transaction (SPI connected, as the extension's
 * owner): a look when due, or the next chunk of the round in progress.
 * Returns true when more work waits (the next chunk, or a look after the
 * round).  On an error the caller aborts; the next step starts over
 * with a look.
 */
bool
MemberStripStep(void)
{
	const SegmentCatalog *cat = CatalogGet();
	Oid			relid = cat->config.member_relid;
	Relation	member;
	Datum		nums;

	/* on Citus the table is distributed: its shards are the nodes' own */
	if (!OidIsValid(relid) || CitusIsDistributed(relid))
	{
		strip_reset();
		return false;
	}
	if (!strip_active)
	{
		ArrayType  *held;
		MemoryContext old;
		int32		from = look_next;
		int32		last;
		Datum	   *elems;
		int			nheld;
		ListCell   *lc;

		checked_at = GetCurrentTimestamp();
		if (from == 0)
		{
			if (!look_again && cat->generation == looked_generation &&
				!TimestampDifferenceExceeds(looked_at, GetCurrentTimestamp(), STRIP_LOOK_MS))
				return false;
			list_free(look_held);
			look_held = NIL;
			look_generation = cat->generation;
			from = 1;
		}
		/* an error below looks again next time, from the start */
		look_again = true;
		look_next = 0;
		last = dropped_held(from);
		if (from + STRIP_LOOK_NUMBERS <= last)
		{
			look_next = from + STRIP_LOOK_NUMBERS;	/* the next numbers in the next step */
			return true;
		}
		looked_generation = look_generation;
		looked_at = GetCurrentTimestamp();
		look_again = false;
		nheld = list_length(look_held);
		if (nheld == 0)
			return false;
		elems = palloc(nheld * sizeof(Datum));
		foreach(lc, look_held)
			elems[foreach_current_index(lc)] = Int32GetDatum(lfirst_int(lc));
		held = construct_array(elems, nheld, INT4OID, sizeof(int32), true, TYPALIGN_INT);
		list_free(look_held);
		look_held = NIL;
		strip_reset();
		old = MemoryContextSwitchTo(TopMemoryContext);
		strip_nums = DatumGetArrayTypePCopy(PointerGetDatum(held));
		MemoryContextSwitchTo(old);
		member = relation_open(relid, AccessShareLock);
		strip_next = 0;
		strip_end = RelationGetNumberOfBlocks(member);
		relation_close(member, AccessShareLock);
		strip_active = true;
		ereport(DEBUG1,
				(errmsg("segments worker strips %d dropped segment numbers from %u pages of segments.member",
						ArrayGetNItems(ARR_NDIM(strip_nums), ARR_DIMS(strip_nums)), strip_end)));
		return true;
	}

	/* an error below ends the round: the next step looks again */
	strip_active = false;
	look_again = true;
	MemberLockWriters(relid);
	nums = still_dropped();
	if (ArrayGetNItems(ARR_NDIM(DatumGetArrayTypeP(nums)), ARR_DIMS(DatumGetArrayTypeP(nums))) > 0)
	{
		BlockNumber end = Min(strip_next + STRIP_CHUNK_PAGES, strip_end);

		member = relation_open(relid, AccessShareLock);
		if (strip_prev != InvalidBlockNumber)
			MemberReclaimRange(member, strip_prev, strip_next);
		/*
		 * The room earlier passes left in the chunk's own pages, for its
		 * new versions (an update stays on its page when it fits): a
		 * range per chunk, not the whole table before the first, which
		 * at 1,000,000 contacts held changes back for seconds.
		 */
		MemberReclaimRange(member, strip_next, end);
		relation_close(member, AccessShareLock);
		strip_pages(nums, strip_next, end);
		strip_prev = strip_next;
		strip_next = end;
	}
	else
		strip_next = strip_end;
	if (strip_next >= strip_end)
	{
		strip_reset();
		return true;			/* and look again */
	}
	strip_active = true;
	look_again = false;
	return true;
}

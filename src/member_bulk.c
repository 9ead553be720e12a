/*-------------------------------------------------------------------------
 *
 * member_bulk.c
 *		Inserting or replacing many rows of segments.member at once, as one
 *		INSERT or UPDATE statement would, at a fraction of its cost.
 *
 * A first pass writes a row for every contact.  Through SPI each batch was
 * an INSERT ... SELECT FROM unnest($1): the executor per row, one WAL
 * record per heap row, and a GIN insertion per row, which with fastupdate
 * goes to the pending list, is written there (and logged) once and merged
 * into the tree again later.  Here the rows of a batch go to the heap with
 * table_multi_insert (one WAL record per page), the btree entries as the
 * executor inserts them (ExecInsertIndexTuples: unique checks, partial
 * indexes), and the GIN entries of the batch are gathered per segment
 * number and added to the tree once per number (what CREATE INDEX and
 * the pending list's cleanup do).  Everything is WAL-logged; readers are
 * not blocked (the same locks as an INSERT).
 *
 * Where a first pass's write time went (perf, 200,000 and 1,000,000
 * contacts, the bench's 100 segments): a comparison sort of each batch's
 * (segment number, heap pointer) pairs was a quarter to a third of the
 * whole pass; they are now distributed per number by counting, and the
 * numbers read from the stored row rather than through the index's
 * expression.  What is left of writing, of the pass's samples at 1M:
 * btree primary key 9-10%, GIN 9-10%, heap inserts 8% (half of it
 * extending the file a page at a time), the history trigger 8%.
 *
 * The indexes are not built after the rows, as CREATE INDEX would on a
 * table that was empty when the pass began.  Building into a new file (as
 * REINDEX does) needs ACCESS EXCLUSIVE on each index until commit, and
 * every query on segments.member locks all its indexes when planned:
 * readers, who never wait for a pass now, would wait for the build and
 * the rest of the transaction, and queue behind it while an open reader
 * transaction holds the index.  REINDEX's SHARE lock on the table would
 * wait for the ROW EXCLUSIVE that a writer queued on the writers' lock
 * (member_lock.c) already holds, which waits for this pass: a deadlock.
 * WAL cannot be skipped either: PostgreSQL skips it only at wal_level =
 * minimal, for a file created in the same transaction, and a new file for
 * the table (TRUNCATE's way) needs ACCESS EXCLUSIVE for the whole pass.
 * A build would save part of the btree's share (GIN's gathered
 * insertions already cost what its build does).
 *
 * A statement of fewer than GIN_GATHER_MIN_ROWS rows leaves an index with
 * fastupdate (the default) to the executor: its pending list.
 *
 * A pass may also let the gathered entries wait across its statements
 * (MemberBulkBegin(true)) and add them when it ends (MemberBulkFlush), or
 * when they reach maintenance_work_mem.  Once the table has free space all
 * over (rows replaced, then vacuumed), a batch's new row versions land on
 * pages everywhere, so each segment number's pointers went to most leaves
 * of its posting tree, every batch: after heavy updates that was 41% of a
 * pass.  Gathered over a chunk, each leaf is rewritten once per chunk.  A
 * query on the index within the pass, before the flush, would miss the
 * waiting entries: the pass flushes before it reads membership through
 * the index, and entries are not held back while a trigger other than
 * membership history (which reads only the transition tables) could read
 * the table.  A transaction that would commit with entries still waiting
 * fails instead (a missing index entry is a silently wrong answer).
 *
 * Rows whose membership changed are replaced the same way: each row
 * version the batch read (by its ctid) is updated in place of the UPDATE
 * statement's join, the btree entries inserted as after an UPDATE, and
 * the GIN entries gathered.  Through SQL each replaced row sent its two
 * dozen entries to GIN's pending list, and merging that list into the
 * index was a third of the worker's time applying contact changes.
 *
 * Triggers fire as for the INSERT or UPDATE: BEFORE and AFTER statement
 * triggers, AFTER row triggers, and the transition tables of the
 * statement, so membership history (history.c, an AFTER STATEMENT trigger
 * reading the old and new rows) records the same changes.  A BEFORE ROW
 * trigger could change or skip rows: with one, the caller uses the
 * statements instead.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/gin_private.h"
#include "access/heapam.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "member_bulk.h"
#include "member_codec.h"

/* member_codec.c: the index's expression */
extern Datum segments_member_segs(PG_FUNCTION_ARGS);

/* history.c: the AFTER STATEMENT trigger that reads only transition tables */
extern Datum segments_member_history(PG_FUNCTION_ARGS);

/*
 * Can rows go to this relation without the executor?  Not with BEFORE ROW
 * triggers (they may change or skip a row) or INSTEAD OF ones, nor with a
 * CHECK constraint (a DBA's: the statement checks it, the bulk path would
 * not).
 */
bool
MemberBulkPossible(Relation rel)
{
	TriggerDesc *td = rel->trigdesc;
	TupleConstr *constr = RelationGetDescr(rel)->constr;

	return rel->rd_rel->relkind == RELKIND_RELATION &&
		(constr == NULL || constr->num_check == 0) &&
		(td == NULL || (!td->trig_insert_before_row && !td->trig_insert_instead_row &&
						!td->trig_update_before_row && !td->trig_update_instead_row));
}

/*
 * Fewest rows whose GIN entries are gathered.  A smaller statement (the
 * worker applying a few dozen contact changes) sends each row's entries to
 * the index's pending list, as an UPDATE does: gathered, a few rows per
 * segment number each changed a different posting-tree leaf (decoded,
 * merged, compressed and logged for one pointer), a third of the worker's
 * time; the list's cleanup merges thousands at once.  Measured at 6,000
 * one-row updates a second (BENCHMARKS.md): the worker's CPU per change
 * 1.33x lower with the list bounded at 1MB (the worker's setting).
 */
#define GIN_GATHER_MIN_ROWS 1000

/*
 * The GIN indexes of the relation (not partial) that take inserts and whose
 * entries are gathered (a statement of nrows rows).  One that does not
 * take them yet (the copy a REINDEX or CREATE INDEX CONCURRENTLY has not
 * built: an empty file) stays with the executor, which skips it as it
 * skips it for an INSERT; so does one with fastupdate when the statement
 * is small (its pending list).
 */
static int
take_gin_indexes(ResultRelInfo *rri, Relation *gin, IndexInfo **gin_info, int nrows)
{
	int			ngin = 0;
	int			k = 0;

	for (int i = 0; i < rri->ri_NumIndices; i++)
	{
		Relation	index = rri->ri_IndexRelationDescs[i];
		IndexInfo  *info = rri->ri_IndexRelationInfo[i];

		if (index->rd_rel->relam == GIN_AM_OID && info->ii_Predicate == NIL &&
			info->ii_ReadyForInserts &&
			(nrows >= GIN_GATHER_MIN_ROWS || !GinGetUseFastUpdate(index)))
		{
			gin[ngin] = index;
			gin_info[ngin++] = info;
		}
		else
		{
			rri->ri_IndexRelationDescs[k] = index;
			rri->ri_IndexRelationInfo[k++] = info;
		}
	}
	/* the executor inserts into the others, and closes them */
	rri->ri_NumIndices = k;
	return ngin;
}

/* One GIN entry of an int4 key: the key and the heap row it points to. */
typedef struct KeyTid
{
	int32		key;
	ItemPointerData tid;
} KeyTid;

/* The gathered entries of one GIN index of int4 keys, not yet inserted. */
typedef struct GinPairs
{
	Oid			indexid;
	KeyTid	   *pairs;
	int			npairs;
	int			maxpairs;
} GinPairs;

/*
 * What the inserts of one pass reuse.  Slots and arrays live as long as
 * the pass: freed and allocated again for every batch, megabytes went back
 * to the operating system and were faulted in again each time (a third of
 * the cost of the history trigger that runs in between).
 */
struct MemberBulk
{
	MemoryContext cxt;			/* the pass's: what follows */
	MemoryContext call_cxt;		/* one insert's, reset after it */
	TupleDesc	desc;			/* slots' (a copy: not reference-counted) */
	TupleTableSlot **slots;
	int			nslots;
	bool		defer;			/* entries may wait for MemberBulkFlush */
	GinPairs   *gins;			/* per GIN index of int4 keys */
	int			ngins;
	/* what inserting the pairs sorts them in, kept (faulted in once) */
	uint64	   *codes;
	uint64	   *merge_buf;
	ItemPointerData *list;
	int			maxcodes;
};

/*
 * The worker's chunked pass keeps the arrays above across its chunks
 * (MemberBulkKeepArrays): each chunk has passes of its own, and growing
 * them again from 64k entries, in memory new to the process, was 18% of
 * the worker's CPU at 1,000,000 contacts (the copies when they doubled,
 * and page faults).  Kept in kept_cxt, given back by MemberBulkFlush() and
 * taken by the next reservation; freed when the pass ends.
 */
#define KEPT_MAX_BYTES	((Size) 256 * 1024 * 1024)
static MemoryContext kept_cxt = NULL;
static KeyTid *kept_pairs = NULL;
static int	kept_maxpairs = 0;
static uint64 *kept_codes = NULL;
static uint64 *kept_merge_buf = NULL;
static ItemPointerData *kept_list = NULL;
static int	kept_maxcodes = 0;

/*
 * While arrays are kept (a chunked pass), the pages of the row versions
 * its updates replaced (MemberBulkTakeReplaced), in TopMemoryContext: the
 * worker reclaims them once their chunk has committed.
 */
static Bitmapset *replaced_blocks = NULL;

/*
 * Entries gathered and not yet in their index, in this transaction, and
 * the (sub)transaction level that gathered the first of them: its abort
 * discards them with its rows.
 */
static int64 pending_pairs = 0;
static int	pending_level = 0;
static bool pending_callbacks = false;

/* A commit with entries still waiting would leave rows the index cannot find. */
static void
pending_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (pending_pairs > 0)
				elog(ERROR, "%lld entries of the membership index were not written",
					 (long long) pending_pairs);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			pending_pairs = 0;
			pending_level = 0;
			break;
		default:
			break;
	}
}

static void
pending_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB && pending_pairs > 0 &&
		GetCurrentTransactionNestLevel() <= pending_level)
	{
		pending_pairs = 0;
		pending_level = 0;
	}
}

/*
 * Starts a pass's inserts, in the current memory context.  With
 * defer_gin, the GIN entries gathered may wait across statements: the
 * caller flushes them (MemberBulkFlush) before anything in its
 * transaction reads the table through its indexes, and before it commits.
 */
MemberBulk *
MemberBulkBegin(bool defer_gin)
{
	MemberBulk *mb = palloc0(sizeof(MemberBulk));

	mb->cxt = CurrentMemoryContext;
	mb->call_cxt = AllocSetContextCreate(CurrentMemoryContext, "segments bulk insert",
										 1024 * 1024, 1024 * 1024, ALLOCSET_DEFAULT_MAXSIZE);
	mb->defer = defer_gin;
	if (defer_gin && !pending_callbacks)
	{
		RegisterXactCallback(pending_xact_callback, NULL);
		RegisterSubXactCallback(pending_subxact_callback, NULL);
		pending_callbacks = true;
	}
	return mb;
}

/*
 * May the GIN entries of rel's rows wait?  Not when a trigger could read
 * the table through the index before they are added: only membership
 * history's (and the system's) are known not to.
 */
bool
MemberBulkMayDefer(Relation rel)
{
	TriggerDesc *td = rel->trigdesc;

	for (int i = 0; td != NULL && i < td->numtriggers; i++)
	{
		Trigger    *trig = &td->triggers[i];
		FmgrInfo	finfo;

		if (trig->tgisinternal || trig->tgenabled == TRIGGER_DISABLED)
			continue;
		fmgr_info(trig->tgfoid, &finfo);
		if (finfo.fn_addr != segments_member_history)
			return false;
	}
	return true;
}

/* qsort comparator of KeyTid: by key, then heap pointer. */
static int
key_tid_compare(const void *a, const void *b)
{
	const KeyTid *x = a;
	const KeyTid *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return ItemPointerCompare((ItemPointer) &x->tid, (ItemPointer) &y->tid);
}

/*
 * A heap pointer as one integer in its order (block, then offset): the
 * pointers of a key are checked and sorted as integers, by a sort made for
 * them (ItemPointerCompare through qsort was 2% of a first pass).
 */
static inline uint64
tid_code(const ItemPointerData *tid)
{
	return ((uint64) ItemPointerGetBlockNumberNoCheck(tid) << 16) |
		ItemPointerGetOffsetNumberNoCheck(tid);
}

#define ST_SORT sort_tid_codes
#define ST_ELEMENT_TYPE uint64
#define ST_COMPARE(a, b) (*(a) < *(b) ? -1 : *(a) > *(b) ? 1 : 0)
#define ST_SCOPE static
#define ST_DEFINE
#include "lib/sort_template.h"

/*
 * Sorts the n codes of one key's heap pointers (tmp: room for as many);
 * returns where they are, codes or tmp.  They are mostly in order: the
 * rows of a statement fill pages in turn, and the first rows of the next
 * may go to an earlier page with room, so a pass's pointers for a key are
 * a few ascending runs, merged pairwise here.  Many runs (rows put
 * wherever the table had room) are sorted instead.
 */
static uint64 *
sort_codes(uint64 *codes, uint64 *tmp, int n)
{
	uint64	   *src = codes;
	uint64	   *dst = tmp;
	int			nruns = 1;

	for (int i = 1; i < n; i++)
		nruns += codes[i - 1] > codes[i];
	if (nruns == 1)
		return codes;
	if (nruns > 64)
	{
		sort_tid_codes(codes, n);
		return codes;
	}
	while (nruns > 1)
	{
		uint64	   *swap;

		nruns = 0;
		for (int i = 0; i < n; nruns++)
		{
			int			mid = i + 1;
			int			end;
			int			a;
			int			b;
			int			o = i;

			/* runs are non-decreasing, as counted above: each merge leaves fewer */
			while (mid < n && src[mid - 1] <= src[mid])
				mid++;
			end = mid < n ? mid + 1 : mid;
			while (end < n && src[end - 1] <= src[end])
				end++;
			for (a = i, b = mid; a < mid && b < end;)
				dst[o++] = src[a] <= src[b] ? src[a++] : src[b++];
			while (a < mid)
				dst[o++] = src[a++];
			while (b < end)
				dst[o++] = src[b++];
			i = end;
		}
		swap = src;
		src = dst;
		dst = swap;
	}
	return src;
}

/* Makes room for n codes (and pointers) in mb's scratch arrays. */
static void
codes_reserve(MemberBulk *mb, int n)
{
	MemoryContext cxt = kept_cxt != NULL ? kept_cxt : mb->cxt;

	if (n <= mb->maxcodes)
		return;
	if (mb->codes == NULL && kept_codes != NULL && n <= kept_maxcodes)
	{
		/* the arrays a chunk before this one gave back */
		mb->codes = kept_codes;
		mb->merge_buf = kept_merge_buf;
		mb->list = kept_list;
		mb->maxcodes = kept_maxcodes;
		kept_codes = NULL;
		kept_maxcodes = 0;
		return;
	}
	if (mb->codes != NULL)
	{
		pfree(mb->codes);
		pfree(mb->merge_buf);
		pfree(mb->list);
	}
	n = Max(Max(64 * 1024, 2 * mb->maxcodes), n);
	mb->codes = MemoryContextAllocHuge(cxt, (Size) n * sizeof(uint64));
	mb->merge_buf = MemoryContextAllocHuge(cxt, (Size) n * sizeof(uint64));
	mb->list = MemoryContextAllocHuge(cxt, (Size) n * sizeof(ItemPointerData));
	mb->maxcodes = n;
}

/*
 * Inserts the npairs gathered (key, heap pointer) pairs: one insertion per
 * key, with its heap pointers in order.  The keys are segment numbers, a
 * small range: the pairs are distributed per key by counting (linear; a
 * comparison sort of the 90,000 pairs of a batch was a third of a first
 * pass), keeping the order in which the rows were written (sort_codes).
 * A wide range of keys falls back to sorting the pairs.
 */
static void
gin_insert_pairs(MemberBulk *mb, KeyTid *pairs, int npairs, GinState *ginstate)
{
	int32		lo = pairs[0].key;
	int32		hi = pairs[0].key;
	int64		range;

	codes_reserve(mb, npairs);
	for (int i = 1; i < npairs; i++)
	{
		lo = Min(lo, pairs[i].key);
		hi = Max(hi, pairs[i].key);
	}
	range = (int64) hi - lo + 1;
	if (range > (int64) npairs + 65536)
	{
		qsort(pairs, npairs, sizeof(KeyTid), key_tid_compare);
		for (int start = 0, end; start < npairs; start = end)
		{
			CHECK_FOR_INTERRUPTS();
			for (end = start; end < npairs && pairs[end].key == pairs[start].key; end++)
				mb->list[end - start] = pairs[end].tid;
			ginEntryInsert(ginstate, 1, Int32GetDatum(pairs[start].key), GIN_CAT_NORM_KEY,
						   mb->list, end - start, NULL);
		}
	}
	else
	{
		/* start[k - lo]: where key k's pointers begin in codes */
		int		   *start = palloc0((range + 1) * sizeof(int));
		uint64	   *codes = mb->codes;

		for (int i = 0; i < npairs; i++)
			start[pairs[i].key - lo + 1]++;
		for (int64 k = 1; k <= range; k++)
			start[k] += start[k - 1];
		for (int i = 0; i < npairs; i++)
			codes[start[pairs[i].key - lo]++] = tid_code(&pairs[i].tid);
		/* start[k - lo] is now where key k's end: key k begins at start[k - lo - 1] */
		for (int64 k = 0; k < range; k++)
		{
			int			first = k == 0 ? 0 : start[k - 1];
			int			n = start[k] - first;
			uint64	   *sorted;

			if (n == 0)
				continue;
			CHECK_FOR_INTERRUPTS();
			sorted = sort_codes(&codes[first], &mb->merge_buf[first], n);
			for (int i = 0; i < n; i++)
				ItemPointerSet(&mb->list[i], (BlockNumber) (sorted[i] >> 16),
							   (OffsetNumber) (sorted[i] & 0xFFFF));
			ginEntryInsert(ginstate, 1, Int32GetDatum((int32) (lo + k)), GIN_CAT_NORM_KEY,
						   mb->list, n, NULL);
		}
		pfree(start);
	}
}

/* Makes room for `need` pairs in gp->pairs, keeping those held. */
static void
pairs_reserve(MemberBulk *mb, GinPairs *gp, int need)
{
	KeyTid	   *now;
	int			n;

	if (need <= gp->maxpairs)
		return;
	if (gp->pairs == NULL && kept_pairs != NULL)
	{
		/* the array a chunk before this one gave back */
		gp->pairs = kept_pairs;
		gp->maxpairs = kept_maxpairs;
		kept_pairs = NULL;
		kept_maxpairs = 0;
		if (need <= gp->maxpairs)
			return;
	}
	n = Max(Max(64 * 1024, 2 * gp->maxpairs), need);
	now = MemoryContextAllocHuge(kept_cxt != NULL ? kept_cxt : mb->cxt, (Size) n * sizeof(KeyTid));
	if (gp->pairs != NULL)
	{
		memcpy(now, gp->pairs, gp->npairs * sizeof(KeyTid));
		pfree(gp->pairs);
	}
	gp->pairs = now;
	gp->maxpairs = n;
}

/* The gathered entries of index indexid (none yet: a new, empty set). */
static GinPairs *
gin_pairs_of(MemberBulk *mb, Oid indexid)
{
	for (int i = 0; i < mb->ngins; i++)
	{
		if (mb->gins[i].indexid == indexid)
			return &mb->gins[i];
	}
	mb->gins = mb->gins == NULL ?
		MemoryContextAllocZero(mb->cxt, sizeof(GinPairs)) :
		repalloc(mb->gins, (mb->ngins + 1) * sizeof(GinPairs));
	memset(&mb->gins[mb->ngins], 0, sizeof(GinPairs));
	mb->gins[mb->ngins].indexid = indexid;
	return &mb->gins[mb->ngins++];
}

/*
 * Most entries that wait: what maintenance_work_mem holds of them and the
 * pointer lists their insertion sorts them into (CREATE INDEX of a GIN
 * index accumulates as much before it writes).
 */
static int64
gin_pairs_max(void)
{
	return Max((int64) maintenance_work_mem * 1024 /
			   (sizeof(KeyTid) + 2 * sizeof(uint64) + sizeof(ItemPointerData)), 64 * 1024);
}

/* Adds the gathered entries of gp to its index, open as ginstate's. */
static void
gin_pairs_insert(MemberBulk *mb, GinPairs *gp, GinState *ginstate)
{
	if (gp->npairs == 0)
		return;
	gin_insert_pairs(mb, gp->pairs, gp->npairs, ginstate);
	pending_pairs -= gp->npairs;
	if (pending_pairs <= 0)
	{
		pending_pairs = 0;
		pending_level = 0;
	}
	gp->npairs = 0;
}

/*
 * Adds every entry still waiting to its index.  The pass calls it after
 * its last write, before it reads membership through an index or ends.
 */
void
MemberBulkFlush(MemberBulk *mb)
{
	for (int i = 0; i < mb->ngins; i++)
	{
		GinPairs   *gp = &mb->gins[i];
		MemoryContext tmp;
		MemoryContext prev;
		Relation	index;
		GinState	ginstate;

		if (gp->npairs == 0)
			continue;
		tmp = AllocSetContextCreate(CurrentMemoryContext, "segments gin flush",
									ALLOCSET_DEFAULT_SIZES);
		prev = MemoryContextSwitchTo(tmp);
		/* locked since the statements that gathered them: it is the same index */
		index = index_open(gp->indexid, RowExclusiveLock);
		initGinState(&ginstate, index);
		gin_pairs_insert(mb, gp, &ginstate);
		index_close(index, NoLock);
		MemoryContextSwitchTo(prev);
		MemoryContextDelete(tmp);
	}
	if (kept_cxt == NULL)
		return;
	/* the arrays go back for the next chunk: the largest of each kind */
	for (int i = 0; i < mb->ngins; i++)
	{
		GinPairs   *gp = &mb->gins[i];

		if (gp->pairs == NULL || GetMemoryChunkContext(gp->pairs) != kept_cxt)
			continue;
		if (gp->maxpairs > kept_maxpairs)
		{
			if (kept_pairs != NULL)
				pfree(kept_pairs);
			kept_pairs = gp->pairs;
			kept_maxpairs = gp->maxpairs;
		}
		else
			pfree(gp->pairs);
		gp->pairs = NULL;
		gp->maxpairs = 0;
	}
	if (mb->codes == NULL || GetMemoryChunkContext(mb->codes) != kept_cxt)
		return;
	if (mb->maxcodes > kept_maxcodes)
	{
		if (kept_codes != NULL)
		{
			pfree(kept_codes);
			pfree(kept_merge_buf);
			pfree(kept_list);
		}
		kept_codes = mb->codes;
		kept_merge_buf = mb->merge_buf;
		kept_list = mb->list;
		kept_maxcodes = mb->maxcodes;
	}
	else
	{
		pfree(mb->codes);
		pfree(mb->merge_buf);
		pfree(mb->list);
	}
	mb->codes = NULL;
	mb->maxcodes = 0;
}

/*
 * Keeps the arrays of GIN entries across passes (keep: the worker's
 * chunked pass, chunk after chunk), or frees them (the pass is over).
 */
void
MemberBulkKeepArrays(bool keep)
{
	/* (arrays a pass took and never gave back are in it too: bounded) */
	if (keep && kept_cxt != NULL && MemoryContextMemAllocated(kept_cxt, false) > KEPT_MAX_BYTES)
		MemberBulkKeepArrays(false);
	if (keep && kept_cxt == NULL)
		kept_cxt = AllocSetContextCreate(TopMemoryContext, "segments kept GIN arrays",
										 ALLOCSET_DEFAULT_SIZES);
	else if (!keep && kept_cxt != NULL)
	{
		MemoryContextDelete(kept_cxt);
		kept_cxt = NULL;
		kept_pairs = NULL;
		kept_maxpairs = 0;
		kept_codes = NULL;
		kept_merge_buf = NULL;
		kept_list = NULL;
		kept_maxcodes = 0;
		bms_free(replaced_blocks);
		replaced_blocks = NULL;
	}
}

/*
 * The pages whose row versions updates replaced since the last call, while
 * arrays were kept (NULL: none); the caller frees the set.
 */
Bitmapset *
MemberBulkTakeReplaced(void)
{
	Bitmapset  *taken = replaced_blocks;

	replaced_blocks = NULL;
	return taken;
}

/*
 * The column whose stored membership the index holds, when its one key is
 * segments._member_segs(column) (member_codec.c, known by its C function);
 * else 0.  Its keys are then read from the column directly: decoding the
 * numbers, without building the array and extracting its elements again.
 */
static AttrNumber
member_segs_column(IndexInfo *info)
{
	FuncExpr   *f;
	FmgrInfo	finfo;

	if (info->ii_NumIndexAttrs != 1 || info->ii_IndexAttrNumbers[0] != 0 ||
		list_length(info->ii_Expressions) != 1 || !IsA(linitial(info->ii_Expressions), FuncExpr))
		return 0;
	f = linitial(info->ii_Expressions);
	if (list_length(f->args) != 1 || !IsA(linitial(f->args), Var) ||
		((Var *) linitial(f->args))->varattno <= 0)
		return 0;
	fmgr_info(f->funcid, &finfo);
	if (finfo.fn_addr != segments_member_segs)
		return 0;
	return ((Var *) linitial(f->args))->varattno;
}

/*
 * Adds the GIN entries of the rows in slots to the index: gathered per key,
 * one insertion per key with its heap pointers sorted.  Keys of int4
 * (segment numbers) are sorted as integers; other keys go through GIN's own
 * accumulator, as in CREATE INDEX.
 */
static void
gin_insert_rows(MemberBulk *mb, Relation index, IndexInfo *info, EState *estate,
				TupleTableSlot **slots, int nslots)
{
	MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext, "segments bulk gin",
											  ALLOCSET_DEFAULT_SIZES);
	ExprContext *econtext = GetPerTupleExprContext(estate);
	GinState	ginstate;
	BuildAccumulator accum;
	ItemPointerData *list;
	OffsetNumber attnum;
	Datum		key;
	GinNullCategory category;
	uint32		nlist;
	bool		int_keys;
	AttrNumber	direct;
	GinPairs   *gp = NULL;
	int64		held;

	initGinState(&ginstate, index);
	accum.ginstate = &ginstate;
	ginInitBA(&accum);
	int_keys = info->ii_NumIndexAttrs == 1 && ginstate.compareFn[0].fn_oid == F_BTINT4CMP;
	direct = int_keys ? member_segs_column(info) : 0;
	if (int_keys)
		gp = gin_pairs_of(mb, RelationGetRelid(index));
	held = gp != NULL ? gp->npairs : 0;
	for (int i = 0; i < nslots; i++)
	{
		Datum		values[INDEX_MAX_KEYS];
		bool		isnull[INDEX_MAX_KEYS];

		if (direct > 0)
		{
			bool		null;
			Datum		data = slot_getattr(slots[i], direct, &null);

			if (!null)
			{
				MemoryContext prev = MemoryContextSwitchTo(tmp);
				int32	   *nums;
				int			n = MemberDecode(DatumGetByteaPP(data), &nums, NULL);
				bool		ascending = n > 0;

				MemoryContextSwitchTo(prev);
				for (int e = 1; e < n && ascending; e++)
					ascending = nums[e - 1] < nums[e];
				if (ascending)
				{
					/* the keys GIN would extract: distinct, none NULL, not empty */
					pairs_reserve(mb, gp, gp->npairs + n);
					for (int e = 0; e < n; e++)
					{
						gp->pairs[gp->npairs].key = nums[e];
						gp->pairs[gp->npairs++].tid = slots[i]->tts_tid;
					}
					MemoryContextReset(tmp);
					continue;
				}
				MemoryContextReset(tmp);
			}
		}
		econtext->ecxt_scantuple = slots[i];
		FormIndexDatum(info, slots[i], estate, values, isnull);
		for (int a = 0; a < info->ii_NumIndexAttrs; a++)
		{
			MemoryContext prev = MemoryContextSwitchTo(tmp);
			int32		nentries;
			GinNullCategory *categories;
			Datum	   *entries = ginExtractEntries(&ginstate, a + 1, values[a], isnull[a],
													&nentries, &categories);

			MemoryContextSwitchTo(prev);
			for (int e = 0; int_keys && e < nentries; e++)
			{
				if (categories[e] != GIN_CAT_NORM_KEY)
				{
					/* a NULL or empty item: GIN's accumulator takes it */
					ginInsertBAEntries(&accum, &slots[i]->tts_tid, a + 1, &entries[e],
									   &categories[e], 1);
					continue;
				}
				pairs_reserve(mb, gp, gp->npairs + 1);
				gp->pairs[gp->npairs].key = DatumGetInt32(entries[e]);
				gp->pairs[gp->npairs++].tid = slots[i]->tts_tid;
			}
			if (!int_keys)
				ginInsertBAEntries(&accum, &slots[i]->tts_tid, a + 1, entries, categories,
								   nentries);
			MemoryContextReset(tmp);
		}
		ResetExprContext(econtext);
	}
	if (gp != NULL)
	{
		pending_pairs += gp->npairs - held;
		if (gp->npairs > held && pending_level == 0)
			pending_level = GetCurrentTransactionNestLevel();
		if (!mb->defer || gp->npairs >= gin_pairs_max())
			gin_pairs_insert(mb, gp, &ginstate);
	}
	ginBeginBAScan(&accum);
	while ((list = ginGetBAEntry(&accum, &attnum, &key, &category, &nlist)) != NULL)
	{
		CHECK_FOR_INTERRUPTS();
		ginEntryInsert(&ginstate, attnum, key, category, list, nlist, NULL);
	}
	MemoryContextDelete(tmp);
}

/*
 * One statement's executor state: the relation, its indexes (the GIN ones
 * taken apart, their entries gathered), and the AFTER triggers' query
 * level with the statement's transition tables.
 */
typedef struct BulkStatement
{
	CmdType		cmd;
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	TransitionCaptureState *tcs;
	Relation   *gin;
	IndexInfo **gin_info;
	int			ngin;
	CommandId	cid;
} BulkStatement;

/*
 * Begins an INSERT or UPDATE of relid, with `snapshot` active (a copy, at
 * a new command id, as SPI runs a statement), in mb->call_cxt.
 */
static void
statement_begin(MemberBulk *mb, BulkStatement *st, Oid relid, CmdType cmd, Snapshot snapshot,
				int nrows)
{
	AclMode		mode = cmd == CMD_INSERT ? ACL_INSERT : ACL_UPDATE;

	MemoryContextSwitchTo(mb->call_cxt);
	if (pg_class_aclcheck(relid, GetUserId(), mode) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, get_rel_name(relid));

	/* as SPI does for each statement: see what came before, at a new command */
	CommandCounterIncrement();
	PushCopiedSnapshot(snapshot);
	UpdateActiveSnapshotCommandId();
	st->cmd = cmd;
	st->cid = GetCurrentCommandId(true);
	st->rel = table_open(relid, RowExclusiveLock);
	st->estate = CreateExecutorState();
	st->estate->es_snapshot = GetActiveSnapshot();
	st->estate->es_output_cid = st->cid;
	st->rri = makeNode(ResultRelInfo);

	/*
	 * No range table: the columns an UPDATE sets are then unknown
	 * (ExecGetUpdatedCols), which only the triggers' column lists and the
	 * btree's bottom-up deletion hint read; segments.member has no such
	 * trigger, and its key, the btree's column, never changes.
	 */
	InitResultRelInfo(st->rri, st->rel, cmd == CMD_INSERT ? 1 : 0, NULL, 0);
	/* where the AFTER triggers' events find the relation */
	st->estate->es_opened_result_relations = list_make1(st->rri);
	ExecOpenIndices(st->rri, false);
	st->gin = palloc(Max(st->rri->ri_NumIndices, 1) * sizeof(Relation));
	st->gin_info = palloc(Max(st->rri->ri_NumIndices, 1) * sizeof(IndexInfo *));
	st->ngin = take_gin_indexes(st->rri, st->gin, st->gin_info, nrows);

	AfterTriggerBeginQuery();
	st->tcs = MakeTransitionCaptureState(st->rel->trigdesc, relid, cmd);
	if (cmd == CMD_INSERT)
		ExecBSInsertTriggers(st->estate, st->rri);
	else
		ExecBSUpdateTriggers(st->estate, st->rri);
}

/*
 * The NOT NULL constraints of rel, for one row, with the executor's error
 * (ExecConstraints needs a range table, which these statements lack).
 */
static void
check_not_null(Relation rel, TupleTableSlot *slot)
{
	TupleDesc	desc = RelationGetDescr(rel);

	for (int att = 1; att <= desc->natts; att++)
	{
		Form_pg_attribute attr = TupleDescAttr(desc, att - 1);

		if (attr->attnotnull && !attr->attisdropped && slot_attisnull(slot, att))
			ereport(ERROR,
					(errcode(ERRCODE_NOT_NULL_VIOLATION),
					 errmsg("null value in column \"%s\" of relation \"%s\" violates not-null constraint",
							NameStr(attr->attname), RelationGetRelationName(rel)),
					 errtablecol(rel, att)));
	}
}

/*
 * The tuples (each a single palloc'd chunk as heap_form_tuple makes them)
 * in mb's slots, which own them from now on.  A copy of the descriptor is
 * not reference-counted: thousands of slots pinning the relation's would
 * each be a resource owner entry.
 */
static TupleTableSlot **
statement_slots(MemberBulk *mb, BulkStatement *st, HeapTuple *tuples, int ntuples)
{
	if (ntuples > mb->nslots)
	{
		MemoryContext prev = MemoryContextSwitchTo(mb->cxt);
		TupleTableSlot **slots = palloc(ntuples * sizeof(TupleTableSlot *));

		/* the relation's shape cannot change while it is locked for writing */
		if (mb->desc == NULL)
			mb->desc = CreateTupleDescCopy(RelationGetDescr(st->rel));
		for (int i = 0; i < ntuples; i++)
			slots[i] = i < mb->nslots ? mb->slots[i] :
				MakeSingleTupleTableSlot(mb->desc, &TTSOpsHeapTuple);
		if (mb->slots != NULL)
			pfree(mb->slots);
		mb->slots = slots;
		mb->nslots = ntuples;
		MemoryContextSwitchTo(prev);
	}
	for (int i = 0; i < ntuples; i++)
		ExecStoreHeapTuple(tuples[i], mb->slots[i], true);
	/*
	 * A NOT NULL a DBA added (on tenant) holds as for the statement, before
	 * anything is written; CHECK constraints keep the statement
	 * (MemberBulkPossible).
	 */
	if (RelationGetDescr(st->rel)->constr != NULL &&
		RelationGetDescr(st->rel)->constr->has_not_null)
	{
		for (int i = 0; i < ntuples; i++)
			check_not_null(st->rel, mb->slots[i]);
	}
	return mb->slots;
}

/*
 * Ends the statement: the GIN entries of the rows in gin_slots, the AFTER
 * STATEMENT triggers (membership history reads the transition tables),
 * and the next statement sees these rows.
 */
static void
statement_end(MemberBulk *mb, BulkStatement *st, TupleTableSlot **gin_slots, int ngin_slots,
			  int nslots)
{
	for (int g = 0; g < st->ngin; g++)
	{
		if (ngin_slots > 0)
			gin_insert_rows(mb, st->gin[g], st->gin_info[g], st->estate, gin_slots, ngin_slots);
		/* kept locked to the end of the transaction, as the executor does */
		index_close(st->gin[g], NoLock);
	}
	if (st->cmd == CMD_INSERT)
		ExecASInsertTriggers(st->estate, st->rri, st->tcs);
	else
		ExecASUpdateTriggers(st->estate, st->rri, st->tcs);
	AfterTriggerEndQuery(st->estate);

	for (int i = 0; i < nslots; i++)
		ExecClearTuple(mb->slots[i]);
	/* the triggers' slots (an UPDATE's old rows): their pins and descriptors */
	ExecResetTupleTable(st->estate->es_tupleTable, false);
	ExecCloseIndices(st->rri);
	FreeExecutorState(st->estate);
	table_close(st->rel, NoLock);
	PopActiveSnapshot();
	/* the next statement sees these rows */
	CommandCounterIncrement();
	MemoryContextSwitchTo(mb->cxt);
	MemoryContextReset(mb->call_cxt);
}

/*
 * Inserts the tuples (of the relation's row type, each a single palloc'd
 * chunk as heap_form_tuple makes them: they are freed here) into relid as
 * one INSERT statement, with `snapshot` active.  The caller holds a lock
 * that lets it write.
 */
void
MemberBulkInsert(MemberBulk *mb, Oid relid, HeapTuple *tuples, int ntuples, Snapshot snapshot)
{
	MemoryContext old = CurrentMemoryContext;
	BulkStatement st;
	TupleTableSlot **slots;
	BulkInsertState bistate;
	ExprContext *econtext;

	statement_begin(mb, &st, relid, CMD_INSERT, snapshot, ntuples);
	slots = statement_slots(mb, &st, tuples, ntuples);
	bistate = GetBulkInsertState();
	table_multi_insert(st.rel, slots, ntuples, st.cid, 0, bistate);
	FreeBulkInsertState(bistate);

	econtext = GetPerTupleExprContext(st.estate);
	for (int i = 0; i < ntuples; i++)
	{
		List	   *recheck = NIL;

		if (st.rri->ri_NumIndices > 0)
			recheck = ExecInsertIndexTuples(st.rri, slots[i], st.estate, false, false, NULL, NIL);
		ExecARInsertTriggers(st.estate, st.rri, slots[i], recheck, st.tcs);
		list_free(recheck);
		ResetExprContext(econtext);
	}
	statement_end(mb, &st, slots, ntuples, ntuples);
	MemoryContextSwitchTo(old);
}

/*
 * Replaces the row versions at otids by the tuples (whole rows, as
 * MemberBulkInsert takes them: freed here) as one UPDATE statement would,
 * with `snapshot` active.  The caller holds the writers' lock, so no other
 * transaction changes these rows meanwhile; a row that was changed anyway
 * (updated or deleted since it was read) is not written here: its new
 * row, as a datum of the row type in the caller's memory context, goes to
 * missed[], for the caller to write by key through SQL.  Returns how many
 * were missed.
 *
 * The btree entries are inserted as the executor does after an UPDATE; the
 * GIN entries of the batch are gathered per segment number, as for an
 * insert.  Through SQL each row's entries went to GIN's pending list, and
 * merging that list into the index was a third of the worker's time while
 * it applied contact changes (1,000,000 contacts, 100 segments).
 */
int
MemberBulkUpdate(MemberBulk *mb, Oid relid, const ItemPointerData *otids, HeapTuple *tuples,
				 int ntuples, Snapshot snapshot, Datum *missed)
{
	MemoryContext old = CurrentMemoryContext;
	BulkStatement st;
	TupleTableSlot **slots;
	TupleTableSlot **gin_slots;
	int			ngin_slots = 0;
	int			nmissed = 0;
	ExprContext *econtext;

	statement_begin(mb, &st, relid, CMD_UPDATE, snapshot, ntuples);
	slots = statement_slots(mb, &st, tuples, ntuples);
	gin_slots = palloc(ntuples * sizeof(TupleTableSlot *));
	econtext = GetPerTupleExprContext(st.estate);
	for (int i = 0; i < ntuples; i++)
	{
		ItemPointerData otid = otids[i];
		TM_FailureData tmfd;
		LockTupleMode lockmode;
		bool		update_indexes;
		TM_Result	result;
		List	   *recheck = NIL;

		CHECK_FOR_INTERRUPTS();
		result = table_tuple_update(st.rel, &otid, slots[i], st.cid, st.estate->es_snapshot,
									InvalidSnapshot, true, &tmfd, &lockmode, &update_indexes);
		if (result != TM_Ok)
		{
			MemoryContext prev = MemoryContextSwitchTo(old);
			bool		should_free;
			HeapTuple	tuple = ExecFetchSlotHeapTuple(slots[i], false, &should_free);

			missed[nmissed++] = heap_copy_tuple_as_datum(tuple, RelationGetDescr(st.rel));
			MemoryContextSwitchTo(prev);
			continue;
		}
		if (kept_cxt != NULL)
		{
			MemoryContext prev = MemoryContextSwitchTo(TopMemoryContext);

			replaced_blocks = bms_add_member(replaced_blocks,
											 (int) ItemPointerGetBlockNumber(&otids[i]));
			MemoryContextSwitchTo(prev);
		}
		if (update_indexes)
		{
			if (st.rri->ri_NumIndices > 0)
				recheck = ExecInsertIndexTuples(st.rri, slots[i], st.estate, true, false, NULL, NIL);
			gin_slots[ngin_slots++] = slots[i];
		}
		/* the old version, for the transition table, is fetched by otid */
		ExecARUpdateTriggers(st.estate, st.rri, NULL, NULL, &otid, NULL, slots[i], recheck,
							 st.tcs, false);
		list_free(recheck);
		ResetExprContext(econtext);
	}
	statement_end(mb, &st, gin_slots, ngin_slots, ntuples);
	MemoryContextSwitchTo(old);
	return nmissed;
}

/*-------------------------------------------------------------------------
 *
 * key_fetch.c
 *		Reading the rows of many keys at once through a unique btree index
 *		on the key: the stored membership of a batch of contacts, or the
 *		contacts the worker re-evaluates.
 *
 * Through SQL, `WHERE key = ANY($1)` descends the btree once per key (the
 * executor of PostgreSQL 15 does not walk from one key of the array to the
 * next), then copies each row into SPI's tuple table.  A nothing-changed
 * pass spent a fifth of its time there.  Here, the keys sorted in the
 * index's order:
 *
 * - integer keys are cut into runs, each key at most KEY_FETCH_GAP above
 *   the one before (a batch of a pass, which reads contacts in key or
 *   insertion order, is one run; so are the 20 contacts one UPDATE of a
 *   range changed).  A run is found by one scan of its range: each
 *   entry's key (returned as for an index-only scan) is compared with the
 *   wanted one, an entry below it is stepped over, one above it means the
 *   wanted key has no row.  Stepping over a few entries costs less than
 *   descending the tree again.
 * - other keys (uuids, text), and integer keys far apart, are each a run
 *   of one: one descent per key, with one scan rescanned; the statement
 *   and the copies go.
 *
 * Each match is fetched from the heap with the caller's snapshot, as the
 * statement would.
 *
 *-------------------------------------------------------------------------
 */
#include "catalog.h"
#include "key_fetch.h"

#include "access/genam.h"
#include "access/itup.h"
#include "access/nbtree.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

/* Keys of one run are at most this far apart (integer keys). */
#define KEY_FETCH_GAP 16

struct KeyFetch
{
	IndexScanDesc scan;
	FmgrInfo   *cmp;			/* the index's order (its support function 1) */
	Oid			collation;
	const Datum *keys;
	int			nkeys;
	int			next;			/* the wanted key */
	int			run_end;		/* the end of its run (exclusive) */
	Oid			key_type;		/* integer keys make runs of more than one */
	RegProcedure ge_proc;		/* key >= value, key <= value: a run's range */
	RegProcedure le_proc;
};

static int
key_compare(FmgrInfo *cmp, Oid collation, Datum a, Datum b)
{
	return DatumGetInt32(FunctionCall2Coll(cmp, collation, a, b));
}

typedef struct SortArg
{
	FmgrInfo   *cmp;
	Oid			collation;
} SortArg;

static int
datum_compare(const void *a, const void *b, void *arg)
{
	SortArg    *s = (SortArg *) arg;

	return key_compare(s->cmp, s->collation, *(const Datum *) a, *(const Datum *) b);
}

/*
 * Sorts keys in the order of the index and removes duplicates; returns
 * how many are left.  Keys already in order (a batch sorted by the C
 * order of an integer or uuid key) are only checked.
 */
int
KeyFetchSort(Relation index, Datum *keys, int nkeys)
{
	SortArg		s = {index_getprocinfo(index, 1, BTORDER_PROC), index->rd_indcollation[0]};
	bool		sorted = true;
	int			m;

	for (int i = 1; i < nkeys && sorted; i++)
		sorted = datum_compare(&keys[i - 1], &keys[i], &s) < 0;
	if (sorted)
		return nkeys;
	qsort_arg(keys, nkeys, sizeof(Datum), datum_compare, &s);
	m = nkeys > 0 ? 1 : 0;
	for (int i = 1; i < nkeys; i++)
		if (datum_compare(&keys[m - 1], &keys[i], &s) != 0)
			keys[m++] = keys[i];
	return m;
}

/* The btree operator of strategy for the index's key, as a function. */
static RegProcedure
index_operator_proc(Relation index, StrategyNumber strategy)
{
	Oid			opno = get_opfamily_member(index->rd_opfamily[0], index->rd_opcintype[0],
										   index->rd_opcintype[0], strategy);

	if (!OidIsValid(opno))
		elog(ERROR, "index \"%s\" has no operator of strategy %d",
			 RelationGetRelationName(index), strategy);
	return get_opcode(opno);
}

/* Is integer key b (above a) at most KEY_FETCH_GAP above a? */
static bool
keys_close(Oid key_type, Datum a, Datum b)
{
	switch (key_type)
	{
		case INT8OID:
			return DatumGetInt64(a) >= PG_INT64_MAX - KEY_FETCH_GAP ||
				DatumGetInt64(b) <= DatumGetInt64(a) + KEY_FETCH_GAP;
		case INT4OID:
			return (int64) DatumGetInt32(b) - DatumGetInt32(a) <= KEY_FETCH_GAP;
		case INT2OID:
			return (int32) DatumGetInt16(b) - DatumGetInt16(a) <= KEY_FETCH_GAP;
		default:
			return false;
	}
}

/*
 * Begins reading the rows of keys (nkeys, as KeyFetchSort leaves them)
 * from rel through index, a unique btree index on the key alone, with
 * snapshot.  The caller keeps rel, index and keys open and alive until
 * KeyFetchEnd.
 */
KeyFetch *
KeyFetchBegin(Relation rel, Relation index, Snapshot snapshot, const Datum *keys, int nkeys)
{
	KeyFetch   *kf = palloc0(sizeof(KeyFetch));

	kf->cmp = index_getprocinfo(index, 1, BTORDER_PROC);
	kf->collation = index->rd_indcollation[0];
	kf->keys = keys;
	kf->nkeys = nkeys;
	kf->key_type = index->rd_opcintype[0];
	kf->ge_proc = index_operator_proc(index, BTGreaterEqualStrategyNumber);
	kf->le_proc = index_operator_proc(index, BTLessEqualStrategyNumber);
	kf->scan = index_beginscan(rel, index, snapshot, 2, 0);
	/* the entries' keys, to compare before fetching the heap */
	kf->scan->xs_want_itup = true;
	return kf;
}

/* Starts the scan of the run that begins at the wanted key. */
static void
run_begin(KeyFetch *kf)
{
	ScanKeyData range[2];
	int			end = kf->next + 1;

	while (end < kf->nkeys && keys_close(kf->key_type, kf->keys[end - 1], kf->keys[end]))
		end++;
	kf->run_end = end;
	ScanKeyEntryInitialize(&range[0], 0, 1, BTGreaterEqualStrategyNumber, InvalidOid,
						   kf->collation, kf->ge_proc, kf->keys[kf->next]);
	ScanKeyEntryInitialize(&range[1], 0, 1, BTLessEqualStrategyNumber, InvalidOid,
						   kf->collation, kf->le_proc, kf->keys[end - 1]);
	index_rescan(kf->scan, range, 2, NULL, 0);
}

/* The next row found in the current run, or -1 when the run is done. */
static int
next_in_run(KeyFetch *kf, TupleTableSlot *slot)
{
	while (kf->next < kf->run_end)
	{
		ItemPointer tid;
		Datum		entry_key;
		bool		isnull;
		int			c;

		CHECK_FOR_INTERRUPTS();
		tid = index_getnext_tid(kf->scan, ForwardScanDirection);
		if (tid == NULL)
			break;				/* no entry left: no row for the rest */
		entry_key = index_getattr(kf->scan->xs_itup, 1, kf->scan->xs_itupdesc, &isnull);
		if (isnull)
			continue;
		c = key_compare(kf->cmp, kf->collation, entry_key, kf->keys[kf->next]);
		/* wanted keys below this entry have no row */
		while (c > 0 && ++kf->next < kf->run_end)
			c = key_compare(kf->cmp, kf->collation, entry_key, kf->keys[kf->next]);
		if (kf->next >= kf->run_end)
			break;
		if (c < 0)
			continue;			/* an entry between wanted keys, or a found one's dead version */
		/* the wanted key; a version the snapshot does not see is skipped */
		if (index_fetch_heap(kf->scan, slot))
			return kf->next++;
	}
	kf->next = kf->run_end;
	return -1;
}

/*
 * The next row found, in slot; returns the position of its key in keys, or
 * -1 when every key has been looked for.  A key without a visible row is
 * not returned.
 */
int
KeyFetchNext(KeyFetch *kf, TupleTableSlot *slot)
{
	while (kf->next < kf->nkeys)
	{
		int			pos;

		if (kf->next >= kf->run_end)
			run_begin(kf);
		pos = next_in_run(kf, slot);
		if (pos >= 0)
			return pos;
	}
	return -1;
}

void
KeyFetchEnd(KeyFetch *kf)
{
	index_endscan(kf->scan);
	pfree(kf);
}

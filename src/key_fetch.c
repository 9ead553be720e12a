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
 * - integer keys spanning at most KEY_FETCH_DENSE entries per key (a
 *   batch of a pass, which reads contacts in key or insertion order) are
 *   found by one scan of their range: each entry's key (returned as for an
 *   index-only scan) is compared with the wanted one, an entry below it is
 *   stepped over, one above it means the wanted key has no row.  The range
 *   holds at most that many entries per key, dead versions aside.
 * - other keys (a few changed contacts, uuids, text) are looked up one by
 *   one with one scan, rescanned: the descent per key stays, the statement
 *   and the copies go.  A range scan there would read every entry between
 *   two far keys.
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

/* Integer keys are read by range when it spans at most this per key. */
#define KEY_FETCH_DENSE 4

struct KeyFetch
{
	IndexScanDesc scan;
	FmgrInfo   *cmp;			/* the index's order (its support function 1) */
	Oid			collation;
	const Datum *keys;
	int			nkeys;
	int			next;			/* the wanted key */
	bool		by_range;		/* one scan of the keys' range, or a scan per key */
	RegProcedure eq_proc;		/* key = value, for a scan per key */
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

/* Integer keys close enough together to be read by range? */
static bool
keys_dense(Relation index, const Datum *keys, int nkeys)
{
	double		span;

	if (nkeys < 2)
		return false;
	if (index->rd_opcintype[0] == INT8OID)
		span = (double) DatumGetInt64(keys[nkeys - 1]) - (double) DatumGetInt64(keys[0]);
	else if (index->rd_opcintype[0] == INT4OID)
		span = (double) DatumGetInt32(keys[nkeys - 1]) - (double) DatumGetInt32(keys[0]);
	else
		return false;
	return span < (double) KEY_FETCH_DENSE * nkeys;
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
	kf->by_range = keys_dense(index, keys, nkeys);
	if (kf->by_range)
	{
		ScanKeyData range[2];

		ScanKeyEntryInitialize(&range[0], 0, 1, BTGreaterEqualStrategyNumber, InvalidOid,
							   kf->collation, index_operator_proc(index, BTGreaterEqualStrategyNumber),
							   keys[0]);
		ScanKeyEntryInitialize(&range[1], 0, 1, BTLessEqualStrategyNumber, InvalidOid,
							   kf->collation, index_operator_proc(index, BTLessEqualStrategyNumber),
							   keys[nkeys - 1]);
		kf->scan = index_beginscan(rel, index, snapshot, 2, 0);
		/* the entries' keys, to compare before fetching the heap */
		kf->scan->xs_want_itup = true;
		index_rescan(kf->scan, range, 2, NULL, 0);
	}
	else
	{
		kf->eq_proc = index_operator_proc(index, BTEqualStrategyNumber);
		kf->scan = index_beginscan(rel, index, snapshot, 1, 0);
	}
	return kf;
}

/* KeyFetchNext of a range: the walk along it. */
static int
next_in_range(KeyFetch *kf, TupleTableSlot *slot)
{
	while (kf->next < kf->nkeys)
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
		while (c > 0 && ++kf->next < kf->nkeys)
			c = key_compare(kf->cmp, kf->collation, entry_key, kf->keys[kf->next]);
		if (kf->next >= kf->nkeys)
			break;
		if (c < 0)
			continue;			/* an entry between wanted keys, or a found one's dead version */
		/* the wanted key; a version the snapshot does not see is skipped */
		if (index_fetch_heap(kf->scan, slot))
			return kf->next++;
	}
	kf->next = kf->nkeys;
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
	if (kf->by_range)
		return next_in_range(kf, slot);
	while (kf->next < kf->nkeys)
	{
		ScanKeyData skey;
		int			pos = kf->next++;

		CHECK_FOR_INTERRUPTS();
		ScanKeyEntryInitialize(&skey, 0, 1, BTEqualStrategyNumber, InvalidOid,
							   kf->collation, kf->eq_proc, kf->keys[pos]);
		index_rescan(kf->scan, &skey, 1, NULL, 0);
		if (index_getnext_slot(kf->scan, ForwardScanDirection, slot))
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

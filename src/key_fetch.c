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
 * pass spent a fifth of its time there, the worker applying contact
 * changes a sixth.  Here the keys, sorted in the index's order, are found
 * by one forward scan: each index entry's key (the scan returns it, as for
 * an index-only scan) is compared with the wanted key; an entry below it
 * is stepped over, one above it means the wanted key has no row.  When the
 * keys are far apart (a few contacts of a big table, or random uuids), a
 * few steps without a match start the scan again at the next wanted key:
 * never more descents than keys.  Each match is fetched from the heap
 * with the caller's snapshot, as the statement would.
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
#include "miscadmin.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

/*
 * Index entries stepped over, without a match, before the scan starts
 * again at the wanted key: about what one descent costs.
 */
#define KEY_FETCH_MAX_STEPS 8

struct KeyFetch
{
	Relation	index;
	IndexScanDesc scan;
	FmgrInfo   *cmp;			/* the index's order (its support function 1) */
	Oid			collation;
	RegProcedure ge_proc;		/* key >= value, for (re)starting the scan */
	const Datum *keys;
	int			nkeys;
	int			next;			/* the wanted key */
	bool		started;
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
	Oid			opno;

	kf->index = index;
	kf->cmp = index_getprocinfo(index, 1, BTORDER_PROC);
	kf->collation = index->rd_indcollation[0];
	opno = get_opfamily_member(index->rd_opfamily[0], index->rd_opcintype[0],
							   index->rd_opcintype[0], BTGreaterEqualStrategyNumber);
	if (!OidIsValid(opno))
		elog(ERROR, "index \"%s\" has no >= operator", RelationGetRelationName(index));
	kf->ge_proc = get_opcode(opno);
	kf->keys = keys;
	kf->nkeys = nkeys;
	kf->scan = index_beginscan(rel, index, snapshot, 1, 0);
	/* the entries' keys, to compare before fetching the heap */
	kf->scan->xs_want_itup = true;
	return kf;
}

/* (Re)starts the scan at the wanted key. */
static void
restart_at_wanted(KeyFetch *kf)
{
	ScanKeyData skey;

	ScanKeyEntryInitialize(&skey, 0, 1, BTGreaterEqualStrategyNumber, InvalidOid,
						   kf->collation, kf->ge_proc, kf->keys[kf->next]);
	index_rescan(kf->scan, &skey, 1, NULL, 0);
	kf->started = true;
}

/*
 * The next row found, in slot; returns the position of its key in keys, or
 * -1 when every key has been looked for.  A key without a visible row is
 * not returned.
 */
int
KeyFetchNext(KeyFetch *kf, TupleTableSlot *slot)
{
	int			steps = 0;

	if (kf->next < kf->nkeys && !kf->started)
		restart_at_wanted(kf);
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
		{
			/* an entry before the wanted key: step over it, or descend again */
			if (++steps > KEY_FETCH_MAX_STEPS)
			{
				restart_at_wanted(kf);
				steps = 0;
			}
			continue;
		}
		/* the wanted key; a version the snapshot does not see is skipped */
		if (index_fetch_heap(kf->scan, slot))
			return kf->next++;
	}
	kf->next = kf->nkeys;
	return -1;
}

void
KeyFetchEnd(KeyFetch *kf)
{
	index_endscan(kf->scan);
	pfree(kf);
}

/*-------------------------------------------------------------------------
 *
 * queue_take.c
 *	  Taking the oldest entries off segments.change_queue, for the worker.
 *
 * The worker applies the queue's entries in batches: each batch deletes
 * the oldest entries in the transaction that applies them, so that a crash
 * loses both or neither.  Done through SQL, that cost two scans of the
 * primary key, two heap fetches an entry, a sort and the planning of the
 * statement: with a backlog, a third of the worker's time.  Here a scan
 * of the primary key, in id order, reads each visible entry and deletes it
 * by its position, as the executor's DELETE would (waiting for, then
 * skipping, an entry another transaction deletes first), from where the
 * batch before ended.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/nbtree.h"
#include "access/skey.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"

#include "catalog.h"
#include "queue_take.h"

/* The open queue, for the scans of one QueueTake. */
typedef struct QueueTakeScan
{
	Relation	rel;
	Relation	pkey;
	AttrNumber	id_att;
	AttrNumber	contact_att;
	Snapshot	snapshot;
	CommandId	cid;
	TupleTableSlot *slot;
	Datum	   *keys;			/* the contacts taken */
	int			nkeys;
} QueueTakeScan;

/*
 * One scan of the queue's primary key over the ids after `after` and up to
 * `upto` (PG_INT64_MIN and PG_INT64_MAX: no bound): deletes each visible
 * entry until taken->n reaches limit.
 */
static void
take_range(QueueTakeScan *qs, int64 after, int64 upto, int limit, QueueTaken *taken)
{
	ScanKeyData keys[2];
	int			nkeys = 0;
	IndexScanDesc scan;

	if (after != PG_INT64_MIN)
		ScanKeyInit(&keys[nkeys++], 1, BTGreaterStrategyNumber, F_INT8GT, Int64GetDatum(after));
	if (upto != PG_INT64_MAX)
		ScanKeyInit(&keys[nkeys++], 1, BTLessEqualStrategyNumber, F_INT8LE, Int64GetDatum(upto));
	scan = index_beginscan(qs->rel, qs->pkey, qs->snapshot, nkeys, 0);
	index_rescan(scan, keys, nkeys, NULL, 0);
	while (taken->n < limit && index_getnext_slot(scan, ForwardScanDirection, qs->slot))
	{
		bool		isnull;
		Datum		id = slot_getattr(qs->slot, qs->id_att, &isnull);
		Datum		contact = slot_getattr(qs->slot, qs->contact_att, &isnull);
		TM_FailureData tmfd;

		CHECK_FOR_INTERRUPTS();
		/* another transaction's delete (refresh() clearing the queue) wins */
		if (table_tuple_delete(qs->rel, &qs->slot->tts_tid, qs->cid, qs->snapshot,
							   InvalidSnapshot, true, &tmfd, false) != TM_Ok)
			continue;
		taken->n++;
		taken->last_id = Max(taken->last_id, DatumGetInt64(id));
		if (isnull)
			taken->whole_source = true;
		else
			qs->keys[qs->nkeys++] = PointerGetDatum(DatumGetTextPCopy(contact));
	}
	index_endscan(scan);
}

/*
 * Deletes up to limit entries of segments.change_queue visible now, in the
 * current transaction, and says what they were in *taken.
 *
 * With resume_after (the last_id of the batch before, or QUEUE_NO_RESUME),
 * the entries after it first: under a stream of changes the queue's head is a run of entries
 * that earlier batches deleted, which stay in the index until vacuum and
 * which no scan can mark dead until every snapshot older than the delete
 * has gone; reading them again for each batch cost 27 index entries for
 * each entry taken.  The queue is read from its first entry as well (up to
 * resume_after) when that does not fill the batch, and before it when
 * from_start asks for it (the worker does once a second): an entry whose id
 * is smaller than ids already taken can commit later (ids are cached 64 at
 * a time by each session), and is found then.
 *
 * False (and nothing taken) when the queue is not as the extension made it
 * in a way that matters here: triggers or row security a DBA added, which
 * only the SQL statement honours, or no usable primary key.
 */
bool
QueueTake(int limit, int64 resume_after, bool from_start, QueueTaken *taken)
{
	QueueTakeScan qs;
	Oid			pkey_oid;
	TupleDesc	desc;
	bool		resumed = (resume_after != QUEUE_NO_RESUME);

	memset(taken, 0, sizeof(QueueTaken));
	taken->last_id = resume_after;

	qs.rel = table_open(CatalogRelid("change_queue", false), RowExclusiveLock);
	desc = RelationGetDescr(qs.rel);
	qs.id_att = get_attnum(RelationGetRelid(qs.rel), "id");
	qs.contact_att = get_attnum(RelationGetRelid(qs.rel), "contact");
	pkey_oid = RelationGetPrimaryKeyIndex(qs.rel);
	if (qs.rel->trigdesc != NULL || qs.rel->rd_rel->relrowsecurity ||
		!OidIsValid(pkey_oid) || qs.id_att <= 0 || qs.contact_att <= 0 ||
		TupleDescAttr(desc, qs.id_att - 1)->atttypid != INT8OID ||
		TupleDescAttr(desc, qs.contact_att - 1)->atttypid != TEXTOID)
	{
		table_close(qs.rel, NoLock);
		return false;
	}
	qs.pkey = index_open(pkey_oid, AccessShareLock);
	if (IndexRelationGetNumberOfKeyAttributes(qs.pkey) != 1 ||
		qs.pkey->rd_index->indkey.values[0] != qs.id_att)
	{
		index_close(qs.pkey, AccessShareLock);
		table_close(qs.rel, NoLock);
		return false;
	}

	PushActiveSnapshot(GetTransactionSnapshot());
	qs.snapshot = GetActiveSnapshot();
	qs.cid = GetCurrentCommandId(true);
	qs.keys = palloc(Max(limit, 1) * sizeof(Datum));
	qs.nkeys = 0;
	qs.slot = table_slot_create(qs.rel, NULL);
	if (!resumed || from_start)
	{
		/* first, so that a stream of new entries cannot starve these */
		taken->from_start = true;
		take_range(&qs, PG_INT64_MIN, resumed ? resume_after : PG_INT64_MAX, limit, taken);
	}
	if (resumed)
		take_range(&qs, resume_after, PG_INT64_MAX, limit, taken);
	if (!taken->from_start && taken->n < limit)
	{
		/* the batch is not full: nothing may stay behind the resume point */
		taken->from_start = true;
		take_range(&qs, PG_INT64_MIN, resume_after, limit, taken);
	}
	ExecDropSingleTupleTableSlot(qs.slot);
	PopActiveSnapshot();
	/* what follows in the transaction sees the entries gone */
	CommandCounterIncrement();
	index_close(qs.pkey, NoLock);
	table_close(qs.rel, NoLock);

	if (qs.nkeys > 0)
		taken->contacts = construct_array(qs.keys, qs.nkeys, TEXTOID, -1, false, TYPALIGN_INT);
	return true;
}

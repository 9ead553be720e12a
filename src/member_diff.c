/*-------------------------------------------------------------------------
 *
 * member_diff.c
 *		A batch of contacts' evaluated membership against their stored rows
 *		of segments.member: only rows whose membership changed are written.
 *
 * Every pass computes, per contact, the sorted numbers of the segments it
 * belongs to and adds them to a MemberBatch.  A full batch reads the stored
 * rows of its contacts at once (through the key index, key_fetch.c, or
 * SQL), merges each with what the pass computed (segments the pass does not
 * rewrite keep their stored state, "since" is kept for memberships that
 * continue) and writes the changed rows: new and replaced ones through
 * member_bulk.c, the rest with one INSERT, UPDATE and DELETE per batch.
 * Memory is bounded by the batch size, not by the number of contacts.
 * Everything happens in the caller's transaction, so readers see the old
 * membership until it commits.
 *
 *-------------------------------------------------------------------------
 */
#include "eval_pass.h"
#include "key_fetch.h"
#include "member_codec.h"
#include "member_space.h"

#include "access/genam.h"
#include "access/table.h"
#include "catalog/pg_collation.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

/* Btree comparison of two keys, for sorting and searching a batch. */
static int
key_compare(const void *a, const void *b, void *arg)
{
	EvalPlan   *plan = (EvalPlan *) arg;

	return DatumGetInt32(FunctionCall2Coll(&plan->key_cmp, C_COLLATION_OID,
										   ((const MemberBatchEntry *) a)->key,
										   ((const MemberBatchEntry *) b)->key));
}

/* The batch entry of a key (the batch is sorted), or NULL. */
MemberBatchEntry *
MemberBatchFind(EvalPlan *plan, MemberBatch *batch, Datum key)
{
	MemberBatchEntry probe;

	probe.key = key;
	return bsearch_arg(&probe, batch->entries, batch->n, sizeof(MemberBatchEntry),
					   key_compare, plan);
}

/* Growable arrays of rows to write. */
typedef struct RowList
{
	int			n;
	Datum	   *rows;
} RowList;

/*
 * The new row of one contact from its stored row (old, may be absent) and
 * what the pass computed: numbers of segments the pass does not rewrite
 * keep their stored state, numbers of dropped segments go, and "since"
 * is kept for memberships that continue.  Returns the number of entries.
 */
static int
merge_row(EvalPlan *plan, MemberBatchEntry *entry, int nold, const int32 *old_segs,
		  const int32 *old_since, int32 *segs, int32 *since)
{
	int			n = 0;
	int			i = 0,
				j = 0;

	while (i < nold || j < entry->nnums)
	{
		int32		num;
		bool		from_old;

		if (j >= entry->nnums || (i < nold && old_segs[i] < entry->nums[j]))
		{
			EvalSegment *es = EvalSegmentOfNum(plan, old_segs[i]);

			/* kept only if the segment exists and this pass leaves it alone */
			if (es != NULL && !es->writable)
			{
				segs[n] = old_segs[i];
				since[n++] = old_since[i];
			}
			else if (es != NULL)
				es->delta--;
			i++;
			continue;
		}
		num = entry->nums[j++];
		from_old = (i < nold && old_segs[i] == num);
		{
			EvalSegment *es = EvalSegmentOfNum(plan, num);

			if (es != NULL && es->writable)
			{
				segs[n] = num;
				since[n++] = from_old ? old_since[i] : plan->now_seconds;
				if (!from_old)
					es->delta++;
			}
			else if (from_old)
			{
				segs[n] = num;
				since[n++] = old_since[i];
			}
		}
		if (from_old)
			i++;
	}
	/* entries not evaluated as members but stored and not writable stay */
	return n;
}

/* Are two stored tenants (NULL: none) the same? */
static bool
same_tenant(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Runs one prepared write with an array parameter; checks the result. */
static void
run_write(EvalPlan *eplan, SPIPlanPtr plan, Datum arg, int expected)
{
	int			rc = EvalPlanExecute(eplan, plan, &arg, NULL);

	if (rc != SPI_OK_INSERT && rc != SPI_OK_UPDATE && rc != SPI_OK_DELETE)
		elog(ERROR, "membership write failed: %s", SPI_result_code_string(rc));
}

/* A stored row of segments.member, as MemberBatchApply compares it. */
typedef struct StoredRow
{
	Datum		key;
	bytea	   *data;
	char	   *tenant;			/* NULL: none stored */
	ItemPointerData tid;		/* invalid: not known (Citus) */
} StoredRow;

/* The stored rows of keys (sorted, distinct) through SQL: SPI_tuptable. */
static SPITupleTable *
stored_rows_sql(EvalPlan *plan, Datum *keys, int nkeys)
{
	Datum		arg = PointerGetDatum(construct_array(keys, nkeys, plan->cat->config.key_type,
													  plan->key_len, plan->key_byval,
													  plan->key_align));

	if (EvalPlanExecute(plan, plan->fetch_plan, &arg, NULL) != SPI_OK_SELECT)
		elog(ERROR, "could not read stored membership");
	return SPI_tuptable;
}

/* The rows of stored_rows_sql's table, into rows; returns their count. */
static int
stored_rows_from_table(SPITupleTable *tuptable, uint64 ntuples, StoredRow *rows)
{
	for (uint64 r = 0; r < ntuples; r++)
	{
		HeapTuple	tup = tuptable->vals[r];
		bool		isnull;
		Datum		tenant;
		Datum		ctid;

		rows[r].key = SPI_getbinval(tup, tuptable->tupdesc, 1, &isnull);
		rows[r].data = DatumGetByteaPP(SPI_getbinval(tup, tuptable->tupdesc, 2, &isnull));
		tenant = SPI_getbinval(tup, tuptable->tupdesc, 3, &isnull);
		rows[r].tenant = isnull ? NULL : TextDatumGetCString(tenant);
		ctid = SPI_getbinval(tup, tuptable->tupdesc, 4, &isnull);
		if (isnull)
			ItemPointerSetInvalid(&rows[r].tid);
		else
			rows[r].tid = *(ItemPointer) DatumGetPointer(ctid);
	}
	return (int) ntuples;
}

/*
 * The stored rows of keys (sorted, distinct) read from segments.member
 * directly (key_fetch.c), as stored_rows_sql's statement would: with the
 * pass's snapshot at a new command, and the same privilege.  Only where
 * member_bulk.c writes (not on Citus); -1 under row security (SQL
 * applies the policies).  Returns their count.
 */
static int
stored_rows_direct(EvalPlan *plan, Datum *keys, int nkeys, StoredRow *rows)
{
	const SegmentsConfig *config = &plan->cat->config;
	Relation	rel = table_open(plan->bulk_relid, AccessShareLock);
	Relation	index;
	TupleTableSlot *slot;
	Datum	   *sorted;
	KeyFetch   *kf;
	int			nsorted;
	int			nrows = 0;
	int			pos;

	if (rel->rd_rel->relrowsecurity)
	{
		table_close(rel, NoLock);
		return -1;
	}
	if (pg_class_aclcheck(plan->bulk_relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, RelationGetRelationName(rel));
	index = MembershipKeyIndexOpen(rel, config->member_pkey, config->key_type);
	slot = table_slot_create(rel, NULL);
	sorted = palloc(Max(nkeys, 1) * sizeof(Datum));
	memcpy(sorted, keys, nkeys * sizeof(Datum));
	nsorted = KeyFetchSort(index, sorted, nkeys);

	/* as SPI runs a statement: what the pass wrote before, at a new command */
	CommandCounterIncrement();
	PushCopiedSnapshot(plan->snapshot);
	UpdateActiveSnapshotCommandId();
	kf = KeyFetchBegin(rel, index, GetActiveSnapshot(), sorted, nsorted);
	while ((pos = KeyFetchNext(kf, slot)) >= 0)
	{
		StoredRow  *row = &rows[nrows++];
		bool		isnull;
		Datum		d;

		row->key = sorted[pos];
		d = slot_getattr(slot, MEMBER_ATTNUM_DATA, &isnull);
		if (isnull)
			elog(ERROR, "a stored membership row has no data");
		row->data = DatumGetByteaPCopy(d);
		row->tenant = NULL;
		if (config->member_tenant_attnum > 0)
		{
			d = slot_getattr(slot, config->member_tenant_attnum, &isnull);
			if (!isnull)
				row->tenant = TextDatumGetCString(d);
		}
		row->tid = slot->tts_tid;
	}
	KeyFetchEnd(kf);
	PopActiveSnapshot();
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, NoLock);
	table_close(rel, NoLock);
	return nrows;
}

/*
 * Applies a batch: reads the stored rows of its contacts, merges, and
 * writes only what changed.
 */
void
MemberBatchApply(EvalPlan *plan, MemberBatch *batch)
{
	MemoryContext old = MemoryContextSwitchTo(batch->cxt);
	Datum	   *keys = palloc(batch->n * sizeof(Datum));
	bool	   *seen = palloc0(batch->n * sizeof(bool));
	RowList		inserts = {0, palloc(batch->n * sizeof(Datum))};
	RowList		updates = {0, palloc(batch->n * sizeof(Datum))};
	RowList		deletes = {0, palloc(batch->n * sizeof(Datum))};
	HeapTuple  *bulk = palloc(batch->n * sizeof(HeapTuple));	/* new rows, for member_bulk.c */
	int			nbulk = 0;
	HeapTuple  *bulk_upd = palloc(batch->n * sizeof(HeapTuple));	/* replacing rows, */
	ItemPointerData *bulk_tids = palloc(batch->n * sizeof(ItemPointerData));	/* these */
	int			nbulk_upd = 0;
	int			capacity = 2 * (plan->nsegments + 32);
	int32	   *segs = palloc(capacity * sizeof(int32));
	int32	   *since;
	StoredRow  *stored = palloc(batch->n * sizeof(StoredRow));
	SPITupleTable *tuptable = NULL;	/* where stored points, through SQL */
	int			nrows;

	if (batch->n == 0)
	{
		MemoryContextSwitchTo(old);
		return;
	}
	qsort_arg(batch->entries, batch->n, sizeof(MemberBatchEntry), key_compare, plan);
	/* a contact named twice (the incremental path) is written once */
	{
		int			m = 1;

		for (int i = 1; i < batch->n; i++)
		{
			if (key_compare(&batch->entries[m - 1], &batch->entries[i], plan) != 0)
				batch->entries[m++] = batch->entries[i];
		}
		batch->n = m;
	}
	for (int i = 0; i < batch->n; i++)
		keys[i] = batch->entries[i].key;
	if (plan->member_empty)
		nrows = 0;				/* every row of the table is this pass's, of other contacts */
	else if (plan->verify)
	{
		tuptable = stored_rows_sql(plan, keys, batch->n);
		MemoryContextSwitchTo(batch->cxt);
		VerifyBatch(plan, batch, tuptable, SPI_processed);
		SPI_freetuptable(tuptable);
		MemoryContextSwitchTo(old);
		MemoryContextReset(batch->cxt);
		batch->n = 0;
		return;
	}
	else if (!OidIsValid(plan->bulk_relid) ||
			 (nrows = stored_rows_direct(plan, keys, batch->n, stored)) < 0)
	{
		tuptable = stored_rows_sql(plan, keys, batch->n);
		/* SPI returns in its procedure context: what follows belongs to the batch */
		MemoryContextSwitchTo(batch->cxt);
		nrows = stored_rows_from_table(tuptable, SPI_processed, stored);
	}

	for (int r = 0; r < nrows + batch->n; r++)
	{
		MemberBatchEntry *entry;
		int			nold = 0;
		int32	   *old_segs = NULL;
		int32	   *old_since = NULL;
		char	   *old_tenant = NULL;
		char	   *tenant;
		int			n;
		int			maxn;
		ItemPointerData old_tid;

		ItemPointerSetInvalid(&old_tid);
		if (r < nrows)
		{
			old_tenant = stored[r].tenant;
			entry = MemberBatchFind(plan, batch, stored[r].key);
			if (entry == NULL)
				continue;
			plan->stored_seen++;
			seen[entry - batch->entries] = true;
			old_tid = stored[r].tid;
			nold = MemberDecode(stored[r].data, &old_segs, &old_since);
		}
		else
		{
			/* contacts with no stored row */
			entry = &batch->entries[r - nrows];
			if (seen[r - nrows])
				continue;
		}

		maxn = nold + entry->nnums;
		if (2 * maxn > capacity)
		{
			capacity = 2 * maxn;
			segs = palloc(capacity * sizeof(int32));
		}
		since = segs + maxn;
		n = merge_row(plan, entry, nold, old_segs, old_since, segs, since);

		if (nold == n && (n == 0 ||
						  (memcmp(old_segs, segs, n * sizeof(int32)) == 0 &&
						   memcmp(old_since, since, n * sizeof(int32)) == 0 &&
						   (plan->cat->config.member_tenant_attnum <= 0 ||
							same_tenant(old_tenant, entry->tenant)))))
			continue;			/* unchanged */
		/* a departed contact's tenant is the stored one */
		tenant = entry->evaluated ? entry->tenant : old_tenant;
		if (CatalogContactVisibleIn(&plan->contact_view, tenant,
									tenant != NULL ? strlen(tenant) : 0))
			plan->changed++;
		if (n == 0)
			deletes.rows[deletes.n++] = entry->key;
		else
		{
			Datum		values[3];
			bool		nulls[3] = {false, false, false};
			HeapTuple	tup;

			values[MEMBER_ATTNUM_KEY - 1] = entry->key;
			values[MEMBER_ATTNUM_DATA - 1] = PointerGetDatum(MemberEncode(segs, since, n));
			if (entry->tenant != NULL)
				values[MEMBER_ATTNUM_TENANT - 1] = CStringGetTextDatum(entry->tenant);
			else
				nulls[MEMBER_ATTNUM_TENANT - 1] = true;
			tup = heap_form_tuple(plan->member_desc, values, nulls);
			if ((nold > 0 || r < nrows) && OidIsValid(plan->bulk_relid) &&
				ItemPointerIsValid(&old_tid))
			{
				bulk_tids[nbulk_upd] = old_tid;
				bulk_upd[nbulk_upd++] = tup;
			}
			else if (nold > 0 || r < nrows)
				updates.rows[updates.n++] = heap_copy_tuple_as_datum(tup, plan->member_desc);
			else if (OidIsValid(plan->bulk_relid))
				bulk[nbulk++] = tup;
			else
				inserts.rows[inserts.n++] = heap_copy_tuple_as_datum(tup, plan->member_desc);
		}
	}

	if (tuptable != NULL)
		SPI_freetuptable(tuptable);
	if (nbulk > 0)
		MemberBulkInsert(plan->bulk, plan->bulk_relid, bulk, nbulk, plan->snapshot);
	/* a row changed since it was read (never, under the writers' lock) goes by key */
	if (nbulk_upd > 0)
		updates.n += MemberBulkUpdate(plan->bulk, plan->bulk_relid, bulk_tids, bulk_upd,
									  nbulk_upd, plan->snapshot, updates.rows + updates.n);
	if (inserts.n > 0)
		run_write(plan, plan->insert_plan,
				  PointerGetDatum(construct_array(inserts.rows, inserts.n, plan->member_type,
												  -1, false, TYPALIGN_DOUBLE)), inserts.n);
	if (updates.n > 0)
		run_write(plan, plan->update_plan,
				  PointerGetDatum(construct_array(updates.rows, updates.n, plan->member_type,
												  -1, false, TYPALIGN_DOUBLE)), updates.n);
	if (deletes.n > 0)
		run_write(plan, plan->delete_plan,
				  PointerGetDatum(construct_array(deletes.rows, deletes.n,
												  plan->cat->config.key_type, plan->key_len,
												  plan->key_byval, plan->key_align)), deletes.n);
	MemoryContextSwitchTo(old);
	MemoryContextReset(batch->cxt);
	batch->n = 0;
}

/*
 * After the last batch: the GIN entries the pass's writes gathered go into
 * the index (member_bulk.c), before anything reads membership through it
 * (PassRecordState()'s fail-closed removal, the caller's next query) and
 * before the commit.
 */
void
MemberBatchFlushWrites(EvalPlan *plan)
{
	if (plan->bulk != NULL)
		MemberBulkFlush(plan->bulk);
}

/*
 * Before the first batch of a pass: the row versions earlier passes
 * replaced make room for this pass's (member_space.c).
 */
void
MemberBatchReclaimSpace(EvalPlan *plan)
{
	Relation	member = table_open(plan->cat->config.member_relid, RowExclusiveLock);

	MemberReclaimSpace(member);
	table_close(member, NoLock);
}

/* Adds a contact's result to the batch, applying the batch when full. */
void
MemberBatchAdd(EvalPlan *plan, MemberBatch *batch, Datum key, int nnums, const int32 *nums,
			   const char *tenant, bool evaluated)
{
	MemoryContext old = MemoryContextSwitchTo(batch->cxt);
	MemberBatchEntry *entry = &batch->entries[batch->n++];

	entry->tenant = tenant ? pstrdup(tenant) : NULL;
	entry->key = datumCopy(key, plan->key_byval, plan->key_len);
	entry->nnums = nnums;
	entry->nums = palloc(Max(nnums, 1) * sizeof(int32));
	memcpy(entry->nums, nums, nnums * sizeof(int32));
	entry->evaluated = evaluated;
	MemoryContextSwitchTo(old);
	if (batch->n >= batch->size)
		MemberBatchApply(plan, batch);
}

MemberBatch *
MemberBatchCreate(void)
{
	MemberBatch *batch = palloc0(sizeof(MemberBatch));

	batch->size = EVAL_BATCH_SIZE;

	/*
	 * A batch needs a few megabytes; a first block that large survives the
	 * reset after each batch, so the pages are not given back and faulted
	 * in again for every batch.
	 */
	batch->cxt = AllocSetContextCreate(CurrentMemoryContext, "segments batch",
									   4 * 1024 * 1024, 4 * 1024 * 1024,
									   ALLOCSET_DEFAULT_MAXSIZE);
	return batch;
}

/*-------------------------------------------------------------------------
 *
 * pass_incremental.c
 *		The incremental pass: the contacts named by captured changes (the
 *		worker's, refresh_contacts()) or moved by the passage of time
 *		(time_window.c), read through the source's key index and evaluated for
 *		every ready segment; the difference is written.
 *
 * The contacts go through the batch evaluator of the scanning passes
 * (pass_scan.c), up to 256 at a time: each distinct condition once per
 * contact, the trees once per batch.  Walking every segment's tree per
 * contact took 1.10 to 1.15 times as long (refresh_contacts() of 100,000
 * contacts with nothing changed, 1,000,000 contacts, the bench's 100
 * segments); verify() still walks the trees, a check of the batches.
 *
 *-------------------------------------------------------------------------
 */
#include "citus.h"
#include "eval_pass.h"
#include "history.h"
#include "key_fetch.h"

#include "access/genam.h"
#include "access/table.h"
#include "miscadmin.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

PG_FUNCTION_INFO_V1(segments_refresh_contacts);

/*
 * True while the incremental pass is evaluating its contacts: an error
 * then may be one contact's (the worker sets that entry aside); before,
 * it is the pass's own (configuration, source shape, lock) and concerns
 * every entry alike.
 */
bool		EvaluateInContacts = false;

/*
 * Adds one of EvaluateContacts' contacts to the batches: its row in slot
 * evaluated with the others of the evaluation batch (pass_scan.c, the
 * batch evaluator a full pass uses), or gone when slot is NULL (no row).
 */
static void
contact_add(EvalPlan *plan, ContactBatch *cb, MemberBatch *batch, Datum key,
			TupleTableSlot *slot, MemoryContext contact_cxt)
{
	if (slot != NULL)
		ContactBatchEvaluate(plan, cb, batch, slot, contact_cxt);
	else
		MemberBatchAdd(plan, batch, key, 0, NULL, NULL, false);
}

/*
 * EvaluateContacts' contacts of one group (keyvals[group->keys[...]]) in
 * rel, read through its key index at once (key_fetch.c), into the batch.
 */
static void
contacts_fetch(EvalPlan *plan, ContactBatch *cb, MemberBatch *batch, Relation rel, Oid indexid,
			   const Datum *keyvals, const CitusShardKeys *group, TupleTableSlot *slot,
			   MemoryContext contact_cxt)
{
	Relation	index = MembershipKeyIndexOpen(rel, indexid, plan->cat->config.key_type);
	Datum	   *keys = palloc(group->nkeys * sizeof(Datum));
	bool	   *found;
	KeyFetch   *kf;
	int			nkeys;
	int			pos;

	for (int i = 0; i < group->nkeys; i++)
		keys[i] = keyvals[group->keys[i]];
	nkeys = KeyFetchSort(index, keys, group->nkeys);
	found = palloc0(Max(nkeys, 1) * sizeof(bool));
	kf = KeyFetchBegin(rel, index, GetActiveSnapshot(), keys, nkeys);
	while ((pos = KeyFetchNext(kf, slot)) >= 0)
	{
		found[pos] = true;
		contact_add(plan, cb, batch, keys[pos], slot, contact_cxt);
	}
	KeyFetchEnd(kf);
	for (int i = 0; i < nkeys; i++)
		if (!found[i])
			contact_add(plan, cb, batch, keys[i], NULL, contact_cxt);
	index_close(index, NoLock);
}

/*
 * Incremental pass: evaluates every ready segment for the given contact
 * keys (an array of the key type, or of text) and applies the difference;
 * keys no longer in the source leave every segment.  Returns the number of
 * contacts whose stored membership changed.
 */
int64
EvaluateContacts(ArrayType *keys, const TenantView *view)
{
	return EvaluateContactsOf(keys, view, NULL, 0);
}

/*
 * EvaluateContacts for the ready segments among `only` (nonly ids) and
 * those that reference them; the contacts keep their stored membership of
 * the others.  What passing time can flip (time_window.c) is only the
 * time-dependent segments' membership: the others are not re-evaluated.
 */
int64
EvaluateContactsOf(ArrayType *keys, const TenantView *view, const pg_uuid_t *only, int nonly)
{
	MemoryContext pass_cxt = AllocSetContextCreate(CurrentMemoryContext,
												   "segments contacts",
												   ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(pass_cxt);
	MemoryContext contact_cxt = AllocSetContextCreate(pass_cxt, "segments contact",
													  ALLOCSET_DEFAULT_SIZES);
	TimestampTz started = GetCurrentTimestamp();
	EvalPlan   *plan;
	MemberBatch *batch;
	ContactBatch *cb;
	Datum	   *elems;
	bool	   *elem_nulls;
	int			nelems;
	Datum	   *keyvals;
	int			nkeys = 0;
	CitusShardKeys *groups;
	int			ngroups;
	int16		elmlen;
	bool		elmbyval;
	char		elmalign;
	int64		changed;

	EvaluateInContacts = false;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = EvalPlanBuild(only, nonly, false, false);
	if (view != NULL)
		plan->contact_view = *view;
	batch = MemberBatchCreate();
	cb = ContactBatchCreate(plan, false);
	EvaluateInContacts = true;

	get_typlenbyvalalign(ARR_ELEMTYPE(keys), &elmlen, &elmbyval, &elmalign);
	deconstruct_array(keys, ARR_ELEMTYPE(keys), elmlen, elmbyval, elmalign,
					  &elems, &elem_nulls, &nelems);
	keyvals = palloc(Max(nelems, 1) * sizeof(Datum));
	for (int k = 0; k < nelems; k++)
	{
		if (!elem_nulls[k] &&
			MembershipKeyFromArg(&plan->cat->config, elems[k], ARR_ELEMTYPE(keys), &keyvals[nkeys]))
			nkeys++;
	}
	/* Citus: the keys of each membership shard placed here, then the rest (citus.c) */
	ngroups = CitusContactShards(plan->source, plan->cat->config.source_key_index,
								 plan->cat->config.member_relid, plan->cat->config.key_type,
								 keyvals, nkeys, plan->snapshot, &groups);
	PushActiveSnapshot(plan->snapshot);
	for (int g = 0; g < ngroups; g++)
	{
		Relation	rel = plan->source;
		Oid			index = plan->cat->config.source_key_index;
		TupleTableSlot *slot;

		if (groups[g].nkeys == 0)
			continue;
		/* Citus: the contacts shard here, written into its membership shard */
		if (OidIsValid(groups[g].member_shard))
		{
			rel = table_open(groups[g].source_shard, AccessShareLock);
			index = groups[g].key_index;
		}
		EvalPlanRetarget(plan, groups[g].member_shard);
		slot = table_slot_create(rel, NULL);
		if (!CitusIsDistributed(RelationGetRelid(rel)))
			contacts_fetch(plan, cb, batch, rel, index, keyvals, &groups[g], slot, contact_cxt);
		else
		{
			/* Citus: a contact placed on another node, one at a time (citus.c) */
			for (int i = 0; i < groups[g].nkeys; i++)
			{
				Datum		key = keyvals[groups[g].keys[i]];
				MemoryContext prev;
				bool		found;

				CHECK_FOR_INTERRUPTS();
				/* what the probe allocates goes with the contact (reset after it) */
				prev = MemoryContextSwitchTo(contact_cxt);
				found = MembershipProbe(rel, index, plan->cat->config.key_type, key, slot);
				MemoryContextSwitchTo(prev);
				contact_add(plan, cb, batch, key, found ? slot : NULL, contact_cxt);
				if (!found)
					MemoryContextReset(contact_cxt);
			}
		}
		/* the group's last contacts go to the group's membership (shard) */
		ContactBatchFlush(plan, cb, batch);
		MemberBatchApply(plan, batch);
		ExecDropSingleTupleTableSlot(slot);
		if (rel != plan->source)
			table_close(rel, NoLock);
	}
	EvaluateInContacts = false;
	PopActiveSnapshot();

	MemberBatchFlushWrites(plan);
	PassRecordState(plan, started);
	changed = plan->changed;
	EvalPassEnd(plan, old, pass_cxt);
	return changed;
}

/*
 * segments.refresh_contacts(contacts anyarray) RETURNS bigint
 *
 * The incremental path, callable from SQL.
 */
Datum
segments_refresh_contacts(PG_FUNCTION_ARGS)
{
	TenantView	view = CatalogManageView();

	HistoryDefaultCause(HISTORY_CAUSE_REFRESH_CONTACTS);	/* history */
	if (PG_ARGISNULL(0))
		PG_RETURN_INT64(0);
	/* a tenant's count is of its own contacts (the rows are written as the worker would) */
	PG_RETURN_INT64(EvaluateContacts(PG_GETARG_ARRAYTYPE_P(0), &view));
}

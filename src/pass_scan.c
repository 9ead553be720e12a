/*-------------------------------------------------------------------------
 *
 * pass_scan.c
 *		The step every scanning pass (refresh, a chunk of the worker's pass)
 *		repeats for each contact of the source: its conditions evaluated into
 *		an evaluation batch (eval_batch.c) while its row is at hand, the
 *		batch's segments evaluated once it is full, and each contact's segments
 *		added to the membership batch (member_diff.c).
 *
 *-------------------------------------------------------------------------
 */
#include "eval_pass.h"

#include "utils/datum.h"
#include "utils/memutils.h"

/* qsort_arg comparator: plan positions by their segments' numbers. */
static int
position_num_compare(const void *a, const void *b, void *arg)
{
	EvalPlan   *plan = (EvalPlan *) arg;
	int32		x = plan->segments[*(const int *) a].seg->num;
	int32		y = plan->segments[*(const int *) b].seg->num;

	return (x > y) - (x < y);
}

/* The evaluation batch of a scanning pass; count: members counted per segment. */
ContactBatch *
ContactBatchCreate(EvalPlan *plan, bool count)
{
	ContactBatch *cb = palloc0(sizeof(ContactBatch));

	Assert(plan->trace == NULL);
	cb->bits = EvalBatchCreate(plan->nsegments);
	for (int i = 0; i < plan->nsegments; i++)
	{
		EvalSegment *es = &plan->segments[i];

		if (es->rule != NULL && es->needed)
			EvalBatchAddSegment(cb->bits, es->entry, es->id_text);
	}
	cb->order = palloc(Max(plan->nsegments, 1) * sizeof(int));
	for (int i = 0; i < plan->nsegments; i++)
		cb->order[i] = i;
	qsort_arg(cb->order, plan->nsegments, sizeof(int), position_num_compare, plan);
	cb->cxt = AllocSetContextCreate(CurrentMemoryContext, "segments contact batch",
									ALLOCSET_DEFAULT_SIZES);
	cb->count = count;
	return cb;
}

/*
 * Evaluates the segments for the contacts of the batch, in dependency
 * order, and adds each contact's segments (sorted by number) to the batch
 * of writes.
 */
void
ContactBatchFlush(EvalPlan *plan, ContactBatch *cb, MemberBatch *batch)
{
	int			n = EvalBatchCount(cb->bits);
	int			stride = Max(plan->nsegments, 1);
	MemoryContext old;
	int32	   *lists;
	int		   *counts;

	if (n == 0)
		return;
	old = MemoryContextSwitchTo(cb->cxt);
	lists = palloc(n * stride * sizeof(int32));
	counts = palloc0(n * sizeof(int));
	for (int i = 0; i < plan->nsegments; i++)
	{
		EvalSegment *es = &plan->segments[i];
		bool		active = es->rule != NULL && es->needed;

		EvalBatchSegment(cb->bits, i, active ? es->entry : NULL);
		/* a tenant's segment only ever holds that tenant's contacts */
		if (active && es->seg->tenant != NULL && plan->cat->config.tenant_attnum > 0)
		{
			for (int k = 0; k < n; k++)
				if (!EvalTenantAllows(plan, es, cb->tenants[k]))
					EvalBatchExclude(cb->bits, i, k);
		}
		if (cb->count)
			es->count += EvalBatchMembers(cb->bits, i);
	}
	/* each contact's segments, in number order: a segment's members at a time */
	for (int o = 0; o < plan->nsegments; o++)
		EvalBatchAppendMembers(cb->bits, cb->order[o], plan->segments[cb->order[o]].seg->num,
							   lists, stride, counts);
	for (int k = 0; k < n; k++)
	{
		if (cb->emit != NULL)
			cb->emit(cb->emit_arg, cb->keys[k], counts[k], &lists[k * stride], cb->tenants[k]);
		else
			MemberBatchAdd(plan, batch, cb->keys[k], counts[k], &lists[k * stride],
						   cb->tenants[k], true);
	}
	EvalBatchReset(cb->bits);
	MemoryContextSwitchTo(old);
	MemoryContextReset(cb->cxt);
}

/*
 * The step of every scanning pass: evaluates the conditions for the
 * contact in the slot (in contact_cxt, reset afterwards) into the batch,
 * evaluating the batch when it is full.
 */
void
ContactBatchEvaluate(EvalPlan *plan, ContactBatch *cb, MemberBatch *batch, TupleTableSlot *slot,
					 MemoryContext contact_cxt)
{
	MemoryContext prev = MemoryContextSwitchTo(contact_cxt);
	int			k = EvalBatchCount(cb->bits);
	RuleEvalContext ctx;
	char	   *tenant;

	slot_getallattrs(slot);
	tenant = EvalContactContext(plan, slot, &ctx);
	EvalBatchContact(cb->bits, &ctx);
	MemoryContextSwitchTo(cb->cxt);
	cb->keys[k] = datumCopy(slot->tts_values[plan->cat->config.key_attnum - 1],
							plan->key_byval, plan->key_len);
	cb->tenants[k] = tenant != NULL ? pstrdup(tenant) : NULL;
	MemoryContextSwitchTo(prev);
	MemoryContextReset(contact_cxt);
	if (k + 1 == EVAL_BATCH_CONTACTS)
		ContactBatchFlush(plan, cb, batch);
}

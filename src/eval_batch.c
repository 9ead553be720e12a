/*-------------------------------------------------------------------------
 *
 * eval_batch.c
 *		The program of a pass (eval_program.c) evaluated over a batch of
 *		contacts: each distinct condition once per contact into a bitmap
 *		(a bit per contact of the batch), then each segment's tree once per
 *		batch, on words of 64 contacts.
 *
 * The scanning passes (pass_scan.c) call EvalBatchContact() for each
 * contact while its row is at hand, and EvalBatchSegment() for each
 * segment, in dependency order, when the batch is full: a segment
 * condition reads the bitmaps of the segments before it.  Per contact that
 * is one call per distinct condition and no walk of a tree; per segment
 * and batch, a walk of its tree.  Conditions are evaluated whatever the
 * others' results (no short cut): evaluation has no side effect and
 * raises no error on data, so the results are those of RuleEvaluate().
 *
 *-------------------------------------------------------------------------
 */
#include "segments.h"

#include "port/pg_bitutils.h"

#define WORDS EVAL_BATCH_WORDS

struct EvalBatch
{
	int			nslots;			/* memo slots known (highest + 1) */
	int			nactive;		/* distinct conditions evaluated */
	int			space;
	RuleCondition **active;		/* one condition holding each */
	const char **active_salt;	/* its segment's default salt */
	/* of each, what the loop reads without touching the condition */
	int		   *active_slot;	/* memo slot - 1 */
	int		   *active_group;	/* value group (0: none) */
	int		   *active_bit;		/* its bit in the group */
	bool	   *is_active;		/* by memo slot - 1 */
	int			is_active_space;
	uint64	   *cond_bits;		/* by memo slot - 1: WORDS words */
	uint64	   *seg_bits;		/* by plan position: WORDS words */
	int			nsegments;
	int			ncontacts;		/* in the batch so far */
	/* one active condition per group of remembered values (RuleValuePrefetch) */
	int			ngroups;
	int			groups_space;
	RuleCondition **group_conds;
	bool	   *has_group;		/* by value group - 1 */
	int			has_group_space;
};

EvalBatch *
EvalBatchCreate(int nsegments)
{
	EvalBatch  *b = palloc0(sizeof(EvalBatch));

	b->nsegments = nsegments;
	b->seg_bits = palloc0(sizeof(uint64) * WORDS * Max(nsegments, 1));
	b->cond_bits = palloc0(sizeof(uint64) * WORDS);
	return b;
}

/* flags (space of them, NULL: none) grown to hold index i, new ones false. */
static bool *
flags_cover(bool *flags, int *space, int i)
{
	int			n;

	if (i < *space)
		return flags;
	n = Max(i + 1, 2 * *space);
	flags = flags == NULL ? palloc0(n * sizeof(bool)) : repalloc(flags, n * sizeof(bool));
	memset(flags + *space, 0, (n - *space) * sizeof(bool));
	*space = n;
	return flags;
}

/* Notes the value group of an active condition, if it is the first of it. */
static void
add_group(EvalBatch *b, RuleCondition *cond)
{
	int			g = cond->value_group - 1;

	b->has_group = flags_cover(b->has_group, &b->has_group_space, g);
	if (b->has_group[g])
		return;
	b->has_group[g] = true;
	if (b->ngroups == b->groups_space)
	{
		b->groups_space = Max(16, 2 * b->groups_space);
		b->group_conds = b->group_conds == NULL ?
			palloc(b->groups_space * sizeof(RuleCondition *)) :
			repalloc(b->group_conds, b->groups_space * sizeof(RuleCondition *));
	}
	b->group_conds[b->ngroups++] = cond;
}

/* Activates the memo slots of a tree's conditions. */
static void
add_conditions(EvalBatch *b, const RuleNode *node, const char *salt)
{
	RuleCondition *cond = node->cond;
	int			m;

	for (int i = 0; i < node->nchildren; i++)
		add_conditions(b, node->children[i], salt);
	if (node->kind != RULE_CONDITION || cond->type == COND_SEGMENT)
		return;
	if (cond->memo_slot <= 0)
		elog(ERROR, "condition not linked into the pass's program");
	m = cond->memo_slot - 1;
	b->is_active = flags_cover(b->is_active, &b->is_active_space, m);
	b->nslots = Max(b->nslots, m + 1);
	if (b->is_active[m])
		return;
	b->is_active[m] = true;
	if (b->nactive == b->space)
	{
		b->space = Max(16, 2 * b->space);
		b->active = b->active == NULL ? palloc(b->space * sizeof(RuleCondition *)) :
			repalloc(b->active, b->space * sizeof(RuleCondition *));
		b->active_salt = b->active_salt == NULL ? palloc(b->space * sizeof(char *)) :
			repalloc(b->active_salt, b->space * sizeof(char *));
		b->active_slot = b->active_slot == NULL ? palloc(b->space * sizeof(int)) :
			repalloc(b->active_slot, b->space * sizeof(int));
		b->active_group = b->active_group == NULL ? palloc(b->space * sizeof(int)) :
			repalloc(b->active_group, b->space * sizeof(int));
		b->active_bit = b->active_bit == NULL ? palloc(b->space * sizeof(int)) :
			repalloc(b->active_bit, b->space * sizeof(int));
	}
	/* equal memo keys: equal results, the default salt included */
	b->active[b->nactive] = cond;
	b->active_salt[b->nactive] = salt;
	b->active_slot[b->nactive] = m;
	b->active_group[b->nactive] = cond->value_group;
	b->active_bit[b->nactive] = cond->value_bit;
	b->nactive++;
	if (cond->value_group > 0)
		add_group(b, cond);
}

/*
 * Adds a segment evaluated by the batch (its tree, and its id as the
 * default percentage salt); call for all before the first contact.
 */
void
EvalBatchAddSegment(EvalBatch *b, const RuleNode *rule, const char *default_salt)
{
	add_conditions(b, rule, default_salt);
	pfree(b->cond_bits);
	b->cond_bits = palloc0(sizeof(uint64) * WORDS * Max(b->nslots, 1));
}

/* Contacts in the batch so far. */
int
EvalBatchCount(const EvalBatch *b)
{
	return b->ncontacts;
}

/*
 * Evaluates every distinct condition for the next contact of the batch
 * (ctx: its row, set up by EvalProgramBeginContact; no trace).
 */
void
EvalBatchContact(EvalBatch *b, RuleEvalContext *ctx)
{
	int			k = b->ncontacts++;
	int			word = k >> 6;
	uint64		bit = UINT64CONST(1) << (k & 63);

	Assert(k < EVAL_BATCH_CONTACTS && ctx->trace == NULL);
	RuleValuePrefetch(b->group_conds, b->ngroups, ctx);
	for (int i = 0; i < b->nactive; i++)
	{
		int			known = b->active_group[i] > 0 ?
			RuleValueKnown(ctx, b->active_group[i], b->active_bit[i]) : -1;

		if (known < 0)
		{
			ctx->default_salt = b->active_salt[i];
			known = RuleEvalPositive(b->active[i], ctx);
		}
		if (known)
			b->cond_bits[b->active_slot[i] * WORDS + word] |= bit;
	}
}

/* The contacts of the batch for which a node is true, into out. */
static void
node_bits(EvalBatch *b, const RuleNode *node, uint64 *out)
{
	uint64		child[WORDS];

	switch (node->kind)
	{
		case RULE_AND:
			for (int w = 0; w < WORDS; w++)
				out[w] = ~UINT64CONST(0);
			for (int i = 0; i < node->nchildren; i++)
			{
				node_bits(b, node->children[i], child);
				for (int w = 0; w < WORDS; w++)
					out[w] &= child[w];
			}
			return;
		case RULE_OR:
			memset(out, 0, sizeof(uint64) * WORDS);
			for (int i = 0; i < node->nchildren; i++)
			{
				node_bits(b, node->children[i], child);
				for (int w = 0; w < WORDS; w++)
					out[w] |= child[w];
			}
			return;
		case RULE_NOT:
			node_bits(b, node->children[0], out);
			for (int w = 0; w < WORDS; w++)
				out[w] = ~out[w];
			return;
		case RULE_CONDITION:
			{
				const RuleCondition *cond = node->cond;

				if (cond->type == COND_SEGMENT)
				{
					/* in any of the segments named (evaluated before) */
					memset(out, 0, sizeof(uint64) * WORDS);
					for (int i = 0; i < cond->nsegments; i++)
						for (int w = 0; w < WORDS; w++)
							out[w] |= b->seg_bits[cond->segment_slots[i] * WORDS + w];
				}
				else
					memcpy(out, &b->cond_bits[(cond->memo_slot - 1) * WORDS],
						   sizeof(uint64) * WORDS);
				/* as eval_condition: the negative operator, then negate */
				if (cond->negated_op != cond->negate)
					for (int w = 0; w < WORDS; w++)
						out[w] = ~out[w];
				return;
			}
	}
	elog(ERROR, "unknown rule node kind %d", (int) node->kind);
}

/*
 * The segment at plan position pos, from its tree (NULL: in no contact's
 * membership this pass).  Bits past the batch's contacts mean nothing.
 */
void
EvalBatchSegment(EvalBatch *b, int pos, const RuleNode *rule)
{
	uint64	   *bits = &b->seg_bits[pos * WORDS];

	if (rule == NULL)
		memset(bits, 0, sizeof(uint64) * WORDS);
	else
		node_bits(b, rule, bits);
}

/* Takes contact k out of the segment at pos (another tenant's segment). */
void
EvalBatchExclude(EvalBatch *b, int pos, int k)
{
	b->seg_bits[pos * WORDS + (k >> 6)] &= ~(UINT64CONST(1) << (k & 63));
}

/* Words of a segment's bitmap that hold contacts of the batch. */
static inline int
batch_words(const EvalBatch *b)
{
	return (b->ncontacts + 63) / 64;
}

/* Word w of the segment at pos, without the bits past the last contact. */
static inline uint64
member_word(const EvalBatch *b, int pos, int w)
{
	uint64		word = b->seg_bits[pos * WORDS + w];
	int			valid = b->ncontacts - w * 64;

	return valid < 64 ? word & ((UINT64CONST(1) << valid) - 1) : word;
}

/*
 * Appends num to the list of each contact of the batch in the segment at
 * pos: lists[k * stride + counts[k]++].  Called for segments in number
 * order, it leaves every contact's list sorted.
 */
void
EvalBatchAppendMembers(const EvalBatch *b, int pos, int32 num, int32 *lists, int stride,
					   int *counts)
{
	for (int w = 0; w < batch_words(b); w++)
	{
		uint64		word = member_word(b, pos, w);

		while (word != 0)
		{
			int			k = w * 64 + pg_rightmost_one_pos64(word);

			lists[k * stride + counts[k]++] = num;
			word &= word - 1;
		}
	}
}

/* Contacts of the batch in the segment at pos. */
int
EvalBatchMembers(const EvalBatch *b, int pos)
{
	int			n = 0;

	for (int w = 0; w < batch_words(b); w++)
		n += pg_popcount64(member_word(b, pos, w));
	return n;
}

/* Empties the batch for the next contacts. */
void
EvalBatchReset(EvalBatch *b)
{
	memset(b->cond_bits, 0, sizeof(uint64) * WORDS * Max(b->nslots, 1));
	b->ncontacts = 0;
}

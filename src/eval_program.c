/*-------------------------------------------------------------------------
 *
 * eval_program.c
 *		The segments of a pass compiled together into one program: every
 *		field read once per contact, every distinct condition evaluated
 *		once per contact, whichever segments hold it.
 *
 * A pass links each condition of each segment it evaluates here
 * (eval_plan.c, EvalPlanLink).  Conditions reading the same field the same way
 * get one field slot (the value read, cached per contact); conditions with
 * the same canonical key get one memo slot (their result before "negate"
 * and the negative operators, which are applied per occurrence).  The key
 * holds everything evaluation reads from a condition: type, operator,
 * modifiers, field or path, operands by their binary image, regex,
 * interval, salt (the owning segment's id when none is given) and bounds.
 * Two conditions whose keys differ in any of them never share; equal
 * images are equal values, so sharing is exact (unequal images of equal
 * values only cost a second evaluation).
 *
 * Per contact, EvalProgramBeginContact() moves the generation on: slots
 * stamped with another generation are stale, so nothing is cleared.
 *
 *-------------------------------------------------------------------------
 */
#include "segments.h"

#include "common/hashfn.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

struct EvalProgram
{
	MemoryContext cxt;
	HTAB	   *fields;			/* key hash -> KeyEntry */
	HTAB	   *conditions;
	HTAB	   *groups;
	HTAB	   *salts;			/* of percentage conditions */
	int			nfields;
	int			nconditions;	/* distinct memoized conditions */
	int			nlinked;		/* memoized condition occurrences */
	int			ngroups;
	/* by memo slot - 1: value group and bit of the distinct condition */
	int		   *slot_group;
	int		   *slot_bit;
	int			slot_space;
	/* by value group - 1, as linked */
	int		   *group_bits;
	bool	   *group_costly;	/* holds a condition worth remembering alone */
	bool	   *group_byval;
	int16	   *group_typlen;
	int			group_space;
	/* by salt slot - 1 */
	const char **salt_text;
	int		   *salt_len;
	int			nsalts;
	int			salt_space;
	bool		changed;		/* linked since the per-contact state was made */
	/* per contact, by slot - 1 */
	RuleFieldSlot *field_slots;
	uint32	   *memo_generation;
	bool	   *memo_result;
	RuleValueGroup *value_groups;
	RuleSaltHashes salt_hashes;
	MemoryContext values_cxt;	/* their remembered values */
	uint32		generation;
};

/* Keys with one 64-bit hash: a chain of distinct keys, each with its slot. */
typedef struct KeyChain
{
	struct KeyChain *next;
	int			len;
	int			slot;
	char		data[FLEXIBLE_ARRAY_MEMBER];
} KeyChain;

typedef struct KeyEntry
{
	uint64		hash;
	KeyChain   *chain;
} KeyEntry;

EvalProgram *
EvalProgramCreate(void)
{
	EvalProgram *prog = palloc0(sizeof(EvalProgram));
	HASHCTL		ctl;

	prog->cxt = CurrentMemoryContext;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(KeyEntry);
	ctl.hcxt = CurrentMemoryContext;
	prog->fields = hash_create("segments program fields", 64, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	prog->conditions = hash_create("segments program conditions", 256, &ctl,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	prog->groups = hash_create("segments program value groups", 64, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	prog->salts = hash_create("segments program salts", 16, &ctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	prog->changed = true;
	return prog;
}

/* The slot of a key in table (1-based), a new one (*count + 1) if unseen. */
static int
key_slot(EvalProgram *prog, HTAB *table, const StringInfo key, int *count, bool *isnew)
{
	uint64		hash = hash_bytes_extended((const unsigned char *) key->data, key->len, 0);
	bool		found;
	KeyEntry   *entry = hash_search(table, &hash, HASH_ENTER, &found);
	KeyChain   *link;

	if (!found)
		entry->chain = NULL;
	for (link = entry->chain; link != NULL; link = link->next)
	{
		if (link->len == key->len && memcmp(link->data, key->data, key->len) == 0)
		{
			*isnew = false;
			return link->slot;
		}
	}
	*isnew = true;
	link = MemoryContextAlloc(prog->cxt, offsetof(KeyChain, data) + key->len);
	link->len = key->len;
	memcpy(link->data, key->data, key->len);
	link->slot = ++(*count);
	link->next = entry->chain;
	entry->chain = link;
	return link->slot;
}

static void
key_int(StringInfo key, int64 v)
{
	appendBinaryStringInfo(key, (const char *) &v, sizeof(v));
}

static void
key_bytes(StringInfo key, const void *data, Size len)
{
	key_int(key, (int64) len);
	appendBinaryStringInfo(key, (const char *) data, len);
}

/* A datum's binary image (varlena: detoasted bytes; by value: the Datum). */
static void
key_datum(StringInfo key, Datum d, bool byval, int16 typlen)
{
	if (byval)
		key_int(key, (int64) d);
	else if (typlen == -1)
	{
		struct varlena *v = PG_DETOAST_DATUM_PACKED(d);

		key_bytes(key, VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v));
	}
	else
		key_bytes(key, DatumGetPointer(d), datumGetSize(d, false, typlen));
}

static void
key_scalar(StringInfo key, const RuleScalar *s, const RuleAttribute *attr)
{
	key_int(key, s->type);
	switch (s->type)
	{
		case RVT_TEXT:
			key_bytes(key, s->u.text.str, s->u.text.len);
			break;
		case RVT_NUMBER:
			key_datum(key, NumericGetDatum(s->u.number), false, -1);
			break;
		case RVT_BOOLEAN:
			key_int(key, s->u.boolean);
			break;
		case RVT_TIMESTAMP:
			key_int(key, s->u.timestamp);
			break;
		case RVT_SEMVER:
			key_int(key, s->u.semver->major);
			key_int(key, s->u.semver->minor);
			key_int(key, s->u.semver->patch);
			key_int(key, s->u.semver->npre);
			for (int i = 0; i < s->u.semver->npre; i++)
				key_bytes(key, s->u.semver->pre[i], strlen(s->u.semver->pre[i]));
			break;
		case RVT_INET:
			key_datum(key, InetPGetDatum(s->u.inet), false, -1);
			break;
		case RVT_NATIVE:
			/* a value of the column's type, or its elements' */
			if (attr->is_array)
				key_datum(key, s->u.native, attr->elmbyval, attr->elmlen);
			else
				key_datum(key, s->u.native, get_typbyval(attr->typid), attr->typlen);
			break;
	}
}

/*
 * The canonical key of a condition: what its result (before negation)
 * depends on.  false: not memoized (segment conditions read a result
 * already at hand).
 */
static bool
condition_key(const RuleCondition *cond, const char *default_salt, StringInfo key)
{
	if (cond->type == COND_SEGMENT)
		return false;
	key_int(key, cond->type);
	key_int(key, cond->op);
	key_int(key, cond->case_insensitive);
	key_int(key, cond->as_length);
	key_int(key, cond->read_as);
	key_int(key, cond->explicit_as);
	key_int(key, cond->strict);
	key_int(key, cond->strict_elements);
	key_int(key, cond->element_as);
	switch (cond->type)
	{
		case COND_ATTRIBUTE:
			key_int(key, cond->attr.attnum);
			break;
		case COND_TRAIT:
			key_int(key, cond->npath);
			for (int i = 0; i < cond->npath; i++)
				key_bytes(key, cond->path[i], strlen(cond->path[i]));
			break;
		case COND_PERCENTAGE:
			{
				const char *salt = cond->salt ? cond->salt : default_salt;

				key_bytes(key, salt, strlen(salt));
				key_int(key, cond->nvalues);
				for (int i = 0; i < cond->nvalues; i++)
					key_bytes(key, &cond->bounds[i], sizeof(double));
				return true;
			}
		case COND_SEGMENT:
			return false;
	}
	key_int(key, cond->nvalues);
	for (int i = 0; i < cond->nvalues; i++)
		key_scalar(key, &cond->values[i], &cond->attr);
	if (cond->regex != NULL)
		key_bytes(key, VARDATA_ANY(cond->regex), VARSIZE_ANY_EXHDR(cond->regex));
	else
		key_int(key, -1);
	if (cond->interval != NULL)
		key_bytes(key, cond->interval, sizeof(Interval));
	else
		key_int(key, -1);
	return true;
}

/*
 * The field key of a condition: conditions that read the same column as
 * the same type, the same array column, or the same trait path share one
 * slot.  false: the condition reads no cached field.
 */
static bool
field_key(const RuleCondition *cond, StringInfo key)
{
	if (cond->type == COND_TRAIT)
	{
		appendStringInfoChar(key, 't');
		for (int i = 0; i < cond->npath; i++)
			key_bytes(key, cond->path[i], strlen(cond->path[i]));
	}
	else if (cond->type != COND_ATTRIBUTE)
		return false;
	else if (cond->attr.is_array)
		appendStringInfo(key, "A%d", cond->attr.attnum);
	else if (!cond->as_length)
		appendStringInfo(key, "a%d:%d", cond->attr.attnum, (int) cond->read_as);
	else
		return false;
	return true;
}

/*
 * A condition that costs more than a lookup of its field's value: worth
 * remembering by value even alone in its group.
 */
static bool
condition_costly(const RuleCondition *cond)
{
	return cond->type == COND_TRAIT || cond->op == OP_REGEX || cond->op == OP_IN_CIDR ||
		cond->op == OP_MODULO || cond->case_insensitive || cond->as_length ||
		(cond->op == OP_IN && cond->nvalues > 4) ||
		(cond->attr.is_text && cond->read_as != RVT_TEXT);
}

/* Grows an array of n elements of size to hold at least `need`. */
static void *
grow(void *array, int *space, int need, Size size)
{
	int			n = Max(*space * 2, Max(need, 16));

	if (need <= *space)
		return array;
	array = array == NULL ? palloc0(n * size) : repalloc(array, n * size);
	if (*space < n)
		memset((char *) array + *space * size, 0, (n - *space) * size);
	*space = n;
	return array;
}

/* The value group of a new distinct condition, and its bit there. */
static void
link_group(EvalProgram *prog, const RuleCondition *cond, int slot)
{
	StringInfoData key;
	bool		isnew;
	int			g;
	int			space;

	initStringInfo(&key);
	if (cond->type == COND_TRAIT)
	{
		appendStringInfoChar(&key, 't');
		for (int i = 0; i < cond->npath; i++)
			key_bytes(&key, cond->path[i], strlen(cond->path[i]));
	}
	else
		appendStringInfo(&key, "a%d", cond->attr.attnum);
	g = key_slot(prog, prog->groups, &key, &prog->ngroups, &isnew);
	pfree(key.data);
	space = prog->group_space;
	prog->group_bits = grow(prog->group_bits, &space, g, sizeof(int));
	space = prog->group_space;
	prog->group_costly = grow(prog->group_costly, &space, g, sizeof(bool));
	space = prog->group_space;
	prog->group_byval = grow(prog->group_byval, &space, g, sizeof(bool));
	prog->group_typlen = grow(prog->group_typlen, &prog->group_space, g, sizeof(int16));
	if (isnew && cond->type == COND_ATTRIBUTE)
	{
		prog->group_byval[g - 1] = get_typbyval(cond->attr.typid);
		prog->group_typlen[g - 1] = cond->attr.typlen;
	}
	space = prog->slot_space;
	prog->slot_group = grow(prog->slot_group, &space, slot, sizeof(int));
	prog->slot_bit = grow(prog->slot_bit, &prog->slot_space, slot, sizeof(int));
	prog->slot_group[slot - 1] = g;
	prog->slot_bit[slot - 1] = prog->group_bits[g - 1]++;
	prog->group_costly[g - 1] |= condition_costly(cond);
}

/* The slot of a percentage condition's salt among the program's. */
static int
link_salt(EvalProgram *prog, const char *salt)
{
	StringInfoData key;
	bool		isnew;
	int			slot;
	int			space;

	initStringInfo(&key);
	appendStringInfoString(&key, salt);
	slot = key_slot(prog, prog->salts, &key, &prog->nsalts, &isnew);
	pfree(key.data);
	if (isnew)
	{
		space = prog->salt_space;
		prog->salt_text = grow(prog->salt_text, &space, slot, sizeof(char *));
		prog->salt_len = grow(prog->salt_len, &prog->salt_space, slot, sizeof(int));
		prog->salt_text[slot - 1] = pstrdup(salt);
		prog->salt_len[slot - 1] = strlen(salt);
	}
	return slot;
}

/*
 * Adds a condition of a segment (default_salt: the segment's id as text)
 * to the program: sets its field and memo slots.
 */
void
EvalProgramLink(EvalProgram *prog, RuleCondition *cond, const char *default_salt)
{
	StringInfoData key;
	MemoryContext old = MemoryContextSwitchTo(prog->cxt);
	bool		isnew;

	initStringInfo(&key);
	cond->field_slot = field_key(cond, &key) ?
		key_slot(prog, prog->fields, &key, &prog->nfields, &isnew) : 0;
	resetStringInfo(&key);
	cond->memo_slot = condition_key(cond, default_salt, &key) ?
		key_slot(prog, prog->conditions, &key, &prog->nconditions, &isnew) : 0;
	cond->value_group = 0;
	cond->salt_slot = cond->type == COND_PERCENTAGE ?
		link_salt(prog, cond->salt ? cond->salt : default_salt) : 0;
	if (cond->memo_slot > 0)
	{
		prog->nlinked++;
		/* attributes and traits depend on their field's value alone */
		if (isnew && cond->type != COND_PERCENTAGE)
			link_group(prog, cond, cond->memo_slot);
		if (cond->type != COND_PERCENTAGE)
		{
			cond->value_group = prog->slot_group[cond->memo_slot - 1];
			cond->value_bit = prog->slot_bit[cond->memo_slot - 1];
		}
	}
	prog->changed = true;
	pfree(key.data);
	MemoryContextSwitchTo(old);
}

/* Distinct conditions, and their occurrences, of the program. */
void
EvalProgramCounts(const EvalProgram *prog, int *distinct, int *linked)
{
	*distinct = prog->nconditions;
	*linked = prog->nlinked;
}

/*
 * Sets up ctx for the next contact: the field and memo slots of the
 * program, with a new generation.  Conditions linked since the last call
 * (a preview's) get slots too.
 */
void
EvalProgramBeginContact(EvalProgram *prog, RuleEvalContext *ctx)
{
	if (prog->changed || ++prog->generation == 0)
	{
		/* new (or, after 4 billion contacts, stale stamps that could match) */
		int			nf = Max(prog->nfields, 1);
		int			nc = Max(prog->nconditions, 1);

		prog->field_slots = MemoryContextAllocZero(prog->cxt, nf * sizeof(RuleFieldSlot));
		prog->memo_generation = MemoryContextAllocZero(prog->cxt, nc * sizeof(uint32));
		prog->memo_result = MemoryContextAllocZero(prog->cxt, nc * sizeof(bool));
		prog->value_groups = MemoryContextAllocZero(prog->cxt,
													Max(prog->ngroups, 1) * sizeof(RuleValueGroup));
		/* remembered values: one context, bounded per group (rule_eval.c) */
		if (prog->values_cxt != NULL)
			MemoryContextDelete(prog->values_cxt);
		prog->values_cxt = AllocSetContextCreate(prog->cxt, "segments remembered values",
												 ALLOCSET_DEFAULT_SIZES);
		for (int g = 0; g < prog->ngroups; g++)
		{
			RuleValueGroup *group = &prog->value_groups[g];

			group->nbits = prog->group_bits[g];
			group->enabled = group->nbits >= 2 || prog->group_costly[g];
			group->byval = prog->group_byval[g];
			group->typlen = prog->group_typlen[g];
			group->cxt = prog->values_cxt;
		}
		prog->salt_hashes.nsalts = prog->nsalts;
		prog->salt_hashes.salts = prog->salt_text;
		prog->salt_hashes.salt_lens = prog->salt_len;
		prog->salt_hashes.generation = 0;
		prog->salt_hashes.first32 = MemoryContextAlloc(prog->cxt,
													   Max(prog->nsalts, 1) * sizeof(uint32));
		prog->generation = 1;
		prog->changed = false;
	}
	ctx->field_slots = prog->field_slots;
	ctx->memo_generation = prog->memo_generation;
	ctx->memo_result = prog->memo_result;
	ctx->value_groups = prog->value_groups;
	ctx->salt_hashes = &prog->salt_hashes;
	ctx->generation = prog->generation;
}

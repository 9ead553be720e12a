/*-------------------------------------------------------------------------
 *
 * segments.h
 *		Shared types, limits and entry points of the segments extension.
 *
 * The rule engine is split in four files that share the types below:
 *   rule_parse.c  jsonb definition -> RuleNode tree, with every check of
 *                 docs/rules.md and the errors that name the JSON path;
 *   rule_value.c  reading values as a type (number, timestamp, semver...),
 *                 comparing them, percentage buckets;
 *   rule_eval.c   evaluating a RuleNode tree for one contact;
 *   rule_render.c the text segments.compile() shows for a tree;
 *   eval_program.c the rules of a pass linked into one program: fields
 *                 and distinct conditions shared by all its segments.
 * The catalog (catalog.c), the membership store (membership.c), the
 * evaluation passes (eval_pass.h) and the SQL-callable wrappers
 * (functions.c) sit on top of it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SEGMENTS_H
#define SEGMENTS_H

#include "postgres.h"

#include "access/attnum.h"
#include "access/tupdesc.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/inet.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

/*
 * Limits of docs/rules.md, so that no definition can cost more than
 * anyone can bound: the root is level 1; the size is that of the
 * definition's jsonb text; a regex is counted in characters.
 */
#define SEGMENTS_MAX_DEPTH	32
#define SEGMENTS_MAX_NODES	1000
#define SEGMENTS_MAX_DEFINITION_BYTES (256 * 1024)
#define SEGMENTS_MAX_LIST_VALUES	10000
#define SEGMENTS_MAX_REGEX_CHARS	1000

/* ----------------------------------------------------------------
 * Rule trees
 * ---------------------------------------------------------------- */

typedef enum RuleNodeKind
{
	RULE_AND,					/* "and" / "all": every child; empty: true */
	RULE_OR,					/* "or" / "any": some child; empty: false */
	RULE_NOT,					/* "not": one child, inverted;
								 * "none": [..] is parsed as NOT(OR(..)) */
	RULE_CONDITION
} RuleNodeKind;

typedef enum RuleCondType
{
	COND_ATTRIBUTE,
	COND_TRAIT,
	COND_SEGMENT,
	COND_PERCENTAGE
} RuleCondType;

/*
 * Operators.  Negative operators (neq, not_in, ...) are stored as their
 * positive twin with RuleCondition.negated_op set: they are exact negations,
 * true where the field is missing.
 */
typedef enum RuleOp
{
	OP_EQ,
	OP_GT,
	OP_GTE,
	OP_LT,
	OP_LTE,
	OP_BETWEEN,
	OP_IN,
	OP_CONTAINS,
	OP_STARTS_WITH,
	OP_ENDS_WITH,
	OP_REGEX,
	OP_IS_SET,
	OP_MODULO,
	OP_BEFORE,
	OP_AFTER,
	OP_WITHIN_LAST,
	OP_WITHIN_NEXT,
	OP_IN_CIDR
} RuleOp;

/*
 * The type a field is read as, and that a condition's values hold.
 * RVT_NATIVE is an attribute column compared in its own SQL type through
 * its default btree comparison (numbers, uuid, ... columns).
 */
typedef enum RuleValueType
{
	RVT_TEXT,
	RVT_NUMBER,
	RVT_BOOLEAN,
	RVT_TIMESTAMP,
	RVT_SEMVER,
	RVT_INET,
	RVT_NATIVE
} RuleValueType;

/* A parsed semantic version (semver.org 2.0.0); build metadata dropped. */
typedef struct SemVer
{
	int64		major;
	int64		minor;
	int64		patch;
	int			npre;			/* number of pre-release identifiers */
	char	  **pre;			/* pre-release identifiers, NUL-terminated */
} SemVer;

/* One typed value: a condition's operand, or a field read for a contact. */
typedef struct RuleScalar
{
	RuleValueType type;
	union
	{
		struct
		{
			const char *str;	/* not NUL-terminated */
			int			len;
		}			text;
		Numeric		number;
		bool		boolean;
		TimestampTz timestamp;
		SemVer	   *semver;
		inet	   *inet;
		Datum		native;
	}			u;
} RuleScalar;

/* Where an attribute condition reads from, resolved against the source. */
typedef struct RuleAttribute
{
	AttrNumber	attnum;			/* in the source table */
	Oid			typid;			/* column type (base type of a domain) */
	int32		typmod;
	int16		typlen;			/* of the column type: -1 varlena */
	bool		is_array;		/* column is an array: elements below */
	Oid			elemtype;		/* element type when is_array */
	int16		elmlen;
	bool		elmbyval;
	char		elmalign;
	bool		is_text;		/* text, varchar, bpchar, citext
								 * (or array of them) */
	bool		is_time;		/* timestamptz, timestamp, date: read as
								 * RVT_TIMESTAMP in UTC */
	FmgrInfo	cmp;			/* btree comparison of the column (element)
								 * type, used when read_as is RVT_NATIVE */
	Oid			collation;		/* collation passed to cmp: C */
} RuleAttribute;

typedef struct RuleCondition
{
	RuleCondType type;
	char	   *json_path;			/* JSON path of this condition, e.g.
								 * "$.or[0].and[2]" (for later errors) */
	RuleOp		op;				/* positive twin */
	bool		negated_op;		/* op was neq, not_in, not_contains,
								 * not_regex, not_within_last, is_not_set */
	bool		negate;			/* "negate": true */
	bool		case_insensitive;	/* "case_sensitive": false */
	bool		as_length;		/* "as": "length" */
	RuleValueType read_as;		/* type the field is read as and values hold
								 * (RVT_NUMBER when as_length) */
	bool		explicit_as;	/* "as" was given (not "length") */
	bool		strict;			/* trait without "as" under eq, in, ordering
								 * or between: a trait of another JSON type
								 * than read_as is missing (docs/rules.md) */
	bool		strict_elements;	/* trait contains without "as": array
									 * elements of another JSON type than
									 * element_as never equal the value */

	/* COND_ATTRIBUTE */
	char	   *field;			/* column name as written */
	RuleAttribute attr;

	/* COND_TRAIT: a top-level key is a path of one element */
	int			npath;
	char	  **path;

	/*
	 * Operands, already converted to read_as: eq/gt/...: 1; between: 2 (low,
	 * high); in: n (may be 0); contains/starts_with/ends_with: 1; regex: 1
	 * (RVT_TEXT, see regex below); modulo: 2 RVT_NUMBER (divisor,
	 * remainder); before/after: 1 RVT_TIMESTAMP; in_cidr: n >= 1 RVT_INET;
	 * is_set, within_*: 0.
	 */
	int			nvalues;
	RuleScalar *values;

	/* contains on an array field compares elements read as this type */
	RuleValueType element_as;

	text	   *regex;			/* OP_REGEX: the pattern, checked */
	Interval   *interval;		/* OP_WITHIN_LAST / OP_WITHIN_NEXT */

	/* COND_SEGMENT: referenced segments, in/not_in */
	int			nsegments;
	char	  **segment_refs;	/* as written (uuid text or name) */
	pg_uuid_t  *segment_ids;	/* resolved by RuleParseContext.resolve */
	int		   *segment_slots;	/* filled by the evaluator set-up:
								 * index into RuleEvalContext.segment_result */

	/* COND_PERCENTAGE: ops gt/gte/lt/lte/between on the bucket [0,100) */
	char	   *salt;			/* NULL: the owning segment's id */
	double	   *bounds;			/* nvalues bounds (1, or 2 for between) */

	/*
	 * Slot (1-based; 0: none) of the per-contact cache of the field this
	 * condition reads, shared by every condition reading the same field the
	 * same way (set by the evaluation pass, see RuleEvalContext).
	 */
	int			field_slot;

	/*
	 * Slot (1-based; 0: none) of the per-contact memo of this condition's
	 * result before negation, shared by every condition of the pass with
	 * the same canonical key (eval_program.c): the condition is evaluated
	 * once per contact however many segments hold it.
	 */
	int			memo_slot;

	/*
	 * Value group (1-based; 0: none) of the conditions of the pass reading
	 * this column or trait path, and this condition's bit in it: results
	 * remembered per distinct field value (RuleValueGroup).
	 */
	int			value_group;
	int			value_bit;

	/*
	 * COND_PERCENTAGE: slot (1-based; 0: none) of its salt among the pass's
	 * distinct salts, whose hashes a contact computes together
	 * (RuleSaltHashes).
	 */
	int			salt_slot;

	/* Evaluation caches (rule_eval.c), kept in cache_cxt (NULL: the
	 * condition's own context). */
	MemoryContext cache_cxt;
	char	  **lower_values;	/* case_sensitive false: lower() of values */
	int		   *lower_lens;
	bool		bounds_valid;	/* within_*: time bounds computed for */
	TimestampTz bounds_now;		/* this now() */
	TimestampTz time_low;		/* field >= time_low */
	TimestampTz time_high;		/* field <= time_high */
	int8		mod_int;		/* modulo: 0 unknown, 1 integral operands
								 * below, -1 not */
	int64		mod_divisor;
	int64		mod_remainder;
	int8		regex_plain;	/* regex: 0 unknown, 1 regex_literal, -1
								 * regex_compiled, -2 the engine's cache */
	struct RegexLiteral *regex_literal;
	struct RegexCompiled *regex_compiled;
} RuleCondition;

typedef struct RuleNode
{
	RuleNodeKind kind;
	int			nchildren;		/* AND/OR: any; NOT: 1; CONDITION: 0 */
	struct RuleNode **children;
	RuleCondition *cond;		/* RULE_CONDITION only */
} RuleNode;

/*
 * What the parser needs to know about the contact source.  source_desc is
 * NULL when segments.configure() has not been called: attribute and trait
 * conditions are then rejected.
 */
typedef struct RuleParseContext
{
	TupleDesc	source_desc;
	AttrNumber	traits_attnum;	/* 0: no traits column configured */

	/*
	 * Resolve a segment reference (uuid text or name) to an id.  Returns
	 * false when no such segment is visible; the parser then raises the
	 * error with the node's path.
	 */
	bool		(*resolve) (const char *ref, pg_uuid_t *id, void *arg);
	void	   *resolve_arg;
} RuleParseContext;

typedef struct RuleParseResult
{
	RuleNode   *root;			/* a bare condition is wrapped in AND */
	int			nnodes;			/* groups and conditions */
	bool		uses_time;		/* within_last/not_within_last/within_next */
	int			nrefs;			/* distinct referenced segments */
	pg_uuid_t  *refs;
} RuleParseResult;

/*
 * A field of the contact being evaluated, read once for all the conditions
 * that read it (a hundred segments often read ten fields).  Valid while
 * generation matches the context's.
 */
typedef struct RuleFieldSlot
{
	uint32		generation;
	bool		ok;				/* present and readable */
	RuleScalar	value;			/* attribute: the column read as read_as */
	JsonbValue	jv;				/* trait: the value found */
	Datum	   *elems;			/* array column: its elements */
	bool	   *elem_nulls;
	int			nelems;
	/* trait: the value found read as read_type (valid with read_generation) */
	uint32		read_generation;
	RuleValueType read_type;
	bool		read_ok;
	RuleScalar	read_value;
} RuleFieldSlot;

/*
 * The conditions of a pass reading one column or trait path depend on
 * nothing but its value (and the pass's now()): their results are
 * remembered per distinct short value, as two bitmaps (known, result) per
 * value.  Columns of few distinct values (plan, country, a date by day)
 * then cost one hash lookup per contact for all their conditions.
 * Bounded (VALUE_MEMO_* in rule_eval.c), and turned off for good when
 * values rarely repeat (an email per contact).
 */
typedef struct RuleValueEntry
{
	struct RuleValueEntry *next;	/* same hash bucket */
	uint32		hash;
	int			len;
	uint8	   *known;
	uint8	   *result;
	char		data[FLEXIBLE_ARRAY_MEMBER];
} RuleValueEntry;

/* Longest value remembered (a value image, rule_eval.c). */
#define RULE_VALUE_KEY_MAX	64

typedef struct RuleValueGroup
{
	int			nbits;			/* distinct conditions of the group */
	bool		enabled;		/* worth a lookup (eval_program.c) */
	bool		off;			/* values rarely repeat: not looked up */
	bool		byval;			/* attribute: the column type's */
	int16		typlen;
	uint32		generation;		/* contact of entry */
	RuleValueEntry *entry;		/* this contact's value; NULL: none */
	uint32		lookups;
	uint32		hits;
	int			nentries;
	RuleValueEntry **buckets;	/* nbuckets, or NULL */
	int			nbuckets;		/* a power of 2 */
	MemoryContext cxt;
	/* the contact's key, computed ahead by RuleValuePrefetch() */
	uint32		key_generation; /* contact of key_*; 0: none */
	uint32		key_hash;
	int			key_len;		/* -1: the value is not remembered */
	char		key[RULE_VALUE_KEY_MAX + 1];
} RuleValueGroup;

/*
 * Tracing an evaluation (segments.explain): what a condition read for the
 * contact, reported before the condition's result.
 */
typedef enum RuleTraceKind
{
	RULE_TRACE_VALUE,			/* the field read as the condition's type */
	RULE_TRACE_NULL,			/* the column is SQL NULL */
	RULE_TRACE_NO_TRAITS,		/* the traits column is SQL NULL */
	RULE_TRACE_ABSENT,			/* no trait at that key or path */
	RULE_TRACE_JSON_NULL,		/* the trait is JSON null */
	RULE_TRACE_OTHER_TYPE,		/* strict reading: another JSON type */
	RULE_TRACE_UNREADABLE,		/* cannot be read as the condition's type */
	RULE_TRACE_PRESENT,			/* is_set: present (nothing to read) */
	RULE_TRACE_ELEMENTS,		/* an array searched by contains */
	RULE_TRACE_LENGTH,			/* "as": "length" */
	RULE_TRACE_BUCKET,			/* a percentage bucket */
	RULE_TRACE_SEGMENT			/* a referenced segment's result */
} RuleTraceKind;

typedef struct RuleTraceRead
{
	RuleTraceKind kind;
	const RuleScalar *value;	/* VALUE */
	const JsonbValue *json;		/* trait: the value found, when found */
	double		number;			/* ELEMENTS, LENGTH: the count; BUCKET */
	int			index;			/* SEGMENT: which reference */
	bool		result;			/* SEGMENT: its result */
} RuleTraceRead;

typedef struct RuleTrace
{
	void		(*read) (void *arg, const RuleCondition *cond, const RuleTraceRead *read);
	void		(*node) (void *arg, const RuleNode *node, bool result);
	void	   *arg;
} RuleTrace;

/*
 * The percentage hashes of a pass (eval_program.c): its distinct salts,
 * and for the contact of `generation` the first 32 bits of
 * md5(salt || ':' || key) of each, computed together at the contact's
 * first percentage condition (md5_bucket.c hashes four at once).
 */
typedef struct RuleSaltHashes
{
	int			nsalts;
	const char **salts;			/* by RuleCondition.salt_slot - 1 */
	int		   *salt_lens;
	uint32		generation;		/* contact of first32; 0: none */
	uint32	   *first32;
} RuleSaltHashes;

/* Everything a rule needs to know about the contact being evaluated. */
typedef struct RuleEvalContext
{
	TimestampTz now;			/* time of the evaluation pass */
	Datum	   *values;			/* the source row, by attnum - 1 */
	bool	   *nulls;
	Jsonb	   *traits;			/* detoasted; NULL when absent or SQL NULL */
	const char *key_text;		/* the contact key's text form */
	int			key_len;
	const char *default_salt;	/* the owning segment's id as text */
	const bool *segment_result; /* results of segments evaluated before */
	RuleFieldSlot *field_slots; /* by RuleCondition.field_slot - 1; or NULL */
	uint32		generation;		/* changes with every contact */
	uint32	   *memo_generation;	/* by RuleCondition.memo_slot - 1: the
									 * result is this contact's when equal to
									 * generation; or NULL */
	bool	   *memo_result;
	RuleValueGroup *value_groups;	/* by RuleCondition.value_group - 1 */
	RuleSaltHashes *salt_hashes;	/* or NULL */

	/*
	 * NULL in the passes.  Set (explain): every node is evaluated, groups
	 * without short cuts, and reported with what it read.
	 */
	RuleTrace  *trace;
} RuleEvalContext;

/* rule_parse.c */
extern RuleParseResult *RuleParse(Jsonb *definition, const RuleParseContext *pctx);
extern bool RuleErrorIsInput(int sqlerrcode);

/* rule_render.c */
extern char *RuleRender(const RuleNode *root);
extern void RuleRenderScalar(StringInfo buf, const RuleScalar *s, const RuleAttribute *attr);
extern const char *RuleTypeName(RuleValueType type);

/* regex_literal.c: regex patterns that are sets of literal strings */
typedef struct RegexLiteral RegexLiteral;
extern RegexLiteral *RegexLiteralCompile(const char *pattern, int len);
extern bool RegexLiteralMatch(const RegexLiteral *lit, const char *text, int len);

/* regex_compiled.c: a condition's own compiled regular expression */
typedef struct RegexCompiled RegexCompiled;
extern RegexCompiled *RegexCompiledCreate(const text *pattern, int flags, Oid collation,
										  MemoryContext owner);
extern bool RegexCompiledMatch(RegexCompiled *compiled, const char *str, int len);

/* rule_eval.c */
extern bool RuleEvaluate(const RuleNode *node, RuleEvalContext *ctx);
extern RuleNode *RuleCompact(const RuleNode *root);
extern const RuleNode *RuleEntry(const RuleNode *root);
extern bool RuleEvalPositive(RuleCondition *cond, const RuleEvalContext *ctx);
extern void RuleValuePrefetch(RuleCondition *const *conds, int n, const RuleEvalContext *ctx);

/*
 * A condition's result remembered for the contact's value of its field
 * (value group, bit: RuleCondition.value_group, value_bit), once a
 * condition of the group looked the value up: 1 or 0, or -1 when not
 * known (evaluate the condition).  Reads no RuleCondition: the batch
 * evaluator's loop over a pass's conditions stays in a few cache lines.
 */
static inline int
RuleValueKnown(const RuleEvalContext *ctx, int value_group, int value_bit)
{
	const RuleValueGroup *group = &ctx->value_groups[value_group - 1];
	const RuleValueEntry *entry;
	uint8		mask = 1 << (value_bit & 7);

	if (group->generation != ctx->generation || (entry = group->entry) == NULL ||
		!(entry->known[value_bit >> 3] & mask))
		return -1;
	return (entry->result[value_bit >> 3] & mask) != 0;
}

/* eval_program.c: the segments of a pass compiled together */
typedef struct EvalProgram EvalProgram;
extern EvalProgram *EvalProgramCreate(void);
extern void EvalProgramLink(EvalProgram *prog, RuleCondition *cond, const char *default_salt);
extern void EvalProgramCounts(const EvalProgram *prog, int *distinct, int *linked);
extern void EvalProgramBeginContact(EvalProgram *prog, RuleEvalContext *ctx);

/* eval_batch.c: the program over a batch of contacts, a bit per contact */
#define EVAL_BATCH_CONTACTS 256
#define EVAL_BATCH_WORDS (EVAL_BATCH_CONTACTS / 64)
typedef struct EvalBatch EvalBatch;
extern EvalBatch *EvalBatchCreate(int nsegments);
extern void EvalBatchAddSegment(EvalBatch *b, const RuleNode *rule, const char *default_salt);
extern int	EvalBatchCount(const EvalBatch *b);
extern void EvalBatchContact(EvalBatch *b, RuleEvalContext *ctx);
extern void EvalBatchSegment(EvalBatch *b, int pos, const RuleNode *rule);
extern void EvalBatchExclude(EvalBatch *b, int pos, int k);
extern void EvalBatchAppendMembers(const EvalBatch *b, int pos, int32 num, int32 *lists,
								   int stride, int *counts);
extern int	EvalBatchMembers(const EvalBatch *b, int pos);
extern void EvalBatchReset(EvalBatch *b);

/* rule_value.c: conversions never raise errors on data */
extern bool RuleReadTimestampText(const char *str, int len, TimestampTz *result);
extern bool RuleReadNumberText(const char *str, int len, Numeric *result);
extern bool RuleReadSemVer(const char *str, int len, SemVer **result);
extern bool RuleReadInet(const char *str, int len, inet **result);
extern bool RuleReadJsonb(const JsonbValue *jv, RuleValueType as, RuleScalar *result);
extern int	RuleCompareScalar(const RuleScalar *a, const RuleScalar *b, const RuleAttribute *attr);
extern int	SemVerCompare(const SemVer *a, const SemVer *b);
extern double RulePercentageBucket(const char *salt, int salt_len,
								   const char *key, int key_len);
extern double RulePercentageOf(uint32 first32);
extern TimestampTz RuleShiftTime(TimestampTz t, Interval *interval, int sign);

/*
 * InitMaterializedSRF() with the result descriptor the caller expects
 * when there is one: building it from the function's OUT parameters
 * leaves allocations in the per-query context at every call, which a
 * function called once per row of a rescanned subplan turns into
 * unbounded memory.
 */
#define SEGMENTS_INIT_SRF(fcinfo) \
	InitMaterializedSRF((fcinfo), \
						((ReturnSetInfo *) (fcinfo)->resultinfo) != NULL && \
						((ReturnSetInfo *) (fcinfo)->resultinfo)->expectedDesc != NULL ? \
						MAT_SRF_USE_EXPECTED_DESC : 0)

#endif							/* SEGMENTS_H */

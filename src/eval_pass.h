/*-------------------------------------------------------------------------
 *
 * eval_pass.h
 *		What the files of an evaluation pass share: the plan of a pass, the
 *		batches that carry contacts from evaluation to stored membership,
 *		and the steps every kind of pass is made of.
 *
 * A definition goes from create_segment() to stored membership in one
 * direction through these files:
 *
 *   definition.c       create_segment(): the definition checked and saved
 *   worker.c           which pass runs when (or refresh(): pass_full.c)
 *   eval_program.c     the rules of the pass's segments as one program
 *   eval_plan.c        the plan of a pass: its segments in dependency
 *                      order, the lock, the snapshot, its statements
 *   eval_batch.c       that program over a batch of contacts
 *   pass_scan.c        a scanning pass's step: contacts into evaluation
 *                      batches, their results into membership batches
 *   member_diff.c      a membership batch against the stored rows: only
 *                      the difference is written
 *   pass_finish.c      departed contacts, counts and states, failing closed
 *   pass_full.c        refresh(): one scan of the source
 *   pass_parallel.c    that scan shared with helper processes
 *   pass_chunked.c     the worker's pass over pending segments, a key range
 *                      per transaction
 *   pass_chunk_helper.c  each of its chunks read and evaluated by one
 *                      helper process while the worker writes
 *   pass_helper.c      what every helper process shares
 *   pass_incremental.c the contacts named by captured changes
 *
 * verify.c, explain.c and preview.c use the same plan without writing.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SEGMENTS_EVAL_PASS_H
#define SEGMENTS_EVAL_PASS_H

#include "catalog.h"
#include "member_bulk.h"

#include "executor/spi.h"
#include "executor/tuptable.h"
#include "utils/snapshot.h"

/* Contacts per batch of reads and writes of segments.member. */
#define EVAL_BATCH_SIZE 4096

/* Keys verify() shows per segment and kind of difference. */
#define VERIFY_SAMPLES 5

/* One segment prepared for a pass. */
typedef struct EvalSegment
{
	const CatalogSegment *seg;
	RuleNode   *rule;			/* NULL: could not be compiled */
	const RuleNode *entry;		/* where the passes start: RuleEntry(rule) */
	char	   *error;			/* why not, for segment_state.last_error */
	char	   *id_text;		/* default percentage salt */
	bool		writable;		/* this pass rewrites its membership */
	bool		targeted;		/* would be rewritten if it compiled */
	bool		needed;			/* writable, or read by a needed segment */
	int64		count;			/* members seen (full pass) */
	int64		delta;			/* change of member count */
	int			visit;			/* topological sort: 0 new, 1 open, 2 done */
	/* verify(): differences between stored and evaluated membership */
	bool		reported;
	int64		missing;		/* evaluated member, not stored */
	int64		extra;			/* stored, not an evaluated member */
	int			nmissing_sample;
	int			nextra_sample;
	char	   *missing_sample[VERIFY_SAMPLES];
	char	   *extra_sample[VERIFY_SAMPLES];
} EvalSegment;

/* Everything a pass needs, in evaluation (dependency) order. */
typedef struct EvalPlan
{
	SegmentCatalog *cat;
	Relation	source;
	int			nsegments;
	EvalSegment *segments;		/* in dependency order */
	bool	   *results;		/* per contact, by position in segments */
	EvalSegment **by_num;		/* segment number -> segment, or NULL */
	int32		max_num;
	bool		need_traits;
	bool		need_key_text;	/* percentage conditions hash the key's text */
	EvalProgram *program;		/* fields and conditions of all segments */
	bool		need_tenant;
	TimestampTz now;
	int32		now_seconds;	/* since 2000-01-01, stored in "since" */
	bool		full_pass;		/* every contact is visited */
	bool		verify;			/* verify(): compare, write nothing */
	TenantView	contact_view;	/* whose contacts verify() compares and
								 * `changed` counts (default: everyone's) */
	Oid			member_type;	/* row type of segments.member */
	TupleDesc	member_desc;
	FmgrInfo	key_cmp;		/* btree order of the key type, collation C */
	FmgrInfo	key_out;		/* output function of the key type */
	int16		key_len;
	bool		key_byval;
	char		key_align;
	SPIPlanPtr	fetch_plan;
	SPIPlanPtr	insert_plan;
	SPIPlanPtr	update_plan;
	SPIPlanPtr	delete_plan;
	char	   *member_table;	/* what they name: segments.member, or on
								 * Citus this node's shard of it */
	Oid			bulk_relid;		/* inserts go there through member_bulk.c;
								 * InvalidOid: through insert_plan */
	MemberBulk *bulk;			/* what those inserts reuse */
	bool		member_empty;	/* a full pass into an empty table: no
								 * stored row to read, none departed */
	int64		stored_rows;	/* full pass, local table: rows stored
								 * before it (-1: not counted) */
	int64		stored_seen;	/* of them, read back for a visited contact */
	Snapshot	snapshot;		/* taken after the lock: every read and write */
	int64		changed;		/* contacts whose membership changed */
	RuleTrace  *trace;			/* explain: reports every node; else NULL */
} EvalPlan;

/* One contact of a batch: its key and the segments it is now in. */
typedef struct MemberBatchEntry
{
	Datum		key;
	int			nnums;
	int32	   *nums;
	char	   *tenant;			/* the contact's tenant as text, or NULL */
	bool		evaluated;		/* false: the contact is gone */
} MemberBatchEntry;

typedef struct MemberBatch
{
	MemoryContext cxt;
	int			n;
	int			size;			/* written when full: at most EVAL_BATCH_SIZE */
	MemberBatchEntry entries[EVAL_BATCH_SIZE];
} MemberBatch;

/* Where a batch's contacts go instead of a MemberBatch (pass_parallel.c). */
typedef void (*ContactBatchEmitFn) (void *arg, Datum key, int nnums, const int32 *nums,
									const char *tenant);

/*
 * The scanning passes evaluate contacts in batches (eval_batch.c): each
 * distinct condition per contact while its row is at hand, then the
 * segments' trees once per batch, then each contact's segments go to the
 * batch of writes (or, in a helper process, to emit).
 */
typedef struct ContactBatch
{
	EvalBatch  *bits;
	ContactBatchEmitFn emit;	/* NULL: MemberBatchAdd() */
	void	   *emit_arg;
	MemoryContext cxt;			/* keys and tenants of the batch */
	int		   *order;			/* plan positions in segment number order */
	bool		count;			/* members counted per segment (full pass) */
	Datum		keys[EVAL_BATCH_CONTACTS];
	char	   *tenants[EVAL_BATCH_CONTACTS];
} ContactBatch;

/*
 * Is the row in slot a contact?  A row whose key is NULL is not (a unique
 * index on a nullable key column lets any writer insert one): no function
 * can name it, capture does not queue it, and the scans skip it, as
 * reading its key would read a NULL pointer for a by-reference key type.
 */
static inline bool
EvalRowHasKey(EvalPlan *plan, TupleTableSlot *slot)
{
	return !slot_attisnull(slot, plan->cat->config.key_attnum);
}

/* May a segment (with a tenant or none) hold a contact of this tenant? */
static inline bool
EvalTenantAllows(EvalPlan *plan, EvalSegment *es, const char *tenant)
{
	return es->seg->tenant == NULL || plan->cat->config.tenant_attnum <= 0 ||
		(tenant != NULL && strcmp(tenant, es->seg->tenant) == 0);
}

/* The segment of a stored number; NULL when it was dropped. */
static inline EvalSegment *
EvalSegmentOfNum(EvalPlan *plan, int32 num)
{
	if (num < 0 || num > plan->max_num)
		return NULL;
	return plan->by_num[num];
}

/* eval_plan.c: preparing a pass */
extern EvalPlan *EvalPlanBuild(const pg_uuid_t *only, int nonly, bool full_pass, bool verify);
extern EvalPlan *EvalPlanBuildHelper(SegmentCatalog *cat, Relation source,
									 const pg_uuid_t *needed, int nneeded, TimestampTz now);
extern int	EvalPlanPosition(EvalPlan *plan, const pg_uuid_t *id);
extern void EvalPlanMarkNeeded(EvalPlan *plan, int last);
extern bool EvalPlanLink(EvalPlan *plan, RuleNode *node, int self, char **error);
extern int	EvalPlanExecute(EvalPlan *plan, SPIPlanPtr stmt, Datum *values, const char *nulls);
extern int	EvalPlanExecuteSql(EvalPlan *plan, const char *sql);
extern int	EvalPlanExecuteSqlText(EvalPlan *plan, const char *sql, const char *arg);
extern SPIPlanPtr EvalPrepareCached(const char *sql, int nargs, Oid *types, int options);
extern void EvalPlanRetarget(EvalPlan *plan, Oid shard);
extern void EvalPlanTargetMember(EvalPlan *plan, Oid shard);
extern void EvalPassEnd(EvalPlan *plan, MemoryContext old, MemoryContext pass_cxt);

/* eval_plan.c: one contact under a plan */
extern char *EvalContactContext(EvalPlan *plan, TupleTableSlot *slot, RuleEvalContext *ctx);
extern int	EvalPlanContact(EvalPlan *plan, TupleTableSlot *slot, int32 **nums,
							char **tenant_out);

/* pass_scan.c: the step of the scanning passes */
extern ContactBatch *ContactBatchCreate(EvalPlan *plan, bool count);
extern void ContactBatchEvaluate(EvalPlan *plan, ContactBatch *cb, MemberBatch *batch,
								 TupleTableSlot *slot, MemoryContext contact_cxt);
extern void ContactBatchFlush(EvalPlan *plan, ContactBatch *cb, MemberBatch *batch);

/* member_diff.c: writing the difference */
extern MemberBatch *MemberBatchCreate(void);
extern void MemberBatchAdd(EvalPlan *plan, MemberBatch *batch, Datum key, int nnums,
						   const int32 *nums, const char *tenant, bool evaluated);
extern void MemberBatchApply(EvalPlan *plan, MemberBatch *batch);
extern MemberBatchEntry *MemberBatchFind(EvalPlan *plan, MemberBatch *batch, Datum key);
extern void MemberBatchFlushWrites(EvalPlan *plan);
extern void MemberBatchReclaimSpace(EvalPlan *plan);

/* pass_parallel.c: a full pass's scan shared with a helper process */
extern void PassParallelInit(void);
extern bool PassParallelScan(EvalPlan *plan, ContactBatch *cb, MemberBatch *batch,
							 MemoryContext contact_cxt);

/* pass_finish.c: what a pass records when its contacts are written */
extern void PassDeleteDeparted(EvalPlan *plan, Relation source, const Datum *lo,
							   const Datum *hi, ArrayType *visited);
extern void PassRecordState(EvalPlan *plan, TimestampTz started);

/* verify.c: a batch compared instead of written */
extern void VerifyBatch(EvalPlan *plan, MemberBatch *batch, SPITupleTable *tuptable,
						uint64 nrows);

#endif							/* SEGMENTS_EVAL_PASS_H */

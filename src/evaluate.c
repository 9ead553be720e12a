/*-------------------------------------------------------------------------
 *
 * evaluate.c
 *		Evaluation passes: every segment for every contact of the source
 *		in one scan (refresh), for the next key range of contacts (a chunk
 *		of the worker's chunked pass, pass_chunked.c), or for a given set
 *		of contacts (the worker's incremental path), applying only the
 *		difference to segments.member.
 *
 * Both passes compute, per contact, the sorted numbers of the segments it
 * belongs to, collect them in batches, read the stored rows of the batch
 * with one query, and write the changed rows back with one INSERT, UPDATE
 * and DELETE per batch.  Memory is bounded by the batch size, not by the
 * number of contacts.  Everything happens in the caller's transaction, so
 * readers see the old membership until it commits.
 *
 *-------------------------------------------------------------------------
 */
#include "capture_ring.h"
#include "catalog.h"
#include "citus.h"
#include "history.h"
#include "key_fetch.h"
#include "member_bulk.h"
#include "member_codec.h"
#include "member_lock.h"
#include "member_space.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "optimizer/cost.h"
#include "storage/bufmgr.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/typcache.h"

#include <time.h>

PG_FUNCTION_INFO_V1(segments_refresh);
PG_FUNCTION_INFO_V1(segments_refresh_contacts);
PG_FUNCTION_INFO_V1(segments_verify);
PG_FUNCTION_INFO_V1(segments_citus_verify_local);

/* Contacts per batch of reads and writes of segments.member. */
#define EVAL_BATCH_SIZE 4096

/*
 * True while the incremental pass is evaluating its contacts: an error
 * then may be one contact's (the worker sets that entry aside); before,
 * it is the pass's own (configuration, source shape, lock) and concerns
 * every entry alike.
 */
bool		EvaluateInContacts = false;

/* Time this process spent waiting for the lock on segments.member. */
int64		EvaluateLockWaitUs = 0;

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
typedef struct BatchEntry
{
	Datum		key;
	int			nnums;
	int32	   *nums;
	char	   *tenant;			/* the contact's tenant as text, or NULL */
	bool		evaluated;		/* false: the contact is gone */
} BatchEntry;

typedef struct Batch
{
	MemoryContext cxt;
	int			n;
	int			size;			/* written when full: at most EVAL_BATCH_SIZE */
	BatchEntry	entries[EVAL_BATCH_SIZE];
} Batch;

/* ----------------------------------------------------------------
 * Preparing a pass
 * ---------------------------------------------------------------- */

/* Position of a segment id in plan order, or -1. */
static int
plan_position(EvalPlan *plan, const pg_uuid_t *id)
{
	for (int i = 0; i < plan->nsegments; i++)
	{
		if (memcmp(&plan->segments[i].seg->id, id, sizeof(pg_uuid_t)) == 0)
			return i;
	}
	return -1;
}

/*
 * Mark needed what the needed segments among the first last + 1 read: the
 * plan is in dependency order, so one backward sweep reaches everything.
 */
static void
plan_mark_needed(EvalPlan *plan, int last)
{
	for (int i = last; i >= 0; i--)
	{
		EvalSegment *es = &plan->segments[i];

		if (!es->needed || es->rule == NULL)
			continue;
		for (int d = 0; d < es->seg->ndepends; d++)
		{
			int			pos = plan_position(plan, &es->seg->depends_on[d]);

			if (pos >= 0)
				plan->segments[pos].needed = true;
		}
	}
}

/* Depth-first topological visit: dependencies before dependents. */
static void
plan_visit(EvalSegment *all, int n, int i, EvalSegment *out, int *nout,
		   const SegmentCatalog *cat)
{
	EvalSegment *es = &all[i];

	if (es->visit != 0)
		return;					/* done, or a cycle the catalog should not hold */
	es->visit = 1;
	for (int d = 0; d < es->seg->ndepends; d++)
	{
		for (int j = 0; j < n; j++)
		{
			if (memcmp(&all[j].seg->id, &es->seg->depends_on[d], sizeof(pg_uuid_t)) == 0)
				plan_visit(all, n, j, out, nout, cat);
		}
	}
	es->visit = 2;
	out[(*nout)++] = *es;
}

/* Points segment conditions at the positions of the segments they read. */
static bool
plan_link(EvalPlan *plan, RuleNode *node, int self, char **error)
{
	RuleCondition *cond = node->cond;

	for (int i = 0; i < node->nchildren; i++)
	{
		if (!plan_link(plan, node->children[i], self, error))
			return false;
	}
	if (node->kind != RULE_CONDITION)
		return true;
	if (cond->type == COND_TRAIT)
		plan->need_traits = true;
	if (cond->type == COND_PERCENTAGE)
		plan->need_key_text = true;
	/* one program for the pass: shared fields and conditions */
	EvalProgramLink(plan->program, cond, plan->segments[self].id_text);
	if (cond->type != COND_SEGMENT)
		return true;
	cond->segment_slots = palloc(cond->nsegments * sizeof(int));
	for (int i = 0; i < cond->nsegments; i++)
	{
		int			pos = plan_position(plan, &cond->segment_ids[i]);

		if (pos < 0 || pos >= self)
		{
			*error = psprintf("referenced segment \"%s\" no longer exists", cond->segment_refs[i]);
			return false;
		}
		if (plan->segments[pos].rule == NULL)
		{
			*error = psprintf("referenced segment \"%s\" failed to compile", cond->segment_refs[i]);
			return false;
		}
		cond->segment_slots[i] = pos;
	}
	return true;
}

/* Is target `only` among the segment and what it depends on? */
static bool
reaches(EvalPlan *plan, const CatalogSegment *seg, const pg_uuid_t *only, int depth)
{
	if (memcmp(&seg->id, only, sizeof(pg_uuid_t)) == 0)
		return true;
	if (depth > plan->nsegments)
		return false;
	for (int d = 0; d < seg->ndepends; d++)
	{
		const CatalogSegment *dep = CatalogFindById(plan->cat, &seg->depends_on[d]);

		if (dep != NULL && reaches(plan, dep, only, depth + 1))
			return true;
	}
	return false;
}

/*
 * The states of all segments, read through SPI: "ready" ones get true, and
 * "evaluating" ones (a chunked pass is rewriting them: pass_chunked.c; the
 * contacts it has visited already hold their new membership, so changes
 * of contacts must reach it too).
 */
static bool *
load_ready(EvalPlan *plan)
{
	bool	   *ready = palloc0(Max(plan->nsegments, 1) * sizeof(bool));

	if (SPI_execute("SELECT segment_id FROM segments.segment_state"
					" WHERE state OPERATOR(pg_catalog.=) ANY ('{ready,evaluating}'::pg_catalog.text[])",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read segments.segment_state");
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull);
		int			pos = plan_position(plan, DatumGetUUIDP(d));

		if (pos >= 0)
			ready[pos] = true;
	}
	return ready;
}

/*
 * Runs a statement of the pass with the pass's snapshot (its command id
 * advanced), not the transaction's: under REPEATABLE READ the latter may
 * predate rows the worker wrote since, and reading membership through it
 * would insert duplicates or fail to update rows changed meanwhile.
 */
static int
plan_execute(EvalPlan *plan, SPIPlanPtr stmt, Datum *values, const char *nulls)
{
	return SPI_execute_snapshot(stmt, values, nulls, plan->snapshot, InvalidSnapshot,
								plan->verify, true, 0);
}

/* The same, for a one-off statement without parameters. */
static int
plan_execute_sql(EvalPlan *plan, const char *sql)
{
	SPIPlanPtr	stmt = SPI_prepare(sql, 0, NULL);

	if (stmt == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	return plan_execute(plan, stmt, NULL, NULL);
}

/* The same, with one text parameter $1. */
static int
plan_execute_sql_text(EvalPlan *plan, const char *sql, const char *arg)
{
	Oid			type = TEXTOID;
	Datum		value = CStringGetTextDatum(arg);
	SPIPlanPtr	stmt = SPI_prepare(sql, 1, &type);

	if (stmt == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	return plan_execute(plan, stmt, &value, NULL);
}

/*
 * The statements of the passes, prepared once per backend and kept
 * (SPI_keepplan): a worker's pass runs them in every chunk, and a chunk of
 * 1,500 contacts spent a few per cent of its time parsing and planning
 * them again.  Keyed by their text, their parameters' types and the join
 * methods enabled when prepared (a chunk turns hash and merge joins off);
 * PostgreSQL's plan cache plans them again when what they read changes.
 * The least recently used goes when the cache is full; a pass uses about
 * a dozen at a time.
 */
#define STMT_CACHE_SIZE		32

typedef struct CachedStatement
{
	char	   *key;			/* in TopMemoryContext; NULL: free */
	SPIPlanPtr	stmt;
	uint64		used;
} CachedStatement;

static CachedStatement stmt_cache[STMT_CACHE_SIZE];
static uint64 stmt_clock = 0;

static SPIPlanPtr
prepare_cached(const char *sql, int nargs, Oid *types, int options)
{
	StringInfoData key;
	int			victim = 0;
	SPIPlanPtr	stmt;

	initStringInfo(&key);
	appendStringInfo(&key, "%c%c%d,", enable_hashjoin ? 'h' : '-', enable_mergejoin ? 'm' : '-',
					 options);
	for (int i = 0; i < nargs; i++)
		appendStringInfo(&key, "%u,", types[i]);
	appendStringInfo(&key, ":%s", sql);
	for (int i = 0; i < STMT_CACHE_SIZE; i++)
	{
		if (stmt_cache[i].key != NULL && strcmp(stmt_cache[i].key, key.data) == 0)
		{
			stmt_cache[i].used = ++stmt_clock;
			pfree(key.data);
			return stmt_cache[i].stmt;
		}
		if (stmt_cache[i].used < stmt_cache[victim].used)
			victim = i;
	}
	stmt = SPI_prepare_cursor(sql, nargs, types, options);
	if (stmt == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(stmt) != 0)
		elog(ERROR, "could not keep the plan of \"%s\"", sql);
	if (stmt_cache[victim].key != NULL)
	{
		SPI_freeplan(stmt_cache[victim].stmt);
		pfree(stmt_cache[victim].key);
	}
	stmt_cache[victim].key = MemoryContextStrdup(TopMemoryContext, key.data);
	stmt_cache[victim].stmt = stmt;
	stmt_cache[victim].used = ++stmt_clock;
	pfree(key.data);
	return stmt;
}

/* Prepares the four statements that read and write plan->member_table. */
static void
plan_prepare_statements(EvalPlan *plan)
{
	Oid			key_array = get_array_type(plan->cat->config.key_type);
	Oid			member_array = get_array_type(plan->member_type);
	bool		tenants = plan->cat->config.member_tenant_attnum > 0;
	const char *table = plan->member_table;

	/*
	 * The row version's ctid, which member_bulk.c replaces; not through
	 * Citus (a distributed table's or a shard's rows go by key through SQL).
	 */
	const char *ctid = CitusIsDistributed(plan->cat->config.member_relid) ?
		"NULL::pg_catalog.tid" : "ctid";

	/* a 0.1.0 schema not yet upgraded stores no tenants */
	plan->fetch_plan = prepare_cached(psprintf(tenants ?
											"SELECT contact_id, data, tenant, %s FROM %s"
											" WHERE contact_id OPERATOR(pg_catalog.=) ANY ($1)" :
											"SELECT contact_id, data, NULL::pg_catalog.text, %s FROM %s"
											" WHERE contact_id OPERATOR(pg_catalog.=) ANY ($1)",
											ctid, table),
								   1, &key_array, 0);
	plan->insert_plan = prepare_cached(psprintf("INSERT INTO %s"
											 " SELECT * FROM pg_catalog.unnest($1)", table),
									1, &member_array, 0);
	plan->update_plan = prepare_cached(psprintf(tenants ?
											 "UPDATE %s m SET data = u.data, tenant = u.tenant"
											 " FROM pg_catalog.unnest($1) u"
											 " WHERE m.contact_id OPERATOR(pg_catalog.=) u.contact_id" :
											 "UPDATE %s m SET data = u.data"
											 " FROM pg_catalog.unnest($1) u"
											 " WHERE m.contact_id OPERATOR(pg_catalog.=) u.contact_id",
											 table),
									1, &member_array, 0);
	plan->delete_plan = prepare_cached(psprintf("DELETE FROM %s"
											 " WHERE contact_id OPERATOR(pg_catalog.=) ANY ($1)",
											 table),
									1, &key_array, 0);
	if (!plan->fetch_plan || !plan->insert_plan || !plan->update_plan || !plan->delete_plan)
		elog(ERROR, "could not prepare membership statements: %s",
			 SPI_result_code_string(SPI_result));
}

/*
 * Citus: the statements write this membership shard (placed on this node,
 * colocated with the source shard being scanned) directly, instead of
 * segments.member through Citus's distributed planner; InvalidOid:
 * segments.member again.
 */
static void
plan_retarget(EvalPlan *plan, Oid shard)
{
	char	   *table = OidIsValid(shard) ?
		psprintf("%s.%s", quote_identifier(get_namespace_name(get_rel_namespace(shard))),
				 quote_identifier(get_rel_name(shard))) : "segments.member";

	if (strcmp(table, plan->member_table) == 0)
		return;
	plan->bulk_relid = InvalidOid;	/* Citus writes shards through SQL */
	plan->member_table = table;
	/* the statements of the other table stay in the cache */
	plan_prepare_statements(plan);
}

/* A pass's target: the shard, whose replaced row versions make room (member_space.c). */
static void
plan_target_member(EvalPlan *plan, Oid shard)
{
	Relation	rel;

	plan_retarget(plan, shard);
	rel = table_open(shard, RowExclusiveLock);
	MemberReclaimSpace(rel);
	table_close(rel, NoLock);
}

/*
 * Builds the plan of a pass.  `only` (nonly ids) limits the segments whose
 * membership is rewritten to them and those that reference them; incremental passes
 * rewrite only segments whose state is ready (others keep their stored
 * membership until their own evaluation completes).
 */
static EvalPlan *
plan_build(const pg_uuid_t *only, int nonly, bool full_pass, bool verify)
{
	EvalPlan   *plan = palloc0(sizeof(EvalPlan));
	SegmentsConfig *config;
	RuleParseContext pctx;
	EvalSegment *unordered;
	int			nordered = 0;
	bool	   *ready = NULL;
	TypeCacheEntry *tce;

	plan->cat = CatalogLoad(CurrentMemoryContext, true);
	plan->contact_view.scope = TENANT_SCOPE_ALL;
	config = &plan->cat->config;
	if (!config->configured)
		CatalogNotConfiguredError(config);

	/*
	 * Writers of segments.member take turns; readers are never blocked.
	 * verify() only reads, with the transaction's snapshot (it runs in
	 * read-only transactions and on a standby, where the lock is refused).
	 */
	if (!verify)
	{
		TimestampTz lock_start = GetCurrentTimestamp();

		MemberLockWriters(plan->cat->config.member_relid);	/* member_lock.c */
		EvaluateLockWaitUs += GetCurrentTimestamp() - lock_start;
	}
	/*
	 * The catalog may have changed while we waited: read it, the segment
	 * states, the source and membership with a snapshot taken after the
	 * lock, whatever the isolation level.
	 */
	plan->verify = verify;
	plan->snapshot = RegisterSnapshot(verify ? GetTransactionSnapshot() : GetLatestSnapshot());
	PushActiveSnapshot(plan->snapshot);
	plan->cat = CatalogLoad(CurrentMemoryContext, true);
	config = &plan->cat->config;

	if (!config->configured)
		CatalogNotConfiguredError(config);
	plan->source = table_open(config->source_relid, AccessShareLock);
	CatalogCheckSource(config, plan->source);
	plan->full_pass = full_pass;
	/* contact tenants are stored with membership, for readers to filter on */
	plan->need_tenant = config->tenant_attnum > 0;
	/* now() of the transaction, as the application's own queries see it */
	plan->now = GetCurrentTransactionStartTimestamp();
	plan->now_seconds = (int32) (plan->now / USECS_PER_SEC);
	if (!verify)
		SharedTimeEvaluated(plan->now);

	CatalogBuildParseContext(&pctx, plan->source, config);
	plan->program = EvalProgramCreate();
	plan->nsegments = plan->cat->nsegments;
	unordered = palloc0(Max(plan->nsegments, 1) * sizeof(EvalSegment));
	plan->segments = palloc0(Max(plan->nsegments, 1) * sizeof(EvalSegment));
	for (int i = 0; i < plan->nsegments; i++)
	{
		unordered[i].seg = &plan->cat->segments[i];
		unordered[i].id_text = DatumGetCString(DirectFunctionCall1(uuid_out,
																   UUIDPGetDatum(&plan->cat->segments[i].id)));
	}
	for (int i = 0; i < plan->nsegments; i++)
		plan_visit(unordered, plan->nsegments, i, plan->segments, &nordered, plan->cat);

	if (!full_pass)
		ready = load_ready(plan);
	PopActiveSnapshot();
	for (int i = 0; i < plan->nsegments; i++)
	{
		EvalSegment *es = &plan->segments[i];

		es->rule = CatalogParseSaved(es->seg, &pctx, &es->error);
		if (es->rule != NULL && !plan_link(plan, es->rule, i, &es->error))
			es->rule = NULL;
		if (es->rule != NULL)
		{
			es->rule = RuleCompact(es->rule);
			es->entry = RuleEntry(es->rule);
		}
		if (only != NULL)
		{
			es->writable = false;
			for (int k = 0; k < nonly && !es->writable; k++)
				es->writable = reaches(plan, es->seg, &only[k], 0);
		}
		else
			es->writable = true;
		if (ready != NULL && !ready[i])
			es->writable = false;
		es->targeted = es->writable;
		if (verify)
		{
			/* compared, whatever its state; evaluated when it compiles */
			es->reported = (only == NULL ||
							memcmp(&es->seg->id, &only[0], sizeof(pg_uuid_t)) == 0) &&
				CatalogTenantVisible(es->seg->tenant);
			es->writable = es->reported;
		}
		if (es->rule == NULL)
			es->writable = false;
		es->needed = es->writable;
	}
	plan_mark_needed(plan, plan->nsegments - 1);
	plan->results = palloc0(Max(plan->nsegments, 1) * sizeof(bool));
	for (int i = 0; i < plan->nsegments; i++)
		plan->max_num = Max(plan->max_num, plan->segments[i].seg->num);
	plan->by_num = palloc0((plan->max_num + 1) * sizeof(EvalSegment *));
	for (int i = 0; i < plan->nsegments; i++)
		plan->by_num[plan->segments[i].seg->num] = &plan->segments[i];

	plan->member_type = get_rel_type_id(config->member_relid);
	plan->member_desc = lookup_rowtype_tupdesc_copy(plan->member_type, -1);
	tce = lookup_type_cache(config->key_type, TYPECACHE_CMP_PROC_FINFO);
	fmgr_info_copy(&plan->key_cmp, &tce->cmp_proc_finfo, CurrentMemoryContext);
	get_typlenbyvalalign(config->key_type, &plan->key_len, &plan->key_byval, &plan->key_align);
	{
		Oid			outfunc;
		bool		isvarlena;

		getTypeOutputInfo(config->key_type, &outfunc, &isvarlena);
		fmgr_info_cxt(outfunc, &plan->key_out, CurrentMemoryContext);
	}
	plan->member_table = "segments.member";
	plan_prepare_statements(plan);
	plan->bulk_relid = InvalidOid;
	if (!verify && !CitusIsDistributed(config->member_relid))
	{
		Relation	member = table_open(config->member_relid, RowExclusiveLock);

		if (MemberBulkPossible(member))
		{
			plan->bulk_relid = config->member_relid;
			/* entries wait for plan_flush_writes() */
			plan->bulk = MemberBulkBegin(MemberBulkMayDefer(member));
		}
		table_close(member, NoLock);
	}
	return plan;
}

/* ----------------------------------------------------------------
 * Evaluating one contact
 * ---------------------------------------------------------------- */

/* Text form of column attnum of the slot, or NULL. */
static char *
slot_text(TupleTableSlot *slot, AttrNumber attnum)
{
	Oid			outfunc;
	bool		isvarlena;

	if (slot->tts_isnull[attnum - 1])
		return NULL;
	getTypeOutputInfo(TupleDescAttr(slot->tts_tupleDescriptor, attnum - 1)->atttypid,
					  &outfunc, &isvarlena);
	return OidOutputFunctionCall(outfunc, slot->tts_values[attnum - 1]);
}

/* qsort comparator of int32. */
static int
int32_compare(const void *a, const void *b)
{
	int32		x = *(const int32 *) a;
	int32		y = *(const int32 *) b;

	return (x > y) - (x < y);
}

/*
 * Is the row in slot a contact?  A row whose key is NULL is not (a unique
 * index on a nullable key column lets any writer insert one): no function
 * can name it, capture does not queue it, and the scans skip it, as
 * reading its key would read a NULL pointer for a by-reference key type.
 */
static inline bool
row_has_key(EvalPlan *plan, TupleTableSlot *slot)
{
	return !slot_attisnull(slot, plan->cat->config.key_attnum);
}

/*
 * The evaluation context of the contact in slot (all attributes deformed),
 * and its tenant's text form (NULL: none), in the current memory context.
 */
static char *
contact_context(EvalPlan *plan, TupleTableSlot *slot, RuleEvalContext *ctx)
{
	const SegmentsConfig *config = &plan->cat->config;

	memset(ctx, 0, sizeof(*ctx));
	ctx->now = plan->now;
	ctx->values = slot->tts_values;
	ctx->nulls = slot->tts_isnull;
	if (plan->need_key_text)
	{
		ctx->key_text = OutputFunctionCall(&plan->key_out,
										   slot->tts_values[config->key_attnum - 1]);
		ctx->key_len = strlen(ctx->key_text);
	}
	ctx->segment_result = plan->results;
	EvalProgramBeginContact(plan->program, ctx);
	ctx->trace = plan->trace;
	if (plan->need_traits && config->traits_attnum > 0 &&
		!slot->tts_isnull[config->traits_attnum - 1])
		ctx->traits = DatumGetJsonbP(slot->tts_values[config->traits_attnum - 1]);
	return plan->need_tenant ? slot_text(slot, config->tenant_attnum) : NULL;
}

/* May a segment (with a tenant or none) hold a contact of this tenant? */
static inline bool
tenant_allows(EvalPlan *plan, EvalSegment *es, const char *tenant)
{
	return es->seg->tenant == NULL || plan->cat->config.tenant_attnum <= 0 ||
		(tenant != NULL && strcmp(tenant, es->seg->tenant) == 0);
}

/*
 * Evaluates every compiled segment for the contact in slot (all
 * attributes deformed) and returns the numbers of those it is in, sorted,
 * and its tenant's text form (NULL: none), in the current memory context.
 */
static int
evaluate_contact(EvalPlan *plan, TupleTableSlot *slot, int32 **nums, char **tenant_out)
{
	RuleEvalContext ctx;
	char	   *tenant = contact_context(plan, slot, &ctx);
	int			n = 0;

	*nums = palloc(Max(plan->nsegments, 1) * sizeof(int32));
	for (int i = 0; i < plan->nsegments; i++)
	{
		EvalSegment *es = &plan->segments[i];
		bool		in = false;

		/* a tenant's segment only ever holds that tenant's contacts */
		if (es->rule != NULL && es->needed && tenant_allows(plan, es, tenant))
		{
			ctx.default_salt = es->id_text;
			in = RuleEvaluate(plan->trace ? es->rule : es->entry, &ctx);
		}
		plan->results[i] = in;
		if (in)
			(*nums)[n++] = es->seg->num;
	}
	/* plan order is dependency order, not number order */
	qsort(*nums, n, sizeof(int32), int32_compare);
	*tenant_out = tenant;
	return n;
}

/* ----------------------------------------------------------------
 * Applying a batch
 * ---------------------------------------------------------------- */

/* Btree comparison of two keys, for sorting and searching a batch. */
static int
key_compare(const void *a, const void *b, void *arg)
{
	EvalPlan   *plan = (EvalPlan *) arg;

	return DatumGetInt32(FunctionCall2Coll(&plan->key_cmp, C_COLLATION_OID,
										   ((const BatchEntry *) a)->key,
										   ((const BatchEntry *) b)->key));
}

/* The batch entry of a key (the batch is sorted), or NULL. */
static BatchEntry *
batch_find(EvalPlan *plan, Batch *batch, Datum key)
{
	BatchEntry	probe;

	probe.key = key;
	return bsearch_arg(&probe, batch->entries, batch->n, sizeof(BatchEntry),
					   key_compare, plan);
}

/* The segment of a stored number; NULL when it was dropped. */
static EvalSegment *
writable_segment(EvalPlan *plan, int32 num)
{
	if (num < 0 || num > plan->max_num)
		return NULL;
	return plan->by_num[num];
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
merge_row(EvalPlan *plan, BatchEntry *entry, int nold, const int32 *old_segs,
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
			EvalSegment *es = writable_segment(plan, old_segs[i]);

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
			EvalSegment *es = writable_segment(plan, num);

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
	int			rc = plan_execute(eplan, plan, &arg, NULL);

	if (rc != SPI_OK_INSERT && rc != SPI_OK_UPDATE && rc != SPI_OK_DELETE)
		elog(ERROR, "membership write failed: %s", SPI_result_code_string(rc));
}

/* Keeps a sample key of a difference (in the pass's context). */
static void
verify_sample(EvalPlan *plan, char **samples, int *nsamples, Datum key)
{
	if (*nsamples < VERIFY_SAMPLES)
		samples[(*nsamples)++] = MemoryContextStrdup(GetMemoryChunkContext(plan),
													  OutputFunctionCall(&plan->key_out, key));
}

/*
 * verify(): compares a batch's evaluated membership with the stored rows
 * (nrows of tuptable, in any order) of the reported segments.
 */
static void
verify_batch(EvalPlan *plan, Batch *batch, SPITupleTable *tuptable, uint64 nrows)
{
	bool	   *seen = palloc0(batch->n * sizeof(bool));

	for (uint64 r = 0; r < nrows + batch->n; r++)
	{
		BatchEntry *entry;
		int			nold = 0;
		int32	   *old_segs = NULL;
		int			i = 0,
					j = 0;

		if (r < nrows)
		{
			bool		isnull;
			Datum		key = SPI_getbinval(tuptable->vals[r], tuptable->tupdesc, 1, &isnull);
			Datum		data = SPI_getbinval(tuptable->vals[r], tuptable->tupdesc, 2, &isnull);

			entry = batch_find(plan, batch, key);
			if (entry == NULL)
				continue;
			plan->stored_seen++;
			seen[entry - batch->entries] = true;
			nold = MemberDecode(DatumGetByteaPP(data), &old_segs, NULL);
		}
		else
		{
			entry = &batch->entries[r - nrows];
			if (seen[r - nrows])
				continue;
		}
		/* a tenant's session compares its own contacts only (README: Security model) */
		if (!CatalogContactVisibleIn(&plan->contact_view, entry->tenant,
									 entry->tenant != NULL ? strlen(entry->tenant) : 0))
			continue;
		/* both lists are sorted: walk them together */
		while (i < nold || j < entry->nnums)
		{
			bool		stored = i < nold && (j >= entry->nnums || old_segs[i] <= entry->nums[j]);
			bool		evaluated = j < entry->nnums && (i >= nold || entry->nums[j] <= old_segs[i]);
			EvalSegment *es = writable_segment(plan, stored ? old_segs[i] : entry->nums[j]);

			if (es != NULL && es->reported && stored != evaluated)
			{
				if (stored)
				{
					es->extra++;
					verify_sample(plan, es->extra_sample, &es->nextra_sample, entry->key);
				}
				else
				{
					es->missing++;
					verify_sample(plan, es->missing_sample, &es->nmissing_sample, entry->key);
				}
			}
			i += stored;
			j += evaluated;
		}
	}
}

/* A stored row of segments.member, as batch_apply compares it. */
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

	if (plan_execute(plan, plan->fetch_plan, &arg, NULL) != SPI_OK_SELECT)
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
static void
batch_apply(EvalPlan *plan, Batch *batch)
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
	qsort_arg(batch->entries, batch->n, sizeof(BatchEntry), key_compare, plan);
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
		verify_batch(plan, batch, tuptable, SPI_processed);
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
		BatchEntry *entry;
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
			entry = batch_find(plan, batch, stored[r].key);
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
 * (strip_numbers(), the caller's next query) and before the commit.
 */
static void
plan_flush_writes(EvalPlan *plan)
{
	if (plan->bulk != NULL)
		MemberBulkFlush(plan->bulk);
}

/*
 * Before the first batch of a pass: the row versions earlier passes
 * replaced make room for this pass's (member_space.c).
 */
static void
batch_reclaim_space(EvalPlan *plan)
{
	Relation	member = table_open(plan->cat->config.member_relid, RowExclusiveLock);

	MemberReclaimSpace(member);
	table_close(member, NoLock);
}

/*
 * How many rows the membership table holds that the pass's snapshot sees
 * (before the pass writes any).  None: the pass writes into an empty
 * table.  The pass's lock keeps other writers out until it commits; were
 * one to write a row anyway, the pass's insertion of that contact would
 * fail on the primary key rather than store a second row.  A full pass
 * reads back the stored row of every contact it visits: when it read them
 * all, no contact departed, and the anti-join that looks for departed
 * contacts (delete_departed, a tenth of a nothing-changed pass) is not
 * run.  (The source's key has a unique index: no contact is visited twice.)
 */
static int64
member_count_rows(Oid relid, Snapshot snapshot)
{
	Relation	member = table_open(relid, AccessShareLock);
	TableScanDesc scan = table_beginscan(member, snapshot, 0, NULL);
	TupleTableSlot *slot = table_slot_create(member, NULL);
	int64		n = 0;

	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		if ((++n & 0xffff) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	table_close(member, NoLock);
	return n;
}

/* Adds a contact's result to the batch, applying the batch when full. */
static void
batch_add(EvalPlan *plan, Batch *batch, Datum key, int nnums, const int32 *nums,
		  const char *tenant, bool evaluated)
{
	MemoryContext old = MemoryContextSwitchTo(batch->cxt);
	BatchEntry *entry = &batch->entries[batch->n++];

	entry->tenant = tenant ? pstrdup(tenant) : NULL;
	entry->key = datumCopy(key, plan->key_byval, plan->key_len);
	entry->nnums = nnums;
	entry->nums = palloc(Max(nnums, 1) * sizeof(int32));
	memcpy(entry->nums, nums, nnums * sizeof(int32));
	entry->evaluated = evaluated;
	MemoryContextSwitchTo(old);
	if (batch->n >= batch->size)
		batch_apply(plan, batch);
}

static Batch *
batch_create(void)
{
	Batch	   *batch = palloc0(sizeof(Batch));

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

/* ----------------------------------------------------------------
 * Finishing a pass
 * ---------------------------------------------------------------- */

/*
 * Deletes stored rows of contacts that left the source; their memberships
 * of segments the pass did not rewrite are subtracted from those counts
 * (of every segment, for a chunk: counts follow changes there).  A chunk
 * passes the key range it visited, lo < key <= hi (NULL: unbounded), and
 * the keys it visited there (NULL: the source is probed for each row).
 */
static void
delete_departed(EvalPlan *plan, Relation source, const Datum *lo, const Datum *hi,
				ArrayType *visited)
{
	const SegmentsConfig *config = &plan->cat->config;
	StringInfoData sql;
	const char *keycol = get_attname(config->source_relid, config->key_attnum, false);
	Oid			types[3] = {config->key_type, config->key_type,
							get_array_type(config->key_type)};
	Datum		values[3] = {lo ? *lo : (Datum) 0, hi ? *hi : (Datum) 0,
							 PointerGetDatum(visited)};
	char		nulls[3] = {lo ? ' ' : 'n', hi ? ' ' : 'n', visited ? ' ' : 'n'};
	SPIPlanPtr	stmt;

	initStringInfo(&sql);
	/* counted per segment in SQL: memory does not grow with departures */
	appendStringInfo(&sql, "WITH gone AS (DELETE FROM %s m WHERE ", plan->member_table);
	/*
	 * A chunk knows the keys it visited in its range: the stored rows of
	 * other keys there departed.  Planned for each call, so that the keys
	 * are a constant the executor looks up in a hash table, rather than a
	 * probe of the source per stored row.
	 */
	if (visited != NULL)
		appendStringInfoString(&sql, "m.contact_id OPERATOR(pg_catalog.<>) ALL ($3)");
	else
		appendStringInfo(&sql,
						 "NOT EXISTS (SELECT 1 FROM %s.%s s WHERE s.%s OPERATOR(pg_catalog.=) m.contact_id)",
						 quote_identifier(get_namespace_name(RelationGetNamespace(source))),
						 quote_identifier(RelationGetRelationName(source)),
						 quote_identifier(keycol));
	appendStringInfo(&sql,
					 "%s%s"
					 " RETURNING m.data)"
					 " SELECT u.num, pg_catalog.count(*) FROM gone,"
					 "        LATERAL pg_catalog.unnest(segments._member_segs(gone.data)) u(num) GROUP BY u.num"
					 " UNION ALL SELECT NULL, pg_catalog.count(*) FROM gone",
					 lo ? " AND m.contact_id OPERATOR(pg_catalog.>) $1" : "",
					 hi ? " AND m.contact_id OPERATOR(pg_catalog.<=) $2" : "");
	stmt = prepare_cached(sql.data, 3, types,
						  visited != NULL ? CURSOR_OPT_CUSTOM_PLAN : 0);
	if (plan_execute(plan, stmt, values, nulls) != SPI_OK_SELECT)
		elog(ERROR, "could not delete departed contacts");
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		all_rows;
		bool		isnull;
		Datum		num = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &all_rows);
		int64		count = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r],
														SPI_tuptable->tupdesc, 2, &isnull));

		if (all_rows)
			plan->changed += count;
		else
		{
			EvalSegment *es = writable_segment(plan, DatumGetInt32(num));

			if (es != NULL && (!es->writable || !plan->full_pass))
				es->delta -= count;
		}
	}
}

/*
 * Fail closed: removes segments (by number) from every stored row, so that a
 * segment that cannot be evaluated grants no membership.  The caller holds
 * the lock on segments.member; snapshot is the pass's (or InvalidSnapshot:
 * a new one per statement).
 */
static void
strip_numbers(Snapshot snapshot, Datum nums)
{
	Oid			type = INT4ARRAYOID;
	SPIPlanPtr	del = SPI_prepare("DELETE FROM segments.member m"
								  " WHERE segments._member_segs(m.data) OPERATOR(pg_catalog.&&) $1"
								  "   AND segments._member_without(m.data, $1) IS NULL",
								  1, &type);
	SPIPlanPtr	upd = SPI_prepare("UPDATE segments.member m"
								  "   SET data = segments._member_without(m.data, $1)"
								  " WHERE segments._member_segs(m.data) OPERATOR(pg_catalog.&&) $1",
								  1, &type);
	char		cause;

	if (del == NULL || upd == NULL)
		elog(ERROR, "could not prepare the removal of failed segments");
	cause = HistorySetCause(HISTORY_CAUSE_FAILED);	/* history: these exits' cause */
	if (SPI_execute_snapshot(del, &nums, NULL, snapshot, InvalidSnapshot, false, true, 0) != SPI_OK_DELETE ||
		SPI_execute_snapshot(upd, &nums, NULL, snapshot, InvalidSnapshot, false, true, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not remove failed segments from membership");
	HistorySetCause(cause);
}

/*
 * A failed evaluation (the worker's): these segments grant no membership
 * until evaluated again.  In the caller's transaction and SPI connection.
 */
void
EvaluateFailClosed(Datum ids)
{
	Oid			type = UUIDARRAYOID;
	bool		isnull;

	if (ArrayGetNItems(ARR_NDIM(DatumGetArrayTypeP(ids)), ARR_DIMS(DatumGetArrayTypeP(ids))) == 0 ||
		!CatalogHasFailureHandling())
		return;
	MemberLockWriters(CatalogGet()->config.member_relid);
	if (SPI_execute_with_args("SELECT coalesce(pg_catalog.array_agg(num), '{}') FROM segments.segment"
							  " WHERE id OPERATOR(pg_catalog.=) ANY ($1)",
							  1, &type, &ids, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read segments.segment");
	strip_numbers(InvalidSnapshot, SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Records the outcome in segments.segment_state: ready with the new count
 * for rewritten segments of a full pass, failed with the error for those
 * that could not compile, and count changes otherwise.
 */
static void
record_state(EvalPlan *plan, TimestampTz started)
{
	Oid			types[5] = {UUIDOID, TEXTOID, INT8OID, TEXTOID, INTERVALOID};
	bool		retries = CatalogHasFailureHandling();
	bool		stats = StatsColumnsExist();
	StringInfoData sql;
	SPIPlanPtr	upd;
	SPIPlanPtr	fail;
	Interval   *duration = palloc0(sizeof(Interval));
	Datum	   *failed = palloc(Max(plan->nsegments, 1) * sizeof(Datum));
	int			nfailed = 0;
	Datum	   *delta_ids = palloc(Max(plan->nsegments, 1) * sizeof(Datum));
	Datum	   *deltas = palloc(Max(plan->nsegments, 1) * sizeof(Datum));
	int			ndeltas = 0;

	initStringInfo(&sql);
	appendStringInfoString(&sql,
						   "UPDATE segments.segment_state SET"
						   "  state = coalesce($2, state),"
						   "  member_count = CASE WHEN $2 OPERATOR(pg_catalog.=) 'ready' AND $5 IS NOT NULL"
						   "    THEN $3 ELSE member_count OPERATOR(pg_catalog.+) $3 END,"
						   "  evaluated_at = CASE WHEN $5 IS NOT NULL THEN pg_catalog.now() ELSE evaluated_at END,"
						   "  last_duration = coalesce($5, last_duration),"
						   "  last_error = $4");
	if (retries)
		appendStringInfoString(&sql,
							   ", attempts = CASE WHEN $2 OPERATOR(pg_catalog.=) 'ready' THEN 0 ELSE attempts END,"
							   "  retry_at = CASE WHEN $2 OPERATOR(pg_catalog.=) 'ready' THEN NULL ELSE retry_at END");
	if (stats)
		appendStringInfoString(&sql,
							   ", evaluations = evaluations OPERATOR(pg_catalog.+)"
							   "    CASE WHEN $5 IS NOT NULL THEN 1 ELSE 0 END,"
							   "  evaluation_time = evaluation_time OPERATOR(pg_catalog.+)"
							   "    coalesce(pg_catalog.date_part('epoch', $5) OPERATOR(pg_catalog.*) 1000, 0),"
							   /* a segment that stays failed with one error counts it once */
							   "  errors = errors OPERATOR(pg_catalog.+)"
							   "    CASE WHEN $4 IS NOT NULL AND last_error IS DISTINCT FROM $4 THEN 1 ELSE 0 END,"
							   "  last_error_at = CASE WHEN $4 IS NOT NULL AND last_error IS DISTINCT FROM $4"
							   "    THEN pg_catalog.now() ELSE last_error_at END,"
							   "  last_failure = coalesce($4, last_failure)");
	appendStringInfoString(&sql, " WHERE segment_id OPERATOR(pg_catalog.=) $1");
	upd = prepare_cached(sql.data, 5, types, 0);

	/* a segment that cannot be evaluated fails closed */
	resetStringInfo(&sql);
	appendStringInfoString(&sql,
						   "UPDATE segments.segment_state SET"
						   "  state = 'failed', member_count = 0, last_error = $2");
	if (retries)
		appendStringInfoString(&sql,
							   ", retry_at = pg_catalog.now() OPERATOR(pg_catalog.+)"
							   "             segments._retry_after(attempts, false),"
							   "  attempts = attempts OPERATOR(pg_catalog.+) 1");
	if (stats)
		appendStringInfoString(&sql,
							   ", errors = errors OPERATOR(pg_catalog.+)"
							   "    CASE WHEN last_error IS DISTINCT FROM $2 THEN 1 ELSE 0 END,"
							   "  last_error_at = CASE WHEN last_error IS DISTINCT FROM $2"
							   "    THEN pg_catalog.now() ELSE last_error_at END,"
							   "  last_failure = $2");
	appendStringInfoString(&sql, " WHERE segment_id OPERATOR(pg_catalog.=) $1");
	fail = prepare_cached(sql.data, 2, types, 0);
	if (upd == NULL || fail == NULL)
		elog(ERROR, "could not prepare state update");
	duration->time = GetCurrentTimestamp() - started;
	for (int i = 0; i < plan->nsegments; i++)
	{
		EvalSegment *es = &plan->segments[i];
		Datum		values[5];
		char		nulls[5] = {' ', ' ', ' ', 'n', 'n'};
		bool		complete = plan->full_pass && es->writable;

		values[0] = UUIDPGetDatum(&es->seg->id);
		if (es->rule == NULL)
		{
			/*
			 * A segment this pass should have rewritten (or, incrementally,
			 * a ready one) cannot be evaluated: it fails closed.
			 */
			if (!es->targeted)
				continue;
			values[1] = CStringGetTextDatum(es->error ? es->error : "could not compile");
			if (plan_execute(plan, fail, values, NULL) != SPI_OK_UPDATE)
				elog(ERROR, "could not update segments.segment_state");
			failed[nfailed++] = Int32GetDatum(es->seg->num);
			continue;
		}
		if (!complete && es->delta == 0)
			continue;
		if (!complete)
		{
			/* a change of count, of a segment that keeps its state: below */
			delta_ids[ndeltas] = values[0];
			deltas[ndeltas++] = Int64GetDatum(es->delta);
			continue;
		}
		values[1] = CStringGetTextDatum("ready");
		values[2] = Int64GetDatum(es->count);
		values[4] = IntervalPGetDatum(duration);
		nulls[4] = ' ';
		if (plan_execute(plan, upd, values, nulls) != SPI_OK_UPDATE)
			elog(ERROR, "could not update segments.segment_state");
	}

	/*
	 * The counts that changed, in one statement: every chunk of a pass (and
	 * every batch of changes) moves those of its segments, and a statement
	 * per segment cost a pass of 100 segments 5% of its time in chunks of
	 * 1,500 contacts.  What the statement above does for such a segment:
	 * the count moves, the error is cleared.
	 */
	if (ndeltas > 0)
	{
		Oid			delta_types[2] = {UUIDARRAYOID, INT8ARRAYOID};
		Datum		delta_values[2];
		SPIPlanPtr	moved = prepare_cached("UPDATE segments.segment_state st"
										"   SET member_count = st.member_count OPERATOR(pg_catalog.+) d.delta,"
										"       last_error = NULL"
										"  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS d(id, delta)"
										" WHERE st.segment_id OPERATOR(pg_catalog.=) d.id",
										2, delta_types, 0);

		if (moved == NULL)
			elog(ERROR, "could not prepare state update");
		delta_values[0] = PointerGetDatum(construct_array(delta_ids, ndeltas, UUIDOID,
														  UUID_LEN, false, TYPALIGN_CHAR));
		delta_values[1] = PointerGetDatum(construct_array(deltas, ndeltas, INT8OID,
														  sizeof(int64), FLOAT8PASSBYVAL,
														  TYPALIGN_DOUBLE));
		if (plan_execute(plan, moved, delta_values, NULL) != SPI_OK_UPDATE)
			elog(ERROR, "could not update segments.segment_state");
	}
	if (nfailed > 0 && retries)
		strip_numbers(plan->snapshot,
					  PointerGetDatum(construct_array(failed, nfailed, INT4OID, sizeof(int32),
													  true, TYPALIGN_INT)));
}

/*
 * A full pass over every segment reflects every change committed before
 * its snapshot: the queue entries it can see are done (without the worker,
 * that is how the whole-source entries of capture clear).  Entries a
 * worker is applying right now are left to it.
 */
static void
clear_covered_changes(EvalPlan *plan)
{
	for (int i = 0; i < plan->nsegments; i++)
	{
		if (!plan->segments[i].targeted)
			return;
	}
	if (plan_execute_sql(plan, "DELETE FROM segments.change_queue WHERE id OPERATOR(pg_catalog.=) ANY"
						 " (ARRAY(SELECT id FROM segments.change_queue FOR UPDATE SKIP LOCKED))")
		!= SPI_OK_DELETE)
		elog(ERROR, "could not clear segments.change_queue");
}

/* ----------------------------------------------------------------
 * The passes
 * ---------------------------------------------------------------- */

/*
 * The scanning passes evaluate contacts in batches (eval_batch.c): each
 * distinct condition per contact while its row is at hand, then the
 * segments' trees once per batch, then each contact's segments go to the
 * batch of writes.
 */
typedef struct ContactBatch
{
	EvalBatch  *bits;
	MemoryContext cxt;			/* keys and tenants of the batch */
	int		   *order;			/* plan positions in segment number order */
	bool		count;			/* members counted per segment (full pass) */
	Datum		keys[EVAL_BATCH_CONTACTS];
	char	   *tenants[EVAL_BATCH_CONTACTS];
} ContactBatch;

/* qsort_arg comparator: plan positions by their segments' numbers. */
static int
position_num_compare(const void *a, const void *b, void *arg)
{
	EvalPlan   *plan = (EvalPlan *) arg;

	return int32_compare(&plan->segments[*(const int *) a].seg->num,
						 &plan->segments[*(const int *) b].seg->num);
}

static ContactBatch *
contact_batch_create(EvalPlan *plan, bool count)
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
static void
contact_batch_flush(EvalPlan *plan, ContactBatch *cb, Batch *batch)
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
				if (!tenant_allows(plan, es, cb->tenants[k]))
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
		batch_add(plan, batch, cb->keys[k], counts[k], &lists[k * stride], cb->tenants[k], true);
	EvalBatchReset(cb->bits);
	MemoryContextSwitchTo(old);
	MemoryContextReset(cb->cxt);
}

/*
 * The step of every scanning pass: evaluates the conditions for the
 * contact in the slot (in contact_cxt, reset afterwards) into the batch,
 * evaluating the batch when it is full.
 */
static void
evaluate_into_batch(EvalPlan *plan, ContactBatch *cb, Batch *batch, TupleTableSlot *slot,
					MemoryContext contact_cxt)
{
	MemoryContext prev = MemoryContextSwitchTo(contact_cxt);
	int			k = EvalBatchCount(cb->bits);
	RuleEvalContext ctx;
	char	   *tenant;

	slot_getallattrs(slot);
	tenant = contact_context(plan, slot, &ctx);
	EvalBatchContact(cb->bits, &ctx);
	MemoryContextSwitchTo(cb->cxt);
	cb->keys[k] = datumCopy(slot->tts_values[plan->cat->config.key_attnum - 1],
							plan->key_byval, plan->key_len);
	cb->tenants[k] = tenant != NULL ? pstrdup(tenant) : NULL;
	MemoryContextSwitchTo(prev);
	MemoryContextReset(contact_cxt);
	if (k + 1 == EVAL_BATCH_CONTACTS)
		contact_batch_flush(plan, cb, batch);
}

/*
 * Full pass: one scan of the source evaluates every segment for every
 * contact; segments outside `only_segments` (when given: nonly ids, and
 * the segments that reference them) keep their membership.
 */
void
EvaluateRefresh(const pg_uuid_t *only_segments, int nonly)
{
	MemoryContext pass_cxt = AllocSetContextCreate(CurrentMemoryContext,
												   "segments refresh",
												   ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(pass_cxt);
	MemoryContext contact_cxt = AllocSetContextCreate(pass_cxt, "segments contact",
													  ALLOCSET_DEFAULT_SIZES);
	TimestampTz started = GetCurrentTimestamp();
	EvalPlan   *plan;
	Batch	   *batch;
	ContactBatch *cb;
	TableScanDesc scan;
	TupleTableSlot *slot;
	List	   *rels;
	List	   *members;
	ListCell   *lc;
	ListCell   *mc;

	/* Citus: the coordinator's pass is every node's (citus.c) */
	if (CitusPass(only_segments, nonly))
	{
		MemoryContextSwitchTo(old);
		MemoryContextDelete(pass_cxt);
		return;
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = plan_build(only_segments, nonly, true, false);
	batch = batch_create();
	cb = contact_batch_create(plan, true);

	/* see every contact committed by now, after taking the lock */
	rels = CitusScanRelations(plan->source, plan->cat->config.member_relid, plan->snapshot,
							  &members);
	forboth(lc, rels, mc, members)
	{
		/* Citus: a shard here, its membership in the colocated shard */
		plan->stored_rows = -1;
		if (OidIsValid(lfirst_oid(mc)))
			plan_target_member(plan, lfirst_oid(mc));
		else
		{
			batch_reclaim_space(plan);
			plan->stored_rows = member_count_rows(plan->cat->config.member_relid,
												  plan->snapshot);
			plan->stored_seen = 0;
			plan->member_empty = OidIsValid(plan->bulk_relid) && plan->stored_rows == 0;
		}
		scan = table_beginscan(lfirst(lc), plan->snapshot, 0, NULL);
		slot = table_slot_create(lfirst(lc), NULL);
		while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
		{
			CHECK_FOR_INTERRUPTS();
			if (row_has_key(plan, slot))
				evaluate_into_batch(plan, cb, batch, slot, contact_cxt);
		}
		ExecDropSingleTupleTableSlot(slot);
		table_endscan(scan);
		/* the shard's last contacts go to the shard's membership */
		contact_batch_flush(plan, cb, batch);
		batch_apply(plan, batch);
		plan_flush_writes(plan);
		/* every stored row read back: no contact departed */
		if (!plan->member_empty && plan->stored_seen != plan->stored_rows)
			delete_departed(plan, lfirst(lc), NULL, NULL, NULL);
	}
	CitusCloseScanRelations(rels, plan->source);
	record_state(plan, started);
	clear_covered_changes(plan);
	table_close(plan->source, NoLock);
	UnregisterSnapshot(plan->snapshot);

	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	MemoryContextSwitchTo(old);
	MemoryContextDelete(pass_cxt);
}

/*
 * Wall-clock bounds of a chunk of a pass (chunk_over()): changes committed
 * while it runs wait for its end.
 */
#define CHUNK_WALL_CHANGES_MS	150
#define CHUNK_WALL_MAX_MS		750
#define CHUNK_BATCH_SIZE		1024
#define CHUNK_GIN_PENDING_KB	1024

/*
 * Most keys a chunk keeps to find the departed contacts of its range
 * (delete_departed()); a larger chunk (segments.pass_chunk_size raised)
 * probes the source instead.
 */
#define CHUNK_KEYS_MAX			65536

/* The btree operator of the key index for "key > x" (follows its opclass). */
static RegProcedure
index_greater_proc(Relation index, Oid key_type)
{
	Oid			op = get_opfamily_member(index->rd_opfamily[0], key_type, key_type,
										 BTGreaterStrategyNumber);

	if (!OidIsValid(op))
		elog(ERROR, "index \"%s\" has no > operator for type %s",
			 RelationGetRelationName(index), format_type_be(key_type));
	return get_opcode(op);
}

/*
 * CPU time of this process, in microseconds: what a chunk of a pass is
 * sized by.  Wall-clock time counts the time the process waited for a
 * core, so on a loaded machine chunks sized by it held few contacts, and
 * what every chunk costs whatever its size weighed more (at 1,000,000
 * contacts and load 12: 1,500 contacts a chunk).
 */
int64
EvaluateCpuUs(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
		return GetCurrentTimestamp();	/* no CPU clock: wall clock */
	return (int64) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Whether a committed contact change waits for the worker (in its latch,
 * which committing writers set, or among the entries published in its
 * database's capture ring).  The latch alone missed changes: a lock wait
 * inside a chunk (extending segments.member, say) sleeps on the same latch
 * and resets it, and the change then waited for the chunk's full length
 * and the time window after it.
 */
bool
EvaluateChangesWaiting(void)
{
	TimestampTz oldest;

	if (MyLatch->is_set)
		return true;
	(void) CaptureRingPending(MyDatabaseId, &oldest);
	return oldest != 0;
}

/*
 * Whether a chunk of a pass has run long enough: budget_ms of CPU; or
 * 150 ms of wall clock once a writer has committed a change meanwhile
 * (EvaluateChangesWaiting(): the change waits for the chunk's end, and for
 * the rows it evaluated to be written); or 750 ms of wall clock in any case.
 */
static bool
chunk_over(TimestampTz started, int64 cpu_start, int budget_ms)
{
	TimestampTz now = GetCurrentTimestamp();

	if (EvaluateCpuUs() - cpu_start >= (int64) budget_ms * 1000)
		return true;
	if (TimestampDifferenceExceeds(started, now, CHUNK_WALL_MAX_MS))
		return true;
	return TimestampDifferenceExceeds(started, now, CHUNK_WALL_CHANGES_MS) && EvaluateChangesWaiting();
}

/*
 * Ends a chunk of EvaluateChunk(): the source, the snapshot, SPI and the
 * GUC nesting it opened, back in the caller's memory with the chunk's freed.
 */
static void
chunk_end(EvalPlan *plan, MemoryContext old, MemoryContext pass_cxt, int save_nestlevel)
{
	table_close(plan->source, NoLock);
	UnregisterSnapshot(plan->snapshot);
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	AtEOXact_GUC(true, save_nestlevel);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(pass_cxt);
}

/*
 * Citus: a chunk of a worker node's pass with no shard to scan
 * (CitusChunkShard()): the pass is done, or goes on with the shard that
 * was placed here after this chunk's snapshot, or from the same cursor in
 * the shard that was rewritten after it.  Ends the chunk as
 * EvaluateChunk() does.
 */
static int64
citus_chunk_skip(EvalPlan *plan, const CitusChunkTarget *shard, char **cursor, bool *done,
				 MemoryContext caller, MemoryContext old, MemoryContext pass_cxt,
				 int save_nestlevel)
{
	*done = shard->next_shardid == 0;
	if (!*done && !(shard->again && *cursor != NULL))
		*cursor = MemoryContextStrdup(caller, psprintf(INT64_FORMAT, shard->next_shardid));
	chunk_end(plan, old, pass_cxt, save_nestlevel);
	return 0;
}

/*
 * The room earlier passes left in segments.member (member_space.c) is
 * reclaimed during a chunked pass a range of pages at a time, before each
 * chunk's scan, rather than all of it before the first chunk: at 1,000,000
 * contacts that took 1.7 s of CPU (3.8 s of wall clock at load 9) in which
 * a committed change waited.  A chunk reclaims pages until half its wall
 * clock bound has passed, or half the time a chunk runs while a change
 * waits (a change waits no longer for it: the chunk ends 150 ms after it
 * began all the same), so the whole table is reclaimed over the first
 * chunks of the pass, ahead of most of its writes (of more of them under
 * a steady stream of changes).  The pages left are
 * [chunk_reclaim_next, chunk_reclaim_end) of this relation
 * (InvalidBlockNumber: up to the table's size when the first range is
 * reclaimed); none after a restart midway (a resumed pass does not
 * reclaim, as before).
 */
#define CHUNK_RECLAIM_PAGES		64
static Oid	chunk_reclaim_relid = InvalidOid;
static BlockNumber chunk_reclaim_next = 0;
static BlockNumber chunk_reclaim_end = 0;

static void
chunk_reclaim_space(EvalPlan *plan, TimestampTz started)
{
	Relation	member;

	if (chunk_reclaim_relid != plan->cat->config.member_relid ||
		(chunk_reclaim_end != InvalidBlockNumber && chunk_reclaim_next >= chunk_reclaim_end))
		return;
	member = table_open(chunk_reclaim_relid, RowExclusiveLock);
	if (chunk_reclaim_end == InvalidBlockNumber)
		chunk_reclaim_end = RelationGetNumberOfBlocks(member);
	while (chunk_reclaim_next < chunk_reclaim_end)
	{
		BlockNumber end = Min(chunk_reclaim_next + CHUNK_RECLAIM_PAGES, chunk_reclaim_end);

		MemberReclaimRange(member, chunk_reclaim_next, end);
		chunk_reclaim_next = end;
		if (TimestampDifferenceExceeds(started, GetCurrentTimestamp(), CHUNK_WALL_MAX_MS / 2) ||
			(TimestampDifferenceExceeds(started, GetCurrentTimestamp(), CHUNK_WALL_CHANGES_MS / 2) &&
			 EvaluateChangesWaiting()))
			break;
	}
	table_close(member, NoLock);
}

/*
 * One chunk of a chunked pass (pass_chunked.c), in the caller's
 * transaction: evaluates the segments `only` (and those that reference
 * them) for the next `limit` contacts in the order of the source's key
 * index after *cursor (the text form of the last key visited; NULL: from
 * the first), applies the difference, and deletes the stored rows of
 * departed contacts in the key range visited.  Only segments that are
 * ready or evaluating are rewritten; their member counts follow the
 * changes.  A chunk also ends after budget_ms of CPU (0: no limit), or
 * sooner by the wall clock when changes wait for it (chunk_over()), so that
 * changes waiting behind it wait little whatever a contact costs.  Sets
 * *cursor (in the caller's memory context) and *done (the source has no
 * contact after the chunk), and returns the number of contacts visited.
 */
int64
EvaluateChunk(const pg_uuid_t *only, int nonly, char **cursor, int64 limit, int budget_ms,
			  bool *done)
{
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext pass_cxt = AllocSetContextCreate(CurrentMemoryContext,
												   "segments chunk",
												   ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(pass_cxt);
	MemoryContext contact_cxt = AllocSetContextCreate(pass_cxt, "segments contact",
													  ALLOCSET_DEFAULT_SIZES);
	TimestampTz started = GetCurrentTimestamp();
	int64		cpu_start = EvaluateCpuUs();
	EvalPlan   *plan;
	const SegmentsConfig *config;
	Batch	   *batch;
	ContactBatch *cb;
	Relation	index;
	IndexScanDesc scan;
	ScanKeyData skey;
	TupleTableSlot *slot;
	Datum		lo = (Datum) 0;
	Datum		last = (Datum) 0;
	int64		visited = 0;
	bool		more = true;
	int			save_nestlevel;
	Relation	scanrel;
	Oid			scanindex;
	const char *from;
	CitusChunkTarget shard;
	bool		sharded;
	Datum	   *keys;			/* visited, for delete_departed() */
	int			nkeys = 0;
	int			keys_size = 1024;

	keys = palloc(keys_size * sizeof(Datum));
	/* Citus: the coordinator's pass is the worker nodes' (citus.c) */
	if (CitusPassStep(only, nonly, cursor, done, caller))
	{
		MemoryContextSwitchTo(old);
		MemoryContextDelete(pass_cxt);
		return 0;
	}
	save_nestlevel = NewGUCNestLevel();

	/*
	 * A chunk's batches are small next to membership: its writes probe
	 * segments.member by key.  A hash join would read all of it for each
	 * batch, which the planner may choose for a batch of a thousand rows.
	 */
	(void) set_config_option("enable_hashjoin", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("enable_mergejoin", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	/*
	 * The GIN index's pending list is merged into the index by the insert
	 * that finds it over gin_pending_list_limit: with the default 4MB, one
	 * batch of a first pass over 1,000,000 contacts took 0.8 s of CPU
	 * (3 s of wall clock at load 10) while a change waited.  A quarter of
	 * it bounds what one batch can take, at about the same total cost.
	 */
	(void) set_config_option("gin_pending_list_limit", CppAsString2(CHUNK_GIN_PENDING_KB),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = plan_build(only, nonly, false, false);
	config = &plan->cat->config;
	batch = batch_create();
	/*
	 * The rows a chunk evaluated are written when it ends, while changes
	 * may be waiting: written a quarter as many at a time, a chunk cut
	 * short for them writes less after the cut.
	 */
	batch->size = CHUNK_BATCH_SIZE;
	cb = contact_batch_create(plan, false);
	scanrel = plan->source;
	scanindex = config->source_key_index;
	from = *cursor;
	/* Citus: a worker node's pass visits its shards one after the other (citus.c) */
	sharded = CitusChunkShard(plan->source, config->source_key_index, config->member_relid,
							  plan->snapshot, *cursor, &shard);
	if (sharded && shard.rel == NULL)
		return citus_chunk_skip(plan, &shard, cursor, done, caller, old, pass_cxt,
								save_nestlevel);
	if (sharded)
	{
		scanrel = shard.rel;
		scanindex = shard.key_index;
		from = shard.key;
		if (from == NULL)
			plan_target_member(plan, shard.member_shard);	/* once a shard */
		else
			plan_retarget(plan, shard.member_shard);
	}
	else
	{
		if (*cursor == NULL)
		{
			/* a new pass: the whole table to reclaim, a range per chunk */
			chunk_reclaim_relid = plan->cat->config.member_relid;
			chunk_reclaim_next = 0;
			chunk_reclaim_end = InvalidBlockNumber;
		}
		chunk_reclaim_space(plan, started);
	}

	index = index_open(scanindex, AccessShareLock);
	if (TupleDescAttr(RelationGetDescr(index), 0)->atttypid != config->key_type)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("index \"%s\" is not on the configured key type %s",
						RelationGetRelationName(index), format_type_be(config->key_type)),
				 errhint("Call segments.configure() again.")));
	if (from != NULL)
	{
		Oid			typinput;
		Oid			typioparam;

		getTypeInputInfo(config->key_type, &typinput, &typioparam);
		lo = OidInputFunctionCall(typinput, (char *) from, typioparam, -1);
		ScanKeyEntryInitialize(&skey, 0, 1, BTGreaterStrategyNumber, InvalidOid,
							   index->rd_indcollation[0],
							   index_greater_proc(index, config->key_type), lo);
	}
	/* key order, from the cursor on: a resumed pass goes on where it was */
	scan = index_beginscan(scanrel, index, plan->snapshot, from != NULL ? 1 : 0, 0);
	index_rescan(scan, from != NULL ? &skey : NULL, from != NULL ? 1 : 0, NULL, 0);
	slot = table_slot_create(scanrel, NULL);
	while (visited < limit &&
		   (more = index_getnext_slot(scan, ForwardScanDirection, slot)))
	{
		CHECK_FOR_INTERRUPTS();
		/* NULL keys come last in the index: not contacts, not a cursor */
		if (!row_has_key(plan, slot))
			continue;
		evaluate_into_batch(plan, cb, batch, slot, contact_cxt);
		if (keys != NULL)
		{
			if (nkeys == keys_size && keys_size >= CHUNK_KEYS_MAX)
			{
				pfree(keys);	/* a very large chunk: the anti-join */
				keys = NULL;
			}
			else
			{
				if (nkeys == keys_size)
				{
					keys_size *= 2;
					keys = repalloc(keys, keys_size * sizeof(Datum));
				}
				keys[nkeys++] = datumCopy(slot->tts_values[config->key_attnum - 1],
										  plan->key_byval, plan->key_len);
			}
		}
		if (++visited == limit ||
			(budget_ms > 0 && visited % 256 == 0 && chunk_over(started, cpu_start, budget_ms)))
		{
			last = datumCopy(slot->tts_values[config->key_attnum - 1],
							 plan->key_byval, plan->key_len);
			break;
		}
	}
	contact_batch_flush(plan, cb, batch);
	batch_apply(plan, batch);
	plan_flush_writes(plan);
	ExecDropSingleTupleTableSlot(slot);
	index_endscan(scan);
	index_close(index, AccessShareLock);

	/* chunk ranges (lo, last] cover every key, whatever the member table's order */
	*done = !more;
	delete_departed(plan, scanrel, from != NULL ? &lo : NULL, *done ? NULL : &last,
					keys == NULL ? NULL :
					construct_array(keys, nkeys, config->key_type, plan->key_len,
									plan->key_byval, plan->key_align));
	record_state(plan, started);
	if (sharded)
	{
		/* Citus: the shard's next key, or the next shard here */
		table_close(scanrel, NoLock);
		if (more)
			*cursor = MemoryContextStrdup(caller,
										  psprintf(INT64_FORMAT ":%s", shard.shardid,
												   OutputFunctionCall(&plan->key_out, last)));
		else if (shard.next_shardid != 0)
			*cursor = MemoryContextStrdup(caller, psprintf(INT64_FORMAT, shard.next_shardid));
		*done = !more && shard.next_shardid == 0;
	}
	else if (!*done)
		*cursor = MemoryContextStrdup(caller, OutputFunctionCall(&plan->key_out, last));
	chunk_end(plan, old, pass_cxt, save_nestlevel);
	return visited;
}

/*
 * Adds one of EvaluateContacts' contacts to the batch: evaluated from the
 * row in slot, or gone when slot is NULL (no row).
 */
static void
contact_add(EvalPlan *plan, Batch *batch, Datum key, TupleTableSlot *slot,
			MemoryContext contact_cxt)
{
	MemoryContext prev = MemoryContextSwitchTo(contact_cxt);
	int32	   *nums = NULL;
	char	   *tenant = NULL;
	int			n = 0;

	if (slot != NULL)
	{
		slot_getallattrs(slot);
		n = evaluate_contact(plan, slot, &nums, &tenant);
	}
	MemoryContextSwitchTo(prev);
	batch_add(plan, batch, key, n, nums, tenant, slot != NULL);
	MemoryContextReset(contact_cxt);
}

/*
 * EvaluateContacts' contacts of one group (keyvals[group->keys[...]]) in
 * rel, read through its key index at once (key_fetch.c), into the batch.
 */
static void
contacts_fetch(EvalPlan *plan, Batch *batch, Relation rel, Oid indexid, const Datum *keyvals,
			   const CitusShardKeys *group, TupleTableSlot *slot, MemoryContext contact_cxt)
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
		contact_add(plan, batch, keys[pos], slot, contact_cxt);
	}
	KeyFetchEnd(kf);
	for (int i = 0; i < nkeys; i++)
		if (!found[i])
			contact_add(plan, batch, keys[i], NULL, contact_cxt);
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
	Batch	   *batch;
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
	plan = plan_build(only, nonly, false, false);
	if (view != NULL)
		plan->contact_view = *view;
	batch = batch_create();
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
		plan_retarget(plan, groups[g].member_shard);
		slot = table_slot_create(rel, NULL);
		if (!CitusIsDistributed(RelationGetRelid(rel)))
			contacts_fetch(plan, batch, rel, index, keyvals, &groups[g], slot, contact_cxt);
		else
		{
			/* Citus: a contact placed on another node, one at a time (citus.c) */
			for (int i = 0; i < groups[g].nkeys; i++)
			{
				Datum		key = keyvals[groups[g].keys[i]];
				MemoryContext prev;
				bool		found;

				CHECK_FOR_INTERRUPTS();
				/* what the probe allocates goes with the contact (contact_add resets it) */
				prev = MemoryContextSwitchTo(contact_cxt);
				found = MembershipProbe(rel, index, plan->cat->config.key_type, key, slot);
				MemoryContextSwitchTo(prev);
				contact_add(plan, batch, key, found ? slot : NULL, contact_cxt);
			}
		}
		batch_apply(plan, batch);
		ExecDropSingleTupleTableSlot(slot);
		if (rel != plan->source)
			table_close(rel, NoLock);
	}
	EvaluateInContacts = false;
	PopActiveSnapshot();

	plan_flush_writes(plan);
	record_state(plan, started);
	table_close(plan->source, NoLock);
	UnregisterSnapshot(plan->snapshot);
	changed = plan->changed;

	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	MemoryContextSwitchTo(old);
	MemoryContextDelete(pass_cxt);
	return changed;
}

/*
 * verify(): stored rows of contacts no longer in the source are extra
 * members of every reported segment they name; counted in SQL, with a few
 * sample keys per segment.  On Citus, per shard of the source here and its
 * membership shard (plan->member_table).
 */
static void
verify_departed(EvalPlan *plan, Relation source)
{
	const SegmentsConfig *config = &plan->cat->config;
	StringInfoData sql;
	const char *keycol = get_attname(config->source_relid, config->key_attnum, false);

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT u.num, pg_catalog.count(*),"
					 "       (pg_catalog.array_agg(m.contact_id::pg_catalog.text"
					 "                             ORDER BY m.contact_id))[1:%d]"
					 "  FROM %s m,"
					 "       LATERAL pg_catalog.unnest(segments._member_segs(m.data)) u(num)"
					 " WHERE NOT EXISTS (SELECT 1 FROM %s.%s s"
					 "                    WHERE s.%s OPERATOR(pg_catalog.=) m.contact_id)"
					 "%s"
					 " GROUP BY u.num",
					 VERIFY_SAMPLES, plan->member_table,
					 quote_identifier(get_namespace_name(RelationGetNamespace(source))),
					 quote_identifier(RelationGetRelationName(source)),
					 quote_identifier(keycol),
					 /* a tenant's session: its own departed contacts, by their stored tenant */
					 plan->contact_view.filter_contacts ?
					 "   AND m.tenant OPERATOR(pg_catalog.=) $1" : "");
	if ((plan->contact_view.filter_contacts ?
		 plan_execute_sql_text(plan, sql.data, plan->contact_view.tenant) :
		 plan_execute_sql(plan, sql.data)) != SPI_OK_SELECT)
		elog(ERROR, "could not read the membership of departed contacts");
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		bool		isnull;
		EvalSegment *es = writable_segment(plan, DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull)));
		ArrayType  *sample;
		Datum	   *keys;
		int			nkeys;

		if (es == NULL || !es->reported)
			continue;
		es->extra += DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
		sample = DatumGetArrayTypeP(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull));
		deconstruct_array(sample, TEXTOID, -1, false, TYPALIGN_INT, &keys, NULL, &nkeys);
		for (int k = 0; k < nkeys && es->nextra_sample < VERIFY_SAMPLES; k++)
			es->extra_sample[es->nextra_sample++] =
				MemoryContextStrdup(GetMemoryChunkContext(plan), TextDatumGetCString(keys[k]));
	}
}

/* A text[] of n strings. */
static Datum
text_array(char **strings, int n)
{
	Datum	   *elems = palloc(Max(n, 1) * sizeof(Datum));

	for (int i = 0; i < n; i++)
		elems[i] = CStringGetTextDatum(strings[i]);
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

static void verify_rows(ReturnSetInfo *rsinfo, pg_uuid_t *only, const TenantView *view,
						bool coordinator);

/*
 * segments.verify(segment uuid DEFAULT NULL)
 *   RETURNS TABLE (segment_id uuid, name text, state text, missing bigint,
 *                  extra bigint, missing_sample text[], extra_sample text[])
 *
 * Evaluates every visible segment (or one) for every contact, as refresh()
 * would, and compares with stored membership without writing anything:
 * missing are contacts the rules select that membership lacks, extra the
 * reverse.  A segment that cannot be evaluated (failed) should have no
 * stored members: its stored ones are extra.  One row per segment, in
 * name order.
 */
Datum
segments_verify(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	pg_uuid_t  *only = PG_ARGISNULL(0) ? NULL : PG_GETARG_UUID_P(0);
	TenantView	view = CatalogManageView();

	SEGMENTS_INIT_SRF(fcinfo);
	verify_rows(rsinfo, only, &view, true);
	PG_RETURN_VOID();
}

/*
 * segments._citus_verify_local(segment uuid, tenant text)
 *   RETURNS the rows of verify()
 *
 * verify() of the shards on this Citus worker node for the coordinator's
 * session, whose tenant (NULL: none) is passed here: the coordinator
 * reaches the workers as the extension's owner, who has no tenant of its
 * own, and a tenant's verify() compares that tenant's contacts only.
 */
Datum
segments_citus_verify_local(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	pg_uuid_t  *only = PG_ARGISNULL(0) ? NULL : PG_GETARG_UUID_P(0);
	TenantView	view = CatalogManageView();

	SEGMENTS_INIT_SRF(fcinfo);
	if (!PG_ARGISNULL(1))
		view = CatalogTenantViewFor(CatalogGet(), text_to_cstring(PG_GETARG_TEXT_PP(1)));
	verify_rows(rsinfo, only, &view, false);
	PG_RETURN_VOID();
}

/*
 * The rows of verify() into rsinfo: the segments view may see (or only
 * one), compared over the contacts it may see.  coordinator: a Citus
 * coordinator asks its workers (CitusVerify()).
 */
static void
verify_rows(ReturnSetInfo *rsinfo, pg_uuid_t *only, const TenantView *view, bool coordinator)
{
	MemoryContext pass_cxt;
	MemoryContext old;
	MemoryContext contact_cxt;
	EvalPlan   *plan;
	Batch	   *batch;
	TableScanDesc scan;
	TupleTableSlot *slot;
	Datum	   *states;
	bool	   *state_nulls;
	List	   *rels;
	List	   *members;
	ListCell   *lc;
	ListCell   *mc;

	if (only != NULL)
	{
		const CatalogSegment *seg = CatalogFindById(CatalogGet(), only);

		if (seg == NULL || !CatalogSegmentVisibleIn(view, seg->tenant))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("segment \"%s\" does not exist",
							DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(only))))));
	}
	/* Citus: the coordinator's verify() is every worker's (citus.c) */
	if (coordinator && CitusVerify(only, view, rsinfo))
		return;
	pass_cxt = AllocSetContextCreate(CurrentMemoryContext, "segments verify",
									 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(pass_cxt);
	contact_cxt = AllocSetContextCreate(pass_cxt, "segments contact", ALLOCSET_DEFAULT_SIZES);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = plan_build(only, only ? 1 : 0, true, true);
	plan->contact_view = *view;
	for (int i = 0; i < plan->nsegments; i++)
		plan->segments[i].reported &= CatalogSegmentVisibleIn(view, plan->segments[i].seg->tenant);
	batch = batch_create();

	/* Citus: each shard here, compared with its colocated membership shard */
	rels = CitusScanRelations(plan->source, plan->cat->config.member_relid, plan->snapshot,
							  &members);
	forboth(lc, rels, mc, members)
	{
		plan_retarget(plan, lfirst_oid(mc));
		scan = table_beginscan(lfirst(lc), plan->snapshot, 0, NULL);
		slot = table_slot_create(lfirst(lc), NULL);
		while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
		{
			/* contact by contact, walking the trees: a check of the batches */
			MemoryContext prev = MemoryContextSwitchTo(contact_cxt);
			int32	   *nums;
			char	   *tenant;
			int			n;

			CHECK_FOR_INTERRUPTS();
			if (!row_has_key(plan, slot))
			{
				MemoryContextSwitchTo(prev);
				continue;
			}
			slot_getallattrs(slot);
			n = evaluate_contact(plan, slot, &nums, &tenant);
			MemoryContextSwitchTo(prev);
			batch_add(plan, batch, slot->tts_values[plan->cat->config.key_attnum - 1],
					  n, nums, tenant, true);
			MemoryContextReset(contact_cxt);
		}
		batch_apply(plan, batch);
		ExecDropSingleTupleTableSlot(slot);
		table_endscan(scan);
		verify_departed(plan, lfirst(lc));
	}
	CitusCloseScanRelations(rels, plan->source);

	/* the state of each segment, as segments.status shows it */
	states = palloc0(Max(plan->nsegments, 1) * sizeof(Datum));
	state_nulls = palloc(Max(plan->nsegments, 1) * sizeof(bool));
	for (int i = 0; i < plan->nsegments; i++)
		state_nulls[i] = true;
	if (plan_execute_sql(plan, "SELECT segment_id, state FROM segments.segment_state") != SPI_OK_SELECT)
		elog(ERROR, "could not read segments.segment_state");
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int			pos = plan_position(plan, DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[r],
																		   SPI_tuptable->tupdesc, 1, &isnull)));

		if (pos >= 0)
		{
			states[pos] = CStringGetTextDatum(SPI_getvalue(SPI_tuptable->vals[r],
														   SPI_tuptable->tupdesc, 2));
			state_nulls[pos] = false;
		}
	}

	for (int i = 0; i < plan->nsegments; i++)
	{
		EvalSegment *es = &plan->segments[i];
		Datum		values[7];
		bool		nulls[7] = {0};

		if (!es->reported)
			continue;
		values[0] = UUIDPGetDatum(&es->seg->id);
		values[1] = CStringGetTextDatum(es->seg->name);
		values[2] = state_nulls[i] ? CStringGetTextDatum("pending") : states[i];
		values[3] = Int64GetDatum(es->missing);
		values[4] = Int64GetDatum(es->extra);
		values[5] = text_array(es->missing_sample, es->nmissing_sample);
		values[6] = text_array(es->extra_sample, es->nextra_sample);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	table_close(plan->source, NoLock);
	UnregisterSnapshot(plan->snapshot);
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	MemoryContextSwitchTo(old);
	MemoryContextDelete(pass_cxt);
}

/*
 * segments.refresh(segment uuid DEFAULT NULL) RETURNS void
 *
 * Synchronous full re-evaluation of the segments the session may see, or
 * of one of them and the segments that reference it.
 */
Datum
segments_refresh(PG_FUNCTION_ARGS)
{
	/* fails closed before anything else: no tenant and not an admin */
	TenantView	view = CatalogManageView();
	const SegmentCatalog *cat = CatalogGet();

	HistoryDefaultCause(HISTORY_CAUSE_REFRESH); /* history: unless configure() */

	/*
	 * Writers in flight may have missed a definition this refresh evaluates
	 * for the first time (writers.c): wait for them, before taking the lock
	 * so that the worker is not held up meanwhile.
	 */
	if (cat->config.configured)
	{
		WriterWait	ww;

		WritersBegin(&ww, CurrentMemoryContext, false);
		(void) WritersDone(&ww, cat->config.source_relid, true);
	}
	if (PG_ARGISNULL(0))
	{
		pg_uuid_t  *ids;
		int			nids = 0;

		if (view.scope == TENANT_SCOPE_ALL)
		{
			EvaluateRefresh(NULL, 0);
			PG_RETURN_VOID();
		}
		/* a tenant session: its own and the global segments, no others */
		ids = palloc(Max(cat->nsegments, 1) * sizeof(pg_uuid_t));
		for (int i = 0; i < cat->nsegments; i++)
		{
			if (CatalogSegmentVisibleIn(&view, cat->segments[i].tenant))
				ids[nids++] = cat->segments[i].id;
		}
		if (nids > 0)
			EvaluateRefresh(ids, nids);
	}
	else
	{
		pg_uuid_t  *id = PG_GETARG_UUID_P(0);
		const CatalogSegment *seg = CatalogFindById(cat, id);

		if (seg == NULL || !CatalogSegmentVisibleIn(&view, seg->tenant))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("segment \"%s\" does not exist",
							DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(id))))));
		EvaluateRefresh(id, 1);
	}
	PG_RETURN_VOID();
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

/* ----------------------------------------------------------------
 * Evaluating without writing: explain and preview
 * ---------------------------------------------------------------- */

/*
 * segments.explain() (explain.c): evaluates segment `target` and the
 * segments it reads for the contact with this key, with the code and the
 * plan of a pass (verify's: no lock, nothing written), every node reported
 * to trace.  report() then sees the outcome while the pass's memory lasts.
 * Returns false, without calling report(), when the source has no such
 * contact.
 */
bool
EvaluateExplain(const pg_uuid_t *target, Datum key, RuleTrace *trace,
				EvaluateReportFn report, void *arg)
{
	MemoryContext pass_cxt = AllocSetContextCreate(CurrentMemoryContext, "segments explain",
												   ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(pass_cxt);
	EvalPlan   *plan;
	TupleTableSlot *slot;
	bool		found;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = plan_build(target, 1, true, true);
	PushActiveSnapshot(plan->snapshot);
	slot = table_slot_create(plan->source, NULL);
	found = MembershipProbe(plan->source, plan->cat->config.source_key_index,
							plan->cat->config.key_type, key, slot);
	if (found)
	{
		EvaluateOutcome outcome;
		int32	   *nums;
		char	   *tenant;

		slot_getallattrs(slot);
		plan->trace = trace;
		(void) evaluate_contact(plan, slot, &nums, &tenant);
		plan->trace = NULL;
		outcome.config = &plan->cat->config;
		outcome.row = slot;
		outcome.tenant = tenant;
		outcome.now = plan->now;
		outcome.nsegments = plan->nsegments;
		outcome.segments = palloc0(Max(plan->nsegments, 1) * sizeof(EvaluateOutcomeSegment));
		for (int i = 0; i < plan->nsegments; i++)
		{
			outcome.segments[i].seg = plan->segments[i].seg;
			outcome.segments[i].rule = plan->segments[i].rule;
			outcome.segments[i].error = plan->segments[i].error;
			outcome.segments[i].needed = plan->segments[i].needed;
			outcome.segments[i].result = plan->results[i];
		}
		report(&outcome, arg);
	}
	ExecDropSingleTupleTableSlot(slot);
	PopActiveSnapshot();
	table_close(plan->source, NoLock);
	UnregisterSnapshot(plan->snapshot);
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	MemoryContextSwitchTo(old);
	MemoryContextDelete(pass_cxt);
	return found;
}

/*
 * segments.preview() (preview.c): evaluates an unsaved definition (rule,
 * parsed against the current catalog: refs are the nrefs segments it reads)
 * as a segment of `tenant` (NULL: global) would be by a full pass: one scan
 * of the source, the segments it reads evaluated afresh, nothing written.
 * visit() is called for every contact, in the contact's memory context
 * (reset after each), with its key, its tenant and whether it is a member.
 * A percentage condition without a salt hashes with the nil uuid: a
 * saved segment's default salt, its id, does not exist yet.
 *
 * On Citus the scan is of the source's shards placed on this node
 * (CitusScanRelations(), as verify() reads them), and only with
 * shards_here: a worker's part of the coordinator's preview
 * (segments._citus_preview_local()).  Otherwise a distributed source is
 * refused (the coordinator's preview goes to the workers before this).
 */
void
EvaluateDefinition(RuleNode *rule, const char *tenant, const pg_uuid_t *refs, int nrefs,
				   bool shards_here, EvaluateVisitFn visit, void *arg)
{
	MemoryContext pass_cxt = AllocSetContextCreate(CurrentMemoryContext, "segments preview",
												   ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(pass_cxt);
	MemoryContext contact_cxt = AllocSetContextCreate(pass_cxt, "segments contact",
													  ALLOCSET_DEFAULT_SIZES);
	EvalPlan   *plan;
	CatalogSegment *seg;
	EvalSegment *es;
	char	   *error = NULL;
	int			self;
	List	   *rels;
	List	   *members;
	ListCell   *lc;

	if (!shards_here)
		CitusRefuse("segments.preview() on a Citus worker");	/* a part of the data */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = plan_build(NULL, 0, true, true);

	/* the definition as one more segment, after those it reads */
	seg = palloc0(sizeof(CatalogSegment));
	seg->num = plan->max_num + 1;
	seg->tenant = tenant ? pstrdup(tenant) : NULL;
	seg->name = "preview";
	seg->ndepends = nrefs;
	seg->depends_on = (pg_uuid_t *) refs;
	self = plan->nsegments;
	plan->segments = repalloc(plan->segments, (self + 1) * sizeof(EvalSegment));
	plan->results = repalloc(plan->results, (self + 1) * sizeof(bool));
	plan->nsegments = self + 1;
	es = &plan->segments[self];
	memset(es, 0, sizeof(EvalSegment));
	es->seg = seg;
	es->id_text = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&seg->id)));
	if (!plan_link(plan, rule, self, &error))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot preview this definition: %s", error),
				 errhint("Fix the referenced segment first; segments.status shows its last error.")));
	es->rule = RuleCompact(rule);
	es->entry = RuleEntry(es->rule);

	/* evaluate it and what it reads, nothing else */
	for (int i = 0; i < self; i++)
		plan->segments[i].writable = plan->segments[i].reported = plan->segments[i].needed = false;
	es->needed = true;
	plan_mark_needed(plan, self);
	plan->max_num = seg->num;
	plan->by_num = palloc0((plan->max_num + 1) * sizeof(EvalSegment *));
	for (int i = 0; i < plan->nsegments; i++)
		plan->by_num[plan->segments[i].seg->num] = &plan->segments[i];

	/* the source, or on Citus its shards placed here */
	rels = CitusScanRelations(plan->source, plan->cat->config.member_relid, plan->snapshot,
							  &members);
	foreach(lc, rels)
	{
		TableScanDesc scan = table_beginscan(lfirst(lc), plan->snapshot, 0, NULL);
		TupleTableSlot *slot = table_slot_create(lfirst(lc), NULL);

		while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
		{
			int32	   *nums;
			char	   *contact_tenant;
			MemoryContext prev;

			CHECK_FOR_INTERRUPTS();
			if (!row_has_key(plan, slot))
				continue;
			prev = MemoryContextSwitchTo(contact_cxt);
			slot_getallattrs(slot);
			(void) evaluate_contact(plan, slot, &nums, &contact_tenant);
			visit(slot->tts_values[plan->cat->config.key_attnum - 1], contact_tenant,
				  plan->results[self], arg);
			MemoryContextSwitchTo(prev);
			MemoryContextReset(contact_cxt);
		}
		ExecDropSingleTupleTableSlot(slot);
		table_endscan(scan);
	}
	CitusCloseScanRelations(rels, plan->source);
	table_close(plan->source, NoLock);
	UnregisterSnapshot(plan->snapshot);
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	MemoryContextSwitchTo(old);
	MemoryContextDelete(pass_cxt);
}

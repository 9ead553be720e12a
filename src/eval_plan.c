/*-------------------------------------------------------------------------
 *
 * eval_plan.c
 *		The plan of an evaluation pass: the segments it evaluates in
 *		dependency order, which of them it rewrites, the lock on membership and
 *		the snapshot taken after it, the pass's prepared statements; and one
 *		contact evaluated under the plan by walking the rule trees (verify(),
 *		explain, preview).
 *
 * Every pass starts with EvalPlanBuild().  Writers of segments.member take
 * turns (member_lock.c) and the plan reads the catalog, the segment states,
 * the source and membership with a snapshot taken after the lock, whatever
 * the isolation level.
 *
 *-------------------------------------------------------------------------
 */
#include "citus.h"
#include "eval_pass.h"
#include "member_lock.h"
#include "member_space.h"

#include "access/table.h"
#include "optimizer/cost.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/typcache.h"

/* Time this process spent waiting for the lock on segments.member. */
int64		EvaluateLockWaitUs = 0;

/* Position of a segment id in plan order, or -1. */
int
EvalPlanPosition(EvalPlan *plan, const pg_uuid_t *id)
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
void
EvalPlanMarkNeeded(EvalPlan *plan, int last)
{
	for (int i = last; i >= 0; i--)
	{
		EvalSegment *es = &plan->segments[i];

		if (!es->needed || es->rule == NULL)
			continue;
		for (int d = 0; d < es->seg->ndepends; d++)
		{
			int			pos = EvalPlanPosition(plan, &es->seg->depends_on[d]);

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
bool
EvalPlanLink(EvalPlan *plan, RuleNode *node, int self, char **error)
{
	RuleCondition *cond = node->cond;

	for (int i = 0; i < node->nchildren; i++)
	{
		if (!EvalPlanLink(plan, node->children[i], self, error))
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
		int			pos = EvalPlanPosition(plan, &cond->segment_ids[i]);

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
		int			pos = EvalPlanPosition(plan, DatumGetUUIDP(d));

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
int
EvalPlanExecute(EvalPlan *plan, SPIPlanPtr stmt, Datum *values, const char *nulls)
{
	return SPI_execute_snapshot(stmt, values, nulls, plan->snapshot, InvalidSnapshot,
								plan->verify, true, 0);
}

/* The same, for a one-off statement without parameters. */
int
EvalPlanExecuteSql(EvalPlan *plan, const char *sql)
{
	SPIPlanPtr	stmt = SPI_prepare(sql, 0, NULL);

	if (stmt == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	return EvalPlanExecute(plan, stmt, NULL, NULL);
}

/* The same, with one text parameter $1. */
int
EvalPlanExecuteSqlText(EvalPlan *plan, const char *sql, const char *arg)
{
	Oid			type = TEXTOID;
	Datum		value = CStringGetTextDatum(arg);
	SPIPlanPtr	stmt = SPI_prepare(sql, 1, &type);

	if (stmt == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	return EvalPlanExecute(plan, stmt, &value, NULL);
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

SPIPlanPtr
EvalPrepareCached(const char *sql, int nargs, Oid *types, int options)
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
	plan->fetch_plan = EvalPrepareCached(psprintf(tenants ?
												  "SELECT contact_id, data, tenant, %s FROM %s"
												  " WHERE contact_id OPERATOR(pg_catalog.=) ANY ($1)" :
												  "SELECT contact_id, data, NULL::pg_catalog.text, %s FROM %s"
												  " WHERE contact_id OPERATOR(pg_catalog.=) ANY ($1)",
												  ctid, table),
										 1, &key_array, 0);
	plan->insert_plan = EvalPrepareCached(psprintf("INSERT INTO %s"
												   " SELECT * FROM pg_catalog.unnest($1)", table),
										  1, &member_array, 0);
	plan->update_plan = EvalPrepareCached(psprintf(tenants ?
												   "UPDATE %s m SET data = u.data, tenant = u.tenant"
												   " FROM pg_catalog.unnest($1) u"
												   " WHERE m.contact_id OPERATOR(pg_catalog.=) u.contact_id" :
												   "UPDATE %s m SET data = u.data"
												   " FROM pg_catalog.unnest($1) u"
												   " WHERE m.contact_id OPERATOR(pg_catalog.=) u.contact_id",
												   table),
										  1, &member_array, 0);
	plan->delete_plan = EvalPrepareCached(psprintf("DELETE FROM %s"
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
void
EvalPlanRetarget(EvalPlan *plan, Oid shard)
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
void
EvalPlanTargetMember(EvalPlan *plan, Oid shard)
{
	Relation	rel;

	EvalPlanRetarget(plan, shard);
	rel = table_open(shard, RowExclusiveLock);
	MemberReclaimSpace(rel);
	table_close(rel, NoLock);
}

/* The plan's segments (plan->cat's) in dependency order. */
static void
plan_order(EvalPlan *plan)
{
	EvalSegment *unordered;
	int			nordered = 0;

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
}

/*
 * Each of the plan's segments parsed from its saved definition, linked
 * into the pass's program and compacted (es->rule NULL, es->error set: it
 * did not compile).  Reads plan->source.
 */
static void
plan_compile(EvalPlan *plan)
{
	RuleParseContext pctx;

	CatalogBuildParseContext(&pctx, plan->source, &plan->cat->config);
	plan->program = EvalProgramCreate();
	for (int i = 0; i < plan->nsegments; i++)
	{
		EvalSegment *es = &plan->segments[i];

		es->rule = CatalogParseSaved(es->seg, &pctx, &es->error);
		if (es->rule != NULL && !EvalPlanLink(plan, es->rule, i, &es->error))
			es->rule = NULL;
		if (es->rule != NULL)
		{
			es->rule = RuleCompact(es->rule);
			es->entry = RuleEntry(es->rule);
		}
	}
}

/* Segments by number, the key type's functions: what evaluating and writing read. */
static void
plan_index(EvalPlan *plan)
{
	const SegmentsConfig *config = &plan->cat->config;
	TypeCacheEntry *tce;
	Oid			outfunc;
	bool		isvarlena;

	plan->results = palloc0(Max(plan->nsegments, 1) * sizeof(bool));
	for (int i = 0; i < plan->nsegments; i++)
		plan->max_num = Max(plan->max_num, plan->segments[i].seg->num);
	plan->by_num = palloc0((plan->max_num + 1) * sizeof(EvalSegment *));
	for (int i = 0; i < plan->nsegments; i++)
		plan->by_num[plan->segments[i].seg->num] = &plan->segments[i];

	tce = lookup_type_cache(config->key_type, TYPECACHE_CMP_PROC_FINFO);
	fmgr_info_copy(&plan->key_cmp, &tce->cmp_proc_finfo, CurrentMemoryContext);
	get_typlenbyvalalign(config->key_type, &plan->key_len, &plan->key_byval, &plan->key_align);
	getTypeOutputInfo(config->key_type, &outfunc, &isvarlena);
	fmgr_info_cxt(outfunc, &plan->key_out, CurrentMemoryContext);
}

/*
 * Builds the plan of a pass.  `only` (nonly ids) limits the segments whose
 * membership is rewritten to them and those that reference them; incremental passes
 * rewrite only segments whose state is ready (others keep their stored
 * membership until their own evaluation completes).
 */
EvalPlan *
EvalPlanBuild(const pg_uuid_t *only, int nonly, bool full_pass, bool verify)
{
	EvalPlan   *plan = palloc0(sizeof(EvalPlan));
	SegmentsConfig *config;
	bool	   *ready = NULL;

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

	plan_order(plan);
	if (!full_pass)
		ready = load_ready(plan);	/* (by plan position) */
	PopActiveSnapshot();
	plan_compile(plan);
	for (int i = 0; i < plan->nsegments; i++)
	{
		EvalSegment *es = &plan->segments[i];

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
	EvalPlanMarkNeeded(plan, plan->nsegments - 1);
	plan_index(plan);

	plan->member_type = get_rel_type_id(config->member_relid);
	plan->member_desc = lookup_rowtype_tupdesc_copy(plan->member_type, -1);
	plan->member_table = "segments.member";
	plan_prepare_statements(plan);
	plan->bulk_relid = InvalidOid;
	if (!verify && !CitusIsDistributed(config->member_relid))
	{
		Relation	member = table_open(config->member_relid, RowExclusiveLock);

		if (MemberBulkPossible(member))
		{
			plan->bulk_relid = config->member_relid;
			/* entries wait for MemberBatchFlushWrites() */
			plan->bulk = MemberBulkBegin(MemberBulkMayDefer(member));
		}
		table_close(member, NoLock);
	}
	return plan;
}

/*
 * The plan of a helper process evaluating part of a full pass
 * (pass_parallel.c): the leader's catalog (read with its snapshot), the
 * segments it needs, its now().  Nothing is locked, written or prepared.
 * NULL when a needed segment does not compile here as it did there.
 */
EvalPlan *
EvalPlanBuildHelper(SegmentCatalog *cat, Relation source, const pg_uuid_t *needed,
					int nneeded, TimestampTz now)
{
	EvalPlan   *plan = palloc0(sizeof(EvalPlan));
	int			found = 0;

	plan->cat = cat;
	plan->contact_view.scope = TENANT_SCOPE_ALL;
	plan->source = source;
	plan->full_pass = true;
	plan->need_tenant = cat->config.tenant_attnum > 0;
	plan->now = now;
	plan->now_seconds = (int32) (now / USECS_PER_SEC);
	plan_order(plan);
	plan_compile(plan);
	for (int i = 0; i < plan->nsegments; i++)
	{
		EvalSegment *es = &plan->segments[i];

		for (int k = 0; k < nneeded && !es->needed; k++)
			es->needed = memcmp(&es->seg->id, &needed[k], sizeof(pg_uuid_t)) == 0;
		if (es->needed && es->rule == NULL)
			return NULL;
		found += es->needed;
	}
	if (found != nneeded)
		return NULL;
	plan_index(plan);
	return plan;
}

/*
 * Ends a pass that connected to SPI, built its plan with EvalPlanBuild()
 * and allocated in pass_cxt: the source and the snapshot are released,
 * SPI finished, and the pass's memory freed, back in old.
 */
void
EvalPassEnd(EvalPlan *plan, MemoryContext old, MemoryContext pass_cxt)
{
	table_close(plan->source, NoLock);
	UnregisterSnapshot(plan->snapshot);
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	MemoryContextSwitchTo(old);
	MemoryContextDelete(pass_cxt);
}

/* ----------------------------------------------------------------
 * One contact under the plan
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
 * The evaluation context of the contact in slot (all attributes deformed),
 * and its tenant's text form (NULL: none), in the current memory context.
 */
char *
EvalContactContext(EvalPlan *plan, TupleTableSlot *slot, RuleEvalContext *ctx)
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

/*
 * Evaluates every compiled segment for the contact in slot (all
 * attributes deformed) and returns the numbers of those it is in, sorted,
 * and its tenant's text form (NULL: none), in the current memory context.
 */
int
EvalPlanContact(EvalPlan *plan, TupleTableSlot *slot, int32 **nums, char **tenant_out)
{
	RuleEvalContext ctx;
	char	   *tenant = EvalContactContext(plan, slot, &ctx);
	int			n = 0;

	*nums = palloc(Max(plan->nsegments, 1) * sizeof(int32));
	for (int i = 0; i < plan->nsegments; i++)
	{
		EvalSegment *es = &plan->segments[i];
		bool		in = false;

		/* a tenant's segment only ever holds that tenant's contacts */
		if (es->rule != NULL && es->needed && EvalTenantAllows(plan, es, tenant))
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

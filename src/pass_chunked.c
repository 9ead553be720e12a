/*-------------------------------------------------------------------------
 *
 * pass_chunked.c
 *		The worker's chunked pass: every segment waiting for a full
 *		evaluation (new, changed, retried, scheduled) evaluated together in
 *		one pass over the source, chunk by chunk.
 *
 * A pass visits the contacts in the order of the source's key index, a
 * chunk per transaction (EvaluateChunk()): at most segments.pass_chunk_size
 * contacts, sized to take about the worker's chunk budget of CPU time, and
 * cut short by the wall clock when committed changes wait for it.  The worker
 * applies queued contact changes between chunks, so that a pass over a
 * large source never holds changes back for longer than a chunk.
 * The pass in progress is the row of segments.pass: its segments, their
 * requested_at as the pass saw them, and the last key visited, committed
 * with each chunk, so that a worker that died (or a server that crashed)
 * resumes from the last committed chunk; a crash that lost changes
 * captured in shared memory starts it over from the first contact instead
 * (worker.c, ring_start: some of those changes were of contacts it had
 * visited).
 *
 * Correct under concurrent writes: the segments of the pass are
 * "evaluating", and the incremental path rewrites evaluating segments as it
 * does ready ones.  A contact changed after a chunk's snapshot is queued
 * and applied by the incremental path, whichever range it is in; a chunk
 * and a batch of changes take turns on the membership lock and each reads
 * the source after taking it, so the later of the two writes what the
 * latest committed contact says.
 *
 * What readers see meanwhile: the membership a segment had before, for the
 * contacts the pass has not reached yet, and the new one for the contacts
 * it has visited and those changed since it started.  The segment is
 * "evaluating" until the last chunk commits, when it becomes "ready";
 * segments.worker shows how far the pass is.  A segment changed again
 * during the pass (update_segment) leaves it, pending for the next pass.
 *
 * Everything here runs in the worker's transactions (worker.c begins and
 * commits them, as the extension's owner, with SPI connected).
 *
 *-------------------------------------------------------------------------
 */
#include "capture_ring.h"
#include "catalog.h"
#include "citus.h"
#include "eval_pass.h"
#include "member_space.h"
#include "pass_chunk_helper.h"
#include "pass_chunked.h"
#include "worker.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include <time.h>

/*
 * Contacts in the next chunk: sized from the CPU cost per contact of the
 * last one (evaluating and writing: a first evaluation writes every
 * contact, a later one few) to take about the CPU budget; 0 before the
 * first.  CPU time, not wall clock: on a loaded machine the wall clock
 * counts the waits for a core, and chunks sized by it held so few contacts
 * that what a chunk costs whatever its size dominated the pass.
 */
static int64 next_limit = 0;

/* How far the pass in progress went, as of its last chunk (PassFractionDone). */
static int64 progress_done = 0;
static int64 progress_total = 0;

#define FIRST_CHUNK		1000
#define MIN_CHUNK		100

/*
 * Starts a pass of these segments (uuid[]); the caller has marked the
 * pending ones evaluating.  The number of contacts is estimated from the
 * statistics (counted when the source was never analyzed).
 */
void
PassStart(Datum ids)
{
	Oid			type = UUIDARRAYOID;
	bool		isnull;
	Datum		total;

	progress_done = progress_total = 0;
	/* a row left by a pass this worker no longer follows (unconfigured) */
	WorkerRun("DELETE FROM segments.pass", 0, NULL, NULL, SPI_OK_DELETE);
	WorkerRun("INSERT INTO segments.pass (source, segment_ids, requested, contacts_total)"
			 " SELECT c.source, pg_catalog.array_agg(st.segment_id ORDER BY st.segment_id),"
			 "        pg_catalog.array_agg(st.requested_at ORDER BY st.segment_id),"
			 "        GREATEST((SELECT r.reltuples FROM pg_catalog.pg_class r"
			 "                   WHERE r.oid OPERATOR(pg_catalog.=) c.source), -1)::pg_catalog.int8"
			 "   FROM segments.config c, segments.segment_state st"
			 "  WHERE st.segment_id OPERATOR(pg_catalog.=) ANY ($1)"
			 "  GROUP BY c.source"
			 " RETURNING contacts_total, source::pg_catalog.oid",
			 1, &type, &ids, SPI_OK_INSERT_RETURNING);
	if (SPI_processed != 1)
		elog(ERROR, "segments pass: none of its segments exists");
	total = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (DatumGetInt64(total) < 0)
	{
		Oid			source = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
															SPI_tuptable->tupdesc, 2, &isnull));
		char	   *sql = psprintf("UPDATE segments.pass SET contacts_total ="
								   " (SELECT pg_catalog.count(*) FROM %s.%s)",
								   quote_identifier(get_namespace_name(get_rel_namespace(source))),
								   quote_identifier(get_rel_name(source)));

		WorkerRun(sql, 0, NULL, NULL, SPI_OK_UPDATE);
	}
}

/*
 * The fraction of the source the pass in progress visited, as of its last
 * chunk of this worker's (the count of contacts is an estimate); 0 before
 * its first chunk.
 */
double
PassFractionDone(void)
{
	if (progress_total <= 0 || progress_done <= 0)
		return 0.0;
	return Min(1.0, (double) progress_done / (double) progress_total);
}

/*
 * Reads the pass in progress: returns false when there is none; otherwise
 * sets its segments (uuid[], in the current memory context) and when it
 * started.
 */
bool
PassInProgress(Datum *ids, TimestampTz *started_at)
{
	bool		isnull;

	WorkerRun("SELECT segment_ids, started_at FROM segments.pass", 0, NULL, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return false;
	*ids = datumCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
					 false, -1);
	*started_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 2, &isnull));
	return true;
}

/*
 * Ends the pass in progress without completing it: its segments still
 * evaluating are pending again (for the next pass).
 */
void
PassAbandon(void)
{
	WorkerRun("WITH p AS (DELETE FROM segments.pass RETURNING segment_ids)"
			 " UPDATE segments.segment_state st SET state = 'pending'"
			 "   FROM p"
			 "  WHERE st.segment_id OPERATOR(pg_catalog.=) ANY (p.segment_ids)"
			 "    AND st.state OPERATOR(pg_catalog.=) 'evaluating'",
			 0, NULL, NULL, SPI_OK_UPDATE);
}

/*
 * Evaluates the next chunk of the pass in progress (at most limit
 * contacts, and about budget_ms of CPU), in the caller's transaction, and
 * completes the pass after its last chunk: its segments that were not
 * changed meanwhile become ready.  Sets *visited to the number of contacts
 * evaluated.
 */
PassOutcome
PassChunk(int64 limit, int budget_ms, int64 *visited)
{
	int64		cpu_start = EvaluateCpuUs();
	double		elapsed_ms;
	bool		done;
	bool		isnull;
	bool		same_source;
	char	   *cursor = NULL;
	ArrayType  *live;
	int			nlive;
	Datum		d;

	*visited = 0;
	/* the segments still to evaluate: not changed, failed or dropped since */
	WorkerRun("SELECT c.source IS NOT NULL AND p.source OPERATOR(pg_catalog.=) c.source, p.cursor,"
			 "       ARRAY(SELECT st.segment_id FROM segments.segment_state st"
			 "               JOIN ROWS FROM (pg_catalog.unnest(p.segment_ids),"
			 "                               pg_catalog.unnest(p.requested)) AS seen(id, requested_at)"
			 "                 ON st.segment_id OPERATOR(pg_catalog.=) seen.id"
			 "              WHERE st.requested_at OPERATOR(pg_catalog.=) seen.requested_at"
			 "                AND st.state OPERATOR(pg_catalog.=) ANY ('{evaluating,ready}'::pg_catalog.text[]))"
			 "  FROM segments.pass p LEFT JOIN segments.config c ON true",
			 0, NULL, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return PASS_NONE;
	same_source = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	if (!isnull)
		cursor = TextDatumGetCString(d);
	live = DatumGetArrayTypePCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	nlive = ArrayGetNItems(ARR_NDIM(live), ARR_DIMS(live));
	/* reconfigured (configure() evaluates everything anew), or nothing left */
	if (!same_source || nlive == 0)
	{
		PassAbandon();
		return PASS_ABANDONED;
	}

	limit = Min(limit, next_limit > 0 ? next_limit : FIRST_CHUNK);
	*visited = EvaluateChunk((pg_uuid_t *) ARR_DATA_PTR(live), nlive, &cursor, limit,
							 budget_ms, &done);
	elapsed_ms = (EvaluateCpuUs() - cpu_start) / 1000.0;
	if (*visited > 0 && elapsed_ms > 0)
		next_limit = Max((int64) (*visited * budget_ms / elapsed_ms), MIN_CHUNK);

	if (!done)
	{
		Oid			types[2] = {TEXTOID, INT8OID};
		Datum		values[2] = {CStringGetTextDatum(cursor), Int64GetDatum(*visited)};

		bool		isnull;

		WorkerRun("UPDATE segments.pass SET cursor = $1,"
				 "       contacts_done = contacts_done OPERATOR(pg_catalog.+) $2,"
				 "       chunks = chunks OPERATOR(pg_catalog.+) 1"
				 " RETURNING contacts_done, contacts_total",
				 2, types, values, SPI_OK_UPDATE_RETURNING);
		if (SPI_processed == 1)
		{
			progress_done = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
			progress_total = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		}
		return PASS_CONTINUES;
	}

	/*
	 * the last chunk: the segments are evaluated, as of their request.
	 * (Every OPERATOR() has the same precedence, left to right: unless the
	 * product is parenthesized, the whole sum is multiplied by 1000.)
	 */
	WorkerRun(psprintf("WITH p AS (DELETE FROM segments.pass RETURNING *)"
					  " UPDATE segments.segment_state st SET state = 'ready',"
					  "       evaluated_at = p.started_at,"
					  "       last_duration = pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) p.started_at,"
					  "       last_error = NULL, attempts = 0, retry_at = NULL%s"
					  "  FROM p, ROWS FROM (pg_catalog.unnest(p.segment_ids),"
					  "                     pg_catalog.unnest(p.requested)) AS seen(id, requested_at)"
					  " WHERE st.segment_id OPERATOR(pg_catalog.=) seen.id"
					  "   AND st.requested_at OPERATOR(pg_catalog.=) seen.requested_at"
					  "   AND st.state OPERATOR(pg_catalog.=) ANY ('{evaluating,ready}'::pg_catalog.text[])",
					  StatsColumnsExist() ?
					  ", evaluations = evaluations OPERATOR(pg_catalog.+) 1,"
					  "  evaluation_time = evaluation_time OPERATOR(pg_catalog.+)"
					  "    (pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) p.started_at)"
					  "     OPERATOR(pg_catalog.*) 1000)" : ""),
			 0, NULL, NULL, SPI_OK_UPDATE);
	return PASS_DONE;
}

/* ----------------------------------------------------------------
 * One chunk of the pass (EvaluateChunk)
 * ---------------------------------------------------------------- */

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
 * (PassDeleteDeparted()); a larger chunk (segments.pass_chunk_size raised)
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

	/* (the chunk helper's messages set the latch too: writers' wake-ups counted) */
	if (ChunkHelperActive() ? WorkerWokenSinceApply() : MyLatch->is_set)
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

/* Keeps a visited key for PassDeleteDeparted(); past CHUNK_KEYS_MAX, none. */
static void
chunk_keep_key(EvalPlan *plan, Datum key, Datum **keys, int *nkeys, int *keys_size)
{
	if (*keys == NULL)
		return;
	if (*nkeys == *keys_size && *keys_size >= CHUNK_KEYS_MAX)
	{
		pfree(*keys);			/* a very large chunk: the anti-join */
		*keys = NULL;
		return;
	}
	if (*nkeys == *keys_size)
	{
		*keys_size *= 2;
		*keys = repalloc(*keys, *keys_size * sizeof(Datum));
	}
	(*keys)[(*nkeys)++] = datumCopy(key, plan->key_byval, plan->key_len);
}

/*
 * The chunk's contacts as the worker's helper process reads and evaluates
 * them (pass_chunk_helper.c), written in the order they come: the contacts
 * after the chunk's first key, until the limit, the end of the index
 * (*more false) or the chunk's budget (chunk_over(): the helper is told to
 * stop).  Returns false when the helper went before the chunk's end: the
 * caller reads on alone after *last (from the first key when *visited is 0).
 */
static bool
chunk_from_helper(EvalPlan *plan, MemberBatch *batch, int64 limit, TimestampTz started,
				  int64 cpu_start, int budget_ms, int64 *visited, Datum *last, bool *more,
				  Datum **keys, int *nkeys, int *keys_size)
{
	MemoryContext scratch = AllocSetContextCreate(CurrentMemoryContext, "segments helper message",
												  ALLOCSET_DEFAULT_SIZES);
	bool		finished = false;

	while (!finished)
	{
		HelperReader r;
		ChunkHelperReceipt got;
		MemoryContext old = MemoryContextSwitchTo(scratch);
		Datum		key;
		char	   *tenant;
		int			nnums;
		int32	   *nums;

		got = ChunkHelperReceive(&r);
		MemoryContextSwitchTo(old);
		if (got == CHUNK_HELPER_GONE)
			break;
		if (got == CHUNK_HELPER_NOTHING)
		{
			if (budget_ms > 0 && *visited > 0 && chunk_over(started, cpu_start, budget_ms))
			{
				ChunkHelperCut();	/* what was written is the chunk */
				*more = true;
				finished = true;
			}
			else
				ChunkHelperWait();
			continue;
		}
		for (;;)
		{
			bool		got_one;

			old = MemoryContextSwitchTo(scratch);
			got_one = HelperReaderNext(&r, &key, &tenant, &nnums, &nums);
			MemoryContextSwitchTo(old);
			if (!got_one)
				break;
			MemberBatchAdd(plan, batch, key, nnums, nums, tenant, true);
			chunk_keep_key(plan, key, keys, nkeys, keys_size);
			if (*last != (Datum) 0 && !plan->key_byval)
				pfree(DatumGetPointer(*last));
			*last = datumCopy(key, plan->key_byval, plan->key_len);
			if (++*visited == limit ||
				(budget_ms > 0 && *visited % 256 == 0 && chunk_over(started, cpu_start, budget_ms)))
			{
				ChunkHelperCut();
				*more = true;
				finished = true;
				break;
			}
		}
		if (!finished && (r.flags & CHUNK_MESSAGE_END))
		{
			*more = (r.flags & CHUNK_MESSAGE_MORE) != 0;
			finished = true;
		}
		MemoryContextReset(scratch);
	}
	MemoryContextDelete(scratch);
	ChunkHelperChunkEnd();
	return finished;
}

/*
 * Ends a chunk of EvaluateChunk(): the source, the snapshot, SPI and the
 * GUC nesting it opened, back in the caller's memory with the chunk's freed.
 */
static void
chunk_end(EvalPlan *plan, MemoryContext old, MemoryContext pass_cxt, int save_nestlevel)
{
	EvalPassEnd(plan, old, pass_cxt);
	AtEOXact_GUC(true, save_nestlevel);
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
	Bitmapset  *replaced = MemberBulkTakeReplaced();

	/*
	 * First the pages of the versions the chunks before this one (and the
	 * changes between them) replaced, committed since: the pass's new
	 * versions fill them rather than new pages until the next vacuum (at
	 * 1,000,000 contacts the heap was twice its settled size when a pass
	 * replacing every row ended).  A few hundred pages a chunk.
	 */
	if (replaced != NULL)
	{
		member = table_open(plan->cat->config.member_relid, RowExclusiveLock);
		MemberReclaimBlocks(member, replaced);
		table_close(member, NoLock);
		bms_free(replaced);
	}
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
	MemberBatch *batch;
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
	Datum	   *keys;			/* visited, for PassDeleteDeparted() */
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
	plan = EvalPlanBuild(only, nonly, false, false);
	config = &plan->cat->config;
	batch = MemberBatchCreate();
	/*
	 * The rows a chunk evaluated are written when it ends, while changes
	 * may be waiting: written a quarter as many at a time, a chunk cut
	 * short for them writes less after the cut.
	 */
	batch->size = CHUNK_BATCH_SIZE;
	cb = ContactBatchCreate(plan, false);
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
			EvalPlanTargetMember(plan, shard.member_shard);	/* once a shard */
		else
			EvalPlanRetarget(plan, shard.member_shard);
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
	/*
	 * A large local source: the worker's helper process reads and
	 * evaluates the range while this process writes (pass_chunk_helper.c).
	 */
	if (sharded ||
		!ChunkHelperAsk(plan, scanindex, from != NULL ? &lo : NULL, limit) ||
		!chunk_from_helper(plan, batch, limit, started, cpu_start, budget_ms, &visited, &last,
						   &more, &keys, &nkeys, &keys_size))
	{
		/* key order, from the cursor (or what the helper sent) on: a resumed pass goes on where it was */
		bool		after = from != NULL || visited > 0;

		if (visited > 0)
			ScanKeyEntryInitialize(&skey, 0, 1, BTGreaterStrategyNumber, InvalidOid,
								   index->rd_indcollation[0],
								   index_greater_proc(index, config->key_type), last);
		scan = index_beginscan(scanrel, index, plan->snapshot, after ? 1 : 0, 0);
		index_rescan(scan, after ? &skey : NULL, after ? 1 : 0, NULL, 0);
		slot = table_slot_create(scanrel, NULL);
		while (visited < limit &&
			   (more = index_getnext_slot(scan, ForwardScanDirection, slot)))
		{
			CHECK_FOR_INTERRUPTS();
			/* NULL keys come last in the index: not contacts, not a cursor */
			if (!EvalRowHasKey(plan, slot))
				continue;
			ContactBatchEvaluate(plan, cb, batch, slot, contact_cxt);
			chunk_keep_key(plan, slot->tts_values[config->key_attnum - 1], &keys, &nkeys,
						   &keys_size);
			if (++visited == limit ||
				(budget_ms > 0 && visited % 256 == 0 && chunk_over(started, cpu_start, budget_ms)))
			{
				last = datumCopy(slot->tts_values[config->key_attnum - 1],
								 plan->key_byval, plan->key_len);
				break;
			}
		}
		ExecDropSingleTupleTableSlot(slot);
		index_endscan(scan);
	}
	ContactBatchFlush(plan, cb, batch);
	MemberBatchApply(plan, batch);
	MemberBatchFlushWrites(plan);
	index_close(index, AccessShareLock);

	/* chunk ranges (lo, last] cover every key, whatever the member table's order */
	*done = !more;
	PassDeleteDeparted(plan, scanrel, from != NULL ? &lo : NULL, *done ? NULL : &last,
					   keys == NULL ? NULL :
					   construct_array(keys, nkeys, config->key_type, plan->key_len,
									   plan->key_byval, plan->key_align));
	PassRecordState(plan, started);
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

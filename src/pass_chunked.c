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
#include "catalog.h"
#include "pass_chunked.h"
#include "worker.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

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

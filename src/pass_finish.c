/*-------------------------------------------------------------------------
 *
 * pass_finish.c
 *		What a pass does once its contacts are written: stored rows of
 *		departed contacts deleted, member counts and states recorded in
 *		segments.segment_state, and segments that cannot be evaluated failing
 *		closed.
 *
 *-------------------------------------------------------------------------
 */
#include "eval_pass.h"
#include "history.h"
#include "member_lock.h"

#include "utils/builtins.h"
#include "utils/lsyscache.h"

/*
 * Deletes stored rows of contacts that left the source; their memberships
 * of segments the pass did not rewrite are subtracted from those counts
 * (of every segment, for a chunk: counts follow changes there).  A chunk
 * passes the key range it visited, lo < key <= hi (NULL: unbounded), and
 * the keys it visited there (NULL: the source is probed for each row).
 */
void
PassDeleteDeparted(EvalPlan *plan, Relation source, const Datum *lo, const Datum *hi,
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
	stmt = EvalPrepareCached(sql.data, 3, types,
							 visited != NULL ? CURSOR_OPT_CUSTOM_PLAN : 0);
	if (EvalPlanExecute(plan, stmt, values, nulls) != SPI_OK_SELECT)
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
			EvalSegment *es = EvalSegmentOfNum(plan, DatumGetInt32(num));

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
void
PassRecordState(EvalPlan *plan, TimestampTz started)
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
	upd = EvalPrepareCached(sql.data, 5, types, 0);

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
	fail = EvalPrepareCached(sql.data, 2, types, 0);
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
			if (EvalPlanExecute(plan, fail, values, NULL) != SPI_OK_UPDATE)
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
		if (EvalPlanExecute(plan, upd, values, nulls) != SPI_OK_UPDATE)
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
		SPIPlanPtr	moved = EvalPrepareCached("UPDATE segments.segment_state st"
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
		if (EvalPlanExecute(plan, moved, delta_values, NULL) != SPI_OK_UPDATE)
			elog(ERROR, "could not update segments.segment_state");
	}
	if (nfailed > 0 && retries)
		strip_numbers(plan->snapshot,
					  PointerGetDatum(construct_array(failed, nfailed, INT4OID, sizeof(int32),
													  true, TYPALIGN_INT)));
}

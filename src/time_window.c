/*-------------------------------------------------------------------------
 *
 * time_window.c
 *		Which contacts may enter or leave a segment because time passed.
 *
 * within_last and not_within_last (field >= now - I) flip when now passes
 * field + I; within_next (now <= field <= now + I) flips when now reaches
 * field - I and when it passes field.  So for a window of time [from, to]
 * the contacts whose membership may have flipped are those whose field
 * lies in [from - I, to - I] (or [from + I, to + I] and [from, to]): one
 * query on the source table finds them (a range scan where the column has
 * an index), and only they are re-evaluated, through the incremental path.
 * That keeps time-dependent segments exact to the window's length without
 * re-reading every contact.
 *
 * A time condition on a trait, or on a text column read as a timestamp,
 * cannot be found by a query: its segment is reported back to the worker,
 * which re-evaluates it whole every segments.time_resolution instead.
 *
 *-------------------------------------------------------------------------
 */
#include "catalog.h"

#include "access/table.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/uuid.h"

/* One range of a time column to look into. */
typedef struct TimeRange
{
	AttrNumber	attnum;
	Oid			typid;			/* timestamptz, timestamp or date */
	TimestampTz low;
	TimestampTz high;
} TimeRange;

typedef struct WindowScan
{
	TimestampTz from;
	TimestampTz to;
	int			nranges;
	int			maxranges;
	TimeRange  *ranges;
	bool		windowable;		/* of the segment being walked */
	bool		timed;			/* it added a range */
} WindowScan;

static void
add_range(WindowScan *ws, const RuleAttribute *attr, TimestampTz low, TimestampTz high)
{
	for (int i = 0; i < ws->nranges; i++)
	{
		TimeRange  *r = &ws->ranges[i];

		if (r->attnum == attr->attnum && r->low == low && r->high == high)
			return;				/* many segments share a condition */
	}
	if (ws->nranges == ws->maxranges)
	{
		ws->maxranges = Max(16, ws->maxranges * 2);
		ws->ranges = ws->ranges ? repalloc(ws->ranges, ws->maxranges * sizeof(TimeRange))
			: palloc(ws->maxranges * sizeof(TimeRange));
	}
	ws->ranges[ws->nranges].attnum = attr->attnum;
	ws->ranges[ws->nranges].typid = attr->typid;
	ws->ranges[ws->nranges].low = low;
	ws->ranges[ws->nranges].high = high;
	ws->nranges++;
}

/* Collects the ranges of the time conditions of a rule tree. */
static void
collect_ranges(WindowScan *ws, const RuleNode *node)
{
	RuleCondition *cond = node->cond;

	for (int i = 0; i < node->nchildren; i++)
		collect_ranges(ws, node->children[i]);
	if (node->kind != RULE_CONDITION ||
		(cond->op != OP_WITHIN_LAST && cond->op != OP_WITHIN_NEXT))
		return;
	if (cond->type != COND_ATTRIBUTE || !cond->attr.is_time || cond->attr.is_array ||
		cond->explicit_as)
	{
		ws->windowable = false;
		return;
	}
	ws->timed = true;
	if (cond->op == OP_WITHIN_LAST)
		add_range(ws, &cond->attr, RuleShiftTime(ws->from, cond->interval, -1),
				  RuleShiftTime(ws->to, cond->interval, -1));
	else
	{
		add_range(ws, &cond->attr, RuleShiftTime(ws->from, cond->interval, 1),
				  RuleShiftTime(ws->to, cond->interval, 1));
		add_range(ws, &cond->attr, ws->from, ws->to);
	}
}

/* The key column and the source's qualified name, quoted for SQL text. */
static void
source_names(const SegmentsConfig *config, Relation source, const char **keycol,
			 const char **table)
{
	*keycol = quote_identifier(NameStr(TupleDescAttr(RelationGetDescr(source),
													 config->key_attnum - 1)->attname));
	*table = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(source)),
										RelationGetRelationName(source));
}

/*
 * The key `limit` contacts after the cursor (in key order): the upper end
 * of the next chunk, or false past the last contact.
 */
static bool
chunk_upper(const SegmentsConfig *config, Relation source, Datum cursor, bool has_cursor,
			int limit, Datum *upper)
{
	const char *keycol;
	const char *table;
	StringInfoData sql;
	Oid			types[2] = {config->key_type, INT4OID};
	Datum		values[2] = {cursor, Int32GetDatum(limit - 1)};
	char		nulls[3] = {has_cursor ? ' ' : 'n', ' ', '\0'};
	bool		isnull;

	source_names(config, source, &keycol, &table);
	initStringInfo(&sql);
	if (has_cursor)
		appendStringInfo(&sql, "SELECT %s FROM %s WHERE %s OPERATOR(pg_catalog.>) $1"
						 " ORDER BY 1 OFFSET $2 LIMIT 1", keycol, table, keycol);
	else
		appendStringInfo(&sql, "SELECT %s FROM %s WHERE %s IS NOT NULL ORDER BY 1 OFFSET $2 LIMIT 1",
						 keycol, table, keycol);
	if (SPI_execute_with_args(sql.data, 2, types, values, nulls, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not find the next chunk of contacts");
	if (SPI_processed == 0)
		return false;
	*upper = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return true;
}

/*
 * SELECT DISTINCT key FROM source WHERE key in (lower, upper] AND <ranges>,
 * as an array of keys, or NULL.
 */
static ArrayType *
query_candidates(const SegmentsConfig *config, Relation source, WindowScan *ws,
				 Datum lower, bool has_lower, Datum upper, bool has_upper)
{
	TupleDesc	desc = RelationGetDescr(source);
	StringInfoData sql;
	int			nargs = 2 * ws->nranges + 2;
	Oid		   *types = palloc(nargs * sizeof(Oid));
	Datum	   *values = palloc(nargs * sizeof(Datum));
	char	   *nulls = palloc(nargs + 1);
	Datum	   *keys;
	const char *keycol;
	const char *table;
	int16		len;
	bool		byval;
	char		align;

	source_names(config, source, &keycol, &table);
	initStringInfo(&sql);
	/* a row with a NULL key is no contact (EvalRowHasKey, eval_pass.h) */
	appendStringInfo(&sql, "SELECT DISTINCT %s FROM %s WHERE %s IS NOT NULL AND (",
					 keycol, table, keycol);
	for (int i = 0; i < ws->nranges; i++)
	{
		TimeRange  *r = &ws->ranges[i];
		const char *column = quote_identifier(NameStr(TupleDescAttr(desc, r->attnum - 1)->attname));
		bool		tz = r->typid == TIMESTAMPTZOID;

		/* a timestamp or date column holds UTC times, as the evaluator reads them */
		appendStringInfo(&sql, "%s(%s%s OPERATOR(pg_catalog.>=) $%d AND %s%s OPERATOR(pg_catalog.<=) $%d)",
						 i > 0 ? " OR " : "",
						 column, tz ? "" : "::pg_catalog.timestamp", 2 * i + 1,
						 column, tz ? "" : "::pg_catalog.timestamp", 2 * i + 2);
		types[2 * i] = types[2 * i + 1] = tz ? TIMESTAMPTZOID : TIMESTAMPOID;
		values[2 * i] = TimestampTzGetDatum(r->low);
		values[2 * i + 1] = TimestampTzGetDatum(r->high);
	}
	appendStringInfoChar(&sql, ')');
	types[nargs - 2] = types[nargs - 1] = config->key_type;
	values[nargs - 2] = lower;
	values[nargs - 1] = upper;
	/* unused bounds are NULL: a by-reference key type must not be read */
	memset(nulls, ' ', nargs);
	nulls[nargs - 2] = has_lower ? ' ' : 'n';
	nulls[nargs - 1] = has_upper ? ' ' : 'n';
	nulls[nargs] = '\0';
	if (has_lower)
		appendStringInfo(&sql, " AND %s OPERATOR(pg_catalog.>) $%d", keycol, nargs - 1);
	if (has_upper)
		appendStringInfo(&sql, " AND %s OPERATOR(pg_catalog.<=) $%d", keycol, nargs);
	/* an unused parameter is fine: every one has its type */
	if (SPI_execute_with_args(sql.data, nargs, types, values, nulls, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not look for contacts in the time window");
	if (SPI_processed == 0)
		return NULL;
	keys = palloc(SPI_processed * sizeof(Datum));
	get_typlenbyvalalign(config->key_type, &len, &byval, &align);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		keys[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
	}
	return construct_array(keys, SPI_processed, config->key_type, len, byval, align);
}

/*
 * The contacts of the next chunk of the source (`limit` contacts after
 * *cursor, in key order) whose membership of a time-dependent segment may
 * flip between `from` and `to` (NULL if none), allocated in the caller's
 * memory context.  Moves the cursor (kept in cursor_cxt) and sets *done
 * after the last chunk.  The segments whose conditions gave the ranges
 * looked up are returned in *windowed: only they (and the segments that
 * reference them) need evaluating for those contacts.  Segments with time
 * conditions that cannot be looked up so are returned in *unwindowable.
 * Chunks keep each query short, so the worker applies contact changes in
 * between.
 */
ArrayType *
TimeWindowCandidates(TimestampTz from, TimestampTz to, Datum *cursor, bool *has_cursor,
					 bool *done, int limit, MemoryContext cursor_cxt,
					 int *nwindowed, pg_uuid_t **windowed,
					 int *nunwindowable, pg_uuid_t **unwindowable)
{
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext work = AllocSetContextCreate(CurrentMemoryContext, "segments time window",
											   ALLOCSET_DEFAULT_SIZES);
	SegmentCatalog *cat;
	Relation	source;
	RuleParseContext pctx;
	WindowScan	ws;
	ArrayType  *keys = NULL;

	*nwindowed = 0;
	*windowed = NULL;
	*nunwindowable = 0;
	*unwindowable = NULL;
	*done = true;
	MemoryContextSwitchTo(work);
	cat = CatalogLoad(work, true);
	if (!cat->config.configured || cat->nsegments == 0)
	{
		MemoryContextSwitchTo(caller);
		MemoryContextDelete(work);
		return NULL;
	}
	source = table_open(cat->config.source_relid, AccessShareLock);
	CatalogCheckSource(&cat->config, source);
	CatalogBuildParseContext(&pctx, source, &cat->config);
	memset(&ws, 0, sizeof(ws));
	ws.from = from;
	ws.to = to;
	*windowed = MemoryContextAlloc(caller, cat->nsegments * sizeof(pg_uuid_t));
	*unwindowable = MemoryContextAlloc(caller, cat->nsegments * sizeof(pg_uuid_t));
	for (int i = 0; i < cat->nsegments; i++)
	{
		RuleNode   *root = CatalogParseSaved(&cat->segments[i], &pctx, NULL);

		if (root == NULL)
			continue;
		ws.windowable = true;
		ws.timed = false;
		collect_ranges(&ws, root);
		/* also swept when partly unwindowable: its column's flips come here first */
		if (ws.timed)
			(*windowed)[(*nwindowed)++] = cat->segments[i].id;
		if (!ws.windowable)
			(*unwindowable)[(*nunwindowable)++] = cat->segments[i].id;
	}
	if (ws.nranges > 0)
	{
		Datum		upper = (Datum) 0;
		bool		has_upper;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		has_upper = chunk_upper(&cat->config, source, *cursor, *has_cursor, limit, &upper);
		keys = query_candidates(&cat->config, source, &ws, *cursor, *has_cursor,
								upper, has_upper);
		MemoryContextSwitchTo(caller);
		if (keys != NULL)
			keys = DatumGetArrayTypePCopy(PointerGetDatum(keys));
		if (has_upper)
		{
			int16		len;
			bool		byval;

			get_typlenbyval(cat->config.key_type, &len, &byval);
			MemoryContextSwitchTo(cursor_cxt);
			*cursor = datumCopy(upper, byval, len);
			*has_cursor = true;
			*done = false;
		}
		if (SPI_finish() != SPI_OK_FINISH)
			elog(ERROR, "SPI_finish failed");
	}
	table_close(source, NoLock);
	MemoryContextSwitchTo(caller);
	MemoryContextDelete(work);
	return keys;
}

/*
 * One chunk of a sweep: the whole re-evaluation, contact by contact, that
 * time conditions the window cannot serve need.  Evaluates the swept
 * segments (segment_ids, uuid[]) and those that reference them for the next
 * `limit` contacts of the source after *cursor (in key order) through the
 * incremental path, in the caller's transaction, and moves the cursor (kept
 * in cursor_cxt).  The other segments are not evaluated: passing time
 * changes nothing they read (a sweep of the one such segment among the
 * bench's 100, over 200,000 contacts, took 0.80 s evaluating all 100 and
 * takes 0.21 s so).  Returns how many contacts it read: 0 once past the last.
 * Sweeping in chunks, each in its own transaction, lets the worker apply
 * contact changes in between instead of after a long pass.
 */
int
TimeSweepChunk(Datum segment_ids, Datum *cursor, bool *has_cursor, int limit,
			   MemoryContext cursor_cxt)
{
	SegmentCatalog *cat = CatalogLoad(CurrentMemoryContext, false);
	const SegmentsConfig *config = &cat->config;
	Relation	source;
	StringInfoData sql;
	const char *keycol;
	const char *table;
	Oid			types[2];
	Datum		values[2];
	int			nargs = 0;
	int			n = 0;
	int16		len;
	bool		byval;
	char		align;
	MemoryContext old;

	if (!config->configured)
		return 0;
	source = table_open(config->source_relid, AccessShareLock);
	CatalogCheckSource(config, source);
	source_names(config, source, &keycol, &table);
	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT pg_catalog.array_agg(k ORDER BY k) FROM (SELECT %s AS k FROM %s"
					 " WHERE %s IS NOT NULL", keycol, table, keycol);
	if (*has_cursor)
	{
		appendStringInfo(&sql, " AND %s OPERATOR(pg_catalog.>) $%d", keycol, ++nargs);
		types[nargs - 1] = config->key_type;
		values[nargs - 1] = *cursor;
	}
	appendStringInfo(&sql, " ORDER BY 1 LIMIT $%d) chunk", ++nargs);
	types[nargs - 1] = INT4OID;
	values[nargs - 1] = Int32GetDatum(limit);
	table_close(source, NoLock);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(sql.data, nargs, types, values, NULL, true, 0) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not read the next contacts to sweep");
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
		{
			ArrayType  *keys = DatumGetArrayTypeP(d);
			Datum	   *elems;
			bool	   *nulls;

			get_typlenbyvalalign(config->key_type, &len, &byval, &align);
			deconstruct_array(keys, config->key_type, len, byval, align, &elems, &nulls, &n);
			if (n > 0)
			{
				Datum		last;

				ArrayType  *ids = DatumGetArrayTypeP(segment_ids);
				Datum	   *id_elems;
				int			nids;
				pg_uuid_t  *only;

				deconstruct_array(ids, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR,
								  &id_elems, NULL, &nids);
				only = palloc(Max(nids, 1) * sizeof(pg_uuid_t));
				for (int i = 0; i < nids; i++)
					only[i] = *DatumGetUUIDP(id_elems[i]);
				EvaluateContactsOf(keys, NULL, only, nids);
				old = MemoryContextSwitchTo(cursor_cxt);
				last = datumCopy(elems[n - 1], byval, len);
				MemoryContextSwitchTo(old);
				if (*has_cursor && !byval)
					pfree(DatumGetPointer(*cursor));
				*cursor = last;
				*has_cursor = true;
			}
		}
	}
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	return n;
}

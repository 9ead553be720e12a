/*-------------------------------------------------------------------------
 *
 * history.c
 *		Membership history and change feed.
 *
 * Every write of segments.member, whatever its path (the passes of
 * eval_pass.h, failing closed, configure(NULL), the worker's fail-safe),
 * fires segments._member_history(), an AFTER ... FOR EACH STATEMENT
 * trigger with transition tables: it decodes the old and new rows of the
 * statement, compares their segment numbers and records, for each contact
 * whose membership changed, the segments it entered and left in
 * segments.change_log, in the writer's transaction: one row per contact
 * for a few contacts, bulk rows of many contacts for a statement that
 * changes many (a pass writing every membership).  Dropped segments are
 * recorded by a trigger on segments.segment (sql/install/08_history.sql).
 *
 * Cost: a first pass writes every membership, and history must stay a
 * small part of it.  One change log row per contact (with its two index
 * entries) cost as much as the membership row itself, and allocating per
 * contact touched fresh memory for each statement; bulk rows and reused
 * buffers leave mostly the transition tables and the decoding.
 *
 * Commit order: change ids come from a sequence drawn while holding the
 * writers' lock (member_lock.c), which every writer of membership takes
 * (EvalPlanBuild, EvaluateFailClosed; the trigger takes it too, for any
 * other writer) and keeps until it commits.  So a transaction
 * that draws ids after another committed, and a reader that sees some
 * change sees every change with a smaller id.
 *
 *-------------------------------------------------------------------------
 */
#include "catalog.h"
#include "history.h"
#include "member_codec.h"
#include "member_lock.h"

#include "access/xact.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"
#include "utils/typcache.h"

#include <limits.h>

PG_FUNCTION_INFO_V1(segments_member_history);
PG_FUNCTION_INFO_V1(segments_history_on);
PG_FUNCTION_INFO_V1(segments_history_cause);
PG_FUNCTION_INFO_V1(segments_trim_history);
PG_FUNCTION_INFO_V1(segments_history_exit);

/* Contacts per INSERT into segments.change_log. */
#define HISTORY_FLUSH 4096

/*
 * A flush of at least HISTORY_BULK_MIN contacts (a pass writing many
 * memberships) is written as bulk rows of up to HISTORY_BULK_ROW contacts
 * each: their keys, tenants and changes in arrays, one change id per row,
 * the keys' range indexed for was_member().  One row (and its index
 * entries) per contact cost as much as writing the membership itself.
 */
#define HISTORY_BULK_MIN 64
#define HISTORY_BULK_ROW 256

/* Settings; see README.md, Membership history. */
bool		segments_history = true;
int			segments_history_retention = 90 * 24 * 3600;	/* seconds */
static bool segments_history_notify = false;

/*
 * The buffer's arrays (140 kB) are allocated once per session: the worker
 * fires the trigger once per batch of a few contacts, and allocating and
 * zeroing them each time (fresh pages from the kernel) cost more than the
 * batch's recording.  Busy while a trigger uses them; a trigger fired then
 * (none is: the trigger writes only the change log) gets its own.
 */
static bool history_arrays_busy = false;

/* Why membership is being written in this transaction (history.h). */
static char history_cause = HISTORY_CAUSE_NONE;

/* The cause lasts until the end of the transaction that set it. */
static void
history_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			history_cause = HISTORY_CAUSE_NONE;
			history_arrays_busy = false;	/* a trigger's error left them */
			break;
		default:
			break;
	}
}

/* Defines the settings; called by _PG_init. */
void
HistoryInit(void)
{
	DefineCustomBoolVariable("segments.history",
							 "Records every membership entry and exit in segments.membership_changes.",
							 "Off: membership changes are not recorded (the feed and point-in-time "
							 "reads then miss them).",
							 &segments_history,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("segments.history_retention",
							"How long recorded membership changes are kept.",
							"The worker deletes older changes in small batches; 0 or -1 keeps "
							"them forever.",
							&segments_history_retention,
							90 * 24 * 3600, -1, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("segments.history_notify",
							 "Sends a NOTIFY on channel segments_<segment id> when a segment's membership changes.",
							 "One notification per segment and transaction, with an empty payload.",
							 &segments_history_notify,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	RegisterXactCallback(history_xact_callback, NULL);
}

/* Sets the cause of this transaction's membership changes; returns the previous one. */
char
HistorySetCause(char cause)
{
	char		prev = history_cause;

	history_cause = cause;
	return prev;
}

/* Sets the cause unless a caller (configure(), the worker) already did. */
void
HistoryDefaultCause(char cause)
{
	if (history_cause == HISTORY_CAUSE_NONE)
		history_cause = cause;
}

/*
 * Changes of one statement, waiting for their INSERT: one row per contact
 * whose membership changed, with the segments it entered and those it
 * left (and since when it had been in them), each in the compact form of
 * stored membership (member_codec.c): a contact entering 20 segments at
 * once costs one row of about 100 bytes, not 20.
 */
typedef struct HistoryArrays
{
	Datum		keys[HISTORY_FLUSH];
	Datum		tenants[HISTORY_FLUSH];
	bool		tenant_nulls[HISTORY_FLUSH];
	Datum		entered[HISTORY_FLUSH];
	bool		entered_nulls[HISTORY_FLUSH];
	Datum		exited[HISTORY_FLUSH];
	bool		exited_nulls[HISTORY_FLUSH];
} HistoryArrays;

/* The arrays of the buffer below, allocated once per session (history_arrays). */
static HistoryArrays *history_arrays = NULL;

typedef struct HistoryBuffer
{
	MemoryContext cxt;
	int			n;
	struct HistoryArrays *a;	/* the contacts' columns (below) */
	Oid			key_type;
	int16		key_len;
	bool		key_byval;
	char		key_align;
	SPIPlanPtr	insert;
	SPIPlanPtr	insert_bulk;
	FmgrInfo   *key_cmp;		/* the key type's btree order */
	MemoryContext scratch;		/* encoding one contact, reset after it */
	/* one contact's entries and exits, reused (no allocation per contact) */
	int			scratch_len;
	int32	   *ent;
	int32	   *ent_since;
	int32	   *ex;
	int32	   *ex_since;
	bool	   *touched;		/* by segment number: changed (NOTIFY) */
	bool		own_rows;		/* a DELETE: a row per contact (see below) */
	/* the segments that exist, by number (see segment_exists) */
	MemoryContext segs_cxt;
	int32		max_num;		/* exists[], ids[] and touched[] hold 0..max_num */
	bool	   *exists;
	pg_uuid_t  *ids;
	bool		reread;			/* the catalog was read again (once at most) */
} HistoryBuffer;

/* A zeroed array of n elements of size elem, starting with the was_n of was (if any). */
static void *
grown_copy(const void *was, int32 was_n, int32 n, Size elem)
{
	char	   *now = palloc0((Size) n * elem);

	if (was != NULL)
		memcpy(now, was, (Size) was_n * elem);
	return now;
}

/*
 * Reads which segments exist into buf, from cat, or (cat NULL) from the
 * catalog as committed now.  The arrays never shrink: a reread may lack
 * the highest number the first read had (a drop whose invalidation had
 * not arrived), and touched[] may already hold it.
 */
static void
segments_read(HistoryBuffer *buf, const SegmentCatalog *cat)
{
	MemoryContext old = MemoryContextSwitchTo(buf->segs_cxt);
	int32		max_num = buf->max_num;
	bool		latest;			/* (not needed: once is enough either way) */

	if (cat == NULL)
		cat = CatalogLoadLatest(buf->segs_cxt, &latest);
	for (int i = 0; i < cat->nsegments; i++)
		max_num = Max(max_num, cat->segments[i].num);
	buf->exists = palloc0((max_num + 1) * sizeof(bool));
	/* ids read before stay: touched[] may name a number the reread lacks */
	buf->ids = grown_copy(buf->ids, buf->max_num + 1, max_num + 1, sizeof(pg_uuid_t));
	for (int i = 0; i < cat->nsegments; i++)
	{
		buf->exists[cat->segments[i].num] = true;
		buf->ids[cat->segments[i].num] = cat->segments[i].id;
	}
	if (buf->touched != NULL && max_num > buf->max_num)
		buf->touched = grown_copy(buf->touched, buf->max_num + 1, max_num + 1, sizeof(bool));
	buf->max_num = max_num;
	MemoryContextSwitchTo(old);
}

/*
 * Is num a segment's, not a dropped one's?  The numbers come from the
 * cached catalog (CatalogGet); one it does not know is looked up once more
 * in the catalog as committed now, as the cache may be older than the
 * writer's rows: a segment whose commit the writer saw may not have sent
 * its invalidation yet.  Numbers are never reused, so one not found then
 * is a dropped segment's.  At most one reload per statement (passes that
 * strip dropped numbers, rare).
 */
static inline bool
segment_exists(HistoryBuffer *buf, int32 num)
{
	if (num >= 0 && num <= buf->max_num && buf->exists[num])
		return true;
	if (num < 0 || buf->reread)
		return false;
	buf->reread = true;
	segments_read(buf, NULL);
	return num <= buf->max_num && buf->exists[num];
}

/* A one-dimensional array of n datums of a type, with nulls (or none: NULL). */
static Datum
make_array(Datum *values, bool *nulls, int n, Oid type, int16 len, bool byval, char align)
{
	int			dims[1] = {n};
	int			lbs[1] = {1};

	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs, type, len, byval, align));
}

/* Compares two keys in the key type's btree order (default collation). */
static int
key_compare(HistoryBuffer *buf, Datum a, Datum b)
{
	return DatumGetInt32(FunctionCall2Coll(buf->key_cmp, DEFAULT_COLLATION_OID, a, b));
}

/* One bulk row of the buffered contacts from..to-1 (bulk rows: see HISTORY_BULK_MIN). */
static void
buffer_flush_bulk(HistoryBuffer *buf, int from, int to, char cause)
{
	Datum		values[7];
	Datum		lo = buf->a->keys[from];
	Datum		hi = buf->a->keys[from];
	int			n = to - from;

	for (int i = from + 1; i < to; i++)
	{
		if (key_compare(buf, buf->a->keys[i], lo) < 0)
			lo = buf->a->keys[i];
		if (key_compare(buf, buf->a->keys[i], hi) > 0)
			hi = buf->a->keys[i];
	}
	values[0] = make_array(buf->a->keys + from, NULL, n, buf->key_type, buf->key_len,
						   buf->key_byval, buf->key_align);
	values[1] = make_array(buf->a->tenants + from, buf->a->tenant_nulls + from, n, TEXTOID, -1, false,
						   TYPALIGN_INT);
	values[2] = make_array(buf->a->entered + from, buf->a->entered_nulls + from, n, BYTEAOID, -1, false,
						   TYPALIGN_INT);
	values[3] = make_array(buf->a->exited + from, buf->a->exited_nulls + from, n, BYTEAOID, -1, false,
						   TYPALIGN_INT);
	values[4] = CharGetDatum(cause);
	values[5] = lo;
	values[6] = hi;
	if (SPI_execute_plan(buf->insert_bulk, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record membership changes in segments.change_log");
}

/*
 * Writes the buffered contacts: one row each, numbered in the order
 * recorded, or bulk rows when there are many.
 */
static void
buffer_flush(HistoryBuffer *buf)
{
	Datum		values[5];
	char		cause = history_cause != HISTORY_CAUSE_NONE ? history_cause : 'o';
	MemoryContext old;

	if (buf->n == 0)
		return;
	old = MemoryContextSwitchTo(buf->cxt);
	if (buf->n >= HISTORY_BULK_MIN && !buf->own_rows)
	{
		for (int from = 0; from < buf->n; from += HISTORY_BULK_ROW)
			buffer_flush_bulk(buf, from, Min(from + HISTORY_BULK_ROW, buf->n), cause);
		MemoryContextSwitchTo(old);
		MemoryContextReset(buf->cxt);
		buf->n = 0;
		return;
	}
	values[0] = make_array(buf->a->keys, NULL, buf->n, buf->key_type, buf->key_len, buf->key_byval,
						   buf->key_align);
	values[1] = make_array(buf->a->tenants, buf->a->tenant_nulls, buf->n, TEXTOID, -1, false, TYPALIGN_INT);
	values[2] = make_array(buf->a->entered, buf->a->entered_nulls, buf->n, BYTEAOID, -1, false, TYPALIGN_INT);
	values[3] = make_array(buf->a->exited, buf->a->exited_nulls, buf->n, BYTEAOID, -1, false, TYPALIGN_INT);
	values[4] = CharGetDatum(cause);
	MemoryContextSwitchTo(old);
	if (SPI_execute_plan(buf->insert, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record membership changes in segments.change_log");
	/* keys and the rest were copied into the buffer's context */
	MemoryContextReset(buf->cxt);
	buf->n = 0;
}

/*
 * The compact form of n numbers and their since, in the buffer's context
 * at its exact size (MemberEncode allocates for the worst case).
 */
static Datum
encode_copy(HistoryBuffer *buf, const int32 *nums, const int32 *since, int n)
{
	MemoryContext old = MemoryContextSwitchTo(buf->scratch);
	bytea	   *enc = MemberEncode(nums, since, n);
	bytea	   *copy = MemoryContextAlloc(buf->cxt, VARSIZE(enc));

	memcpy(copy, enc, VARSIZE(enc));
	MemoryContextSwitchTo(old);
	MemoryContextReset(buf->scratch);
	return PointerGetDatum(copy);
}

/*
 * Records one contact's changes: the numbers of existing segments in new
 * and not in old (entered), in old and not in new (exited, with their
 * since); both lists sorted.  Numbers of a dropped segment leave stored
 * rows later; its exits were recorded when it was dropped.
 */
static void
buffer_add(HistoryBuffer *buf, Datum key,
		   const int32 *old_nums, const int32 *old_since, int nold,
		   const int32 *new_nums, int nnew, Datum tenant, bool tenant_null)
{
	MemoryContext old;
	int32	   *ent;
	int32	   *ent_since;
	int32	   *ex;
	int32	   *ex_since;
	int			nent = 0,
				nex = 0,
				i = 0,
				j = 0;

	if (Max(nold, nnew) > buf->scratch_len)
	{
		/* in the trigger's context, which outlives the buffer's resets */
		int			len = Max(Max(nold, nnew), 2 * buf->scratch_len);

		buf->ent = repalloc(buf->ent, len * sizeof(int32));
		buf->ent_since = repalloc(buf->ent_since, len * sizeof(int32));
		buf->ex = repalloc(buf->ex, len * sizeof(int32));
		buf->ex_since = repalloc(buf->ex_since, len * sizeof(int32));
		buf->scratch_len = len;
	}
	ent = buf->ent;
	ent_since = buf->ent_since;
	ex = buf->ex;
	ex_since = buf->ex_since;

	while (i < nold || j < nnew)
	{
		if (j >= nnew || (i < nold && old_nums[i] < new_nums[j]))
		{
			if (segment_exists(buf, old_nums[i]))
			{
				ex_since[nex] = old_since[i];
				ex[nex++] = old_nums[i];
			}
			i++;
		}
		else if (i >= nold || new_nums[j] < old_nums[i])
		{
			if (segment_exists(buf, new_nums[j]))
			{
				ent_since[nent] = 0;
				ent[nent++] = new_nums[j];
			}
			j++;
		}
		else
		{
			i++;
			j++;
		}
	}
	if (nent == 0 && nex == 0 && !buf->own_rows)
		return;
	old = MemoryContextSwitchTo(buf->cxt);
	buf->a->keys[buf->n] = datumCopy(key, buf->key_byval, buf->key_len);
	buf->a->tenant_nulls[buf->n] = tenant_null;
	buf->a->tenants[buf->n] = tenant_null ? (Datum) 0 : datumCopy(tenant, false, -1);
	buf->a->entered_nulls[buf->n] = (nent == 0);
	buf->a->entered[buf->n] = nent == 0 ? (Datum) 0 : encode_copy(buf, ent, ent_since, nent);
	buf->a->exited_nulls[buf->n] = (nex == 0);
	buf->a->exited[buf->n] = nex == 0 ? (Datum) 0 : encode_copy(buf, ex, ex_since, nex);
	buf->n++;
	if (buf->touched != NULL)
	{
		for (int k = 0; k < nent; k++)
			buf->touched[ent[k]] = true;
		for (int k = 0; k < nex; k++)
			buf->touched[ex[k]] = true;
	}
	MemoryContextSwitchTo(old);
	if (buf->n == HISTORY_FLUSH)
		buffer_flush(buf);
}

/*
 * The two inserts into segments.change_log, prepared once per session and
 * change log (and key type): the worker fires the trigger once per batch,
 * often of a few contacts, and parsing and planning both statements each
 * time cost more than recording the changes.  The plan cache replans them
 * after DDL on the table; a new change log (configure()) is a new relid.
 */
static SPIPlanPtr cached_insert = NULL;
static SPIPlanPtr cached_insert_bulk = NULL;
static Oid	cached_log_relid = InvalidOid;
static Oid	cached_key_type = InvalidOid;

static void
prepare_inserts(HistoryBuffer *buf)
{
	Oid			log_relid = CatalogRelid("change_log", false);
	Oid			types[7];
	SPIPlanPtr	insert;
	SPIPlanPtr	insert_bulk;

	if (cached_insert != NULL && cached_log_relid == log_relid &&
		cached_key_type == buf->key_type)
	{
		buf->insert = cached_insert;
		buf->insert_bulk = cached_insert_bulk;
		return;
	}
	if (cached_insert != NULL)
	{
		SPIPlanPtr	old_insert = cached_insert;
		SPIPlanPtr	old_bulk = cached_insert_bulk;

		cached_insert = cached_insert_bulk = NULL;
		SPI_freeplan(old_insert);
		SPI_freeplan(old_bulk);
	}
	types[0] = get_array_type(buf->key_type);
	types[1] = TEXTARRAYOID;
	types[2] = BYTEAARRAYOID;
	types[3] = BYTEAARRAYOID;
	types[4] = CHAROID;
	insert = SPI_prepare("INSERT INTO segments.change_log"
						 " (at, cause, contact_id, tenant, entered, exited)"
						 " SELECT pg_catalog.now(), $5, u.k, u.t, u.e, u.x"
						 "   FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
						 "                   pg_catalog.unnest($3), pg_catalog.unnest($4))"
						 "        AS u(k, t, e, x)",
						 5, types);
	types[5] = buf->key_type;
	types[6] = buf->key_type;
	insert_bulk = SPI_prepare("INSERT INTO segments.change_log"
							  " (at, cause, contact_lo, contact_hi, contacts, tenants, entereds, exiteds)"
							  " VALUES (pg_catalog.now(), $5, $6, $7, $1, $2, $3, $4)",
							  7, types);
	if (insert == NULL || insert_bulk == NULL)
		elog(ERROR, "could not prepare the insert into segments.change_log: %s",
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(insert) != 0 || SPI_keepplan(insert_bulk) != 0)
		elog(ERROR, "could not keep the insert into segments.change_log");
	cached_insert = buf->insert = insert;
	cached_insert_bulk = buf->insert_bulk = insert_bulk;
	cached_log_relid = log_relid;
	cached_key_type = buf->key_type;
}

/* The next row of a transition table: its key, numbers and tenant. */
static bool
next_row(Tuplestorestate *ts, TupleTableSlot *slot, Datum *key, int32 **nums, int32 **since,
		 int *n, Datum *tenant, bool *tenant_null)
{
	bool		isnull;

	if (ts == NULL || !tuplestore_gettupleslot(ts, true, false, slot))
		return false;
	*key = slot_getattr(slot, MEMBER_ATTNUM_KEY, &isnull);
	*n = MemberDecode(DatumGetByteaPP(slot_getattr(slot, MEMBER_ATTNUM_DATA, &isnull)),
					  nums, since);
	*tenant_null = true;
	*tenant = (Datum) 0;
	if (slot->tts_tupleDescriptor->natts >= MEMBER_ATTNUM_TENANT)
		*tenant = slot_getattr(slot, MEMBER_ATTNUM_TENANT, tenant_null);
	return true;
}

/*
 * segments._member_history(): AFTER INSERT / UPDATE / DELETE ... FOR EACH
 * STATEMENT on segments.member, REFERENCING the transition tables.  The
 * rows of an UPDATE's old and new tables come in the same order, pair by
 * pair (PostgreSQL appends both for each row); the keys are checked.
 */
Datum
segments_member_history(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Tuplestorestate *olds;
	Tuplestorestate *news;
	Relation	rel;
	TupleDesc	desc;
	HistoryBuffer *buf;
	TupleTableSlot *oslot;
	TupleTableSlot *nslot;
	MemoryContext trig_cxt;
	MemoryContext row_cxt;
	MemoryContext old;
	TypeCacheEntry *typentry;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(td->tg_event))
		elog(ERROR, "segments._member_history() must be fired AFTER ... FOR EACH STATEMENT");
	if (!segments_history)
		return PointerGetDatum(NULL);
	olds = td->tg_oldtable;
	news = td->tg_newtable;
	if (olds == NULL && news == NULL)
		return PointerGetDatum(NULL);
	rel = td->tg_relation;
	desc = RelationGetDescr(rel);

	/* ids in commit order: see the banner (a no-op for the passes) */
	MemberLockWriters(RelationGetRelid(rel));

	trig_cxt = AllocSetContextCreate(CurrentMemoryContext, "segments history",
									 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(trig_cxt);
	row_cxt = AllocSetContextCreate(trig_cxt, "segments history row", ALLOCSET_SMALL_SIZES);

	buf = palloc0(sizeof(HistoryBuffer));
	/* copied: the cached catalog may be rebuilt by what SPI does below */
	buf->segs_cxt = trig_cxt;
	segments_read(buf, CatalogGet());
	if (history_arrays == NULL)
		history_arrays = MemoryContextAlloc(TopMemoryContext, sizeof(HistoryArrays));
	if (history_arrays_busy)
		buf->a = palloc(sizeof(HistoryArrays));
	else
	{
		buf->a = history_arrays;
		history_arrays_busy = true;
	}

	/*
	 * A contact leaving membership storage gets a row of its own, with no
	 * change if it left only dropped segments: membership_history finds
	 * the bulk rows of a contact through the contacts with stored
	 * membership or a row of their own (sql/install/08_history.sql).
	 * Deletions are rare next to entries, and small.
	 */
	buf->own_rows = (news == NULL);
	buf->cxt = AllocSetContextCreate(trig_cxt, "segments history buffer",
									 0, 1024 * 1024, ALLOCSET_DEFAULT_MAXSIZE);
	buf->key_type = TupleDescAttr(desc, MEMBER_ATTNUM_KEY - 1)->atttypid;
	get_typlenbyvalalign(buf->key_type, &buf->key_len, &buf->key_byval, &buf->key_align);
	if (segments_history_notify)
		buf->touched = palloc0((buf->max_num + 1) * sizeof(bool));
	buf->scratch = AllocSetContextCreate(trig_cxt, "segments history scratch",
										 ALLOCSET_SMALL_SIZES);
	buf->scratch_len = 64;
	buf->ent = palloc(buf->scratch_len * sizeof(int32));
	buf->ent_since = palloc(buf->scratch_len * sizeof(int32));
	buf->ex = palloc(buf->scratch_len * sizeof(int32));
	buf->ex_since = palloc(buf->scratch_len * sizeof(int32));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	prepare_inserts(buf);
	typentry = lookup_type_cache(buf->key_type, TYPECACHE_CMP_PROC_FINFO);
	if (!OidIsValid(typentry->cmp_proc_finfo.fn_oid))
		elog(ERROR, "the contact key type %s has no btree order", format_type_be(buf->key_type));
	buf->key_cmp = &typentry->cmp_proc_finfo;

	oslot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	nslot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	if (olds != NULL)
	{
		tuplestore_select_read_pointer(olds, 0);
		tuplestore_rescan(olds);
	}
	if (news != NULL)
	{
		tuplestore_select_read_pointer(news, 0);
		tuplestore_rescan(news);
	}
	for (;;)
	{
		Datum		okey = (Datum) 0,
					nkey = (Datum) 0,
					otenant = (Datum) 0,
					ntenant = (Datum) 0;
		int32	   *onums = NULL,
				   *nnums = NULL,
				   *osince = NULL,
				   *nsince = NULL;
		int			nold = 0,
					nnew = 0;
		bool		otenant_null = true,
					ntenant_null = true;
		bool		have_old,
					have_new;

		CHECK_FOR_INTERRUPTS();
		MemoryContextSwitchTo(row_cxt);
		have_old = next_row(olds, oslot, &okey, &onums, &osince, &nold, &otenant, &otenant_null);
		have_new = next_row(news, nslot, &nkey, &nnums, &nsince, &nnew, &ntenant, &ntenant_null);
		MemoryContextSwitchTo(trig_cxt);
		if (!have_old && !have_new)
			break;
		if (olds != NULL && news != NULL &&
			(have_old != have_new ||
			 !datumIsEqual(okey, nkey, buf->key_byval, buf->key_len)))
			elog(ERROR, "the transition tables of segments.member do not pair up");
		/* the contact's tenant now, or when it left */
		buffer_add(buf, have_old ? okey : nkey,
				   onums, osince, nold, nnums, nnew,
				   have_new ? ntenant : otenant, have_new ? ntenant_null : otenant_null);
		MemoryContextReset(row_cxt);
	}
	buffer_flush(buf);
	ExecDropSingleTupleTableSlot(oslot);
	ExecDropSingleTupleTableSlot(nslot);

	/* one notification per segment (PostgreSQL folds repeats in a transaction) */
	if (buf->touched != NULL)
	{
		Datum	   *changed = palloc((buf->max_num + 1) * sizeof(Datum));
		int			nchanged = 0;
		Oid			uuid_array = UUIDARRAYOID;
		Datum		arg;

		for (int32 num = 0; num <= buf->max_num; num++)
		{
			if (buf->touched[num])
				changed[nchanged++] = UUIDPGetDatum(&buf->ids[num]);
		}
		if (nchanged > 0)
		{
			arg = PointerGetDatum(construct_array(changed, nchanged, UUIDOID, UUID_LEN,
												  false, TYPALIGN_CHAR));
			if (SPI_execute_with_args("SELECT pg_catalog.pg_notify('segments_'"
									  " OPERATOR(pg_catalog.||) u::pg_catalog.text, '')"
									  " FROM pg_catalog.unnest($1) AS u",
									  1, &uuid_array, &arg, NULL, false, 0) != SPI_OK_SELECT)
				elog(ERROR, "could not notify membership changes");
		}
	}
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	if (buf->a == history_arrays)
		history_arrays_busy = false;
	MemoryContextSwitchTo(old);
	MemoryContextDelete(trig_cxt);
	return PointerGetDatum(NULL);
}

/*
 * segments._history_exit(data bytea, num integer) RETURNS bytea: the exit
 * of a stored membership from one segment, in the change log's form (the
 * number and since when), or NULL if data does not hold it.  For
 * drop_segment().
 */
Datum
segments_history_exit(PG_FUNCTION_ARGS)
{
	int32	   *nums;
	int32	   *since;
	int32		num = PG_GETARG_INT32(1);
	int			n = MemberDecode(PG_GETARG_BYTEA_PP(0), &nums, &since);

	for (int i = 0; i < n; i++)
	{
		if (nums[i] == num)
			PG_RETURN_BYTEA_P(MemberEncode(&nums[i], &since[i], 1));
	}
	PG_RETURN_NULL();
}

/* segments._history_on() RETURNS boolean: segments.history, with the library loaded. */
Datum
segments_history_on(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(segments_history);
}

/*
 * segments._history_cause(cause text) RETURNS void: the cause recorded
 * for this transaction's membership changes (configure() sets it).
 */
Datum
segments_history_cause(PG_FUNCTION_ARGS)
{
	char	   *cause = text_to_cstring(PG_GETARG_TEXT_PP(0));

	if (strcmp(cause, "configure") == 0)
		HistorySetCause(HISTORY_CAUSE_CONFIGURE);
	else if (strcmp(cause, "dropped") == 0)
		HistorySetCause(HISTORY_CAUSE_DROPPED);
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown membership change cause \"%s\"", cause)));
	PG_RETURN_VOID();
}

/*
 * Deletes up to `limit` recorded changes older than
 * segments.history_retention, oldest ids first (ids follow commit order,
 * so nearly time order: only the first `limit` ids are looked at, and a
 * call costs the same however long the history).  Then forgets dropped
 * segments none of whose changes remain.  In the caller's transaction;
 * returns the number of changes deleted.
 */
int64
HistoryTrim(int limit)
{
	Oid			types[2] = {INTERVALOID, INT4OID};
	Datum		values[2];
	Interval   *keep = palloc0(sizeof(Interval));
	int64		deleted;

	if (segments_history_retention <= 0 || !OidIsValid(CatalogRelid("change_log", true)))
		return 0;
	keep->time = (int64) segments_history_retention * USECS_PER_SEC;
	values[0] = IntervalPGetDatum(keep);
	values[1] = Int32GetDatum(limit);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("DELETE FROM segments.change_log"
							  " WHERE change_id OPERATOR(pg_catalog.=) ANY (ARRAY("
							  "   SELECT f.change_id FROM (SELECT c.change_id, c.at"
							  "                              FROM segments.change_log c"
							  "                             ORDER BY c.change_id LIMIT $2) f"
							  "    WHERE f.at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) $1)))",
							  2, types, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not trim segments.change_log");
	deleted = (int64) SPI_processed;
	/* changes of a dropped segment are all before its drop: older ones are gone */
	if (SPI_execute_with_args("DELETE FROM segments.dropped_segment d"
							  " WHERE d.dropped_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) $1)"
							  "   AND NOT EXISTS (SELECT 1 FROM segments.change_log c"
							  "                    WHERE c.at OPERATOR(pg_catalog.<=) d.dropped_at)",
							  1, types, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not trim segments.dropped_segment");
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	return deleted;
}

/*
 * segments.trim_history(max integer DEFAULT 10000) RETURNS bigint: one
 * batch of the worker's trimming, for databases served by no worker (a
 * schedule of pg_cron, say).
 */
Datum
segments_trim_history(PG_FUNCTION_ARGS)
{
	int32		limit = PG_ARGISNULL(0) ? 10000 : PG_GETARG_INT32(0);

	if (limit <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max must be positive, not %d", limit)));
	PG_RETURN_INT64(HistoryTrim(limit));
}

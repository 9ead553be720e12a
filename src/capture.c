/*-------------------------------------------------------------------------
 *
 * capture.c
 *		Change capture: the trigger on the contact source that queues the
 *		keys of changed contacts for the worker, and the event trigger that
 *		removes it before DROP EXTENSION.
 *
 * segments._capture() is an AFTER row trigger (INSERT, UPDATE, DELETE; COPY
 * fires it too) and an AFTER TRUNCATE statement trigger.  It adds the key
 * to the transaction's set in backend memory.  When the transaction
 * commits, a small set of short keys is handed to the worker through its
 * database's shared-memory ring (capture_ring.c: slots reserved at
 * PRE_COMMIT, published at COMMIT, voided at ABORT); any other set (or no
 * ring open, or a full one) is inserted into segments.change_queue
 * directly (heap and index, no SQL), inside the transaction: a rollback
 * queues nothing, a commit through the table is as durable as the change
 * itself, and one through the ring costs a full pass after a crash
 * (worker.c, segments.capture_state).  An UPDATE is queued only when a column
 * some rule reads changed: the key, the tenant column, the traits column
 * when a rule reads traits, and every column named by an attribute
 * condition.  That set is cached per backend and dropped on a relcache
 * invalidation of segments.segment or segments.config (their statement
 * triggers send one), of the source, or of the queue.
 *
 * Without the preload no worker would drain the queue: a writing
 * transaction queues one whole-source entry instead of its keys (see
 * mark_gap), which a full segments.refresh() clears.
 *
 * Writing contacts needs no privilege from the extension: the catalog is
 * read as the extension's owner (a security-restricted operation with
 * search_path pinned, every name qualified), and the queue is written
 * directly.  Nothing of the writer's runs with those rights.
 *
 *-------------------------------------------------------------------------
 */
#include "capture_ring.h"
#include "catalog.h"
#include "citus.h"
#include "privilege.h"
#include "worker.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "nodes/execnodes.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

PG_FUNCTION_INFO_V1(segments_capture);
PG_FUNCTION_INFO_V1(segments_capture_drop);

/* The source (or one of its partitions) as the trigger sees it. */
typedef struct CaptureRel
{
	Oid			relid;			/* hash key */
	bool		is_source;		/* false: not (a partition of) the source */
	AttrNumber	key_attnum;
	FmgrInfo	key_out;
	int			nwatched;		/* columns compared on UPDATE, key included */
	AttrNumber *watched;
	int16	   *typlen;
	bool	   *typbyval;
} CaptureRel;

/* What every relation's entry is built from. */
typedef struct CaptureState
{
	bool		valid;
	Oid			segment_relid;
	Oid			config_relid;
	Oid			queue_relid;
	Oid			queue_pkey;
	Oid			queue_seq;
	Oid			source_relid;	/* InvalidOid: not configured */
	char	   *key_column;
	int			ncolumns;		/* watched column names, key excluded */
	char	  **columns;
	HTAB	   *rels;
} CaptureState;

static CaptureState capture = {false};
static MemoryContext capture_cxt = NULL;
static uint64 capture_generation = 0;

/* Relcache callback: forget the cached column set when it may be stale. */
static void
capture_invalidate(Datum arg, Oid relid)
{
	bool		found = false;

	if (!capture.valid)
		return;
	if (relid == InvalidOid || relid == capture.segment_relid ||
		relid == capture.config_relid || relid == capture.queue_relid ||
		relid == capture.source_relid)
		found = true;
	else if (capture.rels != NULL)
		(void) hash_search(capture.rels, &relid, HASH_FIND, &found);
	if (found)
	{
		capture.valid = false;
		capture_generation++;
	}
}

/* Registers the invalidation callback; called once from _PG_init. */
void
CaptureInitCallbacks(void)
{
	CacheRegisterRelcacheCallback(capture_invalidate, (Datum) 0);
}

/* Text of column n of the SPI result row, in capture_cxt; NULL if null. */
static char *
spi_text(int row, int col)
{
	char	   *s = SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);

	return s ? MemoryContextStrdup(capture_cxt, s) : NULL;
}

/*
 * Reads the configuration and the columns the rules read into capture
 * (names in capture_cxt), through SPI.  Run as the owner
 * (PrivilegeRunAsOwner(), arg unused).
 */
static void
capture_read_catalog(void *arg)
{
	bool		traits_used;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/*
	 * The newest definitions, whatever this transaction's snapshot: a
	 * REPEATABLE READ writer whose snapshot predates a new definition must
	 * still capture the columns it reads (see writers.c).
	 */
	PushActiveSnapshot(GetLatestSnapshot());
	if (SPI_execute("SELECT c.source::pg_catalog.oid, c.key_column, c.tenant_column, c.traits_column,"
					"       EXISTS (SELECT 1 FROM segments.segment s"
					"                WHERE s.definition OPERATOR(pg_catalog.@?)"
					"                      '$.** ? (@.type == \"trait\")')"
					"  FROM segments.config c", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read segments.config");
	if (SPI_processed == 1)
	{
		char	   *tenant = spi_text(0, 3);
		char	   *traits = spi_text(0, 4);
		bool		isnull;
		uint64		nfields;

		capture.source_relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
															  SPI_tuptable->tupdesc, 1, &isnull));
		capture.key_column = spi_text(0, 2);
		traits_used = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc, 5, &isnull));

		if (SPI_execute("SELECT DISTINCT f OPERATOR(pg_catalog.#>>) '{}'"
						"  FROM segments.segment s,"
						"       pg_catalog.jsonb_path_query(s.definition,"
						"         '$.** ? (@.type == \"attribute\").field ? (@.type() == \"string\")') f",
						true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read segment definitions");
		nfields = SPI_processed;
		capture.columns = MemoryContextAlloc(capture_cxt, (nfields + 2) * sizeof(char *));
		for (uint64 i = 0; i < nfields; i++)
			capture.columns[capture.ncolumns++] = spi_text(i, 1);
		if (tenant != NULL)
			capture.columns[capture.ncolumns++] = tenant;
		if (traits != NULL && traits_used)
			capture.columns[capture.ncolumns++] = traits;
	}
	PopActiveSnapshot();
	SPI_finish();
}

/*
 * Reloads the configuration and the names of the columns the rules read.
 * Attribute fields are found with a JSON path over every definition
 * ("type": "attribute" objects at any depth); a name that is no column
 * is ignored.
 */
static void
capture_load(void)
{
	uint64		generation = capture_generation;
	HASHCTL		ctl;

	if (capture_cxt == NULL)
		capture_cxt = AllocSetContextCreate(CacheMemoryContext, "segments capture",
											ALLOCSET_SMALL_SIZES);
	capture.rels = NULL;
	MemoryContextReset(capture_cxt);

	capture.segment_relid = CatalogRelid("segment", false);
	capture.config_relid = CatalogRelid("config", false);
	capture.queue_relid = CatalogRelid("change_queue", false);
	capture.queue_pkey = CatalogRelid("change_queue_pkey", false);
	capture.queue_seq = CatalogRelid("change_queue_id_seq", false);
	capture.source_relid = InvalidOid;
	capture.ncolumns = 0;

	/* the writer may have no privilege on schema segments: read as the owner */
	PrivilegeRunAsOwner(SECURITY_RESTRICTED_OPERATION, capture_read_catalog, NULL);

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(CaptureRel);
	ctl.hcxt = capture_cxt;
	capture.rels = hash_create("segments capture relations", 8, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	/* an invalidation that arrived meanwhile leaves the cache invalid */
	capture.valid = (generation == capture_generation);
}

/* The cached description of a relation the trigger fired on. */
static CaptureRel *
capture_rel(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	CaptureRel *cr;
	bool		found;
	MemoryContext old;
	TupleDesc	desc = RelationGetDescr(rel);

	if (!capture.valid || capture.rels == NULL)
		capture_load();
	cr = hash_search(capture.rels, &relid, HASH_ENTER, &found);
	if (found)
		return cr;

	old = MemoryContextSwitchTo(capture_cxt);
	cr->is_source = false;
	cr->nwatched = 0;
	if (OidIsValid(capture.source_relid) &&
		(relid == capture.source_relid ||
		 (rel->rd_rel->relispartition &&
		  list_member_oid(get_partition_ancestors(relid), capture.source_relid)) ||
		 CitusIsShardOf(rel, capture.source_relid)))	/* Citus: fires on shards */
	{
		cr->key_attnum = get_attnum(relid, capture.key_column);
		cr->is_source = (cr->key_attnum > 0);
	}
	if (cr->is_source)
	{
		Oid			outfunc;
		bool		isvarlena;

		getTypeOutputInfo(TupleDescAttr(desc, cr->key_attnum - 1)->atttypid,
						  &outfunc, &isvarlena);
		fmgr_info_cxt(outfunc, &cr->key_out, capture_cxt);
		cr->watched = palloc((capture.ncolumns + 1) * sizeof(AttrNumber));
		cr->typlen = palloc((capture.ncolumns + 1) * sizeof(int16));
		cr->typbyval = palloc((capture.ncolumns + 1) * sizeof(bool));
		cr->watched[cr->nwatched++] = cr->key_attnum;
		for (int i = 0; i < capture.ncolumns; i++)
		{
			AttrNumber	attnum = get_attnum(relid, capture.columns[i]);
			bool		dup = false;

			if (attnum <= 0)
				continue;
			for (int j = 0; j < cr->nwatched; j++)
				dup |= (cr->watched[j] == attnum);
			if (!dup)
				cr->watched[cr->nwatched++] = attnum;
		}
		for (int j = 0; j < cr->nwatched; j++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, cr->watched[j] - 1);

			cr->typlen[j] = att->attlen;
			cr->typbyval[j] = att->attbyval;
		}
	}
	MemoryContextSwitchTo(old);
	return cr;
}

/*
 * The keys a transaction changed are kept in backend memory until it
 * commits, and written then in one go (XACT_EVENT_PRE_COMMIT, or
 * PRE_PREPARE): a contact changed many times is queued once, and the
 * queue is opened once per transaction, not once per row.  A rolled-back
 * transaction writes nothing.  A rolled-back subtransaction leaves its
 * keys in the set: evaluating a contact that did not change is harmless.
 * Past CAPTURE_FLUSH_KEYS keys the set is written early (memory stays
 * bounded); if the subtransaction that wrote them then rolls back, they
 * are gone with it, and the commit queues a whole-source entry instead.
 */
#define CAPTURE_FLUSH_KEYS	10000
#define CAPTURE_SHORT_KEY	64	/* keys shorter than this are deduplicated */

typedef struct PendingKey
{
	char		key[CAPTURE_SHORT_KEY];
} PendingKey;

/*
 * The set lives in static memory: a one-row transaction (one key, kept in
 * "first") creates no memory context and no hash table; the second
 * distinct key creates them.
 */
typedef struct Pending
{
	MemoryContext cxt;			/* child of TopTransactionContext, or NULL */
	Oid			source_relid;	/* the source the keys are of */
	bool		has_first;		/* first holds the only short key so far */
	char		first[CAPTURE_SHORT_KEY];
	HTAB	   *short_keys;		/* PendingKey, deduplicated (from the second) */
	List	   *long_keys;		/* char *, as they come */
	int			nkeys;
	int			max_len;		/* longest short key */
	bool		whole_source;	/* TRUNCATE, or keys lost (see banner) */
	SubTransactionId flushed_subid; /* newest subtransaction that wrote keys early */
} Pending;

static Pending pending_data;
static Pending *pending = NULL;
static bool pending_callbacks_registered = false;

/* Slots of the ring reserved at PRE_COMMIT, published at COMMIT. */
static CaptureRingReservation ring_reservation = {-1, 0, 0, false};

/*
 * Queue relations, opened once per write.  When the primary key is the
 * queue's only index, entries go into it directly; otherwise (an index a
 * DBA added, or the copy a REINDEX CONCURRENTLY is building) through the
 * executor, which inserts into every index that takes inserts, as an
 * INSERT would: an index left without entries would answer wrong, and a
 * rebuilt primary key would lose them at its swap.
 */
typedef struct QueueWriter
{
	Relation	queue;
	Relation	pkey;			/* the only index, or NULL */
	IndexInfo  *info;
	EState	   *estate;			/* when there are others, or NULL */
	ResultRelInfo *rri;
	TupleTableSlot *slot;
	Oid			seq;
	Datum		now;
} QueueWriter;

static void
queue_open(QueueWriter *w, Oid queue_relid, Oid pkey_relid, Oid seq_relid)
{
	List	   *indexes;

	w->queue = table_open(queue_relid, RowExclusiveLock);
	if (RelationGetDescr(w->queue)->natts != 3)
		elog(ERROR, "segments.change_queue has an unexpected shape");
	indexes = RelationGetIndexList(w->queue);
	w->pkey = NULL;
	w->estate = NULL;
	if (list_length(indexes) == 1 && linitial_oid(indexes) == pkey_relid)
	{
		w->pkey = index_open(pkey_relid, RowExclusiveLock);
		w->info = BuildIndexInfo(w->pkey);
	}
	else
	{
		w->estate = CreateExecutorState();
		w->rri = makeNode(ResultRelInfo);
		InitResultRelInfo(w->rri, w->queue, 1, NULL, 0);
		ExecOpenIndices(w->rri, false);
		w->slot = MakeSingleTupleTableSlot(RelationGetDescr(w->queue), &TTSOpsHeapTuple);
	}
	list_free(indexes);
	w->seq = seq_relid;
	w->now = TimestampTzGetDatum(GetCurrentTimestamp());
}

static void
queue_close(QueueWriter *w)
{
	if (w->pkey != NULL)
		index_close(w->pkey, RowExclusiveLock);
	if (w->estate != NULL)
	{
		ExecDropSingleTupleTableSlot(w->slot);
		ExecCloseIndices(w->rri);
		FreeExecutorState(w->estate);
	}
	table_close(w->queue, RowExclusiveLock);
}

/* One entry: a contact key as text, or NULL for "the whole source". */
static void
queue_insert(QueueWriter *w, const char *contact)
{
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	HeapTuple	tuple;

	values[0] = Int64GetDatum(nextval_internal(w->seq, false));
	if (contact != NULL)
		values[1] = CStringGetTextDatum(contact);
	else
		nulls[1] = true;
	values[2] = w->now;
	tuple = heap_form_tuple(RelationGetDescr(w->queue), values, nulls);
	simple_heap_insert(w->queue, tuple);
	if (w->pkey != NULL)
		index_insert(w->pkey, values, nulls, &tuple->t_self, w->queue, UNIQUE_CHECK_NO, false, w->info);
	else
	{
		ExecStoreHeapTuple(tuple, w->slot, false);
		list_free(ExecInsertIndexTuples(w->rri, w->slot, w->estate, false, false, NULL, NIL));
		ExecClearTuple(w->slot);
		ResetExprContext(GetPerTupleExprContext(w->estate));
	}
	heap_freetuple(tuple);
	if (contact != NULL)
		pfree(DatumGetPointer(values[1]));
}

/* Inserts one entry now, in the current (sub)transaction (mark_gap). */
static void
enqueue_now(const char *contact)
{
	QueueWriter w;

	queue_open(&w, capture.queue_relid, capture.queue_pkey, capture.queue_seq);
	queue_insert(&w, contact);
	queue_close(&w);
	SharedNotifyAtCommit();
}

/*
 * Writes the pending keys (or one whole-source entry) to the queue and
 * empties the set.  The queue is looked up again: the extension may have
 * been dropped, or the source re-pointed, since the keys were taken (a
 * new source's configure() evaluates everything anyway).
 */
static void
pending_write(void)
{
	Oid			queue_relid = CatalogRelid("change_queue", true);
	Oid			pkey_relid = CatalogRelid("change_queue_pkey", true);
	Oid			seq_relid = CatalogRelid("change_queue_id_seq", true);
	QueueWriter w;
	HASH_SEQ_STATUS scan;
	PendingKey *pk;
	ListCell   *lc;

	if (!OidIsValid(queue_relid) || !OidIsValid(pkey_relid) || !OidIsValid(seq_relid))
		return;
	if (!capture.valid || capture.rels == NULL)
		capture_load();
	if (capture.source_relid != pending->source_relid)
		return;
	queue_open(&w, queue_relid, pkey_relid, seq_relid);
	if (pending->whole_source)
		queue_insert(&w, NULL);
	else
	{
		if (pending->has_first)
			queue_insert(&w, pending->first);
		if (pending->short_keys != NULL)
		{
			hash_seq_init(&scan, pending->short_keys);
			while ((pk = hash_seq_search(&scan)) != NULL)
				queue_insert(&w, pk->key);
		}
		foreach(lc, pending->long_keys)
			queue_insert(&w, lfirst(lc));
	}
	queue_close(&w);
	SharedNotifyAtCommit();
}

/*
 * At PRE_COMMIT: hands a small set of short keys to the ring of this
 * database (capture_ring.c) instead of the queue table.  False when it
 * cannot take them (then the caller writes the table).
 */
static bool
pending_to_ring(void)
{
	HASH_SEQ_STATUS scan;
	PendingKey *pk;
	int			i = 0;

	if (!segments_preloaded || !segments_capture_ring_on ||
		pending->whole_source || pending->long_keys != NIL ||
		pending->nkeys > CAPTURE_RING_MAX_KEYS || pending->max_len > CAPTURE_RING_KEY ||
		!capture.valid || !OidIsValid(capture.source_relid) ||
		capture.source_relid != pending->source_relid)
		return false;
	if (!CaptureRingReserve(&ring_reservation, pending->nkeys))
		return false;
	if (pending->has_first)
		CaptureRingPut(&ring_reservation, i++, pending->source_relid,
					   pending->first, strlen(pending->first));
	if (pending->short_keys != NULL)
	{
		hash_seq_init(&scan, pending->short_keys);
		while ((pk = hash_seq_search(&scan)) != NULL)
			CaptureRingPut(&ring_reservation, i++, pending->source_relid,
						   pk->key, strlen(pk->key));
	}
	Assert(i == pending->nkeys);
	/* no worker to set the latch of: ask for one as the table path does */
	if (ring_reservation.no_worker)
		SharedNotifyAtCommit();
	return true;
}

/* Forgets the keys (not the whole-source flag, nor the early writes). */
static void
pending_clear(void)
{
	if (pending->cxt != NULL)
		MemoryContextReset(pending->cxt);
	pending->has_first = false;
	pending->short_keys = NULL;
	pending->long_keys = NIL;
	pending->nkeys = 0;
	pending->max_len = 0;
}

/*
 * The ring's part runs whatever the set: slots reserved at PRE_COMMIT are
 * published at COMMIT (the commit is visible by then; nothing here may
 * allocate or fail) or voided at ABORT.
 */
static void
pending_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			if (pending != NULL && (pending->whole_source || pending->nkeys > 0) &&
				!pending_to_ring())
				pending_write();
			pending = NULL;		/* its memory goes with the transaction */
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (pending != NULL && (pending->whole_source || pending->nkeys > 0))
				pending_write();
			pending = NULL;
			break;
		case XACT_EVENT_COMMIT:
			if (ring_reservation.ring >= 0)
				CaptureRingCommit(&ring_reservation, GetCurrentTransactionStopTimestamp());
			pending = NULL;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			if (ring_reservation.ring >= 0)
				CaptureRingAbort(&ring_reservation);
			pending = NULL;
			break;
		default:
			break;
	}
}

/*
 * Keys written early inside a subtransaction that rolls back, or inside one
 * of its children, are lost with it: the commit then queues a whole-source
 * entry.  Subtransaction ids grow, and every subtransaction begun while
 * mySubid is open is its descendant, so "written early in mySubid or a
 * descendant" is "the newest early write has an id >= mySubid".
 */
static void
pending_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	if (pending != NULL && event == SUBXACT_EVENT_ABORT_SUB &&
		OidIsValid(pending->flushed_subid) && pending->flushed_subid >= mySubid)
		pending->whole_source = true;
}

/* The set of this transaction, created on first use. */
static Pending *
pending_get(void)
{
	if (pending != NULL)
		return pending;
	if (!pending_callbacks_registered)
	{
		RegisterXactCallback(pending_xact_callback, NULL);
		RegisterSubXactCallback(pending_subxact_callback, NULL);
		pending_callbacks_registered = true;
		/*
		 * shared.c's commit callback must be registered before the commit
		 * (one registered while the callbacks run is not called for it).
		 */
		SharedNotifyAtCommit();
	}
	pending = &pending_data;
	pending->cxt = NULL;		/* the previous one went with its transaction */
	pending->source_relid = capture.source_relid;
	pending->has_first = false;
	pending->short_keys = NULL;
	pending->long_keys = NIL;
	pending->nkeys = 0;
	pending->max_len = 0;
	pending->whole_source = false;
	pending->flushed_subid = InvalidSubTransactionId;
	return pending;
}

/* The set's memory context, created on first need. */
static MemoryContext
pending_cxt(Pending *p)
{
	if (p->cxt == NULL)
		p->cxt = AllocSetContextCreate(TopTransactionContext, "segments capture keys",
									   ALLOCSET_SMALL_SIZES);
	return p->cxt;
}

/* Adds a key (NULL: the whole source) to the transaction's set. */
static void
enqueue(const char *contact)
{
	Pending    *p = pending_get();
	size_t		len;

	if (contact == NULL)
	{
		p->whole_source = true;
		pending_clear();
		return;
	}
	if (p->whole_source)
		return;
	len = strlen(contact);
	if (len < CAPTURE_SHORT_KEY)
	{
		PendingKey	pk;
		bool		found;

		memset(pk.key, 0, sizeof(pk.key));
		memcpy(pk.key, contact, len);
		if (p->short_keys == NULL && !p->has_first)
		{
			/* the first short key: no hash table yet */
			memcpy(p->first, pk.key, sizeof(pk.key));
			p->has_first = true;
			p->max_len = Max(p->max_len, (int) len);
			p->nkeys++;
			return;
		}
		if (p->short_keys == NULL && strcmp(p->first, pk.key) == 0)
			return;
		if (p->short_keys == NULL)
		{
			HASHCTL		ctl;

			memset(&ctl, 0, sizeof(ctl));
			ctl.keysize = CAPTURE_SHORT_KEY;
			ctl.entrysize = sizeof(PendingKey);
			ctl.hcxt = pending_cxt(p);
			p->short_keys = hash_create("segments capture keys", 32, &ctl,
										HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
			if (p->has_first)
			{
				/* the first key moves into the table */
				(void) hash_search(p->short_keys, p->first, HASH_ENTER, &found);
				p->has_first = false;
			}
		}
		(void) hash_search(p->short_keys, pk.key, HASH_ENTER, &found);
		if (found)
			return;
		p->max_len = Max(p->max_len, (int) len);
	}
	else
		p->long_keys = lappend(p->long_keys, MemoryContextStrdup(pending_cxt(p), contact));
	if (++p->nkeys >= CAPTURE_FLUSH_KEYS)
	{
		SubTransactionId subid = GetCurrentSubTransactionId();

		pending_write();
		pending_clear();
		if (subid != TopSubTransactionId && subid > p->flushed_subid)
			p->flushed_subid = subid;
	}
}

/* Queues the key of the row in slot (a NULL key is no contact). */
static void
enqueue_key(CaptureRel *cr, TupleTableSlot *slot)
{
	bool		isnull;
	Datum		key = slot_getattr(slot, cr->key_attnum, &isnull);

	if (!isnull)
	{
		char	   *text = OutputFunctionCall(&cr->key_out, key);

		enqueue(text);
		pfree(text);
	}
}

/* Do the two rows differ in watched column j? */
static bool
column_changed(CaptureRel *cr, int j, TupleTableSlot *a, TupleTableSlot *b)
{
	bool		anull;
	bool		bnull;
	Datum		av = slot_getattr(a, cr->watched[j], &anull);
	Datum		bv = slot_getattr(b, cr->watched[j], &bnull);

	if (anull || bnull)
		return anull != bnull;
	return !datumIsEqual(av, bv, cr->typbyval[j], cr->typlen[j]);
}

/*
 * Without the preload there is no worker, so contact keys are not queued;
 * but a whole-source entry, once per writing (sub)transaction, records
 * that membership may be stale.  wait() is false while it is queued; a
 * full refresh() removes it, and a worker that comes back (the library
 * preloaded again) re-evaluates every contact.
 */
static LocalTransactionId gap_lxid = InvalidLocalTransactionId;
static SubTransactionId gap_subid = InvalidSubTransactionId;
static bool gap_callback_registered = false;

/* A rolled-back subtransaction takes its entry with it. */
static void
gap_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					 SubTransactionId parentSubid, void *arg)
{
	if (gap_subid != mySubid || gap_lxid != MyProc->lxid)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB)
		gap_lxid = InvalidLocalTransactionId;
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
		gap_subid = parentSubid;
}

static void
mark_gap(void)
{
	if (gap_lxid == MyProc->lxid && gap_lxid != InvalidLocalTransactionId)
		return;
	if (capture.queue_relid == InvalidOid || !capture.valid)
	{
		capture.queue_relid = CatalogRelid("change_queue", false);
		capture.queue_pkey = CatalogRelid("change_queue_pkey", false);
		capture.queue_seq = CatalogRelid("change_queue_id_seq", false);
	}
	if (!gap_callback_registered)
	{
		RegisterSubXactCallback(gap_subxact_callback, NULL);
		gap_callback_registered = true;
	}
	enqueue_now(NULL);
	gap_lxid = MyProc->lxid;
	gap_subid = GetCurrentSubTransactionId();
}

/*
 * segments._capture() RETURNS trigger
 *
 * AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW, and AFTER TRUNCATE FOR
 * EACH STATEMENT, on the contact source (installed by configure()).
 */
Datum
segments_capture(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TriggerEvent event;
	CaptureRel *cr;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "segments_capture: not called by trigger manager");
	event = td->tg_event;
	if (!TRIGGER_FIRED_AFTER(event))
		elog(ERROR, "segments_capture: must be fired AFTER");
	if (!segments_preloaded)
	{
		mark_gap();
		return PointerGetDatum(NULL);
	}

	cr = capture_rel(td->tg_relation);
	if (!cr->is_source)
		return PointerGetDatum(NULL);

	if (TRIGGER_FIRED_BY_TRUNCATE(event))
		enqueue(NULL);
	else if (!TRIGGER_FIRED_FOR_ROW(event))
		return PointerGetDatum(NULL);
	else if (TRIGGER_FIRED_BY_INSERT(event) || TRIGGER_FIRED_BY_DELETE(event))
		enqueue_key(cr, td->tg_trigslot);
	else if (TRIGGER_FIRED_BY_UPDATE(event))
	{
		/* watched[0] is the key: a new key is a contact leaving, one coming */
		if (column_changed(cr, 0, td->tg_trigslot, td->tg_newslot))
		{
			enqueue_key(cr, td->tg_trigslot);
			enqueue_key(cr, td->tg_newslot);
		}
		else
		{
			for (int j = 1; j < cr->nwatched; j++)
			{
				if (column_changed(cr, j, td->tg_trigslot, td->tg_newslot))
				{
					enqueue_key(cr, td->tg_newslot);
					break;
				}
			}
		}
	}
	return PointerGetDatum(NULL);
}

/*
 * segments._capture_drop() RETURNS event_trigger
 *
 * ddl_command_start of DROP EXTENSION: when the extension dropped is
 * segments, removes the capture triggers from the source first (they
 * depend on segments._capture(), which would otherwise block the drop).
 */
Datum
segments_capture_drop(PG_FUNCTION_ARGS)
{
	if (DdlDroppingSegments(fcinfo, "segments_capture_drop") == NULL)
		PG_RETURN_VOID();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT segments._install_capture(NULL)", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not remove the capture triggers");
	SPI_finish();
	PG_RETURN_VOID();
}

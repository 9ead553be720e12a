/*-------------------------------------------------------------------------
 *
 * citus.c
 *		Running on Citus: a contact source distributed by its key over
 *		several nodes, membership (segments.member) distributed the same way
 *		and colocated with it (docs/citus.md).
 *
 * On a Citus node a distributed table's own heap (the "shell") is empty:
 * its rows live in shards, plain tables named <table>_<shardid>, each on
 * one node.  So:
 *	- a probe of one contact (membership, the contact's row) is a query on
 *	  the distributed table, which Citus routes to the one shard holding
 *	  the key (local execution when that shard is on this node);
 *	- a full pass scans the shards of the source placed on this node; the
 *	  coordinator's pass asks every worker to do so (_citus_pass() in
 *	  sql/install/11_citus.sql), in parallel;
 *	- capture fires on the shards, on the shard's node, and queues there;
 *	  that node's own worker applies the change;
 *	- wait() on the coordinator also waits for every worker.
 * Nothing here runs unless Citus is installed and the relation is
 * distributed: on plain PostgreSQL each check is one cached hash lookup.
 *
 *-------------------------------------------------------------------------
 */
#include "catalog.h"
#include "citus.h"
#include "privilege.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "storage/lmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/uuid.h"
#include "utils/wait_event.h"
#include "storage/latch.h"
#include "miscadmin.h"

PG_FUNCTION_INFO_V1(segments_citus_refresh_local);
PG_FUNCTION_INFO_V1(segments_citus_drop);

/* Set while this node evaluates its own shards for a coordinator's pass. */
static bool local_pass = false;

/* Per relation: is it a hash-distributed Citus table, and its probe. */
typedef struct DistEntry
{
	Oid			relid;			/* hash key */
	bool		valid;
	bool		distributed;
	SPIPlanPtr	probe;			/* CitusProbe's statement (kept), or NULL */
} DistEntry;

static HTAB *dist_cache = NULL;

/* Relcache callback: create_distributed_table() and DDL invalidate. */
static void
dist_invalidate(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	DistEntry  *e;

	if (dist_cache == NULL)
		return;
	hash_seq_init(&status, dist_cache);
	while ((e = hash_seq_search(&status)) != NULL)
	{
		if (relid == InvalidOid || e->relid == relid)
			e->valid = false;
	}
}

/*
 * Runs a one-row catalog query with one oid parameter; true if a row came
 * back.  Read as committed now, not with the transaction's snapshot: the
 * answer is cached past this transaction, and an invalidation processed
 * before the load does not come again (as in CatalogGet).
 */
static bool
query_exists(const char *sql, Oid type, Datum arg)
{
	bool		found;
	bool		latest = !IsInParallelMode();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (latest)
		PushActiveSnapshot(GetLatestSnapshot());
	if (SPI_execute_with_args(sql, 1, &type, &arg, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the Citus metadata");
	found = SPI_processed > 0;
	if (latest)
		PopActiveSnapshot();
	SPI_finish();
	return found;
}

/* Is Citus installed in this database? */
static bool
citus_installed(void)
{
	return OidIsValid(get_extension_oid("citus", true));
}

/* The cached entry of relid, (re)computed when invalidated. */
static DistEntry *
dist_entry(Oid relid)
{
	DistEntry  *e;
	bool		found;

	if (dist_cache == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(DistEntry);
		ctl.hcxt = CacheMemoryContext;
		dist_cache = hash_create("segments citus relations", 16, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		CacheRegisterRelcacheCallback(dist_invalidate, (Datum) 0);
	}
	e = hash_search(dist_cache, &relid, HASH_ENTER, &found);
	if (!found)
	{
		e->valid = false;
		e->probe = NULL;
	}
	if (!e->valid)
	{
		if (e->probe != NULL)
			SPI_freeplan(e->probe);
		e->probe = NULL;
		e->valid = true;
		e->distributed = citus_installed() &&
			query_exists("SELECT 1 FROM pg_catalog.pg_dist_partition"
						 " WHERE logicalrelid OPERATOR(pg_catalog.=) $1"
						 "   AND partmethod OPERATOR(pg_catalog.=) 'h'",
						 OIDOID, ObjectIdGetDatum(relid));
	}
	return e;
}

/* Is relid a hash-distributed Citus table (its heap here holds no rows)? */
bool
CitusIsDistributed(Oid relid)
{
	return dist_entry(relid)->distributed;
}

/* Is this node the Citus coordinator (group 0)? */
static bool
is_coordinator(void)
{
	return query_exists("SELECT 1 FROM pg_catalog.pg_dist_local_group"
						" WHERE groupid OPERATOR(pg_catalog.=) $1",
						INT4OID, Int32GetDatum(0));
}

/*
 * Prepares the probe of a distributed relation: its columns in order (NULL
 * for dropped ones, so the row fits rel's descriptor) for one key of the
 * index's first column.  Called connected to SPI; the plan is kept.
 */
static SPIPlanPtr
prepare_probe(Relation rel, Oid indexid)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Relation	index = index_open(indexid, AccessShareLock);
	AttrNumber	keyatt = index->rd_index->indkey.values[0];
	Oid			keytype = TupleDescAttr(RelationGetDescr(index), 0)->atttypid;
	StringInfoData sql;
	SPIPlanPtr	plan;

	index_close(index, AccessShareLock);
	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (i > 0)
			appendStringInfoString(&sql, ", ");
		appendStringInfoString(&sql, att->attisdropped ? "NULL" :
							   quote_identifier(NameStr(att->attname)));
	}
	appendStringInfo(&sql, " FROM %s.%s WHERE %s OPERATOR(pg_catalog.=) $1",
					 quote_identifier(get_namespace_name(RelationGetNamespace(rel))),
					 quote_identifier(RelationGetRelationName(rel)),
					 quote_identifier(NameStr(TupleDescAttr(desc, keyatt - 1)->attname)));
	plan = SPI_prepare(sql.data, 1, &keytype);
	if (plan == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", sql.data, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "could not keep the plan of \"%s\"", sql.data);
	return plan;
}

/* CitusProbe()'s read, run as the owner. */
typedef struct ProbeCall
{
	DistEntry  *entry;			/* keeps the prepared plan */
	Relation	rel;
	Oid			indexid;
	Datum		key;
	TupleTableSlot *slot;		/* out: the row, made in the caller's context */
	bool		found;			/* out */
} ProbeCall;

static void
probe_as_owner(void *arg)
{
	ProbeCall  *call = arg;
	MemoryContext caller = CurrentMemoryContext;
	TupleDesc	desc = RelationGetDescr(call->rel);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (call->entry->probe == NULL)
		call->entry->probe = prepare_probe(call->rel, call->indexid);
	if (SPI_execute_plan(call->entry->probe, &call->key, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read \"%s\"", RelationGetRelationName(call->rel));
	if (SPI_processed > 0)
	{
		Datum	   *values = palloc(desc->natts * sizeof(Datum));
		bool	   *nulls = palloc(desc->natts * sizeof(bool));
		MemoryContext old;
		HeapTuple	tuple;

		for (int i = 0; i < desc->natts; i++)
		{
			values[i] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									  i + 1, &nulls[i]);
			if (TupleDescAttr(desc, i)->attisdropped)
				nulls[i] = true;
		}
		old = MemoryContextSwitchTo(caller);
		tuple = heap_form_tuple(desc, values, nulls);
		MemoryContextSwitchTo(old);
		ExecForceStoreHeapTuple(tuple, call->slot, true);
		call->found = true;
	}
	SPI_finish();
}

/*
 * MembershipProbe() of a distributed relation: the row with this key,
 * stored in slot, through a query Citus routes to the one shard holding it.
 * Run as the extension's owner: readers have no privilege on the tables.
 */
bool
CitusProbe(Relation rel, Oid indexid, Datum key, TupleTableSlot *slot)
{
	ProbeCall	call = {
		.entry = dist_entry(RelationGetRelid(rel)),
		.rel = rel,
		.indexid = indexid,
		.key = key,
		.slot = slot,
		.found = false,
	};

	PrivilegeRunAsOwner(SECURITY_RESTRICTED_OPERATION, probe_as_owner, &call);
	return call.found;
}

/*
 * Is rel one of source's shards (a trigger on a shard fires with it)?  Its
 * name is the source's (or, for long names, a prefix of it) followed by
 * _<shardid>, in the source's schema.
 */
bool
CitusIsShardOf(Relation rel, Oid source)
{
	const char *name = RelationGetRelationName(rel);
	const char *us = strrchr(name, '_');
	char	   *end;
	int64		shardid;
	Oid			types[2] = {OIDOID, INT8OID};
	Datum		values[2];
	bool		found;

	if (!OidIsValid(source) || us == NULL || RelationGetNamespace(rel) != get_rel_namespace(source) ||
		!citus_installed())
		return false;
	shardid = strtoll(us + 1, &end, 10);
	if (*end != '\0' || end == us + 1)
		return false;
	values[0] = ObjectIdGetDatum(source);
	values[1] = Int64GetDatum(shardid);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_dist_shard"
							  " WHERE logicalrelid OPERATOR(pg_catalog.=) $1"
							  "   AND shardid OPERATOR(pg_catalog.=) $2",
							  2, types, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_dist_shard");
	found = SPI_processed > 0;
	SPI_finish();
	return found;
}

/*
 * Does shard rel have the source's columns in the same positions (what a
 * slot of the source's descriptor and the evaluator assume)?
 */
static bool
same_columns(Relation rel, TupleDesc desc)
{
	TupleDesc	sdesc = RelationGetDescr(rel);

	if (sdesc->natts != desc->natts)
		return false;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, i);
		Form_pg_attribute b = TupleDescAttr(sdesc, i);

		if (a->attisdropped != b->attisdropped || a->atttypid != b->atttypid ||
			(!a->attisdropped && strcmp(NameStr(a->attname), NameStr(b->attname)) != 0))
			return false;
	}
	return true;
}

/*
 * Was shard rel made anew after snapshot: its pg_class row written by a
 * transaction snapshot does not see (ALTER COLUMN ... TYPE and other table
 * rewrites give the table new files, filled by the rewriting transaction)?
 * Called with the shard locked, so that the row read is the committed one.
 *
 * A table rewrite is not MVCC-safe: read with a snapshot taken before it
 * committed, the rewritten table looks empty.  On one node a pass locks
 * the source before its snapshot, so a rewrite is over or has not begun.
 * On Citus the pass locks the shell table first, but Citus alters the
 * shards of a node in sessions of the distributed transaction other than
 * the one altering the shell table there, and each commits on its own
 * (COMMIT PREPARED per connection): a pass can take its snapshot once the
 * shell's ALTER committed, then wait for the lock of a shard still being
 * rewritten, and read it empty after that commits.  Its contacts would
 * then be taken for departed, and their membership deleted (a chunk), or
 * left out (verify(), preview()).
 */
static bool
rewritten_after(Relation rel, Snapshot snapshot)
{
	HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(RelationGetRelid(rel)));
	TransactionId xmin;
	bool		after;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", RelationGetRelid(rel));
	xmin = HeapTupleHeaderGetXmin(tuple->t_data);
	after = TransactionIdIsNormal(xmin) && !TransactionIdIsCurrentTransactionId(xmin) &&
		XidInMVCCSnapshot(xmin, snapshot);
	ReleaseSysCache(tuple);
	return after;
}

/*
 * A transaction that cannot read shard rel with snapshot (rewritten_after()):
 * a serialization failure, which the worker retries as a transient error.
 */
static void
refuse_rewritten(Relation rel, Snapshot snapshot, Relation source)
{
	if (rewritten_after(rel, snapshot))
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("shard \"%s\" of \"%s\" was rewritten by a concurrent transaction",
						RelationGetRelationName(rel), RelationGetRelationName(source)),
				 errdetail("A table rewrite (ALTER TABLE) committed after this transaction's snapshot, with which the shard would look empty."),
				 errhint("Try again.")));
}

/*
 * The shards of the source placed on this node (ascending shard ids) and
 * the colocated membership shard of each (0: none), read now, into arrays
 * in the caller's memory context; returns how many.  Called connected to
 * SPI.
 */
static int
local_shards(Oid relid, Oid member_relid, MemoryContext caller, int64 **sources, int64 **members)
{
	Oid			types[2] = {OIDOID, OIDOID};
	Datum		args[2] = {ObjectIdGetDatum(relid), ObjectIdGetDatum(member_relid)};

	/* colocated shards cover the same hash range */
	if (SPI_execute_with_args("SELECT s.shardid, m.shardid FROM pg_catalog.pg_dist_shard s"
							  "  JOIN pg_catalog.pg_dist_placement p"
							  "    ON p.shardid OPERATOR(pg_catalog.=) s.shardid"
							  "  LEFT JOIN pg_catalog.pg_dist_shard m"
							  "    ON m.logicalrelid OPERATOR(pg_catalog.=) $2"
							  "   AND m.shardminvalue OPERATOR(pg_catalog.=) s.shardminvalue"
							  " WHERE s.logicalrelid OPERATOR(pg_catalog.=) $1"
							  "   AND p.groupid OPERATOR(pg_catalog.=)"
							  "       (SELECT groupid FROM pg_catalog.pg_dist_local_group)"
							  " ORDER BY 1",
							  2, types, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the shards of \"%s\"", get_rel_name(relid));
	*sources = MemoryContextAlloc(caller, Max(SPI_processed, 1) * sizeof(int64));
	*members = MemoryContextAlloc(caller, Max(SPI_processed, 1) * sizeof(int64));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		bool		nomember;
		Datum		member;

		(*sources)[r] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r],
													SPI_tuptable->tupdesc, 1, &isnull));
		member = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &nomember);
		(*members)[r] = nomember ? 0 : DatumGetInt64(member);
	}
	return (int) SPI_processed;
}

/*
 * Citus's ShareLock on the shard metadata of an int8[] of membership shards
 * (what its router takes to write a shard), as the owner: the lock of
 * lock_member_shards() and of CitusContactShards().
 */
static void
lock_shards_as_owner(void *arg)
{
	Datum	   *array = arg;
	Oid			type = INT8ARRAYOID;

	/* ShareLock (5); ascending ids, the order Citus locks in */
	if (SPI_execute_with_args("SELECT pg_catalog.lock_shard_metadata(5, $1)",
							  1, &type, array, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not lock the membership shards' metadata");
}

/*
 * Takes Citus's shard metadata lock on these membership shards (ShareLock,
 * what its router takes to write a shard) to the end of the transaction:
 * a shard move or split, which takes it in ExclusiveLock to block writes
 * before copying, waits for the pass to commit rather than copy the shard
 * without its writes.  As the owner: Citus checks that the caller owns the
 * tables.  Called connected to SPI.
 */
static void
lock_member_shards(const int64 *ids, int n)
{
	Datum	   *elems;
	Datum		array;
	int			m = 0;

	elems = palloc(Max(n, 1) * sizeof(Datum));
	for (int i = 0; i < n; i++)
		if (ids[i] != 0)
			elems[m++] = Int64GetDatum(ids[i]);
	if (m == 0)
		return;
	array = PointerGetDatum(construct_array(elems, m, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	PrivilegeRunAsOwner(SECURITY_RESTRICTED_OPERATION, lock_shards_as_owner, &array);
}

/* Is shard id among the n ids? */
static bool
shard_listed(const int64 *ids, int n, int64 id)
{
	for (int i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

/*
 * The relations a full pass scans: the source itself, or, when it is
 * distributed, its shards placed on this node (none on a coordinator that
 * holds no shards), opened and checked to have the source's columns.
 * *members gets, per relation, the oid of the membership shard colocated
 * with it (on this node too), or InvalidOid for the source itself: a
 * node's pass writes its own membership shards, not through Citus.  The
 * membership shards are locked against moves (lock_member_shards()); a
 * shard placed here only since the caller's snapshot, or moved away, is
 * left out (the coordinator's pass sees the placements change and passes
 * again: _citus_pass()).  A shard rewritten after the caller's snapshot
 * (rewritten_after()) fails the transaction with a serialization failure.
 */
List *
CitusScanRelations(Relation source, Oid member_relid, Snapshot snapshot, List **members)
{
	Oid			relid = RelationGetRelid(source);
	Oid			nsp = RelationGetNamespace(source);
	TupleDesc	desc = RelationGetDescr(source);
	MemoryContext caller = CurrentMemoryContext;
	int64	   *before_src;
	int64	   *before_mem;
	int64	   *sources;
	int64	   *mshards;
	int			nbefore;
	int			n;
	List	   *rels = NIL;

	*members = NIL;
	if (!CitusIsDistributed(relid))
	{
		*members = lappend_oid(*members, InvalidOid);
		return list_make1(source);
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	nbefore = local_shards(relid, member_relid, caller, &before_src, &before_mem);
	lock_member_shards(before_mem, nbefore);
	/* placed here before the lock (so before any move now) and still */
	n = local_shards(relid, member_relid, caller, &sources, &mshards);
	SPI_finish();

	for (int i = 0; i < n; i++)
	{
		char	   *name;
		char	   *mname;
		Oid			shard;
		Oid			mshard;
		Relation	rel;

		if (!shard_listed(before_src, nbefore, sources[i]))
			continue;
		name = psprintf("%s_" INT64_FORMAT, RelationGetRelationName(source), sources[i]);
		mname = mshards[i] == 0 ? NULL :
			psprintf("%s_" INT64_FORMAT, get_rel_name(member_relid), mshards[i]);
		shard = get_relname_relid(name, nsp);
		mshard = mname ? get_relname_relid(mname, get_rel_namespace(member_relid)) : InvalidOid;
		if (!OidIsValid(shard))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("shard \"%s\" of \"%s\" is not on this node under that name",
							name, RelationGetRelationName(source)),
					 errhint("segments on Citus supports source tables whose shard names are the table's name and the shard id (names shorter than 50 bytes).")));
		if (!OidIsValid(mshard))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the membership shard colocated with shard \"%s\" is not on this node",
							name),
					 errhint("segments.member must stay colocated with \"%s\"; move shards with citus_move_shard_placement() or citus_rebalance_start(), which move colocated shards together.",
							 RelationGetRelationName(source))));
		rel = table_open(shard, AccessShareLock);
		refuse_rewritten(rel, snapshot, source);
		if (!same_columns(rel, desc))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("shard \"%s\" does not have the columns of \"%s\" in the same positions",
							name, RelationGetRelationName(source)),
					 errhint("Columns dropped before the table was distributed shift the shards' columns; recreate the table (CREATE TABLE ... AS) and distribute it again.")));
		rels = lappend(rels, rel);
		*members = lappend_oid(*members, mshard);
	}
	return rels;
}

/* The unique index of shard rel on the columns of the source's key index, or InvalidOid. */
static Oid
shard_key_index(Relation rel, Oid source_index)
{
	Relation	sindex = index_open(source_index, AccessShareLock);
	List	   *indexes = RelationGetIndexList(rel);
	Oid			found = InvalidOid;
	ListCell   *lc;

	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index a = index->rd_index;
		Form_pg_index b = sindex->rd_index;
		bool		same = a->indisunique && a->indisvalid &&
			RelationGetForm(index)->relam == RelationGetForm(sindex)->relam &&
			a->indnkeyatts == b->indnkeyatts && RelationGetIndexPredicate(index) == NIL;

		for (int i = 0; same && i < a->indnkeyatts; i++)
			same = a->indkey.values[i] == b->indkey.values[i];
		index_close(index, AccessShareLock);
		if (same)
		{
			found = lfirst_oid(lc);
			break;
		}
	}
	list_free(indexes);
	index_close(sindex, AccessShareLock);
	return found;
}

/* Adds key position k to the group of this membership shard (made if new). */
static void
group_add(CitusShardKeys **groups, int *ngroups, int nkeys, int64 member_shard,
		  int64 source_shard, int k)
{
	CitusShardKeys *g = NULL;

	for (int i = 0; i < *ngroups && g == NULL; i++)
		if ((*groups)[i].member_shardid == member_shard)
			g = &(*groups)[i];
	if (g == NULL)
	{
		g = &(*groups)[(*ngroups)++];
		memset(g, 0, sizeof(*g));
		g->member_shardid = member_shard;
		g->source_shardid = source_shard;
		g->keys = palloc(nkeys * sizeof(int));
	}
	g->keys[g->nkeys++] = k;
}

/* CitusContactShards()'s questions to Citus's metadata, asked as the owner. */
typedef struct ContactShardsCall
{
	Oid			relid;			/* the source */
	Oid		   *types;			/* of args */
	Datum	   *args;			/* the keys (an array), the source, the membership table */
	int			nkeys;
	Snapshot	snapshot;		/* the pass's */
	int64	   *member_of;		/* out: each key's membership shard */
	int64	   *source_of;		/* out: each key's contacts shard */
	bool	   *local;			/* out: are both shards of the key placed here? */
} ContactShardsCall;

static void
contact_shards_as_owner(void *arg)
{
	ContactShardsCall *call = arg;
	Oid			relid = call->relid;
	Oid		   *types = call->types;
	Datum	   *args = call->args;
	int			nkeys = call->nkeys;
	Snapshot	snapshot = call->snapshot;
	int64	   *member_of = call->member_of;
	int64	   *source_of = call->source_of;
	bool	   *local = call->local;
	Oid			idtype = INT8ARRAYOID;
	SPIPlanPtr	placed;
	Datum		ids;
	Datum	   *shardids = palloc(nkeys * sizeof(Datum));
	Oid			placed_types[2] = {INT8ARRAYOID, REGCLASSOID};
	int			nshards = 0;
	bool		isnull;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT pg_catalog.get_shard_id_for_distribution_column($3, u.k),"
							  "       pg_catalog.get_shard_id_for_distribution_column($2, u.k)"
							  "  FROM pg_catalog.unnest($1) WITH ORDINALITY u(k, i) ORDER BY u.i",
							  3, types, args, NULL, false, 0) != SPI_OK_SELECT ||
		SPI_processed != (uint64) nkeys)
		elog(ERROR, "could not find the shards of the contacts");
	for (int k = 0; k < nkeys; k++)
	{
		member_of[k] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[k],
												   SPI_tuptable->tupdesc, 1, &isnull));
		source_of[k] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[k],
												   SPI_tuptable->tupdesc, 2, &isnull));
	}
	/* the distinct membership shards, ascending: Citus locks in that order */
	for (int k = 0; k < nkeys; k++)
		shardids[k] = Int64GetDatum(member_of[k]);
	ids = PointerGetDatum(construct_array(shardids, nkeys, INT8OID, 8, FLOAT8PASSBYVAL,
										  TYPALIGN_DOUBLE));
	if (SPI_execute_with_args("SELECT pg_catalog.array_agg(DISTINCT s ORDER BY s)"
							  "  FROM pg_catalog.unnest($1) s",
							  1, &idtype, &ids, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not list the membership shards");
	ids = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	lock_shards_as_owner(&ids);
	placed = SPI_prepare("SELECT m.shardid FROM pg_catalog.pg_dist_placement m"
						 "  JOIN pg_catalog.pg_dist_shard ms ON ms.shardid OPERATOR(pg_catalog.=) m.shardid"
						 "  JOIN pg_catalog.pg_dist_shard ss ON ss.logicalrelid OPERATOR(pg_catalog.=) $2"
						 "   AND ss.shardminvalue OPERATOR(pg_catalog.=) ms.shardminvalue"
						 "  JOIN pg_catalog.pg_dist_placement s ON s.shardid OPERATOR(pg_catalog.=) ss.shardid"
						 "   AND s.groupid OPERATOR(pg_catalog.=) m.groupid"
						 " WHERE m.shardid OPERATOR(pg_catalog.=) ANY ($1)"
						 "   AND m.groupid OPERATOR(pg_catalog.=)"
						 "       (SELECT groupid FROM pg_catalog.pg_dist_local_group)",
						 2, placed_types);
	if (placed == NULL)
		elog(ERROR, "could not prepare the placement query");
	/* placed here now (and locked), and in the pass's snapshot */
	for (int round = 0; round < 2; round++)
	{
		Datum		pargs[2] = {ids, ObjectIdGetDatum(relid)};
		int			ret = round == 0 ?
			SPI_execute_plan(placed, pargs, NULL, false, 0) :
			SPI_execute_snapshot(placed, pargs, NULL, snapshot, InvalidSnapshot,
								 true, false, 0);
		int			n = 0;

		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read the shard placements");
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r],
														 SPI_tuptable->tupdesc, 1, &isnull));

			if (round == 0)
				shardids[n++] = Int64GetDatum(id);
			else
				for (int i = 0; i < nshards; i++)
					if (DatumGetInt64(shardids[i]) == id)
						shardids[i] = Int64GetDatum(-id);	/* both */
		}
		if (round == 0)
			nshards = n;
	}
	for (int k = 0; k < nkeys; k++)
		for (int i = 0; i < nshards; i++)
			if (DatumGetInt64(shardids[i]) == -member_of[k])
				local[k] = true;
	SPI_finish();
}

/*
 * The incremental path of a node: groups the keys (nkeys, of key_type) by
 * the membership shard of their contact.  A group whose contacts shard and
 * membership shard are both placed on this node, now and in snapshot (the
 * pass's: a shard moved here since holds rows it cannot see), gets their
 * oids and the contacts shard's key index: the caller reads and writes
 * them directly, as a node's pass does.  The other keys (shards on other
 * nodes, plain PostgreSQL, a shard Citus named otherwise) form the last
 * group, with InvalidOid: read and written through Citus's router.  The
 * membership shards of the local groups stay locked against shard moves
 * and splits (Citus's shard metadata lock, which its router takes for a
 * write) until the end of the transaction.  Returns the number of groups.
 */
int
CitusContactShards(Relation source, Oid key_index, Oid member_relid, Oid key_type,
				   const Datum *keys, int nkeys, Snapshot snapshot, CitusShardKeys **groups)
{
	Oid			relid = RelationGetRelid(source);
	MemoryContext caller = CurrentMemoryContext;
	int			ngroups = 0;
	CitusShardKeys *routed;
	bool	   *local;
	int64	   *member_of;
	int64	   *source_of;
	int16		typlen;
	bool		typbyval;
	char		typalign;

	*groups = palloc0((nkeys + 1) * sizeof(CitusShardKeys));
	local = palloc0(Max(nkeys, 1) * sizeof(bool));
	member_of = palloc0(Max(nkeys, 1) * sizeof(int64));
	source_of = palloc0(Max(nkeys, 1) * sizeof(int64));
	if (nkeys > 0 && CitusIsDistributed(relid) && OidIsValid(member_relid) &&
		CitusIsDistributed(member_relid))
	{
		Oid			types[3] = {get_array_type(key_type), REGCLASSOID, REGCLASSOID};
		Datum		args[3];
		ContactShardsCall call = {
			.relid = relid,
			.types = types,
			.args = args,
			.nkeys = nkeys,
			.snapshot = snapshot,
			.member_of = member_of,
			.source_of = source_of,
			.local = local,
		};

		get_typlenbyvalalign(key_type, &typlen, &typbyval, &typalign);
		args[0] = PointerGetDatum(construct_array((Datum *) keys, nkeys, key_type, typlen,
												  typbyval, typalign));
		args[1] = ObjectIdGetDatum(relid);
		args[2] = ObjectIdGetDatum(member_relid);
		/* Citus's metadata functions check that their caller owns the tables */
		PrivilegeRunAsOwner(SECURITY_RESTRICTED_OPERATION, contact_shards_as_owner, &call);
		MemoryContextSwitchTo(caller);
	}
	routed = palloc0(sizeof(CitusShardKeys));
	routed->keys = palloc(Max(nkeys, 1) * sizeof(int));
	for (int k = 0; k < nkeys; k++)
	{
		if (local[k])
			group_add(groups, &ngroups, nkeys, member_of[k], source_of[k], k);
		else
			routed->keys[routed->nkeys++] = k;
	}
	/* the shards by name, checked as a pass checks them; else routed */
	for (int g = 0; g < ngroups; g++)
	{
		CitusShardKeys *grp = &(*groups)[g];
		char	   *sname = psprintf("%s_" INT64_FORMAT, RelationGetRelationName(source),
									 grp->source_shardid);
		char	   *mname = psprintf("%s_" INT64_FORMAT, get_rel_name(member_relid),
									 grp->member_shardid);

		grp->source_shard = get_relname_relid(sname, RelationGetNamespace(source));
		grp->member_shard = get_relname_relid(mname, get_rel_namespace(member_relid));
		if (OidIsValid(grp->source_shard) && OidIsValid(grp->member_shard))
		{
			Relation	rel = table_open(grp->source_shard, AccessShareLock);

			/* read with the pass's snapshot (rewritten_after()) */
			refuse_rewritten(rel, snapshot, source);
			if (same_columns(rel, RelationGetDescr(source)))
				grp->key_index = shard_key_index(rel, key_index);
			table_close(rel, NoLock);
		}
		if (!OidIsValid(grp->source_shard) || !OidIsValid(grp->member_shard) ||
			!OidIsValid(grp->key_index))
		{
			for (int i = 0; i < grp->nkeys; i++)
				routed->keys[routed->nkeys++] = grp->keys[i];
			grp->nkeys = 0;
		}
	}
	if (routed->nkeys > 0)
		(*groups)[ngroups++] = *routed;
	return ngroups;
}

/* Closes what CitusScanRelations() opened (locks kept to the end of the transaction). */
void
CitusCloseScanRelations(List *rels, Relation source)
{
	ListCell   *lc;

	foreach(lc, rels)
	{
		Relation	rel = lfirst(lc);

		if (rel != source)
			table_close(rel, NoLock);
	}
	list_free(rels);
}

/* CitusPass()'s call of segments._citus_pass(), run as the owner. */
typedef struct PassCall
{
	Datum		ids;			/* uuid[] of the segments to pass */
	bool		all;			/* or every segment (ids NULL) */
} PassCall;

static void
pass_as_owner(void *arg)
{
	PassCall   *call = arg;
	Oid			type = UUIDARRAYOID;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT segments._citus_pass($1)", 1, &type, &call->ids,
							  call->all ? "n" : NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not run the distributed pass");
	SPI_finish();
}

/*
 * refresh() of a distributed source.  On the coordinator it is every
 * node's: segments._citus_pass() syncs the catalog to the workers, has each
 * evaluate its shards in parallel and counts members; true.  Otherwise
 * (plain PostgreSQL, or a worker node, whose pass scans its own shards)
 * false: the caller goes on.
 */
bool
CitusPass(const pg_uuid_t *only, int nonly)
{
	const SegmentCatalog *cat;

	if (local_pass)
		return false;
	cat = CatalogGet();
	if (!cat->config.configured || !CitusIsDistributed(cat->config.source_relid))
		return false;
	if (is_coordinator())
	{
		PassCall	call = {.ids = (Datum) 0, .all = only == NULL};

		if (only != NULL)
		{
			Datum	   *elems = palloc(Max(nonly, 1) * sizeof(Datum));

			for (int i = 0; i < nonly; i++)
				elems[i] = UUIDPGetDatum(&only[i]);
			call.ids = PointerGetDatum(construct_array(elems, nonly, UUIDOID, UUID_LEN, false,
													   TYPALIGN_CHAR));
		}
		/* the workers are reached, and their catalogs written, as the owner */
		PrivilegeRunAsOwner(0, pass_as_owner, &call);
		return true;
	}
	return false;
}

/*
 * The worker's chunked pass on the coordinator of a distributed source
 * (EvaluateChunk()): a step of segments._citus_pass_step(), which asks
 * every worker node to evaluate the segments in a chunked pass of its own
 * over its shards, then polls them.  Sets *cursor (in cxt) and *done; a
 * poll that found a node still busy pauses a little, so that polling does
 * not keep the coordinator busy.  True when handled; false elsewhere
 * (plain PostgreSQL, or a worker node, whose pass visits its shards).
 */
bool
CitusPassStep(const pg_uuid_t *only, int nonly, char **cursor, bool *done, MemoryContext cxt)
{
	const SegmentCatalog *cat = CatalogGet();
	Oid			types[2] = {UUIDARRAYOID, TEXTOID};
	Datum		values[2];
	char		nulls[2] = {' ', *cursor != NULL ? ' ' : 'n'};
	Datum	   *elems;
	Datum		d;
	bool		isnull;
	char	   *next = NULL;

	if (!cat->config.configured || !CitusIsDistributed(cat->config.source_relid) ||
		!is_coordinator())
		return false;
	elems = palloc(Max(nonly, 1) * sizeof(Datum));
	for (int i = 0; i < nonly; i++)
		elems[i] = UUIDPGetDatum(&only[i]);
	values[0] = PointerGetDatum(construct_array(elems, nonly, UUIDOID, UUID_LEN, false,
												TYPALIGN_CHAR));
	values[1] = *cursor != NULL ? CStringGetTextDatum(*cursor) : (Datum) 0;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT segments._citus_pass_step($1, $2)", 2, types, values, nulls,
							  false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not run a step of the distributed pass");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
		next = MemoryContextStrdup(cxt, TextDatumGetCString(d));
	SPI_finish();
	*done = next == NULL;
	if (next != NULL && *cursor != NULL && strcmp(next, *cursor) == 0)
	{
		(void) WaitLatch(NULL, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 200, PG_WAIT_EXTENSION);
		CHECK_FOR_INTERRUPTS();
	}
	*cursor = next;
	return true;
}

/* Is shard id placed on this node, now (snapshot NULL) or in snapshot? */
static bool
placed_here(int64 id, Snapshot snapshot)
{
	Oid			type = INT8OID;
	Datum		arg = Int64GetDatum(id);
	const char *sql = "SELECT 1 FROM pg_catalog.pg_dist_placement"
		" WHERE shardid OPERATOR(pg_catalog.=) $1"
		"   AND groupid OPERATOR(pg_catalog.=) (SELECT groupid FROM pg_catalog.pg_dist_local_group)";
	int			ret;

	if (snapshot == NULL)
		ret = SPI_execute_with_args(sql, 1, &type, &arg, NULL, false, 1);
	else
	{
		SPIPlanPtr	plan = SPI_prepare(sql, 1, &type);

		if (plan == NULL)
			elog(ERROR, "could not prepare the placement query");
		ret = SPI_execute_snapshot(plan, &arg, NULL, snapshot, InvalidSnapshot, true, false, 1);
	}
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the placement of shard " INT64_FORMAT, id);
	return SPI_processed > 0;
}

/*
 * A chunk of a worker node's pass over its shards (EvaluateChunk()): the
 * shards placed here are visited one after the other, by ascending shard
 * id, each in the order of its key index.  The pass's cursor is
 * "<shardid>" (that shard, from its first key) or "<shardid>:<key>" (after
 * that key).  Fills *t with the shard to scan next: opened, its key index,
 * its membership shard (locked against moves, lock_member_shards()), the
 * key to go on after, and the next shard here (0: none).  t->rel is NULL
 * when there is no shard left (t->next_shardid 0: the pass is done), or
 * when the shard was placed here after the chunk's snapshot (the next
 * chunk, with a new snapshot, takes it: next_shardid is that shard), or
 * rewritten after it (rewritten_after(); t->again: the next chunk goes on
 * from the same cursor).
 * False for a source that is not distributed: the caller scans it.
 */
bool
CitusChunkShard(Relation source, Oid key_index, Oid member_relid, Snapshot snapshot,
				const char *cursor, CitusChunkTarget *t)
{
	Oid			relid = RelationGetRelid(source);
	MemoryContext caller = CurrentMemoryContext;
	int64		from = 0;
	const char *key = NULL;
	int64	   *sources;
	int64	   *mshards;
	int			n;

	if (!CitusIsDistributed(relid))
		return false;
	memset(t, 0, sizeof(*t));
	if (cursor != NULL)
	{
		char	   *end;

		from = strtoll(cursor, &end, 10);
		if (end != cursor && *end == ':')
			key = end + 1;
		else if (end == cursor || *end != '\0')
			from = 0;			/* not a cursor of this form: from the start */
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	n = local_shards(relid, member_relid, caller, &sources, &mshards);
	for (int i = 0; i < n; i++)
	{
		char	   *name;
		Oid			shard;
		Oid			mshard;
		Relation	rel;

		if (sources[i] < from)
			continue;
		if (mshards[i] == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("no membership shard is colocated with shard " INT64_FORMAT " of \"%s\"",
							sources[i], RelationGetRelationName(source)),
					 errhint("segments.member must stay colocated with \"%s\"; call segments.configure() again.",
							 RelationGetRelationName(source))));
		lock_member_shards(&mshards[i], 1);
		if (!placed_here(mshards[i], NULL))
			continue;			/* moved away: the coordinator passes again */
		if (!placed_here(mshards[i], snapshot))
		{
			t->next_shardid = sources[i];	/* moved here just now */
			break;
		}
		name = psprintf("%s_" INT64_FORMAT, RelationGetRelationName(source), sources[i]);
		shard = get_relname_relid(name, RelationGetNamespace(source));
		mshard = get_relname_relid(psprintf("%s_" INT64_FORMAT, get_rel_name(member_relid), mshards[i]),
								   get_rel_namespace(member_relid));
		if (!OidIsValid(shard) || !OidIsValid(mshard))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("shard \"%s\" of \"%s\", or its membership shard, is not on this node under that name",
							name, RelationGetRelationName(source)),
					 errhint("segments on Citus supports source tables whose shard names are the table's name and the shard id (names shorter than 50 bytes).")));
		rel = table_open(shard, AccessShareLock);
		if (rewritten_after(rel, snapshot))
		{
			/*
			 * Rewritten since this chunk's snapshot, with which it would
			 * look empty: the next chunk, with a new snapshot, takes it up
			 * from the same cursor.
			 */
			table_close(rel, NoLock);
			t->next_shardid = sources[i];
			t->again = true;
			break;
		}
		if (!same_columns(rel, RelationGetDescr(source)))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("shard \"%s\" does not have the columns of \"%s\" in the same positions",
							name, RelationGetRelationName(source)),
					 errhint("Columns dropped before the table was distributed shift the shards' columns; recreate the table (CREATE TABLE ... AS) and distribute it again.")));
		t->key_index = shard_key_index(rel, key_index);
		if (!OidIsValid(t->key_index))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("shard \"%s\" has no unique index on the key of \"%s\"",
							name, RelationGetRelationName(source)),
					 errhint("Citus makes the source's indexes on every shard; call segments.configure() again.")));
		t->rel = rel;
		t->member_shard = mshard;
		t->shardid = sources[i];
		t->next_shardid = i + 1 < n ? sources[i + 1] : 0;
		t->key = sources[i] == from && key != NULL ? MemoryContextStrdup(caller, key) : NULL;
		break;
	}
	SPI_finish();
	return true;
}

/*
 * segments._citus_evaluate_local(ids uuid[]) RETURNS void: this node's part
 * of a coordinator's pass: a full pass of the segments (NULL: all) over the
 * shards of the source placed here.
 */
Datum
segments_citus_refresh_local(PG_FUNCTION_ARGS)
{
	ArrayType  *ids = PG_ARGISNULL(0) ? NULL : PG_GETARG_ARRAYTYPE_P(0);

	local_pass = true;
	PG_TRY();
	{
		if (ids == NULL)
			EvaluateRefresh(NULL, 0);
		else if (ArrayGetNItems(ARR_NDIM(ids), ARR_DIMS(ids)) > 0)
			EvaluateRefresh((pg_uuid_t *) ARR_DATA_PTR(ids),
							ArrayGetNItems(ARR_NDIM(ids), ARR_DIMS(ids)));
	}
	PG_FINALLY();
	{
		local_pass = false;
	}
	PG_END_TRY();
	PG_RETURN_VOID();
}

/* CitusWait()'s call of segments._citus_wait(), run as the owner. */
typedef struct WaitCall
{
	Datum		left;			/* the interval to the deadline */
	bool		done;			/* out: the workers' answer (NULL: false) */
} WaitCall;

static void
wait_as_owner(void *arg)
{
	WaitCall   *call = arg;
	Oid			type = INTERVALOID;
	bool		isnull;
	bool		done;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT segments._citus_wait($1)", 1, &type, &call->left, NULL, false, 1)
		!= SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not wait for the workers");
	done = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	call->done = !isnull && done;
	SPI_finish();
}

/*
 * wait() on a coordinator of a distributed source: true once every worker's
 * own wait() returned true before the deadline (their queues hold the
 * changes captured on their shards), asked as the extension's owner
 * (segments._citus_wait() is the owner's; readers call wait()).  True at
 * once elsewhere.
 */
bool
CitusWait(TimestampTz deadline)
{
	const SegmentCatalog *cat = CatalogGet();
	Interval   *left = palloc0(sizeof(Interval));
	WaitCall	call;

	if (!cat->config.configured || !CitusIsDistributed(cat->config.source_relid) ||
		!is_coordinator())
		return true;
	left->time = Max(deadline - GetCurrentTimestamp(), 0);
	call.left = IntervalPGetDatum(left);
	/* the workers are reached as the owner, as for a pass (a reader may wait) */
	PrivilegeRunAsOwner(0, wait_as_owner, &call);
	return call.done;
}

/*
 * CitusVerify()'s call of segments._citus_verify(), run as the owner; its
 * rows are left in SPI_tuptable.  Called connected to SPI.
 */
typedef struct VerifyCall
{
	Datum		args[2];		/* the segment, the tenant */
	char		nulls[2];
} VerifyCall;

static void
verify_as_owner(void *arg)
{
	VerifyCall *call = arg;
	Oid			types[2] = {UUIDOID, TEXTOID};

	if (SPI_execute_with_args("SELECT segment_id, name, state, missing, extra, missing_sample,"
							  "       extra_sample FROM segments._citus_verify($1, $2)",
							  2, types, call->args, call->nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not verify membership on the workers");
}

/*
 * verify() on the coordinator of a distributed source: every worker
 * verifies the shards placed on it (segments._citus_verify() runs
 * segments._citus_verify_local() there, as the extension's owner, for the
 * session's tenant) and the differences add up; the rows of the segments
 * view shows (the session's) go to rsinfo.  True when done; false
 * elsewhere (plain PostgreSQL, or a worker, whose verify() compares its own
 * shards).
 */
bool
CitusVerify(const pg_uuid_t *only, const TenantView *view, ReturnSetInfo *rsinfo)
{
	const SegmentCatalog *cat = CatalogGet();
	VerifyCall	call = {.nulls = {only != NULL ? ' ' : 'n', view->filter_contacts ? ' ' : 'n'}};

	if (!cat->config.configured || !CitusIsDistributed(cat->config.source_relid) ||
		!is_coordinator())
		return false;
	call.args[0] = only != NULL ? UUIDPGetDatum(only) : (Datum) 0;
	call.args[1] = view->filter_contacts ? CStringGetTextDatum(view->tenant) : (Datum) 0;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/*
	 * The workers are reached as the owner, who sees every segment and has
	 * no tenant: the session's tenant goes with the call, and the rows are
	 * filtered below by what the session may see.
	 */
	PrivilegeRunAsOwner(0, verify_as_owner, &call);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		Datum		values[7];
		bool		row_nulls[7];
		const CatalogSegment *seg;

		for (int i = 0; i < 7; i++)
			values[i] = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, i + 1,
									  &row_nulls[i]);
		seg = row_nulls[0] ? NULL : CatalogFindById(cat, DatumGetUUIDP(values[0]));
		if (seg != NULL && CatalogSegmentVisibleIn(view, seg->tenant))
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, row_nulls);
	}
	SPI_finish();
	return true;
}

/*
 * Does preview() of this source go to the workers: is it distributed and
 * this node the coordinator?  False on plain PostgreSQL (the source is
 * scanned here) and on a worker node (EvaluateDefinition() refuses).
 */
bool
CitusPreviewOnWorkers(Oid source_relid)
{
	return OidIsValid(source_relid) && CitusIsDistributed(source_relid) && is_coordinator();
}

/* CitusPreview()'s call of segments._citus_preview(), run as the owner. */
typedef struct PreviewCall
{
	Datum		values[4];		/* definition, tenant, filter_contacts, sample */
	char		nulls[4];
	int64	   *members;		/* out: the workers' sums */
	int64	   *contacts;
	int		   *nkeys;			/* out: the workers' samples, */
	char	 ***keys;			/* made in the caller's context */
} PreviewCall;

static void
preview_as_owner(void *arg)
{
	PreviewCall *call = arg;
	MemoryContext caller = CurrentMemoryContext;
	Oid			types[4] = {JSONBOID, TEXTOID, BOOLOID, INT4OID};
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT members, contacts, sample_keys"
							  "  FROM segments._citus_preview($1, $2, $3, $4)",
							  4, types, call->values, call->nulls, false, 0) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not preview the definition on the Citus workers");
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	d = SPI_getbinval(row, desc, 1, &isnull);
	*call->members = isnull ? 0 : DatumGetInt64(d);
	d = SPI_getbinval(row, desc, 2, &isnull);
	*call->contacts = isnull ? 0 : DatumGetInt64(d);
	d = SPI_getbinval(row, desc, 3, &isnull);
	if (!isnull)
	{
		ArrayType  *arr = DatumGetArrayTypeP(d);
		Datum	   *elems;
		bool	   *enulls;
		int			n;
		MemoryContext old;

		deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &enulls, &n);
		old = MemoryContextSwitchTo(caller);
		*call->keys = palloc(Max(n, 1) * sizeof(char *));
		for (int i = 0; i < n; i++)
			if (!enulls[i])
				(*call->keys)[(*call->nkeys)++] = TextDatumGetCString(elems[i]);
		MemoryContextSwitchTo(old);
	}
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
}

/*
 * preview() on the coordinator of a distributed source (preview.c), once
 * the definition is validated here: every worker evaluates it over the
 * shards placed on it (segments._citus_preview(), which runs
 * segments._citus_preview_local() on each, as the owner).  Sets the member
 * and contact counts, the sum of the workers', and *keys to the workers'
 * samples as text (*nkeys of them, each worker's `sample` smallest member
 * keys; the caller keeps the smallest).  Only where
 * CitusPreviewOnWorkers().
 */
void
CitusPreview(Jsonb *definition, const char *tenant, bool filter_contacts, int sample,
			 int64 *members, int64 *contacts, int *nkeys, char ***keys)
{
	PreviewCall call = {
		.nulls = {' ', ' ', ' ', ' '},
		.members = members,
		.contacts = contacts,
		.nkeys = nkeys,
		.keys = keys,
	};

	call.values[0] = JsonbPGetDatum(definition);
	call.values[1] = tenant != NULL ? CStringGetTextDatum(tenant) : (Datum) 0;
	if (tenant == NULL)
		call.nulls[1] = 'n';
	call.values[2] = BoolGetDatum(filter_contacts);
	call.values[3] = Int32GetDatum(sample);
	*nkeys = 0;
	*keys = NULL;

	/* the workers are reached as the owner, as for a pass */
	PrivilegeRunAsOwner(0, preview_as_owner, &call);
}

/*
 * Refuses what cannot work on a distributed source yet (it would scan the
 * coordinator's empty heap and give a wrong answer): a clear error instead.
 */
void
CitusRefuse(const char *what)
{
	const SegmentCatalog *cat = CatalogGet();

	if (cat->config.configured && CitusIsDistributed(cat->config.source_relid))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s is not supported on a source distributed by Citus yet", what),
				 errhint("The Citus section of the segments README lists what works there; segments.explain() checks one contact.")));
}

/*
 * The coordinator's worker, each round (worker.c): a node that joined since
 * the last catalog copy gets one, and every segment is evaluated again
 * (segments._citus_nodes_check()); at most every CITUS_COUNTS_MS, the
 * member counts become the sum of the nodes' own (segments._citus_counts(),
 * which brings along the changes the nodes applied since the last pass).
 * Nothing on plain PostgreSQL or on a Citus worker.  In the caller's
 * transaction.
 */
#define CITUS_COUNTS_MS 1000

void
CitusNodesCheck(Oid source_relid)
{
	static TimestampTz counted_at = 0;

	if (!OidIsValid(source_relid) || !CitusIsDistributed(source_relid) || !is_coordinator())
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT segments._citus_nodes_check()", false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not check the Citus nodes");
	/* member counts: the sum of the nodes' own, about once a second */
	if (TimestampDifferenceExceeds(counted_at, GetCurrentTimestamp(), CITUS_COUNTS_MS))
	{
		counted_at = GetCurrentTimestamp();
		if (SPI_execute("SELECT segments._citus_counts()", false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read the member counts of the Citus nodes");
	}
	SPI_finish();
}

/*
 * segments._citus_drop() RETURNS event_trigger
 *
 * ddl_command_start of DROP EXTENSION: when the extension dropped is
 * segments, segments.member and segments.citus_catalog, which stay out of
 * the extension on Citus (segments._citus_configure()), are dropped first
 * (segments._citus_drop_storage(), on the coordinator), with their shards
 * and the workers' tables, in the drop's transaction, as DROP EXTENSION
 * takes segments.member on one node.
 */
Datum
segments_citus_drop(PG_FUNCTION_ARGS)
{
	DropStmt   *stmt = DdlDroppingSegments(fcinfo, "segments_citus_drop");

	if (stmt == NULL || !citus_installed())
		PG_RETURN_VOID();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute(stmt->behavior == DROP_CASCADE ?
					"SELECT segments._citus_drop_storage(true)" :
					"SELECT segments._citus_drop_storage(false)", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not drop the Citus tables of segments");
	SPI_finish();
	PG_RETURN_VOID();
}

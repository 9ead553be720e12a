/*-------------------------------------------------------------------------
 *
 * citus.h
 *		Running on Citus: a contact source distributed over several nodes
 *		(citus.c; docs/citus.md has the design).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SEGMENTS_CITUS_H
#define SEGMENTS_CITUS_H

#include "catalog.h"
#include "segments.h"

#include "executor/tuptable.h"
#include "nodes/execnodes.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"

/* The keys of one membership shard, for the incremental path (citus.c). */
typedef struct CitusShardKeys
{
	Oid			source_shard;	/* contacts shard on this node; InvalidOid: */
	Oid			member_shard;	/* the keys go through Citus's router */
	Oid			key_index;		/* the contacts shard's key index */
	int64		source_shardid;
	int64		member_shardid;
	int			nkeys;
	int		   *keys;			/* positions in the caller's array */
} CitusShardKeys;

/* The shard a chunk of a worker node's pass scans (citus.c). */
typedef struct CitusChunkTarget
{
	Relation	rel;			/* the contacts shard; NULL: none this chunk */
	Oid			key_index;		/* its key index */
	Oid			member_shard;	/* the colocated membership shard */
	int64		shardid;		/* rel's shard id */
	int64		next_shardid;	/* the next shard here; 0: none */
	const char *key;			/* go on after this key (text); NULL: first */
	bool		again;			/* rel NULL: next_shardid rewritten after the
								 * snapshot, to scan from the same cursor */
} CitusChunkTarget;

extern bool CitusIsDistributed(Oid relid);
extern bool CitusProbe(Relation rel, Oid indexid, Datum key, TupleTableSlot *slot);
extern bool CitusIsShardOf(Relation rel, Oid source);
extern List *CitusScanRelations(Relation source, Oid member_relid, Snapshot snapshot,
								 List **members);
extern int	CitusContactShards(Relation source, Oid key_index, Oid member_relid, Oid key_type,
							   const Datum *keys, int nkeys, Snapshot snapshot,
							   CitusShardKeys **groups);
extern void CitusCloseScanRelations(List *rels, Relation source);
extern bool CitusPass(const pg_uuid_t *only, int nonly);
extern bool CitusPassStep(const pg_uuid_t *only, int nonly, char **cursor, bool *done,
						  MemoryContext cxt);
extern bool CitusChunkShard(Relation source, Oid key_index, Oid member_relid, Snapshot snapshot,
							const char *cursor, CitusChunkTarget *t);
extern bool CitusWait(TimestampTz deadline);
extern bool CitusVerify(const pg_uuid_t *only, const TenantView *view, ReturnSetInfo *rsinfo);
extern bool CitusPreviewOnWorkers(Oid source_relid);
extern void CitusPreview(Jsonb *definition, const char *tenant, bool filter_contacts,
						 int sample, int64 *members, int64 *contacts, int *nkeys,
						 char ***keys);
extern void CitusRefuse(const char *what);
extern void CitusNodesCheck(Oid source_relid);

#endif							/* SEGMENTS_CITUS_H */

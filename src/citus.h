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

#include "segments.h"

#include "executor/tuptable.h"
#include "nodes/pg_list.h"
#include "utils/relcache.h"

extern bool CitusIsDistributed(Oid relid);
extern bool CitusProbe(Relation rel, Oid indexid, Datum key, TupleTableSlot *slot);
extern bool CitusIsShardOf(Relation rel, Oid source);
extern List *CitusScanRelations(Relation source, Oid member_relid, List **members);
extern void CitusCloseScanRelations(List *rels, Relation source);
extern bool CitusPass(const pg_uuid_t *only, int nonly, bool chunk);
extern bool CitusWait(TimestampTz deadline);
extern void CitusRefuse(const char *what);
extern void CitusNodesCheck(Oid source_relid);

#endif							/* SEGMENTS_CITUS_H */

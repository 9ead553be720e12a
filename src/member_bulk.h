/*-------------------------------------------------------------------------
 *
 * member_bulk.h
 *		Inserting and updating many rows of segments.member at once
 *		(member_bulk.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SEGMENTS_MEMBER_BULK_H
#define SEGMENTS_MEMBER_BULK_H

#include "access/htup.h"
#include "nodes/bitmapset.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"

/*
 * The worker's bound on the GIN index's pending list (gin_pending_list_limit,
 * kB), where its small statements send their entries.
 */
#define MEMBER_GIN_PENDING_KB	1024

typedef struct MemberBulk MemberBulk;

extern bool MemberBulkPossible(Relation rel);
extern bool MemberBulkMayDefer(Relation rel);
extern MemberBulk *MemberBulkBegin(bool defer_gin);
extern void MemberBulkFlush(MemberBulk *mb);
extern void MemberBulkKeepArrays(bool keep);
extern Bitmapset *MemberBulkTakeReplaced(void);
extern void MemberBulkInsert(MemberBulk *mb, Oid relid, HeapTuple *tuples, int ntuples,
							 Snapshot snapshot);
extern int	MemberBulkUpdate(MemberBulk *mb, Oid relid, const ItemPointerData *otids,
							 HeapTuple *tuples, int ntuples, Snapshot snapshot, Datum *missed);

#endif							/* SEGMENTS_MEMBER_BULK_H */

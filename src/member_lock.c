/*-------------------------------------------------------------------------
 *
 * member_lock.c
 *		The lock that makes writers of segments.member take turns.
 *
 * Writers of membership (passes, the worker's application of changes,
 * failing closed, configure(NULL), the recorded exits of a dropped
 * segment) take turns, each holding this lock until it commits, and draw
 * history change ids under it, so ids follow commit order (history.c).
 * The table itself gets only ROW EXCLUSIVE, the lock of any DML: it waits
 * for DDL and for an explicit LOCK TABLE, but not for VACUUM's SHARE
 * UPDATE EXCLUSIVE, so autovacuum and the worker's own vacuum
 * (member_vacuum.c) run while writers write.  (The writers' lock used to
 * be SHARE ROW EXCLUSIVE on the table, which conflicts with VACUUM: no
 * lock mode on the table both serialises writers and lets VACUUM in.)
 *
 * The lock is an ExclusiveLock on an object tag no SQL command can take:
 * (pg_extension, the extension's oid, sub-id MEMBER_LOCK_SUBID).  Not an
 * advisory lock: any role may take any key and hold it to block the
 * worker.  Not a relation either, even one no role has rights on: parse
 * analysis locks a named table before the privilege check, and planning
 * can run the caller's own IMMUTABLE functions meanwhile, for as long as
 * they like.  Commands that name the extension (COMMENT, DROP) lock
 * sub-id 0, and check ownership right after.
 *
 *-------------------------------------------------------------------------
 */
#include "catalog.h"

#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "storage/lmgr.h"

#include "member_lock.h"

PG_FUNCTION_INFO_V1(segments_lock_member_writers);

/* The sub-id of the extension's object tag that writers lock. */
#define MEMBER_LOCK_SUBID 1

/*
 * Takes the writers' lock, and ROW EXCLUSIVE on segments.member
 * (member_relid; none if invalid) before it: a writer that waits for DDL
 * on the table (configure() replacing it) then holds nothing the DDL's
 * own pass would wait for.  Both are kept to the end of the transaction.
 * A writer takes its snapshot after: it sees what the previous one
 * committed.  On Citus the lock is this node's own, as each node writes
 * only its own membership shards.
 */
void
MemberLockWriters(Oid member_relid)
{
	if (OidIsValid(member_relid))
		LockRelationOid(member_relid, RowExclusiveLock);
	LockDatabaseObject(ExtensionRelationId, get_extension_oid("segments", false),
					   MEMBER_LOCK_SUBID, ExclusiveLock);
}

/*
 * segments._lock_member_writers(): the same, for writers in SQL
 * (configure(NULL), a dropped segment's exits).  Only the extension's
 * owner may call it (no GRANT).
 */
Datum
segments_lock_member_writers(PG_FUNCTION_ARGS)
{
	MemberLockWriters(CatalogRelid("member", true));
	PG_RETURN_VOID();
}

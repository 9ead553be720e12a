/*-------------------------------------------------------------------------
 *
 * member_vacuum.c
 *		The worker's VACUUM of segments.member, in a process of its own.
 *
 * Every row a pass or a change rewrites leaves a dead version behind: its
 * line pointer and its index entries (a few dozen in the GIN index on the
 * segment numbers, since no such update is HOT).  Pruning before a pass
 * (member_space.c) gives the tuple's bytes back, but only VACUUM frees the
 * line pointers and the index entries.  Autovacuum, which looks at a
 * database once a minute and at a table only past its own thresholds,
 * falls behind passes that rewrite every row in seconds.  So the worker
 * has the table vacuumed once enough rows were replaced since the last
 * vacuum (segments.member_vacuum_scale_factor).
 *
 * Writers hold only ROW EXCLUSIVE on the table (member_lock.c), which
 * VACUUM's SHARE UPDATE EXCLUSIVE does not conflict with.  The vacuum runs
 * in a dynamic background worker the worker starts (MemberVacuumStart),
 * the way autovacuum calls vacuum() from a background process, while the
 * worker goes on applying changes and evaluating: at a million contacts
 * it takes seconds, which changes no longer wait for.  One at a time: the
 * worker starts no other while it runs (and VACUUM's lock would skip a
 * second).  It ends on SIGTERM like any backend's query, notes a SIGHUP
 * (its settings are those it started with), and ends with the worker.  Its
 * failure (an error, a SIGTERM) is its own: the worker starts another
 * when one is due again.
 *
 * VACUUM gives index pages' room back to the index, never to the disk,
 * and an index grown by insertions is not packed as a built one is: the
 * GIN index after a few passes that rewrote every row was 2.5 to 3 times
 * the size CREATE INDEX makes of the same rows, and the primary key twice
 * its size.  So when an index of segments.member is more than
 * segments.member_reindex_factor times the size of a freshly built one
 * (estimated per stored membership for the GIN index, per row for the
 * primary key, from what the last rebuild left), the same process
 * rebuilds it after the vacuum with REINDEX CONCURRENTLY: readers and
 * writers go on (the swap at its end takes the index's lock for an
 * instant).  Interrupted (an error, a crash), it leaves an invalid copy
 * ("..._ccnew"), which writers would go on maintaining: every run of the
 * process first drops the invalid indexes of segments.member (DROP INDEX
 * CONCURRENTLY).  Not while the worker strips dropped segments' numbers
 * (member_strip.c): the rows are about to change.  Nor while a pass is
 * pending or running (a segment pending or evaluating): a rebuild that
 * started just before a pass took the pass's rows by insertion and ended
 * no smaller.  The worker does not ask for one then, and the process
 * looks again after its vacuum, before the rebuild.  The other way round,
 * a pass that starts while a rebuild runs (create_segment during it) ends
 * the rebuild (MemberVacuumYieldToPass): beside the pass it would end no
 * smaller, and the pass's writes waited for it (the extension lock of the
 * index being built: changes waited 7 to 8 s at a million contacts).  The
 * worker then starts a process that only drops the copy left invalid, and
 * asks for another rebuild after the pass if the index is still past
 * segments.member_reindex_factor.
 *
 * What a fresh index takes is measured by the process right after its
 * rebuild and kept in segments.member_index_fresh, so that a restarted
 * worker does not judge the index against the defaults.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/tablecmds.h"
#include "commands/vacuum.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/bufmgr.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/procarray.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "citus.h"
#include "member_bulk.h"
#include "member_compact.h"
#include "member_strip.h"
#include "member_vacuum.h"

/* segments.member_vacuum_scale_factor: 0 turns the worker's vacuum off. */
double		segments_member_vacuum_scale_factor = 0.1;

/* segments.member_reindex_factor: 0 turns the rebuilds off. */
double		segments_member_reindex_factor = 2.0;

/*
 * Bytes of a freshly built index: the GIN index per stored membership, the
 * primary key per row (a bigint key; others learn theirs at the first
 * rebuild).  What a rebuild measured (segments.member_index_fresh)
 * replaces them when larger.
 */
#define GIN_FRESH_BYTES		1.75
#define PKEY_FRESH_BYTES	22.0

/* Smaller indexes are not worth a rebuild. */
#define REINDEX_MIN_BYTES	(1024 * 1024)

/* Rebuilds asked of the vacuum process (bgw_extra, after the table's oid). */
#define REINDEX_GIN			0x01
#define REINDEX_PKEY		0x02
#define VACUUM_TABLE		0x04	/* and the vacuum itself */
#define COMPACT_TABLE		0x08	/* after it, compaction if worth it */
static uint32 reindex_wanted = 0;	/* by the last look */
static bool vacuum_wanted = false;	/* by the last look */
static bool compact_allowed = false;	/* by the last look */
static bool compact_wanted = false;	/* by the last look, without a vacuum */
static PgStat_Counter compact_looked_vacuums = -1;	/* vacuums as of that look */
static uint32 reindex_asked = 0;	/* of the process last started */
static bool drop_wanted = false;	/* a rebuild was ended: drop its copy */

/* Fewest replaced rows worth a vacuum, whatever the table's size. */
#define MEMBER_VACUUM_MIN_ROWS	1000

/*
 * Rows replaced or deleted in segments.member as of its last vacuum (of
 * anyone's), and how many vacuums the statistics counted then: a vacuum
 * by autovacuum or by hand moves the baseline too.
 */
static Oid	baseline_relid = InvalidOid;
static PgStat_Counter baseline_replaced = 0;
static PgStat_Counter baseline_vacuums = -1;

/*
 * Rows replaced as of the last look, and as of the start of the vacuum
 * this worker started last (-1: none since the baseline moved): rows
 * replaced while it ran were not all dead when it began.
 */
static PgStat_Counter looked_replaced = 0;
static PgStat_Counter started_replaced = -1;

/* The vacuum process this worker started, until it is seen gone. */
static BackgroundWorkerHandle *vacuum_handle = NULL;
static TimestampTz vacuum_started_at = 0;
static bool stop_registered = false;
static bool start_failure_logged = false;

void
MemberVacuumInit(void)
{
	DefineCustomRealVariable("segments.member_vacuum_scale_factor",
							 "Fraction of segments.member's rows replaced since its last vacuum "
							 "after which the worker vacuums it.",
							 "Passes and changes replace stored rows; the worker vacuums "
							 "between its transactions, when no change is waiting.  "
							 "0 leaves it to autovacuum.",
							 &segments_member_vacuum_scale_factor,
							 0.1, 0.0, 100.0,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);
	DefineCustomRealVariable("segments.member_reindex_factor",
							 "Size of an index of segments.member, as a multiple of a freshly "
							 "built one, after which the worker rebuilds it concurrently.",
							 "Checked when the worker vacuums segments.member.  0 turns the "
							 "rebuilds off.",
							 &segments_member_reindex_factor,
							 2.0, 0.0, 100.0,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);
}

/* segments.member_index_fresh exists (the SQL of 0.2.0 or later)? */
static bool
fresh_table_exists(void)
{
	Oid			nsp = get_namespace_oid("segments", true);

	return OidIsValid(nsp) && OidIsValid(get_relname_relid("member_index_fresh", nsp));
}

/* The stored memberships, for what the GIN index takes per membership. */
#define MEMBERSHIPS_SQL "(SELECT coalesce(pg_catalog.sum(st.member_count), 0)::float8 FROM segments.segment_state st)"

/*
 * Which indexes of segments.member (relid) are worth a rebuild (REINDEX_*
 * bits)?  In a transaction, SPI connected.  rows: the table's live rows.
 */
static uint32
reindex_due(Oid relid, double rows)
{
	bool		isnull;
	double		gin_bytes;
	double		pkey_bytes;
	double		memberships;
	double		gin_fresh = GIN_FRESH_BYTES;
	double		pkey_fresh = PKEY_FRESH_BYTES;
	Oid			type = OIDOID;
	Datum		arg = ObjectIdGetDatum(relid);
	uint32		due = 0;

	/* rows about to be rewritten (and counts not yet those of the rows) */
	if (segments_member_reindex_factor <= 0 || MemberStripActive())
		return 0;
	if (SPI_execute("SELECT coalesce(pg_catalog.pg_relation_size(pg_catalog.to_regclass('segments.member_segs_idx')), 0)::float8,"
					"       coalesce(pg_catalog.pg_relation_size(pg_catalog.to_regclass('segments.member_pkey')), 0)::float8,"
					"       " MEMBERSHIPS_SQL,
					true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the size of segments.member's indexes");
	gin_bytes = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	pkey_bytes = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	memberships = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	/* what the last rebuild measured (none before the SQL of 0.2.0) */
	if (fresh_table_exists())
	{
		Datum		learned;

		if (SPI_execute_with_args("SELECT pg_catalog.max(f.bytes_per) FILTER (WHERE f.index_name OPERATOR(pg_catalog.=) 'member_segs_idx'),"
								  "       pg_catalog.max(f.bytes_per) FILTER (WHERE f.index_name OPERATOR(pg_catalog.=) 'member_pkey')"
								  "  FROM segments.member_index_fresh f WHERE f.member_relid OPERATOR(pg_catalog.=) $1",
								  1, &type, &arg, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not read segments.member_index_fresh");
		learned = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
			gin_fresh = Max(GIN_FRESH_BYTES, DatumGetFloat8(learned));
		learned = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		if (!isnull)
			pkey_fresh = Max(PKEY_FRESH_BYTES, DatumGetFloat8(learned));
	}
	/*
	 * The pending list the worker's small statements fill (member_bulk.c)
	 * takes up to its bound, and its pages are reused, not given back: not
	 * bloat.  Counted, a table whose index is under a megabyte would be
	 * rebuilt again whenever the list filled.
	 */
	gin_bytes = Max(gin_bytes - MEMBER_GIN_PENDING_KB * 1024.0, 0);
	if (gin_bytes > REINDEX_MIN_BYTES &&
		gin_bytes > segments_member_reindex_factor * gin_fresh * memberships)
		due |= REINDEX_GIN;
	/* the primary key along with the GIN index at a lower bar: it is cheap */
	if (pkey_bytes > REINDEX_MIN_BYTES &&
		pkey_bytes > (due ? 1.5 : segments_member_reindex_factor) * pkey_fresh * rows)
		due |= REINDEX_PKEY;
	return due;
}

/* Rows updated (not HOT) or deleted, cumulative, from the statistics. */
static PgStat_Counter
replaced_rows(const PgStat_StatTabEntry *tab)
{
	return tab->tuples_updated - tab->tuples_hot_updated + tab->tuples_deleted;
}

/*
 * During a pass, a vacuum is due once this fraction of the rows were
 * replaced, at least: a pass that rewrites every row then pays for two
 * scans of the indexes, not one per scale factor's worth of rows, and its
 * second half reuses the space of the versions its first half replaced.
 */
#define MEMBER_VACUUM_IN_PASS	0.5

/*
 * Is a vacuum of segments.member (relid), or a rebuild of its indexes, due?
 * In a transaction, SPI connected; reads the cumulative statistics, to
 * which the caller flushed its own counts.  in_pass: a pass is in progress
 * (see MEMBER_VACUUM_IN_PASS).  spaced: too soon after the last vacuum for
 * another (the caller's pacing); a rebuild does not wait for that: it is
 * rare, and the sooner the smaller the table.
 */
bool
MemberVacuumDue(Oid relid, bool in_pass, bool spaced)
{
	double		factor = segments_member_vacuum_scale_factor;

	PgStat_StatTabEntry *tab;
	PgStat_Counter vacuums;
	double		threshold;

	if (in_pass)
		factor = Max(factor, MEMBER_VACUUM_IN_PASS);
	if (segments_member_vacuum_scale_factor <= 0 || !OidIsValid(relid))
		return false;
	pgstat_clear_snapshot();	/* the counts as of now, not of an earlier read */
	tab = pgstat_fetch_stat_tabentry(relid);
	if (tab == NULL)
		return false;
	vacuums = tab->vacuum_count + tab->autovac_vacuum_count;
	if (relid != baseline_relid)
	{
		/*
		 * First look (a worker that started) or a new table (configure()):
		 * the rows replaced since the last vacuum are about the dead ones
		 * the statistics count (fewer: pruning subtracts the versions it
		 * removed), or all of them when it was never vacuumed.
		 */
		baseline_relid = relid;
		baseline_vacuums = vacuums;
		baseline_replaced = vacuums == 0 ? 0 :
			replaced_rows(tab) - Max(tab->n_dead_tuples, 0);
	}
	else if (vacuums != baseline_vacuums)
	{
		/*
		 * Vacuumed since, by the worker or another: what was replaced is
		 * done with, even the versions an old snapshot kept it from
		 * removing (counting those again would vacuum in vain until that
		 * snapshot goes).
		 */
		baseline_vacuums = vacuums;
		baseline_replaced = started_replaced >= 0 ?
			Min(started_replaced, replaced_rows(tab)) : replaced_rows(tab);
		started_replaced = -1;
	}
	looked_replaced = replaced_rows(tab);
	threshold = MEMBER_VACUUM_MIN_ROWS + factor * Max(tab->n_live_tuples, 0);
	/* not during a pass: it is about to add to the indexes again */
	reindex_wanted = (in_pass || vacuum_handle != NULL || CitusIsDistributed(relid)) ? 0 :
		reindex_due(relid, (double) Max(tab->n_live_tuples, 0));
	vacuum_wanted = !spaced && replaced_rows(tab) - baseline_replaced >= threshold;
	/* rows about to change, or shards on other nodes: not worth moving */
	compact_allowed = !in_pass && !MemberStripActive() && !CitusIsDistributed(relid) &&
		segments_member_compact_fraction > 0;
	/*
	 * After any vacuum (autovacuum's too, which moves the baseline and so
	 * may leave this worker none to run), a look at the free space map it
	 * filled: a tail worth emptying needs no vacuum first.
	 */
	compact_wanted = false;
	if (compact_allowed && !vacuum_wanted && vacuum_handle == NULL && vacuums != compact_looked_vacuums)
	{
		compact_looked_vacuums = vacuums;
		compact_wanted = MemberCompactDue(relid);
	}
	return vacuum_wanted || reindex_wanted != 0 || drop_wanted || compact_wanted;
}

/*
 * VACUUM segments.member (relid), as autovacuum does, outside any
 * transaction (vacuum() commits the one it is given and runs its own).
 * Skips the table when another session holds its lock (a VACUUM by hand,
 * autovacuum, a vacuum process that is still ending).  Errors propagate.
 */
static void
member_vacuum(Oid relid)
{
	VacuumParams params;
	MemoryContext portal = AllocSetContextCreate(TopMemoryContext, "segments vacuum",
												 ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(portal);
	MemoryContext saved_portal = PortalContext;

	Assert(!IsTransactionState());
	memset(&params, 0, sizeof(params));
	params.options = VACOPT_VACUUM | VACOPT_SKIP_LOCKED | VACOPT_PROCESS_TOAST;
	params.freeze_min_age = -1;
	params.freeze_table_age = -1;
	params.multixact_freeze_min_age = -1;
	params.multixact_freeze_table_age = -1;
	params.is_wraparound = false;
	params.log_min_duration = -1;
	params.index_cleanup = VACOPTVALUE_AUTO;
	params.truncate = VACOPTVALUE_AUTO;
	params.nworkers = -1;		/* no parallel workers: one core, like a pass */

	/* vacuum() keeps its memory under PortalContext, as in autovacuum */
	PortalContext = portal;
	PG_TRY();
	{
		StartTransactionCommand();
		vacuum(list_make1(makeVacuumRelation(NULL, relid, NIL)), &params, NULL, true);
		CommitTransactionCommand();
	}
	PG_FINALLY();
	{
		/* an error's data lives in ErrorContext: the portal may go */
		PortalContext = saved_portal;
		MemoryContextSwitchTo(old);
		MemoryContextDelete(portal);
	}
	PG_END_TRY();
	/* vacuum() counted itself in the statistics: the next look moves the baseline */
	pgstat_report_stat(true);
}

/*
 * Runs one utility statement that manages its own transactions (REINDEX
 * CONCURRENTLY, DROP INDEX CONCURRENTLY), as a top-level command would,
 * outside any transaction.  Errors propagate.
 */
static void
run_concurrently(Node *stmt)
{
	MemoryContext portal = AllocSetContextCreate(TopMemoryContext, "segments index maintenance",
												 ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = CurrentMemoryContext;
	MemoryContext saved_portal = PortalContext;

	Assert(!IsTransactionState());
	PG_TRY();
	{
		StartTransactionCommand();
		/*
		 * What they allocate before their first commit must outlive it, as
		 * in a portal: the transaction's memory goes at each commit
		 */
		PortalContext = portal;
		MemoryContextSwitchTo(portal);
		PushActiveSnapshot(GetTransactionSnapshot());
		if (IsA(stmt, ReindexStmt))
			ExecReindex(NULL, (ReindexStmt *) stmt, true);
		else
			RemoveRelations((DropStmt *) stmt);
		/* they pop the snapshot before their first commit */
		if (ActiveSnapshotSet())
			PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_FINALLY();
	{
		PortalContext = saved_portal;
		MemoryContextSwitchTo(old);
		MemoryContextDelete(portal);
	}
	PG_END_TRY();
}

/*
 * Drops the invalid indexes of segments.member (relid), which an
 * interrupted rebuild leaves: writers would go on maintaining them.
 *
 * An index being built concurrently (CREATE INDEX or REINDEX CONCURRENTLY
 * by someone else) is invalid too until its build ends, and its builder
 * holds SHARE UPDATE EXCLUSIVE on the table throughout.  So the list is
 * read under that lock, taken before any snapshot: it waits for such a
 * build to end (the index is then valid, or left invalid by a failure),
 * and never sees one under way (but for its last moment: see below).
 * Dropping one under way would wait for its build, which waits for this
 * process's snapshot: a deadlock, whose loser could be the other
 * session's build, or, once the build ended, the drop of a valid index.
 */
static void
drop_invalid_indexes(Oid relid)
{
	List	   *names = NIL;
	Oid			type = OIDOID;
	Datum		arg = ObjectIdGetDatum(relid);
	ListCell   *lc;
	bool		any;
	bool		isnull;

	/*
	 * Most runs find none: the lock only then (waiting for it would cancel
	 * an autovacuum of the table, whose lock made this process skip its own
	 * vacuum)
	 */
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index i"
							  " WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND NOT i.indisvalid)",
							  1, &type, &arg, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the indexes of segments.member");
	any = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	if (!any)
		return;

	StartTransactionCommand();
	LockRelationOid(relid, ShareUpdateExclusiveLock);
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT c.relname::text, i.xmax FROM pg_catalog.pg_index i"
							  "  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.indexrelid"
							  " WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND NOT i.indisvalid",
							  1, &type, &arg, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the indexes of segments.member");
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		MemoryContext old;
		TransactionId xmax = DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[r],
																 SPI_tuptable->tupdesc, 2, &isnull));

		/*
		 * CREATE INDEX CONCURRENTLY lets go of the table's lock before its
		 * last transaction, which marks the index valid, commits: a row of
		 * the index that a transaction in progress, or committed since
		 * this snapshot, replaced is that (or another change of the
		 * index): not an index left behind.  The next run looks again.
		 */
		if (!isnull && TransactionIdIsNormal(xmax) &&
			(TransactionIdIsInProgress(xmax) || TransactionIdDidCommit(xmax)))
			continue;
		old = MemoryContextSwitchTo(TopMemoryContext);
		names = lappend(names, SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1));
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	foreach(lc, names)
	{
		DropStmt   *drop = makeNode(DropStmt);

		ereport(LOG,
				(errmsg("segments: dropping the invalid index segments.%s that an interrupted rebuild left",
						(char *) lfirst(lc))));
		drop->removeType = OBJECT_INDEX;
		drop->objects = list_make1(list_make2(makeString("segments"), makeString(lfirst(lc))));
		drop->behavior = DROP_RESTRICT;
		drop->missing_ok = true;
		drop->concurrent = true;
		run_concurrently((Node *) drop);
	}
}

/*
 * Records what the index segments.<name> of segments.member (relid), just
 * rebuilt, takes per membership (the GIN index) or per row (the primary
 * key, rows from the statistics the vacuum before it left), for the
 * worker's next looks, this one's or a restarted one's.
 */
static void
record_fresh_size(Oid relid, const char *name, bool per_membership)
{
	Oid			types[2] = {TEXTOID, OIDOID};
	Datum		args[2] = {CStringGetTextDatum(name), ObjectIdGetDatum(relid)};

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (fresh_table_exists() &&
		SPI_execute_with_args(psprintf("INSERT INTO segments.member_index_fresh AS f (index_name, member_relid, bytes_per)"
									   " SELECT $1, $2, s.bytes OPERATOR(pg_catalog./) s.per FROM"
									   " (SELECT pg_catalog.pg_relation_size(pg_catalog.to_regclass('segments.' OPERATOR(pg_catalog.||) $1))::float8 AS bytes,"
									   "         %s AS per) s"
									   "  WHERE s.bytes OPERATOR(pg_catalog.>) 0 AND s.per OPERATOR(pg_catalog.>) 0"
									   " ON CONFLICT (index_name) DO UPDATE"
									   "   SET member_relid = excluded.member_relid, bytes_per = excluded.bytes_per,"
									   "       measured_at = pg_catalog.now()",
									   per_membership ? MEMBERSHIPS_SQL :
									   "(SELECT GREATEST(c.reltuples::float8, 0) FROM pg_catalog.pg_class c"
									   "  WHERE c.oid OPERATOR(pg_catalog.=) $2)"),
							  2, types, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record the size of segments.%s", name);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/* REINDEX INDEX CONCURRENTLY segments.<name>. */
static void
member_reindex(const char *name)
{
	ReindexStmt *stmt = makeNode(ReindexStmt);
	TimestampTz start = GetCurrentTimestamp();

	stmt->kind = REINDEX_OBJECT_INDEX;
	stmt->relation = makeRangeVar("segments", pstrdup(name), -1);
	stmt->params = list_make1(makeDefElem("concurrently", NULL, -1));
	pgstat_report_activity(STATE_RUNNING, "segments: rebuilding an index of segments.member");
	run_concurrently((Node *) stmt);
	ereport(LOG,
			(errmsg("segments: rebuilt index segments.%s concurrently in %ld ms",
					name, (long) ((GetCurrentTimestamp() - start) / 1000))));
}

/*
 * Is a pass about to write segments.member, or writing it: a segment
 * pending or evaluating, or a chunked pass in progress?  A rebuild that
 * starts then takes the pass's rows by insertion, and ends no smaller
 * than the index it replaces.  In a transaction of its own (the vacuum
 * process runs outside any).
 */
static bool
pass_pending(void)
{
	bool		pending = false;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT EXISTS (SELECT 1 FROM segments.segment_state"
					"  WHERE state OPERATOR(pg_catalog.=) ANY ('{pending,evaluating}'::pg_catalog.text[]))"
					"    OR (pg_catalog.to_regclass('segments.pass') IS NOT NULL"
					"        AND EXISTS (SELECT 1 FROM segments.pass))",
					true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read segments.segment_state");
	else
	{
		bool		isnull;

		pending = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	return pending;
}

/*
 * A pass starts (the worker's, in its transaction, SPI connected): a
 * rebuild the vacuum process is running ends, and the worker starts a
 * process that drops the copy it left (see the banner).  A vacuum goes on.
 */
void
MemberVacuumYieldToPass(void)
{
	pid_t		pid;
	Oid			type = INT4OID;
	Datum		arg;
	bool		isnull;

	if (vacuum_handle == NULL || (reindex_asked & (REINDEX_GIN | REINDEX_PKEY)) == 0 ||
		GetBackgroundWorkerPid(vacuum_handle, &pid) != BGWH_STARTED)
		return;
	arg = Int32GetDatum((int32) pid);
	if (SPI_execute_with_args("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_progress_create_index p"
							  "  WHERE p.pid OPERATOR(pg_catalog.=) $1)",
							  1, &type, &arg, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the progress of the vacuum process");
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		return;
	ereport(LOG,
			(errmsg("segments: ending the rebuild of an index of segments.member: a pass starts"),
			 errdetail("A rebuild beside a pass would take the pass's rows by insertion; the worker asks for another after the pass if the index is still past segments.member_reindex_factor.")));
	TerminateBackgroundWorker(vacuum_handle);
	drop_wanted = true;
}

/* on_shmem_exit callback of the worker: its vacuum process ends with it. */
static void
vacuum_stop(int code, Datum arg)
{
	if (vacuum_handle != NULL)
		TerminateBackgroundWorker(vacuum_handle);
}

/*
 * Is the vacuum process this worker started still running?  Once it is
 * seen gone, sets *ran to how long it ran (from its start to now) and
 * forgets it; *ran is 0 otherwise.
 */
bool
MemberVacuumRunning(int64 *ran)
{
	pid_t		pid;

	*ran = 0;
	if (vacuum_handle == NULL)
		return false;
	switch (GetBackgroundWorkerPid(vacuum_handle, &pid))
	{
		case BGWH_STARTED:
		case BGWH_NOT_YET_STARTED:
			return true;
		case BGWH_STOPPED:
		case BGWH_POSTMASTER_DIED:
			break;
	}
	pfree(vacuum_handle);
	vacuum_handle = NULL;
	*ran = GetCurrentTimestamp() - vacuum_started_at;
	return false;
}

/*
 * Starts the vacuum of segments.member (relid) in a background worker of
 * this database, unless one runs already.  False when none could be
 * started (no free background worker slot: max_worker_processes), which
 * is logged once until a start succeeds; the caller tries again later.
 */
bool
MemberVacuumStart(Oid relid)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	MemoryContext old;
	int64		ran;
	uint32		what;

	if (MemberVacuumRunning(&ran))
		return true;
	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "segments");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "segments_member_vacuum_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "segments member vacuum for database %u", MyDatabaseId);
	snprintf(worker.bgw_type, BGW_MAXLEN, "segments member vacuum");
	worker.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
	memcpy(worker.bgw_extra, &relid, sizeof(Oid));
	/* neither: only the drop of an ended rebuild's copy (drop_wanted) */
	what = reindex_wanted | (vacuum_wanted ? VACUUM_TABLE : 0) |
		((vacuum_wanted && compact_allowed) || compact_wanted ? COMPACT_TABLE : 0);
	memcpy(worker.bgw_extra + sizeof(Oid), &what, sizeof(uint32));
	worker.bgw_notify_pid = MyProcPid;	/* its end sets the worker's latch */

	old = MemoryContextSwitchTo(TopMemoryContext);
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		MemoryContextSwitchTo(old);
		if (!start_failure_logged)
			ereport(LOG,
					(errmsg("segments worker for database %u could not start a vacuum of segments.member",
							MyDatabaseId),
					 errdetail("No background worker slot is free."),
					 errhint("Raise max_worker_processes; meanwhile the worker tries again and autovacuum may vacuum the table.")));
		start_failure_logged = true;
		return false;
	}
	MemoryContextSwitchTo(old);
	start_failure_logged = false;
	vacuum_handle = handle;
	vacuum_started_at = GetCurrentTimestamp();
	reindex_asked = reindex_wanted;
	reindex_wanted = 0;
	drop_wanted = false;
	compact_wanted = false;
	started_replaced = looked_replaced;
	if (!stop_registered)
	{
		on_shmem_exit(vacuum_stop, (Datum) 0);
		stop_registered = true;
	}
	return true;
}

/* The table's size after a compaction's vacuum, in the server log. */
static void
log_size(Oid relid)
{
	Relation	rel;

	StartTransactionCommand();
	rel = try_relation_open(relid, AccessShareLock);
	if (rel != NULL)
	{
		ereport(LOG,
				(errmsg("segments: segments.member is %u pages after its compaction and vacuum",
						RelationGetNumberOfBlocks(rel))));
		relation_close(rel, AccessShareLock);
	}
	CommitTransactionCommand();
}

/*
 * Entry point of the vacuum process: arg is the database oid, bgw_extra
 * segments.member's oid.  Runs as the bootstrap superuser, like the
 * worker; vacuum() itself runs as the table's owner, in a
 * security-restricted operation.
 */
void
segments_member_vacuum_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	Oid			relid;
	uint32		reindex;

	memcpy(&relid, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	memcpy(&reindex, MyBgworkerEntry->bgw_extra + sizeof(Oid), sizeof(uint32));
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("segments member vacuum");
	/* above ALTER DATABASE/ROLE ... SET search_path, as in the worker */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	pgstat_report_activity(STATE_RUNNING, "segments: vacuuming segments.member");
	if (reindex & VACUUM_TABLE)
		member_vacuum(relid);
	/* rows moved off the tail: the next vacuum truncates it */
	if ((reindex & COMPACT_TABLE) && !pass_pending() && MemberCompact(relid, pass_pending))
	{
		pgstat_report_activity(STATE_RUNNING, "segments: vacuuming segments.member");
		member_vacuum(relid);
		log_size(relid);
	}
	/* an index left invalid costs every write: gone before any rebuild */
	drop_invalid_indexes(relid);
	/*
	 * Segments created or changed since the worker asked (the vacuum ran
	 * meanwhile): their pass would fill the new index by insertion.  The
	 * worker asks again after the pass when the index is still too large.
	 */
	if (reindex != 0 && (reindex & ~VACUUM_TABLE) != 0 && pass_pending())
	{
		ereport(DEBUG1,
				(errmsg("segments: index rebuild of segments.member skipped: a pass is pending")));
		reindex = 0;
	}
	if (reindex & REINDEX_GIN)
	{
		member_reindex("member_segs_idx");
		record_fresh_size(relid, "member_segs_idx", true);
	}
	if (reindex & REINDEX_PKEY)
	{
		member_reindex("member_pkey");
		record_fresh_size(relid, "member_pkey", false);
	}
	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}

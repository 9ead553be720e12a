/*-------------------------------------------------------------------------
 *
 * member_vacuum.c
 *		The worker's VACUUM of segments.member.
 *
 * Every row a pass or a change rewrites leaves a dead version behind: its
 * line pointer and its index entries (a few dozen in the GIN index on the
 * segment numbers, since no such update is HOT).  Pruning before a pass
 * (member_space.c) gives the tuple's bytes back, but only VACUUM frees the
 * line pointers and the index entries.  Autovacuum rarely gets to: it
 * skips a table whose lock it cannot take at once, and the worker's
 * transactions hold segments.member's lock most of the time while it is
 * busy, which is exactly when versions pile up.  So the worker vacuums the
 * table itself, between its own transactions, once enough rows were
 * replaced since the last vacuum (segments.member_vacuum_scale_factor), the
 * way autovacuum calls vacuum() from a background process.
 *
 * The vacuum holds the table's SHARE UPDATE EXCLUSIVE lock, which the
 * writers' lock conflicts with: the worker runs it only with no change
 * waiting in the queue, skips the table when another session holds the
 * lock (a refresh()), and a SIGTERM ends it like any other query of the
 * worker.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/vacuum.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "pgstat.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "member_vacuum.h"

/* segments.member_vacuum_scale_factor: 0 turns the worker's vacuum off. */
double		segments_member_vacuum_scale_factor = 0.1;

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
 * The rows replaced as of the last look that found a vacuum due, and
 * whether this worker then vacuumed: its vacuum moves the baseline to that
 * count, not to the count at the next look, since rows a pass replaced in
 * between (the worker runs a pass as soon as its vacuum ends) are not done
 * with.
 */
static PgStat_Counter replaced_at_due = 0;
static bool own_vacuum = false;

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
 * Is a vacuum of segments.member (relid) due?  In a transaction; reads the
 * cumulative statistics, to which the caller flushed its own counts.
 * in_pass: a pass is in progress (see MEMBER_VACUUM_IN_PASS).
 */
bool
MemberVacuumDue(Oid relid, bool in_pass)
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
		baseline_replaced = own_vacuum ? replaced_at_due : replaced_rows(tab);
		own_vacuum = false;
	}
	threshold = MEMBER_VACUUM_MIN_ROWS + factor * Max(tab->n_live_tuples, 0);
	if (replaced_rows(tab) - baseline_replaced < threshold)
		return false;
	replaced_at_due = replaced_rows(tab);
	return true;
}

/*
 * VACUUM segments.member (relid), as autovacuum does, outside any
 * transaction (vacuum() commits the one it is given and runs its own).
 * Skips the table when another session holds its lock.  Errors propagate
 * with the transaction aborted by the caller's handler.
 */
void
MemberVacuum(Oid relid)
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
	own_vacuum = true;
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

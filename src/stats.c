/*-------------------------------------------------------------------------
 *
 * stats.c
 *		Cumulative statistics of the workers, in the style of PostgreSQL's
 *		pg_stat_* views: the source of segments.stat_worker and the reset
 *		behind segments.stat_reset().
 *
 * The counters live in the launcher's slot of each database (worker.h), so
 * they outlast worker restarts; the workers add to them under the slots'
 * spinlock.  Per-segment statistics are columns of segments.segment_state,
 * written with each evaluation (pass_finish.c, worker.c).
 *
 *-------------------------------------------------------------------------
 */
#include "catalog.h"
#include "worker.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(segments_worker_stats);
PG_FUNCTION_INFO_V1(segments_worker_stats_reset);

#define WORKER_STATS_COLS 12

/*
 * Does segments.segment_state have the statistics columns?  Not before
 * ALTER EXTENSION segments UPDATE from 0.1.0, when this library already runs
 * with the old catalog: evaluations then record their state without them.
 */
bool
StatsColumnsExist(void)
{
	Oid			relid = CatalogRelid("segment_state", true);

	return OidIsValid(relid) && get_attnum(relid, "evaluations") != InvalidAttrNumber;
}

/*
 * segments._worker_stats() RETURNS SETOF record
 *
 * The counters of this database's workers: one row, or none without the
 * preload (or before the launcher gave the database a slot).  The last
 * error only to a session that sees every tenant, as _worker_status().
 */
Datum
segments_worker_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SegmentsWorkerStats st;
	bool		found = false;
	Datum		values[WORKER_STATS_COLS];
	bool		nulls[WORKER_STATS_COLS] = {0};
	bool		sees_all;

	SEGMENTS_INIT_SRF(fcinfo);
	if (segments_shared == NULL)
		return (Datum) 0;
	/* the last error may name any tenant's segment: as segments.worker shows it */
	sees_all = CatalogTenantView().scope == TENANT_SCOPE_ALL;

	SpinLockAcquire(&segments_shared->mutex);
	for (int i = 0; i < segments_shared->nslots && !found; i++)
	{
		SegmentsWorkerSlot *slot = &segments_shared->slots[i];

		if (slot->in_use && slot->dboid == MyDatabaseId)
		{
			st = slot->stats;
			found = true;
		}
	}
	SpinLockRelease(&segments_shared->mutex);
	if (!found)
		return (Datum) 0;

	values[0] = ObjectIdGetDatum(MyDatabaseId);
	values[1] = Int64GetDatum(st.changes_applied);
	values[2] = Int64GetDatum(st.batches);
	values[3] = Int64GetDatum(st.passes);
	values[4] = Int64GetDatum(st.segments_evaluated);
	values[5] = Float8GetDatum(st.evaluation_ms);
	values[6] = Int64GetDatum(st.time_windows);
	values[7] = Int64GetDatum(st.sweeps);
	values[8] = Int64GetDatum(st.errors);
	st.last_error[SEGMENTS_ERROR_LEN - 1] = '\0';
	values[9] = CStringGetTextDatum(st.last_error);
	nulls[9] = (st.last_error[0] == '\0' || !sees_all);
	values[10] = TimestampTzGetDatum(st.last_error_at);
	nulls[10] = (st.last_error_at == 0);
	values[11] = TimestampTzGetDatum(st.reset_at);
	nulls[11] = (st.reset_at == 0);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

/*
 * segments._worker_stats_reset() RETURNS void
 *
 * Zeroes this database's worker counters and records when.  Not
 * transactional, as pg_stat_reset() is not.  A no-op without the preload.
 */
Datum
segments_worker_stats_reset(PG_FUNCTION_ARGS)
{
	TimestampTz now = GetCurrentTimestamp();

	if (segments_shared == NULL)
		PG_RETURN_VOID();
	SpinLockAcquire(&segments_shared->mutex);
	for (int i = 0; i < segments_shared->nslots; i++)
	{
		SegmentsWorkerSlot *slot = &segments_shared->slots[i];

		if (slot->in_use && slot->dboid == MyDatabaseId)
		{
			memset(&slot->stats, 0, sizeof(slot->stats));
			slot->stats.reset_at = now;
		}
	}
	SpinLockRelease(&segments_shared->mutex);
	PG_RETURN_VOID();
}

/*-------------------------------------------------------------------------
 *
 * pass_chunked.h
 *		The worker's chunked pass over the source (pass_chunked.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SEGMENTS_PASS_CHUNKED_H
#define SEGMENTS_PASS_CHUNKED_H

#include "postgres.h"

#include "datatype/timestamp.h"

typedef enum PassOutcome
{
	PASS_NONE,					/* no pass in progress */
	PASS_CONTINUES,				/* a chunk done, more to come */
	PASS_DONE,					/* the last chunk: the segments are ready */
	PASS_ABANDONED				/* nothing left to evaluate, or reconfigured */
} PassOutcome;

extern void PassStart(Datum ids);
extern bool PassInProgress(Datum *ids, TimestampTz *started_at);
extern void PassAbandon(void);
extern PassOutcome PassChunk(int64 limit, int budget_ms, int64 *visited);
extern double PassFractionDone(void);

#endif							/* SEGMENTS_PASS_CHUNKED_H */

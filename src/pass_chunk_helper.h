/*-------------------------------------------------------------------------
 *
 * pass_chunk_helper.h
 *		A helper process for the worker's chunked pass (pass_chunk_helper.c):
 *		it reads and evaluates each chunk in key order while the worker
 *		writes.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SEGMENTS_PASS_CHUNK_HELPER_H
#define SEGMENTS_PASS_CHUNK_HELPER_H

#include "pass_helper.h"

/* What ChunkHelperReceive() found. */
typedef enum ChunkHelperReceipt
{
	CHUNK_HELPER_MESSAGE,		/* contacts of the chunk (perhaps its last) */
	CHUNK_HELPER_NOTHING,		/* nothing yet */
	CHUNK_HELPER_GONE			/* the helper went: read on alone */
} ChunkHelperReceipt;

/* HelperReader.flags of a chunk's last message */
#define CHUNK_MESSAGE_END		0x1
#define CHUNK_MESSAGE_MORE		0x2 /* the index has keys after the chunk */

extern PGDLLEXPORT void segments_chunk_helper_main(Datum arg);

extern bool ChunkHelperAsk(EvalPlan *plan, Oid index_relid, const Datum *lo, int64 limit);
extern bool ChunkHelperActive(void);
extern ChunkHelperReceipt ChunkHelperReceive(HelperReader *r);
extern void ChunkHelperWait(void);
extern void ChunkHelperCut(void);
extern void ChunkHelperChunkEnd(void);
extern void ChunkHelperEnd(bool failed);

#endif							/* SEGMENTS_PASS_CHUNK_HELPER_H */

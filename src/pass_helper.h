/*-------------------------------------------------------------------------
 *
 * pass_helper.h
 *		Helper processes that read and evaluate contacts for a pass while the
 *		pass writes (pass_helper.c): refresh()'s blocks (pass_parallel.c) or
 *		the key range of a worker's chunk (pass_chunked.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SEGMENTS_PASS_HELPER_H
#define SEGMENTS_PASS_HELPER_H

#include "eval_pass.h"

#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "storage/block.h"
#include "storage/dsm.h"
#include "storage/shm_mq.h"

#define HELPERS_MAX			4
#define HELPER_CHUNK_BLOCKS	16		/* refresh(): blocks per claim */

/* Settings (pass_helper.c). */
extern int	segments_pass_helpers;
extern int	segments_pass_helper_min_pages;

typedef enum HelperMode
{
	HELPER_BLOCKS,				/* chunks of blocks claimed from a counter */
	HELPER_KEY_RANGE			/* the key index from a key on, in key order */
} HelperMode;

/* What the pass and its helpers share (dynamic shared memory). */
typedef struct HelperShared HelperShared;

/* The helpers of one pass, as the pass sees them. */
typedef struct PassHelpers
{
	dsm_segment *seg;
	HelperShared *shared;
	int			nhelpers;
	shm_mq_handle *queues[HELPERS_MAX];
	BackgroundWorkerHandle *handles[HELPERS_MAX];
	bool		gone[HELPERS_MAX];
	bool		latch_reset;	/* a wait reset this process's latch */
} PassHelpers;

/*
 * A message from a helper: a tag (the chunk of blocks, or for a key range
 * HELPER_MSG_CONTACTS or HELPER_MSG_END), a count (contacts; for END
 * whether the index had more), then the contacts, decoded one at a time.
 */
#define HELPER_MSG_CONTACTS		0xfffffffe
#define HELPER_MSG_END			0xffffffff

typedef struct HelperMessage
{
	uint32		tag;
	uint32		count;
	uint32		decoded;
	char	   *next;
	char	   *end;
} HelperMessage;

extern void PassHelperInit(void);
extern bool PassHelpersWanted(EvalPlan *plan, Relation source, BlockNumber min_pages);
extern PassHelpers *PassHelpersStart(EvalPlan *plan, HelperMode mode, int nhelpers,
									 BlockNumber nblocks, Oid index_relid, const Datum *lo,
									 int64 limit);
extern bool PassHelpersClaim(PassHelpers *ph, uint32 *chunk);
extern uint32 PassHelpersChunks(PassHelpers *ph);
extern shm_mq_result PassHelpersReceive(PassHelpers *ph, int h, HelperMessage *msg);
extern bool HelperMessageNext(EvalPlan *plan, HelperMessage *msg, Datum *key, int *nnums,
							  int32 **nums, char **tenant);
extern void PassHelpersWait(PassHelpers *ph);
extern void PassHelpersStop(PassHelpers *ph);
extern void PassHelpersEnd(PassHelpers *ph);

#endif							/* SEGMENTS_PASS_HELPER_H */

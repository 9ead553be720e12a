/*-------------------------------------------------------------------------
 *
 * pass_helper.h
 *		What every helper process of a pass shares (pass_helper.c): who it
 *		connects and evaluates as, the settings it carries from the pass, how
 *		it is registered, and the messages of contacts it sends.
 *
 * Two kinds of helper use these: refresh()'s, which evaluate chunks of the
 * source's blocks (pass_parallel.c), and the worker's, which evaluates each
 * chunk of a chunked pass in key order (pass_chunk_helper.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SEGMENTS_PASS_HELPER_H
#define SEGMENTS_PASS_HELPER_H

#include "eval_pass.h"

#include "lib/stringinfo.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/shm_mq.h"

/* Settings (pass_parallel.c); see README.md, Settings. */
extern int	segments_pass_helpers;
extern int	segments_pass_helper_min_pages;

/* Settings the helper takes from the pass: they shape values' text forms. */
#define HELPER_NCARRIED		5
#define HELPER_SETTING_LEN	1024

/* Who a helper connects as, evaluates as, and with what settings. */
typedef struct HelperIdentity
{
	Oid			database_id;
	Oid			session_user_id;	/* authenticated: may log in */
	Oid			user_id;		/* the pass's current user */
	char		settings[HELPER_NCARRIED][HELPER_SETTING_LEN];
} HelperIdentity;

extern void HelperIdentityCapture(HelperIdentity *id);
extern void HelperConnect(const HelperIdentity *id, const char *name);
extern BlockNumber HelperSourceBlocks(EvalPlan *plan);
extern bool HelperRegister(const char *function, const char *what, dsm_segment *seg, int number,
						   shm_mq *mq, BackgroundWorkerHandle **handle, shm_mq_handle **mqh);

/*
 * A message of contacts: a header of three uint32 (a tag, flags, the
 * number of contacts), then per contact its key (datumSerialize), int32
 * tenant length (-1: none) and bytes, int32 count and the segment numbers.
 */
#define HELPER_MESSAGE_HEADER	(3 * sizeof(uint32))

typedef struct HelperMessage
{
	EvalPlan   *plan;
	StringInfoData buf;
	uint32		ncontacts;
} HelperMessage;

extern void HelperMessageInit(HelperMessage *msg, EvalPlan *plan);
extern void HelperMessageBegin(HelperMessage *msg);
extern ContactBatch *HelperContactBatch(EvalPlan *plan, HelperMessage *msg);
extern void HelperMessageAdd(void *arg, Datum key, int nnums, const int32 *nums,
							 const char *tenant);
extern shm_mq_result HelperMessageSend(shm_mq_handle *mqh, HelperMessage *msg, uint32 tag,
									   uint32 flags);

/* A received message, read one contact at a time (in the current memory context). */
typedef struct HelperReader
{
	uint32		tag;
	uint32		flags;
	uint32		count;
	uint32		read;
	char	   *next;
	const char *end;
	int32	   *nums;
	int			nums_space;
} HelperReader;

extern void HelperReaderStart(HelperReader *r, void *data, Size len);
extern bool HelperReaderNext(HelperReader *r, Datum *key, char **tenant, int *nnums,
							 int32 **nums);

#endif							/* SEGMENTS_PASS_HELPER_H */

/*-------------------------------------------------------------------------
 *
 * pass_helper.c
 *		What every helper process of a pass shares: its identity and
 *		settings, its registration, and its messages of contacts.
 *
 * A helper runs no one's SQL.  It connects as the session's login user
 * (PostgreSQL 15 connects a background worker only as a role that may log
 * in) and evaluates as the pass's current role, in a read-only READ
 * COMMITTED transaction whatever that role's settings say, with the pass's
 * settings that shape values' text forms.  It never waits long behind a
 * lock: the pass may be queued behind it.
 *
 *-------------------------------------------------------------------------
 */
#include "pass_helper.h"

#include "access/heapam.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/rel.h"
#include "pgstat.h"
#include "utils/datum.h"
#include "utils/guc.h"

static const char *const carried_settings[HELPER_NCARRIED] = {
	"TimeZone", "DateStyle", "IntervalStyle", "extra_float_digits", "search_path"
};

/* The identity and settings of this process's pass, for its helpers. */
void
HelperIdentityCapture(HelperIdentity *id)
{
	memset(id, 0, sizeof(HelperIdentity));
	id->database_id = MyDatabaseId;
	id->session_user_id = GetAuthenticatedUserId();
	id->user_id = GetUserId();
	for (int i = 0; i < HELPER_NCARRIED; i++)
		strlcpy(id->settings[i], GetConfigOption(carried_settings[i], false, false),
				HELPER_SETTING_LEN);
}

/* In a helper: connects and takes the pass's role and settings. */
void
HelperConnect(const HelperIdentity *id, const char *name)
{
	BackgroundWorkerInitializeConnectionByOid(id->database_id, id->session_user_id, 0);
	SetUserIdAndSecContext(id->user_id, SECURITY_LOCAL_USERID_CHANGE);
	for (int i = 0; i < HELPER_NCARRIED; i++)
		SetConfigOption(carried_settings[i], id->settings[i], PGC_USERSET, PGC_S_SESSION);
	/* never wait long behind a lock the pass may be queued behind */
	SetConfigOption("lock_timeout", "1000", PGC_USERSET, PGC_S_SESSION);
	/* whatever the login role's own settings say: a reader, no more */
	SetConfigOption("default_transaction_read_only", "on", PGC_USERSET, PGC_S_SESSION);
	SetConfigOption("default_transaction_isolation", "read committed", PGC_USERSET, PGC_S_SESSION);
	SetConfigOption("application_name", name, PGC_USERSET, PGC_S_SESSION);
	pgstat_report_appname(name);
}

/*
 * The source's blocks when a helper may read them for this pass, else 0:
 * helpers wanted (segments.pass_helpers), a writing pass, a source of at
 * least segments.pass_helper_min_size that is a local heap table, and a
 * helper's view the pass's own.  That is so only while the pass's
 * transaction has written nothing (a helper cannot see its uncommitted
 * rows), and not in a SERIALIZABLE one (its reads of the source take the
 * transaction's predicate locks).
 */
BlockNumber
HelperSourceBlocks(EvalPlan *plan)
{
	Relation	source = plan->source;
	BlockNumber nblocks;

	if (segments_pass_helpers <= 0 || plan->verify || plan->trace != NULL ||
		IsInParallelMode() || !IsUnderPostmaster ||
		TransactionIdIsValid(GetTopTransactionIdIfAny()) ||
		IsolationIsSerializable() ||
		source->rd_rel->relpersistence == RELPERSISTENCE_TEMP ||
		source->rd_tableam != GetHeapamTableAmRoutine())
		return 0;
	nblocks = RelationGetNumberOfBlocks(source);
	return nblocks >= (BlockNumber) Max(segments_pass_helper_min_pages, 1) ? nblocks : 0;
}

/*
 * Registers a helper running function (in this library) with the segment
 * seg (its handle: bgw_main_arg) and number (bgw_extra), as the receiver of
 * its queue mq.  False when no background worker slot is free.  The handle
 * and the queue's handle are allocated in the current memory context.
 */
bool
HelperRegister(const char *function, const char *what, dsm_segment *seg, int number,
			   shm_mq *mq, BackgroundWorkerHandle **handle, shm_mq_handle **mqh)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "segments");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(worker.bgw_name, BGW_MAXLEN, "%s for PID %d", what, MyProcPid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "%s", what);
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	memcpy(worker.bgw_extra, &number, sizeof(int));
	worker.bgw_notify_pid = MyProcPid;
	shm_mq_set_receiver(mq, MyProc);
	if (!RegisterDynamicBackgroundWorker(&worker, handle))
		return false;
	*mqh = shm_mq_attach(mq, seg, *handle);
	return true;
}

/* ----------------------------------------------------------------
 * Messages
 * ---------------------------------------------------------------- */

void
HelperMessageInit(HelperMessage *msg, EvalPlan *plan)
{
	msg->plan = plan;
	initStringInfo(&msg->buf);
	HelperMessageBegin(msg);
}

/*
 * A helper's evaluation batch (pass_scan.c): each contact's segments go to
 * msg (initialized here) instead of a membership batch.
 */
ContactBatch *
HelperContactBatch(EvalPlan *plan, HelperMessage *msg)
{
	ContactBatch *cb = ContactBatchCreate(plan, false);

	cb->emit = HelperMessageAdd;
	cb->emit_arg = msg;
	HelperMessageInit(msg, plan);
	return cb;
}

/* Empties the message (its header filled in by HelperMessageSend). */
void
HelperMessageBegin(HelperMessage *msg)
{
	resetStringInfo(&msg->buf);
	msg->ncontacts = 0;
	enlargeStringInfo(&msg->buf, HELPER_MESSAGE_HEADER);
	msg->buf.len = HELPER_MESSAGE_HEADER;
}

/* ContactBatchEmitFn: a contact appended to the message. */
void
HelperMessageAdd(void *arg, Datum key, int nnums, const int32 *nums, const char *tenant)
{
	HelperMessage *msg = (HelperMessage *) arg;
	EvalPlan   *plan = msg->plan;
	Size		len = datumEstimateSpace(key, false, plan->key_byval, plan->key_len);
	int32		tlen = tenant != NULL ? (int32) strlen(tenant) : -1;
	int32		n = nnums;
	char	   *p;

	enlargeStringInfo(&msg->buf, len);
	p = msg->buf.data + msg->buf.len;
	datumSerialize(key, false, plan->key_byval, plan->key_len, &p);
	msg->buf.len = p - msg->buf.data;
	appendBinaryStringInfo(&msg->buf, (char *) &tlen, sizeof(int32));
	if (tlen > 0)
		appendBinaryStringInfo(&msg->buf, tenant, tlen);
	appendBinaryStringInfo(&msg->buf, (char *) &n, sizeof(int32));
	appendBinaryStringInfo(&msg->buf, (const char *) nums, nnums * sizeof(int32));
	msg->ncontacts++;
}

/* Sends the message, waiting for room in the queue. */
shm_mq_result
HelperMessageSend(shm_mq_handle *mqh, HelperMessage *msg, uint32 tag, uint32 flags)
{
	uint32		header[3] = {tag, flags, msg->ncontacts};

	memcpy(msg->buf.data, header, HELPER_MESSAGE_HEADER);
	return shm_mq_send(mqh, msg->buf.len, msg->buf.data, false, true);
}

/* Copies n bytes of a message at r->next to dst, checked against its end. */
static void
reader_take(HelperReader *r, void *dst, Size n)
{
	if (n > (Size) (r->end - r->next))
		elog(ERROR, "segments pass helper sent a truncated message");
	memcpy(dst, r->next, n);
	r->next += n;
}

/* Starts reading a received message (data stays the queue's until the next receive). */
void
HelperReaderStart(HelperReader *r, void *data, Size len)
{
	uint32		header[3];

	r->next = data;
	r->end = (char *) data + len;
	reader_take(r, header, HELPER_MESSAGE_HEADER);
	r->tag = header[0];
	r->flags = header[1];
	r->count = header[2];
	r->read = 0;
	r->nums = NULL;
	r->nums_space = 0;
}

/*
 * The next contact of the message, in the current memory context (nums
 * valid until the next call); false when there is none left.
 */
bool
HelperReaderNext(HelperReader *r, Datum *key, char **tenant, int *nnums, int32 **nums)
{
	bool		isnull;
	int32		tlen;
	int32		n;

	if (r->read >= r->count)
		return false;
	/* (datumRestore reads a length word, then that many bytes: both checked first) */
	{
		int			header;

		if (sizeof(int) > (Size) (r->end - r->next))
			elog(ERROR, "segments pass helper sent a truncated message");
		memcpy(&header, r->next, sizeof(int));
		if (header < -1 ||
			(Size) (header == -1 ? sizeof(Datum) : header) > (Size) (r->end - r->next) - sizeof(int))
			elog(ERROR, "segments pass helper sent a malformed message");
	}
	*key = datumRestore(&r->next, &isnull);
	if (isnull)
		elog(ERROR, "segments pass helper sent a malformed message");
	reader_take(r, &tlen, sizeof(int32));
	*tenant = NULL;
	if (tlen >= 0)
	{
		*tenant = palloc(tlen + 1);
		reader_take(r, *tenant, tlen);
		(*tenant)[tlen] = '\0';
	}
	reader_take(r, &n, sizeof(int32));
	if (n < 0)
		elog(ERROR, "segments pass helper sent a malformed message");
	if (n > r->nums_space)
	{
		r->nums_space = Max(n, 64);
		r->nums = palloc(r->nums_space * sizeof(int32));
	}
	reader_take(r, r->nums, n * sizeof(int32));
	*nnums = n;
	*nums = r->nums;
	r->read++;
	return true;
}

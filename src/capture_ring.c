/*-------------------------------------------------------------------------
 *
 * capture_ring.c
 *		Shared-memory rings of captured contact keys: the cheap path of
 *		change capture (see "Change capture" in README.md).
 *
 * A committing writer whose transaction changed a few contacts with short
 * keys does not insert them into segments.change_queue (heap, index,
 * sequence, WAL): it reserves that many slots in its database's ring
 * before its commit record is written (XACT_EVENT_PRE_COMMIT), fills them
 * once the commit is visible (XACT_EVENT_COMMIT, which may neither
 * allocate nor fail: here it only copies bytes and sets a latch), and
 * releases them as void entries if the transaction aborts after all.
 * Anything else (no ring, a full ring, long keys, a big transaction, a
 * TRUNCATE) goes through the table as before.
 *
 * A ring belongs to one database and is usable only while its worker has
 * claimed and opened it.  The worker reads the entries from the tail
 * (peek), applies them, commits, and only then advances the tail: an
 * error or a restart of the worker loses nothing, since the ring outlives
 * it.  A clean exit closes the ring to new reservations, waits for those
 * in flight, and moves the rest into segments.change_queue.
 *
 * Shared memory does not survive a crash: the entries of a ring are then
 * lost.  The worker therefore records in segments.capture_state (WAL
 * logged) that its database uses a ring (clean = false) before opening a
 * fresh one, and clean = true only after a clean drain; a worker that
 * opens a fresh ring and finds clean = false requests a full pass of every
 * segment (worker.c).  On a hot standby the rings are invisible: the
 * worker writes a watermark there (a time before which every commit was
 * applied or is in the table, see CaptureRingFence) that wait() compares
 * with the standby's last replayed commit.
 *
 * Locking: each ring's spinlock protects its counters; an entry is
 * written outside the lock by the one writer that reserved it, and
 * published by its state, written after a barrier.  Nothing raises an
 * error while holding a spinlock.
 *
 *-------------------------------------------------------------------------
 */
#include "capture_ring.h"
#include "worker.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

int			segments_capture_ring_size = 32768;
bool		segments_capture_ring_on = true;

/* Entry states. */
#define ENTRY_EMPTY		0
#define ENTRY_KEY		1
#define ENTRY_VOID		2		/* reserved, then aborted */

/* 64 bytes: a cache line. */
typedef struct RingEntry
{
	pg_atomic_uint32 state;
	Oid			relid;
	TimestampTz committed;
	uint8		len;
	char		key[CAPTURE_RING_KEY];
	char		pad[64 - 4 - 4 - 8 - 1 - CAPTURE_RING_KEY];
} RingEntry;

StaticAssertDecl(sizeof(RingEntry) == 64, "a ring entry is 64 bytes");

typedef struct Ring
{
	slock_t		mutex;
	Oid			dboid;			/* InvalidOid: free */
	pid_t		owner;			/* the worker that claimed it, 0: none now */
	Latch	   *latch;			/* its latch */
	bool		open;			/* writers may reserve */
	bool		fenced;			/* briefly closed for a watermark */
	bool		checked;		/* a worker committed its recovery check */
	int			nreserving;		/* reservations not yet filled or voided */
	uint64		next;			/* slots reserved so far */
	uint64		tail;			/* slots applied so far */
} Ring;

typedef struct RingShared
{
	int			nrings;
	int			size;
	Ring		rings[CAPTURE_RINGS];
	/* then nrings * size entries */
} RingShared;

static RingShared *ring_shared = NULL;

/* The ring this worker claimed, or -1. */
static int	my_ring = -1;

/* A writer's guess of its database's ring (checked under the lock). */
static int	db_ring_hint = -1;

static inline RingEntry *
ring_entry(int ring, uint64 pos)
{
	RingEntry  *base = (RingEntry *) ((char *) ring_shared +
									  MAXALIGN(sizeof(RingShared)));

	return &base[(Size) ring * ring_shared->size + (Size) (pos % ring_shared->size)];
}

Size
CaptureRingShmemSize(void)
{
	if (segments_capture_ring_size <= 0)
		return 0;
	return add_size(MAXALIGN(sizeof(RingShared)),
					mul_size(mul_size(CAPTURE_RINGS, segments_capture_ring_size),
							 sizeof(RingEntry)));
}

/* Called from shared.c's shmem_startup_hook, AddinShmemInitLock held. */
void
CaptureRingShmemInit(void)
{
	bool		found;

	if (segments_capture_ring_size <= 0)
		return;
	ring_shared = ShmemInitStruct("segments capture rings", CaptureRingShmemSize(), &found);
	if (!found)
	{
		ring_shared->nrings = CAPTURE_RINGS;
		ring_shared->size = segments_capture_ring_size;
		for (int i = 0; i < CAPTURE_RINGS; i++)
		{
			Ring	   *r = &ring_shared->rings[i];

			SpinLockInit(&r->mutex);
			r->dboid = InvalidOid;
			r->owner = 0;
			r->latch = NULL;
			r->open = false;
			r->fenced = false;
			r->nreserving = 0;
			r->next = 0;
			r->tail = 0;
		}
		for (Size i = 0; i < (Size) CAPTURE_RINGS * segments_capture_ring_size; i++)
			pg_atomic_init_u32(&ring_entry(0, 0)[i].state, ENTRY_EMPTY);
	}
}

/* The ring of a database, or -1 (unlocked look: the caller checks again). */
static int
ring_of(Oid dboid)
{
	if (ring_shared == NULL)
		return -1;
	for (int i = 0; i < ring_shared->nrings; i++)
	{
		if (ring_shared->rings[i].dboid == dboid)
			return i;
	}
	return -1;
}

/*
 * The entries of dboid's ring not applied yet: [*tail, *next), read under
 * its lock; -1 and an empty span when dboid has no ring.
 */
static int
ring_span(Oid dboid, uint64 *tail, uint64 *next)
{
	int			i = ring_of(dboid);

	*tail = *next = 0;
	if (i < 0)
		return -1;
	SpinLockAcquire(&ring_shared->rings[i].mutex);
	if (ring_shared->rings[i].dboid == dboid)
	{
		*tail = ring_shared->rings[i].tail;
		*next = ring_shared->rings[i].next;
	}
	SpinLockRelease(&ring_shared->rings[i].mutex);
	return i;
}

/* ---- writers ---- */

/*
 * Reserves count slots in the ring of this database; false (nothing
 * reserved) when there is none open, or not room enough.
 */
bool
CaptureRingReserve(CaptureRingReservation *res, int count)
{
	Ring	   *r;
	bool		ok = false;

	res->ring = -1;
	res->count = 0;
	if (ring_shared == NULL || count <= 0 || count > ring_shared->size)
		return false;
	if (db_ring_hint < 0 || ring_shared->rings[db_ring_hint].dboid != MyDatabaseId)
		db_ring_hint = ring_of(MyDatabaseId);
	if (db_ring_hint < 0)
		return false;
	r = &ring_shared->rings[db_ring_hint];
	SpinLockAcquire(&r->mutex);
	if (r->dboid == MyDatabaseId && r->open && !r->fenced &&
		r->next + count <= r->tail + ring_shared->size)
	{
		res->start = r->next;
		res->no_worker = (r->latch == NULL);
		r->next += count;
		r->nreserving++;
		ok = true;
	}
	SpinLockRelease(&r->mutex);
	if (ok)
	{
		res->ring = db_ring_hint;
		res->count = count;
	}
	return ok;
}

/* Writes key i of a reservation (not yet visible to the worker). */
void
CaptureRingPut(CaptureRingReservation *res, int i, Oid relid, const char *key, int len)
{
	RingEntry  *e = ring_entry(res->ring, res->start + i);

	Assert(i >= 0 && i < res->count && len <= CAPTURE_RING_KEY);
	e->relid = relid;
	e->len = (uint8) len;
	memcpy(e->key, key, len);
}

/* Ends a reservation: publishes its entries in the given state. */
static void
reservation_end(CaptureRingReservation *res, uint32 state, TimestampTz committed)
{
	Ring	   *r;
	Latch	   *latch;

	if (res->ring < 0)
		return;
	r = &ring_shared->rings[res->ring];
	for (int i = 0; i < res->count; i++)
	{
		RingEntry  *e = ring_entry(res->ring, res->start + i);

		e->committed = committed;
		pg_write_barrier();
		pg_atomic_write_u32(&e->state, state);
	}
	SpinLockAcquire(&r->mutex);
	r->nreserving--;
	latch = r->latch;
	SpinLockRelease(&r->mutex);
	if (latch != NULL && state == ENTRY_KEY)
		SetLatch(latch);
	res->ring = -1;
	res->count = 0;
}

/*
 * The transaction committed (XACT_EVENT_COMMIT): its keys become visible
 * to the worker, which is woken.  Neither allocates nor fails.
 */
void
CaptureRingCommit(CaptureRingReservation *res, TimestampTz committed)
{
	reservation_end(res, ENTRY_KEY, committed);
}

/* The transaction aborted after reserving: the slots are void. */
void
CaptureRingAbort(CaptureRingReservation *res)
{
	reservation_end(res, ENTRY_VOID, 0);
}

/* ---- the worker ---- */

/* on_shmem_exit: the ring stays claimed (its entries wait for the next worker). */
static void
ring_detach(int code, Datum arg)
{
	Ring	   *r;

	if (my_ring < 0)
		return;
	r = &ring_shared->rings[my_ring];
	SpinLockAcquire(&r->mutex);
	if (r->owner == MyProcPid)
	{
		r->owner = 0;
		r->latch = NULL;
	}
	SpinLockRelease(&r->mutex);
	my_ring = -1;
}

/*
 * Claims the ring of this database: the one left by a previous worker
 * since the server started, or a free one, emptied.  *fresh: no worker
 * has committed the recovery check for it yet (CaptureRingOpen), so the
 * changes of a ring before it may have been lost.  That stays true for
 * a ring claimed again after the check failed, in this worker or in the
 * next: the check is not skipped because its first try raised an error.
 * False when rings are off or all taken.  The ring is not open yet.  A
 * worker that claimed its ring already gets it again.
 */
bool
CaptureRingClaim(Latch *latch, bool *fresh)
{
	int			found = -1;

	*fresh = false;
	if (ring_shared == NULL)
		return false;
	if (my_ring >= 0)
	{
		/* claimed already, by this worker: is it still to be checked? */
		Ring	   *r = &ring_shared->rings[my_ring];

		SpinLockAcquire(&r->mutex);
		*fresh = !r->checked;
		SpinLockRelease(&r->mutex);
		return true;
	}
	for (int pass = 0; pass < 2 && found < 0; pass++)
	{
		for (int i = 0; i < ring_shared->nrings && found < 0; i++)
		{
			Ring	   *r = &ring_shared->rings[i];

			SpinLockAcquire(&r->mutex);
			if (pass == 0 && r->dboid == MyDatabaseId)
				found = i;
			else if (pass == 1 && r->dboid == InvalidOid)
			{
				r->dboid = MyDatabaseId;
				r->open = false;
				r->fenced = false;
				r->checked = false;
				r->next = r->tail = 0;
				r->nreserving = 0;
				found = i;
			}
			if (found == i)
			{
				r->owner = MyProcPid;
				r->latch = latch;
				*fresh = !r->checked;
			}
			SpinLockRelease(&r->mutex);
		}
	}
	if (found < 0)
		return false;
	if (*fresh)
	{
		/* entries of a previous database's use were applied: all empty */
		for (int i = 0; i < ring_shared->size; i++)
			pg_atomic_write_u32(&ring_entry(found, i)->state, ENTRY_EMPTY);
	}
	my_ring = found;
	before_shmem_exit(ring_detach, (Datum) 0);
	return true;
}

/*
 * Writers may use the claimed ring from now on.  Called once the worker's
 * recovery check (worker.c's ring_start) committed: the ring is checked.
 */
void
CaptureRingOpen(void)
{
	Ring	   *r;

	if (my_ring < 0)
		return;
	r = &ring_shared->rings[my_ring];
	SpinLockAcquire(&r->mutex);
	r->checked = true;
	r->open = true;
	r->fenced = false;
	SpinLockRelease(&r->mutex);
}

bool
CaptureRingClaimed(void)
{
	return my_ring >= 0;
}

/*
 * Copies up to max published entries from the tail (void ones included,
 * with len 0 and relid InvalidOid) into *keys (palloc'd); returns how
 * many.  The tail does not move.
 */
int
CaptureRingPeek(CaptureRingKey **keys, int max)
{
	Ring	   *r;
	uint64		tail;
	uint64		next;
	int			n = 0;
	CaptureRingKey *out;

	*keys = NULL;
	if (my_ring < 0)
		return 0;
	r = &ring_shared->rings[my_ring];
	SpinLockAcquire(&r->mutex);
	tail = r->tail;
	next = r->next;
	SpinLockRelease(&r->mutex);
	if (next == tail)
		return 0;
	max = (int) Min((uint64) max, next - tail);
	out = palloc(max * sizeof(CaptureRingKey));
	for (; n < max; n++)
	{
		RingEntry  *e = ring_entry(my_ring, tail + n);
		uint32		state = pg_atomic_read_u32(&e->state);

		if (state == ENTRY_EMPTY)
			break;				/* reserved, not yet committed */
		pg_read_barrier();
		out[n].committed = e->committed;
		if (state == ENTRY_VOID)
		{
			out[n].relid = InvalidOid;
			out[n].len = 0;
		}
		else
		{
			out[n].relid = e->relid;
			out[n].len = e->len;
			memcpy(out[n].key, e->key, e->len);
		}
		out[n].key[out[n].len] = '\0';
	}
	*keys = out;
	return n;
}

/* The first n entries from the tail are applied (committed): they go. */
void
CaptureRingAdvance(int n)
{
	Ring	   *r;
	uint64		tail;

	if (my_ring < 0 || n <= 0)
		return;
	r = &ring_shared->rings[my_ring];
	SpinLockAcquire(&r->mutex);
	tail = r->tail;
	SpinLockRelease(&r->mutex);
	for (int i = 0; i < n; i++)
		pg_atomic_write_u32(&ring_entry(my_ring, tail + i)->state, ENTRY_EMPTY);
	pg_write_barrier();
	SpinLockAcquire(&r->mutex);
	r->tail = tail + n;
	SpinLockRelease(&r->mutex);
	/* wait() compares the tail with what it saw at its start */
	ConditionVariableBroadcast(&segments_shared->progress_cv);
}

/*
 * Closes the ring to new reservations and waits (at most timeout_ms) for
 * those in flight; true when none is left, so that every entry reserved
 * is published.
 */
bool
CaptureRingClose(int timeout_ms)
{
	Ring	   *r;

	if (my_ring < 0)
		return true;
	r = &ring_shared->rings[my_ring];
	SpinLockAcquire(&r->mutex);
	r->open = false;
	SpinLockRelease(&r->mutex);
	for (int waited = 0;; waited++)
	{
		int			reserving;

		SpinLockAcquire(&r->mutex);
		reserving = r->nreserving;
		SpinLockRelease(&r->mutex);
		if (reserving == 0)
			return true;
		if (waited >= timeout_ms)
			return false;
		pg_usleep(1000L);
	}
}

/*
 * Gives up the ring, once closed, empty and with no reservation in
 * flight; otherwise it stays claimed for the next worker.
 */
void
CaptureRingRelease(void)
{
	Ring	   *r;

	if (my_ring < 0)
		return;
	r = &ring_shared->rings[my_ring];
	SpinLockAcquire(&r->mutex);
	if (!r->open && r->nreserving == 0 && r->tail == r->next)
	{
		r->dboid = InvalidOid;
		r->owner = 0;
		r->latch = NULL;
		my_ring = -1;
	}
	SpinLockRelease(&r->mutex);
}

/*
 * For the watermark: turns writers away to the table for a moment, waits
 * (at most timeout_ms) for reservations in flight, and sets *oldest to the
 * commit time of the oldest entry not applied (0: none).  False, and not
 * fenced, when reservations did not end in time.
 */
bool
CaptureRingFence(int timeout_ms, TimestampTz *oldest)
{
	Ring	   *r;
	uint64		tail;
	uint64		next;

	*oldest = 0;
	if (my_ring < 0)
		return false;
	r = &ring_shared->rings[my_ring];
	SpinLockAcquire(&r->mutex);
	r->fenced = true;
	SpinLockRelease(&r->mutex);
	for (int waited = 0;; waited++)
	{
		int			reserving;

		SpinLockAcquire(&r->mutex);
		reserving = r->nreserving;
		tail = r->tail;
		next = r->next;
		SpinLockRelease(&r->mutex);
		if (reserving == 0)
			break;
		if (waited >= timeout_ms)
		{
			CaptureRingUnfence();
			return false;
		}
		pg_usleep(1000L);
	}
	for (uint64 pos = tail; pos < next; pos++)
	{
		RingEntry  *e = ring_entry(my_ring, pos);

		if (pg_atomic_read_u32(&e->state) != ENTRY_KEY)
			continue;
		pg_read_barrier();
		if (*oldest == 0 || e->committed < *oldest)
			*oldest = e->committed;
	}
	return true;
}

void
CaptureRingUnfence(void)
{
	Ring	   *r;

	if (my_ring < 0)
		return;
	r = &ring_shared->rings[my_ring];
	SpinLockAcquire(&r->mutex);
	r->fenced = false;
	SpinLockRelease(&r->mutex);
}

static int
key_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * The distinct keys of the entries captured on source_relid, and of the
 * text array more (may be NULL), as a text array.
 */
ArrayType *
CaptureRingMergeKeys(CaptureRingKey *keys, int n, Oid source_relid, ArrayType *more)
{
	Datum	   *more_elems = NULL;
	bool	   *more_nulls = NULL;
	int			nmore = 0;
	char	  **all;
	Datum	   *elems;
	int			nall = 0;
	int			nout = 0;

	if (more != NULL)
		deconstruct_array(more, TEXTOID, -1, false, TYPALIGN_INT,
						  &more_elems, &more_nulls, &nmore);
	all = palloc(Max(n + nmore, 1) * sizeof(char *));
	for (int i = 0; i < n; i++)
	{
		if (keys[i].len > 0 && keys[i].relid == source_relid)
			all[nall++] = keys[i].key;
	}
	for (int i = 0; i < nmore; i++)
	{
		if (!more_nulls[i])
			all[nall++] = TextDatumGetCString(more_elems[i]);
	}
	qsort(all, nall, sizeof(char *), key_cmp);
	elems = palloc(Max(nall, 1) * sizeof(Datum));
	for (int i = 0; i < nall; i++)
	{
		if (i > 0 && strcmp(all[i], all[i - 1]) == 0)
			continue;
		elems[nout++] = CStringGetTextDatum(all[i]);
	}
	return construct_array(elems, nout, TEXTOID, -1, false, TYPALIGN_INT);
}

/* ---- segments.wait() and segments.worker ---- */

/*
 * Where the ring of a database stands now: every slot reserved so far
 * (*target), and whether writers may use it (*open).  False when the
 * database has no ring.
 */
bool
CaptureRingTarget(Oid dboid, uint64 *target, bool *open)
{
	int			i = ring_of(dboid);
	bool		ok = false;

	*target = 0;
	*open = false;
	if (i < 0)
		return false;
	SpinLockAcquire(&ring_shared->rings[i].mutex);
	if (ring_shared->rings[i].dboid == dboid)
	{
		*target = ring_shared->rings[i].next;
		*open = ring_shared->rings[i].open;
		ok = true;
	}
	SpinLockRelease(&ring_shared->rings[i].mutex);
	return ok;
}

/* Has the ring of dboid applied every slot before target? */
bool
CaptureRingReached(Oid dboid, uint64 target)
{
	int			i = ring_of(dboid);
	bool		reached = true;

	if (i < 0)
		return true;			/* released: drained into the table */
	SpinLockAcquire(&ring_shared->rings[i].mutex);
	if (ring_shared->rings[i].dboid == dboid)
		reached = (ring_shared->rings[i].tail >= target);
	SpinLockRelease(&ring_shared->rings[i].mutex);
	return reached;
}

/* Entries not applied yet (in flight included); *oldest: commit time of the first, or 0. */
int64
CaptureRingPending(Oid dboid, TimestampTz *oldest)
{
	uint64		tail;
	uint64		next;
	int			i = ring_span(dboid, &tail, &next);

	*oldest = 0;
	if (i < 0)
		return 0;
	for (uint64 pos = tail; pos < next; pos++)
	{
		RingEntry  *e = ring_entry(i, pos);

		if (pg_atomic_read_u32(&e->state) == ENTRY_KEY)
		{
			pg_read_barrier();
			*oldest = e->committed;
			break;
		}
	}
	return (int64) (next - tail);
}

/*
 * Copies the keys published in the ring of dboid and not applied yet
 * (palloc'd *keys); returns how many.  For segments._capture_ring_keys().
 */
int
CaptureRingList(Oid dboid, CaptureRingKey **keys)
{
	uint64		tail;
	uint64		next;
	int			i = ring_span(dboid, &tail, &next);
	int			n = 0;

	*keys = NULL;
	if (i < 0)
		return 0;
	*keys = palloc(Max(next - tail, 1) * sizeof(CaptureRingKey));
	for (uint64 pos = tail; pos < next; pos++)
	{
		RingEntry  *e = ring_entry(i, pos);
		CaptureRingKey *k = &(*keys)[n];

		if (pg_atomic_read_u32(&e->state) != ENTRY_KEY)
			continue;
		pg_read_barrier();
		k->relid = e->relid;
		k->committed = e->committed;
		k->len = Min(e->len, CAPTURE_RING_KEY);
		memcpy(k->key, e->key, k->len);
		k->key[k->len] = '\0';
		n++;
	}
	return n;
}

/*-------------------------------------------------------------------------
 *
 * capture_ring.h
 *		Shared-memory rings of captured contact keys (capture_ring.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SEGMENTS_CAPTURE_RING_H
#define SEGMENTS_CAPTURE_RING_H

#include "postgres.h"

#include "access/xlogdefs.h"
#include "datatype/timestamp.h"
#include "storage/latch.h"
#include "utils/array.h"

/* Number of rings: at most this many databases use the ring at once. */
#define CAPTURE_RINGS		8

/* Longest key (bytes of its text) a ring entry holds; longer ones use the table. */
#define CAPTURE_RING_KEY	39

/* Most keys one transaction puts in the ring; more use the table. */
#define CAPTURE_RING_MAX_KEYS	1000

/* segments.capture_ring_size: entries per ring; 0 = no rings. */
extern int	segments_capture_ring_size;

/* segments.capture_ring: off, this session's writers use the table. */
extern bool segments_capture_ring_on;

/* One captured key, as the worker reads it. */
typedef struct CaptureRingKey
{
	Oid			relid;			/* the source (or partition) it was captured on */
	TimestampTz committed;		/* commit time of its transaction */
	uint8		len;
	char		key[CAPTURE_RING_KEY + 1];	/* NUL-terminated */
} CaptureRingKey;

/* shared memory (shared.c's hooks call these) */
extern Size CaptureRingShmemSize(void);
extern void CaptureRingShmemInit(void);

/* writers (capture.c) */
typedef struct CaptureRingReservation
{
	int			ring;			/* -1: none */
	uint64		start;
	int			count;
	bool		no_worker;		/* the ring's worker is not running */
} CaptureRingReservation;

extern bool CaptureRingReserve(CaptureRingReservation *r, int count);
extern void CaptureRingPut(CaptureRingReservation *r, int i, Oid relid, const char *key, int len);
extern void CaptureRingCommit(CaptureRingReservation *r, TimestampTz committed);
extern void CaptureRingAbort(CaptureRingReservation *r);

/* the worker of the database */
extern bool CaptureRingClaim(Latch *latch, bool *fresh);
extern void CaptureRingOpen(void);
extern bool CaptureRingClaimed(void);
extern int	CaptureRingPeek(CaptureRingKey **keys, int max);
extern void CaptureRingAdvance(int n);
extern bool CaptureRingClose(int timeout_ms);
extern void CaptureRingRelease(void);
extern bool CaptureRingFence(int timeout_ms, TimestampTz *oldest);
extern void CaptureRingUnfence(void);
extern ArrayType *CaptureRingMergeKeys(CaptureRingKey *keys, int n, Oid source_relid,
									   ArrayType *more);

/* backends: segments.wait(), segments.worker */
extern bool CaptureRingTarget(Oid dboid, uint64 *target, bool *open);
extern bool CaptureRingReached(Oid dboid, uint64 target);
extern int64 CaptureRingPending(Oid dboid, TimestampTz *oldest);
extern int	CaptureRingList(Oid dboid, CaptureRingKey **keys);

#endif							/* SEGMENTS_CAPTURE_RING_H */

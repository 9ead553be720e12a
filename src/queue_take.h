/*
 * queue_take.h
 *	  Taking the oldest entries off segments.change_queue, for the worker.
 */
#ifndef SEGMENTS_QUEUE_TAKE_H
#define SEGMENTS_QUEUE_TAKE_H

#include "utils/array.h"

/* A resume point that names no entry: read the queue from its first one. */
#define QUEUE_NO_RESUME		PG_INT64_MIN

/* The result of one QueueTake: what was taken, and where to go on from. */
typedef struct QueueTaken
{
	int64		n;				/* entries taken */
	bool		whole_source;	/* one named every contact (TRUNCATE) */
	ArrayType  *contacts;		/* the others' keys, repeats included; or NULL */
	int64		last_id;		/* the greatest id taken, or the resume point given
								 * (QUEUE_NO_RESUME when both are none) */
	bool		from_start;		/* the queue was also read from its first id */
} QueueTaken;

extern bool QueueTake(int limit, int64 resume_after, bool from_start, QueueTaken *taken);

#endif

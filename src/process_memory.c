/*-------------------------------------------------------------------------
 *
 * process_memory.c
 *		Keeps freed memory in the long-lived background processes.
 *
 * The worker applies contact changes in batches, each in memory contexts
 * that are freed when the batch ends; glibc then gives the top of its heap
 * (and each block it had mapped on its own) back to the kernel, and the
 * next batch faults the same pages in again, zeroed: under a stream of
 * one-row updates that was 9% of the worker's samples (perf, 200,000
 * contacts, 2 writers).  The worker, and the helper of its chunked pass,
 * keep what they freed instead, up to PROCESS_MEMORY_KEEP: the resident
 * size stays at the peak of one batch or chunk, which the batch and chunk
 * sizes bound, not the number of contacts.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "worker.h"

/* The most freed memory a process keeps at the top of its heap. */
#define PROCESS_MEMORY_KEEP		(256 * 1024 * 1024)

/*
 * Blocks up to this size come from the heap rather than a mapping of
 * their own (glibc's largest dynamic threshold; memory contexts grow
 * their blocks to 8 MB).
 */
#define PROCESS_MEMORY_MAPPED	(32 * 1024 * 1024)

/*
 * Called once at the start of a worker or chunk helper.  Only there: a
 * backend's memory is the server's business.  Where the C library is
 * not glibc, nothing changes.
 */
void
ProcessKeepFreedMemory(void)
{
#ifdef __GLIBC__
	if (mallopt(M_MMAP_THRESHOLD, PROCESS_MEMORY_MAPPED) != 1 ||
		mallopt(M_TRIM_THRESHOLD, PROCESS_MEMORY_KEEP) != 1)
		elog(DEBUG1, "segments: mallopt refused the thresholds");
#endif
}

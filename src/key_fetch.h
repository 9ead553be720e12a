/*-------------------------------------------------------------------------
 *
 * key_fetch.h
 *		Reading the rows of many keys through a unique btree index
 *		(key_fetch.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SEGMENTS_KEY_FETCH_H
#define SEGMENTS_KEY_FETCH_H

#include "executor/tuptable.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"

typedef struct KeyFetch KeyFetch;

extern int	KeyFetchSort(Relation index, Datum *keys, int nkeys);
extern KeyFetch *KeyFetchBegin(Relation rel, Relation index, Snapshot snapshot,
							   const Datum *keys, int nkeys);
extern int	KeyFetchNext(KeyFetch *kf, TupleTableSlot *slot);
extern void KeyFetchEnd(KeyFetch *kf);

#endif							/* SEGMENTS_KEY_FETCH_H */

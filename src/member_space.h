/*-------------------------------------------------------------------------
 *
 * member_space.h
 *		Keeping segments.member compact between vacuums (member_space.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SEGMENTS_MEMBER_SPACE_H
#define SEGMENTS_MEMBER_SPACE_H

#include "nodes/bitmapset.h"
#include "storage/block.h"
#include "utils/relcache.h"

extern void MemberReclaimSpace(Relation member);
extern void MemberReclaimRange(Relation member, BlockNumber start, BlockNumber end);
extern void MemberReclaimBlocks(Relation member, const Bitmapset *blocks);

#endif							/* SEGMENTS_MEMBER_SPACE_H */

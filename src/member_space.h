/*-------------------------------------------------------------------------
 *
 * member_space.h
 *		Keeping segments.member compact between vacuums (member_space.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SEGMENTS_MEMBER_SPACE_H
#define SEGMENTS_MEMBER_SPACE_H

#include "utils/relcache.h"

extern void MemberReclaimSpace(Relation member);

#endif							/* SEGMENTS_MEMBER_SPACE_H */

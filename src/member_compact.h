/*-------------------------------------------------------------------------
 *
 * member_compact.h
 *		Moving rows of segments.member off the end of its file.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SEGMENTS_MEMBER_COMPACT_H
#define SEGMENTS_MEMBER_COMPACT_H

#include "postgres.h"

extern double segments_member_compact_fraction;

extern void MemberCompactInit(void);
extern bool MemberCompactDue(Oid relid);
extern bool MemberCompact(Oid relid, bool (*pass_pending) (void));

#endif							/* SEGMENTS_MEMBER_COMPACT_H */

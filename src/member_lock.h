/*-------------------------------------------------------------------------
 *
 * member_lock.h
 *		The lock that makes writers of segments.member take turns
 *		(member_lock.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SEGMENTS_MEMBER_LOCK_H
#define SEGMENTS_MEMBER_LOCK_H

#include "postgres.h"

extern void MemberLockWriters(Oid member_relid);

#endif							/* SEGMENTS_MEMBER_LOCK_H */

/*-------------------------------------------------------------------------
 *
 * member_strip.h
 *		The worker's removal of dropped segments' numbers from stored rows
 *		(member_strip.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SEGMENTS_MEMBER_STRIP_H
#define SEGMENTS_MEMBER_STRIP_H

#include "postgres.h"

extern bool MemberStripDue(void);
extern bool MemberStripActive(void);
extern bool MemberStripStep(void);

#endif							/* SEGMENTS_MEMBER_STRIP_H */

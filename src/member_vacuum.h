/*-------------------------------------------------------------------------
 *
 * member_vacuum.h
 *		The worker's VACUUM of segments.member (member_vacuum.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SEGMENTS_MEMBER_VACUUM_H
#define SEGMENTS_MEMBER_VACUUM_H

extern double segments_member_vacuum_scale_factor;

extern void MemberVacuumInit(void);
extern bool MemberVacuumDue(Oid relid, bool in_pass);
extern void MemberVacuum(Oid relid);

#endif							/* SEGMENTS_MEMBER_VACUUM_H */

/*-------------------------------------------------------------------------
 *
 * member_vacuum.h
 *		The worker's VACUUM of segments.member (member_vacuum.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SEGMENTS_MEMBER_VACUUM_H
#define SEGMENTS_MEMBER_VACUUM_H

#include "postgres.h"

#include "fmgr.h"

extern double segments_member_vacuum_scale_factor;

extern void MemberVacuumInit(void);
extern bool MemberVacuumDue(Oid relid, bool in_pass, bool spaced);
extern double segments_member_reindex_factor;
extern bool MemberVacuumStart(Oid relid);
extern bool MemberVacuumRunning(int64 *ran);
extern void MemberVacuumYieldToPass(void);
extern PGDLLEXPORT void segments_member_vacuum_main(Datum arg);

#endif							/* SEGMENTS_MEMBER_VACUUM_H */

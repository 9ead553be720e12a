/*-------------------------------------------------------------------------
 *
 * privilege.h
 *		Running as the extension's owner; what a definition's author may
 *		read (privilege.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SEGMENTS_PRIVILEGE_H
#define SEGMENTS_PRIVILEGE_H

#include "segments.h"

#include "miscadmin.h"

/* What PrivilegeBecomeOwner() changed, for PrivilegeRestore(). */
typedef struct PrivilegeContext
{
	Oid			save_userid;
	int			save_sec_context;
	int			nestlevel;
} PrivilegeContext;

extern Oid	PrivilegeExtensionOwner(void);
extern void PrivilegeBecomeOwner(PrivilegeContext *ctx, int sec_flags);
extern void PrivilegeRestore(PrivilegeContext *ctx, bool ok);

/* Work run as the owner by PrivilegeRunAsOwner(); arg carries its in and out. */
typedef void (*PrivilegeOwnerFn) (void *arg);
extern void PrivilegeRunAsOwner(int sec_flags, PrivilegeOwnerFn fn, void *arg);
extern Oid	PrivilegeDefinitionAuthor(void);
extern bool PrivilegeMaySelect(Oid relid, AttrNumber attnum, Oid role);
extern void PrivilegeCheckColumns(const RuleNode *root, Oid relid, AttrNumber traits_attnum,
								  Oid role);

#endif							/* SEGMENTS_PRIVILEGE_H */

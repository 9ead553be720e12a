/*-------------------------------------------------------------------------
 *
 * privilege.c
 *		Who the extension's code runs as, and what a definition's author
 *		may read.
 *
 * Code that needs the extension's rights (the capture trigger, the worker,
 * management) runs as the owner of the extension, the way PostgreSQL's
 * referential integrity triggers run as the table owner: the user id is
 * switched for the duration of the work (a local change, as SECURITY
 * DEFINER makes), and search_path is pinned to pg_catalog, pg_temp so
 * that no object planted in another schema is found by name.  Every
 * statement that code runs also qualifies its functions, operators and
 * types; the pin is the second line of defence.
 *
 * Management functions that save a definition are SECURITY INVOKER C
 * entry points (segments_manage_as_owner): they note the calling role,
 * switch to the owner and call the internal function that does the work.
 * Saving checks the definition against the noted role, so a role cannot
 * save rules over columns it may not SELECT, and nobody can skip the check
 * by calling the internal functions: only the owner may execute them.
 *
 *-------------------------------------------------------------------------
 */
#include "catalog.h"
#include "privilege.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_proc.h"
#include "miscadmin.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(segments_manage_as_owner);

/* The role whose rights a definition being saved is checked against. */
static Oid	definition_author = InvalidOid;

/* The owner of extension segments; an error when it is not installed. */
Oid
PrivilegeExtensionOwner(void)
{
	Relation	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			owner = InvalidOid;

	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("segments"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
		owner = ((Form_pg_extension) GETSTRUCT(tuple))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("extension \"segments\" is not installed in this database")));
	return owner;
}

/*
 * Becomes the extension's owner with search_path pinned, adding
 * sec_flags (SECURITY_RESTRICTED_OPERATION where no user code is
 * expected at all) to the local user id change.  Undo with
 * PrivilegeRestore(); an error in between is undone by the transaction
 * or subtransaction abort, as for SECURITY DEFINER functions, or by
 * PrivilegeRestore(ctx, false) in a PG_CATCH.
 */
void
PrivilegeBecomeOwner(PrivilegeContext *ctx, int sec_flags)
{
	Oid			owner = PrivilegeExtensionOwner();

	GetUserIdAndSecContext(&ctx->save_userid, &ctx->save_sec_context);
	SetUserIdAndSecContext(owner, ctx->save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE | sec_flags);
	ctx->nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
}

/* Back to the user and settings before PrivilegeBecomeOwner(). */
void
PrivilegeRestore(PrivilegeContext *ctx, bool ok)
{
	AtEOXact_GUC(ok, ctx->nestlevel);
	SetUserIdAndSecContext(ctx->save_userid, ctx->save_sec_context);
}

/*
 * Runs fn(arg) as the extension's owner (PrivilegeBecomeOwner() with
 * sec_flags), then back to the caller's user and settings, after an error
 * too.  fn runs in the caller's memory context and returns its results
 * through arg: no local of the caller is set between PG_TRY and PG_CATCH,
 * where it would have to be volatile.
 */
void
PrivilegeRunAsOwner(int sec_flags, PrivilegeOwnerFn fn, void *arg)
{
	PrivilegeContext ctx;

	PrivilegeBecomeOwner(&ctx, sec_flags);
	PG_TRY();
	{
		fn(arg);
	}
	PG_CATCH();
	{
		PrivilegeRestore(&ctx, false);
		PG_RE_THROW();
	}
	PG_END_TRY();
	PrivilegeRestore(&ctx, true);
}

/*
 * The role a definition being saved is checked against: the caller of the
 * management function, noted before it switched to the owner; otherwise
 * the current user.
 */
Oid
PrivilegeDefinitionAuthor(void)
{
	return OidIsValid(definition_author) ? definition_author : GetUserId();
}

/* May role read column attnum of relid, by table or column privileges? */
bool
PrivilegeMaySelect(Oid relid, AttrNumber attnum, Oid role)
{
	return pg_class_aclcheck(relid, role, ACL_SELECT) == ACLCHECK_OK ||
		pg_attribute_aclcheck(relid, attnum, role, ACL_SELECT) == ACLCHECK_OK;
}

/* Raises the error of a column role may not read. */
static void
column_denied(Oid relid, AttrNumber attnum, Oid role, const char *path, bool traits)
{
	char	   *column = get_attname(relid, attnum, false);
	char	   *table = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
												   get_rel_name(relid));

	/* worded as PostgreSQL's own column privilege errors */
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for column \"%s\" of relation \"%s\"",
					column, get_rel_name(relid)),
			 errdetail(traits ?
					   "The trait condition at %s reads the traits column; a definition may read only columns that role \"%s\" may SELECT." :
					   "The condition at %s reads this column; a definition may read only columns that role \"%s\" may SELECT.",
					   path, GetUserNameFromId(role, false)),
			 errhint("Ask the owner of %s to GRANT SELECT (%s) on it to \"%s\".",
					 table, quote_identifier(column), GetUserNameFromId(role, false))));
}

/* Checks every attribute and trait condition under node. */
static void
check_node(const RuleNode *node, Oid relid, AttrNumber traits_attnum, Oid role)
{
	const RuleCondition *cond = node->cond;

	for (int i = 0; i < node->nchildren; i++)
		check_node(node->children[i], relid, traits_attnum, role);
	if (node->kind != RULE_CONDITION)
		return;
	if (cond->type == COND_ATTRIBUTE && !PrivilegeMaySelect(relid, cond->attr.attnum, role))
		column_denied(relid, cond->attr.attnum, role,
					  cond->json_path ? cond->json_path : "$", false);
	if (cond->type == COND_TRAIT && traits_attnum > 0 &&
		!PrivilegeMaySelect(relid, traits_attnum, role))
		column_denied(relid, traits_attnum, role,
					  cond->json_path ? cond->json_path : "$", true);
}

/*
 * Refuses a definition (parsed against the source relid) that reads a
 * column role may not SELECT: SQLSTATE 42501, naming the column and the
 * condition.
 */
void
PrivilegeCheckColumns(const RuleNode *root, Oid relid, AttrNumber traits_attnum, Oid role)
{
	if (root == NULL || !OidIsValid(relid))
		return;
	check_node(root, relid, traits_attnum, role);
}

/* The internal function a management entry point forwards to. */
typedef struct ManageTarget
{
	FmgrInfo	flinfo;
} ManageTarget;

/*
 * segments.create_segment(...), segments.update_segment(...): SECURITY
 * INVOKER entry points that note the calling role, become the extension's
 * owner and call segments._<name>(...) with the same arguments.  The
 * internal functions may be executed by the owner only.
 */
Datum
segments_manage_as_owner(PG_FUNCTION_ARGS)
{
	ManageTarget *target = (ManageTarget *) fcinfo->flinfo->fn_extra;
	LOCAL_FCINFO(inner, FUNC_MAX_ARGS);
	PrivilegeContext ctx;
	Oid			save_author = definition_author;
	Datum		result;

	if (target == NULL)
	{
		Oid			self = fcinfo->flinfo->fn_oid;
		HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(self));
		Form_pg_proc proc;
		char	   *name;
		Oid			inner_oid;

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for function %u", self);
		proc = (Form_pg_proc) GETSTRUCT(tup);
		name = psprintf("_%s", NameStr(proc->proname));
		inner_oid = LookupFuncName(list_make2(makeString("segments"), makeString(name)),
								   proc->pronargs, proc->proargtypes.values, false);
		ReleaseSysCache(tup);
		target = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(ManageTarget));
		fmgr_info_cxt(inner_oid, &target->flinfo, fcinfo->flinfo->fn_mcxt);
		fcinfo->flinfo->fn_extra = target;
	}

	InitFunctionCallInfoData(*inner, &target->flinfo, PG_NARGS(), PG_GET_COLLATION(),
							 NULL, NULL);
	for (int i = 0; i < PG_NARGS(); i++)
	{
		inner->args[i].value = fcinfo->args[i].value;
		inner->args[i].isnull = fcinfo->args[i].isnull;
	}

	definition_author = GetUserId();
	PrivilegeBecomeOwner(&ctx, 0);
	PG_TRY();
	{
		result = FunctionCallInvoke(inner);
	}
	PG_CATCH();
	{
		PrivilegeRestore(&ctx, false);
		definition_author = save_author;
		PG_RE_THROW();
	}
	PG_END_TRY();
	PrivilegeRestore(&ctx, true);
	definition_author = save_author;

	fcinfo->isnull = inner->isnull;
	return result;
}

/*-------------------------------------------------------------------------
 *
 * tenancy.c
 *		Who may see what: the session's tenant (segments.tenant), the
 *		segments_admin role, and the visibility of segments and contacts
 *		that every reading and management path applies.
 *
 * With a tenant column configured, tenancy is a boundary:
 *	- a session with a tenant sees that tenant's segments and the global
 *	  ones (tenant NULL), and in any segment only its tenant's contacts;
 *	- a session without a tenant sees everything if its role is an admin
 *	  (superuser, or member of segments_admin), and nothing otherwise;
 *	  its management calls fail (fail closed).
 * Without a tenant column, contacts carry no tenant: segments.tenant only
 * narrows which segments a session sees, and every session without it
 * sees them all.
 *
 * The role that counts is the session's current role outside any SECURITY
 * DEFINER function (GetOuterUserId), so the extension's own functions,
 * which run as its owner, apply the caller's view and not their owner's.
 *
 * segments.tenant is PGC_SUSET: only superusers and roles granted SET on
 * it change it, and ALTER ROLE ... SET fixes it per role (segments.c).
 * Its value is read here, checked against the tenant column's type and
 * put in that type's text form, as evaluation writes contact tenants.
 *
 *-------------------------------------------------------------------------
 */
#include "catalog.h"

#include "catalog/pg_authid.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(segments_session_tenant);
PG_FUNCTION_INFO_V1(segments_tenant_visible);
PG_FUNCTION_INFO_V1(segments_contact_visible);
PG_FUNCTION_INFO_V1(segments_manage_tenant);
PG_FUNCTION_INFO_V1(segments_canonical_tenant);
PG_FUNCTION_INFO_V1(segments_is_admin);
PG_FUNCTION_INFO_V1(segments_contact_tenant);

/* The last segments.tenant value checked, for the catalog load it was checked against. */
static struct
{
	uint64		generation;		/* 0: empty */
	char	   *raw;
	char	   *canonical;
}			checked_tenant;

/* Is the session's role (outside SECURITY DEFINER functions) an admin? */
bool
CatalogIsAdmin(void)
{
	Oid			role = GetOuterUserId();
	Oid			admin;

	if (superuser_arg(role))
		return true;
	admin = get_role_oid("segments_admin", true);
	return OidIsValid(admin) && has_privs_of_role(role, admin);
}

/*
 * A tenant value in the text form of the tenant column's type (so '007'
 * for an integer column is '7', as evaluation writes it); an ERROR naming
 * the value's origin (what: the setting, or the argument) when the type
 * cannot hold it.  palloc'd in the current context.
 */
static char *
canonical_tenant(const SegmentCatalog *cat, const char *value, const char *what)
{
	const SegmentsConfig *config = &cat->config;
	MemoryContext cxt = CurrentMemoryContext;
	Oid			typid = config->tenant_type;
	Oid			infunc;
	Oid			ioparam;
	Oid			outfunc;
	bool		isvarlena;
	char	   *volatile result = NULL;

	if (!OidIsValid(typid) || typid == TEXTOID)
		return pstrdup(value);
	getTypeInputInfo(typid, &infunc, &ioparam);
	getTypeOutputInfo(typid, &outfunc, &isvarlena);
	PG_TRY();
	{
		Datum		d = OidInputFunctionCall(infunc, (char *) value, ioparam, -1);

		result = OidOutputFunctionCall(outfunc, d);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for %s: \"%s\"", what, value),
				 errdetail("The tenant column \"%s\" has type %s: %s.",
						   config->tenant_column, format_type_be(typid), edata->message),
				 errhint("Give a tenant value of type %s.", format_type_be(typid))));
	}
	PG_END_TRY();
	return result;
}

/*
 * The session's tenant (segments.tenant) in its canonical form, or NULL
 * when unset or empty.  An ERROR when the tenant column cannot hold it.
 */
static const char *
session_tenant(const SegmentCatalog *cat)
{
	const char *raw = GetConfigOption("segments.tenant", true, false);

	if (raw == NULL || raw[0] == '\0')
		return NULL;
	if (checked_tenant.generation != 0 && cat->generation != 0 &&
		checked_tenant.generation == cat->generation && strcmp(checked_tenant.raw, raw) == 0)
		return checked_tenant.canonical;
	{
		char	   *canonical = canonical_tenant(cat, raw, "parameter \"segments.tenant\"");

		if (cat->generation == 0)
			return canonical;
		if (checked_tenant.raw)
			pfree(checked_tenant.raw);
		if (checked_tenant.canonical)
			pfree(checked_tenant.canonical);
		checked_tenant.raw = MemoryContextStrdup(TopMemoryContext, raw);
		checked_tenant.canonical = MemoryContextStrdup(TopMemoryContext, canonical);
		checked_tenant.generation = cat->generation;
		return checked_tenant.canonical;
	}
}

/* The session's canonical tenant, or NULL; see session_tenant. */
const char *
CatalogSessionTenant(void)
{
	return session_tenant(CatalogGet());
}

/* What this session may see, against catalog cat. */
TenantView
CatalogTenantViewOf(const SegmentCatalog *cat)
{
	TenantView	view;
	const char *tenant = session_tenant(cat);

	if (tenant != NULL)
		return CatalogTenantViewFor(cat, tenant);
	view.tenant = NULL;
	view.filter_contacts = false;
	if (!cat->config.has_tenant_column || CatalogIsAdmin())
		view.scope = TENANT_SCOPE_ALL;
	else
		view.scope = TENANT_SCOPE_NONE;
	return view;
}

/*
 * What a session of this tenant (canonical text form) may see: its own
 * segments, the global ones, and in each its own contacts.
 */
TenantView
CatalogTenantViewFor(const SegmentCatalog *cat, const char *tenant)
{
	TenantView	view;

	view.scope = TENANT_SCOPE_ONE;
	view.tenant = tenant;
	/* stored membership of a 0.1.0 schema has no tenants: as 0.1.0 did */
	view.filter_contacts = cat->config.has_tenant_column &&
		cat->config.member_tenant_attnum > 0;
	return view;
}

/* What this session may see (the cached catalog). */
TenantView
CatalogTenantView(void)
{
	return CatalogTenantViewOf(CatalogGet());
}

/* May a session with this view see segments of this tenant (NULL: global)? */
bool
CatalogSegmentVisibleIn(const TenantView *view, const char *tenant)
{
	switch (view->scope)
	{
		case TENANT_SCOPE_ALL:
			return true;
		case TENANT_SCOPE_ONE:
			return tenant == NULL || strcmp(tenant, view->tenant) == 0;
		case TENANT_SCOPE_NONE:
			return false;
	}
	return false;
}

/* May this session see segments of this tenant? */
bool
CatalogTenantVisible(const char *tenant)
{
	TenantView	view = CatalogTenantView();

	return CatalogSegmentVisibleIn(&view, tenant);
}

/*
 * May a session with this view see a contact of this tenant (given as
 * len bytes, not terminated; NULL: no tenant)?
 */
bool
CatalogContactVisibleIn(const TenantView *view, const char *tenant, int len)
{
	if (view->scope == TENANT_SCOPE_NONE)
		return false;
	if (!view->filter_contacts)
		return true;
	return tenant != NULL && (int) strlen(view->tenant) == len &&
		memcmp(view->tenant, tenant, len) == 0;
}

/*
 * The view of a session that is about to manage segments: an ERROR when
 * it may see none (no tenant, not an admin).
 */
TenantView
CatalogManageView(void)
{
	TenantView	view = CatalogTenantView();

	if (view.scope == TENANT_SCOPE_NONE)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("segments.tenant is not set"),
				 errdetail("Segments are kept per tenant, and only members of segments_admin may work without one."),
				 errhint("Set segments.tenant for this role (ALTER ROLE ... SET segments.tenant = '...'), or grant it segments_admin.")));
	return view;
}

/*
 * segments._session_tenant() RETURNS text
 *
 * The session's tenant in the tenant column's text form, or NULL.
 */
Datum
segments_session_tenant(PG_FUNCTION_ARGS)
{
	const char *tenant = CatalogSessionTenant();

	if (tenant == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(tenant));
}

/*
 * segments._tenant_visible(tenant text) RETURNS boolean
 *
 * May this session see segments of this tenant (NULL: global ones)?
 */
Datum
segments_tenant_visible(PG_FUNCTION_ARGS)
{
	TenantView	view = CatalogTenantView();

	PG_RETURN_BOOL(CatalogSegmentVisibleIn(&view, PG_ARGISNULL(0) ? NULL :
										   text_to_cstring(PG_GETARG_TEXT_PP(0))));
}

/*
 * segments._contact_visible(tenant text) RETURNS boolean
 *
 * May this session see a contact of this tenant (as stored in
 * segments.member)?
 */
Datum
segments_contact_visible(PG_FUNCTION_ARGS)
{
	TenantView	view = CatalogTenantView();
	text	   *t;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(CatalogContactVisibleIn(&view, NULL, 0));
	t = PG_GETARG_TEXT_PP(0);
	PG_RETURN_BOOL(CatalogContactVisibleIn(&view, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)));
}

/*
 * segments._manage_tenant() RETURNS text
 *
 * For management functions: the session's tenant (NULL for an admin
 * without one); an ERROR when the session may manage nothing.
 */
Datum
segments_manage_tenant(PG_FUNCTION_ARGS)
{
	TenantView	view = CatalogManageView();

	if (view.scope == TENANT_SCOPE_ONE)
		PG_RETURN_TEXT_P(cstring_to_text(view.tenant));
	PG_RETURN_NULL();
}

/*
 * segments._canonical_tenant(tenant text) RETURNS text
 *
 * A tenant given to create_segment, in the tenant column's text form; an
 * ERROR when the column's type cannot hold it.
 */
Datum
segments_canonical_tenant(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(canonical_tenant(CatalogGet(),
													  text_to_cstring(PG_GETARG_TEXT_PP(0)),
													  "tenant of a segment")));
}

/*
 * segments._is_admin() RETURNS boolean
 *
 * Is the session's role a superuser or a member of segments_admin?
 */
Datum
segments_is_admin(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(CatalogIsAdmin());
}

/*
 * segments._contact_tenant() RETURNS text
 *
 * The tenant whose contacts alone this session may see, or NULL when
 * contacts are not filtered by tenant.
 */
Datum
segments_contact_tenant(PG_FUNCTION_ARGS)
{
	TenantView	view = CatalogTenantView();

	if (!view.filter_contacts)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(view.tenant));
}

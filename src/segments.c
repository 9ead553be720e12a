/*-------------------------------------------------------------------------
 *
 * segments.c
 *		Module entry: _PG_init, settings (GUCs) and background worker
 *		registration.
 *
 *-------------------------------------------------------------------------
 */
#include "catalog.h"

#include "utils/guc.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* segments.tenant: limits this session to one tenant's segments. */
static char *segments_tenant = NULL;

/* Defines the settings and, when preloaded, registers the worker. */
void
_PG_init(void)
{
	DefineCustomStringVariable("segments.tenant",
							   "Limits the session to the segments of this tenant.",
							   "Empty (the default) means every tenant.",
							   &segments_tenant,
							   "",
							   PGC_USERSET,
							   0,
							   NULL, NULL, NULL);

	MarkGUCPrefixReserved("segments");
	CatalogInitCallbacks();
}

/*-------------------------------------------------------------------------
 *
 * definition.c
 *		Checking a segment definition against the catalog when it is saved:
 *		segment references (same tenant, no cycles) and the SQL functions
 *		segments._validate() and segments.compile().
 *
 *-------------------------------------------------------------------------
 */
#include "catalog.h"
#include "privilege.h"

#include "access/table.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/rel.h"

PG_FUNCTION_INFO_V1(segments_validate);
PG_FUNCTION_INFO_V1(segments_compile);

/* What the reference resolver needs: the catalog and the tenant. */
typedef struct ResolveArg
{
	const SegmentCatalog *catalog;
	const char *tenant;
} ResolveArg;

/* Parses a canonical uuid text (8-4-4-4-12 hex digits) without raising. */
bool
CatalogParseUuid(const char *str, pg_uuid_t *uuid)
{
	int			j = 0;

	if (strlen(str) != 36)
		return false;
	for (int i = 0; i < 36; i++)
	{
		char		c = str[i];

		if (i == 8 || i == 13 || i == 18 || i == 23)
		{
			if (c != '-')
				return false;
			continue;
		}
		if (!isxdigit((unsigned char) c))
			return false;
		{
			int			v = isdigit((unsigned char) c) ? c - '0' :
				(tolower((unsigned char) c) - 'a' + 10);

			if (j % 2 == 0)
				uuid->data[j / 2] = v << 4;
			else
				uuid->data[j / 2] |= v;
			j++;
		}
	}
	return true;
}

/* Do two tenants (NULL: none) match? */
static bool
same_tenant(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/*
 * RuleParseContext.resolve for saving: a segment of the same tenant, by id
 * or by name.
 */
static bool
resolve_in_catalog(const char *ref, pg_uuid_t *id, void *arg)
{
	ResolveArg *ra = (ResolveArg *) arg;
	pg_uuid_t	ref_id;
	bool		is_uuid = CatalogParseUuid(ref, &ref_id);

	for (int i = 0; i < ra->catalog->nsegments; i++)
	{
		const CatalogSegment *seg = &ra->catalog->segments[i];

		if (!same_tenant(seg->tenant, ra->tenant))
			continue;
		if ((is_uuid && memcmp(&seg->id, &ref_id, sizeof(pg_uuid_t)) == 0) ||
			strcmp(seg->name, ref) == 0)
		{
			*id = seg->id;
			return true;
		}
	}
	return false;
}

/* Does segment `from` reach `target` through references (or is it)? */
static bool
depends_on(const SegmentCatalog *cat, const pg_uuid_t *from,
		   const pg_uuid_t *target, int depth)
{
	const CatalogSegment *seg;

	if (memcmp(from, target, sizeof(pg_uuid_t)) == 0)
		return true;
	/* the catalog itself is acyclic, so depth only guards against damage */
	if (depth > cat->nsegments || (seg = CatalogFindById(cat, from)) == NULL)
		return false;
	for (int i = 0; i < seg->ndepends; i++)
	{
		if (depends_on(cat, &seg->depends_on[i], target, depth + 1))
			return true;
	}
	return false;
}

/*
 * Rejects a definition of segment `self` whose references lead back to it,
 * naming the first condition that closes the cycle.
 */
static void
check_cycles(const RuleNode *node, const SegmentCatalog *cat, const pg_uuid_t *self)
{
	const RuleCondition *cond = node->cond;

	for (int i = 0; i < node->nchildren; i++)
		check_cycles(node->children[i], cat, self);
	if (node->kind != RULE_CONDITION || cond->type != COND_SEGMENT)
		return;
	for (int i = 0; i < cond->nsegments; i++)
	{
		if (depends_on(cat, &cond->segment_ids[i], self, 0))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid segment definition at %s: segment \"%s\" references this segment, which would make a cycle",
							cond->json_path ? cond->json_path : "$",
							cond->segment_refs[i]),
					 errhint("A segment cannot depend on itself, directly or through other segments.")));
	}
}

/* Appends {"ref": "uuid", ...} pairs of every segment condition. */
static void
append_refs(StringInfo buf, const RuleNode *node, bool *first)
{
	const RuleCondition *cond = node->cond;

	for (int i = 0; i < node->nchildren; i++)
		append_refs(buf, node->children[i], first);
	if (node->kind != RULE_CONDITION || cond->type != COND_SEGMENT)
		return;
	for (int i = 0; i < cond->nsegments; i++)
	{
		if (!*first)
			appendStringInfoString(buf, ", ");
		*first = false;
		escape_json(buf, cond->segment_refs[i]);
		appendStringInfoString(buf, ": ");
		escape_json(buf, DatumGetCString(DirectFunctionCall1(uuid_out,
															 UUIDPGetDatum(&cond->segment_ids[i]))));
	}
}

/*
 * Parses a definition for a segment of `tenant` against the current source
 * and catalog.  Raises the rule errors, and refuses a definition that reads
 * a column its author (PrivilegeDefinitionAuthor()) may not SELECT.  The
 * tree lives in the current memory context.
 */
RuleParseResult *
DefinitionParse(Jsonb *definition, const char *tenant, const SegmentCatalog *cat)
{
	RuleParseContext pctx;
	ResolveArg	ra;
	Relation	source = NULL;
	RuleParseResult *result;

	if (cat->config.configured)
		source = table_open(cat->config.source_relid, AccessShareLock);
	CatalogBuildParseContext(&pctx, source, &cat->config);
	ra.catalog = cat;
	ra.tenant = tenant;
	pctx.resolve = resolve_in_catalog;
	pctx.resolve_arg = &ra;

	result = RuleParse(definition, &pctx);
	if (source != NULL)
		PrivilegeCheckColumns(result->root, cat->config.source_relid,
							  cat->config.traits_attnum, PrivilegeDefinitionAuthor());

	if (source != NULL)
		table_close(source, NoLock);
	return result;
}

/*
 * segments._validate(definition jsonb, tenant text, self uuid) RETURNS jsonb
 *
 * Checks a definition before it is saved; returns {"refs": {...},
 * "depends_on": [...], "uses_time": bool}.
 */
Datum
segments_validate(PG_FUNCTION_ARGS)
{
	Jsonb	   *definition = PG_GETARG_JSONB_P(0);
	char	   *tenant = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	const SegmentCatalog *cat = CatalogGet();
	RuleParseResult *result = DefinitionParse(definition, tenant, cat);
	StringInfoData buf;
	bool		first = true;

	if (!PG_ARGISNULL(2))
		check_cycles(result->root, cat, PG_GETARG_UUID_P(2));

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"refs\": {");
	append_refs(&buf, result->root, &first);
	appendStringInfoString(&buf, "}, \"depends_on\": [");
	for (int i = 0; i < result->nrefs; i++)
	{
		if (i > 0)
			appendStringInfoString(&buf, ", ");
		escape_json(&buf, DatumGetCString(DirectFunctionCall1(uuid_out,
															  UUIDPGetDatum(&result->refs[i]))));
	}
	appendStringInfo(&buf, "], \"uses_time\": %s}", result->uses_time ? "true" : "false");

	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

/*
 * segments.compile(definition jsonb) RETURNS text
 *
 * Validates a definition (in the session's tenant) and shows what it
 * compiles to.
 */
Datum
segments_compile(PG_FUNCTION_ARGS)
{
	Jsonb	   *definition = PG_GETARG_JSONB_P(0);
	TenantView	view = CatalogManageView();
	RuleParseResult *result = DefinitionParse(definition, view.tenant, CatalogGet());

	PG_RETURN_TEXT_P(cstring_to_text(RuleRender(result->root)));
}

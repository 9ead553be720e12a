/*-------------------------------------------------------------------------
 *
 * membership_plan.c
 *		What the planner knows about segments.membership: one segment's
 *		members come from the GIN index, and how many there are comes
 *		from the catalog.
 *
 * The view joins segments.segment to segments.member on
 *     segments._member_in(segments._member_segs(m.data), s.num)
 * and reads since with segments._member_since(m.data, s.num): no row of
 * segments.member is unnested, so a query for one segment costs one
 * index condition and one decode per member.  This file makes that join
 * condition useful to the planner:
 *   - as an index condition it becomes _member_segs(data) @> ARRAY[num],
 *     which the GIN index answers (a bitmap scan per segment row: the
 *     plan for one segment, and for every segment a scan each);
 *   - its selectivity is the segment's member count over the stored rows,
 *     read from segments.segment_state: exact for a segment named by id
 *     (or number) with a constant, the mean over all segments otherwise,
 *     so the planner sizes the join it feeds (a small segment: an index
 *     nested loop into the fact table; a big one: a hash of the members).
 *
 * And the view is a security barrier (a tenant must not see another's
 * contacts through a leaky function of its own), which PostgreSQL plans as
 * a closed subquery: no statistics come out of it (so a hash on its
 * contact_id looks ten times its cost) and no join condition goes into it
 * (no index nested loop from the fact table).  The reports it serves hashed
 * the fact table instead of the segment's members.  So the planner hook
 * below states the view's tenancy conditions the way row level security
 * states its policies, as security quals of segments.member and
 * segments.segment, and lets the view be flattened into the query: those
 * conditions still run before any condition of the caller's that is not
 * leakproof, and the planner sees the tables' statistics and can
 * parameterize scans across the view's edge.
 *
 *-------------------------------------------------------------------------
 */
#include "catalog.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/pathnodes.h"
#include "nodes/supportnodes.h"
#include "optimizer/optimizer.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/selfuncs.h"
#include "utils/uuid.h"

#include "catalog/pg_collation.h"
#include "catalog/pg_operator.h"
#include "catalog/namespace.h"
#include "optimizer/planner.h"
#include "optimizer/plancat.h"
#include "parser/parse_func.h"
#include "parser/parsetree.h"

#include "citus.h"

PG_FUNCTION_INFO_V1(segments_member_in);
PG_FUNCTION_INFO_V1(segments_member_in_support);
PG_FUNCTION_INFO_V1(segments_visible_support);

/* The strategy number of @> in GIN array_ops (ginarrayproc.c). */
#define GIN_CONTAINS_STRATEGY 2

/* Without counts (nothing evaluated yet): one contact in five. */
#define MEMBER_IN_DEFAULT_SEL 0.2

/* Columns of segments.segment and segments.segment_state read here. */
#define SEGMENT_ATTNUM_ID 1
#define SEGMENT_ATTNUM_NUM 2
#define STATE_ATTNUM_SEGMENT_ID 1
#define STATE_ATTNUM_MEMBER_COUNT 3

/*
 * segments._member_in(segs integer[], num integer) RETURNS boolean
 *
 * Is num among the segment numbers segs (of _member_segs)?  LEAKPROOF, so
 * that the view's join on it may run before the tenancy conditions (as
 * the index condition of one segment): it raises no error for any input
 * (NULL elements are skipped, every dimension is read) and tells nothing
 * but its result.  A row holds a few dozen numbers: a linear scan.
 */
Datum
segments_member_in(PG_FUNCTION_ARGS)
{
	ArrayType  *segs = PG_GETARG_ARRAYTYPE_P(0);
	int32		num = PG_GETARG_INT32(1);
	int			n = ArrayGetNItems(ARR_NDIM(segs), ARR_DIMS(segs));

	if (!ARR_HASNULL(segs))
	{
		const int32 *v = (const int32 *) ARR_DATA_PTR(segs);

		for (int i = 0; i < n; i++)
		{
			if (v[i] == num)
				PG_RETURN_BOOL(true);
		}
	}
	else
	{
		Datum	   *elems;
		bool	   *nulls;

		deconstruct_array(segs, INT4OID, sizeof(int32), true, TYPALIGN_INT,
						  &elems, &nulls, &n);
		for (int i = 0; i < n; i++)
		{
			if (!nulls[i] && DatumGetInt32(elems[i]) == num)
				PG_RETURN_BOOL(true);
		}
	}
	PG_RETURN_BOOL(false);
}

/* What the restriction on the segment side asks for. */
typedef struct SegmentPick
{
	int			nids;			/* segments named by id (0: see num) */
	pg_uuid_t  *ids;
	bool		has_num;		/* or one segment by number */
	int32		num;
} SegmentPick;

/*
 * Reads the restriction clauses of the segment relation for "id = const",
 * "id = ANY (const array)" or "num = const"; false when there is none.
 */
static bool
segment_pick(PlannerInfo *root, Var *var, SegmentPick *pick)
{
	RelOptInfo *rel;
	ListCell   *lc;

	memset(pick, 0, sizeof(*pick));
	if (var->varlevelsup != 0 || var->varno <= 0 || var->varno >= root->simple_rel_array_size)
		return false;
	rel = root->simple_rel_array[var->varno];
	if (rel == NULL)
		return false;
	foreach(lc, rel->baserestrictinfo)
	{
		RestrictInfo *ri = lfirst_node(RestrictInfo, lc);
		Node	   *clause = (Node *) ri->clause;
		List	   *args;
		Var		   *col;
		Const	   *val;
		Oid			opfunc;
		bool		any = false;

		if (IsA(clause, OpExpr))
		{
			args = ((OpExpr *) clause)->args;
			opfunc = get_opcode(((OpExpr *) clause)->opno);
		}
		else if (IsA(clause, ScalarArrayOpExpr) && ((ScalarArrayOpExpr *) clause)->useOr)
		{
			args = ((ScalarArrayOpExpr *) clause)->args;
			opfunc = get_opcode(((ScalarArrayOpExpr *) clause)->opno);
			any = true;
		}
		else
			continue;
		if (list_length(args) != 2)
			continue;
		col = (Var *) strip_implicit_coercions(linitial(args));
		val = (Const *) strip_implicit_coercions(lsecond(args));
		if (!IsA(col, Var) || !IsA(val, Const) || val->constisnull ||
			col->varno != var->varno || col->varlevelsup != 0)
			continue;
		if (col->varattno == SEGMENT_ATTNUM_ID && opfunc == F_UUID_EQ)
		{
			if (!any)
			{
				pick->nids = 1;
				pick->ids = DatumGetUUIDP(val->constvalue);
				return true;
			}
			else
			{
				ArrayType  *arr = DatumGetArrayTypeP(val->constvalue);
				Datum	   *elems;
				bool	   *nulls;
				int			n;

				deconstruct_array(arr, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR,
								  &elems, &nulls, &n);
				pick->ids = palloc(Max(n, 1) * sizeof(pg_uuid_t));
				for (int i = 0; i < n; i++)
				{
					if (!nulls[i])
						pick->ids[pick->nids++] = *DatumGetUUIDP(elems[i]);
				}
				return pick->nids > 0;
			}
		}
		if (col->varattno == SEGMENT_ATTNUM_NUM && opfunc == F_INT4EQ && !any)
		{
			pick->has_num = true;
			pick->num = DatumGetInt32(val->constvalue);
			return true;
		}
	}
	return false;
}

/* The id of the segment numbered num, from the backend's catalog cache. */
static bool
segment_id_of_num(int32 num, pg_uuid_t *id)
{
	const SegmentCatalog *cat = CatalogGet();
	const CatalogSegment *seg = CatalogFindByNum(cat, num);

	if (seg == NULL)
		return false;
	*id = seg->id;
	return true;
}

/*
 * Members per segment from segments.segment_state: the sum over the
 * picked segments (all of them when pick is NULL) and how many segments
 * it counted.  Reads the whole table: a row per segment.
 */
static double
member_counts(const SegmentPick *pick, int *nsegments)
{
	Oid			relid = CatalogRelid("segment_state", true);
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tup;
	double		sum = 0;

	*nsegments = 0;
	if (!OidIsValid(relid))
		return 0;
	rel = table_open(relid, AccessShareLock);
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		id = heap_getattr(tup, STATE_ATTNUM_SEGMENT_ID, RelationGetDescr(rel), &isnull);
		Datum		count;
		bool		wanted = (pick == NULL);

		for (int i = 0; pick != NULL && i < pick->nids && !isnull; i++)
		{
			if (memcmp(DatumGetUUIDP(id), &pick->ids[i], UUID_LEN) == 0)
				wanted = true;
		}
		if (!wanted)
			continue;
		count = heap_getattr(tup, STATE_ATTNUM_MEMBER_COUNT, RelationGetDescr(rel), &isnull);
		if (!isnull)
			sum += (double) DatumGetInt64(count);
		(*nsegments)++;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return sum;
}

/*
 * The fraction of stored rows holding the segment number (the second
 * argument): from the member counts of the segment the query names, or of
 * all segments.
 */
static Selectivity
member_in_fraction(PlannerInfo *root, List *args)
{
	Node	   *segs = linitial(args);
	Node	   *num = strip_implicit_coercions(lsecond(args));
	double		stored = 0;
	SegmentPick pick;
	bool		picked = false;
	double		sum;
	int			nsegments;
	List	   *vars;

	/* the stored rows: the size of the relation the numbers come from */
	vars = pull_var_clause(segs, 0);
	if (list_length(vars) == 1)
	{
		Var		   *v = linitial_node(Var, vars);

		if (v->varlevelsup == 0 && v->varno > 0 && v->varno < root->simple_rel_array_size &&
			root->simple_rel_array[v->varno] != NULL)
			stored = root->simple_rel_array[v->varno]->tuples;
	}
	if (stored <= 0)
		return MEMBER_IN_DEFAULT_SEL;

	if (IsA(num, Const) && !((Const *) num)->constisnull)
	{
		pg_uuid_t	id;

		memset(&pick, 0, sizeof(pick));
		if (segment_id_of_num(DatumGetInt32(((Const *) num)->constvalue), &id))
		{
			pick.nids = 1;
			pick.ids = palloc(sizeof(pg_uuid_t));
			pick.ids[0] = id;
			picked = true;
		}
		else
			return 0.0;			/* no such segment: no members */
	}
	else if (IsA(num, Var) && segment_pick(root, (Var *) num, &pick))
	{
		picked = true;
		if (pick.has_num)
		{
			pg_uuid_t	id;

			if (!segment_id_of_num(pick.num, &id))
				return 0.0;
			pick.nids = 1;
			pick.ids = palloc(sizeof(pg_uuid_t));
			pick.ids[0] = id;
		}
	}
	sum = member_counts(picked ? &pick : NULL, &nsegments);
	if (nsegments == 0)
		return picked ? 0.0 : MEMBER_IN_DEFAULT_SEL;
	if (picked)
		return Min(1.0, sum / nsegments / stored);

	/*
	 * Every segment the query reads: spread over as many segment rows as
	 * the planner expects there, so that the join comes to the pairs
	 * stored even when segments.segment (a few rows, often never
	 * analyzed) is estimated at hundreds.
	 */
	if (IsA(num, Var) && ((Var *) num)->varlevelsup == 0 && ((Var *) num)->varno > 0 &&
		((Var *) num)->varno < root->simple_rel_array_size &&
		root->simple_rel_array[((Var *) num)->varno] != NULL &&
		root->simple_rel_array[((Var *) num)->varno]->rows >= 1)
		return Min(1.0, sum / root->simple_rel_array[((Var *) num)->varno]->rows / stored);
	return Min(1.0, sum / nsegments / stored);
}

/*
 * The planner support function of _member_in: its selectivity, and the
 * GIN index condition it implies.
 */
Datum
segments_member_in_support(PG_FUNCTION_ARGS)
{
	Node	   *rawreq = (Node *) PG_GETARG_POINTER(0);

	if (IsA(rawreq, SupportRequestSelectivity))
	{
		SupportRequestSelectivity *req = (SupportRequestSelectivity *) rawreq;
		Selectivity sel;

		if (list_length(req->args) != 2)
			PG_RETURN_POINTER(NULL);
		sel = member_in_fraction(req->root, req->args);
		CLAMP_PROBABILITY(sel);
		req->selectivity = sel;
		PG_RETURN_POINTER(req);
	}
	if (IsA(rawreq, SupportRequestIndexCondition))
	{
		SupportRequestIndexCondition *req = (SupportRequestIndexCondition *) rawreq;
		FuncExpr   *clause = (FuncExpr *) req->node;
		Node	   *segs;
		Node	   *num;
		Oid			op;
		ArrayExpr  *arr;

		if (!is_funcclause(clause) || list_length(clause->args) != 2 || req->indexarg != 0)
			PG_RETURN_POINTER(NULL);
		segs = linitial(clause->args);
		num = lsecond(clause->args);
		/* the number must be known before the index scan: not of the indexed row */
		if (bms_is_member(req->index->rel->relid, pull_varnos(req->root, num)) ||
			contain_volatile_functions(num))
			PG_RETURN_POINTER(NULL);
		/* an index whose operator family has @> on arrays (GIN array_ops) */
		op = get_opfamily_member(req->opfamily, ANYARRAYOID, ANYARRAYOID,
								 GIN_CONTAINS_STRATEGY);
		if (!OidIsValid(op))
			PG_RETURN_POINTER(NULL);
		arr = makeNode(ArrayExpr);
		arr->array_typeid = INT4ARRAYOID;
		arr->array_collid = InvalidOid;
		arr->element_typeid = INT4OID;
		arr->elements = list_make1(num);
		arr->multidims = false;
		arr->location = -1;
		/* exact: the index condition means what the function does */
		req->lossy = false;
		PG_RETURN_POINTER(list_make1(make_opclause(op, BOOLOID, false, (Expr *) segs,
												   (Expr *) arr, InvalidOid, InvalidOid)));
	}
	PG_RETURN_POINTER(NULL);
}

/* Is this segments._contact_visible (else _tenant_visible)? */
static bool
is_contact_visible(Oid funcid)
{
	char	   *name = get_func_name(funcid);

	return name != NULL && strcmp(name, "_contact_visible") == 0;
}

/*
 * The planner support function of _contact_visible and _tenant_visible
 * (the view's tenancy conditions): their selectivity for this session.
 * Without it the planner takes a third of the rows for each, and a third
 * of a segment's members is no estimate.  A session that sees every
 * tenant passes every row; a tenant session passes its tenant's contacts,
 * estimated as tenant = its tenant.  Only estimates depend on the session:
 * the conditions themselves run at execution.
 */
Datum
segments_visible_support(PG_FUNCTION_ARGS)
{
	Node	   *rawreq = (Node *) PG_GETARG_POINTER(0);
	SupportRequestSelectivity *req;
	TenantView	view;

	if (!IsA(rawreq, SupportRequestSelectivity))
		PG_RETURN_POINTER(NULL);
	req = (SupportRequestSelectivity *) rawreq;
	if (list_length(req->args) != 1)
		PG_RETURN_POINTER(NULL);
	view = CatalogTenantView();
	if (view.scope == TENANT_SCOPE_ALL)
		req->selectivity = 1.0;
	else if (view.scope == TENANT_SCOPE_NONE)
		req->selectivity = 0.0;
	else if (!is_contact_visible(req->funcid))
		PG_RETURN_POINTER(NULL);	/* the tenant's segments and the global ones */
	else if (!view.filter_contacts)
		req->selectivity = 1.0;
	else
	{
		Const	   *tenant = makeConst(TEXTOID, -1, DEFAULT_COLLATION_OID, -1,
									   CStringGetTextDatum(view.tenant), false, false);

		req->selectivity = restriction_selectivity(req->root, TextEqualOperator,
												   list_make2(linitial(req->args), tenant),
												   DEFAULT_COLLATION_OID, req->varRelid);
	}
	PG_RETURN_POINTER(req);
}

static planner_hook_type prev_planner_hook = NULL;

/* The functions the view's tenancy conditions call, looked up per plan. */
typedef struct BarrierFuncs
{
	Oid			contact_visible;
	Oid			tenant_visible;
	Oid			member_relid;
	Oid			segment_relid;
} BarrierFuncs;

/* The oid of segments.NAME(text), or InvalidOid. */
static Oid
text_func_oid(const char *name)
{
	Oid			argtype = TEXTOID;

	return LookupFuncName(list_make2(makeString("segments"), makeString(pstrdup(name))),
						  1, &argtype, true);
}

/*
 * Is qual one of the view's tenancy conditions, a call of fn on a column
 * of the relation relid in rtable?  Returns that relation's entry.
 */
static RangeTblEntry *
tenancy_qual_rte(Node *qual, Oid fn, Oid relid, List *rtable)
{
	FuncExpr   *f;
	Var		   *v;
	RangeTblEntry *rte;

	if (!IsA(qual, FuncExpr) || ((FuncExpr *) qual)->funcid != fn)
		return NULL;
	f = (FuncExpr *) qual;
	if (list_length(f->args) != 1 || !IsA(linitial(f->args), Var))
		return NULL;
	v = linitial_node(Var, f->args);
	if (v->varlevelsup != 0 || v->varno < 1 || v->varno > list_length(rtable))
		return NULL;
	rte = rt_fetch(v->varno, rtable);
	if (rte->rtekind != RTE_RELATION || rte->relid != relid)
		return NULL;
	return rte;
}

/*
 * When sub is segments.membership's query (segments.member joined to
 * segments.segment, filtered by exactly its two tenancy conditions), moves
 * those conditions to the two relations' security quals and returns true.
 */
static bool
membership_unbarrier(Query *sub, const BarrierFuncs *fns)
{
	List	   *quals;
	RangeTblEntry *member = NULL;
	RangeTblEntry *segment = NULL;
	Node	   *member_qual = NULL;
	Node	   *segment_qual = NULL;
	ListCell   *lc;

	if (sub->commandType != CMD_SELECT || sub->jointree == NULL || sub->jointree->quals == NULL ||
		sub->setOperations != NULL || sub->hasAggs || sub->hasTargetSRFs || sub->hasSubLinks ||
		sub->groupClause != NIL || sub->distinctClause != NIL || sub->limitCount != NULL ||
		sub->limitOffset != NULL || sub->cteList != NIL || sub->rowMarks != NIL)
		return false;
	quals = make_ands_implicit((Expr *) sub->jointree->quals);
	if (list_length(quals) != 2)
		return false;
	foreach(lc, quals)
	{
		Node	   *q = lfirst(lc);
		RangeTblEntry *rte;

		if ((rte = tenancy_qual_rte(q, fns->contact_visible, fns->member_relid, sub->rtable)) != NULL)
		{
			member = rte;
			member_qual = q;
		}
		else if ((rte = tenancy_qual_rte(q, fns->tenant_visible, fns->segment_relid, sub->rtable)) != NULL)
		{
			segment = rte;
			segment_qual = q;
		}
	}
	if (member == NULL || segment == NULL || member == segment ||
		member->securityQuals != NIL || segment->securityQuals != NIL)
		return false;
	member->securityQuals = list_make1(member_qual);
	segment->securityQuals = list_make1(segment_qual);
	sub->jointree->quals = NULL;
	return true;
}

/* Walks a query and its subqueries for the membership view's. */
static bool
membership_walker(Node *node, void *context)
{
	const BarrierFuncs *fns = (const BarrierFuncs *) context;

	if (node == NULL)
		return false;
	if (IsA(node, Query))
	{
		Query	   *q = (Query *) node;
		ListCell   *lc;

		foreach(lc, q->rtable)
		{
			RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);

			if (rte->rtekind == RTE_SUBQUERY && rte->security_barrier &&
				membership_unbarrier(rte->subquery, fns))
				rte->security_barrier = false;
		}
		return query_tree_walker(q, membership_walker, context, 0);
	}
	return expression_tree_walker(node, membership_walker, context);
}

/* Does any range table of the query hold a security barrier subquery? */
static bool
has_barrier_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, has_barrier_walker, context,
								 QTW_EXAMINE_RTES_BEFORE);
	if (IsA(node, RangeTblEntry))
		return ((RangeTblEntry *) node)->rtekind == RTE_SUBQUERY &&
			((RangeTblEntry *) node)->security_barrier;
	return expression_tree_walker(node, has_barrier_walker, context);
}

/*
 * planner_hook: segments.membership flattened into the query, its tenancy
 * conditions as security quals (see the top of this file).  Left as it is
 * when membership is distributed by Citus, whose planner takes the view
 * as a subquery.
 */
static PlannedStmt *
membership_planner(Query *parse, const char *query_string, int cursor_options,
				   ParamListInfo bound_params)
{
	if (has_barrier_walker((Node *) parse, NULL))
	{
		BarrierFuncs fns;

		fns.member_relid = CatalogRelid("member", true);
		fns.segment_relid = CatalogRelid("segment", true);
		fns.contact_visible = text_func_oid("_contact_visible");
		fns.tenant_visible = text_func_oid("_tenant_visible");
		if (OidIsValid(fns.member_relid) && OidIsValid(fns.segment_relid) &&
			OidIsValid(fns.contact_visible) && OidIsValid(fns.tenant_visible) &&
			!CitusIsDistributed(fns.member_relid))
			membership_walker((Node *) parse, &fns);
	}
	if (prev_planner_hook)
		return prev_planner_hook(parse, query_string, cursor_options, bound_params);
	return standard_planner(parse, query_string, cursor_options, bound_params);
}

/* Installs the planner hook (from _PG_init). */
void
MembershipPlanInit(void)
{
	prev_planner_hook = planner_hook;
	planner_hook = membership_planner;
}

/*-------------------------------------------------------------------------
 *
 * explain.c
 *		segments.explain(contact, segment) RETURNS jsonb and
 *		segments.explain_text(contact, segment) RETURNS text: why a contact
 *		is or is not in a segment.
 *
 * The contact is evaluated by the code and the plan of an evaluation pass
 * (EvaluateExplain, below), writing nothing, with a trace
 * (RuleTrace) that reports every node's result and what each condition
 * read; no second evaluator exists here.  Traced groups evaluate every
 * child, so that every node shows its result.  The explanation is the
 * segment's rule tree with those reports, the explanation of every
 * segment it references nested at its condition, and whether the stored
 * membership agrees with the fresh evaluation.
 *
 * Who sees what: the session's tenant view decides which segments and
 * contacts exist (anything else is "does not exist", the same error for
 * a missing one and one of another tenant), and a value read from a
 * column is shown only when the caller may SELECT that column (the traits
 * column for traits); otherwise the condition says "redacted" and shows
 * its result only, as membership shows the segment's.
 *
 *-------------------------------------------------------------------------
 */
#include "catalog.h"
#include "eval_pass.h"
#include "privilege.h"

#include "access/table.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

PG_FUNCTION_INFO_V1(segments_explain);
PG_FUNCTION_INFO_V1(segments_explain_text);

/* What one node reported (keyed by its condition, or by the group node). */
typedef struct TraceEntry
{
	const void *key;
	bool		has_result;
	bool		result;
	bool		has_read;
	RuleTraceKind kind;
	char	   *value_json;		/* VALUE: the value read, as JSON */
	char	   *value_text;		/* VALUE: as compile() shows values */
	char	   *raw_json;		/* trait: the JSON value found */
	double		number;			/* ELEMENTS, LENGTH, BUCKET */
	bool	   *ref_results;	/* SEGMENT: per reference */
} TraceEntry;

typedef struct Explainer
{
	MemoryContext cxt;			/* where everything below lives */
	HTAB	   *entries;
	Oid			caller;			/* whose column privileges apply */
	Datum		key;
	TenantView	view;
	pg_uuid_t	target;			/* the segment explained */
	bool		found;			/* the contact exists and is visible */
	const EvaluateOutcome *outcome;
	int32	   *stored;			/* the contact's stored segment numbers */
	int			nstored;
	bool	   *expanded;		/* by position: explained once already */
	char	  **states;			/* by position: segment_state.state */
	StringInfoData json;
	StringInfoData text;
} Explainer;

/* ----------------------------------------------------------------
 * Collecting the trace
 * ---------------------------------------------------------------- */

static TraceEntry *
trace_entry(Explainer *ex, const void *key)
{
	bool		found;
	TraceEntry *entry = hash_search(ex->entries, &key, HASH_ENTER, &found);

	if (!found)
	{
		memset(entry, 0, sizeof(TraceEntry));
		entry->key = key;
	}
	return entry;
}

/* The JSON text of a jsonb value found in the traits. */
static char *
jsonb_value_text(const JsonbValue *jv)
{
	Jsonb	   *j = JsonbValueToJsonb((JsonbValue *) jv);

	return JsonbToCString(NULL, &j->root, VARSIZE(j));
}

/* Appends the JSON form of a value a field was read as. */
static void
append_scalar_json(StringInfo buf, const RuleScalar *s, const RuleAttribute *attr)
{
	StringInfoData shown;

	switch (s->type)
	{
		case RVT_TEXT:
			{
				char	   *str = pnstrdup(s->u.text.str, s->u.text.len);

				escape_json(buf, str);
				return;
			}
		case RVT_NUMBER:
			appendStringInfoString(buf, numeric_normalize(s->u.number));
			return;
		case RVT_BOOLEAN:
			appendStringInfoString(buf, s->u.boolean ? "true" : "false");
			return;
		case RVT_NATIVE:
			{
				Oid			type = attr->is_array ? attr->elemtype : attr->typid;
				Oid			func;
				bool		varlena;
				char	   *out;

				getTypeOutputInfo(type, &func, &varlena);
				out = OidOutputFunctionCall(func, s->u.native);
				if ((type == INT2OID || type == INT4OID || type == INT8OID ||
					 type == NUMERICOID || type == FLOAT4OID || type == FLOAT8OID) &&
					strspn(out, "0123456789.-e+") == strlen(out))
					appendStringInfoString(buf, out);
				else
					escape_json(buf, out);
				return;
			}
		default:
			break;
	}
	/* timestamps, versions, addresses: the quoted text compile() shows */
	initStringInfo(&shown);
	RuleRenderScalar(&shown, s, attr);
	if (shown.len >= 2 && shown.data[0] == '\'' && shown.data[shown.len - 1] == '\'')
	{
		shown.data[shown.len - 1] = '\0';
		escape_json(buf, shown.data + 1);
	}
	else
		escape_json(buf, shown.data);
}

/* RuleTrace.read: what a condition read, rendered now (it may not last). */
static void
trace_read(void *arg, const RuleCondition *cond, const RuleTraceRead *read)
{
	Explainer  *ex = (Explainer *) arg;
	MemoryContext old = MemoryContextSwitchTo(ex->cxt);
	TraceEntry *entry = trace_entry(ex, cond);

	if (read->kind == RULE_TRACE_SEGMENT)
	{
		if (entry->ref_results == NULL)
			entry->ref_results = palloc0(Max(cond->nsegments, 1) * sizeof(bool));
		entry->ref_results[read->index] = read->result;
	}
	entry->has_read = true;
	entry->kind = read->kind;
	entry->number = read->number;
	if (read->value != NULL)
	{
		StringInfoData buf;

		initStringInfo(&buf);
		append_scalar_json(&buf, read->value, &cond->attr);
		entry->value_json = buf.data;
		initStringInfo(&buf);
		RuleRenderScalar(&buf, read->value, &cond->attr);
		entry->value_text = buf.data;
	}
	if (read->json != NULL)
		entry->raw_json = jsonb_value_text(read->json);
	MemoryContextSwitchTo(old);
}

/* RuleTrace.node: a node's result. */
static void
trace_node(void *arg, const RuleNode *node, bool result)
{
	Explainer  *ex = (Explainer *) arg;
	MemoryContext old = MemoryContextSwitchTo(ex->cxt);
	TraceEntry *entry = trace_entry(ex, node->kind == RULE_CONDITION ?
									(const void *) node->cond : (const void *) node);

	entry->has_result = true;
	entry->result = result;
	MemoryContextSwitchTo(old);
}

static TraceEntry *
lookup_entry(Explainer *ex, const RuleNode *node)
{
	const void *key = node->kind == RULE_CONDITION ? (const void *) node->cond : (const void *) node;

	return hash_search(ex->entries, &key, HASH_FIND, NULL);
}

/* ----------------------------------------------------------------
 * Writing the explanation: JSON and text side by side
 * ---------------------------------------------------------------- */

static void explain_segment(Explainer *ex, int pos, int depth, bool top);

static const char *
uuid_text(const pg_uuid_t *id)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum((pg_uuid_t *) id)));
}

static void
text_indent(Explainer *ex, int depth)
{
	appendStringInfoSpaces(&ex->text, 2 * depth);
}

/* One line of the text form: the result, then what the node is. */
static void
text_line(Explainer *ex, int depth, const TraceEntry *entry, const char *label)
{
	text_indent(ex, depth);
	if (entry == NULL || !entry->has_result)
		appendStringInfoString(&ex->text, "-     ");
	else
		appendStringInfoString(&ex->text, entry->result ? "true  " : "false ");
	appendStringInfoString(&ex->text, label);
}

static void
json_key(Explainer *ex, const char *key)
{
	if (ex->json.len > 0 && ex->json.data[ex->json.len - 1] != '{' &&
		ex->json.data[ex->json.len - 1] != '[')
		appendStringInfoString(&ex->json, ", ");
	escape_json(&ex->json, key);
	appendStringInfoString(&ex->json, ": ");
}

static void
json_string(Explainer *ex, const char *key, const char *value)
{
	json_key(ex, key);
	if (value == NULL)
		appendStringInfoString(&ex->json, "null");
	else
		escape_json(&ex->json, value);
}

static void
json_bool(Explainer *ex, const char *key, bool value)
{
	json_key(ex, key);
	appendStringInfoString(&ex->json, value ? "true" : "false");
}

static void
json_raw(Explainer *ex, const char *key, const char *raw)
{
	json_key(ex, key);
	appendStringInfoString(&ex->json, raw);
}

/* The operator as written in definitions. */
static const char *
op_name(RuleOp op, bool negated)
{
	switch (op)
	{
		case OP_EQ:
			return negated ? "neq" : "eq";
		case OP_GT:
			return "gt";
		case OP_GTE:
			return "gte";
		case OP_LT:
			return "lt";
		case OP_LTE:
			return "lte";
		case OP_BETWEEN:
			return "between";
		case OP_IN:
			return negated ? "not_in" : "in";
		case OP_CONTAINS:
			return negated ? "not_contains" : "contains";
		case OP_STARTS_WITH:
			return "starts_with";
		case OP_ENDS_WITH:
			return "ends_with";
		case OP_REGEX:
			return negated ? "not_regex" : "regex";
		case OP_IS_SET:
			return negated ? "is_not_set" : "is_set";
		case OP_MODULO:
			return "modulo";
		case OP_BEFORE:
			return "before";
		case OP_AFTER:
			return "after";
		case OP_WITHIN_LAST:
			return negated ? "not_within_last" : "within_last";
		case OP_WITHIN_NEXT:
			return "within_next";
		case OP_IN_CIDR:
			return "in_cidr";
	}
	return "?";
}

static const char *
json_type_name(const char *raw)
{
	switch (raw[0])
	{
		case '"':
			return "a string";
		case '{':
			return "an object";
		case '[':
			return "an array";
		case 't':
		case 'f':
			return "a boolean";
		case 'n':
			return "null";
		default:
			return "a number";
	}
}

/* Why a field counts as missing, for the kinds that make it so. */
static char *
missing_reason(const RuleCondition *cond, const TraceEntry *entry)
{
	switch (entry->kind)
	{
		case RULE_TRACE_NULL:
			return pstrdup("the column is NULL");
		case RULE_TRACE_NO_TRAITS:
			return pstrdup("the traits column is NULL");
		case RULE_TRACE_ABSENT:
			return pstrdup(cond->npath > 1 ? "no trait at this path" : "no trait at this key");
		case RULE_TRACE_JSON_NULL:
			return pstrdup("the trait is JSON null");
		case RULE_TRACE_OTHER_TYPE:
			return psprintf("the trait is %s, not %s (without \"as\", only that JSON type is read)",
							json_type_name(entry->raw_json),
							cond->read_as == RVT_TEXT ? "a string" :
							cond->read_as == RVT_BOOLEAN ? "a boolean" : "a number");
		case RULE_TRACE_UNREADABLE:
			if (cond->as_length)
				return pstrdup("the trait is neither an array nor a string: it has no length");
			return psprintf("the value cannot be read as %s",
							RuleTypeName(cond->op == OP_IS_SET ? cond->element_as : cond->read_as));
		default:
			return NULL;
	}
}

/* How a missing value decides the result (docs/rules.md: Missing values). */
static char *
missing_rule(const RuleCondition *cond)
{
	return psprintf("%s is %s on a missing value%s%s",
					op_name(cond->op, cond->negated_op),
					cond->negated_op ? "true" : "false",
					cond->negated_op ? psprintf(" (the negation of %s)", op_name(cond->op, false)) : "",
					cond->negate ? "; \"negate\" inverts that" : "");
}

/* The text of a column of the contact's row. */
static char *
column_text(Explainer *ex, AttrNumber attnum)
{
	TupleTableSlot *row = ex->outcome->row;
	Oid			func;
	bool		varlena;

	getTypeOutputInfo(TupleDescAttr(row->tts_tupleDescriptor, attnum - 1)->atttypid,
					  &func, &varlena);
	return OidOutputFunctionCall(func, row->tts_values[attnum - 1]);
}

/* Position of a segment in the outcome, or -1. */
static int
outcome_position(Explainer *ex, const pg_uuid_t *id)
{
	for (int i = 0; i < ex->outcome->nsegments; i++)
	{
		if (memcmp(&ex->outcome->segments[i].seg->id, id, sizeof(pg_uuid_t)) == 0)
			return i;
	}
	return -1;
}

/* The label of a segment condition, by the referenced segments' names. */
static char *
segment_label(Explainer *ex, const RuleCondition *cond)
{
	StringInfoData buf;

	initStringInfo(&buf);
	if (cond->negate)
		appendStringInfoString(&buf, "NOT (");
	appendStringInfoString(&buf, cond->negated_op ? "segment NOT IN (" : "segment IN (");
	for (int i = 0; i < cond->nsegments; i++)
	{
		int			pos = outcome_position(ex, &cond->segment_ids[i]);

		if (i > 0)
			appendStringInfoString(&buf, ", ");
		escape_json(&buf, pos >= 0 ? ex->outcome->segments[pos].seg->name :
					cond->segment_refs[i]);
	}
	appendStringInfoChar(&buf, ')');
	if (cond->negate)
		appendStringInfoChar(&buf, ')');
	return buf.data;
}

/* May the caller see what this condition read? */
static bool
readable_by_caller(Explainer *ex, const RuleCondition *cond)
{
	const SegmentsConfig *config = ex->outcome->config;

	if (cond->type == COND_ATTRIBUTE)
		return PrivilegeMaySelect(config->source_relid, cond->attr.attnum, ex->caller);
	if (cond->type == COND_TRAIT)
		return config->traits_attnum > 0 &&
			PrivilegeMaySelect(config->source_relid, config->traits_attnum, ex->caller);
	return true;
}

/* A column's text as an SQL literal, as compile() shows text values. */
static char *
text_literal(const char *str)
{
	StringInfoData buf;
	RuleScalar	s;

	s.type = RVT_TEXT;
	s.u.text.str = str;
	s.u.text.len = strlen(str);
	initStringInfo(&buf);
	RuleRenderScalar(&buf, &s, NULL);
	return buf.data;
}

/* What an attribute or trait condition read: JSON keys and a text note. */
static void
explain_read(Explainer *ex, const RuleCondition *cond, const TraceEntry *entry)
{
	char	   *raw = NULL;
	char	   *shown;			/* raw, for the text form */
	char	   *reason;
	const char *column = NULL;

	if (!readable_by_caller(ex, cond))
	{
		column = cond->type == COND_ATTRIBUTE ? cond->field :
			get_attname(ex->outcome->config->source_relid, ex->outcome->config->traits_attnum, false);
		json_bool(ex, "redacted", true);
		appendStringInfo(&ex->text, "  -- redacted: no SELECT on column %s",
						 quote_identifier(column));
		return;
	}
	if (cond->type == COND_ATTRIBUTE && entry->kind != RULE_TRACE_NULL)
		raw = column_text(ex, cond->attr.attnum);
	else if (cond->type == COND_TRAIT)
		raw = entry->raw_json;
	if (raw != NULL)
	{
		if (cond->type == COND_ATTRIBUTE)
			json_string(ex, "column", raw);
		else
			json_raw(ex, "json", raw);
	}
	shown = raw == NULL ? "" : cond->type == COND_ATTRIBUTE ? text_literal(raw) : raw;
	reason = missing_reason(cond, entry);
	if (reason != NULL)
	{
		char	   *rule = missing_rule(cond);

		json_string(ex, "missing", reason);
		json_string(ex, "why", rule);
		appendStringInfo(&ex->text, "  -- missing: %s", reason);
		/* what could not be read */
		if (raw != NULL && (entry->kind == RULE_TRACE_UNREADABLE ||
							entry->kind == RULE_TRACE_OTHER_TYPE))
			appendStringInfo(&ex->text, " (%s)", shown);
		appendStringInfo(&ex->text, "; %s", rule);
		return;
	}
	switch (entry->kind)
	{
		case RULE_TRACE_VALUE:
			json_raw(ex, "value", entry->value_json);
			json_string(ex, "as", cond->read_as == RVT_NATIVE ?
						format_type_be(cond->attr.typid) :
						RuleTypeName(cond->op == OP_IS_SET ? cond->element_as : cond->read_as));
			appendStringInfo(&ex->text, "  -- read %s", entry->value_text);
			/* the value as stored, when reading changed how it looks */
			if (raw != NULL &&
				(cond->type == COND_TRAIT ||
				 (cond->attr.is_text && cond->read_as != RVT_TEXT)) &&
				strcmp(shown, entry->value_text) != 0)
				appendStringInfo(&ex->text, " from %s", shown);
			break;
		case RULE_TRACE_PRESENT:
			appendStringInfo(&ex->text, "  -- present: %s", shown);
			break;
		case RULE_TRACE_ELEMENTS:
			json_raw(ex, "elements", psprintf("%d", (int) entry->number));
			appendStringInfo(&ex->text, "  -- searched %d element%s of %s",
							 (int) entry->number, entry->number == 1 ? "" : "s", shown);
			break;
		case RULE_TRACE_LENGTH:
			json_raw(ex, "length", psprintf("%d", (int) entry->number));
			appendStringInfo(&ex->text, "  -- length %d of %s", (int) entry->number, shown);
			break;
		default:
			break;
	}
}

/* Appends one node of a segment's tree (JSON object and text lines). */
static void
explain_node(Explainer *ex, const RuleNode *node, int depth)
{
	TraceEntry *entry = lookup_entry(ex, node);
	const RuleCondition *cond = node->cond;
	static const char *const type_names[] = {"attribute", "trait", "segment", "percentage"};

	appendStringInfoChar(&ex->json, '{');
	if (node->kind != RULE_CONDITION)
	{
		const char *kind = node->kind == RULE_AND ? "and" : node->kind == RULE_OR ? "or" : "not";

		json_string(ex, "node", kind);
		if (entry != NULL && entry->has_result)
			json_bool(ex, "result", entry->result);
		text_line(ex, depth, entry, node->kind == RULE_AND ? "AND" :
				  node->kind == RULE_OR ? "OR" : "NOT");
		if (node->nchildren == 0)
			appendStringInfoString(&ex->text, node->kind == RULE_AND ?
								   "  -- empty: every contact" : "  -- empty: no contact");
		appendStringInfoChar(&ex->text, '\n');
		json_key(ex, "children");
		appendStringInfoChar(&ex->json, '[');
		for (int i = 0; i < node->nchildren; i++)
		{
			if (i > 0)
				appendStringInfoString(&ex->json, ", ");
			explain_node(ex, node->children[i], depth + 1);
		}
		appendStringInfoString(&ex->json, "]}");
		return;
	}

	json_string(ex, "node", "condition");
	json_string(ex, "type", type_names[cond->type]);
	json_string(ex, "path", cond->json_path ? cond->json_path : "$");
	json_string(ex, "op", op_name(cond->op, cond->negated_op));
	if (cond->negate)
		json_bool(ex, "negate", true);
	if (entry != NULL && entry->has_result)
		json_bool(ex, "result", entry->result);
	if (cond->type == COND_ATTRIBUTE)
		json_string(ex, "field", cond->field);
	else if (cond->type == COND_TRAIT)
	{
		json_key(ex, "trait");
		appendStringInfoChar(&ex->json, '[');
		for (int i = 0; i < cond->npath; i++)
		{
			if (i > 0)
				appendStringInfoString(&ex->json, ", ");
			escape_json(&ex->json, cond->path[i]);
		}
		appendStringInfoChar(&ex->json, ']');
	}

	if (cond->type == COND_SEGMENT)
	{
		char	   *label = segment_label(ex, cond);

		json_string(ex, "rule", label);
		text_line(ex, depth, entry, label);
		appendStringInfoChar(&ex->text, '\n');
		json_key(ex, "segments");
		appendStringInfoChar(&ex->json, '[');
		for (int i = 0; i < cond->nsegments; i++)
		{
			int			pos = outcome_position(ex, &cond->segment_ids[i]);

			if (i > 0)
				appendStringInfoString(&ex->json, ", ");
			if (pos < 0)
			{
				appendStringInfoChar(&ex->json, '{');
				json_string(ex, "id", uuid_text(&cond->segment_ids[i]));
				json_string(ex, "error", "no longer exists");
				appendStringInfoChar(&ex->json, '}');
				continue;
			}
			explain_segment(ex, pos, depth + 1, false);
		}
		appendStringInfoString(&ex->json, "]}");
		return;
	}

	{
		char	   *rule = RuleRender(node);

		json_string(ex, "rule", rule);
		text_line(ex, depth, entry, rule);
	}
	if (entry != NULL && entry->has_read)
	{
		if (cond->type == COND_PERCENTAGE)
		{
			char	   *bucket = psprintf("%.2f", entry->number);

			json_raw(ex, "bucket", bucket);
			appendStringInfo(&ex->text, "  -- bucket %s", bucket);
		}
		else
			explain_read(ex, cond, entry);
	}
	appendStringInfoChar(&ex->text, '\n');
	appendStringInfoChar(&ex->json, '}');
}

/*
 * Appends the explanation of the segment at position pos: stored and
 * evaluated membership, and its tree (once per explanation: a segment
 * referenced again says so instead of repeating its tree).
 */
static void
explain_segment(Explainer *ex, int pos, int depth, bool top)
{
	const EvaluateOutcomeSegment *os = &ex->outcome->segments[pos];
	const CatalogSegment *seg = os->seg;
	bool		stored = MembershipContains(ex->stored, ex->nstored, seg->num);
	const char *state = ex->states[pos] ? ex->states[pos] : "pending";
	bool		evaluated = os->rule != NULL && os->result;
	TraceEntry *root = os->rule ? lookup_entry(ex, os->rule) : NULL;

	if (!top)
		appendStringInfoChar(&ex->json, '{');
	if (!top && !CatalogSegmentVisibleIn(&ex->view, seg->tenant))
	{
		/* references stay within a tenant: this is only a safeguard */
		json_bool(ex, "evaluated", evaluated);
		json_bool(ex, "visible", false);
		appendStringInfoChar(&ex->json, '}');
		text_indent(ex, depth);
		appendStringInfo(&ex->text, "a segment this session may not see: evaluated %s\n",
						 evaluated ? "true" : "false");
		return;
	}
	json_string(ex, "segment", seg->name);
	json_string(ex, "id", uuid_text(&seg->id));
	json_string(ex, "tenant", seg->tenant);
	json_string(ex, "state", state);
	json_bool(ex, "stored", stored);
	json_bool(ex, "evaluated", evaluated);
	json_bool(ex, "agrees", stored == evaluated);

	text_indent(ex, depth);
	appendStringInfoString(&ex->text, "segment ");
	escape_json(&ex->text, seg->name);
	appendStringInfo(&ex->text, " (%s): evaluated %s, stored %s%s", state,
					 evaluated ? "true" : "false", stored ? "true" : "false",
					 stored == evaluated ? "" : " -- stored membership disagrees");

	if (os->rule == NULL)
	{
		const char *error = os->error ? os->error : "could not compile";

		json_string(ex, "error", error);
		appendStringInfo(&ex->text, "\n");
		text_indent(ex, depth + 1);
		appendStringInfo(&ex->text, "cannot be evaluated: %s\n", error);
	}
	else if (ex->expanded[pos])
	{
		json_bool(ex, "explained_above", true);
		appendStringInfoString(&ex->text, " (explained above)\n");
	}
	else if (root == NULL || !root->has_result)
	{
		/* a pass evaluates a tenant's segment for that tenant's contacts only */
		char	   *reason = psprintf("the segment holds contacts of tenant \"%s\" only; this contact's tenant is %s",
									  seg->tenant ? seg->tenant : "",
									  ex->outcome->tenant ?
									  psprintf("\"%s\"", ex->outcome->tenant) : "not set");

		json_string(ex, "reason", reason);
		appendStringInfo(&ex->text, "\n");
		text_indent(ex, depth + 1);
		appendStringInfo(&ex->text, "not evaluated: %s\n", reason);
	}
	else
	{
		ex->expanded[pos] = true;
		appendStringInfoChar(&ex->text, '\n');
		json_key(ex, "rule");
		explain_node(ex, os->rule, depth + 1);
	}
	if (!top)
		appendStringInfoChar(&ex->json, '}');
}

/* The state of every segment of the outcome, by position. */
static void
load_states(Explainer *ex)
{
	ex->states = palloc0(Max(ex->outcome->nsegments, 1) * sizeof(char *));
	if (SPI_execute("SELECT segment_id, state FROM segments.segment_state", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read segments.segment_state");
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		Datum		id = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull);
		int			pos = outcome_position(ex, DatumGetUUIDP(id));
		char	   *state = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2);

		if (pos >= 0 && state != NULL)
			ex->states[pos] = MemoryContextStrdup(ex->cxt, state);
	}
}

/* EvaluateReportFn: builds the explanation while the pass's memory lasts. */
static void
report(const EvaluateOutcome *outcome, void *arg)
{
	Explainer  *ex = (Explainer *) arg;
	const char *tenant = outcome->tenant;
	int			target;
	MemoryContext old;

	/* a contact of another tenant does not exist for this session */
	if (ex->view.filter_contacts &&
		!CatalogContactVisibleIn(&ex->view, tenant, tenant ? strlen(tenant) : 0))
		return;
	ex->found = true;
	ex->outcome = outcome;
	load_states(ex);
	old = MemoryContextSwitchTo(ex->cxt);
	ex->nstored = MembershipFetch(outcome->config, ex->key, &ex->stored, &ex->view);
	ex->expanded = palloc0(Max(outcome->nsegments, 1) * sizeof(bool));
	target = outcome_position(ex, &ex->target);
	if (target < 0)
		elog(ERROR, "segment %s is not in the evaluation plan", uuid_text(&ex->target));

	initStringInfo(&ex->json);
	initStringInfo(&ex->text);
	appendStringInfoChar(&ex->json, '{');
	json_string(ex, "contact", column_text(ex, outcome->config->key_attnum));
	if (outcome->config->tenant_attnum > 0)
		json_string(ex, "contact_tenant", tenant);
	json_string(ex, "at", DatumGetCString(DirectFunctionCall1(timestamptz_out,
															   TimestampTzGetDatum(outcome->now))));
	explain_segment(ex, target, 0, true);
	appendStringInfoChar(&ex->json, '}');
	MemoryContextSwitchTo(old);
}

/* ----------------------------------------------------------------
 * The SQL functions
 * ---------------------------------------------------------------- */

/* The text of argument argno, for messages. */
static char *
arg_text(FunctionCallInfo fcinfo, int argno)
{
	Oid			type = get_fn_expr_argtype(fcinfo->flinfo, argno);
	Oid			func;
	bool		varlena;

	if (type == UNKNOWNOID)
		return pstrdup(DatumGetCString(PG_GETARG_DATUM(argno)));
	getTypeOutputInfo(type, &func, &varlena);
	return OidOutputFunctionCall(func, PG_GETARG_DATUM(argno));
}

/*
 * Explains contact argument 0 in segment argument 1; the same error for a
 * contact or segment that does not exist and one the session may not see.
 */
static Explainer *
explain(FunctionCallInfo fcinfo)
{
	const SegmentCatalog *cat = CatalogGet();
	const CatalogSegment *seg;
	Explainer  *ex = palloc0(sizeof(Explainer));
	Datum		key;
	bool		have_key;
	RuleTrace	trace;
	PrivilegeContext pctx;
	HASHCTL		hctl;

	if (!cat->config.configured)
		CatalogNotConfiguredError(&cat->config);
	ex->cxt = CurrentMemoryContext;
	ex->caller = GetUserId();
	/* a session that may see nothing is told why (as management is) */
	ex->view = CatalogManageView();
	have_key = MembershipKeyFromArg(&cat->config, PG_GETARG_DATUM(0),
									get_fn_expr_argtype(fcinfo->flinfo, 0), &key);
	seg = ReadSegmentArg(fcinfo, 1, cat, &ex->view, have_key, have_key ? key : (Datum) 0);
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("segment \"%s\" does not exist", arg_text(fcinfo, 1)),
				 errhint("segments.segments lists the segments this session may see.")));
	/* copied: the cached catalog and tenant may be reloaded meanwhile */
	ex->target = seg->id;
	if (ex->view.tenant != NULL)
		ex->view.tenant = pstrdup(ex->view.tenant);
	ex->key = key;

	hctl.keysize = sizeof(void *);
	hctl.entrysize = sizeof(TraceEntry);
	hctl.hcxt = ex->cxt;
	ex->entries = hash_create("segments explain", 64, &hctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	trace.read = trace_read;
	trace.node = trace_node;
	trace.arg = ex;

	if (have_key)
	{
		/* the source, membership and states are read with the extension's rights */
		PrivilegeBecomeOwner(&pctx, SECURITY_RESTRICTED_OPERATION);
		PG_TRY();
		{
			(void) EvaluateExplain(&ex->target, key, &trace, report, ex);
		}
		PG_CATCH();
		{
			PrivilegeRestore(&pctx, false);
			PG_RE_THROW();
		}
		PG_END_TRY();
		PrivilegeRestore(&pctx, true);
	}
	if (!ex->found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("contact \"%s\" does not exist", arg_text(fcinfo, 0)),
				 errhint("Pass the key of a contact in the source table that this session may see.")));
	return ex;
}

/*
 * segments.explain(contact, segment) RETURNS jsonb
 *
 * {"contact", "contact_tenant", "at", "segment", "id", "tenant", "state",
 *  "stored", "evaluated", "agrees", "rule": node} where a node is a group
 * {"node": "and"|"or"|"not", "result", "children"} or a condition
 * {"node": "condition", "type", "path", "op", "rule", "result", ...what
 * it read}; see README.md, "Explain and preview".
 */
Datum
segments_explain(PG_FUNCTION_ARGS)
{
	Explainer  *ex = explain(fcinfo);

	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(ex->json.data)));
}

/*
 * segments.explain_text(contact, segment) RETURNS text
 *
 * The same as an indented tree, one node per line: its result, the rule
 * as compile() shows it, and what it read.
 */
Datum
segments_explain_text(PG_FUNCTION_ARGS)
{
	Explainer  *ex = explain(fcinfo);

	/* no trailing newline: psql shows the lines as they are */
	while (ex->text.len > 0 && ex->text.data[ex->text.len - 1] == '\n')
		ex->text.data[--ex->text.len] = '\0';
	PG_RETURN_TEXT_P(cstring_to_text(ex->text.data));
}

/* ----------------------------------------------------------------
 * The evaluation explain() shows (EvaluateExplain)
 * ---------------------------------------------------------------- */

/*
 * segments.explain() (explain.c): evaluates segment `target` and the
 * segments it reads for the contact with this key, with the code and the
 * plan of a pass (verify's: no lock, nothing written), every node reported
 * to trace.  report() then sees the outcome while the pass's memory lasts.
 * Returns false, without calling report(), when the source has no such
 * contact.
 */
bool
EvaluateExplain(const pg_uuid_t *target, Datum key, RuleTrace *trace,
				EvaluateReportFn report, void *arg)
{
	MemoryContext pass_cxt = AllocSetContextCreate(CurrentMemoryContext, "segments explain",
												   ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(pass_cxt);
	EvalPlan   *plan;
	TupleTableSlot *slot;
	bool		found;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = EvalPlanBuild(target, 1, true, true);
	PushActiveSnapshot(plan->snapshot);
	slot = table_slot_create(plan->source, NULL);
	found = MembershipProbe(plan->source, plan->cat->config.source_key_index,
							plan->cat->config.key_type, key, slot);
	if (found)
	{
		EvaluateOutcome outcome;
		int32	   *nums;
		char	   *tenant;

		slot_getallattrs(slot);
		plan->trace = trace;
		(void) EvalPlanContact(plan, slot, &nums, &tenant);
		plan->trace = NULL;
		outcome.config = &plan->cat->config;
		outcome.row = slot;
		outcome.tenant = tenant;
		outcome.now = plan->now;
		outcome.nsegments = plan->nsegments;
		outcome.segments = palloc0(Max(plan->nsegments, 1) * sizeof(EvaluateOutcomeSegment));
		for (int i = 0; i < plan->nsegments; i++)
		{
			outcome.segments[i].seg = plan->segments[i].seg;
			outcome.segments[i].rule = plan->segments[i].rule;
			outcome.segments[i].error = plan->segments[i].error;
			outcome.segments[i].needed = plan->segments[i].needed;
			outcome.segments[i].result = plan->results[i];
		}
		report(&outcome, arg);
	}
	ExecDropSingleTupleTableSlot(slot);
	PopActiveSnapshot();
	EvalPassEnd(plan, old, pass_cxt);
	return found;
}

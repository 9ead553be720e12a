/*-------------------------------------------------------------------------
 *
 * rule_render.c
 *		The text segments.compile() shows for a parsed rule tree: one line,
 *		deterministic, every comparison with the type it compares in.
 *
 *	 groups      (a AND b), (a OR b), NOT (a); empty AND is TRUE, empty OR
 *				 FALSE; a group of one node shows as that node; "all",
 *				 "any" show as AND, OR; "none" as NOT (a OR b)
 *	 fields      attribute "plan", trait "company"."size": names are JSON
 *				 strings (escaped as JSON), so the key "a.b" (trait "a.b")
 *				 and the path ["a","b"] (trait "a"."b") differ
 *	 reading     how the field is read before comparing:
 *				   (text)         strict: a trait of that JSON type only
 *				                  (string, number, boolean), any other is
 *				                  missing; for contains, the JSON type of
 *				                  the array elements compared
 *				   as number      read across JSON types ("as", or the
 *				                  type an operator implies: time operators
 *				                  as timestamp, in_cidr as inet, modulo as
 *				                  number, text operators as text)
 *				   (integer)      an attribute compared in its column type
 *				   length(...)    "as": "length"
 *				 is_set on a trait without "as" shows no type (present and
 *				 not null)
 *	 values      text as an SQL string literal ('vip', 'it''s', E'a\\b'
 *				 when it holds a backslash or a control character);
 *				 numbers bare (42, 1.5); true, false; timestamps in UTC
 *				 ('2024-01-01T00:00:00Z'); versions, addresses and other
 *				 column types as quoted text ('1.2.0', '10.0.0.0/8')
 *	 operators   = <> > >= < <=, BETWEEN a AND b, IN (..), NOT IN (..),
 *				 CONTAINS, NOT CONTAINS, STARTS WITH, ENDS WITH, ~ !~
 *				 (~* !~* case-insensitive), IS SET, IS NOT SET,
 *				 mod(f, d) = r, BEFORE, AFTER, WITHIN LAST interval '..',
 *				 NOT WITHIN LAST, WITHIN NEXT, IN CIDR (..) (networks with
 *				 their host bits cleared: 10.1.1.1/8 shows as 10.0.0.0/8)
 *	 case        "case_sensitive": false shows lower() on both sides
 *	 segments    segment IN (<uuid>, ...), segment NOT IN (...)
 *	 percentage  percentage('salt') < 10, percentage(segment id) ...
 *	 "negate"    NOT (condition)
 *
 * Nothing rendered here is ever executed; the quoting is for the reader.
 *
 *-------------------------------------------------------------------------
 */
#include "segments.h"

#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/lsyscache.h"

/* Names of RuleValueType as rendered. */
static const char *const type_names[] = {
	"text", "number", "boolean", "timestamp", "semver", "inet", "native"
};

/*
 * Appends a string as an SQL literal: 'it''s'; with a backslash or a
 * control character, an escape string literal (E'a\\b', E'\n', E'\x01'),
 * so that the line stays one line and reads back as the same string.
 */
static void
render_literal(StringInfo buf, const char *s, int len)
{
	bool		escape = false;

	for (int i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c == '\\' || c < 0x20 || c == 0x7f)
			escape = true;
	}
	if (escape)
		appendStringInfoChar(buf, 'E');
	appendStringInfoChar(buf, '\'');
	for (int i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c == '\'')
			appendStringInfoString(buf, "''");
		else if (!escape)
			appendStringInfoChar(buf, (char) c);
		else if (c == '\\')
			appendStringInfoString(buf, "\\\\");
		else if (c == '\n')
			appendStringInfoString(buf, "\\n");
		else if (c == '\t')
			appendStringInfoString(buf, "\\t");
		else if (c == '\r')
			appendStringInfoString(buf, "\\r");
		else if (c < 0x20 || c == 0x7f)
			appendStringInfo(buf, "\\x%02X", c);
		else
			appendStringInfoChar(buf, (char) c);
	}
	appendStringInfoChar(buf, '\'');
}

static void
render_cstring(StringInfo buf, const char *s)
{
	render_literal(buf, s, strlen(s));
}

/* Appends a timestamp as ISO 8601 in UTC, quoted. */
static void
render_timestamp(StringInfo buf, TimestampTz ts)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (TIMESTAMP_NOT_FINITE(ts) || timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
	{
		appendStringInfoString(buf, TIMESTAMP_IS_NOBEGIN(ts) ? "'-infinity'" : "'infinity'");
		return;
	}
	appendStringInfo(buf, "'%04d-%02d-%02dT%02d:%02d:%02d",
					 tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	if (fsec != 0)
		appendStringInfo(buf, ".%06d", (int) fsec);
	appendStringInfoString(buf, "Z'");
}

/* Appends a semantic version, build metadata being dropped, quoted. */
static void
render_semver(StringInfo buf, const SemVer *v)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfo(&s, INT64_FORMAT "." INT64_FORMAT "." INT64_FORMAT,
					 v->major, v->minor, v->patch);
	for (int i = 0; i < v->npre; i++)
		appendStringInfo(&s, "%c%s", i == 0 ? '-' : '.', v->pre[i]);
	render_cstring(buf, s.data);
}

/*
 * Appends an interval, quoted, in the "postgres" style whatever the
 * session's IntervalStyle ('30 days', '1 year 2 mons', '01:30:00'), so
 * that the same definition always shows the same text.
 */
static void
render_interval(StringInfo buf, Interval *interval)
{
	int			saved = IntervalStyle;
	char	   *out;

	IntervalStyle = INTSTYLE_POSTGRES;
	PG_TRY();
	{
		out = DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(interval)));
	}
	PG_FINALLY();
	{
		IntervalStyle = saved;
	}
	PG_END_TRY();
	render_cstring(buf, out);
}

/* Is a column type's output a plain number (shown bare)? */
static bool
is_number_type(Oid type)
{
	return type == INT2OID || type == INT4OID || type == INT8OID ||
		type == NUMERICOID || type == FLOAT4OID || type == FLOAT8OID;
}

/* Appends one operand. */
static void
render_scalar(StringInfo buf, const RuleScalar *s, const RuleAttribute *attr)
{
	Oid			type;
	Oid			func;
	bool		varlena;
	char	   *out;

	switch (s->type)
	{
		case RVT_TEXT:
			render_literal(buf, s->u.text.str, s->u.text.len);
			return;
		case RVT_NUMBER:
			appendStringInfoString(buf, numeric_normalize(s->u.number));
			return;
		case RVT_BOOLEAN:
			appendStringInfoString(buf, s->u.boolean ? "true" : "false");
			return;
		case RVT_TIMESTAMP:
			render_timestamp(buf, s->u.timestamp);
			return;
		case RVT_SEMVER:
			render_semver(buf, s->u.semver);
			return;
		case RVT_INET:
			render_cstring(buf, DatumGetCString(DirectFunctionCall1(inet_out,
																	InetPGetDatum(s->u.inet))));
			return;
		case RVT_NATIVE:
			break;
	}
	type = attr->is_array ? attr->elemtype : attr->typid;
	getTypeOutputInfo(type, &func, &varlena);
	out = OidOutputFunctionCall(func, s->u.native);
	/* NaN and Infinity stay quoted, as they must be in SQL */
	if (is_number_type(type) && strspn(out, "0123456789.-e+") == strlen(out))
		appendStringInfoString(buf, out);
	else
		render_cstring(buf, out);
}

/* Appends the network of an in_cidr operand: host bits cleared, as compared. */
static void
render_network(StringInfo buf, const RuleScalar *s)
{
	Datum		net = DirectFunctionCall1(network_network, InetPGetDatum(s->u.inet));

	render_cstring(buf, DatumGetCString(DirectFunctionCall1(cidr_out, net)));
}

/* Appends operand i, lower()ed when the comparison is case-insensitive. */
static void
render_value(StringInfo buf, const RuleCondition *cond, int i)
{
	bool		lower = cond->case_insensitive && cond->op != OP_REGEX;

	if (lower)
		appendStringInfoString(buf, "lower(");
	render_scalar(buf, &cond->values[i], &cond->attr);
	if (lower)
		appendStringInfoChar(buf, ')');
}

/* Appends all operands as a comma-separated list in parentheses. */
static void
render_list(StringInfo buf, const RuleCondition *cond)
{
	appendStringInfoChar(buf, '(');
	for (int i = 0; i < cond->nvalues; i++)
	{
		if (i > 0)
			appendStringInfoString(buf, ", ");
		if (cond->op == OP_IN_CIDR)
			render_network(buf, &cond->values[i]);
		else
			render_value(buf, cond, i);
	}
	appendStringInfoChar(buf, ')');
}

/* Appends how the field is read: " (number)", " as timestamp", or nothing. */
static void
render_reading(StringInfo buf, const RuleCondition *cond)
{
	if (cond->explicit_as)
		appendStringInfo(buf, " as %s", type_names[cond->element_as]);
	else if (cond->type == COND_ATTRIBUTE)
	{
		if (cond->attr.is_text && cond->read_as != RVT_TEXT && !cond->attr.is_array)
			appendStringInfo(buf, " as %s", type_names[cond->read_as]);
		else
			appendStringInfo(buf, " (%s)", format_type_be(cond->attr.typid));
	}
	else if (cond->strict)
		appendStringInfo(buf, " (%s)", type_names[cond->read_as]);
	else if (cond->strict_elements)
		appendStringInfo(buf, " (%s)", type_names[cond->element_as]);
	else if (cond->op != OP_IS_SET)
		appendStringInfo(buf, " as %s", type_names[cond->read_as]);
}

/* Appends the field: attribute "x" or trait "a"."b", and how it is read. */
static void
render_field(StringInfo buf, const RuleCondition *cond)
{
	bool		lower = cond->case_insensitive && cond->op != OP_REGEX;

	if (lower)
		appendStringInfoString(buf, "lower(");
	if (cond->as_length)
		appendStringInfoString(buf, "length(");
	if (cond->type == COND_ATTRIBUTE)
	{
		appendStringInfoString(buf, "attribute ");
		escape_json(buf, cond->field);
	}
	else
	{
		appendStringInfoString(buf, "trait ");
		for (int i = 0; i < cond->npath; i++)
		{
			if (i > 0)
				appendStringInfoChar(buf, '.');
			escape_json(buf, cond->path[i]);
		}
	}
	if (cond->as_length)
		appendStringInfoChar(buf, ')');
	else
		render_reading(buf, cond);
	if (lower)
		appendStringInfoChar(buf, ')');
}

/* The SQL-like symbol of an operator. */
static const char *
op_symbol(const RuleCondition *cond)
{
	switch (cond->op)
	{
		case OP_EQ:
			return cond->negated_op ? "<>" : "=";
		case OP_GT:
			return ">";
		case OP_GTE:
			return ">=";
		case OP_LT:
			return "<";
		case OP_LTE:
			return "<=";
		case OP_BETWEEN:
			return "BETWEEN";
		case OP_IN:
			return cond->negated_op ? "NOT IN" : "IN";
		case OP_CONTAINS:
			return cond->negated_op ? "NOT CONTAINS" : "CONTAINS";
		case OP_STARTS_WITH:
			return "STARTS WITH";
		case OP_ENDS_WITH:
			return "ENDS WITH";
		case OP_REGEX:
			if (cond->case_insensitive)
				return cond->negated_op ? "!~*" : "~*";
			return cond->negated_op ? "!~" : "~";
		case OP_IS_SET:
			return cond->negated_op ? "IS NOT SET" : "IS SET";
		case OP_MODULO:
			return "MOD";
		case OP_BEFORE:
			return "BEFORE";
		case OP_AFTER:
			return "AFTER";
		case OP_WITHIN_LAST:
			return cond->negated_op ? "NOT WITHIN LAST" : "WITHIN LAST";
		case OP_WITHIN_NEXT:
			return "WITHIN NEXT";
		case OP_IN_CIDR:
			return "IN CIDR";
	}
	return "?";
}

/* Appends an attribute or trait condition. */
static void
render_field_condition(StringInfo buf, const RuleCondition *cond)
{
	if (cond->op == OP_MODULO)
	{
		appendStringInfoString(buf, "mod(");
		render_field(buf, cond);
		appendStringInfoString(buf, ", ");
		render_value(buf, cond, 0);
		appendStringInfoString(buf, ") = ");
		render_value(buf, cond, 1);
		return;
	}
	render_field(buf, cond);
	appendStringInfo(buf, " %s", op_symbol(cond));
	switch (cond->op)
	{
		case OP_BETWEEN:
			appendStringInfoChar(buf, ' ');
			render_value(buf, cond, 0);
			appendStringInfoString(buf, " AND ");
			render_value(buf, cond, 1);
			break;
		case OP_IN:
		case OP_IN_CIDR:
			appendStringInfoChar(buf, ' ');
			render_list(buf, cond);
			break;
		case OP_WITHIN_LAST:
		case OP_WITHIN_NEXT:
			appendStringInfoString(buf, " interval ");
			render_interval(buf, cond->interval);
			break;
		case OP_IS_SET:
			break;
		default:
			appendStringInfoChar(buf, ' ');
			render_value(buf, cond, 0);
			break;
	}
}

/* Appends a segment or percentage condition. */
static void
render_other_condition(StringInfo buf, const RuleCondition *cond)
{
	if (cond->type == COND_SEGMENT)
	{
		appendStringInfoString(buf, cond->negated_op ? "segment NOT IN (" : "segment IN (");
		for (int i = 0; i < cond->nsegments; i++)
			appendStringInfo(buf, "%s%s", i > 0 ? ", " : "",
							 DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&cond->segment_ids[i]))));
		appendStringInfoChar(buf, ')');
		return;
	}
	appendStringInfoString(buf, "percentage(");
	if (cond->salt)
		render_cstring(buf, cond->salt);
	else
		appendStringInfoString(buf, "segment id");
	appendStringInfo(buf, ") %s ", op_symbol(cond));
	appendStringInfoString(buf, numeric_normalize(cond->values[0].u.number));
	if (cond->op == OP_BETWEEN)
		appendStringInfo(buf, " AND %s", numeric_normalize(cond->values[1].u.number));
}

/* Does a node render wrapped in parentheses, as groups of 2+ nodes do? */
static bool
renders_parenthesized(const RuleNode *node)
{
	while ((node->kind == RULE_AND || node->kind == RULE_OR) && node->nchildren == 1)
		node = node->children[0];
	return (node->kind == RULE_AND || node->kind == RULE_OR) && node->nchildren > 1;
}

/* Appends a node (see the format above). */
static void
render_node(StringInfo buf, const RuleNode *node)
{
	const RuleCondition *cond = node->cond;

	switch (node->kind)
	{
		case RULE_AND:
		case RULE_OR:
			if (node->nchildren == 0)
			{
				appendStringInfoString(buf, node->kind == RULE_AND ? "TRUE" : "FALSE");
				return;
			}
			if (node->nchildren == 1)
			{
				render_node(buf, node->children[0]);
				return;
			}
			appendStringInfoChar(buf, '(');
			for (int i = 0; i < node->nchildren; i++)
			{
				if (i > 0)
					appendStringInfoString(buf, node->kind == RULE_AND ? " AND " : " OR ");
				render_node(buf, node->children[i]);
			}
			appendStringInfoChar(buf, ')');
			return;
		case RULE_NOT:
			appendStringInfoString(buf, "NOT ");
			if (!renders_parenthesized(node->children[0]))
			{
				appendStringInfoChar(buf, '(');
				render_node(buf, node->children[0]);
				appendStringInfoChar(buf, ')');
			}
			else
				render_node(buf, node->children[0]);
			return;
		case RULE_CONDITION:
			break;
	}
	if (cond->negate)
		appendStringInfoString(buf, "NOT (");
	if (cond->type == COND_ATTRIBUTE || cond->type == COND_TRAIT)
		render_field_condition(buf, cond);
	else
		render_other_condition(buf, cond);
	if (cond->negate)
		appendStringInfoChar(buf, ')');
}

/*
 * The text of what a tree compiles to, shown by segments.compile();
 * palloc'd in the current memory context.
 */
char *
RuleRender(const RuleNode *root)
{
	StringInfoData buf;

	initStringInfo(&buf);
	render_node(&buf, root);
	return buf.data;
}

/*
 * One value as compile() shows operands (segments.explain shows the values
 * a contact's fields were read as so).
 */
void
RuleRenderScalar(StringInfo buf, const RuleScalar *s, const RuleAttribute *attr)
{
	render_scalar(buf, s, attr);
}

/* The name of a type a field is read as ("number", "timestamp", ...). */
const char *
RuleTypeName(RuleValueType type)
{
	return type_names[type];
}

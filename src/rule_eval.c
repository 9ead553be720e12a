/*-------------------------------------------------------------------------
 *
 * rule_eval.c
 *		Evaluating a compiled rule tree for one contact (docs/rules.md).
 *
 * A condition reads its field (a column of the source row or a key of the
 * traits jsonb) as the type the parser decided, then applies its operator.
 * A field that is missing, NULL or unreadable makes every positive
 * operator false; negative operators are stored as their positive twin
 * with negated_op set, so they come out true there, and "negate" inverts
 * the final result.  Nothing here raises an error on data.
 *
 * Allocations go to the caller's per-contact memory context, except the
 * per-condition caches, which live with the condition.
 *
 *-------------------------------------------------------------------------
 */
#include "segments.h"

#include <math.h>

#include "catalog/pg_collation.h"
#include "common/hashfn.h"
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "regex/regex.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/fmgrprotos.h"
#include "utils/formatting.h"
#include "utils/memutils.h"

#include "md5_bucket.h"

/* ----------------------------------------------------------------
 * Tracing (segments.explain): off in the passes, where each report point
 * costs one test of a pointer that is NULL.
 * ---------------------------------------------------------------- */

static void
trace_read(const RuleEvalContext *ctx, const RuleCondition *cond, RuleTraceKind kind,
		   const RuleScalar *value, const JsonbValue *json, double number)
{
	RuleTraceRead read;

	read.kind = kind;
	read.value = value;
	read.json = json;
	read.number = number;
	read.index = 0;
	read.result = false;
	ctx->trace->read(ctx->trace->arg, cond, &read);
}

#define TRACE_READ(ctx, cond, kind, value, json, number) \
	do { \
		if (unlikely((ctx)->trace != NULL)) \
			trace_read((ctx), (cond), (kind), (value), (json), (number)); \
	} while (0)

/* ----------------------------------------------------------------
 * Text helpers
 * ---------------------------------------------------------------- */

/*
 * Does the database's lower() map each ASCII character as the C locale
 * does (A-Z to a-z, the rest to itself)?  Asked once per backend: a
 * backend serves one database, whose collation cannot change.  Turkish
 * collations map 'I' to a dotless i, so they answer no.
 */
static bool
ascii_lower_is_plain(void)
{
	static int	plain = -1;		/* unknown */

	if (plain < 0)
	{
		char		ascii[127];
		char	   *lowered;
		char	   *plain_lowered;

		for (int i = 0; i < 127; i++)
			ascii[i] = (char) (i + 1);
		lowered = str_tolower(ascii, sizeof(ascii), DEFAULT_COLLATION_OID);
		plain_lowered = asc_tolower(ascii, sizeof(ascii));
		plain = strcmp(lowered, plain_lowered) == 0;
		pfree(lowered);
		pfree(plain_lowered);
	}
	return plain;
}

/*
 * lower() of a text, as SQL's lower() in the database's collation.  An
 * ASCII text is lowered byte by byte where the collation allows it:
 * str_tolower() goes through wide characters and towlower() per
 * character, and a case-insensitive condition on an email column lowered
 * every contact's address that way (6% of a pass of the bench's segments).
 */
static char *
lower_text(const char *str, int len, int *outlen)
{
	char	   *out;
	int			i;

	for (i = 0; i < len; i++)
		if (IS_HIGHBIT_SET(str[i]) || str[i] == '\0')
			break;
	if (i == len && ascii_lower_is_plain())
		out = asc_tolower(str, len);
	else
		out = str_tolower(str, len, DEFAULT_COLLATION_OID);
	*outlen = strlen(out);
	return out;
}

/* Where a condition keeps its evaluation caches. */
static MemoryContext
condition_cxt(const RuleCondition *cond)
{
	return cond->cache_cxt ? cond->cache_cxt : GetMemoryChunkContext((void *) cond);
}

/* Does hay contain needle? */
static bool
text_contains(const char *hay, int hlen, const char *needle, int nlen)
{
	if (nlen == 0)
		return true;
	for (int i = 0; i + nlen <= hlen; i++)
	{
		if (hay[i] == needle[0] && memcmp(hay + i, needle, nlen) == 0)
			return true;
	}
	return false;
}

/*
 * The condition's text operands, lowered once (case_sensitive: false) and
 * kept with the condition.
 */
static void
ensure_lower_values(RuleCondition *cond)
{
	MemoryContext old;

	if (cond->lower_values != NULL)
		return;
	old = MemoryContextSwitchTo(condition_cxt(cond));
	cond->lower_lens = palloc(sizeof(int) * Max(cond->nvalues, 1));
	cond->lower_values = palloc(sizeof(char *) * Max(cond->nvalues, 1));
	for (int i = 0; i < cond->nvalues; i++)
	{
		if (cond->values[i].type == RVT_TEXT)
			cond->lower_values[i] = lower_text(cond->values[i].u.text.str,
											   cond->values[i].u.text.len,
											   &cond->lower_lens[i]);
		else
		{
			cond->lower_values[i] = NULL;
			cond->lower_lens[i] = 0;
		}
	}
	MemoryContextSwitchTo(old);
}

/* Is the field (text) equal to operand i, honouring case_sensitive? */
static bool
text_equals(RuleCondition *cond, const RuleScalar *field, int i)
{
	const RuleScalar *v = &cond->values[i];

	if (cond->case_insensitive)
	{
		int			flen;
		char	   *f = lower_text(field->u.text.str, field->u.text.len, &flen);

		ensure_lower_values(cond);
		return flen == cond->lower_lens[i] &&
			memcmp(f, cond->lower_values[i], flen) == 0;
	}
	return field->u.text.len == v->u.text.len &&
		memcmp(field->u.text.str, v->u.text.str, v->u.text.len) == 0;
}

/* Equality of a field with operand i, in the operand's type. */
static bool
scalar_equals(RuleCondition *cond, const RuleScalar *field, int i)
{
	if (field->type == RVT_TEXT)
		return text_equals(cond, field, i);
	return RuleCompareScalar(field, &cond->values[i], &cond->attr) == 0;
}

/* ----------------------------------------------------------------
 * Operators on a field already read as the condition's type
 * ---------------------------------------------------------------- */

/* within_last / within_next bounds for ctx->now, cached per now(). */
static void
ensure_time_bounds(RuleCondition *cond, TimestampTz now)
{
	if (cond->bounds_valid && cond->bounds_now == now)
		return;
	if (cond->op == OP_WITHIN_LAST)
	{
		cond->time_low = RuleShiftTime(now, cond->interval, -1);
		cond->time_high = DT_NOEND;
	}
	else
	{
		cond->time_low = now;
		cond->time_high = RuleShiftTime(now, cond->interval, 1);
	}
	cond->bounds_now = now;
	cond->bounds_valid = true;
}

/* Does the text field match the condition's regular expression? */
static bool
regex_matches(RuleCondition *cond, const RuleScalar *field)
{
	int			flags = REG_ADVANCED | (cond->case_insensitive ? REG_ICASE : 0);

	/*
	 * A set of literal strings: a few comparisons (regex_literal.c); any
	 * other pattern compiled once for the condition (regex_compiled.c)
	 */
	if (cond->regex_plain == 0)
	{
		MemoryContext old = MemoryContextSwitchTo(condition_cxt(cond));

		cond->regex_literal = cond->case_insensitive ? NULL :
			RegexLiteralCompile(VARDATA_ANY(cond->regex), VARSIZE_ANY_EXHDR(cond->regex));
		if (cond->regex_literal == NULL)
			cond->regex_compiled = RegexCompiledCreate(cond->regex, flags, DEFAULT_COLLATION_OID,
													   condition_cxt(cond));
		cond->regex_plain = cond->regex_literal != NULL ? 1 :
			cond->regex_compiled != NULL ? -1 : -2;
		MemoryContextSwitchTo(old);
	}
	if (cond->regex_plain > 0)
		return RegexLiteralMatch(cond->regex_literal, field->u.text.str, field->u.text.len);
	if (cond->regex_plain == -1)
		return RegexCompiledMatch(cond->regex_compiled, field->u.text.str, field->u.text.len);
	return RE_compile_and_execute(cond->regex, (char *) field->u.text.str,
								  field->u.text.len, flags,
								  DEFAULT_COLLATION_OID, 0, NULL);
}

/* The JSON text of a number or boolean operand. */
static const char *
operand_json_text(const RuleScalar *v)
{
	if (v->type == RVT_NUMBER)
		return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->u.number)));
	if (v->type == RVT_BOOLEAN)
		return v->u.boolean ? "true" : "false";
	return "";
}

/* Text operators: contains (substring), starts_with, ends_with. */
static bool
text_op(RuleCondition *cond, const RuleScalar *field)
{
	const char *f = field->u.text.str;
	int			flen = field->u.text.len;
	const char *v = cond->values[0].u.text.str;
	int			vlen = cond->values[0].u.text.len;

	if (cond->values[0].type != RVT_TEXT)
	{
		/* contains 2 on a string trait: the value by its JSON text */
		v = operand_json_text(&cond->values[0]);
		vlen = strlen(v);
	}
	else if (cond->case_insensitive)
	{
		ensure_lower_values(cond);
		f = lower_text(f, flen, &flen);
		v = cond->lower_values[0];
		vlen = cond->lower_lens[0];
	}
	switch (cond->op)
	{
		case OP_CONTAINS:
			return text_contains(f, flen, v, vlen);
		case OP_STARTS_WITH:
			return flen >= vlen && memcmp(f, v, vlen) == 0;
		case OP_ENDS_WITH:
			return flen >= vlen && memcmp(f + flen - vlen, v, vlen) == 0;
		default:
			return false;
	}
}

/* numeric field % divisor = remainder, with mod()'s sign rule. */
static bool
modulo_matches(RuleCondition *cond, const RuleScalar *field)
{
	Datum		rem;

	if (numeric_is_nan(field->u.number) || numeric_is_inf(field->u.number))
		return false;
	rem = DirectFunctionCall2(numeric_mod, NumericGetDatum(field->u.number),
							  NumericGetDatum(cond->values[0].u.number));
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, rem,
											 NumericGetDatum(cond->values[1].u.number))) == 0;
}

/* A numeric operand as an int64 when it is an integer below 10^18. */
static bool
numeric_as_int64(Numeric n, int64 *out)
{
	char	   *text = numeric_normalize(n);
	char	   *p = text;
	char	   *end;

	if (*p == '-')
		p++;
	if (*p == '\0' || strlen(p) > 18 || strspn(p, "0123456789") != strlen(p))
		return false;
	*out = strtoll(text, &end, 10);
	return *end == '\0';
}

/*
 * modulo on an integer column with integer operands: mod() of integers is
 * C's % (the remainder takes the dividend's sign), no numeric arithmetic.
 */
static bool
modulo_integral(RuleCondition *cond)
{
	if (cond->mod_int == 0)
		cond->mod_int = numeric_as_int64(cond->values[0].u.number, &cond->mod_divisor) &&
			numeric_as_int64(cond->values[1].u.number, &cond->mod_remainder) &&
			cond->mod_divisor != 0 ? 1 : -1;
	return cond->mod_int > 0;
}

static bool
modulo_int64(RuleCondition *cond, int64 v)
{
	/* x % -1 is 0, and INT64_MIN % -1 traps */
	int64		rem = cond->mod_divisor == -1 ? 0 : v % cond->mod_divisor;

	return rem == cond->mod_remainder;
}

/* Applies the (positive) operator to a field read as cond->read_as. */
static bool
apply_op(RuleCondition *cond, const RuleScalar *field, const RuleEvalContext *ctx)
{
	switch (cond->op)
	{
		case OP_EQ:
			return scalar_equals(cond, field, 0);
		case OP_GT:
			return RuleCompareScalar(field, &cond->values[0], &cond->attr) > 0;
		case OP_GTE:
			return RuleCompareScalar(field, &cond->values[0], &cond->attr) >= 0;
		case OP_LT:
			return RuleCompareScalar(field, &cond->values[0], &cond->attr) < 0;
		case OP_LTE:
			return RuleCompareScalar(field, &cond->values[0], &cond->attr) <= 0;
		case OP_BETWEEN:
			return RuleCompareScalar(field, &cond->values[0], &cond->attr) >= 0 &&
				RuleCompareScalar(field, &cond->values[1], &cond->attr) <= 0;
		case OP_IN:
			for (int i = 0; i < cond->nvalues; i++)
				if (scalar_equals(cond, field, i))
					return true;
			return false;
		case OP_CONTAINS:
		case OP_STARTS_WITH:
		case OP_ENDS_WITH:
			return text_op(cond, field);
		case OP_REGEX:
			return regex_matches(cond, field);
		case OP_MODULO:
			return modulo_matches(cond, field);
		case OP_BEFORE:
			return field->u.timestamp < cond->values[0].u.timestamp;
		case OP_AFTER:
			return field->u.timestamp > cond->values[0].u.timestamp;
		case OP_WITHIN_LAST:
		case OP_WITHIN_NEXT:
			ensure_time_bounds(cond, ctx->now);
			return field->u.timestamp >= cond->time_low &&
				field->u.timestamp <= cond->time_high;
		case OP_IN_CIDR:
			for (int i = 0; i < cond->nvalues; i++)
			{
				if (ip_family(field->u.inet) == ip_family(cond->values[i].u.inet) &&
					DatumGetBool(DirectFunctionCall2(network_subeq,
													 InetPGetDatum(field->u.inet),
													 InetPGetDatum(cond->values[i].u.inet))))
					return true;
			}
			return false;
		case OP_IS_SET:
			return true;
	}
	return false;
}

/* A length, as the number the numeric operators compare. */
static bool
apply_length(RuleCondition *cond, int64 length, const RuleEvalContext *ctx)
{
	RuleScalar	field;

	if (cond->op == OP_IS_SET)
		return true;
	field.type = RVT_NUMBER;
	field.u.number = int64_to_numeric(length);
	return apply_op(cond, &field, ctx);
}

/* ----------------------------------------------------------------
 * Attributes: columns of the source row
 * ---------------------------------------------------------------- */

/* The text of a text-like datum (text, varchar, bpchar, citext). */
static void
datum_text(Datum d, Oid typid, RuleScalar *out)
{
	text	   *t = DatumGetTextPP(d);
	int			len = VARSIZE_ANY_EXHDR(t);

	out->type = RVT_TEXT;
	out->u.text.str = VARDATA_ANY(t);
	/* char(n) pads with spaces that comparisons ignore */
	if (typid == BPCHAROID)
		while (len > 0 && out->u.text.str[len - 1] == ' ')
			len--;
	out->u.text.len = len;
}

/* A column datum of type typid read as `as`; false if unreadable. */
static bool
datum_to_scalar(Datum d, Oid typid, bool is_text, RuleValueType as, RuleScalar *out)
{
	RuleScalar	txt;

	if (is_text)
	{
		datum_text(d, typid, &txt);
		if (as != RVT_TEXT && as != RVT_NATIVE)
		{
			JsonbValue	jv;

			/* a text column read as another type reads like a JSON string */
			jv.type = jbvString;
			jv.val.string.val = (char *) txt.u.text.str;
			jv.val.string.len = txt.u.text.len;
			return RuleReadJsonb(&jv, as, out);
		}
		if (as == RVT_TEXT)
		{
			*out = txt;
			return true;
		}
	}
	out->type = as;
	switch (as)
	{
		case RVT_NATIVE:
			out->u.native = d;
			return true;
		case RVT_BOOLEAN:
			out->u.boolean = DatumGetBool(d);
			return typid == BOOLOID;
		case RVT_TIMESTAMP:
			if (typid == TIMESTAMPTZOID || typid == TIMESTAMPOID)
				out->u.timestamp = DatumGetTimestampTz(d);
			else if (typid == DATEOID)
			{
				DateADT		date = DatumGetDateADT(d);

				if (DATE_IS_NOBEGIN(date))
					out->u.timestamp = DT_NOBEGIN;
				else if (DATE_IS_NOEND(date))
					out->u.timestamp = DT_NOEND;
				else
					out->u.timestamp = (TimestampTz) date * USECS_PER_DAY;
			}
			else
				return false;
			return true;
		case RVT_INET:
			if (typid != INETOID && typid != CIDROID)
				return false;
			out->u.inet = DatumGetInetPP(d);
			return true;
		case RVT_NUMBER:
			switch (typid)
			{
				case INT2OID:
					out->u.number = int64_to_numeric(DatumGetInt16(d));
					return true;
				case INT4OID:
					out->u.number = int64_to_numeric(DatumGetInt32(d));
					return true;
				case INT8OID:
					out->u.number = int64_to_numeric(DatumGetInt64(d));
					return true;
				case FLOAT4OID:
				case FLOAT8OID:
					{
						double		f = typid == FLOAT4OID ? DatumGetFloat4(d) : DatumGetFloat8(d);

						if (isnan(f) || isinf(f))
							return false;
						out->u.number = DatumGetNumeric(DirectFunctionCall1(float8_numeric,
																			Float8GetDatum(f)));
						return true;
					}
				case NUMERICOID:
					out->u.number = DatumGetNumeric(d);
					return !numeric_is_nan(out->u.number) && !numeric_is_inf(out->u.number);
				default:
					return false;
			}
		default:
			return false;
	}
}

/* contains on an array column: some non-NULL element equals the value. */
static bool
array_contains(RuleCondition *cond, const Datum *elems, const bool *nulls, int n)
{
	const RuleAttribute *a = &cond->attr;

	for (int i = 0; i < n; i++)
	{
		RuleScalar	elem;

		if (nulls[i] ||
			!datum_to_scalar(elems[i], a->elemtype, a->is_text, cond->element_as, &elem))
			continue;
		if (scalar_equals(cond, &elem, 0))
			return true;
	}
	return false;
}

/* The contact's cache slot for the field cond reads; NULL: not cached. */
static RuleFieldSlot *
field_slot(const RuleCondition *cond, const RuleEvalContext *ctx, bool *fresh)
{
	RuleFieldSlot *slot;

	if (ctx->field_slots == NULL || cond->field_slot == 0)
		return NULL;
	slot = &ctx->field_slots[cond->field_slot - 1];
	*fresh = slot->generation == ctx->generation;
	slot->generation = ctx->generation;
	return slot;
}

/* A column read as cond->read_as, through the contact's cache. */
static bool
read_column(RuleCondition *cond, Datum d, const RuleEvalContext *ctx, RuleScalar *field)
{
	const RuleAttribute *a = &cond->attr;
	bool		fresh = false;
	RuleFieldSlot *slot = field_slot(cond, ctx, &fresh);

	if (slot != NULL && fresh)
	{
		*field = slot->value;
		return slot->ok;
	}
	/* varlena numbers and the like: detoasted once, not by every comparison */
	if (cond->read_as == RVT_NATIVE && a->typlen == -1)
		d = PointerGetDatum(PG_DETOAST_DATUM(d));
	if (!datum_to_scalar(d, a->typid, a->is_text, cond->read_as, field))
	{
		if (slot != NULL)
			slot->ok = false;
		return false;
	}
	if (slot != NULL)
	{
		slot->ok = true;
		slot->value = *field;
	}
	return true;
}

/* The elements of an array column, through the contact's cache. */
static int
read_array(RuleCondition *cond, Datum d, const RuleEvalContext *ctx,
		   Datum **elems, bool **nulls)
{
	const RuleAttribute *a = &cond->attr;
	bool		fresh = false;
	RuleFieldSlot *slot = field_slot(cond, ctx, &fresh);
	int			n;

	if (slot != NULL && fresh)
	{
		*elems = slot->elems;
		*nulls = slot->elem_nulls;
		return slot->nelems;
	}
	deconstruct_array(DatumGetArrayTypeP(d), a->elemtype, a->elmlen, a->elmbyval,
					  a->elmalign, elems, nulls, &n);
	if (slot != NULL)
	{
		slot->elems = *elems;
		slot->elem_nulls = *nulls;
		slot->nelems = n;
	}
	return n;
}

static bool
eval_attribute(RuleCondition *cond, const RuleEvalContext *ctx)
{
	const RuleAttribute *a = &cond->attr;
	Datum		d;
	RuleScalar	field;

	if (ctx->nulls[a->attnum - 1])
	{
		TRACE_READ(ctx, cond, RULE_TRACE_NULL, NULL, NULL, 0);
		return false;
	}
	d = ctx->values[a->attnum - 1];
	if (a->is_array)
	{
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		if (cond->op != OP_CONTAINS && !cond->as_length)
		{
			TRACE_READ(ctx, cond, RULE_TRACE_PRESENT, NULL, NULL, 0);
			return cond->op == OP_IS_SET;
		}
		n = read_array(cond, d, ctx, &elems, &nulls);
		TRACE_READ(ctx, cond, cond->as_length ? RULE_TRACE_LENGTH : RULE_TRACE_ELEMENTS,
				   NULL, NULL, n);
		if (cond->as_length)
			return apply_length(cond, n, ctx);
		return array_contains(cond, elems, nulls, n);
	}
	if (cond->as_length)
	{
		int			length;

		datum_to_scalar(d, a->typid, true, RVT_TEXT, &field);
		length = pg_mbstrlen_with_len(field.u.text.str, field.u.text.len);
		TRACE_READ(ctx, cond, RULE_TRACE_LENGTH, NULL, NULL, length);
		return apply_length(cond, length, ctx);
	}
	if (cond->op == OP_MODULO && ctx->trace == NULL &&
		(a->typid == INT2OID || a->typid == INT4OID || a->typid == INT8OID) &&
		modulo_integral(cond))
		return modulo_int64(cond, a->typid == INT2OID ? DatumGetInt16(d) :
							a->typid == INT4OID ? DatumGetInt32(d) : DatumGetInt64(d));
	if (!read_column(cond, d, ctx, &field))
	{
		TRACE_READ(ctx, cond, RULE_TRACE_UNREADABLE, NULL, NULL, 0);
		return false;
	}
	TRACE_READ(ctx, cond, RULE_TRACE_VALUE, &field, NULL, 0);
	return apply_op(cond, &field, ctx);
}

/* ----------------------------------------------------------------
 * Traits: keys of the traits jsonb
 * ---------------------------------------------------------------- */

/* Finds the trait at cond->path; false when absent. */
static bool
find_trait(const RuleCondition *cond, Jsonb *traits, JsonbValue *out)
{
	JsonbContainer *c = &traits->root;

	for (int i = 0; i < cond->npath; i++)
	{
		if (!JsonContainerIsObject(c) || JsonContainerIsScalar(c))
			return false;
		if (getKeyJsonValueFromContainer(c, cond->path[i], strlen(cond->path[i]), out) == NULL)
			return false;
		if (i + 1 < cond->npath)
		{
			if (out->type != jbvBinary)
				return false;
			c = out->val.binary.data;
		}
	}
	return true;
}

static bool
is_json_array(const JsonbValue *jv)
{
	return jv->type == jbvBinary && JsonContainerIsArray(jv->val.binary.data) &&
		!JsonContainerIsScalar(jv->val.binary.data);
}

/*
 * Is a JSON value of the JSON type that holds `type` (string for text,
 * number, boolean)?  Strict readings take only those.
 */
static inline bool
json_has_type(const JsonbValue *jv, RuleValueType type)
{
	switch (type)
	{
		case RVT_TEXT:
			return jv->type == jbvString;
		case RVT_NUMBER:
			return jv->type == jbvNumeric;
		case RVT_BOOLEAN:
			return jv->type == jbvBool;
		default:
			return true;
	}
}

/*
 * contains on a jsonb array: some element, read as element_as, equals
 * (without "as", only elements of the value's JSON type).
 */
static bool
json_array_contains(RuleCondition *cond, JsonbContainer *array)
{
	uint32		n = JsonContainerSize(array);

	for (uint32 i = 0; i < n; i++)
	{
		JsonbValue *elem = getIthJsonbValueFromContainer(array, i);
		RuleScalar	s;

		if (elem == NULL ||
			(cond->strict_elements && !json_has_type(elem, cond->element_as)))
			continue;
		if (RuleReadJsonb(elem, cond->element_as, &s) &&
			scalar_equals(cond, &s, 0))
			return true;
	}
	return false;
}

/*
 * The trait found read as `as`, through the contact's cache: conditions
 * reading one trait as one type (three time windows on a date, two
 * networks on an address) parse it once.
 */
static bool
read_trait(RuleFieldSlot *slot, const RuleEvalContext *ctx, const JsonbValue *jv,
		   RuleValueType as, RuleScalar *field)
{
	if (slot == NULL)
		return RuleReadJsonb(jv, as, field);
	if (slot->read_generation != ctx->generation || slot->read_type != as)
	{
		slot->read_ok = RuleReadJsonb(jv, as, &slot->read_value);
		slot->read_type = as;
		slot->read_generation = ctx->generation;
	}
	*field = slot->read_value;
	return slot->read_ok;
}

/*
 * The trait at cond's path for the contact (traits present), through the
 * contact's cache slot (*slotp; NULL: none); false when absent.
 */
static bool
lookup_trait(const RuleCondition *cond, const RuleEvalContext *ctx,
			 RuleFieldSlot **slotp, JsonbValue *jv)
{
	bool		fresh = false;
	RuleFieldSlot *slot = field_slot(cond, ctx, &fresh);
	bool		found;

	*slotp = slot;
	if (slot != NULL && fresh)
	{
		*jv = slot->jv;
		return slot->ok;
	}
	found = find_trait(cond, ctx->traits, jv);
	if (slot != NULL)
	{
		slot->ok = found;
		slot->jv = *jv;
	}
	return found;
}

static bool
eval_trait(RuleCondition *cond, const RuleEvalContext *ctx)
{
	JsonbValue	jv;
	RuleScalar	field;
	RuleFieldSlot *slot;

	if (ctx->traits == NULL)
	{
		TRACE_READ(ctx, cond, RULE_TRACE_NO_TRAITS, NULL, NULL, 0);
		return false;
	}
	if (!lookup_trait(cond, ctx, &slot, &jv))
	{
		TRACE_READ(ctx, cond, RULE_TRACE_ABSENT, NULL, NULL, 0);
		return false;
	}
	if (jv.type == jbvNull)
	{
		TRACE_READ(ctx, cond, RULE_TRACE_JSON_NULL, NULL, &jv, 0);
		return false;
	}
	if (cond->as_length)
	{
		int			length = -1;

		if (is_json_array(&jv))
			length = JsonContainerSize(jv.val.binary.data);
		else if (jv.type == jbvString)
			length = pg_mbstrlen_with_len(jv.val.string.val, jv.val.string.len);
		TRACE_READ(ctx, cond, length < 0 ? RULE_TRACE_UNREADABLE : RULE_TRACE_LENGTH,
				   NULL, &jv, length);
		if (length < 0)
			return false;
		return apply_length(cond, length, ctx);
	}
	if (cond->op == OP_IS_SET && !cond->explicit_as)
	{
		TRACE_READ(ctx, cond, RULE_TRACE_PRESENT, NULL, &jv, 0);
		return true;			/* present and not null */
	}
	if (cond->op == OP_CONTAINS && is_json_array(&jv))
	{
		TRACE_READ(ctx, cond, RULE_TRACE_ELEMENTS, NULL, &jv,
				   JsonContainerSize(jv.val.binary.data));
		return json_array_contains(cond, jv.val.binary.data);
	}
	if (cond->op == OP_IS_SET)
	{
		bool		readable = read_trait(slot, ctx, &jv, cond->element_as, &field);

		TRACE_READ(ctx, cond, readable ? RULE_TRACE_VALUE : RULE_TRACE_UNREADABLE,
				   readable ? &field : NULL, &jv, 0);
		return readable;
	}
	if (cond->strict && !json_has_type(&jv, cond->read_as))
	{
		TRACE_READ(ctx, cond, RULE_TRACE_OTHER_TYPE, NULL, &jv, 0);
		return false;			/* another JSON type: missing */
	}
	if (!read_trait(slot, ctx, &jv, cond->read_as, &field))
	{
		TRACE_READ(ctx, cond, RULE_TRACE_UNREADABLE, NULL, &jv, 0);
		return false;
	}
	TRACE_READ(ctx, cond, RULE_TRACE_VALUE, &field, &jv, 0);
	return apply_op(cond, &field, ctx);
}

/* ----------------------------------------------------------------
 * Segment and percentage conditions
 * ---------------------------------------------------------------- */

static bool
eval_segment(const RuleCondition *cond, const RuleEvalContext *ctx)
{
	if (unlikely(ctx->trace != NULL))
	{
		bool		any = false;

		/* every reference reported, not only up to the first true one */
		for (int i = 0; i < cond->nsegments; i++)
		{
			RuleTraceRead read = {RULE_TRACE_SEGMENT, NULL, NULL, 0, i,
			ctx->segment_result[cond->segment_slots[i]]};

			ctx->trace->read(ctx->trace->arg, cond, &read);
			any = any || read.result;
		}
		return any;
	}
	for (int i = 0; i < cond->nsegments; i++)
		if (ctx->segment_result[cond->segment_slots[i]])
			return true;
	return false;
}

static bool
eval_percentage(const RuleCondition *cond, const RuleEvalContext *ctx)
{
	RuleSaltHashes *hashes = ctx->salt_hashes;
	double		bucket;

	if (cond->salt_slot > 0 && hashes != NULL && cond->salt_slot <= hashes->nsalts)
	{
		/* the first percentage condition of the contact hashes every salt */
		if (hashes->generation != ctx->generation)
		{
			Md5First32Many(hashes->salts, hashes->salt_lens, hashes->nsalts, ':',
						   ctx->key_text, ctx->key_len, hashes->first32);
			hashes->generation = ctx->generation;
		}
		bucket = RulePercentageOf(hashes->first32[cond->salt_slot - 1]);
	}
	else
	{
		const char *salt = cond->salt ? cond->salt : ctx->default_salt;

		bucket = RulePercentageBucket(salt, strlen(salt), ctx->key_text, ctx->key_len);
	}

	TRACE_READ(ctx, cond, bucket < 0 ? RULE_TRACE_UNREADABLE : RULE_TRACE_BUCKET,
			   NULL, NULL, bucket);
	if (bucket < 0)
		return false;
	switch (cond->op)
	{
		case OP_GT:
			return bucket > cond->bounds[0];
		case OP_GTE:
			return bucket >= cond->bounds[0];
		case OP_LT:
			return bucket < cond->bounds[0];
		case OP_LTE:
			return bucket <= cond->bounds[0];
		case OP_BETWEEN:
			return bucket >= cond->bounds[0] && bucket <= cond->bounds[1];
		default:
			return false;
	}
}

/* ----------------------------------------------------------------
 * Trees
 * ---------------------------------------------------------------- */

/* ----------------------------------------------------------------
 * Results remembered by field value (RuleValueGroup)
 * ---------------------------------------------------------------- */

#define VALUE_MEMO_MAX_LEN	RULE_VALUE_KEY_MAX	/* longer values are not remembered */
#define VALUE_MEMO_ENTRIES	1024	/* distinct values per group */
#define VALUE_MEMO_BUCKETS	2048	/* at most; a power of 2 */
#define VALUE_MEMO_BUCKETS_FIRST 64	/* grown 4 times when half full */
#define VALUE_MEMO_TRIAL	4096	/* lookups before judging the hit rate */

/*
 * The bytes that identify the field's value for cond's group: a column's
 * binary image, or a scalar trait's JSON type and image.  false: nothing
 * to remember (missing, NULL, long, toasted, a JSON container).
 */
static bool
value_image(RuleCondition *cond, const RuleEvalContext *ctx, const RuleValueGroup *group,
			char *buf, int *len)
{
	if (cond->type == COND_ATTRIBUTE)
	{
		AttrNumber	attnum = cond->attr.attnum;
		Datum		d;

		if (ctx->nulls[attnum - 1])
			return false;
		d = ctx->values[attnum - 1];
		if (group->byval)
		{
			memcpy(buf, &d, sizeof(Datum));
			*len = sizeof(Datum);
			return true;
		}
		if (group->typlen == -1)
		{
			if (VARATT_IS_EXTERNAL(DatumGetPointer(d)) ||
				VARATT_IS_COMPRESSED(DatumGetPointer(d)))
				return false;	/* compressed or out of line: long anyway */
			*len = VARSIZE_ANY_EXHDR(DatumGetPointer(d));
			if (*len > VALUE_MEMO_MAX_LEN)
				return false;
			memcpy(buf, VARDATA_ANY(DatumGetPointer(d)), *len);
			return true;
		}
		if (group->typlen > 0 && group->typlen <= VALUE_MEMO_MAX_LEN)
		{
			*len = group->typlen;
			memcpy(buf, DatumGetPointer(d), *len);
			return true;
		}
		return false;
	}
	else
	{
		JsonbValue	jv;
		RuleFieldSlot *slot;

		if (ctx->traits == NULL || !lookup_trait(cond, ctx, &slot, &jv))
			return false;
		switch (jv.type)
		{
			case jbvString:
				if (jv.val.string.len > VALUE_MEMO_MAX_LEN)
					return false;
				buf[0] = 's';
				memcpy(buf + 1, jv.val.string.val, jv.val.string.len);
				*len = jv.val.string.len + 1;
				return true;
			case jbvNumeric:
				if (VARSIZE_ANY_EXHDR(jv.val.numeric) > VALUE_MEMO_MAX_LEN)
					return false;
				buf[0] = 'n';
				memcpy(buf + 1, VARDATA_ANY(jv.val.numeric), VARSIZE_ANY_EXHDR(jv.val.numeric));
				*len = VARSIZE_ANY_EXHDR(jv.val.numeric) + 1;
				return true;
			case jbvBool:
				buf[0] = jv.val.boolean ? 'T' : 'F';
				*len = 1;
				return true;
			default:
				return false;
		}
	}
}

/*
 * Four times the buckets: a column of a few values keeps its few in a few
 * cache lines, one of hundreds gets the room to find each at once.
 */
static void
value_buckets_grow(RuleValueGroup *group)
{
	int			n = Min(group->nbuckets * 4, VALUE_MEMO_BUCKETS);
	RuleValueEntry **buckets = MemoryContextAllocZero(group->cxt, n * sizeof(RuleValueEntry *));

	for (int b = 0; b < group->nbuckets; b++)
	{
		RuleValueEntry *entry = group->buckets[b];

		while (entry != NULL)
		{
			RuleValueEntry *next = entry->next;
			RuleValueEntry **bucket = &buckets[entry->hash & (n - 1)];

			entry->next = *bucket;
			*bucket = entry;
			entry = next;
		}
	}
	pfree(group->buckets);
	group->buckets = buckets;
	group->nbuckets = n;
}

/*
 * The remembered results for the contact's value of cond's field, found or
 * added, for the first condition of the group the contact meets (out of
 * line: the others only read group->entry).
 */
static pg_noinline RuleValueEntry *
value_lookup(RuleValueGroup *group, RuleCondition *cond, const RuleEvalContext *ctx)
{
	char		local[VALUE_MEMO_MAX_LEN + 1];
	char	   *buf = local;
	int			len;
	uint32		hash;
	RuleValueEntry **bucket;
	RuleValueEntry *entry;
	int			nbytes;

	group->generation = ctx->generation;
	group->entry = NULL;
	if (!group->enabled || group->off)
		return NULL;
	if (group->key_generation == ctx->generation)
	{
		/* RuleValuePrefetch() computed it */
		if (group->key_len < 0)
			return NULL;
		buf = group->key;
		len = group->key_len;
		hash = group->key_hash;
	}
	else
	{
		if (!value_image(cond, ctx, group, buf, &len))
			return NULL;
		hash = hash_bytes((const unsigned char *) buf, len);
	}
	if (++group->lookups == VALUE_MEMO_TRIAL && group->hits < VALUE_MEMO_TRIAL / 2)
	{
		group->off = true;		/* values rarely repeat */
		return NULL;
	}
	if (group->buckets == NULL)
	{
		group->nbuckets = VALUE_MEMO_BUCKETS_FIRST;
		group->buckets = MemoryContextAllocZero(group->cxt,
												group->nbuckets * sizeof(RuleValueEntry *));
	}
	bucket = &group->buckets[hash & (group->nbuckets - 1)];
	for (entry = *bucket; entry != NULL; entry = entry->next)
	{
		if (entry->hash == hash && entry->len == len && memcmp(entry->data, buf, len) == 0)
		{
			group->hits++;
			group->entry = entry;
			return entry;
		}
	}
	if (group->nentries >= VALUE_MEMO_ENTRIES)
		return NULL;
	nbytes = (group->nbits + 7) / 8;
	entry = MemoryContextAllocZero(group->cxt,
								   MAXALIGN(offsetof(RuleValueEntry, data) + len) + 2 * nbytes);
	entry->hash = hash;
	entry->len = len;
	memcpy(entry->data, buf, len);
	entry->known = (uint8 *) entry + MAXALIGN(offsetof(RuleValueEntry, data) + len);
	entry->result = entry->known + nbytes;
	entry->next = *bucket;
	*bucket = entry;
	group->nentries++;
	if (group->nentries > group->nbuckets / 2 && group->nbuckets < VALUE_MEMO_BUCKETS)
		value_buckets_grow(group);
	group->entry = entry;
	return entry;
}

#if defined(__GNUC__) || defined(__clang__)
#define prefetch_line(p)	__builtin_prefetch(p)
#else
#define prefetch_line(p)	((void) (p))
#endif

/*
 * Computes the remembered-value keys of the contact for the groups of
 * conds (one condition per group) and starts loading their buckets, then
 * their entries.  A lookup is two dependent loads (bucket, entry), which
 * with a dozen groups and a few hundred values each miss the caches: a
 * tenth of a pass's time, measured.  Started together for all groups, the
 * misses overlap.  Only a hint: value_lookup() uses the keys and finds the
 * same entries without it.
 */
void
RuleValuePrefetch(RuleCondition *const *conds, int n, const RuleEvalContext *ctx)
{
	for (int i = 0; i < n; i++)
	{
		RuleValueGroup *group = &ctx->value_groups[conds[i]->value_group - 1];

		if (!group->enabled || group->off || group->buckets == NULL ||
			group->generation == ctx->generation)
			continue;
		group->key_generation = ctx->generation;
		if (!value_image(conds[i], ctx, group, group->key, &group->key_len))
		{
			group->key_len = -1;
			continue;
		}
		group->key_hash = hash_bytes((const unsigned char *) group->key, group->key_len);
		prefetch_line(&group->buckets[group->key_hash & (group->nbuckets - 1)]);
	}
	for (int i = 0; i < n; i++)
	{
		RuleValueGroup *group = &ctx->value_groups[conds[i]->value_group - 1];

		if (group->key_generation == ctx->generation && group->key_len >= 0 &&
			group->buckets != NULL)
		{
			RuleValueEntry *entry = group->buckets[group->key_hash & (group->nbuckets - 1)];

			if (entry != NULL)
				prefetch_line(entry);
		}
	}
}

/* The remembered results for the contact's value of cond's field, or NULL. */
static inline RuleValueEntry *
value_entry(RuleCondition *cond, const RuleEvalContext *ctx)
{
	RuleValueGroup *group = &ctx->value_groups[cond->value_group - 1];

	if (group->generation == ctx->generation)
		return group->entry;
	return value_lookup(group, cond, ctx);
}

/* A condition's result before "negate" and the negative operators. */
static bool
eval_positive(RuleCondition *cond, const RuleEvalContext *ctx)
{
	switch (cond->type)
	{
		case COND_ATTRIBUTE:
			return eval_attribute(cond, ctx);
		case COND_TRAIT:
			return eval_trait(cond, ctx);
		case COND_SEGMENT:
			return eval_segment(cond, ctx);
		case COND_PERCENTAGE:
			return eval_percentage(cond, ctx);
	}
	return false;
}

/*
 * A condition's result before negation, through the results remembered
 * for the contact's value of its field when its group has them.
 */
static inline bool
eval_remembered(RuleCondition *cond, const RuleEvalContext *ctx)
{
	RuleValueEntry *entry = cond->value_group > 0 ? value_entry(cond, ctx) : NULL;
	int			byte;
	uint8		bit;
	bool		result;

	if (entry == NULL)
		return eval_positive(cond, ctx);
	byte = cond->value_bit >> 3;
	bit = 1 << (cond->value_bit & 7);
	if (entry->known[byte] & bit)
		return (entry->result[byte] & bit) != 0;
	result = eval_positive(cond, ctx);
	entry->known[byte] |= bit;
	if (result)
		entry->result[byte] |= bit;
	return result;
}

/*
 * A distinct condition of a pass's program for the contact of ctx (set up
 * by EvalProgramBeginContact, no trace), before "negate" and the negative
 * operators: the batch evaluator (eval_batch.c) asks once per contact.
 */
bool
RuleEvalPositive(RuleCondition *cond, const RuleEvalContext *ctx)
{
	return eval_remembered(cond, ctx);
}

/*
 * A condition's result, through the contact's memo when the pass shares it
 * (eval_program.c): evaluated once per contact by whichever segment asks
 * first.  A traced evaluation (explain) reads every condition itself.
 */
static bool
eval_condition(RuleCondition *cond, const RuleEvalContext *ctx)
{
	bool		result;
	int			m = cond->memo_slot - 1;

	if (m >= 0 && ctx->memo_generation != NULL && likely(ctx->trace == NULL))
	{
		if (ctx->memo_generation[m] == ctx->generation)
			result = ctx->memo_result[m];
		else
		{
			result = eval_remembered(cond, ctx);
			ctx->memo_result[m] = result;
			ctx->memo_generation[m] = ctx->generation;
		}
	}
	else
		result = eval_positive(cond, ctx);
	if (cond->negated_op)
		result = !result;
	if (cond->negate)
		result = !result;
	return result;
}

/*
 * RuleEvaluate with a trace: every child of a group is evaluated (the
 * result is the same as with the short cuts, and explain shows them all),
 * and every node is reported with its result.
 */
static bool
evaluate_traced(const RuleNode *node, RuleEvalContext *ctx)
{
	bool		result = false;

	switch (node->kind)
	{
		case RULE_AND:
			result = true;
			for (int i = 0; i < node->nchildren; i++)
				if (!RuleEvaluate(node->children[i], ctx))
					result = false;
			break;
		case RULE_OR:
			for (int i = 0; i < node->nchildren; i++)
				if (RuleEvaluate(node->children[i], ctx))
					result = true;
			break;
		case RULE_NOT:
			result = !RuleEvaluate(node->children[0], ctx);
			break;
		case RULE_CONDITION:
			result = eval_condition(node->cond, ctx);
			break;
	}
	ctx->trace->node(ctx->trace->arg, node, result);
	return result;
}

bool
RuleEvaluate(const RuleNode *node, RuleEvalContext *ctx)
{
	if (unlikely(ctx->trace != NULL))
		return evaluate_traced(node, ctx);
	switch (node->kind)
	{
		case RULE_AND:
			for (int i = 0; i < node->nchildren; i++)
				if (!RuleEvaluate(node->children[i], ctx))
					return false;
			return true;
		case RULE_OR:
			for (int i = 0; i < node->nchildren; i++)
				if (RuleEvaluate(node->children[i], ctx))
					return true;
			return false;
		case RULE_NOT:
			return !RuleEvaluate(node->children[0], ctx);
		case RULE_CONDITION:
			return eval_condition(node->cond, ctx);
	}
	return false;
}

/*
 * The node whose result is the tree's: a group of one child (a bare
 * condition is wrapped in AND) has that child's result.  The passes
 * evaluate from there, a call or two less for most segments; a traced
 * evaluation (explain) walks and reports the whole tree.
 */
const RuleNode *
RuleEntry(const RuleNode *root)
{
	while ((root->kind == RULE_AND || root->kind == RULE_OR) && root->nchildren == 1)
		root = root->children[0];
	return root;
}

/* ----------------------------------------------------------------
 * Layout
 * ---------------------------------------------------------------- */

/* Bytes RuleCompact needs for a tree. */
static Size
compact_size(const RuleNode *node)
{
	Size		size = MAXALIGN(sizeof(RuleNode)) +
		MAXALIGN(sizeof(RuleNode *) * Max(node->nchildren, 1));

	if (node->cond != NULL)
		size += MAXALIGN(sizeof(RuleCondition)) +
			MAXALIGN(sizeof(RuleScalar) * Max(node->cond->nvalues, 1));
	for (int i = 0; i < node->nchildren; i++)
		size += compact_size(node->children[i]);
	return size;
}

static RuleNode *
compact_copy(const RuleNode *node, char **next)
{
	RuleNode   *copy = (RuleNode *) *next;

	*next += MAXALIGN(sizeof(RuleNode));
	*copy = *node;
	copy->children = (RuleNode **) *next;
	*next += MAXALIGN(sizeof(RuleNode *) * Max(node->nchildren, 1));
	if (node->cond != NULL)
	{
		copy->cond = (RuleCondition *) *next;
		*next += MAXALIGN(sizeof(RuleCondition));
		*copy->cond = *node->cond;
		copy->cond->cache_cxt = CurrentMemoryContext;	/* not a chunk of its own */
		/* compiled anew into the copy's memory, which may outlive the original's */
		copy->cond->regex_plain = 0;
		copy->cond->regex_literal = NULL;
		copy->cond->regex_compiled = NULL;
		copy->cond->values = (RuleScalar *) *next;
		*next += MAXALIGN(sizeof(RuleScalar) * Max(node->cond->nvalues, 1));
		if (node->cond->nvalues > 0)
			memcpy(copy->cond->values, node->cond->values,
				   sizeof(RuleScalar) * node->cond->nvalues);
	}
	for (int i = 0; i < node->nchildren; i++)
		copy->children[i] = compact_copy(node->children[i], next);
	return copy;
}

/*
 * A copy of a rule tree in one block of memory, in the order evaluation
 * walks it.  A hundred segments evaluated for every contact walk their
 * trees millions of times: scattered nodes made a quarter of a pass wait
 * on cache misses.  Strings and other operands stay where they are.
 */
RuleNode *
RuleCompact(const RuleNode *root)
{
	char	   *block = palloc(compact_size(root));
	char	   *next = block;

	return compact_copy(root, &next);
}

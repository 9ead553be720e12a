/*-------------------------------------------------------------------------
 *
 * rule_parse.c
 *		Segment definitions: jsonb -> RuleNode tree, with every check of
 *		the rule language of docs/rules.md (rule_render.c shows the tree as text).
 *
 * RuleParse() walks the definition once, depth first, in document order.
 * Each node is checked in this order: depth and node count, shape (object,
 * group key or condition "type"), keys, "negate", "op", the field (column
 * or trait key/path), the modifiers "as" and "case_sensitive", the shape of
 * "value", the type the field is read as, then the values themselves, which
 * are converted to that type once, here, so that evaluation never parses a
 * definition again.  Every rejection is
 *
 *	 ERROR:  invalid segment definition at <path>: <what is wrong>
 *	 HINT:   <what is allowed>.
 *
 * with SQLSTATE 22023, <path> naming the offending node (group or
 * condition object), keys as written: "$", "$.or[0].and[2]", "$.not",
 * "$.none[1]".  A bare condition at the root is wrapped in an AND that is
 * neither counted nor named: its errors name "$".
 *
 * Nothing from a definition is ever pasted into SQL: values are converted
 * by C functions (rule_value.c) or by a column type's input function.
 *
 *-------------------------------------------------------------------------
 */
#include "segments.h"

#include "access/htup_details.h"
#include "catalog/dependency.h"
#include "catalog/pg_collation_d.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "regex/regex.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

/* ----------------------------------------------------------------
 * Tables
 * ---------------------------------------------------------------- */

/* What an operator's "value" looks like. */
typedef enum OpShape
{
	SHAPE_SCALAR,				/* one string, number or boolean */
	SHAPE_STRING,				/* one string */
	SHAPE_PAIR,					/* between: [low, high], one JSON type */
	SHAPE_LIST,					/* in: [scalar...], one JSON type */
	SHAPE_MODULO,				/* [divisor, remainder], numbers */
	SHAPE_CIDR,					/* a string or a non-empty array of them */
	SHAPE_NONE					/* no value */
} OpShape;

typedef struct OpInfo
{
	const char *name;
	RuleOp		op;				/* positive twin */
	bool		negated;
	OpShape		shape;
} OpInfo;

static const OpInfo op_table[] = {
	{"eq", OP_EQ, false, SHAPE_SCALAR},
	{"neq", OP_EQ, true, SHAPE_SCALAR},
	{"gt", OP_GT, false, SHAPE_SCALAR},
	{"gte", OP_GTE, false, SHAPE_SCALAR},
	{"lt", OP_LT, false, SHAPE_SCALAR},
	{"lte", OP_LTE, false, SHAPE_SCALAR},
	{"between", OP_BETWEEN, false, SHAPE_PAIR},
	{"in", OP_IN, false, SHAPE_LIST},
	{"not_in", OP_IN, true, SHAPE_LIST},
	{"contains", OP_CONTAINS, false, SHAPE_SCALAR},
	{"not_contains", OP_CONTAINS, true, SHAPE_SCALAR},
	{"starts_with", OP_STARTS_WITH, false, SHAPE_STRING},
	{"ends_with", OP_ENDS_WITH, false, SHAPE_STRING},
	{"regex", OP_REGEX, false, SHAPE_STRING},
	{"not_regex", OP_REGEX, true, SHAPE_STRING},
	{"is_set", OP_IS_SET, false, SHAPE_NONE},
	{"is_not_set", OP_IS_SET, true, SHAPE_NONE},
	{"modulo", OP_MODULO, false, SHAPE_MODULO},
	{"before", OP_BEFORE, false, SHAPE_STRING},
	{"after", OP_AFTER, false, SHAPE_STRING},
	{"within_last", OP_WITHIN_LAST, false, SHAPE_STRING},
	{"not_within_last", OP_WITHIN_LAST, true, SHAPE_STRING},
	{"within_next", OP_WITHIN_NEXT, false, SHAPE_STRING},
	{"in_cidr", OP_IN_CIDR, false, SHAPE_CIDR},
};

#define HINT_OPERATORS "Valid operators are eq, neq, gt, gte, lt, lte, between, in, not_in, contains, not_contains, starts_with, ends_with, regex, not_regex, is_set, is_not_set, modulo, before, after, within_last, not_within_last, within_next, in_cidr."
#define HINT_NODE "A node is a group, {\"and\": [...]}, {\"or\": [...]} or {\"not\": {...}} (aliases \"all\", \"any\" and \"none\": [...]), or a condition: an object with a \"type\"."
#define HINT_TYPES "Valid condition types are attribute, trait, segment, percentage."
#define HINT_AS "Valid \"as\" types are text, number, boolean, timestamp, semver, inet, length."
#define HINT_TIMESTAMP "Timestamps are ISO 8601: YYYY-MM-DD, or YYYY-MM-DDTHH:MM[:SS[.ffffff]] with an optional Z or +HH:MM/-HH:MM offset; no offset means UTC."
#define HINT_IMPLIED "Operators before, after, within_last, not_within_last and within_next read timestamps, in_cidr reads inet, modulo reads numbers, and contains (on text), starts_with, ends_with, regex and not_regex read text; \"as\" must agree or be left out."
#define HINT_CASE "\"case_sensitive\" applies to eq, neq, in, not_in, contains, not_contains, starts_with, ends_with, regex and not_regex on text fields."
#define HINT_TRAIT_PATH "A trait condition addresses the traits by \"key\" (one top-level key, used verbatim) or by \"path\" (a non-empty array of keys), not both."

/* Names of RuleValueType, for messages. */
static const char *const value_type_names[] = {
	"text", "number", "boolean", "timestamp", "semver", "inet", "native"
};

/* Keys a condition object may hold; which ones depends on its type. */
typedef enum CondKey
{
	CK_TYPE,
	CK_FIELD,
	CK_KEY,
	CK_PATH,
	CK_OP,
	CK_VALUE,
	CK_AS,
	CK_CASE,
	CK_NEGATE,
	CK_SALT,
	NUM_COND_KEYS
} CondKey;

static const char *const cond_key_names[NUM_COND_KEYS] = {
	"type", "field", "key", "path", "op", "value", "as", "case_sensitive",
	"negate", "salt"
};

#define KEYBIT(k) (1 << (k))

typedef struct CondTypeInfo
{
	const char *name;
	RuleCondType type;
	int			keys;			/* KEYBIT()s allowed */
	const char *hint;
} CondTypeInfo;

static const CondTypeInfo cond_types[] = {
	{"attribute", COND_ATTRIBUTE,
		KEYBIT(CK_TYPE) | KEYBIT(CK_FIELD) | KEYBIT(CK_OP) | KEYBIT(CK_VALUE) |
		KEYBIT(CK_AS) | KEYBIT(CK_CASE) | KEYBIT(CK_NEGATE),
	"Valid keys of an attribute condition are type, field, op, value, as, case_sensitive, negate."},
	{"trait", COND_TRAIT,
		KEYBIT(CK_TYPE) | KEYBIT(CK_KEY) | KEYBIT(CK_PATH) | KEYBIT(CK_OP) |
		KEYBIT(CK_VALUE) | KEYBIT(CK_AS) | KEYBIT(CK_CASE) | KEYBIT(CK_NEGATE),
	"Valid keys of a trait condition are type, key or path, op, value, as, case_sensitive, negate."},
	{"segment", COND_SEGMENT,
		KEYBIT(CK_TYPE) | KEYBIT(CK_OP) | KEYBIT(CK_VALUE) | KEYBIT(CK_NEGATE),
	"Valid keys of a segment condition are type, op, value, negate."},
	{"percentage", COND_PERCENTAGE,
		KEYBIT(CK_TYPE) | KEYBIT(CK_OP) | KEYBIT(CK_VALUE) | KEYBIT(CK_SALT) |
		KEYBIT(CK_NEGATE),
	"Valid keys of a percentage condition are type, op, value, salt, negate."},
};

/* How an attribute column (or its array element) is read. */
typedef enum ColumnKind
{
	COLK_TEXT,					/* text, varchar, bpchar, citext */
	COLK_TIME,					/* timestamptz, timestamp, date */
	COLK_INET,					/* inet, cidr */
	COLK_BOOL,
	COLK_NUMERIC,				/* native, and read as number by modulo */
	COLK_NATIVE,				/* any other type with a btree opclass */
	COLK_OPAQUE					/* no btree opclass: is_set only */
} ColumnKind;

/* JSON kinds of a JsonbValue. */
typedef enum JsonKind
{
	JK_NULL,
	JK_STRING,
	JK_NUMBER,
	JK_BOOL,
	JK_ARRAY,
	JK_OBJECT
} JsonKind;

/* One key/value pair of a JSON object, in jsonb's storage order. */
typedef struct ObjPair
{
	char	   *key;
	JsonbValue	value;
} ObjPair;

/* State of one RuleParse() call. */
typedef struct DefParseState
{
	const RuleParseContext *pctx;
	RuleParseResult *result;
	int			maxrefs;		/* allocated size of result->refs */
} DefParseState;

/* A condition object, split by key, while it is being parsed. */
typedef struct CondInput
{
	const char *path;
	const CondTypeInfo *type;
	JsonbValue *keys[NUM_COND_KEYS];	/* NULL when absent */
	const OpInfo *op;
	ColumnKind	kind;			/* attribute: the column (element) kind */

	/* modifiers */
	bool		has_as;
	bool		as_length;
	RuleValueType as;
	bool		has_case;

	/* the JSON scalars of "value" (or of its array) */
	int			nitems;
	JsonbValue **items;
} CondInput;

static RuleNode *parse_node(DefParseState *ps, const JsonbValue *jv,
							const char *path, int level);

/* ----------------------------------------------------------------
 * Errors
 * ---------------------------------------------------------------- */

/*
 * Raises the definition error at `path`: errmsg is "invalid segment
 * definition at <path>: " and the formatted text; detail may be NULL.
 */
static void
definition_error(const char *path, const char *detail, const char *hint,
				 const char *fmt,...)
pg_attribute_printf(4, 5) pg_attribute_noreturn();

static void
definition_error(const char *path, const char *detail, const char *hint,
				 const char *fmt,...)
{
	StringInfoData msg;

	initStringInfo(&msg);
	for (;;)
	{
		va_list		args;
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&msg, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&msg, needed);
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid segment definition at %s: %s", path, msg.data),
			 detail ? errdetail_internal("%s", detail) : 0,
			 hint ? errhint("%s", hint) : 0));
}

/* The hint describing what `op` takes as "value"; palloc'd. */
static char *
op_value_hint(const OpInfo *op)
{
	switch (op->shape)
	{
		case SHAPE_SCALAR:
			return psprintf("Operator \"%s\" takes one value: a string, a number or a boolean.", op->name);
		case SHAPE_STRING:
			if (op->op == OP_BEFORE || op->op == OP_AFTER)
				return psprintf("Operator \"%s\" takes an ISO 8601 timestamp string.", op->name);
			if (op->op == OP_WITHIN_LAST || op->op == OP_WITHIN_NEXT)
				return psprintf("Operator \"%s\" takes an interval string such as \"30 days\".", op->name);
			if (op->op == OP_REGEX)
				return psprintf("Operator \"%s\" takes a string holding a regular expression.", op->name);
			return psprintf("Operator \"%s\" takes a string.", op->name);
		case SHAPE_PAIR:
			return pstrdup("Operator \"between\" takes an array [low, high] of two values of the same JSON type, low not greater than high.");
		case SHAPE_LIST:
			return psprintf("Operator \"%s\" takes an array of strings, numbers or booleans, all of one JSON type.", op->name);
		case SHAPE_MODULO:
			return pstrdup("Operator \"modulo\" takes an array [divisor, remainder] of two numbers, the divisor not 0.");
		case SHAPE_CIDR:
			return pstrdup("Operator \"in_cidr\" takes a CIDR string such as \"10.0.0.0/8\", or a non-empty array of them.");
		case SHAPE_NONE:
			break;
	}
	return psprintf("Operator \"%s\" takes no \"value\".", op->name);
}

/* ----------------------------------------------------------------
 * Reading jsonb
 * ---------------------------------------------------------------- */

/* The JSON kind of a value (NULL, an absent value, counts as null). */
static JsonKind
json_kind(const JsonbValue *jv)
{
	if (jv == NULL)
		return JK_NULL;
	switch (jv->type)
	{
		case jbvString:
			return JK_STRING;
		case jbvNumeric:
			return JK_NUMBER;
		case jbvBool:
			return JK_BOOL;
		case jbvBinary:
			return JsonContainerIsObject(jv->val.binary.data) ? JK_OBJECT : JK_ARRAY;
		case jbvArray:
			return JK_ARRAY;
		case jbvObject:
			return JK_OBJECT;
		default:
			return JK_NULL;
	}
}

/* "a string", "an array"...: the kind of a value, for messages. */
static const char *
json_kind_name(JsonKind kind)
{
	static const char *const names[] = {
		"null", "a string", "a number", "a boolean", "an array", "an object"
	};

	return names[kind];
}

/* Is the value a string, a number or a boolean? */
static bool
json_is_scalar(const JsonbValue *jv)
{
	JsonKind	kind = json_kind(jv);

	return kind == JK_STRING || kind == JK_NUMBER || kind == JK_BOOL;
}

/* A value as JSON text ("v2", 10.5, true...), for messages; palloc'd. */
static char *
json_text(const JsonbValue *jv)
{
	StringInfoData buf;

	initStringInfo(&buf);
	switch (json_kind(jv))
	{
		case JK_STRING:
			escape_json(&buf, pnstrdup(jv->val.string.val, jv->val.string.len));
			break;
		case JK_NUMBER:
			appendStringInfoString(&buf, numeric_normalize(jv->val.numeric));
			break;
		case JK_BOOL:
			appendStringInfoString(&buf, jv->val.boolean ? "true" : "false");
			break;
		case JK_NULL:
			appendStringInfoString(&buf, "null");
			break;
		default:
			if (jv->type == jbvBinary)
				JsonbToCString(&buf, jv->val.binary.data, jv->val.binary.len);
			else
				appendStringInfoString(&buf, "...");
			break;
	}
	return buf.data;
}

/* A JSON string's text, NUL-terminated and palloc'd. */
static char *
json_cstring(const JsonbValue *jv)
{
	Assert(jv->type == jbvString);
	return pnstrdup(jv->val.string.val, jv->val.string.len);
}

/* The value of `key` in an object, palloc'd; NULL when absent. */
static JsonbValue *
object_get(JsonbContainer *obj, const char *key)
{
	return getKeyJsonValueFromContainer(obj, key, strlen(key), NULL);
}

/*
 * The pairs of an object (nested containers stay jbvBinary, pointing into
 * the definition); returns their number, *pairs is palloc'd.
 */
static int
object_pairs(JsonbContainer *obj, ObjPair **pairs)
{
	JsonbIterator *it = JsonbIteratorInit(obj);
	JsonbIteratorToken tok;
	JsonbValue	v;
	int			n = 0;

	*pairs = palloc(sizeof(ObjPair) * (JsonContainerSize(obj) + 1));
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			(*pairs)[n].key = json_cstring(&v);
		else if (tok == WJB_VALUE)
			(*pairs)[n++].value = v;
	}
	return n;
}

/* The elements of an array value; returns their number, *items palloc'd. */
static int
array_items(const JsonbValue *arr, JsonbValue ***items)
{
	JsonbContainer *c = arr->val.binary.data;
	int			n = (int) JsonContainerSize(c);

	*items = palloc(sizeof(JsonbValue *) * (n + 1));
	for (int i = 0; i < n; i++)
		(*items)[i] = getIthJsonbValueFromContainer(c, (uint32) i);
	return n;
}

/* ----------------------------------------------------------------
 * Calling PostgreSQL code that may raise an error on user input
 * ---------------------------------------------------------------- */

/*
 * Is an error with this SQLSTATE about the input being parsed?  A cancel,
 * a timeout, a lack of memory or an internal error is no fault of a
 * definition, and must not be reported as one.
 */
bool
RuleErrorIsInput(int sqlerrcode)
{
	int			category = ERRCODE_TO_CATEGORY(sqlerrcode);

	return category != ERRCODE_INSUFFICIENT_RESOURCES &&
		category != ERRCODE_PROGRAM_LIMIT_EXCEEDED &&
		category != ERRCODE_OPERATOR_INTERVENTION &&
		category != ERRCODE_SYSTEM_ERROR &&
		category != ERRCODE_INTERNAL_ERROR;
}

typedef Datum (*GuardedFunc) (void *arg);

/*
 * Runs fn(arg), storing its result in *result.  Returns NULL on success,
 * or the message of the error it raised (palloc'd), the error being
 * discarded so that the caller can raise its own, with the node's path.
 * Errors that are not about the input (cancel, out of memory, internal)
 * are re-thrown unchanged.  The caller always raises an ERROR after a
 * failure, so the transaction's cleanup still runs.
 */
static char *
guarded_call(GuardedFunc fn, void *arg, Datum *result)
{
	MemoryContext cxt = CurrentMemoryContext;
	char	   *volatile message = NULL;

	PG_TRY();
	{
		*result = fn(arg);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (!RuleErrorIsInput(edata->sqlerrcode))
			PG_RE_THROW();
		FlushErrorState();
		message = edata->message ? edata->message : pstrdup("unknown error");
	}
	PG_END_TRY();
	return message;
}

/* ----------------------------------------------------------------
 * Groups
 * ---------------------------------------------------------------- */

/* A new group node with n children (array palloc'd, filled by caller). */
static RuleNode *
make_group(RuleNodeKind kind, int n)
{
	RuleNode   *node = palloc0(sizeof(RuleNode));

	node->kind = kind;
	node->nchildren = n;
	node->children = palloc0(sizeof(RuleNode *) * (n + 1));
	return node;
}

/*
 * A group object {"and"|"or"|"all"|"any"|"none": [...]} or {"not": {...}}
 * at `level`; its children are at level + 1.
 */
static RuleNode *
parse_group(DefParseState *ps, JsonbContainer *obj, const char *path, int level)
{
	static const struct
	{
		const char *key;
		RuleNodeKind kind;
	}			groups[] = {
		{"and", RULE_AND}, {"all", RULE_AND}, {"or", RULE_OR},
		{"any", RULE_OR}, {"none", RULE_OR}, {"not", RULE_NOT}
	};
	ObjPair    *pairs;
	int			npairs = object_pairs(obj, &pairs);
	const char *key;
	JsonbValue *value;
	JsonbValue **items;
	RuleNode   *node;
	int			n;
	int			g;

	if (npairs == 0)
		definition_error(path, NULL, HINT_NODE, "an empty object is not a group or a condition");
	if (npairs > 1)
		definition_error(path, NULL, HINT_NODE,
						 "a group must have exactly one key, not %d (a condition needs a \"type\")",
						 npairs);
	key = pairs[0].key;
	value = &pairs[0].value;
	for (g = 0; g < (int) lengthof(groups); g++)
		if (strcmp(groups[g].key, key) == 0)
			break;
	if (g == (int) lengthof(groups))
		definition_error(path, NULL, HINT_NODE, "unknown key \"%s\"", key);

	if (groups[g].kind == RULE_NOT)
	{
		if (json_kind(value) != JK_OBJECT)
			definition_error(path, NULL,
							 "Use {\"not\": {...}} for one node, or {\"none\": [...]} for several.",
							 "\"not\" takes one node (an object), not %s",
							 json_kind_name(json_kind(value)));
		node = make_group(RULE_NOT, 1);
		node->children[0] = parse_node(ps, value, psprintf("%s.not", path), level + 1);
		return node;
	}

	if (json_kind(value) != JK_ARRAY)
		definition_error(path, NULL, HINT_NODE, "\"%s\" takes an array of nodes, not %s",
						 key, json_kind_name(json_kind(value)));
	n = array_items(value, &items);
	node = make_group(groups[g].kind, n);
	for (int i = 0; i < n; i++)
		node->children[i] = parse_node(ps, items[i],
									   psprintf("%s.%s[%d]", path, key, i),
									   level + 1);
	if (strcmp(key, "none") == 0)
	{
		RuleNode   *negation = make_group(RULE_NOT, 1);

		negation->children[0] = node;
		node = negation;
	}
	return node;
}

static RuleNode *parse_condition(DefParseState *ps, JsonbContainer *obj, const char *path);

/*
 * One node at `level` (root: 1): a condition (an object with "type") or a
 * group.  Checks the depth and node-count limits first.
 */
static RuleNode *
parse_node(DefParseState *ps, const JsonbValue *jv, const char *path, int level)
{
	JsonbContainer *obj;

	if (level > SEGMENTS_MAX_DEPTH)
		definition_error(path, NULL,
						 psprintf("A definition may nest at most %d levels of groups and conditions, the root being level 1.",
								  SEGMENTS_MAX_DEPTH),
						 "nesting deeper than %d levels", SEGMENTS_MAX_DEPTH);
	if (++ps->result->nnodes > SEGMENTS_MAX_NODES)
		definition_error("$", NULL,
						 psprintf("A definition may hold at most %d groups and conditions.",
								  SEGMENTS_MAX_NODES),
						 "more than %d nodes", SEGMENTS_MAX_NODES);
	if (json_kind(jv) != JK_OBJECT)
		definition_error(path, NULL, HINT_NODE, "a node must be an object, not %s",
						 json_kind_name(json_kind(jv)));

	obj = jv->val.binary.data;
	if (object_get(obj, "type") != NULL)
		return parse_condition(ps, obj, path);
	return parse_group(ps, obj, path, level);
}

/* ----------------------------------------------------------------
 * Conditions: keys, "op", "negate"
 * ---------------------------------------------------------------- */

/* Finds the type of a condition and sorts its keys into in->keys. */
static void
collect_condition(JsonbContainer *obj, const char *path, CondInput *in)
{
	JsonbValue *type = object_get(obj, "type");
	ObjPair    *pairs;
	int			npairs;
	char	   *name;

	memset(in, 0, sizeof(*in));
	in->path = path;
	if (json_kind(type) != JK_STRING)
		definition_error(path, NULL, HINT_TYPES, "condition \"type\" must be a string, not %s",
						 json_kind_name(json_kind(type)));
	name = json_cstring(type);
	for (int i = 0; i < (int) lengthof(cond_types); i++)
		if (strcmp(cond_types[i].name, name) == 0)
			in->type = &cond_types[i];
	if (in->type == NULL)
		definition_error(path, NULL, HINT_TYPES, "unknown condition type \"%s\"", name);

	npairs = object_pairs(obj, &pairs);
	for (int i = 0; i < npairs; i++)
	{
		int			k;

		for (k = 0; k < NUM_COND_KEYS; k++)
			if (strcmp(cond_key_names[k], pairs[i].key) == 0)
				break;
		if ((k == CK_AS || k == CK_CASE) && !(in->type->keys & KEYBIT(k)))
			definition_error(path, NULL, in->type->hint,
							 "modifier \"%s\" is not allowed on %s conditions",
							 pairs[i].key, in->type->name);
		if (k == NUM_COND_KEYS || !(in->type->keys & KEYBIT(k)))
			definition_error(path, NULL, in->type->hint, "unknown key \"%s\"", pairs[i].key);
		in->keys[k] = &pairs[i].value;
	}
}

/* The string value of a key (NULL when absent and not required). */
static char *
read_string_key(CondInput *in, CondKey k, bool required)
{
	JsonbValue *jv = in->keys[k];

	if (jv == NULL)
	{
		if (required)
			definition_error(in->path, NULL, in->type->hint, "missing key \"%s\"",
							 cond_key_names[k]);
		return NULL;
	}
	if (json_kind(jv) != JK_STRING)
		definition_error(in->path, NULL, in->type->hint, "\"%s\" must be a string, not %s",
						 cond_key_names[k], json_kind_name(json_kind(jv)));
	return json_cstring(jv);
}

/* The boolean value of an optional key; *present tells if it was given. */
static bool
read_bool_key(CondInput *in, CondKey k, bool *present)
{
	JsonbValue *jv = in->keys[k];

	*present = jv != NULL;
	if (jv == NULL)
		return false;
	if (json_kind(jv) != JK_BOOL)
		definition_error(in->path, NULL, in->type->hint,
						 "\"%s\" must be a boolean (true or false), not %s",
						 cond_key_names[k], json_kind_name(json_kind(jv)));
	return jv->val.boolean;
}

/* Looks "op" up and stores it in in->op and in the condition. */
static void
read_op(CondInput *in, RuleCondition *cond)
{
	char	   *name = read_string_key(in, CK_OP, true);

	for (int i = 0; i < (int) lengthof(op_table); i++)
	{
		if (strcmp(op_table[i].name, name) == 0)
		{
			in->op = &op_table[i];
			cond->op = op_table[i].op;
			cond->negated_op = op_table[i].negated;
			return;
		}
	}
	definition_error(in->path, NULL, HINT_OPERATORS, "unknown operator \"%s\"", name);
}

/* ----------------------------------------------------------------
 * The field: attribute columns and trait paths
 * ---------------------------------------------------------------- */

/*
 * Is the type the citext extension's citext?  Its oid is not fixed, and a
 * name proves nothing: a type named citext that is an enum, a domain, or
 * belongs to no extension or another one is not it.
 */
static bool
is_citext(Oid typid)
{
	HeapTuple	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	bool		named = false;
	Oid			ext;
	char	   *extname;

	if (!HeapTupleIsValid(tup))
		return false;
	named = strcmp(NameStr(((Form_pg_type) GETSTRUCT(tup))->typname), "citext") == 0 &&
		((Form_pg_type) GETSTRUCT(tup))->typtype == TYPTYPE_BASE;
	ReleaseSysCache(tup);
	if (!named)
		return false;
	ext = getExtensionOfObject(TypeRelationId, typid);
	if (!OidIsValid(ext))
		return false;
	extname = get_extension_name(ext);
	return extname != NULL && strcmp(extname, "citext") == 0;
}

/*
 * May attribute conditions read a column of this (non-array) type?  Only
 * built-in types whose input, output and comparison functions are
 * PostgreSQL's own, and the citext extension's citext (README: Security model): the parser
 * calls a column type's input function on definition values, and the
 * evaluator its comparison function, inside SECURITY DEFINER code and the
 * worker; a domain's CHECK, an enum's or composite's input (with its
 * fields' domains), or any function of a type a user created would run
 * there as the extension's owner.
 */
static bool
builtin_scalar_type(Oid typid)
{
	switch (typid)
	{
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case NUMERICOID:
		case FLOAT4OID:
		case FLOAT8OID:
		case BOOLOID:
		case DATEOID:
		case TIMEOID:
		case TIMETZOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
		case INTERVALOID:
		case UUIDOID:
		case INETOID:
		case CIDROID:
			return true;
		default:
			return is_citext(typid);
	}
}

#define HINT_COLUMN_TYPES "Attribute conditions read columns of built-in types only: text, varchar, char, citext, smallint, integer, bigint, numeric, real, double precision, boolean, date, time, timetz, timestamp, timestamptz, interval, uuid, inet, cidr, and arrays of them. Use a trait, or a column of one of these types."

/*
 * Refuses a column whose type attribute conditions may not read, before
 * anything of that type is looked at (SQLSTATE 0A000, naming the column).
 * The column's declared type is checked, not its base type: a domain over
 * text is refused, as is an array of a domain.
 */
static void
check_column_type(const char *path, Form_pg_attribute att)
{
	Oid			typid = att->atttypid;
	char		typtype = get_typtype(typid);
	Oid			elem = get_element_type(typid);	/* true arrays only */
	const char *what;

	if (OidIsValid(elem) ? builtin_scalar_type(elem) : builtin_scalar_type(typid))
		return;
	if (OidIsValid(elem))
		what = "an array of a type that is not built in";
	else if (typtype == TYPTYPE_DOMAIN)
		what = "a domain";
	else if (typtype == TYPTYPE_ENUM)
		what = "an enum";
	else if (typtype == TYPTYPE_COMPOSITE)
		what = "a composite type";
	else if (typtype == TYPTYPE_RANGE || typtype == TYPTYPE_MULTIRANGE)
		what = "a range type";
	else if (typid < FirstNormalObjectId)
		what = "a built-in type that attribute conditions do not compare";
	else
		what = "a type created in this database";
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("invalid segment definition at %s: column \"%s\" of type %s cannot be used in attribute conditions",
					path, NameStr(att->attname), format_type_be(typid)),
			 errdetail("Type %s is %s.", format_type_be(typid), what),
			 errhint(HINT_COLUMN_TYPES)));
}

/* How values of a (base, non-array) type are read. */
static ColumnKind
classify_type(Oid typid)
{
	switch (typid)
	{
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			return COLK_TEXT;
		case TIMESTAMPTZOID:
		case TIMESTAMPOID:
		case DATEOID:
			return COLK_TIME;
		case INETOID:
		case CIDROID:
			return COLK_INET;
		case BOOLOID:
			return COLK_BOOL;
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case NUMERICOID:
		case FLOAT4OID:
		case FLOAT8OID:
			return COLK_NUMERIC;
		default:
			break;
	}
	if (is_citext(typid))
		return COLK_TEXT;
	if (OidIsValid(lookup_type_cache(typid, TYPECACHE_CMP_PROC)->cmp_proc))
		return COLK_NATIVE;
	return COLK_OPAQUE;
}

/* The type a column kind is read as. */
static RuleValueType
kind_value_type(ColumnKind kind)
{
	switch (kind)
	{
		case COLK_TEXT:
			return RVT_TEXT;
		case COLK_TIME:
			return RVT_TIMESTAMP;
		case COLK_INET:
			return RVT_INET;
		case COLK_BOOL:
			return RVT_BOOLEAN;
		default:
			return RVT_NATIVE;
	}
}

/* "Columns of the source table are a, b, c.": the hint of unknown fields. */
static char *
columns_hint(TupleDesc desc)
{
	StringInfoData buf;
	int			n = 0;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "Columns of the source table are ");
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		appendStringInfo(&buf, "%s%s", n++ > 0 ? ", " : "", NameStr(att->attname));
	}
	appendStringInfoChar(&buf, '.');
	return buf.data;
}

/* Fills cond->attr from a column; returns the column (element) kind. */
static ColumnKind
fill_attribute(RuleCondition *cond, Form_pg_attribute att)
{
	RuleAttribute *a = &cond->attr;
	int32		typmod = att->atttypmod;
	Oid			type = getBaseTypeAndTypmod(att->atttypid, &typmod);
	Oid			elem = get_element_type(type);
	Oid			valtype = type;
	TypeCacheEntry *tce;

	a->attnum = att->attnum;
	a->typid = type;
	a->typmod = typmod;
	a->typlen = get_typlen(type);
	a->is_array = OidIsValid(elem);
	if (a->is_array)
	{
		int32		elemmod = -1;

		a->elemtype = getBaseTypeAndTypmod(elem, &elemmod);
		get_typlenbyvalalign(a->elemtype, &a->elmlen, &a->elmbyval, &a->elmalign);
		valtype = a->elemtype;
	}
	tce = lookup_type_cache(valtype, TYPECACHE_CMP_PROC_FINFO);
	if (OidIsValid(tce->cmp_proc))
		fmgr_info_copy(&a->cmp, &tce->cmp_proc_finfo, CurrentMemoryContext);
	a->collation = type_is_collatable(valtype) ? C_COLLATION_OID : InvalidOid;
	a->is_text = classify_type(valtype) == COLK_TEXT;
	a->is_time = classify_type(valtype) == COLK_TIME;
	return classify_type(valtype);
}

/* Resolves "field" against the source table. */
static void
parse_attribute_field(DefParseState *ps, CondInput *in, RuleCondition *cond)
{
	TupleDesc	desc = ps->pctx->source_desc;
	char	   *field = read_string_key(in, CK_FIELD, true);

	if (desc == NULL)
		definition_error(in->path, NULL,
						 "Call segments.configure() to set the contact source before using attribute or trait conditions.",
						 "segments is not configured");
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), field) == 0)
		{
			check_column_type(in->path, att);
			cond->field = field;
			in->kind = fill_attribute(cond, att);
			return;
		}
	}
	definition_error(in->path, NULL, columns_hint(desc), "unknown field \"%s\"", field);
}

/* Reads "key" or "path" of a trait condition into cond->path. */
static void
parse_trait_path(DefParseState *ps, CondInput *in, RuleCondition *cond)
{
	JsonbValue *path = in->keys[CK_PATH];
	JsonbValue **items;
	int			n;

	if (ps->pctx->source_desc == NULL)
		definition_error(in->path, NULL,
						 "Call segments.configure() to set the contact source before using attribute or trait conditions.",
						 "segments is not configured");
	if (ps->pctx->traits_attnum == 0)
		definition_error(in->path, NULL,
						 "Call segments.configure() with traits_column => '<jsonb column>' to use trait conditions.",
						 "no traits column is configured");
	if (in->keys[CK_KEY] != NULL && path != NULL)
		definition_error(in->path, NULL, HINT_TRAIT_PATH,
						 "a trait condition takes \"key\" or \"path\", not both");
	if (in->keys[CK_KEY] != NULL)
	{
		cond->npath = 1;
		cond->path = palloc(sizeof(char *));
		cond->path[0] = read_string_key(in, CK_KEY, true);
		return;
	}
	if (path == NULL)
		definition_error(in->path, NULL, HINT_TRAIT_PATH,
						 "a trait condition needs \"key\" or \"path\"");
	if (json_kind(path) != JK_ARRAY || (n = array_items(path, &items)) == 0)
		definition_error(in->path, NULL, HINT_TRAIT_PATH,
						 "\"path\" must be a non-empty array of strings");
	cond->npath = n;
	cond->path = palloc(sizeof(char *) * n);
	for (int i = 0; i < n; i++)
	{
		if (json_kind(items[i]) != JK_STRING)
			definition_error(in->path, NULL, HINT_TRAIT_PATH,
							 "\"path\" element %d must be a string, not %s", i,
							 json_kind_name(json_kind(items[i])));
		cond->path[i] = json_cstring(items[i]);
	}
}

/* ----------------------------------------------------------------
 * Modifiers and typing
 * ---------------------------------------------------------------- */

/* Reads "as" and "case_sensitive". */
static void
read_modifiers(CondInput *in, RuleCondition *cond)
{
	char	   *as = read_string_key(in, CK_AS, false);
	bool		case_sensitive = read_bool_key(in, CK_CASE, &in->has_case);

	cond->case_insensitive = in->has_case && !case_sensitive;
	if (as == NULL)
		return;
	in->has_as = true;
	if (strcmp(as, "length") == 0)
	{
		in->as_length = true;
		return;
	}
	for (int t = RVT_TEXT; t <= RVT_INET; t++)
	{
		if (strcmp(value_type_names[t], as) == 0)
		{
			in->as = (RuleValueType) t;
			return;
		}
	}
	definition_error(in->path, NULL, HINT_AS, "unknown \"as\" type \"%s\"", as);
}

/*
 * The type an operator reads the field as, or -1: time operators read
 * timestamps, in_cidr inet, modulo numbers, starts_with/ends_with/regex
 * text (contains is decided by the caller: text, or array elements).
 */
static int
op_implied_type(RuleOp op)
{
	switch (op)
	{
		case OP_BEFORE:
		case OP_AFTER:
		case OP_WITHIN_LAST:
		case OP_WITHIN_NEXT:
			return RVT_TIMESTAMP;
		case OP_IN_CIDR:
			return RVT_INET;
		case OP_MODULO:
			return RVT_NUMBER;
		case OP_STARTS_WITH:
		case OP_ENDS_WITH:
		case OP_REGEX:
			return RVT_TEXT;
		default:
			return -1;
	}
}

/* Is this an ordering operator (meaningless on booleans)? */
static bool
op_is_ordering(RuleOp op)
{
	return op == OP_GT || op == OP_GTE || op == OP_LT || op == OP_LTE ||
		op == OP_BETWEEN;
}

/* Rejects an explicit "as" that disagrees with the operator's type. */
static void
check_as_conflict(CondInput *in, int implied)
{
	if (implied >= 0 && (RuleValueType) implied != in->as)
		definition_error(in->path, NULL, HINT_IMPLIED,
						 "\"as\": \"%s\" conflicts with operator \"%s\", which reads the field as %s",
						 value_type_names[in->as], in->op->name, value_type_names[implied]);
}

/* "as": "length": a number compared by the numeric operators. */
static void
set_length(CondInput *in, RuleCondition *cond)
{
	RuleOp		op = cond->op;

	if (!(op == OP_EQ || op_is_ordering(op) || op == OP_IN ||
		  op == OP_IS_SET || op == OP_MODULO))
		definition_error(in->path, NULL,
						 "\"as\": \"length\" compares a length with eq, neq, gt, gte, lt, lte, between, in, not_in, modulo, is_set or is_not_set.",
						 "\"as\": \"length\" conflicts with operator \"%s\"", in->op->name);
	cond->as_length = true;
	cond->read_as = cond->element_as = RVT_NUMBER;
}

/* The type of a JSON scalar's own kind: string text, number, boolean. */
static RuleValueType
json_value_type(const JsonbValue *jv)
{
	switch (json_kind(jv))
	{
		case JK_NUMBER:
			return RVT_NUMBER;
		case JK_BOOL:
			return RVT_BOOLEAN;
		default:
			return RVT_TEXT;
	}
}

/*
 * Trait typing: "as", else the operator's type, else the JSON type of the
 * value.  Without "as", that last reading is strict: eq, in, ordering and
 * between see a trait of another JSON type as missing ("42" is not 42,
 * "true" is not true), and contains compares array elements of the value's
 * JSON type only.  contains on a non-array trait is a text operator: it
 * reads numbers and booleans by their JSON text, as starts_with, ends_with
 * and regex do.
 */
static void
type_trait(CondInput *in, RuleCondition *cond)
{
	int			implied = op_implied_type(cond->op);
	bool		contains = cond->op == OP_CONTAINS;

	if (in->as_length)
	{
		set_length(in, cond);
		return;
	}
	if (in->has_as)
	{
		check_as_conflict(in, implied);
		cond->explicit_as = true;
		cond->element_as = in->as;
		cond->read_as = contains ? RVT_TEXT : in->as;
		return;
	}
	if (implied >= 0)
		cond->read_as = (RuleValueType) implied;
	else if (in->nitems > 0 && !contains)
	{
		/* eq, in, ordering, between: strict, as jsonb's own = is */
		cond->read_as = json_value_type(in->items[0]);
		cond->strict = true;
	}
	else
		cond->read_as = RVT_TEXT;	/* is_set, empty in, contains on text */
	cond->element_as = contains ? json_value_type(in->items[0]) : cond->read_as;
	cond->strict_elements = contains;
}

/* Rejects "as" on a column it does not apply to. */
static void
check_attribute_as(CondInput *in, RuleCondition *cond)
{
	bool		ok = in->kind == COLK_TEXT && !cond->attr.is_array;

	if (in->as_length)
		ok = ok || cond->attr.is_array;
	if (!ok)
		definition_error(in->path, NULL,
						 "\"as\" reads a text column (text, varchar, char, citext) as another type; \"as\": \"length\" also applies to array columns.",
						 "\"as\" is not allowed on column \"%s\" of type %s",
						 cond->field, format_type_be(cond->attr.typid));
}

/* Array columns: contains, is_set and "as": "length" only. */
static void
type_attribute_array(CondInput *in, RuleCondition *cond)
{
	if (cond->op != OP_CONTAINS && cond->op != OP_IS_SET)
		definition_error(in->path, NULL,
						 "Array columns take contains, not_contains, is_set and is_not_set, and the numeric operators with \"as\": \"length\".",
						 "operator \"%s\" cannot be used on array column \"%s\"",
						 in->op->name, cond->field);
	cond->read_as = cond->element_as = kind_value_type(in->kind);
}

/*
 * Attribute typing: the column's type decides; a text column may be read
 * as another type, by "as" or by the operator.
 */
static void
type_attribute(CondInput *in, RuleCondition *cond)
{
	int			implied = op_implied_type(cond->op);

	if (cond->op == OP_CONTAINS && !cond->attr.is_array)
		implied = RVT_TEXT;
	if (in->has_as)
		check_attribute_as(in, cond);
	if (in->as_length)
	{
		set_length(in, cond);
		return;
	}
	if (in->has_as)
	{
		check_as_conflict(in, implied);
		cond->explicit_as = true;
		cond->read_as = cond->element_as = in->as;
		return;
	}
	if (cond->attr.is_array)
	{
		type_attribute_array(in, cond);
		return;
	}
	cond->read_as = kind_value_type(in->kind);
	if (in->kind == COLK_TEXT && implied >= 0)
		cond->read_as = (RuleValueType) implied;
	else if (in->kind == COLK_NUMERIC && cond->op == OP_MODULO)
		cond->read_as = RVT_NUMBER;
	else if (implied >= 0 && (RuleValueType) implied != cond->read_as)
		definition_error(in->path, NULL,
						 "Text operators need a text column, time operators a timestamptz, timestamp or date column, in_cidr an inet or cidr column, and modulo a numeric column.",
						 "operator \"%s\" cannot be used on column \"%s\" of type %s",
						 in->op->name, cond->field, format_type_be(cond->attr.typid));
	cond->element_as = cond->read_as;
}

/* The type the values of a condition are converted to. */
static RuleValueType
operand_type(const RuleCondition *cond)
{
	return cond->op == OP_CONTAINS ? cond->element_as : cond->read_as;
}

/* Rejects ordering on booleans and comparisons of incomparable columns. */
static void
check_comparable(CondInput *in, RuleCondition *cond)
{
	if (op_is_ordering(cond->op) && cond->read_as == RVT_BOOLEAN)
		definition_error(in->path, NULL,
						 "Booleans take eq, neq, in, not_in, is_set and is_not_set.",
						 "operator \"%s\" cannot compare booleans", in->op->name);
	if (cond->op != OP_IS_SET && operand_type(cond) == RVT_NATIVE &&
		!OidIsValid(cond->attr.cmp.fn_oid))
		definition_error(in->path, NULL,
						 "Columns of a type without a default btree operator class take only is_set and is_not_set.",
						 "column \"%s\" of type %s cannot be compared",
						 cond->field, format_type_be(cond->attr.typid));
}

/* "case_sensitive" only on text comparisons (either value). */
static void
check_case_sensitive(CondInput *in, RuleCondition *cond)
{
	RuleOp		op = cond->op;
	bool		text_like;

	if (!in->has_case)
		return;
	if (!(op == OP_EQ || op == OP_IN || op == OP_CONTAINS ||
		  op == OP_STARTS_WITH || op == OP_ENDS_WITH || op == OP_REGEX))
		definition_error(in->path, NULL, HINT_CASE,
						 "\"case_sensitive\" is not allowed with operator \"%s\"",
						 in->op->name);
	text_like = !cond->as_length && operand_type(cond) == RVT_TEXT &&
		cond->read_as == RVT_TEXT;
	if (cond->type == COND_ATTRIBUTE && !cond->attr.is_text)
		text_like = false;
	if (!text_like)
		definition_error(in->path, NULL, HINT_CASE,
						 "\"case_sensitive\" applies only to text conditions");
}

/* ----------------------------------------------------------------
 * Values: shape
 * ---------------------------------------------------------------- */

/* An array "value" whose elements must all be scalars of one JSON kind. */
static void
collect_scalar_array(CondInput *in, const JsonbValue *value, bool strings_only)
{
	const char *hint = op_value_hint(in->op);

	in->nitems = array_items(value, &in->items);
	for (int i = 0; i < in->nitems; i++)
	{
		JsonKind	kind = json_kind(in->items[i]);

		if (!json_is_scalar(in->items[i]) || (strings_only && kind != JK_STRING))
			definition_error(in->path, NULL, hint,
							 "element %d of the value of \"%s\" must be %s, not %s",
							 i, in->op->name,
							 strings_only ? "a string" : "a string, a number or a boolean",
							 json_kind_name(kind));
		if (kind != json_kind(in->items[0]))
			definition_error(in->path, NULL, hint,
							 "the values of \"%s\" mix JSON types (%s and %s)",
							 in->op->name, json_kind_name(json_kind(in->items[0])),
							 json_kind_name(kind));
	}
}

/*
 * An in/not_in list over SEGMENTS_MAX_LIST_VALUES values is refused before
 * it is read: every contact change would compare against all of it.
 */
static void
check_list_length(CondInput *in, const JsonbValue *list)
{
	uint32		n = JsonContainerSize(list->val.binary.data);

	if (n > SEGMENTS_MAX_LIST_VALUES)
		definition_error(in->path, NULL,
						 psprintf("An \"in\" or \"not_in\" list may hold at most %d values; keep longer lists in a column or a trait and test that instead.",
								  SEGMENTS_MAX_LIST_VALUES),
						 "the list of \"%s\" has %u values, over the limit of %d",
						 in->op->name, n, SEGMENTS_MAX_LIST_VALUES);
}

/* Checks "value" against the operator's shape; fills in->items. */
static void
collect_value(CondInput *in)
{
	JsonbValue *value = in->keys[CK_VALUE];
	const OpInfo *op = in->op;
	const char *hint = op_value_hint(op);
	JsonKind	kind = json_kind(value);

	if (op->shape == SHAPE_NONE)
	{
		if (value != NULL)
			definition_error(in->path, NULL, hint, "operator \"%s\" takes no value", op->name);
		return;
	}
	if (value == NULL)
		definition_error(in->path, NULL, hint, "operator \"%s\" needs a value", op->name);
	if (kind == JK_NULL)
		definition_error(in->path, NULL, hint, "\"value\" must not be null");

	if (op->shape == SHAPE_SCALAR || op->shape == SHAPE_STRING ||
		(op->shape == SHAPE_CIDR && kind != JK_ARRAY))
	{
		if (!json_is_scalar(value) || (op->shape != SHAPE_SCALAR && kind != JK_STRING))
			definition_error(in->path, NULL, hint, "operator \"%s\" needs %s, not %s",
							 op->name, op->shape == SHAPE_SCALAR ?
							 "a string, a number or a boolean" : "a string",
							 json_kind_name(kind));
		in->nitems = 1;
		in->items = palloc(sizeof(JsonbValue *));
		in->items[0] = value;
		return;
	}
	if (kind != JK_ARRAY)
		definition_error(in->path, NULL, hint, "operator \"%s\" needs an array, not %s",
						 op->name, json_kind_name(kind));
	if (op->shape == SHAPE_LIST)
		check_list_length(in, value);
	collect_scalar_array(in, value, op->shape == SHAPE_CIDR);
	if ((op->shape == SHAPE_PAIR || op->shape == SHAPE_MODULO) && in->nitems != 2)
		definition_error(in->path, NULL, hint,
						 "operator \"%s\" needs an array of exactly two values, not %d",
						 op->name, in->nitems);
	if (op->shape == SHAPE_MODULO && json_kind(in->items[0]) != JK_NUMBER)
		definition_error(in->path, NULL, hint,
						 "operator \"modulo\" needs two numbers, not %s",
						 json_kind_name(json_kind(in->items[0])));
	if (op->shape == SHAPE_CIDR && in->nitems == 0)
		definition_error(in->path, NULL, hint,
						 "operator \"in_cidr\" needs at least one network");
}

/* ----------------------------------------------------------------
 * Values: conversion
 * ---------------------------------------------------------------- */

/* Copies what a scalar points to (text, numeric) into the current context. */
static void
own_scalar(RuleScalar *s)
{
	if (s->type == RVT_TEXT)
		s->u.text.str = pnstrdup(s->u.text.str, s->u.text.len);
	else if (s->type == RVT_NUMBER)
		s->u.number = DatumGetNumericCopy(NumericGetDatum(s->u.number));
}

/* A column type's input function call, for guarded_call(). */
typedef struct InputCall
{
	FmgrInfo	flinfo;
	char	   *str;
	Oid			ioparam;
	int32		typmod;
} InputCall;

static Datum
call_input(void *arg)
{
	InputCall  *call = (InputCall *) arg;

	return InputFunctionCall(&call->flinfo, call->str, call->ioparam, call->typmod);
}

/* Converts a JSON scalar through the column (element) type's input function. */
static void
convert_native(CondInput *in, RuleCondition *cond, const JsonbValue *jv,
			   RuleScalar *out)
{
	Oid			type = cond->attr.is_array ? cond->attr.elemtype : cond->attr.typid;
	InputCall	call;
	Oid			func;
	char	   *error;

	switch (json_kind(jv))
	{
		case JK_STRING:
			call.str = json_cstring(jv);
			break;
		case JK_BOOL:
			call.str = pstrdup(jv->val.boolean ? "true" : "false");
			break;
		default:
			call.str = numeric_normalize(jv->val.numeric);
			break;
	}
	getTypeInputInfo(type, &func, &call.ioparam);
	fmgr_info(func, &call.flinfo);
	call.typmod = cond->attr.typmod;
	out->type = RVT_NATIVE;
	error = guarded_call(call_input, &call, &out->u.native);
	if (error != NULL)
		definition_error(in->path, error,
						 psprintf("Values compared with column \"%s\" must be valid input for type %s.",
								  cond->field, format_type_be(type)),
						 "value %s is not a valid %s", json_text(jv), format_type_be(type));
}

/* The hint telling what a value of `type` looks like. */
static const char *
value_type_hint(RuleValueType type)
{
	switch (type)
	{
		case RVT_NUMBER:
			return "Numbers are JSON numbers or strings holding a numeric literal.";
		case RVT_BOOLEAN:
			return "Booleans are true or false.";
		case RVT_TIMESTAMP:
			return HINT_TIMESTAMP;
		case RVT_SEMVER:
			return "Versions follow semver.org 2.0.0: MAJOR.MINOR.PATCH[-pre-release][+build].";
		case RVT_INET:
			return "Addresses are IPv4 or IPv6 addresses or networks, such as \"10.0.0.0/8\".";
		default:
			return "Text values are strings, numbers or booleans.";
	}
}

/*
 * Does this condition compare values with a char(n) column as char(n)'s own
 * comparison operators do (eq, neq, in, not_in, ordering, between, and
 * contains on a char(n) array)?  Those ignore trailing spaces, which the
 * column's values are read without (rule_eval.c), so the definition's
 * values lose them too: "ab " equals a stored 'ab', as 'ab'::char(3) =
 * 'ab ' is true.  Text operators and "as" read the column as text.
 */
static bool
bpchar_comparison(const CondInput *in, const RuleCondition *cond)
{
	if (cond->type != COND_ATTRIBUTE || cond->explicit_as || in->kind != COLK_TEXT ||
		(cond->attr.is_array ? cond->attr.elemtype : cond->attr.typid) != BPCHAROID)
		return false;
	switch (cond->op)
	{
		case OP_EQ:
		case OP_GT:
		case OP_GTE:
		case OP_LT:
		case OP_LTE:
		case OP_BETWEEN:
		case OP_IN:
			return true;
		case OP_CONTAINS:
			return cond->attr.is_array;
		default:
			return false;
	}
}

/*
 * Converts one JSON scalar to `type`, raising the error with the node's
 * path when it cannot be read so.  Definition timestamps are strings of
 * the ISO profile only; values for native and boolean columns go through
 * the column type's input function.
 */
static void
convert_scalar(CondInput *in, RuleCondition *cond, const JsonbValue *jv,
			   RuleValueType type, RuleScalar *out)
{
	bool		ok;

	memset(out, 0, sizeof(*out));
	if (type == RVT_NATIVE)
	{
		convert_native(in, cond, jv, out);
		return;
	}
	if (type == RVT_BOOLEAN && cond->type == COND_ATTRIBUTE &&
		in->kind == COLK_BOOL && json_kind(jv) != JK_BOOL)
	{
		/* a boolean column's own input function: 't', 'yes', 'off'... */
		Datum		datum;

		convert_native(in, cond, jv, out);
		datum = out->u.native;
		out->type = RVT_BOOLEAN;
		out->u.boolean = DatumGetBool(datum);
		return;
	}
	if (type == RVT_INET && cond->type == COND_ATTRIBUTE &&
		in->kind == COLK_INET && cond->op != OP_IN_CIDR &&
		(cond->attr.is_array ? cond->attr.elemtype : cond->attr.typid) == CIDROID)
	{
		/*
		 * A value compared with a cidr column goes through cidr's own input
		 * function, which refuses host bits right of the mask (10.1.1.1/8):
		 * no cidr value equals it.  in_cidr's networks accept host bits.
		 */
		convert_native(in, cond, jv, out);
		memset(out, 0, sizeof(*out));
	}
	if (type == RVT_TIMESTAMP)
	{
		out->type = RVT_TIMESTAMP;
		ok = json_kind(jv) == JK_STRING &&
			RuleReadTimestampText(jv->val.string.val, jv->val.string.len,
								  &out->u.timestamp);
	}
	else
		ok = RuleReadJsonb(jv, type, out);
	if (!ok)
		definition_error(in->path, NULL, value_type_hint(type),
						 "value %s is not a valid %s", json_text(jv),
						 value_type_names[type]);
	out->type = type;
	if (type == RVT_TEXT && bpchar_comparison(in, cond))
	{
		/* as char(n)'s own = and <: trailing spaces are insignificant */
		while (out->u.text.len > 0 && out->u.text.str[out->u.text.len - 1] == ' ')
			out->u.text.len--;
	}
	own_scalar(out);
}

/* interval_in on a C string, for guarded_call(). */
static Datum
call_interval_in(void *arg)
{
	return DirectFunctionCall3(interval_in, CStringGetDatum((char *) arg),
							   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
}

/* The interval of within_*: a PostgreSQL interval literal, not negative. */
static void
parse_interval(CondInput *in, RuleCondition *cond, const JsonbValue *jv)
{
	const char *hint = "Intervals are PostgreSQL interval literals such as \"30 days\" or \"2 hours\", and must not be negative.";
	char	   *str = json_cstring(jv);
	Datum		result;
	char	   *error = guarded_call(call_interval_in, str, &result);
	Interval	zero;

	if (error != NULL)
		definition_error(in->path, error, hint, "value %s is not a valid interval",
						 json_text(jv));
	memset(&zero, 0, sizeof(zero));
	if (DatumGetBool(DirectFunctionCall2(interval_lt, result, IntervalPGetDatum(&zero))))
		definition_error(in->path, NULL, hint, "interval %s is negative", json_text(jv));
	cond->interval = DatumGetIntervalP(result);
}

/* A regex compilation, for guarded_call(). */
typedef struct RegexCall
{
	text	   *pattern;
	int			flags;
} RegexCall;

static Datum
call_regex_compile(void *arg)
{
	RegexCall  *call = (RegexCall *) arg;
	regex_t    *re = RE_compile_and_cache(call->pattern, call->flags, C_COLLATION_OID);

	return BoolGetDatum((re->re_info & REG_UBACKREF) != 0);
}

#define HINT_REGEX_LIMITS "A pattern may be at most 1000 characters long and may not use back-references (\\1 to \\9), whose matching cost has no bound."

/*
 * Compiles the pattern of regex/not_regex now, as the evaluator will.
 * Patterns over SEGMENTS_MAX_REGEX_CHARS characters and patterns with
 * back-references (the regex compiler reports them, whatever the syntax
 * flavour: \1 in ARE, \(a\)\1 after (?b)) are refused: their matching
 * time cannot be bounded, and one such rule would stall every evaluation.
 */
static void
compile_regex(CondInput *in, RuleCondition *cond)
{
	const RuleScalar *pat = &cond->values[0];
	RegexCall	call;
	Datum		backref;
	char	   *error;
	int			nchars = pg_mbstrlen_with_len(pat->u.text.str, pat->u.text.len);

	if (nchars > SEGMENTS_MAX_REGEX_CHARS)
		definition_error(in->path, NULL, HINT_REGEX_LIMITS,
						 "the regular expression has %d characters, over the limit of %d",
						 nchars, SEGMENTS_MAX_REGEX_CHARS);
	call.pattern = cstring_to_text_with_len(pat->u.text.str, pat->u.text.len);
	call.flags = REG_ADVANCED | (cond->case_insensitive ? REG_ICASE : 0);
	error = guarded_call(call_regex_compile, &call, &backref);
	if (error != NULL)
	{
		const char *prefix = "invalid regular expression: ";

		if (strncmp(error, prefix, strlen(prefix)) == 0)
			error += strlen(prefix);
		definition_error(in->path, NULL,
						 "Patterns are PostgreSQL advanced regular expressions, as for the ~ operator.",
						 "invalid regular expression: %s", error);
	}
	if (DatumGetBool(backref))
		definition_error(in->path, NULL, HINT_REGEX_LIMITS,
						 "the regular expression uses a back-reference");
	cond->regex = call.pattern;
}

/* between: low <= high once converted. */
static void
check_between(CondInput *in, RuleCondition *cond)
{
	if (RuleCompareScalar(&cond->values[0], &cond->values[1], &cond->attr) > 0)
		definition_error(in->path, NULL, op_value_hint(in->op),
						 "the low value %s of \"between\" is greater than the high value %s",
						 json_text(in->items[0]), json_text(in->items[1]));
}

/* Is a numeric zero? */
static bool
numeric_is_zero(Numeric num)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(num),
											 NumericGetDatum(int64_to_numeric(0)))) == 0;
}

/* Converts the values of an attribute or trait condition and checks them. */
static void
convert_values(CondInput *in, RuleCondition *cond)
{
	RuleValueType type = operand_type(cond);

	if (cond->op == OP_WITHIN_LAST || cond->op == OP_WITHIN_NEXT)
	{
		parse_interval(in, cond, in->items[0]);
		return;
	}
	cond->nvalues = in->nitems;
	cond->values = palloc0(sizeof(RuleScalar) * (in->nitems + 1));
	for (int i = 0; i < in->nitems; i++)
		convert_scalar(in, cond, in->items[i], type, &cond->values[i]);

	if (cond->op == OP_BETWEEN)
		check_between(in, cond);
	else if (cond->op == OP_MODULO && numeric_is_zero(cond->values[0].u.number))
		definition_error(in->path, NULL, op_value_hint(in->op),
						 "the divisor of \"modulo\" must not be 0");
	else if (cond->op == OP_REGEX)
		compile_regex(in, cond);
}

/* ----------------------------------------------------------------
 * Condition types
 * ---------------------------------------------------------------- */

/* attribute and trait conditions: field, modifiers, typing, values. */
static void
parse_field_condition(DefParseState *ps, CondInput *in, RuleCondition *cond)
{
	if (cond->type == COND_ATTRIBUTE)
		parse_attribute_field(ps, in, cond);
	else
		parse_trait_path(ps, in, cond);
	read_modifiers(in, cond);
	collect_value(in);
	if (cond->type == COND_ATTRIBUTE)
		type_attribute(in, cond);
	else
		type_trait(in, cond);
	check_comparable(in, cond);
	check_case_sensitive(in, cond);
	convert_values(in, cond);
	if (cond->op == OP_WITHIN_LAST || cond->op == OP_WITHIN_NEXT)
		ps->result->uses_time = true;
}

/* Adds a segment id to result->refs unless it is there already. */
static void
add_ref(DefParseState *ps, const pg_uuid_t *id)
{
	RuleParseResult *r = ps->result;

	for (int i = 0; i < r->nrefs; i++)
		if (memcmp(&r->refs[i], id, sizeof(pg_uuid_t)) == 0)
			return;
	if (r->nrefs == ps->maxrefs)
	{
		ps->maxrefs = Max(8, ps->maxrefs * 2);
		r->refs = r->refs ? repalloc(r->refs, sizeof(pg_uuid_t) * ps->maxrefs) :
			palloc(sizeof(pg_uuid_t) * ps->maxrefs);
	}
	r->refs[r->nrefs++] = *id;
}

/* segment: in/not_in a segment (uuid or name) or a non-empty list of them. */
static void
parse_segment_condition(DefParseState *ps, CondInput *in, RuleCondition *cond)
{
	const char *hint = "A segment condition takes op in or not_in and a value naming a segment of the same tenant by id or name, or a non-empty array of them.";
	JsonbValue *value = in->keys[CK_VALUE];
	JsonbValue **items = &value;
	int			n = 1;

	if (cond->op != OP_IN)
		definition_error(in->path, NULL, hint,
						 "operator \"%s\" is not allowed on segment conditions", in->op->name);
	if (json_kind(value) == JK_ARRAY)
	{
		check_list_length(in, value);
		n = array_items(value, &items);
	}
	if (n == 0 || json_kind(items[0]) != JK_STRING)
		definition_error(in->path, NULL, hint,
						 "a segment condition needs a segment id or name, or a non-empty array of them");
	cond->nsegments = n;
	cond->segment_refs = palloc(sizeof(char *) * n);
	cond->segment_ids = palloc0(sizeof(pg_uuid_t) * n);
	for (int i = 0; i < n; i++)
	{
		if (json_kind(items[i]) != JK_STRING)
			definition_error(in->path, NULL, hint,
							 "element %d of the segment list must be a string, not %s",
							 i, json_kind_name(json_kind(items[i])));
		cond->segment_refs[i] = json_cstring(items[i]);
		if (ps->pctx->resolve == NULL ||
			!ps->pctx->resolve(cond->segment_refs[i], &cond->segment_ids[i],
							   ps->pctx->resolve_arg))
			definition_error(in->path, NULL, hint, "unknown segment \"%s\"",
							 cond->segment_refs[i]);
		add_ref(ps, &cond->segment_ids[i]);
	}
}

/* percentage: gt/gte/lt/lte/between on the bucket, values in [0, 100]. */
static void
parse_percentage_condition(CondInput *in, RuleCondition *cond)
{
	const char *hint = "A percentage condition takes op gt, gte, lt, lte or between and numbers from 0 to 100.";
	Numeric		hundred = int64_to_numeric(100);

	if (!op_is_ordering(cond->op))
		definition_error(in->path, NULL, hint,
						 "operator \"%s\" is not allowed on percentage conditions", in->op->name);
	cond->salt = read_string_key(in, CK_SALT, false);
	if (cond->op != OP_BETWEEN && in->keys[CK_VALUE] != NULL &&
		json_kind(in->keys[CK_VALUE]) != JK_NULL &&
		json_kind(in->keys[CK_VALUE]) != JK_NUMBER)
		definition_error(in->path, NULL, hint, "a percentage must be a number, not %s",
						 json_kind_name(json_kind(in->keys[CK_VALUE])));
	collect_value(in);
	cond->read_as = cond->element_as = RVT_NUMBER;
	cond->nvalues = in->nitems;
	cond->values = palloc0(sizeof(RuleScalar) * in->nitems);
	cond->bounds = palloc0(sizeof(double) * in->nitems);
	for (int i = 0; i < in->nitems; i++)
	{
		Numeric		num;

		if (json_kind(in->items[i]) != JK_NUMBER)
			definition_error(in->path, NULL, hint, "a percentage must be a number, not %s",
							 json_kind_name(json_kind(in->items[i])));
		num = DatumGetNumericCopy(NumericGetDatum(in->items[i]->val.numeric));
		if (numeric_is_nan(num) ||
			DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(num),
											  NumericGetDatum(int64_to_numeric(0)))) < 0 ||
			DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(num),
											  NumericGetDatum(hundred))) > 0)
			definition_error(in->path, NULL, hint, "percentage %s is outside [0, 100]",
							 json_text(in->items[i]));
		cond->values[i].type = RVT_NUMBER;
		cond->values[i].u.number = num;
		cond->bounds[i] = strtod(numeric_normalize(num), NULL);
	}
	if (cond->op == OP_BETWEEN && cond->bounds[0] > cond->bounds[1])
		definition_error(in->path, NULL, hint,
						 "the low value %s of \"between\" is greater than the high value %s",
						 json_text(in->items[0]), json_text(in->items[1]));
}

/* A condition object at `path`: a RULE_CONDITION node. */
static RuleNode *
parse_condition(DefParseState *ps, JsonbContainer *obj, const char *path)
{
	RuleNode   *node = palloc0(sizeof(RuleNode));
	RuleCondition *cond = palloc0(sizeof(RuleCondition));
	CondInput	in;
	bool		present;

	collect_condition(obj, path, &in);
	cond->type = in.type->type;
	cond->json_path = pstrdup(path);
	cond->negate = read_bool_key(&in, CK_NEGATE, &present);
	read_op(&in, cond);

	switch (cond->type)
	{
		case COND_ATTRIBUTE:
		case COND_TRAIT:
			parse_field_condition(ps, &in, cond);
			break;
		case COND_SEGMENT:
			parse_segment_condition(ps, &in, cond);
			break;
		case COND_PERCENTAGE:
			parse_percentage_condition(&in, cond);
			break;
	}
	node->kind = RULE_CONDITION;
	node->cond = cond;
	return node;
}

/* ----------------------------------------------------------------
 * Entry point
 * ---------------------------------------------------------------- */

/*
 * A definition over SEGMENTS_MAX_DEFINITION_BYTES as jsonb text (what
 * jsonb's output function prints) is refused, at "$", before it is read.
 */
static void
check_definition_size(Jsonb *definition)
{
	char	   *text = JsonbToCString(NULL, &definition->root, VARSIZE(definition));
	size_t		len = strlen(text);

	pfree(text);
	if (len > SEGMENTS_MAX_DEFINITION_BYTES)
		definition_error("$", NULL,
						 psprintf("A definition may be at most %d bytes (256 kB) as jsonb text; keep long lists of values in a column or a trait and test that instead.",
								  SEGMENTS_MAX_DEFINITION_BYTES),
						 "the definition is %zu bytes as jsonb text, over the limit of %d",
						 len, SEGMENTS_MAX_DEFINITION_BYTES);
}

/*
 * Parses and checks a definition.  The result and the tree are palloc'd in
 * the current memory context (the caller owns it); the definition itself
 * is not referenced afterwards.  A bare condition is wrapped in an AND.
 * nnodes counts the JSON groups and conditions ("none" counts once).
 * Cycles through segment references are the caller's job (see refs).
 */
RuleParseResult *
RuleParse(Jsonb *definition, const RuleParseContext *pctx)
{
	DefParseState	ps;
	JsonbValue	root;
	RuleNode   *node;

	ps.pctx = pctx;
	ps.result = palloc0(sizeof(RuleParseResult));
	ps.maxrefs = 0;

	if (JB_ROOT_IS_SCALAR(definition))
	{
		JsonbValue	scalar;

		JsonbExtractScalar(&definition->root, &scalar);
		definition_error("$", NULL, HINT_NODE, "a definition must be an object, not %s",
						 json_kind_name(json_kind(&scalar)));
	}
	check_definition_size(definition);
	root.type = jbvBinary;
	root.val.binary.data = &definition->root;
	root.val.binary.len = VARSIZE(definition) - VARHDRSZ;

	node = parse_node(&ps, &root, "$", 1);
	if (node->kind == RULE_CONDITION)
	{
		RuleNode   *wrap = make_group(RULE_AND, 1);

		wrap->children[0] = node;
		node = wrap;
	}
	ps.result->root = node;
	return ps.result;
}

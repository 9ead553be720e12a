/*-------------------------------------------------------------------------
 *
 * rule_value.c
 *		Reading values as a rule type (number, boolean, text, timestamp,
 *		semver, inet), comparing them, and percentage buckets.
 *
 * Everything here reads data, so nothing here may raise an error on odd
 * input: a value that cannot be read returns false and counts as missing
 * (docs/rules.md).  The scanners below accept exactly what the PostgreSQL input
 * function would, within limits that keep that function from failing, and
 * only then call it.
 *
 *-------------------------------------------------------------------------
 */
#include "segments.h"

#include <math.h>
#include <sys/socket.h>

#include "datatype/timestamp.h"
#include "md5_bucket.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"

/* Longest numeric literal read from data: keeps numeric_in from failing. */
#define MAX_NUMBER_TEXT 1000
/* numeric_in rejects larger exponents (NUMERIC_MAX_PRECISION). */
#define MAX_NUMBER_EXPONENT 1000

/* ----------------------------------------------------------------
 * Numbers
 * ---------------------------------------------------------------- */

/*
 * A PostgreSQL numeric literal: optional spaces, sign, digits with an
 * optional point (at least one digit), optional exponent, optional spaces.
 * NaN and Infinity are not numbers here.
 */
static bool
is_number_literal(const char *s, int len)
{
	int			i = 0;
	int			digits = 0;
	int			exponent = 0;

	if (len > MAX_NUMBER_TEXT)
		return false;
	while (i < len && isspace((unsigned char) s[i]))
		i++;
	if (i < len && (s[i] == '+' || s[i] == '-'))
		i++;
	while (i < len && isdigit((unsigned char) s[i]))
		i++, digits++;
	if (i < len && s[i] == '.')
	{
		i++;
		while (i < len && isdigit((unsigned char) s[i]))
			i++, digits++;
	}
	if (digits == 0)
		return false;
	if (i < len && (s[i] == 'e' || s[i] == 'E'))
	{
		int			edigits = 0;

		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		while (i < len && isdigit((unsigned char) s[i]))
		{
			if (exponent <= MAX_NUMBER_EXPONENT)
				exponent = exponent * 10 + (s[i] - '0');
			i++, edigits++;
		}
		if (edigits == 0 || exponent > MAX_NUMBER_EXPONENT)
			return false;
	}
	while (i < len && isspace((unsigned char) s[i]))
		i++;
	return i == len;
}

bool
RuleReadNumberText(const char *str, int len, Numeric *result)
{
	char	   *copy;

	if (!is_number_literal(str, len))
		return false;
	copy = pnstrdup(str, len);
	*result = DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(copy),
												  ObjectIdGetDatum(InvalidOid),
												  Int32GetDatum(-1)));
	return true;
}

/* ----------------------------------------------------------------
 * Timestamps: the ISO 8601 profile of docs/rules.md
 * ---------------------------------------------------------------- */

/* Reads exactly n digits at *p. */
static bool
read_digits(const char **p, const char *end, int n, int *value)
{
	int			v = 0;

	if (end - *p < n)
		return false;
	for (int i = 0; i < n; i++)
	{
		char		c = (*p)[i];

		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*value = v;
	return true;
}

static bool
expect_char(const char **p, const char *end, char c)
{
	if (*p < end && **p == c)
	{
		(*p)++;
		return true;
	}
	return false;
}

/*
 * YYYY-MM-DD, or YYYY-MM-DDTHH:MM[:SS[.f...]] with 1 to 6 fraction digits
 * and an optional Z or +-HH:MM.  No offset means UTC.
 */
bool
RuleReadTimestampText(const char *str, int len, TimestampTz *result)
{
	const char *p = str;
	const char *end = str + len;
	int			year,
				month,
				day,
				hour = 0,
				minute = 0,
				second = 0;
	int64		fraction = 0;
	int64		offset = 0;
	int64		days;

	if (!read_digits(&p, end, 4, &year) || !expect_char(&p, end, '-') ||
		!read_digits(&p, end, 2, &month) || !expect_char(&p, end, '-') ||
		!read_digits(&p, end, 2, &day))
		return false;
	if (month < 1 || month > 12 || day < 1 ||
		day > day_tab[isleap(year)][month - 1])
		return false;
	if (p < end)
	{
		if (!expect_char(&p, end, 'T') ||
			!read_digits(&p, end, 2, &hour) || !expect_char(&p, end, ':') ||
			!read_digits(&p, end, 2, &minute))
			return false;
		if (expect_char(&p, end, ':'))
		{
			if (!read_digits(&p, end, 2, &second))
				return false;
			if (expect_char(&p, end, '.'))
			{
				int			n = 0;

				while (p < end && *p >= '0' && *p <= '9' && n < 6)
				{
					fraction = fraction * 10 + (*p++ - '0');
					n++;
				}
				if (n == 0 || (p < end && *p >= '0' && *p <= '9'))
					return false;
				for (; n < 6; n++)
					fraction *= 10;
			}
		}
		if (hour > 23 || minute > 59 || second > 59)
			return false;
		if (p < end && (*p == 'Z'))
			p++;
		else if (p < end && (*p == '+' || *p == '-'))
		{
			int			sign = *p++ == '-' ? -1 : 1;
			int			oh,
						om;

			if (!read_digits(&p, end, 2, &oh) || !expect_char(&p, end, ':') ||
				!read_digits(&p, end, 2, &om) || oh > 23 || om > 59)
				return false;
			offset = sign * ((int64) oh * SECS_PER_HOUR + om * SECS_PER_MINUTE) * USECS_PER_SEC;
		}
		if (p != end)
			return false;
	}
	days = date2j(year, month, day) - POSTGRES_EPOCH_JDATE;
	*result = days * USECS_PER_DAY +
		((int64) hour * SECS_PER_HOUR + minute * SECS_PER_MINUTE + second) * USECS_PER_SEC +
		fraction - offset;
	return true;
}

/* A JSON number as Unix epoch seconds. */
static bool
read_epoch(Numeric number, TimestampTz *result)
{
	double		seconds;
	double		usecs;

	if (numeric_is_nan(number) || numeric_is_inf(number))
		return false;
	seconds = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
												 NumericGetDatum(number)));
	usecs = (seconds - (double) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY) *
		USECS_PER_SEC;
	if (isnan(usecs) || usecs < (double) MIN_TIMESTAMP || usecs >= (double) END_TIMESTAMP)
		return false;
	*result = (TimestampTz) rint(usecs);
	return true;
}

/* ----------------------------------------------------------------
 * Semantic versions (semver.org 2.0.0)
 * ---------------------------------------------------------------- */

static bool
is_ident_char(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
		(c >= 'A' && c <= 'Z') || c == '-';
}

static bool
all_digits(const char *s, int len)
{
	for (int i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* A numeric identifier: digits, no leading zero, fits in int64. */
static bool
read_version_number(const char **p, const char *end, int64 *value)
{
	const char *start = *p;
	int64		v = 0;

	while (*p < end && **p >= '0' && **p <= '9')
	{
		if (v > (PG_INT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (**p - '0');
		(*p)++;
	}
	if (*p == start || (start[0] == '0' && *p - start > 1))
		return false;
	*value = v;
	return true;
}

/*
 * Dot-separated identifiers up to `stop` (or the end): non-empty, of
 * [0-9A-Za-z-]; numeric ones without leading zeros when `strict_numbers`.
 * Returns the number of identifiers, or -1.
 */
static int
scan_identifiers(const char *s, const char *end, bool strict_numbers)
{
	int			n = 0;

	while (true)
	{
		const char *start = s;

		while (s < end && *s != '.')
		{
			if (!is_ident_char(*s))
				return -1;
			s++;
		}
		if (s == start)
			return -1;
		if (strict_numbers && all_digits(start, s - start) && s - start > 1 && start[0] == '0')
			return -1;
		n++;
		if (s == end)
			return n;
		s++;					/* the dot */
	}
}

bool
RuleReadSemVer(const char *str, int len, SemVer **result)
{
	const char *p = str;
	const char *end = str + len;
	const char *plus;
	const char *pre_end;
	SemVer		v;

	memset(&v, 0, sizeof(v));
	if (!read_version_number(&p, end, &v.major) || !expect_char(&p, end, '.') ||
		!read_version_number(&p, end, &v.minor) || !expect_char(&p, end, '.') ||
		!read_version_number(&p, end, &v.patch))
		return false;
	plus = memchr(p, '+', end - p);
	pre_end = plus ? plus : end;
	if (plus != NULL && scan_identifiers(plus + 1, end, false) < 0)
		return false;
	if (p < pre_end)
	{
		const char *s;

		if (*p != '-')
			return false;
		p++;
		v.npre = scan_identifiers(p, pre_end, true);
		if (v.npre < 0)
			return false;
		v.pre = palloc(v.npre * sizeof(char *));
		s = p;
		for (int i = 0; i < v.npre; i++)
		{
			const char *dot = memchr(s, '.', pre_end - s);
			const char *stop = dot ? dot : pre_end;

			v.pre[i] = pnstrdup(s, stop - s);
			s = stop + 1;
		}
	}
	else if (p != pre_end)
		return false;
	*result = palloc(sizeof(SemVer));
	**result = v;
	return true;
}

/* Precedence of semver.org 2.0.0, section 11. */
int
SemVerCompare(const SemVer *a, const SemVer *b)
{
	if (a->major != b->major)
		return a->major < b->major ? -1 : 1;
	if (a->minor != b->minor)
		return a->minor < b->minor ? -1 : 1;
	if (a->patch != b->patch)
		return a->patch < b->patch ? -1 : 1;
	/* a pre-release sorts before its release */
	if (a->npre == 0 || b->npre == 0)
		return (a->npre == 0) - (b->npre == 0);
	for (int i = 0; i < a->npre && i < b->npre; i++)
	{
		const char *x = a->pre[i];
		const char *y = b->pre[i];
		bool		xnum = all_digits(x, strlen(x));
		bool		ynum = all_digits(y, strlen(y));
		int			c;

		if (xnum && ynum)
		{
			/* no leading zeros: the longer number is the larger */
			size_t		lx = strlen(x),
						ly = strlen(y);

			c = lx != ly ? (lx < ly ? -1 : 1) : strcmp(x, y);
		}
		else if (xnum != ynum)
			c = xnum ? -1 : 1;	/* numeric identifiers sort first */
		else
			c = strcmp(x, y);	/* ASCII order */
		if (c != 0)
			return c < 0 ? -1 : 1;
	}
	return (a->npre > b->npre) - (a->npre < b->npre);
}

/* ----------------------------------------------------------------
 * Addresses
 * ---------------------------------------------------------------- */

/* An inet value (host bits allowed), as inet_in reads it, without errors. */
bool
RuleReadInet(const char *str, int len, inet **result)
{
	char	   *copy;
	inet	   *dst;
	int			bits;

	if (len == 0 || len > 128)
		return false;
	copy = pnstrdup(str, len);
	dst = palloc0(sizeof(inet));
	ip_family(dst) = strchr(copy, ':') != NULL ? PGSQL_AF_INET6 : PGSQL_AF_INET;
	bits = pg_inet_net_pton(ip_family(dst), copy, ip_addr(dst), -1);
	if (bits < 0 || bits > ip_maxbits(dst))
		return false;
	ip_bits(dst) = bits;
	SET_INET_VARSIZE(dst);
	*result = dst;
	return true;
}

/* ----------------------------------------------------------------
 * JSON values
 * ---------------------------------------------------------------- */

/* The JSON text of a number or boolean (its jsonb rendering). */
static void
scalar_json_text(const JsonbValue *jv, RuleScalar *result)
{
	const char *s;

	if (jv->type == jbvNumeric)
		s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(jv->val.numeric)));
	else
		s = jv->val.boolean ? "true" : "false";
	result->u.text.str = s;
	result->u.text.len = strlen(s);
}

/*
 * Reads a JSON value as `as` (docs/rules.md, "What `as` reads").  Arrays and
 * objects (jbvBinary) and JSON null are unreadable.
 */
bool
RuleReadJsonb(const JsonbValue *jv, RuleValueType as, RuleScalar *result)
{
	result->type = as;
	switch (as)
	{
		case RVT_TEXT:
			if (jv->type == jbvString)
			{
				result->u.text.str = jv->val.string.val;
				result->u.text.len = jv->val.string.len;
				return true;
			}
			if (jv->type == jbvNumeric || jv->type == jbvBool)
			{
				scalar_json_text(jv, result);
				return true;
			}
			return false;
		case RVT_NUMBER:
			if (jv->type == jbvNumeric)
			{
				if (numeric_is_nan(jv->val.numeric) || numeric_is_inf(jv->val.numeric))
					return false;
				result->u.number = jv->val.numeric;
				return true;
			}
			if (jv->type == jbvString)
				return RuleReadNumberText(jv->val.string.val, jv->val.string.len,
										  &result->u.number);
			return false;
		case RVT_BOOLEAN:
			if (jv->type == jbvBool)
			{
				result->u.boolean = jv->val.boolean;
				return true;
			}
			if (jv->type == jbvString)
			{
				if (jv->val.string.len == 4 &&
					pg_strncasecmp(jv->val.string.val, "true", 4) == 0)
					result->u.boolean = true;
				else if (jv->val.string.len == 5 &&
						 pg_strncasecmp(jv->val.string.val, "false", 5) == 0)
					result->u.boolean = false;
				else
					return false;
				return true;
			}
			return false;
		case RVT_TIMESTAMP:
			if (jv->type == jbvString)
				return RuleReadTimestampText(jv->val.string.val, jv->val.string.len,
											 &result->u.timestamp);
			if (jv->type == jbvNumeric)
				return read_epoch(jv->val.numeric, &result->u.timestamp);
			return false;
		case RVT_SEMVER:
			return jv->type == jbvString &&
				RuleReadSemVer(jv->val.string.val, jv->val.string.len, &result->u.semver);
		case RVT_INET:
			return jv->type == jbvString &&
				RuleReadInet(jv->val.string.val, jv->val.string.len, &result->u.inet);
		case RVT_NATIVE:
			break;
	}
	return false;
}

/* ----------------------------------------------------------------
 * Comparing
 * ---------------------------------------------------------------- */

/* Code point order of UTF-8 text: byte order, then length. */
static int
compare_text(const char *a, int alen, const char *b, int blen)
{
	int			c = memcmp(a, b, Min(alen, blen));

	if (c != 0)
		return c < 0 ? -1 : 1;
	return (alen > blen) - (alen < blen);
}

/* Orders two scalars of the same type; -1, 0 or 1. */
int
RuleCompareScalar(const RuleScalar *a, const RuleScalar *b, const RuleAttribute *attr)
{
	int			c;

	switch (a->type)
	{
		case RVT_TEXT:
			return compare_text(a->u.text.str, a->u.text.len, b->u.text.str, b->u.text.len);
		case RVT_NUMBER:
			return DatumGetInt32(DirectFunctionCall2(numeric_cmp,
													 NumericGetDatum(a->u.number),
													 NumericGetDatum(b->u.number)));
		case RVT_BOOLEAN:
			return (a->u.boolean > b->u.boolean) - (a->u.boolean < b->u.boolean);
		case RVT_TIMESTAMP:
			return (a->u.timestamp > b->u.timestamp) - (a->u.timestamp < b->u.timestamp);
		case RVT_SEMVER:
			return SemVerCompare(a->u.semver, b->u.semver);
		case RVT_INET:
			return DatumGetInt32(DirectFunctionCall2(network_cmp,
													 InetPGetDatum(a->u.inet),
													 InetPGetDatum(b->u.inet)));
		case RVT_NATIVE:
			c = DatumGetInt32(FunctionCall2Coll((FmgrInfo *) &attr->cmp, attr->collation,
												a->u.native, b->u.native));
			return (c > 0) - (c < 0);
	}
	return 0;
}

/* ----------------------------------------------------------------
 * Percentage buckets
 * ---------------------------------------------------------------- */

/*
 * (('x' || left(md5(salt || ':' || key), 8))::bit(32)::bigint % 10000) / 100.0
 * : the first 32 bits of the md5, unsigned, modulo 10000, in hundredths.
 */
double
RulePercentageBucket(const char *salt, int salt_len, const char *key, int key_len)
{
	return RulePercentageOf(Md5First32(salt, salt_len, ':', key, key_len));
}

/* The bucket of a hash's first 32 bits. */
double
RulePercentageOf(uint32 first32)
{
	return (double) (first32 % 10000) / 100.0;
}

/*
 * t + sign * interval, in UTC (timestamp arithmetic, no time zone); past
 * the timestamp range, the infinity on that side.
 */
TimestampTz
RuleShiftTime(TimestampTz t, Interval *interval, int sign)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile TimestampTz result = sign > 0 ? DT_NOEND : DT_NOBEGIN;

	PG_TRY();
	{
		result = DatumGetTimestamp(DirectFunctionCall2(sign > 0 ? timestamp_pl_interval
													   : timestamp_mi_interval,
													   TimestampGetDatum(t),
													   IntervalPGetDatum(interval)));
	}
	PG_CATCH();
	{
		/* out of range: the interval reaches past every timestamp */
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
	}
	PG_END_TRY();
	return result;
}

/*-------------------------------------------------------------------------
 *
 * regex_literal.c
 *		regex conditions whose pattern is a finite set of literal strings
 *		("@(acme\.io|globex\.com)$", "[05]$", "^SKU-"), matched without
 *		the regex engine.
 *
 * The regex engine costs about a thousand instructions per short text;
 * such a pattern is a few comparisons.  Only patterns whose meaning is
 * plain in the advanced syntax (docs/rules.md: PostgreSQL's `~`) are taken: ASCII
 * letters, digits and a few punctuation characters that are never special,
 * backslash before ASCII punctuation (that character itself), bracket
 * lists of letters and digits, groups of alternatives (not nested), "^"
 * first and "$" last.  Anything else (quantifiers, ".", escapes such as
 * \d, ranges, options, case-insensitive matching) is left to the engine.
 * The pattern's bytes are ASCII, so in UTF-8 or a single-byte encoding a
 * byte-wise match is a character-wise one: an ASCII byte is never part
 * of another character.
 *
 * With no "$" in newline-insensitive mode, "^" and "$" anchor to the ends
 * of the text, as the engine does.
 *
 *-------------------------------------------------------------------------
 */
#include "segments.h"

#include "mb/pg_wchar.h"

/* Alternatives the expansion of groups may produce, and their length. */
#define LITERAL_MAX_ALTS	64
#define LITERAL_MAX_LEN		64

/* One alternative: a byte set per position (bit b of set[p]: byte b). */
typedef struct LiteralAlt
{
	int			len;
	uint64		set[LITERAL_MAX_LEN][2];	/* ASCII only: 128 bits */
} LiteralAlt;

struct RegexLiteral
{
	bool		anchor_start;
	bool		anchor_end;
	int			nalts;
	LiteralAlt	alts[FLEXIBLE_ARRAY_MEMBER];
};

/* Characters that are themselves anywhere in an advanced regex. */
static bool
plain_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		strchr("@-_ ,:;/=%'\"!&~<>#", c) != NULL;
}

/* ASCII punctuation: after a backslash, that character. */
static bool
escapable_char(char c)
{
	return c > ' ' && c < 0x7f && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
									 (c >= '0' && c <= '9'));
}

typedef struct Parser
{
	const char *p;
	const char *end;
	int			nalts;
	LiteralAlt *alts;			/* LITERAL_MAX_ALTS */
} Parser;

static void
set_add(uint64 *set, unsigned char c)
{
	set[c >> 6] |= UINT64CONST(1) << (c & 63);
}

/*
 * One atom (a literal, an escaped punctuation character or a bracket
 * list) into *set; false: not one of those.
 */
static bool
parse_atom(Parser *ps, uint64 *set)
{
	char		c = *ps->p;

	set[0] = set[1] = 0;
	if (c == '\\')
	{
		if (ps->p + 1 >= ps->end || !escapable_char(ps->p[1]))
			return false;
		set_add(set, (unsigned char) ps->p[1]);
		ps->p += 2;
		return true;
	}
	if (c == '[')
	{
		const char *q = ps->p + 1;

		/* letters and digits only: no negation, range, class or escape */
		while (q < ps->end && *q != ']')
		{
			if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
				  (*q >= '0' && *q <= '9')))
				return false;
			set_add(set, (unsigned char) *q);
			q++;
		}
		if (q >= ps->end || q == ps->p + 1)
			return false;
		ps->p = q + 1;
		return true;
	}
	if (!plain_char(c))
		return false;
	set_add(set, (unsigned char) c);
	ps->p++;
	return true;
}

/* Appends one position to alternatives [from, nalts). */
static bool
append_set(Parser *ps, int from, const uint64 *set)
{
	for (int a = from; a < ps->nalts; a++)
	{
		LiteralAlt *alt = &ps->alts[a];

		if (alt->len >= LITERAL_MAX_LEN)
			return false;
		alt->set[alt->len][0] = set[0];
		alt->set[alt->len][1] = set[1];
		alt->len++;
	}
	return true;
}

/*
 * A group "(x|y|...)" after alternatives [0, nalts): each is extended by
 * each branch (the cross product).
 */
static bool
parse_group(Parser *ps)
{
	int			nbefore = ps->nalts;
	LiteralAlt *before = palloc(sizeof(LiteralAlt) * nbefore);
	int			nout = 0;
	LiteralAlt *out = palloc(sizeof(LiteralAlt) * LITERAL_MAX_ALTS);

	memcpy(before, ps->alts, sizeof(LiteralAlt) * nbefore);
	ps->p++;					/* ( */
	for (;;)
	{
		/* one branch: the prefixes, extended by its atoms */
		if (nout + nbefore > LITERAL_MAX_ALTS)
			return false;
		memcpy(ps->alts, before, sizeof(LiteralAlt) * nbefore);
		ps->nalts = nbefore;
		while (ps->p < ps->end && *ps->p != '|' && *ps->p != ')')
		{
			uint64		set[2];

			if (!parse_atom(ps, set) || !append_set(ps, 0, set))
				return false;
		}
		if (ps->p >= ps->end)
			return false;
		memcpy(out + nout, ps->alts, sizeof(LiteralAlt) * nbefore);
		nout += nbefore;
		if (*ps->p++ == ')')
			break;
	}
	memcpy(ps->alts, out, sizeof(LiteralAlt) * nout);
	ps->nalts = nout;
	return true;
}

/*
 * The literal form of a pattern (case-sensitive matching), or NULL when
 * the pattern is not one of those this file handles.
 */
RegexLiteral *
RegexLiteralCompile(const char *pattern, int len)
{
	Parser		ps;
	RegexLiteral *lit;
	bool		anchor_start = false;
	bool		anchor_end = false;

	/* an ASCII byte stands for one character only in these encodings */
	if (GetDatabaseEncoding() != PG_UTF8 && pg_database_encoding_max_length() != 1)
		return NULL;
	if (len > 0 && pattern[0] == '^')
	{
		anchor_start = true;
		pattern++;
		len--;
	}
	/* a final "$" not escaped: the backslash before it is not itself escaped */
	if (len > 0 && pattern[len - 1] == '$')
	{
		int			backslashes = 0;

		while (backslashes < len - 1 && pattern[len - 2 - backslashes] == '\\')
			backslashes++;
		if (backslashes % 2 != 0)
			return NULL;
		anchor_end = true;
		len--;
	}
	ps.p = pattern;
	ps.end = pattern + len;
	ps.alts = palloc0(sizeof(LiteralAlt) * LITERAL_MAX_ALTS);
	ps.nalts = 1;
	while (ps.p < ps.end)
	{
		if (*ps.p == '(')
		{
			if (!parse_group(&ps))
				return NULL;
		}
		else
		{
			uint64		set[2];

			if (!parse_atom(&ps, set) || !append_set(&ps, 0, set))
				return NULL;
		}
	}
	lit = palloc(offsetof(RegexLiteral, alts) + sizeof(LiteralAlt) * ps.nalts);
	lit->anchor_start = anchor_start;
	lit->anchor_end = anchor_end;
	lit->nalts = ps.nalts;
	memcpy(lit->alts, ps.alts, sizeof(LiteralAlt) * ps.nalts);
	pfree(ps.alts);
	return lit;
}

/* Does alt match text at offset off? */
static inline bool
alt_matches_at(const LiteralAlt *alt, const unsigned char *text, int off)
{
	for (int p = 0; p < alt->len; p++)
	{
		unsigned char c = text[off + p];

		if (c >= 128 || !(alt->set[p][c >> 6] & (UINT64CONST(1) << (c & 63))))
			return false;
	}
	return true;
}

/* Does the text match the pattern (as the engine would, case-sensitive)? */
bool
RegexLiteralMatch(const RegexLiteral *lit, const char *text, int len)
{
	const unsigned char *t = (const unsigned char *) text;

	for (int a = 0; a < lit->nalts; a++)
	{
		const LiteralAlt *alt = &lit->alts[a];
		int			first = 0;
		int			last = len - alt->len;

		if (last < 0)
			continue;
		if (lit->anchor_end)
			first = last;
		if (lit->anchor_start)
			last = 0;
		for (int off = first; off <= last; off++)
			if (alt_matches_at(alt, t, off))
				return true;
	}
	return false;
}

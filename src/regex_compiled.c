/*-------------------------------------------------------------------------
 *
 * regex_compiled.c
 *		A regex condition's own compiled regular expression.
 *
 * PostgreSQL's RE_compile_and_execute() keeps the 32 regular expressions
 * used last: a pass evaluating more distinct regex conditions than that
 * compiled one for nearly every (contact, condition), about 30 µs each
 * (40 regex segments over 200,000 contacts took minutes instead of
 * seconds).  So each condition compiles its pattern once, with the same
 * flags and collation, and keeps it as long as the condition's memory: the
 * compiled form is malloc'd by the regex library, and freed by a reset
 * callback of the condition's memory context.
 *
 *-------------------------------------------------------------------------
 */
#include "segments.h"

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "regex/regex.h"
#include "utils/memutils.h"

struct RegexCompiled
{
	regex_t		re;
	MemoryContextCallback free_cb;
};

/* Strings up to this many characters are converted on the stack. */
#define STACK_CHARS 256

static void
regex_compiled_free(void *arg)
{
	pg_regfree(&((RegexCompiled *) arg)->re);
}

/*
 * Compiles pattern (REG_* flags, collation) for as long as owner lives.
 * NULL when the library refuses it: the caller then goes through
 * RE_compile_and_execute(), which reports the error as PostgreSQL does.
 */
RegexCompiled *
RegexCompiledCreate(const text *pattern, int flags, Oid collation, MemoryContext owner)
{
	int			plen = VARSIZE_ANY_EXHDR(pattern);
	pg_wchar   *wpattern = palloc((plen + 1) * sizeof(pg_wchar));
	int			wlen = pg_mb2wchar_with_len(VARDATA_ANY(pattern), wpattern, plen);
	RegexCompiled *compiled = MemoryContextAllocZero(owner, sizeof(RegexCompiled));
	int			code;

	code = pg_regcomp(&compiled->re, wpattern, wlen, flags, collation);
	pfree(wpattern);
	if (code != REG_OKAY)
	{
		/* the library freed what it had allocated */
		pfree(compiled);
		return NULL;
	}
	compiled->free_cb.func = regex_compiled_free;
	compiled->free_cb.arg = compiled;
	MemoryContextRegisterResetCallback(owner, &compiled->free_cb);
	return compiled;
}

/* Does str (len bytes, the database encoding) match? */
bool
RegexCompiledMatch(RegexCompiled *compiled, const char *str, int len)
{
	pg_wchar	stack[STACK_CHARS + 1];
	pg_wchar   *data = len <= STACK_CHARS ? stack : palloc((len + 1) * sizeof(pg_wchar));
	int			dlen = pg_mb2wchar_with_len(str, data, len);
	int			code = pg_regexec(&compiled->re, data, dlen, 0, NULL, 0, NULL, 0);

	if (data != stack)
		pfree(data);
	if (code != REG_OKAY && code != REG_NOMATCH)
	{
		char		message[100];

		/* as RE_execute(): an interrupt first, then the library's error */
		CHECK_FOR_INTERRUPTS();
		pg_regerror(code, &compiled->re, message, sizeof(message));
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_REGULAR_EXPRESSION),
				 errmsg("regular expression failed: %s", message)));
	}
	return code == REG_OKAY;
}

/*-------------------------------------------------------------------------
 *
 * member_codec.c
 *		The compact form of one contact's stored membership.
 *
 * segments.member holds one row per contact with a bytea "data": the
 * sorted numbers of the segments the contact is in and, aligned, since when
 * (seconds since 2000-01-01 UTC).  Numbers are written as the differences
 * between neighbours and times as the difference to the previous one
 * (contacts enter most of their segments in the same evaluation, so those
 * differences are 0), all as variable-length integers (7 bits a byte).  A
 * contact in 20 of 100 segments takes about 45 bytes instead of the 200 of
 * two integer arrays.
 *
 *   data := varint(n) varint(num[0]) varint(num[i] - num[i-1])...
 *           zigzag(since[0]) zigzag(since[i] - since[i-1])...
 *
 * The SQL functions below let the GIN index and the membership view read it.
 *
 *-------------------------------------------------------------------------
 */
#include "segments.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "member_codec.h"

PG_FUNCTION_INFO_V1(segments_member_segs);
PG_FUNCTION_INFO_V1(segments_member_rows);

static char *
put_varint(char *p, uint64 v)
{
	while (v >= 0x80)
	{
		*p++ = (char) ((v & 0x7f) | 0x80);
		v >>= 7;
	}
	*p++ = (char) v;
	return p;
}

/* Reads a varint; false at the end of the data or on a malformed one. */
static bool
get_varint(const unsigned char **p, const unsigned char *end, uint64 *v)
{
	uint64		result = 0;
	int			shift = 0;

	while (*p < end && shift < 64)
	{
		unsigned char c = *(*p)++;

		result |= (uint64) (c & 0x7f) << shift;
		if ((c & 0x80) == 0)
		{
			*v = result;
			return true;
		}
		shift += 7;
	}
	return false;
}

static uint64
zigzag(int64 v)
{
	return ((uint64) v << 1) ^ (v < 0 ? ~(uint64) 0 : 0);
}

static int64
unzigzag(uint64 v)
{
	return (int64) (v >> 1) ^ -(int64) (v & 1);
}

bytea *
MemberEncode(const int32 *nums, const int32 *since, int n)
{
	/* at most 10 bytes a varint: count, n numbers, n times */
	bytea	   *data = palloc(VARHDRSZ + 10 * (2 * n + 1));
	char	   *p = VARDATA(data);

	p = put_varint(p, (uint64) n);
	for (int i = 0; i < n; i++)
		p = put_varint(p, (uint64) (i == 0 ? (int64) nums[0] : (int64) nums[i] - nums[i - 1]));
	for (int i = 0; i < n; i++)
		p = put_varint(p, zigzag(i == 0 ? (int64) since[0] : (int64) since[i] - since[i - 1]));
	SET_VARSIZE(data, p - (char *) data);
	return data;
}

/*
 * Decodes data into palloc'd arrays (since may be NULL when not wanted);
 * returns the count.  Malformed data decodes as no membership: readers
 * fail closed, and the next evaluation of the contact rewrites it.
 */
int
MemberDecode(const bytea *data, int32 **nums, int32 **since)
{
	const unsigned char *p = (const unsigned char *) VARDATA_ANY(data);
	const unsigned char *end = p + VARSIZE_ANY_EXHDR(data);
	uint64		n;
	uint64		v;
	int64		acc = 0;

	*nums = NULL;
	if (since)
		*since = NULL;
	if (!get_varint(&p, end, &n) || n > (uint64) (end - p))
		return 0;
	*nums = palloc(Max(n, 1) * sizeof(int32));
	for (uint64 i = 0; i < n; i++)
	{
		if (!get_varint(&p, end, &v))
			return 0;
		acc += (int64) v;
		(*nums)[i] = (int32) acc;
	}
	if (since == NULL)
		return (int) n;
	*since = palloc(Max(n, 1) * sizeof(int32));
	acc = 0;
	for (uint64 i = 0; i < n; i++)
	{
		if (!get_varint(&p, end, &v))
			return 0;
		acc += unzigzag(v);
		(*since)[i] = (int32) acc;
	}
	return (int) n;
}

/*
 * segments._member_segs(data bytea) RETURNS integer[]
 *
 * The segment numbers, for the GIN index that serves segment_members().
 */
Datum
segments_member_segs(PG_FUNCTION_ARGS)
{
	bytea	   *data = PG_GETARG_BYTEA_PP(0);
	int32	   *nums;
	int			n = MemberDecode(data, &nums, NULL);
	Datum	   *elems = palloc(Max(n, 1) * sizeof(Datum));

	for (int i = 0; i < n; i++)
		elems[i] = Int32GetDatum(nums[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, INT4OID, sizeof(int32), true,
										  TYPALIGN_INT));
}

/*
 * segments._member_rows(data bytea) RETURNS TABLE (num integer, since timestamptz)
 *
 * One row per membership, for the segments.membership view.
 */
Datum
segments_member_rows(PG_FUNCTION_ARGS)
{
	bytea	   *data = PG_GETARG_BYTEA_PP(0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32	   *nums;
	int32	   *since;
	int			n;

	SEGMENTS_INIT_SRF(fcinfo);
	n = MemberDecode(data, &nums, &since);
	for (int i = 0; i < n; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = Int32GetDatum(nums[i]);
		/* seconds since 2000-01-01: PostgreSQL's own epoch */
		values[1] = TimestampTzGetDatum((TimestampTz) since[i] * USECS_PER_SEC);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * segments._member_without(data bytea, nums integer[]) RETURNS bytea
 *
 * The stored membership without the given segment numbers, or NULL when
 * nothing is left: how a failed segment stops granting membership.
 */
PG_FUNCTION_INFO_V1(segments_member_without);

static int
int32_cmp(const void *a, const void *b)
{
	int32		x = *(const int32 *) a;
	int32		y = *(const int32 *) b;

	return (x > y) - (x < y);
}

Datum
segments_member_without(PG_FUNCTION_ARGS)
{
	bytea	   *data = PG_GETARG_BYTEA_PP(0);
	ArrayType  *drop = PG_GETARG_ARRAYTYPE_P(1);
	Datum	   *elems;
	bool	   *nulls;
	int			ndrop;
	int32	   *nums;
	int32	   *since;
	int			n = MemberDecode(data, &nums, &since);
	int			kept = 0;

	int32	   *sorted;
	int			nsorted = 0;

	deconstruct_array(drop, INT4OID, sizeof(int32), true, TYPALIGN_INT, &elems, &nulls, &ndrop);
	/* sorted, for a binary search: the worker strips many dropped numbers at once */
	sorted = palloc(Max(ndrop, 1) * sizeof(int32));
	for (int k = 0; k < ndrop; k++)
		if (!nulls[k])
			sorted[nsorted++] = DatumGetInt32(elems[k]);
	qsort(sorted, nsorted, sizeof(int32), int32_cmp);
	for (int i = 0; i < n; i++)
	{
		if (bsearch(&nums[i], sorted, nsorted, sizeof(int32), int32_cmp) == NULL)
		{
			nums[kept] = nums[i];
			since[kept++] = since[i];
		}
	}
	if (kept == 0)
		PG_RETURN_NULL();
	/* nothing to remove: the same value, which callers compare to skip the row */
	if (kept == n)
		PG_RETURN_BYTEA_P(data);
	PG_RETURN_BYTEA_P(MemberEncode(nums, since, kept));
}

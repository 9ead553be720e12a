/*-------------------------------------------------------------------------
 *
 * membership.c
 *		Reading the stored membership of one contact: converting the key
 *		an application passes, and one probe of segments.member's primary
 *		key; and since when a stored row is in a segment, for the
 *		segments.membership view (membership_plan.c plans it).
 *
 * segments.member holds one row per contact that is in at least one
 * segment: contact_id, data (the compact form of its segment numbers and
 * since when, member_codec.c) and tenant (the contact's tenant as text, so
 * readers keep a tenant session to its own contacts without reading the
 * source).  member_diff.c writes it.
 *
 *-------------------------------------------------------------------------
 */
#include "catalog.h"
#include "citus.h"
#include "member_codec.h"

#include "access/genam.h"
#include "access/relation.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

/*
 * Converts a contact argument of type argtype to the configured key type.
 * Text goes through the key type's input function (so a malformed key is
 * the usual input error); integers convert between widths.  Returns false
 * when the value cannot be a key of the source (an integer out of range).
 */
bool
MembershipKeyFromArg(const SegmentsConfig *config, Datum arg, Oid argtype, Datum *key)
{
	Oid			key_type = config->key_type;

	if (argtype == key_type)
	{
		*key = arg;
		return true;
	}
	/* drivers bind small numbers as smallint or integer: any width will do */
	if ((argtype == INT2OID || argtype == INT4OID || argtype == INT8OID) &&
		(key_type == INT4OID || key_type == INT8OID))
	{
		int64		v = argtype == INT2OID ? (int64) DatumGetInt16(arg) :
			argtype == INT4OID ? (int64) DatumGetInt32(arg) : DatumGetInt64(arg);

		if (key_type == INT8OID)
		{
			*key = Int64GetDatum(v);
			return true;
		}
		if (v < PG_INT32_MIN || v > PG_INT32_MAX)
			return false;
		*key = Int32GetDatum((int32) v);
		return true;
	}
	if (argtype == TEXTOID || argtype == UNKNOWNOID || key_type == TEXTOID)
	{
		Oid			infunc;
		Oid			ioparam;
		Oid			outfunc;
		bool		isvarlena;
		char	   *str;

		if (argtype == UNKNOWNOID)
			str = DatumGetCString(arg);
		else
		{
			getTypeOutputInfo(argtype, &outfunc, &isvarlena);
			str = OidOutputFunctionCall(outfunc, arg);
		}
		getTypeInputInfo(key_type, &infunc, &ioparam);
		*key = OidInputFunctionCall(infunc, str, ioparam, -1);
		return true;
	}
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("contact of type %s does not match the contact key type %s",
					format_type_be(argtype), format_type_be(key_type)),
			 errhint("Pass the contact key as %s or as text.", format_type_be(key_type))));
	return false;				/* keep compiler quiet */
}

/* The btree equality function of a key type. */
static RegProcedure
key_eq_proc(Oid key_type)
{
	switch (key_type)
	{
		case INT8OID:
			return F_INT8EQ;
		case INT4OID:
			return F_INT4EQ;
		case UUIDOID:
			return F_UUID_EQ;
		case TEXTOID:
			return F_TEXTEQ;
	}
	elog(ERROR, "unsupported contact key type %u", key_type);
	return InvalidOid;			/* keep compiler quiet */
}

/*
 * Opens the unique btree index on the key of rel (indexid, as the catalog
 * says), with AccessShareLock; an error when it cannot serve keys of
 * key_type.  The caller opened rel.
 */
Relation
MembershipKeyIndexOpen(Relation rel, Oid indexid, Oid key_type)
{
	Relation	index = try_relation_open(indexid, AccessShareLock);

	/*
	 * Rebuilt concurrently since the caller's catalog was read (the
	 * worker's REINDEX CONCURRENTLY of member_pkey): the rebuilt index has
	 * a new oid, and the old one is invalid, then dropped, which can commit
	 * between the start of this transaction, when the catalog cache was
	 * looked at, and the lock taken on rel.  segments.member's primary key
	 * now, as its relation cache (up to date under that lock) says.
	 */
	if (index == NULL || index->rd_rel->relkind != RELKIND_INDEX ||
		!index->rd_index->indisvalid)
	{
		/* only segments.member's: its primary key is its key index */
		Oid			pkey = RelationGetRelid(rel) == CatalogRelid("member", true) ?
			RelationGetPrimaryKeyIndex(rel) : InvalidOid;

		if (index != NULL)
			relation_close(index, AccessShareLock);
		if (!OidIsValid(pkey))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the key index of \"%s\" (OID %u) no longer exists",
							RelationGetRelationName(rel), indexid),
					 errhint("Call segments.configure() again.")));
		index = index_open(pkey, AccessShareLock);
	}
	/* an index of another type searched with this key would read garbage */
	if (TupleDescAttr(RelationGetDescr(index), 0)->atttypid != key_type)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("index \"%s\" is on type %s, not on the configured key type %s",
						RelationGetRelationName(index),
						format_type_be(TupleDescAttr(RelationGetDescr(index), 0)->atttypid),
						format_type_be(key_type)),
				 errhint("Call segments.configure() again.")));
	return index;
}

/*
 * Probes a unique btree index on the key and returns the first visible
 * heap tuple in slot; false when there is none.  The caller opened rel.
 */
bool
MembershipProbe(Relation rel, Oid indexid, Oid key_type, Datum key,
				TupleTableSlot *slot)
{
	Relation	index;
	IndexScanDesc scan;
	ScanKeyData skey;
	bool		found;

	/* Citus: the rows are in a shard, maybe on another node (citus.c) */
	if (CitusIsDistributed(RelationGetRelid(rel)))
		return CitusProbe(rel, indexid, key, slot);
	index = MembershipKeyIndexOpen(rel, indexid, key_type);
	ScanKeyEntryInitialize(&skey, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   index->rd_indcollation[0], key_eq_proc(key_type), key);
	scan = index_beginscan(rel, index, GetActiveSnapshot(), 1, 0);
	index_rescan(scan, &skey, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	index_endscan(scan);
	index_close(index, AccessShareLock);
	return found;
}

/*
 * The stored segment numbers of a contact (sorted), palloc'd in the current
 * memory context; returns their count, 0 when the contact is in none or,
 * when view is given, when the session may not see the contact (its stored
 * tenant is not the session's).
 */
int
MembershipFetch(const SegmentsConfig *config, Datum key, int32 **nums,
				const TenantView *view)
{
	Relation	rel = table_open(config->member_relid, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	int			n = 0;

	*nums = NULL;
	if (MembershipProbe(rel, config->member_pkey, config->key_type, key, slot))
	{
		bool		isnull;
		Datum		d;
		bool		visible = true;

		if (view != NULL && !view->filter_contacts)
			visible = CatalogContactVisibleIn(view, NULL, 0);
		else if (view != NULL)
		{
			d = slot_getattr(slot, MEMBER_ATTNUM_TENANT, &isnull);
			if (isnull)
				visible = CatalogContactVisibleIn(view, NULL, 0);
			else
			{
				text	   *t = DatumGetTextPP(d);

				visible = CatalogContactVisibleIn(view, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
			}
		}
		d = slot_getattr(slot, MEMBER_ATTNUM_DATA, &isnull);
		if (visible && !isnull)
			n = MemberDecode(DatumGetByteaPP(d), nums, NULL);
	}
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
	return n;
}

/* Is num among the n sorted numbers? */
bool
MembershipContains(const int32 *nums, int n, int32 num)
{
	int			lo = 0,
				hi = n - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;

		if (nums[mid] == num)
			return true;
		if (nums[mid] < num)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return false;
}

/*
 * The tenant of a contact as text (NULL when none, or no such contact),
 * read from the source table through its key index.
 */
char *
MembershipContactTenant(const SegmentsConfig *config, Datum key)
{
	Relation	rel;
	TupleTableSlot *slot;
	char	   *tenant = NULL;

	if (config->tenant_attnum <= 0)
		return NULL;
	rel = table_open(config->source_relid, AccessShareLock);
	slot = table_slot_create(rel, NULL);
	if (MembershipProbe(rel, config->source_key_index, config->key_type, key, slot))
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, config->tenant_attnum, &isnull);

		if (!isnull)
		{
			Oid			typid = TupleDescAttr(slot->tts_tupleDescriptor,
											  config->tenant_attnum - 1)->atttypid;
			Oid			outfunc;
			bool		isvarlena;

			getTypeOutputInfo(typid, &outfunc, &isvarlena);
			tenant = OidOutputFunctionCall(outfunc, d);
		}
	}
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
	return tenant;
}

PG_FUNCTION_INFO_V1(segments_member_since);

/*
 * segments._member_since(data bytea, num integer) RETURNS timestamptz
 *
 * Since when the contact of a stored row is in the segment numbered num;
 * NULL when it is not.  The membership view reads it per (segment,
 * contact) pair instead of unnesting the row.
 */
Datum
segments_member_since(PG_FUNCTION_ARGS)
{
	bytea	   *data = PG_GETARG_BYTEA_PP(0);
	int32		num = PG_GETARG_INT32(1);
	int32	   *nums;
	int32	   *since;
	int			n = MemberDecode(data, &nums, &since);
	int			lo = 0,
				hi = n - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;

		if (nums[mid] == num)
			/* seconds since 2000-01-01: PostgreSQL's own epoch */
			PG_RETURN_TIMESTAMPTZ((TimestampTz) since[mid] * USECS_PER_SEC);
		if (nums[mid] < num)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	PG_RETURN_NULL();
}

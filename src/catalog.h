/*-------------------------------------------------------------------------
 *
 * catalog.h
 *		The extension's configuration and segment catalog, as cached per
 *		backend, and the evaluation passes built on them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SEGMENTS_CATALOG_H
#define SEGMENTS_CATALOG_H

#include "segments.h"

#include "access/htup.h"
#include "executor/tuptable.h"
#include "storage/lock.h"
#include "utils/relcache.h"

/* segments.config, resolved to relation and attribute numbers. */
typedef struct SegmentsConfig
{
	bool		configured;
	Oid			source_relid;
	AttrNumber	key_attnum;
	Oid			key_type;		/* uuid, int8, int4 or text */
	AttrNumber	tenant_attnum;	/* 0 when no tenant column */
	bool		has_tenant_column;	/* configured with one (even if now broken) */
	char	   *tenant_column;	/* its name, or NULL */
	Oid			tenant_type;	/* its type, or InvalidOid */
	AttrNumber	traits_attnum;	/* 0 when no traits column */
	Oid			source_key_index;	/* unique index on the key column */
	Oid			member_relid;	/* segments.member */
	Oid			member_pkey;	/* its primary key index */
	AttrNumber	member_tenant_attnum;	/* its tenant column; 0 in a 0.1.0
										 * schema not yet upgraded */
	bool		has_row;		/* segments.config has its row */
	char	   *problem;		/* has_row but unusable: why (else NULL) */
} SegmentsConfig;

/* One row of segments.segment, as readers and the evaluator need it. */
typedef struct CatalogSegment
{
	pg_uuid_t	id;
	int32		num;
	char	   *tenant;			/* NULL: no tenant */
	char	   *name;
	int			ndepends;
	pg_uuid_t  *depends_on;
	Jsonb	   *definition;		/* only when loaded for evaluation */
	Jsonb	   *refs;
} CatalogSegment;

/* The whole catalog; segments sorted by num. */
typedef struct SegmentCatalog
{
	uint64		generation;		/* the backend cache's load count: 0 for
								 * catalogs loaded for a pass */
	SegmentsConfig config;
	int			nsegments;
	CatalogSegment *segments;
	CatalogSegment **by_id;		/* the same, sorted by id */
} SegmentCatalog;

/* What a session may see (tenancy.c). */
typedef enum TenantScope
{
	TENANT_SCOPE_ALL,			/* an admin without a tenant, or no tenancy */
	TENANT_SCOPE_ONE,			/* one tenant and the global segments */
	TENANT_SCOPE_NONE			/* no tenant and not an admin: nothing */
} TenantScope;

typedef struct TenantView
{
	TenantScope scope;
	const char *tenant;			/* TENANT_SCOPE_ONE: canonical text form */
	bool		filter_contacts;	/* only contacts of that tenant */
} TenantView;

/* catalog.c */
extern void CatalogInitCallbacks(void);
extern const SegmentCatalog *CatalogGet(void);
extern SegmentCatalog *CatalogLoadLatest(MemoryContext cxt, bool *latest);
extern void CatalogLoadConfig(SegmentsConfig *config);
extern Oid	CatalogFindKeyIndex(Relation rel, AttrNumber attnum);
extern SegmentCatalog *CatalogLoad(MemoryContext cxt, bool with_definitions);
extern const CatalogSegment *CatalogFindById(const SegmentCatalog *cat, const pg_uuid_t *id);
extern const CatalogSegment *CatalogFindByNum(const SegmentCatalog *cat, int32 num);

/* tenancy.c */
extern bool CatalogIsAdmin(void);
extern const char *CatalogSessionTenant(void);
extern TenantView CatalogTenantView(void);
extern TenantView CatalogTenantViewOf(const SegmentCatalog *cat);
extern TenantView CatalogTenantViewFor(const SegmentCatalog *cat, const char *tenant);
extern TenantView CatalogManageView(void);
extern bool CatalogTenantVisible(const char *tenant);
extern bool CatalogSegmentVisibleIn(const TenantView *view, const char *tenant);
extern bool CatalogContactVisibleIn(const TenantView *view, const char *tenant, int len);

extern Oid	CatalogRelid(const char *relname, bool missing_ok);
extern void CatalogCheckSource(const SegmentsConfig *config, Relation source);
extern bool CatalogHasFailureHandling(void);
extern void CatalogNotConfiguredError(const SegmentsConfig *config);
extern bool CatalogParseUuid(const char *str, pg_uuid_t *uuid);
extern void CatalogBuildParseContext(RuleParseContext *pctx, Relation source,
									 const SegmentsConfig *config);
extern bool CatalogResolveSavedRef(const char *ref, pg_uuid_t *id, void *arg);
extern RuleParseResult *DefinitionParse(Jsonb *definition, const char *tenant,
									   const SegmentCatalog *cat);
extern RuleNode *CatalogParseSaved(const CatalogSegment *seg, RuleParseContext *pctx,
								   char **error);

/* Columns of segments.member (sql/install/02_configure.sql). */
#define MEMBER_ATTNUM_KEY		1
#define MEMBER_ATTNUM_DATA		2
#define MEMBER_ATTNUM_TENANT	3	/* when member_tenant_attnum > 0 */

/* membership.c: the stored membership of one contact */
extern bool MembershipKeyFromArg(const SegmentsConfig *config, Datum arg, Oid argtype,
								 Datum *key);
extern Relation MembershipKeyIndexOpen(Relation rel, Oid indexid, Oid key_type);
extern bool MembershipProbe(Relation rel, Oid indexid, Oid key_type, Datum key,
							TupleTableSlot *slot);
extern int	MembershipFetch(const SegmentsConfig *config, Datum key, int32 **nums,
							const TenantView *view);
extern bool MembershipContains(const int32 *nums, int n, int32 num);
extern void MembershipPlanInit(void);
extern char *MembershipContactTenant(const SegmentsConfig *config, Datum key);

/* functions.c: a reading function's segment argument */
extern const CatalogSegment *ReadSegmentArg(FunctionCallInfo fcinfo, int argno,
											const SegmentCatalog *cat,
											const TenantView *view, bool have_key,
											Datum key);

/* stats.c: per-segment statistics columns (absent in a 0.1.0 catalog) */
extern bool StatsColumnsExist(void);

/* schema_ddl.c */
struct DropStmt;
extern struct DropStmt *DdlDroppingSegments(FunctionCallInfo fcinfo, const char *trigger);

/* the evaluation passes (eval_pass.h lists their files) */
extern void EvaluateRefresh(const pg_uuid_t *only_segments, int nonly);	/* pass_full.c */
extern void EvaluateFailClosed(Datum segment_ids);	/* pass_finish.c */
extern int64 EvaluateLockWaitUs;	/* eval_plan.c */
extern bool EvaluateInContacts; /* pass_incremental.c */
extern void SharedTimeEvaluated(TimestampTz at);
extern int64 EvaluateContacts(ArrayType *keys, const TenantView *view);
extern int64 EvaluateContactsOf(ArrayType *keys, const TenantView *view,
								const pg_uuid_t *only, int nonly);
/* pass_chunked.c */
extern int64 EvaluateChunk(const pg_uuid_t *only, int nonly, char **cursor, int64 limit,
						   int budget_ms, bool *done);
extern int64 EvaluateCpuUs(void);
extern bool EvaluateChangesWaiting(void);

/* evaluating without writing: explain.c (EvaluateExplain), preview.c (EvaluateDefinition) */
typedef struct EvaluateOutcomeSegment
{
	const CatalogSegment *seg;
	const RuleNode *rule;		/* as evaluated; NULL: could not compile */
	const char *error;			/* why not */
	bool		needed;			/* evaluated (for contacts of its tenant) */
	bool		result;
} EvaluateOutcomeSegment;

typedef struct EvaluateOutcome
{
	const SegmentsConfig *config;
	TupleTableSlot *row;		/* the contact's row, every column deformed */
	const char *tenant;			/* its tenant as text, or NULL */
	TimestampTz now;			/* the time it was evaluated at */
	int			nsegments;		/* every segment, in dependency order */
	EvaluateOutcomeSegment *segments;
} EvaluateOutcome;

typedef void (*EvaluateReportFn) (const EvaluateOutcome *outcome, void *arg);
typedef void (*EvaluateVisitFn) (Datum key, const char *tenant, bool member, void *arg);

extern bool EvaluateExplain(const pg_uuid_t *target, Datum key, RuleTrace *trace,
							EvaluateReportFn report, void *arg);
extern void EvaluateDefinition(RuleNode *rule, const char *tenant, const pg_uuid_t *refs,
							   int nrefs, bool shards_here, EvaluateVisitFn visit, void *arg);

/* writers.c: a definition's first evaluation waits for writers in flight */
typedef struct WriterWait
{
	MemoryContext cxt;			/* holds vxids */
	int			phase;			/* 1: catalog writers, 2: source writers */
	int			n;
	int			allocated;
	VirtualTransactionId *vxids;
} WriterWait;

extern void WritersBegin(WriterWait *ww, MemoryContext cxt, bool committing_only);
extern bool WritersDone(WriterWait *ww, Oid source_relid, bool wait);

/* time_window.c: contacts whose time-dependent membership may flip */
extern ArrayType *TimeWindowCandidates(TimestampTz from, TimestampTz to, Datum *cursor,
									   bool *has_cursor, bool *done, int limit,
									   MemoryContext cursor_cxt,
									   int *nwindowed, pg_uuid_t **windowed,
									   int *nunwindowable, pg_uuid_t **unwindowable);
extern int	TimeSweepChunk(Datum segment_ids, Datum *cursor, bool *has_cursor, int limit,
						   MemoryContext cursor_cxt);


#endif							/* SEGMENTS_CATALOG_H */

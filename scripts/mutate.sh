#!/usr/bin/env bash
# Mutation checks: does the suite fail when the code is wrong?  Plants one
# plausible bug at a time (the list below) in a scratch copy of the tree,
# runs scripts/test.sh there and reports whether the suite caught it.  A
# mutant the suite passes on "survived": some behaviour has no test.
#
#   scripts/mutate.sh [--fast] [--no-baseline] [--list] [N ...]
#
#   N ...          run only these mutations (numbers as --list shows them)
#   --fast         a mutation marked "sql" (no worker or capture code) runs
#                  pg_regress, isolation and pgTAP only; a "worker" one runs
#                  the worker scripts first, and the whole suite only if they
#                  pass
#   --no-baseline  skip the run of the unmutated tree (by default it runs
#                  first: a suite that fails anyway would "catch" everything)
#   --list         print the list and check that every pattern still
#                  matches the source; runs nothing
#
# Each mutation names a file, a text that must occur exactly once in it and
# its replacement (in both, the two characters \n and \t stand for a newline
# and a tab).  A text that no longer occurs, or occurs twice, is an error,
# not a skip: when the code moves, fix the entry.  Every run stops at its
# first failure (FAIL_FAST) and mutations run one after the other (each
# run builds, installs into a private PostgreSQL copy and starts its own
# server; in parallel they would only compete for the CPUs).
#
# Exit status 0 when every mutation run was caught and no entry is broken.
# Logs: $MUTATE_LOGS (default a new /tmp/segments-mutate-XXXXXX).  Takes
# about a minute a mutation with --fast, several for worker mutations.
set -euo pipefail
# (All of it in one { } block: bash reads it whole before running it, so
# the file may be edited while a long run goes on.)
{
cd "$(dirname "$0")/.."
ROOT=$(pwd)

KINDS=(); FILES=(); WHATS=(); FROMS=(); TOS=()
# mut KIND FILE WHAT FROM TO
mut() { KINDS+=("$1"); FILES+=("$2"); WHATS+=("$3"); FROMS+=("$4"); TOS+=("$5"); }

# ---- the list: comparisons, negations, bounds -----------------------------
mut sql src/rule_eval.c "gt compares as gte" \
    'return RuleCompareScalar(field, &cond->values[0], &cond->attr) > 0;' \
    'return RuleCompareScalar(field, &cond->values[0], &cond->attr) >= 0;'
mut sql src/rule_eval.c "gte compares as gt" \
    'return RuleCompareScalar(field, &cond->values[0], &cond->attr) >= 0;' \
    'return RuleCompareScalar(field, &cond->values[0], &cond->attr) > 0;'
mut sql src/rule_eval.c "lt compares as lte" \
    'return RuleCompareScalar(field, &cond->values[0], &cond->attr) < 0;' \
    'return RuleCompareScalar(field, &cond->values[0], &cond->attr) <= 0;'
mut sql src/rule_eval.c "lte compares as lt" \
    'return RuleCompareScalar(field, &cond->values[0], &cond->attr) <= 0;' \
    'return RuleCompareScalar(field, &cond->values[0], &cond->attr) < 0;'
mut sql src/rule_eval.c "between excludes its low end" \
    'return RuleCompareScalar(field, &cond->values[0], &cond->attr) >= 0 &&' \
    'return RuleCompareScalar(field, &cond->values[0], &cond->attr) > 0 &&'
mut sql src/rule_eval.c "between excludes its high end" \
    'RuleCompareScalar(field, &cond->values[1], &cond->attr) <= 0;' \
    'RuleCompareScalar(field, &cond->values[1], &cond->attr) < 0;'
mut sql src/rule_eval.c "before is inclusive" \
    'return field->u.timestamp < cond->values[0].u.timestamp;' \
    'return field->u.timestamp <= cond->values[0].u.timestamp;'
mut sql src/rule_eval.c "after is inclusive" \
    'return field->u.timestamp > cond->values[0].u.timestamp;' \
    'return field->u.timestamp >= cond->values[0].u.timestamp;'
mut sql src/rule_eval.c "within_last/within_next exclude their low end" \
    'return field->u.timestamp >= cond->time_low &&' \
    'return field->u.timestamp > cond->time_low &&'
mut sql src/rule_eval.c "within_next excludes its high end" \
    'field->u.timestamp <= cond->time_high;' \
    'field->u.timestamp < cond->time_high;'
mut sql src/rule_eval.c "starts_with refuses a field equal to the value" \
    'return flen >= vlen && memcmp(f, v, vlen) == 0;' \
    'return flen > vlen && memcmp(f, v, vlen) == 0;'
mut sql src/rule_eval.c "ends_with compares the start" \
    'memcmp(f + flen - vlen, v, vlen) == 0;' \
    'memcmp(f, v, vlen) == 0;'
mut sql src/rule_eval.c "case_sensitive false ignored by text operators" \
    'else if (cond->case_insensitive)' \
    'else if (false && cond->case_insensitive)'
mut sql src/rule_eval.c "modulo tests the remainder the wrong way" \
    'NumericGetDatum(cond->values[1].u.number))) == 0;' \
    'NumericGetDatum(cond->values[1].u.number))) != 0;'
mut sql src/rule_eval.c "in skips the last value" \
    'for (int i = 0; i < cond->nvalues; i++)\n\t\t\t\tif (scalar_equals(cond, field, i))' \
    'for (int i = 0; i < cond->nvalues - 1; i++)\n\t\t\t\tif (scalar_equals(cond, field, i))'
mut sql src/rule_eval.c "in_cidr looks at the first network only" \
    'for (int i = 0; i < cond->nvalues; i++)\n\t\t\t{\n\t\t\t\tif (ip_family' \
    'for (int i = 0; i < 1; i++)\n\t\t\t{\n\t\t\t\tif (ip_family'
mut sql src/rule_eval.c "as length counts bytes, not characters" \
    'length = pg_mbstrlen_with_len(field.u.text.str, field.u.text.len);' \
    'length = field.u.text.len;'
mut sql src/rule_eval.c "negative operators (neq, not_in, ...) not negated" \
    'if (cond->negated_op)\n\t\tresult = !result;' \
    ''
mut sql src/rule_eval.c "negate ignored" \
    'if (cond->negate)\n\t\tresult = !result;' \
    ''
mut sql src/rule_eval.c "not group not negated" \
    'return !RuleEvaluate(node->children[0], ctx);' \
    'return RuleEvaluate(node->children[0], ctx);'
mut sql src/rule_eval.c "empty and matches no one" \
    'return false;\n\t\t\treturn true;\n\t\tcase RULE_OR:' \
    'return false;\n\t\t\treturn false;\n\t\tcase RULE_OR:'
mut sql src/rule_eval.c "a NULL column makes negative operators false (SQL's three-valued logic)" \
    'TRACE_READ(ctx, cond, RULE_TRACE_NULL, NULL, NULL, 0);\n\t\treturn false;' \
    'TRACE_READ(ctx, cond, RULE_TRACE_NULL, NULL, NULL, 0);\n\t\treturn cond->negated_op;'
mut sql src/rule_eval.c "traits read loosely: another JSON type is not missing" \
    'if (cond->strict && !json_has_type(&jv, cond->read_as))' \
    'if (false && !json_has_type(&jv, cond->read_as))'
mut sql src/rule_eval.c "contains compares trait array elements of any JSON type" \
    '(cond->strict_elements && !json_has_type(elem, cond->element_as)))' \
    '(false && !json_has_type(elem, cond->element_as)))'
mut sql src/rule_eval.c "a JSON null trait counts as present" \
    'if (jv.type == jbvNull)' \
    'if (false && jv.type == jbvNull)'
mut sql src/rule_value.c "semver: a pre-release sorts after its release" \
    'return (a->npre == 0) - (b->npre == 0);' \
    'return (b->npre == 0) - (a->npre == 0);'
mut sql src/rule_value.c "semver: numeric identifiers compare as text" \
    'c = lx != ly ? (lx < ly ? -1 : 1) : strcmp(x, y);' \
    'c = strcmp(x, y);'

# ---- one program per pass: shared conditions, results remembered by value --
mut sql src/eval_program.c "shared conditions: case_sensitive left out of the key" \
    'key_int(key, cond->case_insensitive);' \
    ''
mut sql src/eval_program.c "shared conditions: operands left out of the key" \
    'key_scalar(key, &cond->values[i], &cond->attr);' \
    '(void) 0;'
mut sql src/eval_program.c "shared conditions: a percentage's salt left out of the key" \
    'key_bytes(key, salt, strlen(salt));' \
    '(void) salt;'
mut sql src/rule_eval.c "a shared result is stored after negation" \
    'if (cond->negated_op)\n\t\tresult = !result;\n\tif (cond->negate)\n\t\tresult = !result;\n\treturn result;\n}' \
    'if (cond->negated_op)\n\t\tresult = !result;\n\tif (cond->negate)\n\t\tresult = !result;\n\tif (m >= 0 && ctx->memo_result != NULL)\n\t\tctx->memo_result[m] = result;\n\treturn result;\n}'
mut sql src/rule_eval.c "remembered results: a column's value known by its first byte" \
    '*len = VARSIZE_ANY_EXHDR(DatumGetPointer(d));' \
    '*len = Min(1, VARSIZE_ANY_EXHDR(DatumGetPointer(d)));'
mut sql src/rule_eval.c "integer modulo tests the remainder the wrong way" \
    'return rem == cond->mod_remainder;' \
    'return rem != cond->mod_remainder;'


# ---- contacts evaluated in batches (eval_batch.c), literal regexes ---------
mut sql src/eval_batch.c "batch: an AND's bitmap starts empty" \
    'out[w] = ~UINT64CONST(0);' \
    'out[w] = 0;'
mut sql src/eval_batch.c "batch: negate and the negative operator do not cancel" \
    'if (cond->negated_op != cond->negate)' \
    'if (cond->negated_op || cond->negate)'
mut sql src/eval_batch.c "batch: the last contact of a partly filled word is lost" \
    'word & ((UINT64CONST(1) << valid) - 1) : word;' \
    'word & ((UINT64CONST(1) << (valid - 1)) - 1) : word;'
mut sql src/eval_batch.c "batch: conditions' bitmaps are not cleared between batches" \
    'memset(b->cond_bits, 0, sizeof(uint64) * WORDS * Max(b->nslots, 1));' \
    '(void) 0;'
mut sql src/pass_full.c "batch: refresh() never evaluates its last, partly filled batch" \
    '\t\tContactBatchFlush(plan, cb, batch);\n\t\tMemberBatchApply(plan, batch);' \
    '\t\tMemberBatchApply(plan, batch);'
mut sql src/pass_scan.c "batch: a tenant's segment keeps other tenants' contacts" \
    'EvalBatchExclude(cb->bits, i, k);' \
    '(void) k;'
mut sql src/eval_batch.c "batch: a segment condition reads the first segment named only" \
    'for (int i = 0; i < cond->nsegments; i++)\n\t\t\t\t\t\tfor (int w' \
    'for (int i = 0; i < Min(1, cond->nsegments); i++)\n\t\t\t\t\t\tfor (int w'
mut sql src/regex_literal.c "literal regex: the final \$ anchors nothing" \
    'if (lit->anchor_end)\n\t\t\tfirst = last;' \
    '(void) 0;'
mut sql src/regex_literal.c "literal regex: the leading ^ anchors nothing" \
    'if (lit->anchor_start)\n\t\t\tlast = 0;' \
    '(void) 0;'
mut sql src/regex_literal.c "literal regex: a bracket list takes a range as its characters" \
    "if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||" \
    "if (!(*q == '-' || (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||"
mut sql src/regex_literal.c "literal regex: a group keeps only its last branch" \
    'memcpy(out + nout, ps->alts, sizeof(LiteralAlt) * nbefore);\n\t\tnout += nbefore;' \
    'memcpy(out, ps->alts, sizeof(LiteralAlt) * nbefore);\n\t\tnout = nbefore;'
mut sql src/regex_literal.c "literal regex: a dot taken as a literal character" \
    "strchr(\"@-_ ,:;/=%'\\\"!&~<>#\", c) != NULL;" \
    "strchr(\"@-_ ,:;/=%'\\\"!&~<>#.\", c) != NULL;"
mut sql src/rule_eval.c "literal regex: used for case-insensitive patterns too" \
    'cond->regex_literal = cond->case_insensitive ? NULL :' \
    'cond->regex_literal = false ? NULL :'

# ---- percentage buckets and their hashing ---------------------------------
mut sql src/rule_eval.c "percentage lte compares as lt" \
    'return bucket <= cond->bounds[0];' \
    'return bucket < cond->bounds[0];'
mut sql src/rule_eval.c "percentage gte compares as gt" \
    'return bucket >= cond->bounds[0];' \
    'return bucket > cond->bounds[0];'
mut sql src/rule_eval.c "percentage gt compares as gte" \
    'return bucket > cond->bounds[0];' \
    'return bucket >= cond->bounds[0];'
mut sql src/rule_eval.c "percentage lt compares as lte" \
    'return bucket < cond->bounds[0];' \
    'return bucket <= cond->bounds[0];'
mut sql src/rule_eval.c "percentage between excludes its high end" \
    'bucket <= cond->bounds[1];' \
    'bucket < cond->bounds[1];'
mut sql src/rule_value.c "percentage buckets lose their decimals" \
    'return (double) (first32 % 10000) / 100.0;' \
    'return (double) ((first32 % 10000) / 100);'
mut sql src/md5_bucket.c "MD5 padding boundary off by one (56)" \
    'if (fill > 56)' \
    'if (fill >= 56)'
mut sql src/md5_bucket.c "MD5 length field in bytes, not bits" \
    'block[56 + i] = (unsigned char) ((total * 8) >> (8 * i));' \
    'block[56 + i] = (unsigned char) (total >> (8 * i));'

# ---- parsing limits and checks --------------------------------------------
mut sql src/rule_parse.c "depth limit one level too generous" \
    'if (level > SEGMENTS_MAX_DEPTH)' \
    'if (level > SEGMENTS_MAX_DEPTH + 1)'
mut sql src/rule_parse.c "node limit one too strict" \
    'if (++ps->result->nnodes > SEGMENTS_MAX_NODES)' \
    'if (++ps->result->nnodes >= SEGMENTS_MAX_NODES)'
mut sql src/rule_parse.c "percentage 100 refused" \
    'NumericGetDatum(hundred))) > 0)' \
    'NumericGetDatum(hundred))) >= 0)'
mut sql src/rule_parse.c "percentage between with equal ends refused" \
    'if (cond->op == OP_BETWEEN && cond->bounds[0] > cond->bounds[1])' \
    'if (cond->op == OP_BETWEEN && cond->bounds[0] >= cond->bounds[1])'
mut sql src/rule_render.c "compile() renders gte as >" \
    'case OP_GTE:\n\t\t\treturn ">=";' \
    'case OP_GTE:\n\t\t\treturn ">";'
mut sql src/rule_render.c "compile() shows a strict reading as an as-reading" \
    'appendStringInfo(buf, " (%s)", type_names[cond->read_as]);' \
    'appendStringInfo(buf, " as %s", type_names[cond->read_as]);'
mut sql src/rule_parse.c "in/not_in list limit one value too generous" \
    'if (n > SEGMENTS_MAX_LIST_VALUES)' \
    'if (n > SEGMENTS_MAX_LIST_VALUES + 1)'
mut sql src/rule_parse.c "definition size limit one byte too strict" \
    'if (len > SEGMENTS_MAX_DEFINITION_BYTES)' \
    'if (len >= SEGMENTS_MAX_DEFINITION_BYTES)'
mut sql src/rule_parse.c "regex length limit one character too generous" \
    'if (nchars > SEGMENTS_MAX_REGEX_CHARS)' \
    'if (nchars > SEGMENTS_MAX_REGEX_CHARS + 1)'
mut sql src/rule_parse.c "regex back-references allowed" \
    'if (DatumGetBool(backref))' \
    'if (false && DatumGetBool(backref))'
mut sql src/rule_parse.c "attribute column types not checked" \
    'check_column_type(in->path, att);' \
    '(void) att;'

# ---- stored membership: codec, merge, departures, counts ------------------
mut sql src/member_codec.c "codec: numbers stored whole, decoded as differences" \
    '(int64) nums[i] - nums[i - 1]' \
    '(int64) nums[i]'
mut sql src/member_codec.c "codec: negative time steps decode as positive" \
    'return (int64) (v >> 1) ^ -(int64) (v & 1);' \
    'return (int64) (v >> 1);'
mut sql src/member_codec.c "codec: times decoded without accumulating" \
    'acc += unzigzag(v);' \
    'acc = unzigzag(v);'
mut sql src/member_diff.c "since reset at every evaluation" \
    'since[n++] = from_old ? old_since[i] : plan->now_seconds;' \
    'since[n++] = plan->now_seconds;'
mut sql src/pass_full.c "refresh() keeps departed contacts" \
    '\t\t\tPassDeleteDeparted(plan, lfirst(lc), NULL, NULL, NULL);' \
    '\t\t\t(void) PassDeleteDeparted;'
mut sql src/member_diff.c "a pass rewrites rows whose membership did not change" \
    'continue;			/* unchanged */' \
    ';			/* unchanged */'
mut sql src/member_space.c "passes do not reuse the space of replaced row versions" \
    'heap_page_prune_opt(member, buf);' \
    '(void) heap_page_prune_opt;'
mut sql src/pass_scan.c "member_count counts every contact" \
    'es->count += EvalBatchMembers(cb->bits, i);' \
    'es->count += n;'

# ---- tenants and gating ----------------------------------------------------
mut sql src/eval_pass.h "a tenant's segment takes every tenant's contacts" \
    '(tenant != NULL && strcmp(tenant, es->seg->tenant) == 0)' \
    '(tenant != NULL)'
mut sql src/tenancy.c "tenant visibility check skipped" \
    'return tenant == NULL || strcmp(tenant, view->tenant) == 0;' \
    'return true;'
mut sql src/functions.c "filter_restricted grants an anonymous contact" \
    'if (PG_ARGISNULL(0))\n\t\tPG_RETURN_BOOL(false);' \
    'if (PG_ARGISNULL(0))\n\t\tPG_RETURN_BOOL(true);'
mut sql src/functions.c "filter_restricted: an empty list denies" \
    'gate_list_empty(PG_GETARG_DATUM(1)))\n\t\tPG_RETURN_BOOL(true);' \
    'gate_list_empty(PG_GETARG_DATUM(1)))\n\t\tPG_RETURN_BOOL(false);'
mut sql src/functions.c "gating binary search misses the last candidate" \
    'while (lo <= hi)' \
    'while (lo < hi)'

# ---- change capture (worker) ----------------------------------------------
mut worker src/capture.c "a key change does not queue the old key" \
    'enqueue_key(cr, td->tg_trigslot);\n\t\t\tenqueue_key(cr, td->tg_newslot);' \
    'enqueue_key(cr, td->tg_newslot);'
mut worker src/capture.c "an UPDATE from or to NULL is not a change" \
    'return anull != bnull;' \
    'return false;'
mut worker src/capture.c "TRUNCATE queues nothing" \
    'if (TRIGGER_FIRED_BY_TRUNCATE(event))\n\t\tenqueue(NULL);' \
    'if (TRIGGER_FIRED_BY_TRUNCATE(event))\n\t\t(void) 0;'
mut worker src/capture.c "DELETE queues nothing" \
    'TRIGGER_FIRED_BY_INSERT(event) || TRIGGER_FIRED_BY_DELETE(event)' \
    'TRIGGER_FIRED_BY_INSERT(event)'
mut worker src/capture.c "the tenant column is not watched" \
    'if (tenant != NULL)\n\t\t\tcapture.columns[capture.ncolumns++] = tenant;' \
    ''
mut worker src/capture.c "the traits column is not watched" \
    'if (traits != NULL && traits_used)' \
    'if (traits != NULL && !traits_used)'
mut worker src/capture.c "every UPDATE is queued" \
    'if (column_changed(cr, j, td->tg_trigslot, td->tg_newslot))' \
    'if (true)'
mut worker src/capture.c "keys written early are lost with the subtransaction that wrote them" \
    'pending->flushed_subid >= mySubid)' \
    'pending->flushed_subid > mySubid)'
mut worker src/capture.c "a transaction's keys are not queued at commit" \
    'case XACT_EVENT_PRE_COMMIT:\n\t\t\tif (pending != NULL' \
    'case XACT_EVENT_PRE_COMMIT:\n\t\t\tif (false && pending != NULL'

# ---- the worker and time ---------------------------------------------------
mut worker src/worker.c "a TRUNCATE in a batch is applied as row changes" \
    'if (truncated)' \
    'if (false)'
mut worker src/worker.c "schedules a hundred times too long" \
    's.schedule)' \
    's.schedule * 100)'
mut worker src/time_window.c "within_next: leaving after the time is never looked for" \
    'add_range(ws, &cond->attr, ws->from, ws->to);' \
    ''
mut worker src/time_window.c "within_last: the window looks on the wrong side" \
    'add_range(ws, &cond->attr, RuleShiftTime(ws->from, cond->interval, -1),' \
    'add_range(ws, &cond->attr, RuleShiftTime(ws->from, cond->interval, 1),'
# ---- memory -----------------------------------------------------------------
mut worker src/segments.h "set-returning functions build their descriptor at every call (leak)" \
    '\t\t\t\t\t\tMAT_SRF_USE_EXPECTED_DESC : 0)' \
    '\t\t\t\t\t\t0 : 0)'
# ---- privileges ------------------------------------------------------------
mut sql src/privilege.c "rules may read columns their author may not SELECT" \
    'return pg_class_aclcheck(relid, role, ACL_SELECT) == ACLCHECK_OK ||\n\t\tpg_attribute_aclcheck(relid, attnum, role, ACL_SELECT) == ACLCHECK_OK;' \
    'return true;'
mut sql src/privilege.c "trait rules skip the traits column's privilege check" \
    'if (cond->type == COND_TRAIT && traits_attnum > 0 &&' \
    'if (false && cond->type == COND_TRAIT && traits_attnum > 0 &&'
# ---- caches ------------------------------------------------------------------
mut sql src/catalog.c "the cached catalog is loaded with the caller's snapshot" \
    '\t\tPushActiveSnapshot(GetLatestSnapshot());\n\tcat = CatalogLoad(cxt, false);' \
    '\t\tPushActiveSnapshot(catalog_snapshot());\n\tcat = CatalogLoad(cxt, false);'

# ---- end of the list -------------------------------------------------------

N=${#KINDS[@]}
fast=""; baseline=1; list=""; pick=()
for a in "$@"; do
    case "$a" in
        --fast) fast=1;;
        --no-baseline) baseline="";;
        --list) list=1;;
        -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
        *[!0-9]*|"") echo "unknown argument: $a" >&2; exit 2;;
        *) [ "$a" -ge 1 ] && [ "$a" -le "$N" ] || { echo "no mutation $a (1-$N)" >&2; exit 2; }
           pick+=("$a");;
    esac
done
[ ${#pick[@]} -gt 0 ] || pick=($(seq 1 "$N"))

# apply FILE FROM TO [check]: replaces the one occurrence of FROM (or with
# "check", only checks there is exactly one); prints an error otherwise.
apply() {
    perl -e '
        my ($path, $old, $new, $check) = @ARGV;
        for ($old, $new) { s/\\n/\n/g; s/\\t/\t/g; }
        open(my $in, "<", $path) or die "cannot read $path: $!\n";
        my $text = do { local $/; <$in> }; close $in;
        my $n = () = $text =~ /\Q$old\E/g;
        die "pattern occurs $n times in $path, not once\n" if $n != 1;
        exit 0 if defined $check;
        my $at = index($text, $old);
        substr($text, $at, length($old)) = $new;
        open(my $out, ">", $path) or die "cannot write $path: $!\n";
        print $out $text; close $out;
    ' "$@"
}

# Checks every picked entry against the current tree.
broken=0
declare -A bad=()
for i in "${pick[@]}"; do
    k=$((i - 1))
    if ! err=$(apply "${FILES[$k]}" "${FROMS[$k]}" "${TOS[$k]}" check 2>&1); then
        bad[$i]="$err"; broken=$((broken + 1))
    fi
done

if [ -n "$list" ]; then
    for i in "${pick[@]}"; do
        k=$((i - 1))
        printf '%3d  %-6s %-22s %s%s\n' "$i" "${KINDS[$k]}" "${FILES[$k]}" "${WHATS[$k]}" \
            "${bad[$i]:+   ERROR: ${bad[$i]}}"
    done
    echo "$N mutations, $broken broken"
    [ "$broken" -eq 0 ]; exit
fi

LOGS=${MUTATE_LOGS:-$(mktemp -d /tmp/segments-mutate-XXXXXX)}
mkdir -p "$LOGS"
echo "logs in $LOGS"

# A scratch copy of the tree as it is (committed or not), without build
# products: the files git knows and untracked ones it does not ignore.
copy_tree() {
    local dest="$1"
    mkdir -p "$dest"
    git ls-files -z -co --exclude-standard |
        tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$dest"
}

# Stops every server a run left behind under its directory.
stop_servers() {
    local tmp="$1" pidfile
    [ -d "$tmp" ] || return 0
    while IFS= read -r pidfile; do
        runuser -u postgres -- "${PG_CTL:-/usr/lib/postgresql/15/bin/pg_ctl}" \
            -D "$(dirname "$pidfile")" -m immediate -w stop >/dev/null 2>&1 || true
    done < <(find "$tmp" -name postmaster.pid 2>/dev/null)
    rm -rf "$tmp"
}

# run NAME PARTS: runs the suite in the scratch copy $SCRATCH/tree; sets
# RESULT (pass, fail, timeout, nobuild) and FIRST (what failed first).
run_suite() {
    local name="$1" parts="$2" limit rc=0 tmp log="$LOGS/$1.log"
    limit=$([ -n "$parts" ] && echo 1200 || echo 3600)
    tmp=$(mktemp -d /tmp/segments-XXXXXX)
    chmod 755 "$tmp"; chown postgres:postgres "$tmp"
    (cd "$SCRATCH/tree" && SEGMENTS_TMP="$tmp" TEST_PARTS="$parts" FAIL_FAST=1 KEEP_OBJECTS=1 \
        timeout -k 30 "$limit" bash scripts/test.sh) >"$log" 2>&1 || rc=$?
    stop_servers "$tmp"
    FIRST=$(grep -m1 -E '^not ok|^FAIL|^test .*FAILED|failed \(' "$log" || true)
    if ! grep -q '^== install into' "$log"; then RESULT=nobuild
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then RESULT=timeout
    elif [ $rc -eq 0 ]; then RESULT=pass
    else RESULT=fail
    fi
}

SCRATCH=$(mktemp -d /tmp/segments-mutate-tree-XXXXXX); chmod 755 "$SCRATCH"
trap 'rm -rf "$SCRATCH"' EXIT
# The unmutated tree, built once; each mutant starts from a copy of it with
# its objects, so that only the mutated file is compiled again.
copy_tree "$SCRATCH/base"
make -s -C "$SCRATCH/base" with_llvm=no >"$LOGS/build.log" 2>&1 || { echo "the unmutated tree does not build: $LOGS/build.log"; exit 1; }
new_tree() { rm -rf "$SCRATCH/tree"; cp -a "$SCRATCH/base" "$SCRATCH/tree"; }

need_full=""
for i in "${pick[@]}"; do
    [ -z "$fast" ] || [ "${KINDS[$((i - 1))]}" = worker ] && need_full=1
done
FAST_PARTS="pg_regress isolation pgTAP"

if [ -n "$baseline" ]; then
    new_tree
    start=$SECONDS
    run_suite baseline "$([ -n "$need_full" ] || echo "$FAST_PARTS")"
    rm -rf "$SCRATCH/tree"
    if [ "$RESULT" != pass ]; then
        echo "the unmutated tree does not pass ($RESULT: $FIRST); see $LOGS/baseline.log"
        exit 1
    fi
    echo "baseline: the unmutated tree passes ($((SECONDS - start)) s)"
fi

caught=0; survived=(); errors=()
for i in "${pick[@]}"; do
    k=$((i - 1)); what="${FILES[$k]}: ${WHATS[$k]}"
    if [ -n "${bad[$i]:-}" ]; then
        printf '%3d  ERROR     %s: %s\n' "$i" "$what" "${bad[$i]}"
        errors+=("$i"); continue
    fi
    new_tree
    (cd "$SCRATCH/tree" && apply "${FILES[$k]}" "${FROMS[$k]}" "${TOS[$k]}")
    parts=""
    [ -n "$fast" ] && [ "${KINDS[$k]}" = sql ] && parts="$FAST_PARTS"
    [ -n "$fast" ] && [ "${KINDS[$k]}" = worker ] && parts="worker"
    start=$SECONDS
    run_suite "mutant-$i" "$parts"
    if [ "$RESULT" = pass ] && [ "$parts" = worker ]; then
        parts=""            # the worker scripts passed: the whole suite decides
        run_suite "mutant-$i" ""
    fi
    rm -rf "$SCRATCH/tree"
    case "$RESULT" in
        fail)    caught=$((caught + 1)); verdict="caught";;
        timeout) caught=$((caught + 1)); verdict="caught (the suite timed out)";;
        pass)    survived+=("$i"); verdict="SURVIVED";;
        nobuild) errors+=("$i"); verdict="ERROR (the mutant does not build)";;
    esac
    printf '%3d  %-9s %s  [%s, %d s]%s\n' "$i" "${verdict%% *}" "$what" \
        "${parts:-whole suite}" $((SECONDS - start)) "${FIRST:+  -- ${FIRST:0:100}}"
done

echo
echo "mutations: $caught caught of ${#pick[@]}${survived:+; survived: ${survived[*]}}${errors:+; errors: ${errors[*]}}"
echo "command: scripts/mutate.sh${*:+ $*}"
[ ${#survived[@]} -eq 0 ] && [ ${#errors[@]} -eq 0 ]
exit
}

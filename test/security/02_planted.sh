#!/usr/bin/env bash
# Nothing of a user runs with the extension's rights (README: Security model): the owner of
# the database, not a superuser, plants in public an aggregate, an operator
# and a function with exact argument types matching what the extension's
# SQL calls (array_agg(text), interval * integer, now()), each recording who
# ran it and trying to make the planter a superuser, and puts public before
# pg_catalog in the database's search_path.  After worker passes (changes,
# a first evaluation, a scheduled one, time windows) and every management
# call, nothing planted has run and the planter is no superuser.
. "$(dirname "$0")/common.bash"

mkrole DBO dbowner
q "ALTER DATABASE \"$DB\" OWNER TO \"$DBO\""
q "GRANT segments_write TO \"$DBO\""
as "$DBO" "CREATE TABLE contacts (id bigint PRIMARY KEY, plan text, seen_at timestamptz)"
as "$DBO" "INSERT INTO contacts SELECT g, CASE WHEN g % 10 = 0 THEN 'vip' ELSE 'free' END,
             now() - g * interval '1 hour' FROM generate_series(1, 500) g"
q "SELECT segments.configure('public.contacts', 'id')" >/dev/null

# the plants: each records the role it ran as, then tries to escalate
as "$DBO" "CREATE TABLE public.ran (who name, what text)"
as "$DBO" "GRANT INSERT ON public.ran TO PUBLIC"
as "$DBO" "CREATE FUNCTION public.planted(what text) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN
    INSERT INTO public.ran VALUES (current_user, what);
    BEGIN
        EXECUTE format('ALTER ROLE %I SUPERUSER', '$DBO');
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
END\$\$"
as "$DBO" "CREATE FUNCTION public.planted_sfunc(text[], text) RETURNS text[] LANGUAGE plpgsql AS
             \$\$BEGIN PERFORM public.planted('array_agg'); RETURN pg_catalog.array_append(\$1, \$2); END\$\$"
as "$DBO" "CREATE AGGREGATE public.array_agg(text) (sfunc = public.planted_sfunc, stype = text[])"
as "$DBO" "CREATE FUNCTION public.planted_mul(interval, integer) RETURNS interval LANGUAGE plpgsql AS
             \$\$BEGIN PERFORM public.planted('*'); RETURN pg_catalog.interval_mul(\$1, \$2::float8); END\$\$"
as "$DBO" "CREATE OPERATOR public.* (leftarg = interval, rightarg = integer, function = public.planted_mul)"
as "$DBO" "CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql AS
             \$\$BEGIN PERFORM public.planted('now'); RETURN pg_catalog.now(); END\$\$"
as "$DBO" "CREATE FUNCTION public.btrim(text) RETURNS text LANGUAGE plpgsql AS
             \$\$BEGIN PERFORM public.planted('btrim'); RETURN pg_catalog.btrim(\$1); END\$\$"
as "$DBO" "CREATE FUNCTION public.gen_random_uuid() RETURNS uuid LANGUAGE plpgsql AS
             \$\$BEGIN PERFORM public.planted('gen_random_uuid'); RETURN pg_catalog.gen_random_uuid(); END\$\$"
as "$DBO" "ALTER DATABASE \"$DB\" SET search_path = public, pg_catalog"
# the plants work: run by the planter itself, they record
as "$DBO" "SELECT public.array_agg(x) FROM (VALUES ('a'::text)) v(x)" >/dev/null
expect "the plants work when their planter calls them" "SELECT count(*) FROM public.ran" 1
as "$DBO" "DELETE FROM public.ran"

# a worker that connects after the database's setting
old_pid=$(q "SELECT pid FROM segments.worker")
q "SELECT pg_terminate_backend($old_pid)" >/dev/null
poll "worker restarted after the database's setting" \
    "SELECT pid IS NOT NULL AND pid <> $old_pid FROM segments.worker" t 60

# management calls by the planter, with its search_path
VIP=$(as "$DBO" "SELECT segments.create_segment('VIP', '{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"eq\", \"value\": \"vip\"}')")
[ -n "$VIP" ] || fail "create_segment by the database owner failed"
note "ok: create_segment by the database owner"
as "$DBO" "SELECT segments.create_segment('Recent', '{\"type\": \"attribute\", \"field\": \"seen_at\", \"op\": \"within_last\", \"value\": \"1 day\"}')" >/dev/null
as "$DBO" "SELECT segments.update_segment('$VIP', description => ' vip ')" >/dev/null
as "$DBO" "SELECT segments.compile('{\"type\": \"attribute\", \"field\": \"plan\", \"op\": \"in\", \"value\": [\"a\", \"b\"]}')" >/dev/null
as "$DBO" "SELECT segments.schedule('$VIP', '10 seconds')" >/dev/null
tmp=$(as "$DBO" "SELECT segments.create_segment('tmp', '{\"and\": []}')")
as "$DBO" "SELECT segments.refresh('$tmp')" >/dev/null
as "$DBO" "SELECT segments.drop_segment('$tmp')" >/dev/null
note "ok: management calls by the database owner"
expect "wait() after management" "SELECT segments.wait('60 s')" t

# worker passes: a batch of changes, a scheduled re-evaluation
as "$DBO" "UPDATE contacts SET plan = 'vip' WHERE id <= 5"
as "$DBO" "INSERT INTO contacts VALUES (1001, 'vip', pg_catalog.now())"
expect "wait() after the planter's writes" "SELECT segments.wait('60 s')" t
expect "changes applied" "SELECT segments.segment_is_member(1001::bigint, '$VIP')" t
first=$(q "SELECT evaluated_at FROM segments.status WHERE segment_id = '$VIP'")
poll "scheduled re-evaluation ran" \
    "SELECT evaluated_at > '$first' FROM segments.status WHERE segment_id = '$VIP'" t 60
expect "both segments ready" "SELECT string_agg(state, ',' ORDER BY name) FROM segments.status" ready,ready

expect "nothing planted ran (who and what)" "SELECT coalesce(string_agg(who || ':' || what, ','), '') FROM public.ran" ""
expect "the planter is no superuser" "SELECT rolsuper FROM pg_roles WHERE rolname = '$DBO'" f
all_passed

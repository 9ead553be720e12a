-- bench.vary(definition, v): a variant of a benchmark rule with its
-- constants moved by v, for bench/scale.sh's 1,000 segments made from the
-- 100 of bench/segments.sql.  Numbers move by v (a modulo's divisor too),
-- "N days" windows by v days, dates v days earlier, percentage rollouts get
-- another salt (the same share, other contacts); texts, versions, network
-- ranges and segment references stay, so some conditions repeat across
-- variants, as in a real catalogue.  v = 0 is the rule itself.
\set ON_ERROR_STOP 1
CREATE FUNCTION bench.vary(def jsonb, v int) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    grp text;
    val jsonb := def -> 'value';
    str text := def ->> 'value';
BEGIN
    IF v = 0 THEN
        RETURN def;
    END IF;
    FOREACH grp IN ARRAY ARRAY['and', 'or', 'none'] LOOP
        IF def ? grp THEN
            RETURN jsonb_set(def, ARRAY[grp],
                             (SELECT jsonb_agg(bench.vary(e, v) ORDER BY i)
                                FROM jsonb_array_elements(def -> grp) WITH ORDINALITY AS t(e, i)));
        END IF;
    END LOOP;
    IF val IS NULL OR def ->> 'type' = 'segment' THEN
        RETURN def;
    ELSIF def ->> 'type' = 'percentage' THEN
        RETURN def || jsonb_build_object('salt', coalesce(def ->> 'salt', '') || '~' || v);
    ELSIF def ->> 'op' = 'modulo' THEN
        RETURN jsonb_set(def, '{value,0}', to_jsonb((val ->> 0)::int + v));
    ELSIF jsonb_typeof(val) = 'number' THEN
        RETURN jsonb_set(def, '{value}', to_jsonb(val::text::numeric + v));
    ELSIF jsonb_typeof(val) = 'array' AND def ->> 'op' = 'between' THEN
        RETURN jsonb_set(def, '{value}', jsonb_build_array((val ->> 0)::numeric + v, (val ->> 1)::numeric + v));
    ELSIF str ~ '^[0-9]+ days?$' THEN
        RETURN jsonb_set(def, '{value}', to_jsonb(format('%s days', split_part(str, ' ', 1)::int + v)));
    ELSIF str ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN
        RETURN jsonb_set(def, '{value}', to_jsonb(to_char(str::date - v, 'YYYY-MM-DD')));
    END IF;
    RETURN def;
END
$$;

-- segments install script, part 8: explain and preview.
-- explain() and explain_text() (role segments_read) say why a contact is or
-- is not in a segment: the segment's rule tree evaluated for the contact by
-- the evaluation passes' own code, with each node's result and the values
-- it read, and whether stored membership agrees.  They take the contact as
-- the other reading functions do, and the segment as a uuid or a name; they
-- never write.  Values of columns the caller may not SELECT are redacted.
-- preview() (role segments_write) counts the members a definition would
-- have, validating it as create_segment() does and saving nothing.

CREATE FUNCTION segments.explain(contact uuid, segment uuid) RETURNS jsonb
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'segments_explain';
CREATE FUNCTION segments.explain(contact uuid, segment text) RETURNS jsonb
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'segments_explain';
CREATE FUNCTION segments.explain(contact bigint, segment uuid) RETURNS jsonb
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'segments_explain';
CREATE FUNCTION segments.explain(contact bigint, segment text) RETURNS jsonb
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'segments_explain';
CREATE FUNCTION segments.explain(contact integer, segment uuid) RETURNS jsonb
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'segments_explain';
CREATE FUNCTION segments.explain(contact integer, segment text) RETURNS jsonb
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'segments_explain';
CREATE FUNCTION segments.explain(contact smallint, segment uuid) RETURNS jsonb
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'segments_explain';
CREATE FUNCTION segments.explain(contact smallint, segment text) RETURNS jsonb
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'segments_explain';
CREATE FUNCTION segments.explain(contact text, segment uuid) RETURNS jsonb
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'segments_explain';
CREATE FUNCTION segments.explain(contact text, segment text) RETURNS jsonb
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'segments_explain';

CREATE FUNCTION segments.explain_text(contact uuid, segment uuid) RETURNS text
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'segments_explain_text';
CREATE FUNCTION segments.explain_text(contact uuid, segment text) RETURNS text
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'segments_explain_text';
CREATE FUNCTION segments.explain_text(contact bigint, segment uuid) RETURNS text
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'segments_explain_text';
CREATE FUNCTION segments.explain_text(contact bigint, segment text) RETURNS text
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'segments_explain_text';
CREATE FUNCTION segments.explain_text(contact integer, segment uuid) RETURNS text
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'segments_explain_text';
CREATE FUNCTION segments.explain_text(contact integer, segment text) RETURNS text
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'segments_explain_text';
CREATE FUNCTION segments.explain_text(contact smallint, segment uuid) RETURNS text
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'segments_explain_text';
CREATE FUNCTION segments.explain_text(contact smallint, segment text) RETURNS text
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'segments_explain_text';
CREATE FUNCTION segments.explain_text(contact text, segment uuid) RETURNS text
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'segments_explain_text';
CREATE FUNCTION segments.explain_text(contact text, segment text) RETURNS text
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'segments_explain_text';

COMMENT ON FUNCTION segments.explain(text, text) IS
    'Why a contact is (not) in a segment: the rule tree with each node''s result and the values read, nested referenced segments, and whether stored membership agrees.';
COMMENT ON FUNCTION segments.explain_text(text, text) IS
    'segments.explain() as an indented tree, one node per line, for psql.';

-- SECURITY INVOKER: the definition is checked against the caller's column
-- privileges and tenant, as create_segment() checks it; the evaluation then
-- reads the source with the extension's rights.
CREATE FUNCTION segments.preview(definition jsonb, sample integer DEFAULT 10,
                                 OUT member_count bigint, OUT contact_count bigint,
                                 OUT sample_keys text[])
RETURNS record
LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'segments_preview';
COMMENT ON FUNCTION segments.preview(jsonb, integer) IS
    'How many of the session''s contacts a definition would hold, with the first member keys, validated as create_segment() validates it and saving nothing.';

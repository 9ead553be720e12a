-- segments install script, part 5a: the chunked evaluation pass in progress.

-- The worker evaluates new, changed and scheduled segments together in one
-- pass over the source, in chunks of segments.pass_chunk_size contacts by
-- key order, each chunk its own transaction (src/pass_chunked.c).  This row
-- is the pass in progress: it survives a crash, and the worker resumes from
-- the last committed chunk.  No row: no pass in progress.
CREATE TABLE segments.pass (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    source         regclass NOT NULL,          -- the source the pass reads
    segment_ids    uuid[] NOT NULL,            -- the segments it evaluates
    requested      timestamptz[] NOT NULL,     -- their requested_at when it started
    started_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    cursor         text,                       -- last key visited (text form); NULL: none yet
    contacts_done  bigint NOT NULL DEFAULT 0,
    contacts_total bigint NOT NULL DEFAULT 0,  -- estimated when the pass started
    chunks         integer NOT NULL DEFAULT 0
);
COMMENT ON TABLE segments.pass IS
    'The evaluation pass in progress (at most one row): its segments and how far it went.';

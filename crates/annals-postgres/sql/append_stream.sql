-- The one-stream append: a prepared statement (not a migration), used for every append that
-- touches one stream and has no inbox mark; others go through append_events (append.sql), whose
-- checks and SQLSTATEs this statement repeats. One statement instead of a PL/pgSQL function
-- saves about a fifth of the server's work per append.
-- $1 stream, $2 stream type, $3 expected (-1 any, -2 no stream, -3 exists, n >= 0 exactly n),
-- $4 event count, $5 snapshot version (NULL: none), $6..$10 event ids, types, schema versions,
-- payloads, metadata; $11/$12 the snapshot's schema version and state.
-- Returns the first new version. A refusal raises annals' SQLSTATE with a DETAIL that is a JSON
-- object naming what was wrong (stream, versions, types): the client reads its fields by name.
-- A stream whose deletion is its last event takes only an append starting with StreamRestored
-- (`deleted_version`, see streams.sql); an append ending with StreamDeleted deletes it.
-- The client sends one of four cuts of this text (the parts between a `-- <part>` line and the
-- next `-- end` are cut out):
-- - without `snapshot` when the append has none, with 10 parameters: the server then does not
--   set up an insert into snapshots on every append;
-- - `update` when the stream must exist (an exact version above 0, or "exists"), else `upsert`:
--   a plain UPDATE costs the server about a tenth less per append than the upsert's
--   speculative insert.
WITH bumped AS (
-- upsert
    -- Creates the stream row or bumps its version, holding the row lock until commit.
    INSERT INTO streams AS s (stream_id, stream_type, version, deleted_version)
    VALUES ($1::text, $2::text, $4::bigint,
            CASE WHEN ($7::text[])[array_upper($7::text[], 1)] = 'StreamDeleted' THEN $4::bigint END)
    ON CONFLICT (stream_id) DO UPDATE SET version = s.version + excluded.version, updated_at = now(),
        deleted_version = CASE
            WHEN s.deleted_version IS NOT NULL AND ($7::text[])[1] <> 'StreamRestored' THEN s.deleted_version
            WHEN excluded.deleted_version IS NOT NULL THEN s.version + excluded.version END
    RETURNING s.version - $4 AS v, s.stream_type AS t, s.deleted_version AS dv
-- end
-- update
    -- Bumps the version of a stream that must exist, holding the row lock until commit; no row
    -- (no such stream) is refused below as a conflict with version 0.
    UPDATE streams AS s SET version = s.version + $4::bigint, updated_at = now(),
        deleted_version = CASE
            WHEN s.deleted_version IS NOT NULL AND ($7::text[])[1] <> 'StreamRestored' THEN s.deleted_version
            WHEN ($7::text[])[array_upper($7::text[], 1)] = 'StreamDeleted' THEN s.version + $4::bigint END
    WHERE s.stream_id = $1::text
    RETURNING s.version - $4 AS v, s.stream_type AS t, s.deleted_version AS dv
-- end
), checked AS (
    SELECT CASE
        WHEN b.v IS NULL
            THEN refuse('AN003', 'wrong expected version', json_build_object('stream', $1::text, 'actual', 0)::text)
        WHEN b.t <> $2 THEN refuse('AN002', 'stream type mismatch',
            json_build_object('stream', $1, 'requested', $2, 'actual', b.t)::text)
        WHEN b.dv IS NOT NULL AND b.dv <= b.v
            THEN refuse('AN006', 'stream deleted', json_build_object('stream', $1, 'version', b.dv)::text)
        WHEN NOT ($3::bigint = -1 OR ($3 = -2 AND b.v = 0) OR ($3 = -3 AND b.v > 0) OR ($3 >= 0 AND b.v = $3))
            THEN refuse('AN003', 'wrong expected version', json_build_object('stream', $1, 'actual', b.v)::text)
        WHEN $5::bigint IS NOT NULL AND $5 <> b.v + $4
            THEN refuse('AN004', 'snapshot version mismatch',
                json_build_object('stream', $1, 'snapshot_version', $5, 'stream_version', b.v + $4)::text)
        ELSE b.v
    END AS v
    FROM (VALUES (1)) AS one LEFT JOIN bumped b ON true
), stored AS (
    INSERT INTO events (stream_id, stream_type, version, event_id, event_type, schema_version, payload, metadata)
    SELECT $1, $2, c.v + t.k, t.id, t.ty, t.sv, t.p::json, t.m::json
    FROM checked c, unnest($6::uuid[], $7::text[], $8::int[], $9::text[], $10::text[])
         WITH ORDINALITY AS t(id, ty, sv, p, m, k)
    ORDER BY t.k
)
-- snapshot
, snapshot AS (
    INSERT INTO snapshots (stream_id, version, schema_version, state)
    SELECT $1, $5, $11::int, $12::text::json FROM checked
    ON CONFLICT (stream_id, version) DO UPDATE
        SET schema_version = excluded.schema_version, state = excluded.state, taken_at = now()
)
-- end
SELECT c.v + 1 FROM checked c

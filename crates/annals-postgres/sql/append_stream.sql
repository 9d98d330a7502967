-- The one-stream append: a prepared statement (not a migration), used for every append that
-- touches one stream and has no inbox mark; others go through append_events (append.sql), whose
-- checks and SQLSTATEs this statement repeats. One statement instead of a PL/pgSQL function
-- saves about a fifth of the server's work per append.
-- $1 stream, $2 stream type, $3 expected (-1 any, -2 no stream, -3 exists, n >= 0 exactly n),
-- $4 event count, $5 snapshot version (NULL: none), $6..$10 event ids, types, schema versions,
-- payloads, metadata; $11/$12 the snapshot's schema version and state.
-- Returns the first new version.
-- Without a snapshot the client sends the statement up to the `snapshot` CTE (cut at the marker
-- line below), with 10 parameters: the server then does not set up an insert into snapshots on
-- every append.
WITH bumped AS (
    -- Creates the stream row or bumps its version, holding the row lock until commit.
    INSERT INTO streams AS s (stream_id, stream_type, version) VALUES ($1::text, $2::text, $4::bigint)
    ON CONFLICT (stream_id) DO UPDATE SET version = s.version + excluded.version, updated_at = now()
    RETURNING s.version - $4 AS v, s.stream_type AS t
), checked AS (
    SELECT CASE
        WHEN b.t <> $2 THEN refuse('AN002', 'stream type mismatch', $1 || '|' || $2 || '|' || b.t)
        WHEN NOT ($3::bigint = -1 OR ($3 = -2 AND b.v = 0) OR ($3 = -3 AND b.v > 0) OR ($3 >= 0 AND b.v = $3))
            THEN refuse('AN003', 'wrong expected version', $1 || '|' || $3 || '|' || b.v)
        WHEN $5::bigint IS NOT NULL AND $5 <> b.v + $4
            THEN refuse('AN004', 'snapshot version mismatch', $1 || '|' || $5 || '|' || (b.v + $4))
        ELSE b.v
    END AS v
    FROM bumped b
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

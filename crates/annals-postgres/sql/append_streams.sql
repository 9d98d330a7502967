-- The multi-stream append: a prepared statement (not a migration), used for every append that
-- touches several streams or carries an inbox mark (append_stream.sql does one stream without).
-- One statement instead of the PL/pgSQL functions append_events / append_events_once (append.sql,
-- processed_messages.sql, kept for clients of earlier versions): the same checks, SQLSTATEs and
-- DETAILs, at about a quarter of the server's work per call.
-- $1..$7, one element per stream: id, type, expected (-1 any, -2 no stream, -3 exists, n >= 0
-- exactly n), event count, snapshot version (NULL: none), snapshot schema version and state.
-- $8..$14, one element per event: its stream (1-based index into the streams), its place in
-- that stream's events (1-based), id, type, schema version, payload, metadata.
-- $15, $16, one element per stream: whether its events start with StreamRestored and whether they
-- end with StreamDeleted (see streams.deleted_version; a deleted stream is refused with AN006
-- unless its append restores it).
-- Inbox variant (the client cuts it in at the `inbox` markers): $17 consumer, $18 message id; a
-- message already processed raises AN005 and nothing is written.
-- Returns one row per stream: its index and first new version. A refusal's DETAIL is a JSON
-- object naming what was wrong (append_stream.sql).
WITH
-- inbox
marked AS (
    INSERT INTO processed_messages (consumer, message_id) VALUES ($17::text, $18::uuid)
    ON CONFLICT DO NOTHING
    RETURNING 1 AS done
),
-- end
input AS (
    SELECT s.id, s.ty, s.expected, s.n, s.snap_v, s.snap_s, s.snap_state, s.restores, s.deletes, s.i::int AS i
    FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::int[], $7::text[],
                $15::boolean[], $16::boolean[])
         WITH ORDINALITY AS s(id, ty, expected, n, snap_v, snap_s, snap_state, restores, deletes, i)
-- inbox
    WHERE EXISTS (SELECT 1 FROM marked)
-- end
), bumped AS (
    -- Creates or bumps every stream row, in stream-id order (two multi-stream appends never wait
    -- on each other in a cycle), holding the row locks until commit.
    INSERT INTO streams AS s (stream_id, stream_type, version, deleted_version)
    SELECT i.id, i.ty, i.n, CASE WHEN i.deletes THEN i.n END FROM input i ORDER BY i.id
    ON CONFLICT (stream_id) DO UPDATE SET version = s.version + excluded.version, updated_at = now(),
        deleted_version = CASE
            WHEN s.deleted_version IS NOT NULL
                 AND NOT (SELECT i.restores FROM input i WHERE i.id = s.stream_id) THEN s.deleted_version
            WHEN excluded.deleted_version IS NOT NULL THEN s.version + excluded.version END
    RETURNING s.stream_id, s.version AS after, s.stream_type AS t, s.deleted_version AS dv
), checked AS (
    SELECT i.i, i.id, i.ty, i.snap_v, i.snap_s, i.snap_state, CASE
        WHEN b.t <> i.ty THEN refuse('AN002', 'stream type mismatch',
            json_build_object('stream', i.id, 'requested', i.ty, 'actual', b.t)::text)
        WHEN b.dv IS NOT NULL AND b.dv <= b.after - i.n
            THEN refuse('AN006', 'stream deleted', json_build_object('stream', i.id, 'version', b.dv)::text)
        WHEN NOT (i.expected = -1 OR (i.expected = -2 AND b.after - i.n = 0) OR (i.expected = -3 AND b.after - i.n > 0)
                  OR (i.expected >= 0 AND b.after - i.n = i.expected))
            THEN refuse('AN003', 'wrong expected version',
                json_build_object('stream', i.id, 'actual', b.after - i.n)::text)
        WHEN i.snap_v IS NOT NULL AND i.snap_v <> b.after
            THEN refuse('AN004', 'snapshot version mismatch',
                json_build_object('stream', i.id, 'snapshot_version', i.snap_v, 'stream_version', b.after)::text)
        ELSE b.after - i.n
    END AS v
    FROM input i JOIN bumped b ON b.stream_id = i.id
), stored AS (
    INSERT INTO events (stream_id, stream_type, version, event_id, event_type, schema_version, payload, metadata)
    SELECT c.id, c.ty, c.v + e.k, e.eid, e.ety, e.sv, e.p::json, e.m::json
    FROM unnest($8::int[], $9::bigint[], $10::uuid[], $11::text[], $12::int[], $13::text[], $14::text[])
         AS e(si, k, eid, ety, sv, p, m)
    JOIN checked c ON c.i = e.si
    ORDER BY e.si, e.k
), snapshot AS (
    INSERT INTO snapshots (stream_id, version, schema_version, state)
    SELECT c.id, c.snap_v, c.snap_s, c.snap_state::json FROM checked c WHERE c.snap_v IS NOT NULL
    ON CONFLICT (stream_id, version) DO UPDATE
        SET schema_version = excluded.schema_version, state = excluded.state, taken_at = now()
)
SELECT c.i, c.v + 1 FROM checked c
-- inbox
UNION ALL
SELECT refuse('AN005', 'message already processed', json_build_object('consumer', $17, 'message_id', $18)::text)::int, 0
WHERE NOT EXISTS (SELECT 1 FROM marked)
-- end

-- The event reads, as functions whose plans cannot go wrong on a young table: a plan cached while
-- `events` and `log` were nearly empty (a hash join over a sequential scan, say) would otherwise
-- stay in a connection's statement cache while the tables grow, and a 500-event read of the
-- global log measured 120 ms instead of 1.5 ms. Each read is index probes only, so the functions
-- forbid the other plans.
-- PL/pgSQL, not SQL: a SQL function with SET clauses is never inlined, and PostgreSQL before 18
-- parses and plans its body on every call (about 0.2 ms, ten times an empty stream's read);
-- PL/pgSQL keeps the plan for the session. Migration 9 replaced the SQL versions.
-- Every function returns (global_position, stream_id, stream_type, version, event_id, event_type,
-- schema_version, payload, metadata, recorded_at); global_position is NULL for an event not yet
-- sequenced (its appender died between commit and sequencing).

-- The global log after position `after`: the groups from the one holding `after + 1` on (at most
-- `max` of them: each holds at least one event), each group's events by version.
CREATE OR REPLACE FUNCTION read_log(after bigint, max bigint)
RETURNS TABLE (global_position bigint, stream_id text, stream_type text, version bigint, event_id uuid, event_type text,
               schema_version integer, payload text, metadata text, recorded_at timestamptz)
LANGUAGE plpgsql STABLE
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT g.first_position + (e.version - g.first_version), e.stream_id, e.stream_type, e.version, e.event_id,
           e.event_type, e.schema_version, e.payload::text, e.metadata::text, e.recorded_at
    FROM (SELECT l.first_position, l.stream_id, l.first_version, l.count FROM log l
          WHERE l.first_position >= coalesce((SELECT l2.first_position FROM log l2
                WHERE l2.first_position <= after + 1 ORDER BY l2.first_position DESC LIMIT 1), 1)
          ORDER BY l.first_position LIMIT max) g
    CROSS JOIN LATERAL (SELECT * FROM events x WHERE x.stream_id = g.stream_id
          AND x.version >= g.first_version AND x.version < g.first_version + g.count) e
    WHERE g.first_position + (e.version - g.first_version) > after
    ORDER BY g.first_position, e.version LIMIT max
    ;
END
$$;

-- A stream's events from version `from_v` on, oldest first.
CREATE OR REPLACE FUNCTION read_stream_forwards(stream text, from_v bigint, max bigint)
RETURNS TABLE (global_position bigint, stream_id text, stream_type text, version bigint, event_id uuid, event_type text,
               schema_version integer, payload text, metadata text, recorded_at timestamptz)
LANGUAGE plpgsql STABLE
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT (SELECT CASE WHEN e.version < g.first_version + g.count THEN g.first_position + (e.version - g.first_version) END
            FROM log g WHERE g.stream_id = e.stream_id AND g.first_version <= e.version
            ORDER BY g.first_version DESC LIMIT 1),
           e.stream_id, e.stream_type, e.version, e.event_id, e.event_type, e.schema_version,
           e.payload::text, e.metadata::text, e.recorded_at
    FROM events e WHERE e.stream_id = stream AND e.version >= from_v ORDER BY e.version LIMIT max
    ;
END
$$;

-- A stream's events up to version `to_v`, newest first.
CREATE OR REPLACE FUNCTION read_stream_backwards(stream text, to_v bigint, max bigint)
RETURNS TABLE (global_position bigint, stream_id text, stream_type text, version bigint, event_id uuid, event_type text,
               schema_version integer, payload text, metadata text, recorded_at timestamptz)
LANGUAGE plpgsql STABLE
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT (SELECT CASE WHEN e.version < g.first_version + g.count THEN g.first_position + (e.version - g.first_version) END
            FROM log g WHERE g.stream_id = e.stream_id AND g.first_version <= e.version
            ORDER BY g.first_version DESC LIMIT 1),
           e.stream_id, e.stream_type, e.version, e.event_id, e.event_type, e.schema_version,
           e.payload::text, e.metadata::text, e.recorded_at
    FROM events e WHERE e.stream_id = stream AND e.version <= to_v ORDER BY e.version DESC LIMIT max
    ;
END
$$;

-- Since migration 14 the client reads a stream with these two, sent together in one round trip:
-- the events without their positions, and the stream's `log` groups over the same versions, from
-- which it computes each event's position. The functions above look up an event's group once per
-- event (1 000 index probes of `log` for a 1 000-event stream: 11–13 ms against 2–3 ms for the
-- bare SELECT); this is one range scan of `log`'s (stream_id, first_version) index.

-- A stream's events from version `from_v` on (oldest first), `max` at most, position NULL.
CREATE OR REPLACE FUNCTION stream_events_forwards(stream text, from_v bigint, max bigint)
RETURNS TABLE (global_position bigint, stream_id text, stream_type text, version bigint, event_id uuid, event_type text,
               schema_version integer, payload text, metadata text, recorded_at timestamptz)
LANGUAGE plpgsql STABLE
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT NULL::bigint, e.stream_id, e.stream_type, e.version, e.event_id, e.event_type, e.schema_version,
           e.payload::text, e.metadata::text, e.recorded_at
    FROM events e WHERE e.stream_id = stream AND e.version >= from_v ORDER BY e.version LIMIT max
    ;
END
$$;

-- A stream's events up to version `to_v` (newest first), `max` at most, position NULL.
CREATE OR REPLACE FUNCTION stream_events_backwards(stream text, to_v bigint, max bigint)
RETURNS TABLE (global_position bigint, stream_id text, stream_type text, version bigint, event_id uuid, event_type text,
               schema_version integer, payload text, metadata text, recorded_at timestamptz)
LANGUAGE plpgsql STABLE
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT NULL::bigint, e.stream_id, e.stream_type, e.version, e.event_id, e.event_type, e.schema_version,
           e.payload::text, e.metadata::text, e.recorded_at
    FROM events e WHERE e.stream_id = stream AND e.version <= to_v ORDER BY e.version DESC LIMIT max
    ;
END
$$;

-- The `log` groups of a stream that hold versions from `lo` to `hi`: the group holding `lo` (if
-- any) and every group starting after it up to `hi`, by first version.
CREATE OR REPLACE FUNCTION stream_groups(stream text, lo bigint, hi bigint)
RETURNS TABLE (first_position bigint, first_version bigint, count integer)
LANGUAGE plpgsql STABLE
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    (SELECT g.first_position, g.first_version, g.count FROM log g
     WHERE g.stream_id = stream AND g.first_version <= lo ORDER BY g.first_version DESC LIMIT 1)
    UNION ALL
    (SELECT g.first_position, g.first_version, g.count FROM log g
     WHERE g.stream_id = stream AND g.first_version > lo AND g.first_version <= hi ORDER BY g.first_version)
    ;
END
$$;

-- A stream's events from version $2 on (at most $3) as a fold needs them: version, type, schema
-- version and payload text, nothing else (the repository's load; the client decodes the payload
-- once, into the typed event). Unlike the reads above, a plain SQL function with no SET clause,
-- so PostgreSQL inlines it into the caller's statement: no plan per call and no tuplestore
-- (PL/pgSQL's RETURN QUERY copies every row once more: 0.53 ms against 0.28 ms on the server for
-- 1 000 events). Its plan cannot go bad on a young table: equality on the first column of
-- UNIQUE (stream_id, version) and ORDER BY its second is an index scan even when planned on an
-- empty table (test `the_fold_read_keeps_an_index_plan_made_on_an_empty_table`).
CREATE OR REPLACE FUNCTION stream_fold_events(stream text, from_v bigint, max bigint)
RETURNS TABLE (version bigint, event_type text, schema_version integer, payload text)
LANGUAGE sql STABLE AS $$
    SELECT e.version, e.event_type, e.schema_version, e.payload::text
    FROM events e WHERE e.stream_id = $1 AND e.version >= $2 ORDER BY e.version LIMIT $3
$$;

-- append_events(...): appends to one or more streams atomically (the function runs in one transaction).
-- Streams come as parallel arrays; stream i's events are e_*[s_first[i] .. s_first[i]+s_count[i]-1].
-- s_expected: -1 any, -2 no stream, -3 stream exists, n >= 0 exactly version n.
-- Refusals raise an error with its own SQLSTATE and the facts in DETAIL (field|field|…):
--   AN002 stream type mismatch (DETAIL: stream|requested|actual)
--   AN003 conflict (DETAIL: stream|expected|actual)
--   AN004 snapshot version mismatch (DETAIL: stream|snapshot version|stream version)
-- An event id already stored is a unique violation on events_event_id_key. The client tells an
-- idempotent retry from a real duplicate on these error paths only (annals::store::resolve_retry),
-- so a normal append costs no extra probe.
-- Returns one row per stream: its first new version.
CREATE FUNCTION append_events(
    s_ids text[], s_types text[], s_expected bigint[], s_first int[], s_count int[],
    snap_versions bigint[], snap_schemas int[], snap_states text[],
    e_ids uuid[], e_types text[], e_schemas int[], e_payloads text[], e_metadata text[]
) RETURNS TABLE (stream_index int, first_version bigint) LANGUAGE plpgsql AS $$
DECLARE
    i int;
    cur_v bigint;
    cur_t text;
    versions bigint[];
    types text[];
    expected bigint;
    n bigint;
    lock_order int[];
BEGIN
    -- Lock and bump every stream row (creating missing ones) in stream-id order, so two
    -- multi-stream appends can never wait on each other in a cycle. A refusal below rolls the
    -- bump back with everything else.
    IF cardinality(s_ids) = 1 THEN
        lock_order := ARRAY[1];
    ELSE
        SELECT coalesce(array_agg(t.o::int ORDER BY t.id), '{}') INTO lock_order
          FROM unnest(s_ids) WITH ORDINALITY AS t(id, o);
    END IF;
    FOREACH i IN ARRAY lock_order LOOP
        UPDATE streams s SET version = s.version + s_count[i], updated_at = now()
            WHERE s.stream_id = s_ids[i]
            RETURNING s.version - s_count[i], s.stream_type INTO cur_v, cur_t;
        IF NOT FOUND THEN
            INSERT INTO streams (stream_id, stream_type, version) VALUES (s_ids[i], s_types[i], s_count[i])
                ON CONFLICT DO NOTHING
                RETURNING 0, stream_type INTO cur_v, cur_t;
            IF NOT FOUND THEN
                -- Another append created it meanwhile (and has committed): bump it now.
                UPDATE streams s SET version = s.version + s_count[i], updated_at = now()
                    WHERE s.stream_id = s_ids[i]
                    RETURNING s.version - s_count[i], s.stream_type INTO cur_v, cur_t;
            END IF;
        END IF;
        versions[i] := cur_v;
        types[i] := cur_t;
    END LOOP;
    FOR i IN 1 .. cardinality(s_ids) LOOP
        cur_v := versions[i];
        cur_t := types[i];
        IF cur_t <> s_types[i] THEN
            RAISE EXCEPTION USING ERRCODE = 'AN002', MESSAGE = 'stream type mismatch',
                DETAIL = s_ids[i] || '|' || s_types[i] || '|' || cur_t;
        END IF;
        expected := s_expected[i];
        IF NOT (expected = -1 OR (expected = -2 AND cur_v = 0) OR (expected = -3 AND cur_v > 0)
                OR (expected >= 0 AND cur_v = expected)) THEN
            RAISE EXCEPTION USING ERRCODE = 'AN003', MESSAGE = 'wrong expected version',
                DETAIL = s_ids[i] || '|' || expected || '|' || cur_v;
        END IF;
        n := s_count[i];
        IF snap_versions[i] IS NOT NULL AND snap_versions[i] <> cur_v + n THEN
            RAISE EXCEPTION USING ERRCODE = 'AN004', MESSAGE = 'snapshot version mismatch',
                DETAIL = s_ids[i] || '|' || snap_versions[i] || '|' || (cur_v + n);
        END IF;
        -- unnest over array slices: subscripting each array per row would copy it per row.
        INSERT INTO events (stream_id, stream_type, version, event_id, event_type, schema_version, payload, metadata)
        SELECT s_ids[i], s_types[i], cur_v + t.k, t.id, t.ty, t.sv, t.p::json, t.m::json
        FROM unnest(e_ids[s_first[i] : s_first[i] + n - 1], e_types[s_first[i] : s_first[i] + n - 1],
                    e_schemas[s_first[i] : s_first[i] + n - 1], e_payloads[s_first[i] : s_first[i] + n - 1],
                    e_metadata[s_first[i] : s_first[i] + n - 1])
             WITH ORDINALITY AS t(id, ty, sv, p, m, k)
        ORDER BY t.k;
        IF snap_versions[i] IS NOT NULL THEN
            INSERT INTO snapshots (stream_id, version, schema_version, state)
            VALUES (s_ids[i], snap_versions[i], snap_schemas[i], snap_states[i]::json)
            ON CONFLICT (stream_id, version) DO UPDATE
                SET schema_version = excluded.schema_version, state = excluded.state, taken_at = now();
        END IF;
        stream_index := i;
        first_version := cur_v + 1;
        RETURN NEXT;
    END LOOP;
END
$$;

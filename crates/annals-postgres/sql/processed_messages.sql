-- processed_messages: the inbox. A consumer records a message id in the same transaction as the
-- events it appends for it, so a redelivered message is recognised and has no second effect.
CREATE TABLE processed_messages (
    consumer     text        NOT NULL,
    message_id   uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);

-- append_events_once(consumer, message_id, …append_events' arguments…): append_events, guarded by
-- the inbox in the same transaction. A message already processed by this consumer raises AN005
-- and appends nothing.
CREATE FUNCTION append_events_once(
    consumer text, message_id uuid,
    s_ids text[], s_types text[], s_expected bigint[], s_first int[], s_count int[],
    snap_versions bigint[], snap_schemas int[], snap_states text[],
    e_ids uuid[], e_types text[], e_schemas int[], e_payloads text[], e_metadata text[]
) RETURNS TABLE (stream_index int, first_version bigint) LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO processed_messages (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'AN005', MESSAGE = 'message already processed',
            DETAIL = $1 || '|' || $2;
    END IF;
    RETURN QUERY SELECT * FROM append_events(s_ids, s_types, s_expected, s_first, s_count,
        snap_versions, snap_schemas, snap_states, e_ids, e_types, e_schemas, e_payloads, e_metadata);
END
$$;

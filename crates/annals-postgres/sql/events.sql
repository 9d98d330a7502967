-- events: one row per event, never updated or deleted in place.
-- There is no row id: an identity value is taken at insert but becomes visible at commit, so
-- ordering readers by it would skip late committers (the global-ordering trap), and nothing else
-- needs one (an index fewer per event; migration 3 drops the `id` of schemas made before).
-- Global positions live in `log` (log.sql), assigned by the sequencer.
-- `tx` is the inserting transaction's id; the sequencer finds new rows by it (the transactions its
-- last run did not see: see positions.sql).
-- UNIQUE(stream_id, version) makes optimistic locking structural; UNIQUE(event_id) makes appends
-- idempotent.
CREATE TABLE events (
    tx             xid8        NOT NULL DEFAULT pg_current_xact_id(),
    stream_id      text        NOT NULL,
    stream_type    text        NOT NULL,
    version        bigint      NOT NULL CHECK (version > 0),
    event_id       uuid        NOT NULL UNIQUE,
    event_type     text        NOT NULL,
    schema_version integer     NOT NULL,
    payload        json        NOT NULL,
    metadata       json        NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, version)
);
CREATE INDEX events_tx ON events (tx);

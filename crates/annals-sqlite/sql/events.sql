-- events: the log. One row per event, never updated or deleted in place.
-- global_position is the rowid: SQLite has one writer, so positions commit in order and a reader
-- following the log never skips one. AUTOINCREMENT keeps a purged position from being reused.
-- UNIQUE(stream_id, version) makes optimistic locking structural; UNIQUE(event_id) makes
-- appends idempotent.
CREATE TABLE events (
    global_position INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id       TEXT    NOT NULL,
    stream_type     TEXT    NOT NULL,
    version         INTEGER NOT NULL CHECK (version > 0),
    event_id        BLOB    NOT NULL UNIQUE CHECK (length(event_id) = 16),
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL,
    payload         TEXT    NOT NULL,   -- JSON
    metadata        TEXT    NOT NULL,   -- JSON: causation_id, correlation_id, actor, tenant, …
    recorded_at     INTEGER NOT NULL,   -- microseconds since the Unix epoch
    UNIQUE (stream_id, version)
);

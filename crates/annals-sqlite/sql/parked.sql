-- parked: messages a consumer gave up on after its retries (dead letters), with the last error,
-- until an operator retries or skips them. Rows are kept after that, for the record.
CREATE TABLE parked (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    consumer   TEXT    NOT NULL,
    position   INTEGER NOT NULL,
    event_id   BLOB    NOT NULL,
    stream_id  TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    error      TEXT    NOT NULL,
    attempts   INTEGER NOT NULL,
    parked_at  INTEGER NOT NULL,
    state      TEXT    NOT NULL DEFAULT 'parked'
               CHECK (state IN ('parked', 'retry', 'skipped', 'resolved'))
);
CREATE INDEX parked_by_consumer ON parked (consumer, id);

-- snapshots: aggregate state at a stream version, written in the same transaction as the append
-- that reached that version. A snapshot whose schema_version is not the code's is ignored.
CREATE TABLE snapshots (
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    schema_version INTEGER NOT NULL,
    state          TEXT    NOT NULL,   -- JSON
    taken_at       INTEGER NOT NULL,
    PRIMARY KEY (stream_id, version)
) WITHOUT ROWID;

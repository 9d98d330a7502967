-- checkpoints: each consumer's position in the global log (the last position it handled).
CREATE TABLE checkpoints (
    name       TEXT    PRIMARY KEY,
    position   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL   -- microseconds since the Unix epoch
) WITHOUT ROWID;

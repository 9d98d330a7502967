-- streams: one row per stream, for fast version checks and listings.
CREATE TABLE streams (
    stream_id   TEXT    PRIMARY KEY,
    stream_type TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,   -- microseconds since the Unix epoch
    updated_at  INTEGER NOT NULL,
    deleted_at  INTEGER             -- soft delete (NULL = live)
) WITHOUT ROWID;

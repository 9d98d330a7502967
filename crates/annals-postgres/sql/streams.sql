-- streams: one row per stream. Appends lock the row (SELECT … FOR UPDATE), so appends to one
-- stream serialize while appends to different streams run in parallel.
CREATE TABLE streams (
    stream_id   text        PRIMARY KEY,
    stream_type text        NOT NULL,
    version     bigint      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz            -- soft delete (NULL = live)
);

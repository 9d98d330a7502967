-- streams: one row per stream. Appends lock the row (SELECT … FOR UPDATE), so appends to one
-- stream serialize while appends to different streams run in parallel.
-- deleted_version: the version of the stream's deletion event (StreamDeleted) while it is the
-- stream's last event, NULL for a live stream (migration 12). Appends to a deleted stream are
-- refused (AN006) unless they start with StreamRestored.
CREATE TABLE streams (
    stream_id   text        PRIMARY KEY,
    stream_type text        NOT NULL,
    version     bigint      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz,           -- unused (before migration 12: meant for soft delete)
    deleted_version bigint             -- soft delete: the deletion's version (NULL = live)
);

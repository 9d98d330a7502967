-- snapshots: aggregate state at a stream version, written in the same transaction as the append
-- that reached that version. A snapshot whose schema_version is not the code's is ignored.
CREATE TABLE snapshots (
    stream_id      text        NOT NULL,
    version        bigint      NOT NULL,
    schema_version integer     NOT NULL,
    state          json        NOT NULL,
    taken_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_id, version)
);

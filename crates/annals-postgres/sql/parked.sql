-- parked: messages a consumer gave up on after its retries (dead letters), with the last error,
-- until an operator retries or skips them. Rows are kept after that, for the record.
CREATE TABLE parked (
    id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer  text        NOT NULL,
    position  bigint      NOT NULL,
    event_id  uuid        NOT NULL,
    stream_id text        NOT NULL,
    version   bigint      NOT NULL,
    error     text        NOT NULL,
    attempts  integer     NOT NULL,
    parked_at timestamptz NOT NULL DEFAULT now(),
    state     text        NOT NULL DEFAULT 'parked'
              CHECK (state IN ('parked', 'retry', 'skipped', 'resolved'))
);
CREATE INDEX parked_by_consumer ON parked (consumer, id);

-- health: one row per long-running component (a consumer, a relay) that is failing now: retrying
-- a transient failure, or stopped on one no retry fixes; the row goes when it works again.
-- `annals status` shows them with the last error and since when (annals::consume::health).
CREATE TABLE IF NOT EXISTS health (
    component  text        PRIMARY KEY,
    state      text        NOT NULL,   -- retrying | stopped
    kind       text,                   -- the last error's kind (unavailable, misconfigured, ...)
    error      text        NOT NULL,
    since      timestamptz NOT NULL,   -- when this run of failures began
    attempts   bigint      NOT NULL,
    updated_at timestamptz NOT NULL
);

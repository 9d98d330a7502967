-- health: one row per long-running component (a consumer, a relay) that is failing now: retrying
-- a transient failure, or stopped on one no retry fixes; the row goes when it works again.
-- `annals status` shows them with the last error and since when (annals::consume::health).
CREATE TABLE IF NOT EXISTS health (
    component  TEXT        PRIMARY KEY,
    state      TEXT        NOT NULL,   -- retrying | stopped
    kind       TEXT,                   -- the last error's kind (unavailable, misconfigured, ...)
    error      TEXT        NOT NULL,
    since      INTEGER     NOT NULL,   -- µs since 1970: when this run of failures began
    attempts   INTEGER     NOT NULL,
    updated_at INTEGER     NOT NULL
) WITHOUT ROWID;

-- leases: who does a one-at-a-time job (a relay) until when. A holder renews its lease before it
-- expires; another process takes it over once it has expired (annals::relay::Leases).
CREATE TABLE leases (
    name       TEXT    PRIMARY KEY,
    holder     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL   -- microseconds since the Unix epoch
) WITHOUT ROWID;

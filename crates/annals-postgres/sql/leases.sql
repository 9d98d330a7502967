-- leases: who does a one-at-a-time job (a relay) until when, by the server's clock. A holder
-- renews its lease before it expires; another process takes it over once it has expired
-- (annals::relay::Leases).
CREATE TABLE IF NOT EXISTS leases (
    name       text        PRIMARY KEY,
    holder     text        NOT NULL,
    expires_at timestamptz NOT NULL
);

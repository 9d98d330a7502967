//! What else on the server weighs on the store: the oldest transaction open in its database.
//!
//! A transaction that stays open (a client idle inside `BEGIN`, a long report) keeps every row
//! version written since it began from being pruned. The sequencer no longer rereads anything
//! because of it (`sql/positions.sql`), but each append updates its stream's row, so a hot
//! stream's versions pile up and its appends slow down until the transaction ends (16 appenders
//! × 10 events in the bench: 0.65× raw with one open, 0.75× without). `annals status` shows it.

use std::time::Duration;

use annals::StoreError;

use crate::PostgresStore;

/// A transaction open in the store's database, holding back the cleanup of old row versions.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenTransaction {
    /// The backend's process id (`pg_terminate_backend(pid)` ends it).
    pub pid: i32,
    /// What the backend is doing: `active`, `idle in transaction`, …
    pub state: String,
    /// How long the transaction has been open.
    pub age: Duration,
    /// The start of its current or last statement.
    pub query: String,
}

/// The oldest transaction open in the store's database that holds a transaction id or a
/// snapshot (so keeps row versions from being pruned), other than the one asking; `None` if none.
pub async fn oldest_open_transaction(store: &PostgresStore) -> Result<Option<OpenTransaction>, StoreError> {
    let client = store.client().await?;
    let row = client
        .query_opt(
            "SELECT pid, coalesce(state, ''), extract(epoch FROM clock_timestamp() - xact_start)::float8,
                    left(regexp_replace(query, '\\s+', ' ', 'g'), 120)
             FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
               AND (backend_xid IS NOT NULL OR backend_xmin IS NOT NULL)
             ORDER BY xact_start LIMIT 1",
            &[],
        )
        .await
        .map_err(crate::error::db)?;
    Ok(row.map(|r| OpenTransaction {
        pid: r.get(0),
        state: r.get(1),
        age: Duration::from_secs_f64(r.get::<_, f64>(2).max(0.0)),
        query: r.get(3),
    }))
}

//! The store chosen at run time from `--db`: an enum that dispatches by `match`.

use std::time::Duration;

use annals::consume::{Checkpoint, Checkpoints, DeadLetters, HealthReport, HealthReports, Parked, ParkedState};
use annals::{
    AppendOutcome, EventStore, MemoryStore, ReadStream, RecordedEvent, Snapshot, StoreError, StreamAppend, StreamId,
    StreamInfo,
};
use annals_postgres::{PostgresOptions, PostgresStore};
use annals_sqlite::{SqliteOptions, SqliteStore};

/// `db` with the password of a URL (`scheme://user:password@host…`) replaced by `***`: what every
/// message, hint and log line shows of a store.
pub fn redact(db: &str) -> String {
    let Some((scheme, rest)) = db.split_once("://") else {
        return db.to_owned();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return db.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => db.to_owned(),
    }
}

/// What a command needs of the store it opens. No command but [`Access::Create`] makes a store:
/// a typo in `--db` or `--pg-schema` is an error naming the store, not a new empty one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reading only: the store must exist; SQLite is opened read-only (no lock, no migration: it
    /// never waits on a writer, and reads a file it may not write).
    Read,
    /// Reading and writing an existing store (upgraded to this version's schema if older).
    Write,
    /// Writing, creating the store if there is none (saying so on stderr): `init`, `append`, the
    /// demos, services.
    Create,
    /// No store at all (`completions`, `man`).
    None,
}

/// Every backend the CLI can open.
#[derive(Clone)]
pub enum AnyStore {
    /// A SQLite file (the default).
    Sqlite(SqliteStore),
    /// An in-memory store that lives as long as the command (`--db memory:`).
    Memory(std::sync::Arc<MemoryStore>),
    /// A PostgreSQL database (`--db postgres://…`).
    Postgres(PostgresStore),
}

impl AnyStore {
    /// Opens what `db` names: `memory:`, a `postgres://` URL (tables in `pg_schema`) or a SQLite
    /// file path.
    /// The errors name the file or server (never a URL's password) and have the store's kind.
    pub async fn open(db: &str, pg_schema: &str, access: Access) -> anyhow::Result<Self> {
        if db == "memory:" {
            return Ok(Self::Memory(Default::default()));
        }
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            let options = PostgresOptions {
                schema: pg_schema.to_owned(),
                create: access == Access::Create,
                read_only: access == Access::Read,
                ..PostgresOptions::default()
            };
            let store = PostgresStore::connect_with(db, options).await?;
            if store.created() {
                eprintln!(
                    "note: created a new annals store in schema `{pg_schema}` of {}",
                    redact(db)
                );
            }
            return Ok(Self::Postgres(store));
        }
        if db.trim().is_empty() {
            return Err(annals::Failure::misconfigured(
                "--db is empty: give a SQLite file path, a postgres:// URL or memory:",
            )
            .into());
        }
        if let Some((scheme, _)) = db.split_once("://") {
            return Err(annals::Failure::misconfigured(format!(
                "--db: annals keeps events in a SQLite file (a path), PostgreSQL (postgres://…) or memory:, \
                 not {scheme}://"
            ))
            .into());
        }
        let path = std::path::Path::new(db);
        let new = !path.exists();
        let options = SqliteOptions {
            create: access == Access::Create,
            read_only: access == Access::Read,
            ..SqliteOptions::default()
        };
        let store = SqliteStore::open_with(db, options).await?;
        if new {
            eprintln!("note: created a new annals store at {db}");
        }
        Ok(Self::Sqlite(store))
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $e,
            AnyStore::Memory($s) => $e,
            AnyStore::Postgres($s) => $e,
        }
    };
}

impl annals::privacy::KeyStore for AnyStore {
    async fn load_key(&self, subject: &str) -> Result<Option<annals::privacy::WrappedKey>, StoreError> {
        dispatch!(self, s => s.load_key(subject).await)
    }
    async fn create_key(
        &self,
        subject: &str,
        key: annals::privacy::WrappedKey,
    ) -> Result<annals::privacy::WrappedKey, StoreError> {
        dispatch!(self, s => s.create_key(subject, key).await)
    }
    async fn forget_key(&self, subject: &str) -> Result<bool, StoreError> {
        dispatch!(self, s => s.forget_key(subject).await)
    }
    async fn list_keys(&self) -> Result<Vec<(String, annals::privacy::WrappedKey)>, StoreError> {
        dispatch!(self, s => s.list_keys().await)
    }
    async fn replace_key(&self, subject: &str, key: annals::privacy::WrappedKey) -> Result<(), StoreError> {
        dispatch!(self, s => s.replace_key(subject, key).await)
    }
}

impl annals::privacy::AppendWithKeys for AnyStore {
    async fn append_with_keys(
        &self,
        keys: Vec<(String, annals::privacy::WrappedKey)>,
        appends: Vec<StreamAppend>,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        dispatch!(self, s => s.append_with_keys(keys, appends).await)
    }
}

impl annals::purge::Purge for AnyStore {
    async fn purge_stream(&self, stream: &StreamId) -> Result<u64, StoreError> {
        dispatch!(self, s => s.purge_stream(stream).await)
    }
}

impl annals::consume::Inbox for AnyStore {
    async fn append_once(
        &self,
        consumer: &str,
        message_id: uuid::Uuid,
        appends: Vec<StreamAppend>,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        dispatch!(self, s => s.append_once(consumer, message_id, appends).await)
    }
}

impl EventStore for AnyStore {
    async fn append(&self, appends: Vec<StreamAppend>) -> Result<AppendOutcome, StoreError> {
        dispatch!(self, s => s.append(appends).await)
    }
    async fn read_stream(&self, stream: &StreamId, read: ReadStream) -> Result<Vec<RecordedEvent>, StoreError> {
        dispatch!(self, s => s.read_stream(stream, read).await)
    }
    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        dispatch!(self, s => s.read_all(after, limit).await)
    }
    async fn wait_for_new(&self, after: u64, timeout: Duration) -> Result<u64, StoreError> {
        dispatch!(self, s => s.wait_for_new(after, timeout).await)
    }
    async fn load_snapshot(
        &self,
        stream: &StreamId,
        at_or_before: Option<u64>,
    ) -> Result<Option<Snapshot>, StoreError> {
        dispatch!(self, s => s.load_snapshot(stream, at_or_before).await)
    }
    async fn list_streams(&self, after: Option<&StreamId>, limit: usize) -> Result<Vec<StreamInfo>, StoreError> {
        dispatch!(self, s => s.list_streams(after, limit).await)
    }
    async fn read_from_snapshot(
        &self,
        stream: &StreamId,
        schema_version: u32,
        until: Option<u64>,
        limit: usize,
    ) -> Result<(Option<Snapshot>, Vec<RecordedEvent>), StoreError> {
        dispatch!(self, s => s.read_from_snapshot(stream, schema_version, until, limit).await)
    }
    async fn head_position(&self) -> Result<u64, StoreError> {
        dispatch!(self, s => s.head_position().await)
    }
    async fn read_for_fold<A, F>(
        &self,
        stream: &StreamId,
        from: u64,
        limit: usize,
        acc: A,
        step: F,
    ) -> Result<(A, usize), StoreError>
    where
        A: Send + 'static,
        F: FnMut(&mut A, annals::FoldEvent<'_>) + Send + 'static,
    {
        dispatch!(self, s => s.read_for_fold(stream, from, limit, acc, step).await)
    }
}

impl Checkpoints for AnyStore {
    async fn load_checkpoint(&self, name: &str) -> Result<Option<u64>, StoreError> {
        dispatch!(self, s => s.load_checkpoint(name).await)
    }
    async fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), StoreError> {
        dispatch!(self, s => s.save_checkpoint(name, position).await)
    }
    async fn list_checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        dispatch!(self, s => s.list_checkpoints().await)
    }
}

impl annals::relay::Leases for AnyStore {
    async fn hold_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        dispatch!(self, s => s.hold_lease(name, holder, ttl).await)
    }
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.release_lease(name, holder).await)
    }
}

impl HealthReports for AnyStore {
    async fn set_health(&self, report: &HealthReport) -> Result<(), StoreError> {
        dispatch!(self, s => s.set_health(report).await)
    }
    async fn clear_health(&self, component: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.clear_health(component).await)
    }
    async fn list_health(&self) -> Result<Vec<HealthReport>, StoreError> {
        dispatch!(self, s => s.list_health().await)
    }
}

impl DeadLetters for AnyStore {
    async fn park(&self, consumer: &str, event: &RecordedEvent, error: &str, attempts: u32) -> Result<(), StoreError> {
        dispatch!(self, s => s.park(consumer, event, error, attempts).await)
    }
    async fn list_parked(&self, consumer: Option<&str>) -> Result<Vec<Parked>, StoreError> {
        dispatch!(self, s => s.list_parked(consumer).await)
    }
    async fn set_parked(&self, id: u64, state: ParkedState, error: Option<&str>) -> Result<bool, StoreError> {
        dispatch!(self, s => s.set_parked(id, state, error).await)
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_show() {
        assert_eq!(redact("postgres://u:s3cret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgresql://u:p:q@h/db"), "postgresql://u:***@h/db");
        assert_eq!(redact("./annals.db"), "./annals.db");
        assert_eq!(redact("memory:"), "memory:");
    }
}

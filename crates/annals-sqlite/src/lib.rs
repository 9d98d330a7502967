//! # annals-sqlite — the embedded default event store
//!
//! One SQLite file in WAL mode. All appends go through a single writer connection that
//! group-commits appends arriving together (one transaction, one fsync, each append with its own
//! expected-version check and result), so concurrent appenders never see "database is locked".
//! Reads run on a small pool of read connections beside the writer.
//!
//! Durability: `synchronous=FULL` by default — a returned append survives power loss. Choose
//! [`Synchronous::Normal`] to trade the last transactions before a power cut (never corruption)
//! for speed.
//!
//! Waking: readers in the same process are woken by the writer on commit. Appends made by other
//! processes on the same file are noticed by a cheap head-position check every 200 ms while a
//! reader waits.

pub mod consume;
mod error;
pub mod projection;
mod read;
pub mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use annals::event::{PayloadOpener, from_micros};
use annals::{
    AppendOutcome, Direction, EventStore, FoldEvent, ReadStream, RecordedEvent, Snapshot, StoreError, StreamAppend,
    StreamId, StreamInfo,
};
use read::{LOG_AFTER, ReaderPool, STREAM_BACKWARDS, STREAM_FORWARDS, query_events};
pub use rusqlite;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{oneshot, watch};

/// How hard SQLite works to make a commit durable (`PRAGMA synchronous`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// fsync on every commit: a returned append survives power loss (the default).
    #[default]
    Full,
    /// In WAL mode: durable across application crashes; the last commits may be lost on power loss.
    Normal,
    /// No fsync at all: for throwaway data and tests only.
    Off,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
            Self::Off => "OFF",
        }
    }
}

/// Options for [`SqliteStore::open_with`].
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// Durability of commits (default [`Synchronous::Full`]).
    pub synchronous: Synchronous,
    /// Most appends group-committed in one transaction (default 512).
    pub max_group: usize,
    /// Create the file if it does not exist (default true). Without it a missing file is
    /// [`NotFound`](annals::ErrorKind::NotFound): a typo in a path is not a new, empty store.
    pub create: bool,
    /// Open for reading only (default false): no writer connection, no migration, no lock; reads
    /// never wait on another process's writes, and a file the process may not write is read.
    /// Appends fail as misconfigured. A store that needs a migration is refused.
    pub read_only: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Full,
            max_group: 512,
            create: true,
            read_only: false,
        }
    }
}

struct Shared {
    path: PathBuf,
    /// The one write connection; `None` for a store opened read-only.
    writer: Option<Arc<writer::Writer>>,
    readers: ReaderPool,
    head: watch::Sender<u64>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(w) = &self.writer {
            w.checkpoint();
        }
    }
}

/// The SQLite event store. Cheap to clone (all clones share one writer).
#[derive(Clone)]
pub struct SqliteStore {
    shared: Arc<Shared>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` with default options.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::default()).await
    }

    /// Opens the store at `path` as `options` say (creating it if allowed and missing), after
    /// checking that the file is annals' (a file of another application is refused untouched) and
    /// not written by a newer annals; applies pending migrations unless read-only.
    pub async fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        let read_only = options.read_only;
        let opened = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            if p.is_dir() {
                return Err(StoreError::misconfigured(
                    format!("{} is a directory, not a SQLite file", p.display()),
                    None,
                ));
            }
            if !options.create && !p.exists() {
                return Err(StoreError::NotFound {
                    what: format!(
                        "no annals store at {}: no such file (`annals init` creates one)",
                        p.display()
                    ),
                });
            }
            if options.read_only {
                let conn = Connection::open_with_flags(
                    &p,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
                        | rusqlite::OpenFlags::SQLITE_OPEN_URI,
                )
                .map_err(error::db)?;
                schema::check(&conn, &p, true)?;
                let head = read_head(&conn)?;
                return Ok((None, head, options));
            }
            let mut conn = Connection::open(&p).map_err(error::db)?;
            // Before anything is written: is this an annals store, and not a newer one?
            schema::check(&conn, &p, false)?;
            configure_writer(&conn, &options).map_err(error::db)?;
            schema::migrate(&mut conn).map_err(error::db)?;
            let head = read_head(&conn)?;
            Ok((Some(conn), head, options))
        })
        .await
        .map_err(StoreError::backend)?
        .map_err(|e| error::opening(e, &path))?;
        let (conn, head, options) = opened;
        let head = watch::Sender::new(head);
        let writer = conn.map(|conn| Arc::new(writer::Writer::new(conn, head.clone(), options.max_group)));
        Ok(Self {
            shared: Arc::new(Shared {
                readers: ReaderPool::new(path.clone(), read_only),
                path,
                writer,
                head,
            }),
        })
    }

    /// The writer, or why there is none.
    fn writer(&self) -> Result<&Arc<writer::Writer>, StoreError> {
        self.shared.writer.as_ref().ok_or_else(|| {
            StoreError::misconfigured(
                format!(
                    "{} was opened read-only: it takes no writes",
                    self.shared.path.display()
                ),
                None,
            )
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        // On a multi-threaded runtime the query runs in place (no hand-off to another thread);
        // elsewhere on the blocking pool.
        if writer::on_multi_thread_runtime() {
            return tokio::task::block_in_place(|| self.shared.readers.with(f));
        }
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || shared.readers.with(f))
            .await
            .map_err(StoreError::backend)?
    }

    /// Queues an append (with an inbox mark) for the writer and waits for its result.
    pub(crate) async fn submit(
        &self,
        appends: Vec<StreamAppend>,
        inbox: Option<(String, uuid::Uuid)>,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        self.submit_job(appends, inbox, Vec::new()).await
    }

    /// [`submit`](Self::submit) with new subjects' keys to store in the same transaction.
    pub(crate) async fn submit_job(
        &self,
        appends: Vec<StreamAppend>,
        inbox: Option<(String, uuid::Uuid)>,
        keys: Vec<(String, annals::privacy::WrappedKey)>,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let writer = self.writer()?;
        writer.submit(writer::Job {
            appends,
            inbox,
            keys,
            reply,
        });
        writer.lead_from_task().await;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` in a write transaction of its own on the store's writer connection (committed if
    /// `f` returns `Ok`, rolled back otherwise): for read models and tables that must commit
    /// atomically with a checkpoint. Appends wait meanwhile, so keep `f` short.
    pub async fn write<T: Send + 'static, E: From<StoreError> + Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        let writer = self.writer().map_err(E::from)?.clone();
        if writer::on_multi_thread_runtime() {
            return tokio::task::block_in_place(|| writer.exclusive(f));
        }
        tokio::task::spawn_blocking(move || writer.exclusive(f))
            .await
            .map_err(|e| E::from(StoreError::backend(e)))?
    }

    /// Runs `f` on a read connection (for read models in the same file).
    pub async fn read_with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.read(f).await
    }

    /// The last committed global position, read from the database (sees other processes' appends).
    async fn db_head(&self) -> Result<u64, StoreError> {
        self.read(read_head).await
    }
}

/// Sets the writer connection up: WAL, the durability asked for, a busy timeout.
fn configure_writer(conn: &Connection, options: &SqliteOptions) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {}; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
        options.synchronous.pragma()
    ))?;
    stable_plans(conn)
}

/// Moves the published head position forward to `to` (never back), waking waiters if it moved.
pub(crate) fn advance_head(head: &watch::Sender<u64>, to: u64) {
    head.send_if_modified(|h| {
        let moved = to > *h;
        *h = (*h).max(to);
        moved
    });
}

/// Turns on SQLite's query-planner stability guarantee. Our statements have one right plan (the
/// index); without it, the bundled SQLite (built with STAT4) re-prepares a cached statement on
/// every use, because rebinding a parameter compared with an indexed column marks it expired.
pub(crate) fn stable_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map(|_| ())
}

fn read_head(conn: &Connection) -> Result<u64, StoreError> {
    conn.prepare_cached("SELECT COALESCE(MAX(global_position), 0) FROM events")
        .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
        .map(|h| h as u64)
        .map_err(crate::error::db)
}

/// The newest snapshot of a stream at or before `until`, of `schema_version` if given.
fn snapshot_query(
    conn: &Connection,
    stream_id: StreamId,
    schema_version: Option<u32>,
    until: Option<u64>,
) -> Result<Option<Snapshot>, StoreError> {
    let bound = i64::try_from(until.unwrap_or(u64::MAX)).unwrap_or(i64::MAX);
    let row = conn
        .prepare_cached(
            "SELECT version, schema_version, state, taken_at FROM snapshots
             WHERE stream_id = ?1 AND version <= ?2 AND (?3 IS NULL OR schema_version = ?3)
             ORDER BY version DESC LIMIT 1",
        )
        .and_then(|mut s| {
            s.query_row(params![stream_id.as_str(), bound, schema_version], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .optional()
        })
        .map_err(crate::error::db)?;
    let Some((version, schema_version, state, taken_at)) = row else {
        return Ok(None);
    };
    // An unreadable snapshot is not fatal: the repository replays instead.
    let Ok(state) = serde_json::value::RawValue::from_string(state) else {
        return Ok(None);
    };
    Ok(Some(Snapshot {
        stream_id,
        version: version as u64,
        schema_version: u32::try_from(schema_version).unwrap_or(u32::MAX),
        state,
        taken_at: from_micros(taken_at),
    }))
}

impl SqliteStore {
    /// A stream's events, payloads through `open` if given.
    async fn read_stream_through(
        &self,
        stream: &StreamId,
        read: ReadStream,
        open: Option<PayloadOpener>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let stream = stream.to_string();
        let limit = i64::try_from(read.limit).unwrap_or(i64::MAX);
        let from = i64::try_from(read.from).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let sql = match read.direction {
                Direction::Forwards => STREAM_FORWARDS,
                Direction::Backwards => STREAM_BACKWARDS,
            };
            query_events(conn, sql, params![stream, from, limit], open.as_ref())
        })
        .await
    }

    /// The global log after `after`, payloads through `open` if given.
    async fn read_all_through(
        &self,
        after: u64,
        limit: usize,
        open: Option<PayloadOpener>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| query_events(conn, LOG_AFTER, params![after, limit], open.as_ref()))
            .await
    }
}

/// How often a waiting reader checks for appends made by other processes.
const CROSS_PROCESS_CHECK: Duration = Duration::from_millis(200);

impl EventStore for SqliteStore {
    async fn append(&self, appends: Vec<StreamAppend>) -> Result<AppendOutcome, StoreError> {
        annals::store::validate_append(&appends)?;
        self.submit(appends, None).await?.ok_or(StoreError::Closed)
    }

    async fn read_stream(&self, stream: &StreamId, read: ReadStream) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream_through(stream, read, None).await
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_all_through(after, limit, None).await
    }

    async fn read_for_fold<A, F>(
        &self,
        stream: &StreamId,
        from: u64,
        limit: usize,
        mut acc: A,
        step: F,
    ) -> Result<(A, usize), StoreError>
    where
        A: Send + 'static,
        F: FnMut(&mut A, FoldEvent<'_>) + Send + 'static,
    {
        let id = stream.to_string();
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| read::fold_events(conn, &id, from, limit, &mut acc, step).map(|read| (acc, read)))
            .await
    }

    async fn read_stream_opened(
        &self,
        stream: &StreamId,
        read: ReadStream,
        open: PayloadOpener,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream_through(stream, read, Some(open)).await
    }

    async fn read_all_opened(
        &self,
        after: u64,
        limit: usize,
        open: PayloadOpener,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_all_through(after, limit, Some(open)).await
    }

    async fn wait_for_new(&self, after: u64, timeout: Duration) -> Result<u64, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.shared.head.subscribe();
        loop {
            let known = *rx.borrow_and_update();
            if known > after {
                return Ok(known);
            }
            // Another process may have appended: ask the database.
            let head = self.db_head().await?;
            if head > known {
                advance_head(&self.shared.head, head);
            }
            let now = tokio::time::Instant::now();
            if head > after || now >= deadline {
                return Ok(head.max(known));
            }
            let nap = (deadline - now).min(CROSS_PROCESS_CHECK);
            let _ = tokio::time::timeout(nap, rx.changed()).await;
        }
    }

    async fn load_snapshot(
        &self,
        stream: &StreamId,
        at_or_before: Option<u64>,
    ) -> Result<Option<Snapshot>, StoreError> {
        let stream_id = stream.clone();
        self.read(move |conn| snapshot_query(conn, stream_id, None, at_or_before))
            .await
    }

    async fn read_from_snapshot(
        &self,
        stream: &StreamId,
        schema_version: u32,
        until: Option<u64>,
        limit: usize,
    ) -> Result<(Option<Snapshot>, Vec<RecordedEvent>), StoreError> {
        let stream_id = stream.clone();
        self.read(move |conn| {
            let snapshot = snapshot_query(conn, stream_id.clone(), Some(schema_version), until)?;
            let (from, limit) = annals::store::events_after_snapshot(snapshot.as_ref(), until, limit);
            let events = if limit == 0 {
                Vec::new()
            } else {
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                query_events(
                    conn,
                    STREAM_FORWARDS,
                    params![stream_id.as_str(), from as i64, limit],
                    None,
                )?
            };
            Ok((snapshot, events))
        })
        .await
    }

    async fn list_streams(&self, after: Option<&StreamId>, limit: usize) -> Result<Vec<StreamInfo>, StoreError> {
        let after = after.map(|a| a.to_string()).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT stream_id, stream_type, version, updated_at FROM streams
                     WHERE stream_id > ?1 AND deleted_at IS NULL ORDER BY stream_id LIMIT ?2",
                )
                .map_err(crate::error::db)?;
            let rows = stmt
                .query_map(params![after, limit], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })
                .map_err(crate::error::db)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, stream_type, version, updated_at) = row.map_err(crate::error::db)?;
                let stream_id = StreamId::new(id.clone()).map_err(|_| StoreError::Corrupt {
                    stream: id,
                    version: version as u64,
                    reason: "invalid stream id in the streams table".into(),
                    position: None,
                })?;
                out.push(StreamInfo {
                    stream_id,
                    stream_type,
                    version: version as u64,
                    updated_at: from_micros(updated_at),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        self.db_head().await
    }
}

/// The README's example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeExample;

/// The README's examples, compiled and run as doctests so they cannot drift.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

//! # annals-postgres — the production event store on PostgreSQL
//!
//! ```text
//! let store = PostgresStore::connect("postgres://postgres@127.0.0.1:5432/test").await?;
//! ```
//!
//! - **Appends** go to the server as one call of a PL/pgSQL function taking arrays (one
//!   transaction, a prepared statement): one round trip per append, whatever its size.
//!   Optimistic locking is structural (`UNIQUE(stream_id, version)` plus a row lock per stream);
//!   appends to different streams run in parallel; no append takes a global lock.
//! - **The global log is gap-free**: appends store events without a position; a sequencer gives
//!   positions only to committed rows, in a table of its own (`log`), so a reader checkpointed at
//!   position N can never miss a late-committing N-1. Each store runs the sequencer in the
//!   background after its appends, and readers run it when they reach the head, so a reader sees
//!   its own appends. Appends therefore report no global position (`StreamAppended::
//!   first_position` is `None`); reads do. Why and how: `docs/design.md`, "The gap-free log on
//!   PostgreSQL".
//! - **Waking**: the sequencer NOTIFYs the new head; one listening connection per store wakes
//!   every waiting reader. Waiting readers also sweep once a second (sequencing rows whose
//!   appender's process died before its sequencer ran), so nothing waits for ever.
//! - **Schema**: everything lives in one PostgreSQL schema (default `annals`), created and
//!   migrated on connect from the SQL files in `sql/`, one per object.
//! - **Durability** is the server's `synchronous_commit` (default `on`: a returned append is
//!   flushed to the server's WAL).

pub mod activity;
mod append;
pub mod consume;
mod error;
mod follow;
mod group_commit;
pub mod projection;
mod read;
pub mod schema;
mod sequencer;
pub mod tail;
#[cfg(feature = "testkit")]
pub mod testing;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use annals::event::PayloadOpener;
use annals::{
    AppendOutcome, Direction, EventStore, FoldEvent, ReadStream, RecordedEvent, Snapshot, StoreError, StreamAppend,
    StreamId, StreamInfo,
};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use read::{LOG_AFTER, STREAM_BACKWARDS, STREAM_FORWARDS, STREAM_GROUPS, decode_rows};
use sequencer::{SEQUENCER_PATIENCE, SequencerProgress, assign_positions, spawn_sequencer};
use tokio::sync::{Notify, OnceCell, oneshot, watch};
use tokio_postgres::NoTls;

pub use deadpool_postgres;
pub use tokio_postgres;

/// Options for [`PostgresStore::connect_with`].
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// The PostgreSQL schema holding annals' tables (default `annals`; lower-case letters, digits
    /// and `_`).
    pub schema: String,
    /// Most pooled connections (default 16).
    pub pool_size: usize,
    /// How long a call waits for a pooled connection before it fails as
    /// [`Unavailable`](annals::ErrorKind::Unavailable) (default [`POOL_WAIT`]).
    pub pool_wait: Duration,
    /// Create the schema and its tables if there are none (default true). Without it, a schema
    /// with no annals store is [`NotFound`](annals::ErrorKind::NotFound): a typo in a schema name
    /// is not a new, empty store.
    pub create: bool,
    /// Change no schema (default false): no migration is run, and a store that needs one is
    /// refused. For commands that only read.
    pub read_only: bool,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: "annals".into(),
            pool_size: 16,
            pool_wait: POOL_WAIT,
            create: true,
            read_only: false,
        }
    }
}

/// The default deadline for a pooled connection: no call waits for one for ever.
pub const POOL_WAIT: Duration = Duration::from_secs(30);

/// A pool and its limits, for errors that name them.
#[derive(Clone)]
pub(crate) struct Connections {
    pub(crate) pool: Pool,
    pub(crate) size: usize,
    pub(crate) wait: Duration,
}

impl Connections {
    /// A pooled connection, within the pool's deadline.
    pub(crate) async fn get(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| error::pool(e, self.size, self.wait))
    }
}

struct Shared {
    connections: Connections,
    /// Whether connecting made the store (the schema had none).
    created: bool,
    config: tokio_postgres::Config,
    schema: String,
    head: watch::Sender<u64>,
    listener: OnceCell<Listener>,
    /// Wakes the background sequencer (after each append).
    sequencer: Arc<Notify>,
    /// Appends this store committed, and how many of them the background sequencer has
    /// sequenced: while they differ, a read at the head sequences first (read your own appends).
    progress: Arc<SequencerProgress>,
    sequencer_task: tokio::task::JoinHandle<()>,
    /// The queue that groups concurrent one-stream appends into one transaction, and its task.
    group_commit: group_commit::GroupCommit,
    group_commit_task: tokio::task::JoinHandle<()>,
}

/// The listening task (aborted when the store's last clone goes).
struct Listener(tokio::task::JoinHandle<()>);

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(l) = self.listener.get() {
            l.0.abort();
        }
        self.sequencer_task.abort();
        self.group_commit_task.abort();
    }
}

/// The PostgreSQL event store. Cheap to clone (clones share one pool and one listener).
#[derive(Clone)]
pub struct PostgresStore {
    shared: Arc<Shared>,
}

/// How often a waiting reader sweeps for committed events that have no position yet.
const SWEEP: Duration = Duration::from_secs(1);

impl PostgresStore {
    /// Connects with default options to `url` (`postgres://user@host:port/db`), creating and
    /// migrating the `annals` schema if needed.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// Connects to `url` with `options`, creating and migrating the schema if needed.
    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        if let Some(why) = schema::schema_name_problem(&options.schema) {
            return Err(StoreError::misconfigured(
                format!("invalid schema name {:?}: {why}", options.schema),
                None,
            ));
        }
        let mut config: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| {
            StoreError::misconfigured(
                format!(
                    "invalid PostgreSQL URL (expected postgres://user@host:port/database): {}",
                    error::with_cause(&e)
                ),
                None,
            )
        })?;
        let target = describe(&config);
        let (mut client, connection) = tokio::time::timeout(options.pool_wait, config.connect(NoTls))
            .await
            .map_err(|_| {
                StoreError::unavailable(
                    format!(
                        "cannot connect to PostgreSQL at {target}: no answer within {:?}",
                        options.pool_wait
                    ),
                    None,
                )
            })?
            .map_err(|e| error::in_context(error::db(e), &format!("cannot connect to PostgreSQL at {target}")))?;
        let driver = tokio::spawn(connection);
        // Before anything is changed: is there a store, is it annals', and not a newer one?
        let found = schema::inspect(&client, &options.schema)
            .await
            .map_err(|e| error::in_context(error::db(e), &format!("cannot look at schema {}", options.schema)))?;
        let (name, latest) = (&options.schema, schema::latest());
        match found {
            schema::Found::Nothing if !options.create || options.read_only => {
                return Err(StoreError::NotFound {
                    what: format!("no annals store in schema `{name}` of {target} (`annals init` creates one)"),
                });
            }
            schema::Found::Foreign { tables } => {
                return Err(StoreError::misconfigured(
                    format!(
                        "schema `{name}` of {target} is not an annals store: it holds tables {} and not annals' \
                         migrations, events and log; nothing was changed",
                        tables.join(", ")
                    ),
                    None,
                ));
            }
            schema::Found::Annals { version } if version > latest => {
                return Err(StoreError::misconfigured(
                    format!(
                        "schema `{name}` of {target} was written by a newer annals (migration {version}; this annals \
                         knows up to {latest}): use that version"
                    ),
                    None,
                ));
            }
            schema::Found::Annals { version } if version < latest && options.read_only => {
                return Err(StoreError::misconfigured(
                    format!(
                        "schema `{name}` of {target} is at migration {version} and this annals reads {latest}: open \
                         it once for writing (`annals init`) to upgrade it"
                    ),
                    None,
                ));
            }
            _ => {}
        }
        let created = found == schema::Found::Nothing;
        if !options.read_only {
            schema::migrate(&mut client, &options.schema)
                .await
                .map_err(|e| error::in_context(error::db(e), &format!("cannot migrate schema {}", options.schema)))?;
        }
        drop(client);
        let _ = driver.await;

        config.options(format!("-c search_path={}", options.schema));
        config.connect_timeout(options.pool_wait);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let size = options.pool_size.max(1);
        let pool = Pool::builder(manager)
            .max_size(size)
            // The connection used last is handed out first. First in, first out rotated every
            // checkout through all the idle connections, and about 1 in 50 loads of 1 000 events
            // on a connection that had sat idle behind the others took 42 ms instead of 1 (the
            // bench's load phase after its 16-appender cases); last in, first out keeps the warm
            // connection busy and lets the others stay idle.
            .queue_mode(deadpool_postgres::QueueMode::Lifo)
            .wait_timeout(Some(options.pool_wait))
            .create_timeout(Some(options.pool_wait))
            .recycle_timeout(Some(options.pool_wait))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::misconfigured(format!("cannot build the connection pool: {e}"), None))?;
        let connections = Connections {
            pool,
            size,
            wait: options.pool_wait,
        };
        let sequencer = Arc::new(Notify::new());
        let progress = Arc::new(SequencerProgress::default());
        let head = watch::Sender::new(0);
        // Batches in flight at once: enough to keep a few commits overlapping, few enough to
        // leave the pool's other connections to reads.
        let (group_commit, group_commit_task) =
            group_commit::GroupCommit::start(connections.clone(), (size / 4).max(2));
        let store = Self {
            shared: Arc::new(Shared {
                connections: connections.clone(),
                created,
                config,
                schema: options.schema,
                head: head.clone(),
                listener: OnceCell::new(),
                sequencer_task: spawn_sequencer(connections, sequencer.clone(), progress.clone(), head),
                sequencer,
                progress,
                group_commit,
                group_commit_task,
            }),
        };
        // Sequence anything a crashed appender left behind, and learn the head.
        let head = store.assign_positions().await?;
        advance_head(&store.shared.head, head);
        Ok(store)
    }

    /// Whether connecting created the store (its schema held no annals tables).
    pub fn created(&self) -> bool {
        self.shared.created
    }

    /// The connection settings (with `search_path` set to the store's schema).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.shared.config
    }

    /// The PostgreSQL schema in use.
    pub fn schema(&self) -> &str {
        &self.shared.schema
    }

    /// The connection pool (for read models and tools that live in the same database; its
    /// connections have `search_path` set to the store's schema).
    pub fn pool(&self) -> &Pool {
        &self.shared.connections.pool
    }

    /// A pooled connection, waiting at most the store's `pool_wait` for one (then
    /// [`Unavailable`](annals::ErrorKind::Unavailable), naming the pool's size).
    pub async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.shared.connections.get().await
    }

    /// Gives positions to committed events that have none yet; returns the log's head.
    pub async fn assign_positions(&self) -> Result<u64, StoreError> {
        assign_positions(&self.shared.connections, true).await
    }

    async fn ensure_listener(&self) {
        self.shared
            .listener
            .get_or_init(|| async {
                let (ready, started) = oneshot::channel();
                let handle = follow::spawn(
                    self.shared.config.clone(),
                    self.shared.schema.clone(),
                    self.shared.head.clone(),
                    ready,
                );
                let _ = started.await;
                Listener(handle)
            })
            .await;
    }

    /// Counts a committed append and wakes the background sequencer.
    pub(crate) fn appended(&self) {
        self.shared
            .progress
            .committed
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.shared.sequencer.notify_one();
    }

    /// Runs an event query on one pooled connection, given back before the caller does anything
    /// else (no path holds one connection while it waits for another). Stream reads return
    /// events the sequencer has not reached yet with global position 0: a stream read needs
    /// versions, and never waits for the sequencer.
    async fn query_events(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        open: Option<&PayloadOpener>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(error::db)?;
        let rows = client.query(&stmt, params).await.map_err(error::db)?;
        drop(client);
        decode_rows(&rows, open)
    }

    /// A stream's events, payloads through `open` if given.
    async fn read_stream_through(
        &self,
        stream: &StreamId,
        read: ReadStream,
        open: Option<&PayloadOpener>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let limit = to_i64(read.limit as u64);
        let from = to_i64(read.from);
        // The versions the read can return, for the groups that hold them.
        let (sql, lo, hi) = match read.direction {
            Direction::Forwards => (STREAM_FORWARDS, from, from.saturating_add(limit - 1)),
            Direction::Backwards => (STREAM_BACKWARDS, from.saturating_sub(limit - 1).max(1), from),
        };
        let client = self.client().await?;
        let (events_stmt, groups_stmt) =
            tokio::try_join!(client.prepare_cached(sql), client.prepare_cached(STREAM_GROUPS)).map_err(error::db)?;
        // Both in one round trip: the driver pipelines queries sent together on a connection.
        let id = stream.as_str();
        let events_params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&id, &from, &limit];
        let groups_params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&id, &lo, &hi];
        let (rows, groups) = tokio::try_join!(
            client.query(&events_stmt, &events_params),
            client.query(&groups_stmt, &groups_params),
        )
        .map_err(error::db)?;
        drop(client);
        let groups: Vec<(i64, i64, i32)> = groups
            .iter()
            .map(|g| Ok((g.try_get(0)?, g.try_get(1)?, g.try_get(2)?)))
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(error::db)?;
        let mut events = decode_rows(&rows, open)?;
        read::place_in_groups(&mut events, &groups);
        Ok(events)
    }

    /// The global log after `after`, payloads through `open` if given.
    async fn read_all_through(
        &self,
        after: u64,
        limit: usize,
        open: Option<&PayloadOpener>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // Taken before the query: appends sequenced after it started are not in its answer.
        let progress = &self.shared.progress;
        let (begun, committed) = (progress.runs_started(), progress.committed());
        let own_pending = !progress.all_sequenced();
        let mut events = self
            .query_events(LOG_AFTER, &[&to_i64(after), &to_i64(limit as u64)], open)
            .await?;
        // At the head: sequence what has committed but has no position yet (an append that
        // returned a moment ago, here or in another process), so a reader sees it. With appends
        // of its own pending, this store's background sequencer runs within milliseconds, and a
        // run that starts after this read began sequences every transaction committed before
        // it, here or elsewhere: waiting for that beats contending for the sequencer's lock.
        // Otherwise (or if it is slow) the read looks itself, and sequences what it finds.
        if events.len() < limit {
            let seen = events.last().map_or(after, |e| e.global_position);
            let head = if own_pending && progress.ran_since(begun, committed, SEQUENCER_PATIENCE).await {
                *self.shared.head.borrow()
            } else {
                self.assign_positions().await?
            };
            if head > seen {
                let more = self
                    .query_events(
                        LOG_AFTER,
                        &[&to_i64(seen), &to_i64((limit - events.len()) as u64)],
                        open,
                    )
                    .await?;
                events.extend(more);
            }
        }
        Ok(events)
    }
}

/// Moves the published head position forward to `to` (never back), waking waiters if it moved.
pub(crate) fn advance_head(head: &watch::Sender<u64>, to: u64) {
    head.send_if_modified(|h| {
        let moved = to > *h;
        *h = (*h).max(to);
        moved
    });
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Where a connection goes, without its password: `host:port/database as user`.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = config.get_hosts().first().map_or_else(
        || "localhost".to_owned(),
        |h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        },
    );
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("(default user)");
    let database = config.get_dbname().unwrap_or(user);
    format!("{host}:{port}/{database} as {user}")
}

impl EventStore for PostgresStore {
    async fn append(&self, mut appends: Vec<StreamAppend>) -> Result<AppendOutcome, StoreError> {
        annals::store::validate_append(&appends)?;
        let outcome = if appends.len() == 1 {
            // One-stream appends are grouped with those in flight beside them (group_commit.rs).
            let one = appends.pop().expect("one append");
            self.shared.group_commit.append(one).await?
        } else {
            let client = self.client().await?;
            append::append(&client, &appends).await?
        };
        self.appended();
        Ok(outcome)
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
        mut step: F,
    ) -> Result<(A, usize), StoreError>
    where
        A: Send + 'static,
        F: FnMut(&mut A, FoldEvent<'_>) + Send + 'static,
    {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT * FROM stream_fold_events($1, $2, $3)")
            .await
            .map_err(error::db)?;
        let rows = client
            .query(&stmt, &[&stream.as_str(), &to_i64(from), &to_i64(limit as u64)])
            .await
            .map_err(error::db)?;
        drop(client);
        // Each payload is decoded where the row holds it: no copy per event.
        for r in &rows {
            let version = u64::try_from(r.try_get::<_, i64>(0).map_err(error::db)?).unwrap_or(0);
            let schema_version = r.try_get::<_, i32>(2).map_err(error::db)?;
            let event = FoldEvent {
                version,
                event_type: r.try_get(1).map_err(error::db)?,
                schema_version: u32::try_from(schema_version).map_err(|_| StoreError::Corrupt {
                    stream: stream.to_string(),
                    version,
                    reason: "schema version out of range".into(),
                    position: None,
                })?,
                payload: r.try_get(3).map_err(error::db)?,
            };
            step(&mut acc, event);
        }
        Ok((acc, rows.len()))
    }

    async fn read_stream_opened(
        &self,
        stream: &StreamId,
        read: ReadStream,
        open: PayloadOpener,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream_through(stream, read, Some(&open)).await
    }

    async fn read_all_opened(
        &self,
        after: u64,
        limit: usize,
        open: PayloadOpener,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_all_through(after, limit, Some(&open)).await
    }

    async fn wait_for_new(&self, after: u64, timeout: Duration) -> Result<u64, StoreError> {
        self.ensure_listener().await;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.shared.head.subscribe();
        // The sequencers' notifications move the head; a sweep (running the sequencer here)
        // happens when a nap ends without one — an appender that died before its sequencer ran
        // — and for a caller that will not wait.
        let mut sweep = timeout.is_zero();
        loop {
            let known = *rx.borrow_and_update();
            if known > after {
                return Ok(known);
            }
            let now = tokio::time::Instant::now();
            if sweep {
                let head = self.assign_positions().await?;
                advance_head(&self.shared.head, head);
                if head > after || now >= deadline {
                    return Ok(head.max(known));
                }
            }
            let nap = deadline.saturating_duration_since(now).min(SWEEP);
            sweep = tokio::time::timeout(nap, rx.changed()).await.is_err();
        }
    }

    async fn load_snapshot(
        &self,
        stream: &StreamId,
        at_or_before: Option<u64>,
    ) -> Result<Option<Snapshot>, StoreError> {
        self.snapshot(stream, None, at_or_before).await
    }

    async fn list_streams(&self, after: Option<&StreamId>, limit: usize) -> Result<Vec<StreamInfo>, StoreError> {
        let b = error::db;
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT stream_id, stream_type, version, updated_at FROM streams
                 WHERE stream_id > $1 AND deleted_at IS NULL AND version > 0 ORDER BY stream_id LIMIT $2",
            )
            .await
            .map_err(b)?;
        let after = after.map_or("", |a| a.as_str());
        let rows = client.query(&stmt, &[&after, &to_i64(limit as u64)]).await.map_err(b)?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get(0).map_err(b)?;
                let version = r.try_get::<_, i64>(2).map_err(b)? as u64;
                Ok(StreamInfo {
                    stream_id: StreamId::new(id.clone()).map_err(|_| StoreError::Corrupt {
                        stream: id,
                        version,
                        reason: "invalid stream id in the streams table".into(),
                        position: None,
                    })?,
                    stream_type: r.try_get(1).map_err(b)?,
                    version,
                    updated_at: r.try_get::<_, SystemTime>(3).map_err(b)?,
                })
            })
            .collect()
    }

    async fn read_from_snapshot(
        &self,
        stream: &StreamId,
        schema_version: u32,
        until: Option<u64>,
        limit: usize,
    ) -> Result<(Option<Snapshot>, Vec<RecordedEvent>), StoreError> {
        let snapshot = self.snapshot(stream, Some(schema_version), until).await?;
        let (from, limit) = annals::store::events_after_snapshot(snapshot.as_ref(), until, limit);
        let events = if limit == 0 {
            Vec::new()
        } else {
            self.read_stream_through(stream, ReadStream::from_version(from).limit(limit), None)
                .await?
        };
        Ok((snapshot, events))
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        self.assign_positions().await
    }
}

impl PostgresStore {
    /// The newest snapshot of a stream at or before `until`, of `schema_version` if given.
    async fn snapshot(
        &self,
        stream: &StreamId,
        schema_version: Option<u32>,
        until: Option<u64>,
    ) -> Result<Option<Snapshot>, StoreError> {
        let b = error::db;
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT version, schema_version, state::text, taken_at FROM snapshots
                 WHERE stream_id = $1 AND version <= $2 AND ($3::integer IS NULL OR schema_version = $3)
                 ORDER BY version DESC LIMIT 1",
            )
            .await
            .map_err(b)?;
        let bound = to_i64(until.unwrap_or(u64::MAX));
        let schema = schema_version.map(|v| i32::try_from(v).unwrap_or(i32::MAX));
        let Some(row) = client
            .query_opt(&stmt, &[&stream.as_str(), &bound, &schema])
            .await
            .map_err(b)?
        else {
            return Ok(None);
        };
        let state: String = row.try_get(2).map_err(b)?;
        // An unreadable snapshot is not fatal: the repository replays instead.
        let Ok(state) = serde_json::value::RawValue::from_string(state) else {
            return Ok(None);
        };
        Ok(Some(Snapshot {
            stream_id: stream.clone(),
            version: row.try_get::<_, i64>(0).map_err(b)? as u64,
            schema_version: u32::try_from(row.try_get::<_, i32>(1).map_err(b)?).unwrap_or(u32::MAX),
            state,
            taken_at: row.try_get::<_, SystemTime>(3).map_err(b)?,
        }))
    }
}

/// The README's examples, compiled and run as doctests so they cannot drift.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

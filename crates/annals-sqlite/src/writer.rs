//! The writer: one connection that every append goes through, so SQLite never answers
//! "database is locked" to our own appenders, with group commit.
//!
//! Appends queue up; whoever finds the connection free becomes the *leader*: it takes every queued
//! append (up to `max_group`), commits them in one transaction (one fsync, each append in its own
//! savepoint with its own expected-version check and its own result) and answers each. An
//! uncontended append is thus written by its own task with no thread hand-off; appends arriving
//! while a commit is in flight wait and go out together in the next group.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use annals::event::to_micros;
use annals::store::{StoredAt, check_stream, deletes, resolve_retry};
use annals::{AppendOutcome, StoreError, StreamAppend, StreamAppended};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{oneshot, watch};

/// One append waiting for the writer.
pub(crate) struct Job {
    pub appends: Vec<StreamAppend>,
    /// Inbox: append only if (consumer, message id) is not processed yet, and mark it.
    pub inbox: Option<(String, uuid::Uuid)>,
    /// New subjects' data keys to store with the append; if one of them has a key by then,
    /// nothing is written and the reply is `Ok(None)`.
    pub keys: Vec<(String, annals::privacy::WrappedKey)>,
    /// `Ok(None)`: the inbox says the message was processed already (nothing written).
    pub reply: oneshot::Sender<Result<Option<AppendOutcome>, StoreError>>,
}

/// Groups a leader running inside an appender's task commits before handing the rest of the queue
/// to a blocking thread (so one appender never works for everyone else indefinitely).
const INLINE_GROUPS: usize = 2;

/// Whether the caller runs on a multi-threaded tokio runtime (where `block_in_place` is allowed).
pub(crate) fn on_multi_thread_runtime() -> bool {
    use tokio::runtime::{Handle, RuntimeFlavor};
    Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread)
}

/// The write side of a store: the queue and the connection.
pub(crate) struct Writer {
    queue: Mutex<VecDeque<Job>>,
    conn: Mutex<Connection>,
    head: watch::Sender<u64>,
    max_group: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Writer {
    pub(crate) fn new(conn: Connection, head: watch::Sender<u64>, max_group: usize) -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            conn: Mutex::new(conn),
            head,
            max_group: max_group.max(1),
        }
    }

    /// Queues an append; the caller then calls [`Writer::lead`] and awaits the reply.
    pub(crate) fn submit(&self, job: Job) {
        lock(&self.queue).push_back(job);
    }

    /// Commits queued appends if no one else is doing so. Returns true when appends are still
    /// queued and nobody leads (the caller must hand them to someone: see `lead_until_empty`).
    pub(crate) fn lead(&self, max_groups: usize) -> bool {
        loop {
            let mut conn = match self.conn.try_lock() {
                Ok(conn) => conn,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                // Someone else leads; they will see our job before they let go.
                Err(std::sync::TryLockError::WouldBlock) => return false,
            };
            let mut groups = 0;
            loop {
                let group: Vec<Job> = {
                    let mut q = lock(&self.queue);
                    let n = q.len().min(self.max_group);
                    q.drain(..n).collect()
                };
                if group.is_empty() {
                    break;
                }
                commit_group(&mut conn, group, &self.head);
                groups += 1;
                if groups >= max_groups {
                    break;
                }
            }
            drop(conn);
            // A job queued after our last look but before we let go found the connection busy:
            // look again now that it is free.
            if lock(&self.queue).is_empty() {
                return false;
            }
            if groups >= max_groups {
                return true;
            }
        }
    }

    /// Leads from the calling task: inline on a multi-threaded runtime (no thread hand-off for an
    /// uncontended append), on a blocking thread otherwise; a long queue is handed to a blocking
    /// thread after a few groups.
    pub(crate) async fn lead_from_task(self: &Arc<Self>) {
        let handoff = if on_multi_thread_runtime() {
            tokio::task::block_in_place(|| self.lead(INLINE_GROUPS))
        } else {
            let me = self.clone();
            tokio::task::spawn_blocking(move || me.lead(usize::MAX))
                .await
                .unwrap_or(false)
        };
        if handoff {
            let me = self.clone();
            tokio::task::spawn_blocking(move || me.lead(usize::MAX));
        }
    }

    /// Runs `f` in its own transaction on the writer connection (committed if it returns `Ok`),
    /// then commits any appends that queued meanwhile. Blocking: call from a blocking context.
    pub(crate) fn exclusive<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let result = (|| {
            let mut conn = lock(&self.conn);
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(crate::error::db)?;
            match f(&tx) {
                Ok(v) => tx.commit().map(|()| v).map_err(|e| crate::error::db(e).into()),
                Err(e) => Err(e),
            }
        })();
        // Appenders that found the connection busy left their jobs for us.
        self.lead(usize::MAX);
        result
    }

    /// Folds the WAL back into the database file (on close).
    pub(crate) fn checkpoint(&self) {
        let _ = lock(&self.conn).execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
    }
}

fn commit_group(conn: &mut Connection, group: Vec<Job>, head: &watch::Sender<u64>) {
    let results = match write_group(conn, &group) {
        Ok(results) => results,
        Err(e) => {
            // Every member gets the group's failure, of its kind (a read-only file is not
            // transient, a busy one is).
            let e = crate::error::db(e);
            let _ = conn.execute_batch("ROLLBACK");
            group.iter().map(|_| Err(crate::error::copy(&e))).collect()
        }
    };
    if let Some(max) = results
        .iter()
        .flatten()
        .flatten()
        .flat_map(|o| o.streams.iter().filter_map(|s| s.last_position))
        .max()
    {
        crate::advance_head(head, max);
    }
    for (job, result) in group.into_iter().zip(results) {
        let _ = job.reply.send(result);
    }
}

type Results = Vec<Result<Option<AppendOutcome>, StoreError>>;

fn write_group(conn: &mut Connection, group: &[Job]) -> rusqlite::Result<Results> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let mut results = Vec::with_capacity(group.len());
    let single = group.len() == 1;
    for job in group {
        if !single {
            conn.execute_batch("SAVEPOINT append")?;
        }
        match write_job(conn, job) {
            Ok(Ok(outcome)) => {
                if !single {
                    conn.execute_batch("RELEASE append")?;
                }
                results.push(Ok(outcome));
            }
            Ok(Err(refused)) => {
                if single {
                    conn.execute_batch("ROLLBACK")?;
                    return Ok(vec![Err(refused)]);
                }
                conn.execute_batch("ROLLBACK TO append; RELEASE append")?;
                results.push(Err(refused));
            }
            Err(e) => return Err(e),
        }
    }
    conn.execute_batch("COMMIT")?;
    Ok(results)
}

/// Writes one job inside the open transaction: its new keys, its inbox mark, then its append.
fn write_job(conn: &Connection, job: &Job) -> rusqlite::Result<Result<Option<AppendOutcome>, StoreError>> {
    // The writer holds the only write transaction: keys absent now stay absent until commit.
    for (subject, _) in &job.keys {
        let taken = conn
            .prepare_cached("SELECT 1 FROM subject_keys WHERE subject = ?1")?
            .exists([subject])?;
        if taken {
            return Ok(Ok(None));
        }
    }
    for (subject, key) in &job.keys {
        conn.prepare_cached("INSERT INTO subject_keys (subject, master_id, wrapped) VALUES (?1, ?2, ?3)")?
            .execute(params![subject, key.master_id, key.bytes])?;
    }
    if let Some((consumer, id)) = &job.inbox {
        let marked = conn
            .prepare_cached(
                "INSERT INTO processed_messages (consumer, message_id, processed_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![consumer, &id.as_bytes()[..], to_micros(SystemTime::now())])?;
        if marked == 0 {
            return Ok(Ok(None));
        }
        if job.appends.is_empty() {
            return Ok(Ok(Some(AppendOutcome { streams: Vec::new() })));
        }
    }
    Ok(write_append(conn, &job.appends)?.map(Some))
}

/// Writes one append inside the open transaction; `Ok(Err(..))` is a refusal (roll it back).
fn write_append(conn: &Connection, appends: &[StreamAppend]) -> rusqlite::Result<Result<AppendOutcome, StoreError>> {
    let now = to_micros(SystemTime::now());
    let mut streams = Vec::with_capacity(appends.len());
    for a in appends {
        match write_stream(conn, a, now)? {
            Ok(done) => streams.push(done),
            Err(refused) => return Ok(Err(refused)),
        }
    }
    Ok(Ok(AppendOutcome { streams }))
}

fn stored_at(conn: &Connection, id: &uuid::Uuid) -> rusqlite::Result<Option<StoredAt>> {
    conn.prepare_cached("SELECT stream_id, version, global_position FROM events WHERE event_id = ?1")?
        .query_row([&id.as_bytes()[..]], |r| {
            Ok(StoredAt {
                stream_id: r.get(0)?,
                version: r.get::<_, i64>(1)? as u64,
                global_position: Some(r.get::<_, i64>(2)? as u64),
            })
        })
        .optional()
}

fn write_stream(conn: &Connection, a: &StreamAppend, now: i64) -> rusqlite::Result<Result<StreamAppended, StoreError>> {
    // Idempotency: a retry's first id is stored. Checking the first id costs one index probe; any
    // other stored id surfaces as a unique-key violation below.
    if stored_at(conn, &a.events[0].event_id)?.is_some() {
        let found = a
            .events
            .iter()
            .map(|e| stored_at(conn, &e.event_id))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        return Ok(match resolve_retry(a, &found) {
            Ok(Some(done)) => Ok(done),
            Ok(None) => unreachable!("the first id was found"),
            Err(e) => Err(e),
        });
    }
    let current: Option<(i64, String, Option<i64>)> = conn
        .prepare_cached("SELECT version, stream_type, deleted_version FROM streams WHERE stream_id = ?1")?
        .query_row([a.stream_id.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let version = current.as_ref().map_or(0, |c| c.0 as u64);
    let deleted_at = current.as_ref().and_then(|c| c.2).map(|v| v as u64);
    if let Err(refused) = check_stream(a, version, current.as_ref().map(|c| c.1.as_str()), deleted_at) {
        return Ok(Err(refused));
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO events (stream_id, stream_type, version, event_id, event_type, schema_version, payload, metadata, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let mut first_position = 0;
    let mut last_position = 0;
    for (i, e) in a.events.iter().enumerate() {
        let v = version + 1 + i as u64;
        let inserted = insert.execute(params![
            a.stream_id.as_str(),
            a.stream_type,
            v as i64,
            &e.event_id.as_bytes()[..],
            e.event_type,
            e.schema_version,
            e.payload.get(),
            e.metadata.to_json(),
            now
        ]);
        match inserted {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                let at = stored_at(conn, &e.event_id)?;
                return Ok(Err(StoreError::DuplicateEventId {
                    event_id: e.event_id,
                    stream: a.stream_id.to_string(),
                    stored_stream: at.as_ref().map_or_else(String::new, |s| s.stream_id.clone()),
                    stored_version: at.map_or(0, |s| s.version),
                }));
            }
            Err(e) => return Err(e),
        }
        last_position = conn.last_insert_rowid() as u64;
        if i == 0 {
            first_position = last_position;
        }
    }
    let last_version = version + a.events.len() as u64;
    // Past the check, the stream is live or this append restores it: it is deleted after the
    // append only if the append ends with a deletion.
    let deleted_version = deletes(a).then_some(last_version as i64);
    conn.prepare_cached(
        "INSERT INTO streams (stream_id, stream_type, version, created_at, updated_at, deleted_version)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5)
         ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at,
             deleted_version = excluded.deleted_version",
    )?
    .execute(params![
        a.stream_id.as_str(),
        a.stream_type,
        last_version as i64,
        now,
        deleted_version
    ])?;
    if let Some(s) = &a.snapshot {
        conn.prepare_cached(
            "INSERT OR REPLACE INTO snapshots (stream_id, version, schema_version, state, taken_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![a.stream_id.as_str(), s.version as i64, s.schema_version, s.state.get(), now])?;
    }
    Ok(Ok(StreamAppended {
        stream_id: a.stream_id.clone(),
        first_version: version + 1,
        last_version,
        first_position: Some(first_position),
        last_position: Some(last_position),
        already_stored: false,
    }))
}

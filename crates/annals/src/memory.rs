//! `MemoryStore`: a complete, thread-safe in-memory backend (tests, prototypes, short-lived tools).
//!
//! It keeps every guarantee of the other backends except durability.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use uuid::Uuid;

use crate::error::StoreError;
use crate::event::RecordedEvent;
use crate::ids::StreamId;
use crate::store::{
    AppendOutcome, Direction, EventStore, ReadStream, Snapshot, StoredAt, StreamAppend, StreamAppended, StreamInfo,
    check_stream, resolve_retry, validate_append,
};

struct StreamState {
    stream_type: String,
    /// Index into the log of each version (version v at `positions[v - 1]`).
    positions: Vec<usize>,
    updated_at: SystemTime,
}

#[derive(Default)]
pub(crate) struct Inner {
    log: Vec<RecordedEvent>,
    streams: BTreeMap<StreamId, StreamState>,
    ids: HashMap<Uuid, usize>,
    snapshots: HashMap<StreamId, BTreeMap<u64, Snapshot>>,
    /// Crypto-shredding: each subject's wrapped data key.
    keys: BTreeMap<String, crate::privacy::WrappedKey>,
    /// Positions (log indices) of purged events: left out of every read.
    purged: std::collections::HashSet<usize>,
    pub(crate) consumers: crate::consume::memory::ConsumerTables,
}

/// The in-memory event store.
pub struct MemoryStore {
    pub(crate) inner: RwLock<Inner>,
    head: watch::Sender<u64>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            inner: RwLock::new(Inner::default()),
            head: watch::Sender::new(0),
        }
    }

    /// Appends; with `inbox`, only if that (consumer, message id) is not processed yet, marking it
    /// in the same step (`Ok(None)`: already processed).
    pub(crate) fn append_now(
        &self,
        appends: Vec<StreamAppend>,
        inbox: Option<(&str, Uuid)>,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        if inbox.is_none() || !appends.is_empty() {
            validate_append(&appends)?;
        }
        let mut inner = self.inner.write().map_err(|_| StoreError::Closed)?;
        if let Some((consumer, id)) = inbox
            && inner.consumers.processed.contains(&(consumer.to_owned(), id))
        {
            return Ok(None);
        }
        // Check every stream before changing anything: the append is all or nothing.
        let mut plan = Vec::with_capacity(appends.len());
        for a in &appends {
            let found: Vec<Option<StoredAt>> = a
                .events
                .iter()
                .map(|e| {
                    inner.ids.get(&e.event_id).map(|&i| {
                        let r = &inner.log[i];
                        StoredAt {
                            stream_id: r.stream_id.to_string(),
                            version: r.version,
                            global_position: Some(r.global_position),
                        }
                    })
                })
                .collect();
            if let Some(done) = resolve_retry(a, &found)? {
                plan.push(Err(done));
                continue;
            }
            let current = inner.streams.get(&a.stream_id);
            let version = current.map_or(0, |s| s.positions.len() as u64);
            let deleted_at = current
                .and_then(|s| s.positions.last())
                .filter(|&&i| inner.log[i].event_type == crate::repository::DELETED_EVENT)
                .map(|_| version);
            check_stream(a, version, current.map(|s| s.stream_type.as_str()), deleted_at)?;
            plan.push(Ok(version));
        }
        if let Some((consumer, id)) = inbox {
            inner.consumers.processed.insert((consumer.to_owned(), id));
        }
        let now = SystemTime::now();
        let mut outcome = Vec::with_capacity(appends.len());
        for (a, step) in appends.into_iter().zip(plan) {
            let version = match step {
                Err(done) => {
                    outcome.push(done);
                    continue;
                }
                Ok(v) => v,
            };
            let first_position = inner.log.len() as u64 + 1;
            let mut indexes = Vec::with_capacity(a.events.len());
            for (i, e) in a.events.into_iter().enumerate() {
                let index = inner.log.len();
                inner.ids.insert(e.event_id, index);
                inner.log.push(RecordedEvent {
                    global_position: index as u64 + 1,
                    stream_id: a.stream_id.clone(),
                    stream_type: a.stream_type.clone(),
                    version: version + 1 + i as u64,
                    event_id: e.event_id,
                    event_type: e.event_type,
                    schema_version: e.schema_version,
                    payload: e.payload,
                    metadata: e.metadata,
                    recorded_at: now,
                });
                indexes.push(index);
            }
            let last_version = version + indexes.len() as u64;
            let stream = inner.streams.entry(a.stream_id.clone()).or_insert_with(|| StreamState {
                stream_type: a.stream_type.clone(),
                positions: Vec::new(),
                updated_at: now,
            });
            stream.positions.extend(indexes);
            stream.updated_at = now;
            if let Some(s) = a.snapshot {
                let snap = Snapshot {
                    stream_id: a.stream_id.clone(),
                    version: s.version,
                    schema_version: s.schema_version,
                    state: s.state,
                    taken_at: now,
                };
                inner
                    .snapshots
                    .entry(a.stream_id.clone())
                    .or_default()
                    .insert(s.version, snap);
            }
            outcome.push(StreamAppended {
                stream_id: a.stream_id,
                first_version: version + 1,
                last_version,
                first_position: Some(first_position),
                last_position: Some(inner.log.len() as u64),
                already_stored: false,
            });
        }
        let head = inner.log.len() as u64;
        drop(inner);
        self.head.send_replace(head);
        Ok(Some(AppendOutcome { streams: outcome }))
    }

    fn read_stream_now(&self, stream: &StreamId, read: ReadStream) -> Result<Vec<RecordedEvent>, StoreError> {
        let inner = self.inner.read().map_err(|_| StoreError::Closed)?;
        let Some(s) = inner.streams.get(stream) else {
            return Ok(Vec::new());
        };
        let len = s.positions.len() as u64;
        let pick = |v: u64| inner.log[s.positions[(v - 1) as usize]].clone();
        Ok(match read.direction {
            Direction::Forwards => (read.from.max(1)..=len).take(read.limit).map(pick).collect(),
            Direction::Backwards => (1..=read.from.min(len)).rev().take(read.limit).map(pick).collect(),
        })
    }
}

impl EventStore for MemoryStore {
    async fn append(&self, appends: Vec<StreamAppend>) -> Result<AppendOutcome, StoreError> {
        self.append_now(appends, None)?.ok_or(StoreError::Closed)
    }

    async fn read_stream(&self, stream: &StreamId, read: ReadStream) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream_now(stream, read)
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let inner = self.inner.read().map_err(|_| StoreError::Closed)?;
        let start = usize::try_from(after).unwrap_or(usize::MAX).min(inner.log.len());
        if inner.purged.is_empty() {
            return Ok(inner.log[start..].iter().take(limit).cloned().collect());
        }
        Ok((start..inner.log.len())
            .filter(|i| !inner.purged.contains(i))
            .take(limit)
            .map(|i| inner.log[i].clone())
            .collect())
    }

    async fn wait_for_new(&self, after: u64, timeout: Duration) -> Result<u64, StoreError> {
        let mut rx = self.head.subscribe();
        let head = *rx.borrow_and_update();
        if head > after || timeout.is_zero() {
            return Ok(head);
        }
        let _ = tokio::time::timeout(timeout, rx.wait_for(|h| *h > after)).await;
        Ok(*rx.borrow())
    }

    async fn load_snapshot(
        &self,
        stream: &StreamId,
        at_or_before: Option<u64>,
    ) -> Result<Option<Snapshot>, StoreError> {
        let inner = self.inner.read().map_err(|_| StoreError::Closed)?;
        Ok(inner
            .snapshots
            .get(stream)
            .and_then(|m| m.range(..=at_or_before.unwrap_or(u64::MAX)).next_back())
            .map(|(_, s)| s.clone()))
    }

    async fn list_streams(&self, after: Option<&StreamId>, limit: usize) -> Result<Vec<StreamInfo>, StoreError> {
        let inner = self.inner.read().map_err(|_| StoreError::Closed)?;
        let range = match after {
            Some(a) => inner
                .streams
                .range::<StreamId, _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => inner.streams.range::<StreamId, _>(..),
        };
        Ok(range
            .take(limit)
            .map(|(id, s)| StreamInfo {
                stream_id: id.clone(),
                stream_type: s.stream_type.clone(),
                version: s.positions.len() as u64,
                updated_at: s.updated_at,
            })
            .collect())
    }
}

impl crate::purge::Purge for MemoryStore {
    async fn purge_stream(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let mut inner = self.inner.write().map_err(|_| StoreError::Closed)?;
        let Some(state) = inner.streams.remove(stream) else {
            return Ok(0);
        };
        for &i in &state.positions {
            let id = inner.log[i].event_id;
            inner.ids.remove(&id);
            inner.purged.insert(i);
        }
        inner.snapshots.remove(stream);
        Ok(state.positions.len() as u64)
    }
}

/// Keys first, then the append (no transaction spans both here; a key stored for an append
/// that then fails is used by the next one).
impl crate::privacy::AppendWithKeys for MemoryStore {
    async fn append_with_keys(
        &self,
        keys: Vec<(String, crate::privacy::WrappedKey)>,
        appends: Vec<crate::store::StreamAppend>,
    ) -> Result<Option<crate::store::AppendOutcome>, StoreError> {
        crate::privacy::append_with_keys_in_two_steps(self, keys, appends).await
    }
}

impl crate::privacy::KeyStore for MemoryStore {
    async fn load_key(&self, subject: &str) -> Result<Option<crate::privacy::WrappedKey>, StoreError> {
        let inner = self.inner.read().map_err(|_| StoreError::Closed)?;
        Ok(inner.keys.get(subject).cloned())
    }
    async fn create_key(
        &self,
        subject: &str,
        key: crate::privacy::WrappedKey,
    ) -> Result<crate::privacy::WrappedKey, StoreError> {
        let mut inner = self.inner.write().map_err(|_| StoreError::Closed)?;
        Ok(inner.keys.entry(subject.to_owned()).or_insert(key).clone())
    }
    async fn forget_key(&self, subject: &str) -> Result<bool, StoreError> {
        let mut inner = self.inner.write().map_err(|_| StoreError::Closed)?;
        Ok(inner.keys.remove(subject).is_some())
    }
    async fn list_keys(&self) -> Result<Vec<(String, crate::privacy::WrappedKey)>, StoreError> {
        let inner = self.inner.read().map_err(|_| StoreError::Closed)?;
        Ok(inner.keys.iter().map(|(s, k)| (s.clone(), k.clone())).collect())
    }
    async fn replace_key(&self, subject: &str, key: crate::privacy::WrappedKey) -> Result<(), StoreError> {
        let mut inner = self.inner.write().map_err(|_| StoreError::Closed)?;
        if let Some(k) = inner.keys.get_mut(subject) {
            *k = key;
        }
        Ok(())
    }
}

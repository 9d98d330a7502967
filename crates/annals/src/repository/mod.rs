//! `Repository<A>`: load by replay (from the latest valid snapshot), execute commands with bounded
//! retry on conflict, snapshot by policy in the append's transaction, and time travel.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::aggregate::Aggregate;
use crate::error::{DecodeError, EncodeError, RepositoryError};
use crate::event::{Metadata, NewEvent};
use crate::ids::{ExpectedVersion, StreamId};
use crate::store::{EventStore, NewSnapshot, ReadStream, StreamAppend};
use crate::typed::{DomainEvent, decode, encode};

mod cache;
mod deletion;

use cache::Cache;
pub use deletion::{DELETED_EVENT, RESTORED_EVENT, delete_stream, restore_stream};

/// Events read per round trip while replaying a stream.
const PAGE: usize = 4096;

/// A function deciding, from the new state and version, whether to snapshot.
pub type SnapshotPredicate<A> = Arc<dyn Fn(&A, u64) -> bool + Send + Sync>;

/// When to take a snapshot after a command.
pub enum SnapshotPolicy<A> {
    /// Use the snapshots that exist when loading, never take new ones (read-only tools).
    Never,
    /// Whenever the stream's version crosses a multiple of N.
    EveryNEvents(u64),
    /// When the function, given the new state and the new version, says so.
    When(SnapshotPredicate<A>),
}

impl<A> SnapshotPolicy<A> {
    fn due(&self, state: &A, old_version: u64, new_version: u64) -> bool {
        match self {
            Self::Never => false,
            Self::EveryNEvents(n) => *n > 0 && old_version / n != new_version / n,
            Self::When(f) => f(state, new_version),
        }
    }
}

struct Snapshots<A> {
    policy: SnapshotPolicy<A>,
    encode: fn(&A) -> Result<Box<RawValue>, serde_json::Error>,
    decode: fn(&str) -> Result<A, serde_json::Error>,
}

/// An aggregate loaded from the store.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    /// The state.
    pub state: A,
    /// The stream version the state is at (0 = no events).
    pub version: u64,
    /// The snapshot version the load started from, if one was used.
    pub from_snapshot: Option<u64>,
    /// Whether the aggregate was deleted ([`Repository::delete`]): it refuses every command.
    pub deleted: bool,
}

/// A load in progress inside the backend's read: the aggregate so far and the first event that
/// did not decode (the fold stops applying there).
struct Folding<A> {
    loaded: Loaded<A>,
    stream: String,
    failed: Option<DecodeError>,
}

/// Applies one event read for a fold, decoded from the backend's row, to the aggregate (a
/// deletion marks it deleted, a restore clears that).
fn fold_step<A: Aggregate>(f: &mut Folding<A>, e: crate::store::FoldEvent<'_>) {
    if f.failed.is_some() {
        return;
    }
    if e.event_type == DELETED_EVENT {
        f.loaded.deleted = true;
    } else if e.event_type == RESTORED_EVENT {
        f.loaded.deleted = false;
    } else {
        match crate::typed::decode_parts::<A::Event>(&f.stream, e.version, e.event_type, e.schema_version, e.payload) {
            Ok(event) => f.loaded.state.apply(&event),
            Err(error) => {
                f.failed = Some(error);
                return;
            }
        }
    }
    f.loaded.version = e.version;
}

/// Applies one stored event to a loaded aggregate (a deletion marks it deleted).
fn fold<A: Aggregate>(loaded: &mut Loaded<A>, rec: &crate::event::RecordedEvent) -> Result<(), DecodeError> {
    if rec.event_type == DELETED_EVENT {
        loaded.deleted = true;
    } else if rec.event_type == RESTORED_EVENT {
        loaded.deleted = false;
    } else {
        loaded.state.apply(&decode::<A::Event>(rec)?);
    }
    loaded.version = rec.version;
    Ok(())
}

/// What a successful command did.
#[derive(Debug)]
pub struct Executed<A: Aggregate> {
    /// The stream's version after the command.
    pub version: u64,
    /// The events the command produced (empty when it changed nothing).
    pub events: Vec<A::Event>,
    /// The state after the command.
    pub state: A,
    /// How many tries it took (1 unless it hit conflicts).
    pub attempts: u32,
    /// Whether a snapshot was stored with the events.
    pub snapshot_taken: bool,
}

/// What a command would do, decided but not stored: see [`Repository::decide`].
#[derive(Debug)]
pub struct Decided<A: Aggregate> {
    /// The append storing the events (and a due snapshot), `None` when the command changed nothing.
    pub append: Option<StreamAppend>,
    /// The stream's version once the append is stored.
    pub version: u64,
    /// The events the command produced.
    pub events: Vec<A::Event>,
    /// The state after them.
    pub state: A,
}

/// Loads and changes aggregates of type `A` stored in `S`.
pub struct Repository<A: Aggregate, S> {
    store: S,
    snapshots: Option<Snapshots<A>>,
    cache: Option<std::sync::Arc<Cache<A>>>,
    max_attempts: u32,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A: Aggregate, S: EventStore> Repository<A, S> {
    /// A repository over `store`, without snapshots, trying a command up to 3 times on conflict.
    pub fn new(store: S) -> Self {
        Self {
            store,
            snapshots: None,
            cache: None,
            max_attempts: 3,
            _aggregate: PhantomData,
        }
    }

    /// Sets how many times a command is tried when its append conflicts (at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Loads the current state: the latest valid snapshot, then the events after it.
    pub async fn load(&self, id: &StreamId) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        self.load_until(id, None).await
    }

    /// Time travel: the state as it was at `version` (or the current one if the stream is shorter).
    pub async fn load_at_version(&self, id: &StreamId, version: u64) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        self.load_until(id, Some(version)).await
    }

    /// Time travel: the state as it was at time `at` (events recorded at or before it).
    pub async fn load_at_time(&self, id: &StreamId, at: SystemTime) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        let mut loaded = Loaded {
            state: A::default(),
            version: 0,
            from_snapshot: None,
            deleted: false,
        };
        let mut from = 1;
        loop {
            let page = self
                .store
                .read_stream(id, ReadStream::from_version(from).limit(PAGE))
                .await?;
            let full = page.len() == PAGE;
            for rec in &page {
                if rec.recorded_at > at {
                    return Ok(loaded);
                }
                fold(&mut loaded, rec)?;
            }
            if !full {
                return Ok(loaded);
            }
            from = loaded.version + 1;
        }
    }

    async fn load_until(&self, id: &StreamId, until: Option<u64>) -> Result<Loaded<A>, RepositoryError<A::Error>> {
        let mut loaded = Loaded {
            state: A::default(),
            version: 0,
            from_snapshot: None,
            deleted: false,
        };
        let limit = until.unwrap_or(u64::MAX);
        // The first page comes with the snapshot when snapshots are on (one round trip).
        let mut page = None;
        if let Some(snaps) = &self.snapshots {
            let (snapshot, events) = self
                .store
                .read_from_snapshot(id, A::SNAPSHOT_VERSION, until, PAGE)
                .await?;
            match snapshot.map(|s| ((snaps.decode)(s.state.get()), s.version)) {
                Some((Ok(state), version)) => {
                    loaded = Loaded {
                        state,
                        version,
                        from_snapshot: Some(version),
                        deleted: false,
                    };
                    page = Some(events);
                }
                Some((Err(e), version)) => {
                    tracing::warn!(stream = %id, version, error = %e, "ignoring an undecodable snapshot");
                }
                None => page = Some(events),
            }
        }
        loop {
            let want = usize::try_from(limit - loaded.version).unwrap_or(usize::MAX).min(PAGE);
            let read = match page.take() {
                // The page that came with the snapshot.
                Some(batch) => {
                    for rec in &batch {
                        fold(&mut loaded, rec)?;
                    }
                    batch.len()
                }
                None if want > 0 => {
                    let folding = Folding {
                        loaded,
                        stream: id.to_string(),
                        failed: None,
                    };
                    let (folded, read) = self
                        .store
                        .read_for_fold(id, folding.loaded.version + 1, want, folding, fold_step::<A>)
                        .await?;
                    if let Some(error) = folded.failed {
                        return Err(error.into());
                    }
                    loaded = folded.loaded;
                    read
                }
                None => return Ok(loaded),
            };
            if want == 0 || read < want || loaded.version >= limit {
                return Ok(loaded);
            }
        }
    }

    /// Runs `command` against the aggregate `id` without storing anything: load, handle, and the
    /// append that would store the events with the loaded version expected (and a snapshot if the
    /// policy says so). Store it yourself, together with other appends in one transaction (a saga
    /// started with the aggregate that starts it, a participant's reply), and on a conflict
    /// decide again.
    ///
    /// With a cache ([`with_cache`](Self::with_cache)) the state comes from it when it has one,
    /// and leaves it: tell it once the append is stored ([`stored`](Self::stored)), so the next
    /// command needs no load; until then (or after a conflict) the next decide loads. A refusal or
    /// a no-op decided on a cached state is decided again on the stored one.
    pub async fn decide(
        &self,
        id: &StreamId,
        command: &A::Command,
        metadata: &Metadata,
    ) -> Result<Decided<A>, RepositoryError<A::Error>> {
        if let Some(cached) = self.cache.as_ref().and_then(|c| c.take(id)) {
            let decided = self.decide_on(id, cached, command, metadata);
            if let Ok(d @ Decided { append: Some(_), .. }) = decided {
                return Ok(d);
            }
        }
        let loaded = self.load(id).await?;
        self.decide_on(id, loaded, command, metadata)
    }

    /// [`decide`](Self::decide) for an aggregate that should not exist yet (a new order, the saga
    /// started with it): decided on the empty state without reading the stream. Its append
    /// expects no stream, so if the aggregate exists after all, storing it conflicts: then
    /// [`decide`](Self::decide) again. A refusal or a no-op on the empty state is decided again
    /// on the stored one.
    pub async fn decide_new(
        &self,
        id: &StreamId,
        command: &A::Command,
        metadata: &Metadata,
    ) -> Result<Decided<A>, RepositoryError<A::Error>> {
        let empty = Loaded {
            state: A::default(),
            version: 0,
            from_snapshot: None,
            deleted: false,
        };
        if let Ok(d @ Decided { append: Some(_), .. }) = self.decide_on(id, empty, command, metadata) {
            return Ok(d);
        }
        self.decide(id, command, metadata).await
    }

    /// [`decide`](Self::decide) on a state already loaded.
    fn decide_on(
        &self,
        id: &StreamId,
        loaded: Loaded<A>,
        command: &A::Command,
        metadata: &Metadata,
    ) -> Result<Decided<A>, RepositoryError<A::Error>> {
        let Loaded {
            mut state,
            version,
            deleted,
            ..
        } = loaded;
        if deleted {
            return Err(RepositoryError::Deleted {
                stream: id.to_string(),
                version,
            });
        }
        let events = state.handle(command).map_err(RepositoryError::Rejected)?;
        if events.is_empty() {
            return Ok(Decided {
                append: None,
                version,
                events,
                state,
            });
        }
        let metadata = with_correlation(metadata);
        let mut new_events = Vec::with_capacity(events.len());
        for event in &events {
            let (event_type, schema_version, payload) = encode(event)?;
            let mut new_event = NewEvent::new(event_type, payload)
                .with_schema_version(schema_version)
                .with_metadata(metadata.clone());
            if let Some(event_id) = event.event_id() {
                new_event = new_event.with_id(event_id);
            }
            new_events.push(new_event);
            state.apply(event);
        }
        let new_version = version + events.len() as u64;
        let expected = if version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(version)
        };
        let mut append = StreamAppend::new(id.clone(), A::STREAM_TYPE, expected, new_events);
        if let Some(snaps) = &self.snapshots
            && snaps.policy.due(&state, version, new_version)
        {
            let snapshot = (snaps.encode)(&state).map_err(EncodeError::from)?;
            append = append.with_snapshot(NewSnapshot {
                version: new_version,
                schema_version: A::SNAPSHOT_VERSION,
                state: snapshot,
            });
        }
        Ok(Decided {
            append: Some(append),
            version: new_version,
            events,
            state,
        })
    }

    /// Deletes aggregate `id`, softly: appends a [`DELETED_EVENT`] (with `reason`) after its last
    /// event, so its history stays for audit and every later command is refused with
    /// [`RepositoryError::Deleted`]. `false` if it was deleted already; an error if it does not
    /// exist.
    pub async fn delete(
        &self,
        id: &StreamId,
        reason: &str,
        metadata: &Metadata,
    ) -> Result<bool, RepositoryError<A::Error>> {
        if let Some(c) = &self.cache {
            c.forget(id);
        }
        delete_stream(&self.store, id, reason, metadata)
            .await?
            .ok_or_else(|| RepositoryError::NoSuchAggregate { stream: id.to_string() })
    }

    /// Tells the cache (if on) that `decided` was stored, by the caller, together with other
    /// appends: the next [`execute`](Self::execute) on that aggregate needs no load.
    pub fn stored(&self, id: &StreamId, decided: &Decided<A>) {
        if let Some(c) = &self.cache {
            c.put(id, &decided.state, decided.version);
        }
    }

    /// What [`stored`](Self::stored) would do, to run later (once the append has been stored by
    /// someone else, e.g. a saga participant's handler); `None` without a cache.
    pub fn when_stored(&self, id: &StreamId, decided: &Decided<A>) -> Option<Box<dyn FnOnce() + Send>>
    where
        A: Clone + Send + 'static,
    {
        let cache = std::sync::Arc::clone(self.cache.as_ref()?);
        let (id, state, version) = (id.clone(), decided.state.clone(), decided.version);
        Some(Box::new(move || cache.put(&id, &state, version)))
    }

    /// Runs `command` against the aggregate `id`: load, handle, append with the loaded version
    /// expected; on conflict, tries again with fresh state up to the configured number of times.
    pub async fn execute(
        &self,
        id: &StreamId,
        command: &A::Command,
        metadata: &Metadata,
    ) -> Result<Executed<A>, RepositoryError<A::Error>> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let cached = self.cache.as_ref().and_then(|c| c.get(id));
            let from_cache = cached.is_some();
            let loaded = match cached {
                Some(loaded) => loaded,
                None => self.load(id).await?,
            };
            let decided = self.decide_on(id, loaded, command, metadata);
            // A refusal or a no-op decided on a cached state is decided again on the stored one
            // (the cache may be behind another writer's appends; an append would have said so).
            if from_cache
                && matches!(
                    &decided,
                    Err(RepositoryError::Rejected(_)) | Ok(Decided { append: None, .. })
                )
            {
                if let Some(c) = &self.cache {
                    c.forget(id);
                }
                attempts -= 1;
                continue;
            }
            let Decided {
                append,
                version,
                events,
                state,
            } = decided?;
            let Some(append) = append else {
                return Ok(Executed {
                    version,
                    events,
                    state,
                    attempts,
                    snapshot_taken: false,
                });
            };
            let snapshot_taken = append.snapshot.is_some();
            match self.store.append(vec![append]).await {
                Ok(_) => {
                    if let Some(c) = &self.cache {
                        c.put(id, &state, version);
                    }
                    return Ok(Executed {
                        version,
                        events,
                        state,
                        attempts,
                        snapshot_taken,
                    });
                }
                Err(e) if e.is_conflict() && attempts < self.max_attempts => {
                    if let Some(c) = &self.cache {
                        c.forget(id);
                    }
                    tracing::debug!(stream = %id, attempts, "conflict, retrying command");
                }
                Err(e) => {
                    if let Some(c) = &self.cache {
                        c.forget(id);
                    }
                    return Err(e.into());
                }
            }
        }
    }
}

impl<A: Aggregate + Clone, S: EventStore> Repository<A, S> {
    /// Keeps the states of up to `capacity` aggregates this repository stored last, so
    /// [`execute`](Self::execute) on one of them skips the load. Safe with other writers: an
    /// append from a stale state conflicts and is retried from the store, and a refusal or a
    /// no-op decided on a cached state is decided again on the stored one. For a process that
    /// is the main writer of hot aggregates (a saga orchestrator).
    pub fn with_cache(mut self, capacity: usize) -> Self {
        self.cache = Some(std::sync::Arc::new(Cache {
            entries: Default::default(),
            capacity: capacity.max(1),
            copy: A::clone,
        }));
        self
    }
}

impl<A: Aggregate + Serialize + DeserializeOwned, S: EventStore> Repository<A, S> {
    /// Turns on snapshots: taken by `policy` in the same transaction as the command's events,
    /// used on load when their schema version is `A::SNAPSHOT_VERSION`.
    pub fn with_snapshots(mut self, policy: SnapshotPolicy<A>) -> Self {
        self.snapshots = Some(Snapshots {
            policy,
            encode: |a| serde_json::value::to_raw_value(a),
            decode: |s| serde_json::from_str(s),
        });
        self
    }
}

/// Makes sure a command's events carry a correlation id (the causation id, or a new one).
fn with_correlation(metadata: &Metadata) -> Metadata {
    let mut m = metadata.clone();
    if m.correlation_id.is_none() {
        m.correlation_id = Some(m.causation_id.unwrap_or_else(Uuid::now_v7));
    }
    m
}

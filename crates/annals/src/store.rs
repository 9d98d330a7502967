//! The `EventStore` trait (few required methods, the rest derived) and the shapes of its requests.

mod checks;

pub use checks::{StoredAt, check_stream, deletes, resolve_retry, restores, validate_append};

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::value::RawValue;

use crate::error::StoreError;
use crate::event::{NewEvent, PayloadOpener, RecordedEvent, open_payloads};
use crate::ids::{ExpectedVersion, StreamId};

/// Largest event accepted: payload plus metadata, in bytes (1 MiB).
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// Events for one stream, part of an append.
#[derive(Clone, Debug)]
pub struct StreamAppend {
    /// The stream.
    pub stream_id: StreamId,
    /// The stream's type (aggregate type); must match the type on record for an existing stream.
    pub stream_type: String,
    /// The optimistic-concurrency expectation.
    pub expected: ExpectedVersion,
    /// The events, in order.
    pub events: Vec<NewEvent>,
    /// A snapshot of the state after these events, stored in the same transaction.
    pub snapshot: Option<NewSnapshot>,
}

impl StreamAppend {
    /// Events for `stream_id` of `stream_type` under `expected`.
    pub fn new(
        stream_id: StreamId,
        stream_type: impl Into<String>,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Self {
        Self {
            stream_id,
            stream_type: stream_type.into(),
            expected,
            events,
            snapshot: None,
        }
    }

    /// Adds a snapshot of the state after this append.
    pub fn with_snapshot(mut self, snapshot: NewSnapshot) -> Self {
        self.snapshot = Some(snapshot);
        self
    }
}

/// A snapshot to store with an append; its version is the stream's version after the append.
#[derive(Clone, Debug)]
pub struct NewSnapshot {
    /// The version the snapshot is of (must equal the version the append ends at).
    pub version: u64,
    /// The schema version of the state; a snapshot of another schema version is ignored on load.
    pub schema_version: u32,
    /// The aggregate state as JSON.
    pub state: Box<RawValue>,
}

/// A stored snapshot.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The stream.
    pub stream_id: StreamId,
    /// The stream version the state is of.
    pub version: u64,
    /// The state's schema version.
    pub schema_version: u32,
    /// The state as JSON.
    pub state: Box<RawValue>,
    /// When it was taken.
    pub taken_at: SystemTime,
}

/// What an append stored for one stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamAppended {
    /// The stream.
    pub stream_id: StreamId,
    /// Version of the first event of this append.
    pub first_version: u64,
    /// Version of the last event: the stream's version to expect next.
    pub last_version: u64,
    /// Global position of the first event, where the backend gives positions in the append's own
    /// transaction (memory, SQLite). `None` on PostgreSQL, whose sequencer gives positions right
    /// after the commit (see `annals-postgres`); reads see them.
    pub first_position: Option<u64>,
    /// Global position of the last event (`None` as for `first_position`).
    pub last_position: Option<u64>,
    /// True when the events were already stored by an earlier try (idempotent retry).
    pub already_stored: bool,
}

/// What an append stored, one entry per stream in request order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Per stream, in the order of the request.
    pub streams: Vec<StreamAppended>,
}

/// Which way to read a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From old to new.
    Forwards,
    /// From new to old.
    Backwards,
}

/// A read of one stream: start version (inclusive), direction, and how many at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadStream {
    /// First version to return. Forwards, 1 is the start; backwards, `u64::MAX` is the end.
    pub from: u64,
    /// Which way.
    pub direction: Direction,
    /// At most this many events.
    pub limit: usize,
}

impl ReadStream {
    /// Every event, oldest first.
    pub fn all() -> Self {
        Self {
            from: 1,
            direction: Direction::Forwards,
            limit: usize::MAX,
        }
    }

    /// Events from `version` on, oldest first.
    pub fn from_version(version: u64) -> Self {
        Self {
            from: version,
            direction: Direction::Forwards,
            limit: usize::MAX,
        }
    }

    /// The newest `limit` events, newest first.
    pub fn last(limit: usize) -> Self {
        Self {
            from: u64::MAX,
            direction: Direction::Backwards,
            limit,
        }
    }

    /// Limits how many events are returned.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
}

/// An event as a fold reads it: its version, type, schema version and payload text — what a
/// [`Repository`](crate::Repository) load needs, without the metadata, id, time and position a
/// [`RecordedEvent`] carries — borrowed from the backend's row for the time of one decode, so a
/// backend answering [`EventStore::read_for_fold`] copies nothing per event: the typed decode
/// reads the payload where the row holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FoldEvent<'a> {
    /// Version within the stream.
    pub version: u64,
    /// The event type.
    pub event_type: &'a str,
    /// The payload's schema version.
    pub schema_version: u32,
    /// The payload, as stored: JSON text, checked when the typed decode reads it.
    pub payload: &'a str,
}

impl<'a> From<&'a RecordedEvent> for FoldEvent<'a> {
    fn from(e: &'a RecordedEvent) -> Self {
        Self {
            version: e.version,
            event_type: &e.event_type,
            schema_version: e.schema_version,
            payload: e.payload.get(),
        }
    }
}

/// One stream in a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    /// The stream.
    pub stream_id: StreamId,
    /// Its type.
    pub stream_type: String,
    /// Its last version.
    pub version: u64,
    /// When its last event was stored.
    pub updated_at: SystemTime,
}

/// An event store: a durable, ordered log of streams of events.
///
/// Backends implement the six required methods; everything else is derived. Every append is
/// atomic across its streams, checks each stream's [`ExpectedVersion`], and is idempotent by
/// event id (see DESIGN §1).
pub trait EventStore: Send + Sync {
    /// Appends events to one or several streams atomically.
    fn append(&self, appends: Vec<StreamAppend>) -> impl Future<Output = Result<AppendOutcome, StoreError>> + Send;

    /// Reads events of one stream.
    fn read_stream(
        &self,
        stream: &StreamId,
        read: ReadStream,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// Reads the global log: up to `limit` events with a position greater than `after`, in order.
    fn read_all(&self, after: u64, limit: usize)
    -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// Waits until an event with a position greater than `after` is committed, or `timeout`
    /// passes; returns the last committed position.
    fn wait_for_new(&self, after: u64, timeout: Duration) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The newest snapshot of `stream`, or the newest at or before `at_or_before`.
    fn load_snapshot(
        &self,
        stream: &StreamId,
        at_or_before: Option<u64>,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send;

    /// Lists streams ordered by id, after `after`, at most `limit`.
    fn list_streams(
        &self,
        after: Option<&StreamId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StreamInfo>, StoreError>> + Send;

    /// [`read_stream`](Self::read_stream), each payload's stored text passed through `open`
    /// before it is parsed ([`PayloadOpener`]).
    fn read_stream_opened(
        &self,
        stream: &StreamId,
        read: ReadStream,
        open: PayloadOpener,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send {
        async move { open_payloads(self.read_stream(stream, read).await?, &open) }
    }

    /// [`read_all`](Self::read_all), each payload's stored text passed through `open` first.
    fn read_all_opened(
        &self,
        after: u64,
        limit: usize,
        open: PayloadOpener,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send {
        async move { open_payloads(self.read_all(after, limit).await?, &open) }
    }

    /// Folds a stream's events from version `from` on, oldest first, at most `limit`: `step` is
    /// given `acc` and each event as a fold needs it ([`FoldEvent`], borrowed from the row), and
    /// `acc` comes back with how many events were read — the repository's load, in one pass with
    /// nothing held per event. By default a [`read_stream`](Self::read_stream) (so wrappers
    /// that change what reads see — upcasters, crypto-shredding — keep doing so); backends
    /// override it to read less per event and to decode each payload where their row holds it.
    fn read_for_fold<A, F>(
        &self,
        stream: &StreamId,
        from: u64,
        limit: usize,
        mut acc: A,
        mut step: F,
    ) -> impl Future<Output = Result<(A, usize), StoreError>> + Send
    where
        A: Send + 'static,
        F: FnMut(&mut A, FoldEvent<'_>) + Send + 'static,
    {
        async move {
            let events = self
                .read_stream(stream, ReadStream::from_version(from).limit(limit))
                .await?;
            for e in &events {
                step(&mut acc, FoldEvent::from(e));
            }
            Ok((acc, events.len()))
        }
    }

    /// Appends events to a single stream.
    fn append_to_stream(
        &self,
        stream: StreamId,
        stream_type: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<StreamAppended, StoreError>> + Send {
        let append = StreamAppend::new(stream, stream_type, expected, events);
        async move {
            let mut outcome = self.append(vec![append]).await?;
            Ok(outcome.streams.remove(0))
        }
    }

    /// The stream's last version, 0 if it does not exist.
    fn stream_version(&self, stream: &StreamId) -> impl Future<Output = Result<u64, StoreError>> + Send {
        async move {
            Ok(self
                .read_stream(stream, ReadStream::last(1))
                .await?
                .first()
                .map_or(0, |e| e.version))
        }
    }

    /// The newest snapshot of `stream` with `schema_version` (at or before `until`), and up to
    /// `limit` events after it (or from version 1 without one), not past `until`.
    ///
    /// This is the repository's load in one call; backends override it to do it in one round trip.
    fn read_from_snapshot(
        &self,
        stream: &StreamId,
        schema_version: u32,
        until: Option<u64>,
        limit: usize,
    ) -> impl Future<Output = Result<(Option<Snapshot>, Vec<RecordedEvent>), StoreError>> + Send {
        async move {
            let snapshot = self
                .load_snapshot(stream, until)
                .await?
                .filter(|s| s.schema_version == schema_version);
            let (from, limit) = events_after_snapshot(snapshot.as_ref(), until, limit);
            let events = if limit == 0 {
                Vec::new()
            } else {
                self.read_stream(stream, ReadStream::from_version(from).limit(limit))
                    .await?
            };
            Ok((snapshot, events))
        }
    }

    /// The last committed global position (0 when the store is empty).
    fn head_position(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        async move { self.wait_for_new(u64::MAX, Duration::ZERO).await }
    }
}

impl<S: EventStore + ?Sized> EventStore for Arc<S> {
    fn append(&self, appends: Vec<StreamAppend>) -> impl Future<Output = Result<AppendOutcome, StoreError>> + Send {
        (**self).append(appends)
    }
    fn read_stream(
        &self,
        stream: &StreamId,
        read: ReadStream,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send {
        (**self).read_stream(stream, read)
    }
    fn read_all(
        &self,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send {
        (**self).read_all(after, limit)
    }
    fn read_stream_opened(
        &self,
        stream: &StreamId,
        read: ReadStream,
        open: PayloadOpener,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send {
        (**self).read_stream_opened(stream, read, open)
    }
    fn read_all_opened(
        &self,
        after: u64,
        limit: usize,
        open: PayloadOpener,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send {
        (**self).read_all_opened(after, limit, open)
    }
    fn wait_for_new(&self, after: u64, timeout: Duration) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).wait_for_new(after, timeout)
    }
    fn read_for_fold<A, F>(
        &self,
        stream: &StreamId,
        from: u64,
        limit: usize,
        acc: A,
        step: F,
    ) -> impl Future<Output = Result<(A, usize), StoreError>> + Send
    where
        A: Send + 'static,
        F: FnMut(&mut A, FoldEvent<'_>) + Send + 'static,
    {
        (**self).read_for_fold(stream, from, limit, acc, step)
    }
    fn load_snapshot(
        &self,
        stream: &StreamId,
        at_or_before: Option<u64>,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send {
        (**self).load_snapshot(stream, at_or_before)
    }
    fn list_streams(
        &self,
        after: Option<&StreamId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StreamInfo>, StoreError>> + Send {
        (**self).list_streams(after, limit)
    }
    fn read_from_snapshot(
        &self,
        stream: &StreamId,
        schema_version: u32,
        until: Option<u64>,
        limit: usize,
    ) -> impl Future<Output = Result<(Option<Snapshot>, Vec<RecordedEvent>), StoreError>> + Send {
        (**self).read_from_snapshot(stream, schema_version, until, limit)
    }
    fn head_position(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).head_position()
    }
}

/// The first version to read after `snapshot` (1 without one) and how many events to read, at
/// most `limit` and not past `until`: the window [`EventStore::read_from_snapshot`] returns.
pub fn events_after_snapshot(snapshot: Option<&Snapshot>, until: Option<u64>, limit: usize) -> (u64, usize) {
    let from = snapshot.map_or(1, |s| s.version + 1);
    let limit = until.map_or(limit, |u| {
        usize::try_from(u.saturating_sub(from - 1))
            .unwrap_or(usize::MAX)
            .min(limit)
    });
    (from, limit)
}

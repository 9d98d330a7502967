//! Typed errors: one enum per family of operations, each `#[non_exhaustive]`.

use uuid::Uuid;

use crate::ids::{ExpectedVersion, describe_version};

/// A boxed error from a storage backend (database driver, I/O).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the event store: appends, reads, snapshots.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The optimistic-concurrency check failed; nothing of the append was stored.
    #[error("wrong expected version for stream `{stream}`: expected {expected}, actual {}", describe_version(*actual))]
    Conflict {
        /// The stream whose check failed.
        stream: String,
        /// What the append expected.
        expected: ExpectedVersion,
        /// The stream's last version (0 = the stream does not exist).
        actual: u64,
    },
    /// A stream id that is not acceptable.
    #[error("invalid stream id `{stream}`: {reason}")]
    InvalidStreamId {
        /// The refused id.
        stream: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A stream type name that is not acceptable.
    #[error("invalid stream type `{stream_type}` for stream `{stream}`: {reason}")]
    InvalidStreamType {
        /// The stream appended to.
        stream: String,
        /// The refused stream type.
        stream_type: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An event type name that is not acceptable.
    #[error("invalid event type `{event_type}` for stream `{stream}`: {reason}")]
    InvalidEventType {
        /// The stream appended to.
        stream: String,
        /// The refused event type.
        event_type: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A payload or metadata document that is not valid JSON.
    #[error("malformed JSON payload for stream `{stream}`: {reason}")]
    MalformedPayload {
        /// The stream appended to (empty when the event was built before its stream was known).
        stream: String,
        /// What the JSON parser said.
        reason: String,
    },
    /// An append with no events, or with no streams.
    #[error("empty append to stream `{stream}`: an append needs at least one event")]
    EmptyAppend {
        /// The stream appended to.
        stream: String,
    },
    /// One stream named twice in one append.
    #[error("stream `{stream}` appears more than once in one append; merge its events into one")]
    StreamRepeated {
        /// The repeated stream.
        stream: String,
    },
    /// An event whose payload and metadata together exceed the size limit.
    #[error("event `{event_type}` for stream `{stream}` is {size} bytes, over the limit of {limit} bytes")]
    EventTooLarge {
        /// The stream appended to.
        stream: String,
        /// The event's type.
        event_type: String,
        /// Payload plus metadata size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// An event id that is already stored at another position (or repeated in one append).
    #[error(
        "event id {event_id} for stream `{stream}` is already stored as `{stored_stream}` version {stored_version}"
    )]
    DuplicateEventId {
        /// The event id.
        event_id: Uuid,
        /// The stream the append targeted.
        stream: String,
        /// Where the id is stored (the same stream for a repeat inside one append).
        stored_stream: String,
        /// The version it is stored at (0 for a repeat inside one append).
        stored_version: u64,
    },
    /// An append that gives an existing stream another stream type.
    #[error("stream `{stream}` has type `{actual}`, not `{requested}`")]
    StreamTypeMismatch {
        /// The stream.
        stream: String,
        /// The stream type of the append.
        requested: String,
        /// The stream type on record.
        actual: String,
    },
    /// A snapshot whose version is not the stream's version after the append.
    #[error(
        "snapshot for stream `{stream}` is at version {snapshot_version}, but the append ends at version {stream_version}"
    )]
    SnapshotVersionMismatch {
        /// The stream.
        stream: String,
        /// The version the snapshot claims.
        snapshot_version: u64,
        /// The version the append ends at.
        stream_version: u64,
    },
    /// A stored row that cannot be read back.
    #[error("corrupt event in stream `{stream}` at version {version}: {reason}")]
    Corrupt {
        /// The stream.
        stream: String,
        /// The version of the bad row.
        version: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// An upcaster refused or failed on a stored event.
    #[error("upcasting `{event_type}` v{schema_version} in stream `{stream}` at version {version} failed: {reason}")]
    UpcastFailed {
        /// The stream.
        stream: String,
        /// The version of the event.
        version: u64,
        /// The stored event type.
        event_type: String,
        /// The stored schema version.
        schema_version: u32,
        /// What the upcaster said.
        reason: String,
    },
    /// The store was closed or its writer stopped.
    #[error("the event store is closed")]
    Closed,
    /// The backend failed (database, I/O).
    #[error("storage backend error: {0}")]
    Backend(#[source] BoxError),
}

impl StoreError {
    /// Wraps a backend error.
    pub fn backend(err: impl Into<BoxError>) -> Self {
        Self::Backend(err.into())
    }

    /// Whether this is an optimistic-concurrency conflict.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }
}

/// Errors decoding a stored event into a typed domain event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The event type is not one of the domain event type's variants.
    #[error("unknown event type `{event_type}` in stream `{stream}` at version {version}")]
    UnknownEventType {
        /// The stream.
        stream: String,
        /// The version.
        version: u64,
        /// The stored event type.
        event_type: String,
    },
    /// The stored schema version (after upcasting) is not the one the code reads.
    #[error(
        "event `{event_type}` in stream `{stream}` at version {version} has schema version {stored}, the code reads {expected} (register an upcaster)"
    )]
    SchemaVersion {
        /// The stream.
        stream: String,
        /// The version.
        version: u64,
        /// The event type.
        event_type: String,
        /// The schema version of the event read.
        stored: u32,
        /// The schema version the code expects.
        expected: u32,
    },
    /// The payload does not match the event type's shape.
    #[error("event `{event_type}` in stream `{stream}` at version {version} does not decode: {reason}")]
    Payload {
        /// The stream.
        stream: String,
        /// The version.
        version: u64,
        /// The event type.
        event_type: String,
        /// What serde said.
        reason: String,
    },
}

/// Errors encoding a typed domain event or state to JSON.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// serde_json failed.
    #[error("cannot encode to JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The event type does not serialize as an externally tagged enum variant.
    #[error("a domain event must serialize as an externally tagged enum variant (`{{\"Type\": {{..}}}}`), got: {0}")]
    NotAVariant(String),
}

/// Errors of [`Repository`](crate::Repository) operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepositoryError<E: std::error::Error + 'static> {
    /// The aggregate refused the command.
    #[error("command rejected: {0}")]
    Rejected(#[source] E),
    /// The aggregate was deleted: it takes no more commands.
    #[error("aggregate `{stream}` was deleted (at version {version}): it takes no more commands")]
    Deleted {
        /// Its stream.
        stream: String,
        /// The version of its deletion.
        version: u64,
    },
    /// There is no such aggregate (its stream has no events).
    #[error("no aggregate `{stream}`")]
    NoSuchAggregate {
        /// The stream.
        stream: String,
    },
    /// The store failed; a [`StoreError::Conflict`] here means every retry conflicted.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored event could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A new event or a snapshot could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

impl<E: std::error::Error + 'static> RepositoryError<E> {
    /// Whether this is an optimistic-concurrency conflict that outlived the retries.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_conflict())
    }
}

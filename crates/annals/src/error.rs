//! Typed errors: one enum per family of operations, each `#[non_exhaustive]`, and the one
//! [`ErrorKind`] every error answers, so a caller (a retry loop, the CLI's exit code, an HTTP
//! status) decides what to do from the kind alone.

use uuid::Uuid;

use crate::ids::{ExpectedVersion, describe_version};

/// A boxed error from a storage backend (database driver, I/O).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What kind of failure an error is: the one thing a caller needs to decide between retrying,
/// parking a message, stopping, or telling the user what to fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request does not fit the stored state (a version, a stream's type, a deleted stream,
    /// an event id stored elsewhere). Re-read and decide again; retrying as is fails the same way.
    Conflict,
    /// The request itself is wrong (a name, a payload, a size, a command the domain refuses).
    /// Nothing was changed; retrying fails the same way.
    InvalidInput,
    /// What was asked for does not exist.
    NotFound,
    /// Stored data cannot be read back (a row changed outside annals, an event the code cannot
    /// decode). A consumer parks the message; a read names the stream and version.
    Corrupt,
    /// The database or broker cannot be reached or is overloaded now: transient, so retry with
    /// backoff (visibly).
    Unavailable,
    /// The set-up is wrong (a URL, a schema, a server setting, a closed store): permanent until
    /// an operator fixes it, so stop and say how.
    Misconfigured,
}

impl ErrorKind {
    /// The kind's name as it appears in JSON output and logs (`conflict`, `invalid_input`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Conflict => "conflict",
            Self::InvalidInput => "invalid_input",
            Self::NotFound => "not_found",
            Self::Corrupt => "corrupt",
            Self::Unavailable => "unavailable",
            Self::Misconfigured => "misconfigured",
        }
    }

    /// Parses a name [`as_str`](Self::as_str) gives.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Conflict,
            Self::InvalidInput,
            Self::NotFound,
            Self::Corrupt,
            Self::Unavailable,
            Self::Misconfigured,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Whether retrying the same operation later may succeed.
    pub fn is_transient(self) -> bool {
        self == Self::Unavailable
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure outside the store — a broker, a handler's own database, a remote service — with the
/// [`ErrorKind`] a retry loop acts on: a publisher or a handler returns one to say whether a retry
/// can help ([`kind_of`] finds it in an error's chain).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<BoxError>,
}

impl Failure {
    /// A failure of `kind`, described by `message` (what failed and, for a permanent one, what to
    /// fix).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// A transient failure: retrying later may work.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// A permanent failure of the set-up: `message` says what to fix.
    pub fn misconfigured(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Misconfigured, message)
    }

    /// With the underlying error as its source.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Its kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

/// `error` and its causes, outermost first, joined by ": ", leaving out a cause whose text the
/// report already holds (a wrapper that prints its source, as `StoreError::Backend` and database
/// drivers do, would otherwise repeat it: "db error: db error: ERROR: …").
pub fn report(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let part = e.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        next = e.source();
    }
    text
}

/// The [`ErrorKind`] of an error of unknown type: the first error in its chain (itself, then its
/// sources) that is one of annals' own. `None` for errors annals knows nothing of (a handler's
/// own error type).
pub fn kind_of(error: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(e) = e.downcast_ref::<StoreError>() {
            return Some(e.kind());
        }
        if let Some(e) = e.downcast_ref::<DecodeError>() {
            return Some(e.kind());
        }
        if let Some(e) = e.downcast_ref::<EncodeError>() {
            return Some(e.kind());
        }
        if let Some(e) = e.downcast_ref::<crate::consume::ConsumeError>() {
            return Some(e.kind());
        }
        if let Some(e) = e.downcast_ref::<Failure>() {
            return Some(e.kind());
        }
        if let Some(e) = e.downcast_ref::<crate::relay::RelayError>() {
            return Some(e.kind());
        }
        next = e.source();
    }
    None
}

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
        /// Its global position, when it was met reading the global log (a consumer parks it
        /// there and goes on).
        position: Option<u64>,
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
    /// An append to a stream that was deleted (its last event is a
    /// [`DELETED_EVENT`](crate::DELETED_EVENT)); nothing was stored. Restore it first
    /// ([`restore_stream`](crate::restore_stream), `annals restore`).
    #[error("stream `{stream}` was deleted at version {version}: appends are refused until it is restored")]
    StreamDeleted {
        /// The stream.
        stream: String,
        /// The version of its deletion event.
        version: u64,
    },
    /// What was asked for does not exist (a store at a path, a parked message).
    #[error("{what}")]
    NotFound {
        /// What is missing, as a sentence: "no annals store at ./typo.db: …".
        what: String,
    },
    /// The database cannot be reached or has no capacity now (a refused connection, a pool with
    /// no free connection within its deadline, a server shutting down): retrying later may work.
    #[error("the event store is unavailable: {reason}")]
    Unavailable {
        /// What failed, in words an operator can act on.
        reason: String,
        /// The driver's error, where there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// The store is set up wrongly (a bad URL, a missing database or permission, a server
    /// setting): no retry helps until an operator fixes what `reason` says.
    #[error("the event store is misconfigured: {reason}")]
    Misconfigured {
        /// What is wrong and, where known, how to fix it.
        reason: String,
        /// The driver's error, where there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// The store was closed or its writer stopped.
    #[error("the event store is closed")]
    Closed,
    /// The backend failed (database, I/O) in a way it could not classify further; treated as
    /// transient ([`ErrorKind::Unavailable`]).
    #[error("storage backend error: {0}")]
    Backend(#[source] BoxError),
}

impl StoreError {
    /// Wraps a backend error.
    pub fn backend(err: impl Into<BoxError>) -> Self {
        Self::Backend(err.into())
    }

    /// A transient failure, with the driver's error if there is one.
    pub fn unavailable(reason: impl Into<String>, source: Option<BoxError>) -> Self {
        Self::Unavailable {
            reason: reason.into(),
            source,
        }
    }

    /// A permanent set-up failure; `reason` says what to fix.
    pub fn misconfigured(reason: impl Into<String>, source: Option<BoxError>) -> Self {
        Self::Misconfigured {
            reason: reason.into(),
            source,
        }
    }

    /// A [`Corrupt`](Self::Corrupt) error with the global position of its row; other errors as
    /// they are.
    pub fn at_position(self, at: u64) -> Self {
        match self {
            Self::Corrupt {
                stream,
                version,
                reason,
                position: None,
            } => Self::Corrupt {
                stream,
                version,
                reason,
                position: (at > 0).then_some(at),
            },
            other => other,
        }
    }

    /// Whether this is an optimistic-concurrency conflict.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// What kind of failure this is (see [`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Conflict { .. }
            | Self::DuplicateEventId { .. }
            | Self::StreamTypeMismatch { .. }
            | Self::StreamDeleted { .. } => ErrorKind::Conflict,
            Self::InvalidStreamId { .. }
            | Self::InvalidStreamType { .. }
            | Self::InvalidEventType { .. }
            | Self::MalformedPayload { .. }
            | Self::EmptyAppend { .. }
            | Self::StreamRepeated { .. }
            | Self::EventTooLarge { .. }
            | Self::SnapshotVersionMismatch { .. } => ErrorKind::InvalidInput,
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::Corrupt { .. } | Self::UpcastFailed { .. } => ErrorKind::Corrupt,
            Self::Unavailable { .. } | Self::Backend(_) => ErrorKind::Unavailable,
            Self::Misconfigured { .. } | Self::Closed => ErrorKind::Misconfigured,
        }
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

impl DecodeError {
    /// Always [`ErrorKind::Corrupt`]: a stored event the code cannot read as its type.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Corrupt
    }
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

impl EncodeError {
    /// Always [`ErrorKind::InvalidInput`]: the value does not make a storable event.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }
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
    Store(StoreError),
    /// A stored event could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A new event or a snapshot could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

impl<E: std::error::Error + 'static> From<StoreError> for RepositoryError<E> {
    /// A store error; an append refused because the stream was deleted is [`Self::Deleted`].
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::StreamDeleted { stream, version } => Self::Deleted { stream, version },
            other => Self::Store(other),
        }
    }
}

impl<E: std::error::Error + 'static> RepositoryError<E> {
    /// Whether this is an optimistic-concurrency conflict that outlived the retries.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_conflict())
    }

    /// What kind of failure this is: a refused command is [`ErrorKind::InvalidInput`], a deleted
    /// aggregate a [`ErrorKind::Conflict`], a missing one [`ErrorKind::NotFound`]; the rest as
    /// their inner error says.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Rejected(_) => ErrorKind::InvalidInput,
            Self::Deleted { .. } => ErrorKind::Conflict,
            Self::NoSuchAggregate { .. } => ErrorKind::NotFound,
            Self::Store(e) => e.kind(),
            Self::Decode(e) => e.kind(),
            Self::Encode(e) => e.kind(),
        }
    }
}

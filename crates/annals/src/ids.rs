//! Validated names: stream ids, stream types, event types, and the expected version of an append.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// Longest stream id accepted, in bytes.
pub const MAX_STREAM_ID_LEN: usize = 200;
/// Longest stream type or event type accepted, in bytes.
pub const MAX_TYPE_NAME_LEN: usize = 128;

/// The id of one stream (one aggregate instance), e.g. `order-0193f0c1`.
///
/// Valid ids are 1 to [`MAX_STREAM_ID_LEN`] bytes of printable ASCII without whitespace and
/// without `.`, `*` and `>` (they are separators and wildcards in broker subjects); a leading `$`
/// is reserved for the store's own streams.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

impl StreamId {
    /// Validates `id` and wraps it.
    pub fn new(id: impl Into<String>) -> Result<Self, StoreError> {
        let id = id.into();
        match stream_id_problem(&id) {
            None => Ok(Self(id)),
            Some(reason) => Err(StoreError::InvalidStreamId { stream: id, reason }),
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn stream_id_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        return Some("it is empty");
    }
    if id.len() > MAX_STREAM_ID_LEN {
        return Some("it is longer than 200 bytes");
    }
    if id.starts_with('$') {
        return Some("a leading `$` is reserved for the store's own streams");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'.' | b'*' | b'>'))
    {
        return Some("only printable ASCII without whitespace, `.`, `*` or `>` is allowed");
    }
    None
}

impl TryFrom<String> for StreamId {
    type Error = StoreError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<StreamId> for String {
    fn from(value: StreamId) -> Self {
        value.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for StreamId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Why a stream type or event type name is not acceptable, if it is not.
///
/// Names are 1 to [`MAX_TYPE_NAME_LEN`] bytes of ASCII letters, digits, `_` and `-`, and start
/// with a letter.
pub fn type_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("it is empty");
    }
    if name.len() > MAX_TYPE_NAME_LEN {
        return Some("it is longer than 128 bytes");
    }
    if !name.as_bytes()[0].is_ascii_alphabetic() {
        return Some("it must start with an ASCII letter");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Some("only ASCII letters, digits, `_` and `-` are allowed");
    }
    None
}

/// What an append expects of the stream's current version: optimistic concurrency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// No check: append at the end, whatever it is.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must exist (hold at least one event).
    StreamExists,
    /// The stream's last version must be exactly this (0 means: no stream yet).
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream whose last version is `current` (0 = no stream) satisfies this expectation.
    pub fn allows(self, current: u64) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => current == 0,
            Self::StreamExists => current > 0,
            Self::Exact(v) => current == v,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any version"),
            Self::NoStream => f.write_str("no stream"),
            Self::StreamExists => f.write_str("an existing stream"),
            Self::Exact(0) => f.write_str("version 0 (no stream)"),
            Self::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// Formats a stream's current version for messages: `version N`, or `no stream` for 0.
pub(crate) fn describe_version(v: u64) -> String {
    if v == 0 {
        "no stream".to_owned()
    } else {
        format!("version {v}")
    }
}

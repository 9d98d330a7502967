//! The checks every backend runs the same way: an append's input before it touches storage, a
//! stream's type and version against the append's expectation, and telling an idempotent retry
//! from a real duplicate by where its event ids are stored.

use std::collections::HashSet;

use uuid::Uuid;

use super::{MAX_EVENT_BYTES, StreamAppend, StreamAppended};
use crate::error::StoreError;
use crate::ids::{ExpectedVersion, type_name_problem};
use crate::repository::{DELETED_EVENT, RESTORED_EVENT};

/// Checks everything about an append that needs no database: names, sizes, emptiness, repeats.
///
/// Backends call this before touching storage, so bad input never changes the store.
pub fn validate_append(appends: &[StreamAppend]) -> Result<(), StoreError> {
    if appends.is_empty() {
        return Err(StoreError::EmptyAppend { stream: String::new() });
    }
    let mut streams = HashSet::with_capacity(appends.len());
    let mut ids: HashSet<Uuid> = HashSet::new();
    for a in appends {
        let stream = a.stream_id.as_str();
        if !streams.insert(stream) {
            return Err(StoreError::StreamRepeated {
                stream: stream.to_owned(),
            });
        }
        if let Some(reason) = type_name_problem(&a.stream_type) {
            return Err(StoreError::InvalidStreamType {
                stream: stream.to_owned(),
                stream_type: a.stream_type.clone(),
                reason,
            });
        }
        if let Some(s) = &a.snapshot {
            crate::json::check_raw(&s.state).map_err(|reason| StoreError::MalformedPayload {
                stream: stream.to_owned(),
                reason: format!("snapshot state: {reason}"),
            })?;
        }
        if a.events.is_empty() {
            return Err(StoreError::EmptyAppend {
                stream: stream.to_owned(),
            });
        }
        for e in &a.events {
            if let Some(reason) = type_name_problem(&e.event_type) {
                return Err(StoreError::InvalidEventType {
                    stream: stream.to_owned(),
                    event_type: e.event_type.clone(),
                    reason,
                });
            }
            crate::json::check_raw(&e.payload).map_err(|reason| StoreError::MalformedPayload {
                stream: stream.to_owned(),
                reason: format!("event `{}`: {reason}", e.event_type),
            })?;
            let size = e.payload.get().len() + e.metadata.to_json().len();
            if size > MAX_EVENT_BYTES {
                return Err(StoreError::EventTooLarge {
                    stream: stream.to_owned(),
                    event_type: e.event_type.clone(),
                    size,
                    limit: MAX_EVENT_BYTES,
                });
            }
            if !ids.insert(e.event_id) {
                return Err(StoreError::DuplicateEventId {
                    event_id: e.event_id,
                    stream: stream.to_owned(),
                    stored_stream: stream.to_owned(),
                    stored_version: 0,
                });
            }
        }
    }
    Ok(())
}

/// Whether `append` starts with a [`RESTORED_EVENT`]: the one append a deleted stream takes.
pub fn restores(append: &StreamAppend) -> bool {
    append.events.first().is_some_and(|e| e.event_type == RESTORED_EVENT)
}

/// Whether `append` ends with a [`DELETED_EVENT`]: after it, the stream takes only a restore.
pub fn deletes(append: &StreamAppend) -> bool {
    append.events.last().is_some_and(|e| e.event_type == DELETED_EVENT)
}

/// Where an event id is already stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAt {
    /// The stream holding it.
    pub stream_id: String,
    /// Its version there.
    pub version: u64,
    /// Its global position (`None` if not yet given).
    pub global_position: Option<u64>,
}

/// Decides what a stream append whose event ids were looked up is: new (`Ok(None)`), an
/// idempotent retry of events already stored at the same positions (`Ok(Some(..))`), or an error.
///
/// `found[i]` is where `append.events[i]`'s id is stored, if anywhere.
pub fn resolve_retry(append: &StreamAppend, found: &[Option<StoredAt>]) -> Result<Option<StreamAppended>, StoreError> {
    if found.iter().all(Option::is_none) {
        return Ok(None);
    }
    let stream = append.stream_id.as_str();
    let first = found.iter().flatten().next().expect("at least one found");
    let duplicate = || StoreError::DuplicateEventId {
        event_id: append.events[found.iter().position(Option::is_some).unwrap_or(0)].event_id,
        stream: stream.to_owned(),
        stored_stream: first.stream_id.clone(),
        stored_version: first.version,
    };
    let Some(Some(head)) = found.first() else {
        return Err(duplicate());
    };
    let consecutive = found.iter().enumerate().all(|(i, f)| {
        f.as_ref()
            .is_some_and(|f| f.stream_id == stream && f.version == head.version + i as u64)
    });
    let position_matches = match append.expected {
        ExpectedVersion::Exact(v) => head.version == v + 1,
        ExpectedVersion::NoStream => head.version == 1,
        ExpectedVersion::StreamExists => head.version > 1,
        ExpectedVersion::Any => true,
    };
    if !consecutive || !position_matches {
        return Err(duplicate());
    }
    let last = found.last().and_then(Option::as_ref).expect("all found");
    Ok(Some(StreamAppended {
        stream_id: append.stream_id.clone(),
        first_version: head.version,
        last_version: last.version,
        first_position: head.global_position,
        last_position: last.global_position,
        already_stored: true,
    }))
}

/// Checks a stream's current version, type and deletion against an append, before anything is
/// written. `deleted_at`: the version of the stream's deletion event if its last event is one;
/// then only an append starting with a [`RESTORED_EVENT`] is accepted.
pub fn check_stream(
    append: &StreamAppend,
    current_version: u64,
    current_type: Option<&str>,
    deleted_at: Option<u64>,
) -> Result<(), StoreError> {
    if let Some(actual) = current_type
        && actual != append.stream_type
    {
        return Err(StoreError::StreamTypeMismatch {
            stream: append.stream_id.to_string(),
            requested: append.stream_type.clone(),
            actual: actual.to_owned(),
        });
    }
    if let Some(version) = deleted_at
        && !restores(append)
    {
        return Err(StoreError::StreamDeleted {
            stream: append.stream_id.to_string(),
            version,
        });
    }
    if !append.expected.allows(current_version) {
        return Err(StoreError::Conflict {
            stream: append.stream_id.to_string(),
            expected: append.expected,
            actual: current_version,
        });
    }
    if let Some(s) = &append.snapshot {
        let end = current_version + append.events.len() as u64;
        if s.version != end {
            return Err(StoreError::SnapshotVersionMismatch {
                stream: append.stream_id.to_string(),
                snapshot_version: s.version,
                stream_version: end,
            });
        }
    }
    Ok(())
}

//! Soft deletion: an aggregate's stream keeps every event and ends with a deletion event.

use crate::error::StoreError;
use crate::event::{Metadata, NewEvent};
use crate::ids::{ExpectedVersion, StreamId};
use crate::store::{EventStore, ReadStream, StreamAppend};

use super::with_correlation;

/// The event type of a soft deletion: the aggregate's stream keeps every event (for audit) and
/// ends with this one. Every store refuses a later append to the stream
/// ([`StoreError::StreamDeleted`]) unless it starts with a [`RESTORED_EVENT`].
pub const DELETED_EVENT: &str = "StreamDeleted";

/// The event type that brings a deleted stream back ([`restore_stream`]): the one event an
/// append to a deleted stream may start with.
pub const RESTORED_EVENT: &str = "StreamRestored";

/// Deletes the aggregate in stream `id` softly, whatever its type (see [`Repository::delete`](super::Repository::delete)):
/// `Some(true)` if this call deleted it, `Some(false)` if it was deleted already, `None` if the
/// stream does not exist.
pub async fn delete_stream<S: EventStore>(
    store: &S,
    id: &StreamId,
    reason: &str,
    metadata: &Metadata,
) -> Result<Option<bool>, StoreError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let Some(last) = store.read_stream(id, ReadStream::last(1)).await?.pop() else {
            return Ok(None);
        };
        if last.event_type == DELETED_EVENT {
            return Ok(Some(false));
        }
        let payload = serde_json::value::to_raw_value(&serde_json::json!({ "reason": reason })).map_err(|e| {
            StoreError::MalformedPayload {
                stream: id.to_string(),
                reason: e.to_string(),
            }
        })?;
        let event = NewEvent::new(DELETED_EVENT, payload).with_metadata(with_correlation(metadata));
        let append = StreamAppend::new(
            id.clone(),
            last.stream_type.clone(),
            ExpectedVersion::Exact(last.version),
            vec![event],
        );
        match store.append(vec![append]).await {
            Ok(_) => return Ok(Some(true)),
            Err(e) if e.is_conflict() && attempts < 5 => {}
            Err(e) => return Err(e),
        }
    }
}

/// Brings back a stream deleted softly, whatever its type: appends a [`RESTORED_EVENT`] (with
/// `reason`) after its deletion, so appends and commands are accepted again and listings show
/// it. `Some(true)` if this call restored it, `Some(false)` if it was not deleted, `None` if the
/// stream does not exist.
pub async fn restore_stream<S: EventStore>(
    store: &S,
    id: &StreamId,
    reason: &str,
    metadata: &Metadata,
) -> Result<Option<bool>, StoreError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let Some(last) = store.read_stream(id, ReadStream::last(1)).await?.pop() else {
            return Ok(None);
        };
        if last.event_type != DELETED_EVENT {
            return Ok(Some(false));
        }
        let payload = serde_json::value::to_raw_value(&serde_json::json!({ "reason": reason })).map_err(|e| {
            StoreError::MalformedPayload {
                stream: id.to_string(),
                reason: e.to_string(),
            }
        })?;
        let event = NewEvent::new(RESTORED_EVENT, payload).with_metadata(with_correlation(metadata));
        let append = StreamAppend::new(
            id.clone(),
            last.stream_type.clone(),
            ExpectedVersion::Exact(last.version),
            vec![event],
        );
        match store.append(vec![append]).await {
            Ok(_) => return Ok(Some(true)),
            Err(e) if e.is_conflict() && attempts < 5 => {}
            Err(e) => return Err(e),
        }
    }
}

//! Hard delete (DESIGN §8): the rare purge of a stream the law requires, as an explicit admin
//! operation that is itself recorded. Events are otherwise kept forever; a soft delete
//! ([`Repository::delete`](crate::Repository::delete)) is the normal way to retire an aggregate.

use std::future::Future;

use serde_json::json;

use crate::error::StoreError;
use crate::event::{Metadata, NewEvent};
use crate::ids::{ExpectedVersion, StreamId};
use crate::store::EventStore;

/// The stream every purge is recorded in (type [`PURGE_STREAM_TYPE`]); it cannot be purged.
pub const PURGE_STREAM: &str = "annals-purges";
/// The stream type of [`PURGE_STREAM`].
pub const PURGE_STREAM_TYPE: &str = "Purge";
/// The event type of a purge record: `{stream, stream_type, version, reason}`.
pub const PURGED_EVENT: &str = "StreamPurged";

/// A store that can remove a stream for good.
pub trait Purge: EventStore {
    /// Removes stream `stream`'s events, snapshots and stream row; returns how many events went.
    /// Other streams and the global log's order are untouched: the log keeps a hole where the
    /// events were, and positions are never reused.
    fn purge_stream(&self, stream: &StreamId) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// Purges `stream` after recording who (the metadata's actor), why and what in
/// [`PURGE_STREAM`]; returns how many events went (0, and nothing recorded, if the stream does not
/// exist). The record comes first, so no purge goes unrecorded.
pub async fn purge<S: Purge>(
    store: &S,
    stream: &StreamId,
    reason: &str,
    metadata: &Metadata,
) -> Result<u64, StoreError> {
    if stream.as_str() == PURGE_STREAM {
        return Err(StoreError::InvalidStreamId {
            stream: stream.to_string(),
            reason: "the record of purges cannot be purged",
        });
    }
    let Some(last) = store
        .read_stream(stream, crate::store::ReadStream::last(1))
        .await?
        .pop()
    else {
        return Ok(0);
    };
    let record = json!({ "stream": stream.as_str(), "stream_type": last.stream_type, "version": last.version, "reason": reason });
    store
        .append_to_stream(
            StreamId::new(PURGE_STREAM)?,
            PURGE_STREAM_TYPE,
            ExpectedVersion::Any,
            vec![NewEvent::from_value(PURGED_EVENT, &record).with_metadata(metadata.clone())],
        )
        .await?;
    store.purge_stream(stream).await
}

impl<S: Purge + ?Sized> Purge for std::sync::Arc<S> {
    fn purge_stream(&self, stream: &StreamId) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).purge_stream(stream)
    }
}

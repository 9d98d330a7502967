//! Event queries and row decoding. A row that does not decode is an error naming its stream and
//! version ([`StoreError::Corrupt`]), never a panic or a misread.

use std::time::SystemTime;

use annals::event::{parse_stored_metadata, parse_stored_payload};
use annals::{RecordedEvent, StoreError, StreamId};
use tokio_postgres::Row;

/// An event query: the columns [`decode_row`] reads, in its order, then `$rest`.
macro_rules! select_events {
    ($from:literal, $rest:literal) => {
        concat!(
            "SELECT l.position, e.stream_id, e.stream_type, e.version, e.event_id, e.event_type, ",
            "e.schema_version, e.payload::text, e.metadata::text, e.recorded_at FROM ",
            $from,
            " ",
            $rest
        )
    };
}

/// A stream's events from a version on, oldest first (position NULL if not yet sequenced).
pub(crate) const STREAM_FORWARDS: &str = select_events!(
    "events e LEFT JOIN log l ON l.event_row = e.id",
    "WHERE e.stream_id = $1 AND e.version >= $2 ORDER BY e.version LIMIT $3"
);
/// A stream's events up to a version, newest first.
pub(crate) const STREAM_BACKWARDS: &str = select_events!(
    "events e LEFT JOIN log l ON l.event_row = e.id",
    "WHERE e.stream_id = $1 AND e.version <= $2 ORDER BY e.version DESC LIMIT $3"
);
/// The global log after a position.
pub(crate) const LOG_AFTER: &str = select_events!(
    "log l JOIN events e ON e.id = l.event_row",
    "WHERE l.position > $1 ORDER BY l.position LIMIT $2"
);

/// Decodes one event row. `Ok(None)` means the row has no global position yet (its appender
/// died between commit and sequencing): the caller sequences and reads again.
pub(crate) fn decode_row(row: &Row) -> Result<Option<RecordedEvent>, StoreError> {
    let b = StoreError::backend;
    let stream: String = row.try_get(1).map_err(b)?;
    let version = row.try_get::<_, i64>(3).map_err(b)? as u64;
    let corrupt = |reason: &str| StoreError::Corrupt {
        stream: stream.clone(),
        version,
        reason: reason.to_owned(),
    };
    let Some(position) = row.try_get::<_, Option<i64>>(0).map_err(b)? else {
        return Ok(None);
    };
    let stream_id = StreamId::new(stream.clone()).map_err(|_| corrupt("invalid stream id"))?;
    let schema_version: i32 = row.try_get(6).map_err(b)?;
    let payload: String = row.try_get(7).map_err(b)?;
    let metadata: String = row.try_get(8).map_err(b)?;
    Ok(Some(RecordedEvent {
        global_position: position as u64,
        stream_type: row.try_get(2).map_err(b)?,
        version,
        event_id: row.try_get(4).map_err(b)?,
        event_type: row.try_get(5).map_err(b)?,
        schema_version: u32::try_from(schema_version).map_err(|_| corrupt("schema version out of range"))?,
        metadata: parse_stored_metadata(&stream, version, &metadata)?,
        payload: parse_stored_payload(&stream, version, payload)?,
        recorded_at: row.try_get::<_, SystemTime>(9).map_err(b)?,
        stream_id,
    }))
}

/// Decodes rows, `None` for a row that has no position yet.
pub(crate) fn decode_rows(rows: &[Row]) -> Result<Vec<Option<RecordedEvent>>, StoreError> {
    rows.iter().map(decode_row).collect()
}

//! Event queries and row decoding. A row that does not decode is an error naming its stream and
//! version ([`StoreError::Corrupt`]), never a panic or a misread.

use std::time::SystemTime;

use annals::event::{parse_stored_metadata, parse_stored_payload};
use annals::{RecordedEvent, StoreError, StreamId};
use tokio_postgres::Row;

/// The columns [`decode_row`] reads after the position, from events `e`.
macro_rules! event_columns {
    () => {
        "e.stream_id, e.stream_type, e.version, e.event_id, e.event_type, e.schema_version, \
         e.payload::text, e.metadata::text, e.recorded_at"
    };
}

/// An event's global position, from its group in `log` (NULL if not yet sequenced).
macro_rules! position_of_e {
    () => {
        "(SELECT CASE WHEN e.version < g.first_version + g.count \
                 THEN g.first_position + (e.version - g.first_version) END \
          FROM log g WHERE g.stream_id = e.stream_id AND g.first_version <= e.version \
          ORDER BY g.first_version DESC LIMIT 1)"
    };
}

/// A stream's events from a version on, oldest first (position NULL if not yet sequenced).
pub(crate) const STREAM_FORWARDS: &str = concat!(
    "SELECT ",
    position_of_e!(),
    ", ",
    event_columns!(),
    " FROM events e WHERE e.stream_id = $1 AND e.version >= $2 ORDER BY e.version LIMIT $3"
);
/// A stream's events up to a version, newest first.
pub(crate) const STREAM_BACKWARDS: &str = concat!(
    "SELECT ",
    position_of_e!(),
    ", ",
    event_columns!(),
    " FROM events e WHERE e.stream_id = $1 AND e.version <= $2 ORDER BY e.version DESC LIMIT $3"
);
/// Where events are stored, by event id (for telling an idempotent retry from a duplicate).
pub(crate) const STORED_BY_ID: &str = concat!(
    "SELECT e.event_id, e.stream_id, e.version, ",
    position_of_e!(),
    " FROM events e WHERE e.event_id = ANY($1)"
);
/// The global log after a position: the groups from the one holding position `$1 + 1` on (at
/// most `$2` of them, each holds at least one event), each group's events by version.
pub(crate) const LOG_AFTER: &str = concat!(
    "SELECT g.first_position + (e.version - g.first_version), ",
    event_columns!(),
    " FROM (SELECT l.first_position, l.stream_id, l.first_version, l.count FROM log l \
            WHERE l.first_position >= coalesce((SELECT l2.first_position FROM log l2 \
                  WHERE l2.first_position <= $1::bigint + 1 ORDER BY l2.first_position DESC LIMIT 1), 1) \
            ORDER BY l.first_position LIMIT $2::bigint) g \
      CROSS JOIN LATERAL (SELECT * FROM events x WHERE x.stream_id = g.stream_id \
            AND x.version >= g.first_version AND x.version < g.first_version + g.count) e \
      WHERE g.first_position + (e.version - g.first_version) > $1 \
      ORDER BY g.first_position, e.version LIMIT $2::bigint"
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

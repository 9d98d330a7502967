//! Event queries and row decoding. A row that does not decode is an error naming its stream and
//! version ([`StoreError::Corrupt`]), never a panic or a misread.

use std::time::SystemTime;

use annals::event::{PayloadOpener, parse_opened_payload, parse_stored_metadata};
use annals::{RecordedEvent, StoreError, StreamId};
use tokio_postgres::Row;

/// An event's global position, from its group in `log` (NULL if not yet sequenced).
macro_rules! position_of_e {
    () => {
        "(SELECT CASE WHEN e.version < g.first_version + g.count \
                 THEN g.first_position + (e.version - g.first_version) END \
          FROM log g WHERE g.stream_id = e.stream_id AND g.first_version <= e.version \
          ORDER BY g.first_version DESC LIMIT 1)"
    };
}

/// A stream's events from a version on, oldest first, positions NULL (`sql/reads.sql`): read
/// with [`STREAM_GROUPS`] in the same round trip, which gives them.
pub(crate) const STREAM_FORWARDS: &str = "SELECT * FROM stream_events_forwards($1, $2, $3)";
/// A stream's events up to a version, newest first, positions NULL.
pub(crate) const STREAM_BACKWARDS: &str = "SELECT * FROM stream_events_backwards($1, $2, $3)";
/// The stream's `log` groups over versions `$2` to `$3`, by first version.
pub(crate) const STREAM_GROUPS: &str = "SELECT * FROM stream_groups($1, $2, $3)";

/// Gives `events` (one stream's, in version order either way) their global positions from the
/// stream's `groups` (first position, first version, count; by first version); an event in no
/// group (not sequenced yet) keeps 0.
pub(crate) fn place_in_groups(events: &mut [RecordedEvent], groups: &[(i64, i64, i32)]) {
    for e in events.iter_mut() {
        let v = i64::try_from(e.version).unwrap_or(i64::MAX);
        // The last group starting at or before v.
        let at = groups.partition_point(|g| g.1 <= v);
        if let Some(&(first_position, first_version, count)) = at.checked_sub(1).map(|i| &groups[i])
            && v < first_version + i64::from(count)
        {
            e.global_position = u64::try_from(first_position + (v - first_version)).unwrap_or(0);
        }
    }
}
/// Where events are stored, by event id (for telling an idempotent retry from a duplicate).
pub(crate) const STORED_BY_ID: &str = concat!(
    "SELECT e.event_id, e.stream_id, e.version, ",
    position_of_e!(),
    " FROM events e WHERE e.event_id = ANY($1)"
);
/// The global log after position `$1`, at most `$2` events (`sql/reads.sql`).
pub(crate) const LOG_AFTER: &str = "SELECT * FROM read_log($1, $2)";

/// Decodes one event row, its payload through `open` if given. A row with no global position yet
/// (a stream read of events the sequencer has not reached: it runs right after their commit)
/// has position 0.
pub(crate) fn decode_row(row: &Row, open: Option<&PayloadOpener>) -> Result<RecordedEvent, StoreError> {
    let b = crate::error::db;
    let stream: String = row.try_get(1).map_err(b)?;
    let version = row.try_get::<_, i64>(3).map_err(b)? as u64;
    let position = row.try_get::<_, Option<i64>>(0).map_err(b)?.unwrap_or(0);
    let corrupt = |reason: &str| StoreError::Corrupt {
        stream: stream.clone(),
        version,
        reason: reason.to_owned(),
        position: u64::try_from(position).ok().filter(|&p| p > 0),
    };
    let at = |e: StoreError| e.at_position(position as u64);
    let stream_id = StreamId::new(stream.clone()).map_err(|_| corrupt("invalid stream id"))?;
    let schema_version: i32 = row.try_get(6).map_err(b)?;
    let payload: String = row.try_get(7).map_err(b)?;
    let metadata: String = row.try_get(8).map_err(b)?;
    Ok(RecordedEvent {
        global_position: position as u64,
        stream_type: row.try_get(2).map_err(b)?,
        version,
        event_id: row.try_get(4).map_err(b)?,
        event_type: row.try_get(5).map_err(b)?,
        schema_version: u32::try_from(schema_version).map_err(|_| corrupt("schema version out of range"))?,
        metadata: parse_stored_metadata(&stream, version, &metadata).map_err(at)?,
        payload: parse_opened_payload(&stream, version, payload, open).map_err(at)?,
        recorded_at: row.try_get::<_, SystemTime>(9).map_err(b)?,
        stream_id,
    })
}

/// Decodes rows.
pub(crate) fn decode_rows(rows: &[Row], open: Option<&PayloadOpener>) -> Result<Vec<RecordedEvent>, StoreError> {
    rows.iter().map(|row| decode_row(row, open)).collect()
}

#[cfg(test)]
mod tests {
    use super::place_in_groups;

    fn event(version: u64) -> annals::RecordedEvent {
        annals::RecordedEvent {
            global_position: 0,
            stream_id: annals::StreamId::new("s-1").unwrap(),
            stream_type: "S".into(),
            version,
            event_id: uuid::Uuid::nil(),
            event_type: "E".into(),
            schema_version: 1,
            payload: serde_json::value::RawValue::from_string("{}".into()).unwrap(),
            metadata: annals::Metadata::default(),
            recorded_at: std::time::UNIX_EPOCH,
        }
    }

    #[test]
    fn positions_come_from_the_groups_either_way_and_unsequenced_keep_0() {
        // v1-3 at 10-12, v4 at 20, v5-6 not sequenced yet.
        let groups = [(10, 1, 3), (20, 4, 1)];
        let mut forwards: Vec<_> = (1..=6).map(event).collect();
        place_in_groups(&mut forwards, &groups);
        let got: Vec<u64> = forwards.iter().map(|e| e.global_position).collect();
        assert_eq!(got, [10, 11, 12, 20, 0, 0]);
        let mut backwards: Vec<_> = (1..=6).rev().map(event).collect();
        place_in_groups(&mut backwards, &groups);
        let got: Vec<u64> = backwards.iter().map(|e| e.global_position).collect();
        assert_eq!(got, [0, 0, 20, 12, 11, 10]);
        let mut none = vec![event(1)];
        place_in_groups(&mut none, &[]);
        assert_eq!(none[0].global_position, 0);
    }
}

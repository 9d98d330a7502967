//! Replicated rows of `events` and `log` (pgoutput's text columns by name) decoded into events
//! and log groups.

use std::collections::HashMap;

use annals::event::{from_micros, parse_stored_metadata};
use annals::{RecordedEvent, StoreError, StreamId};

use super::pgoutput;

/// A replicated row that does not decode: corrupt data (the relay stops there, saying so).
fn replicated(reason: String) -> StoreError {
    StoreError::Corrupt {
        stream: String::new(),
        version: 0,
        reason,
        position: None,
    }
}

fn column<'a>(row: &HashMap<&str, Option<&'a str>>, name: &str) -> Result<&'a str, StoreError> {
    row.get(name)
        .copied()
        .flatten()
        .ok_or_else(|| replicated(format!("a replicated row has no {name}")))
}

fn number<T: std::str::FromStr>(row: &HashMap<&str, Option<&str>>, name: &str) -> Result<T, StoreError> {
    let text = column(row, name)?;
    text.parse()
        .map_err(|_| replicated(format!("a replicated {name} is not a number: {text:?}")))
}

/// An `events` insert as an event (its position comes from `log` later).
pub(super) fn event_of(row: &HashMap<&str, Option<&str>>) -> Result<RecordedEvent, StoreError> {
    let stream_id = StreamId::new(column(row, "stream_id")?)?;
    let version: u64 = number(row, "version")?;
    let payload = serde_json::value::RawValue::from_string(column(row, "payload")?.to_owned())
        .map_err(|e| replicated(format!("the replicated payload of {stream_id} v{version}: {e}")))?;
    Ok(RecordedEvent {
        global_position: 0,
        stream_type: column(row, "stream_type")?.to_owned(),
        version,
        event_id: column(row, "event_id")?
            .parse()
            .map_err(|e| replicated(format!("a replicated event_id: {e}")))?,
        event_type: column(row, "event_type")?.to_owned(),
        schema_version: number(row, "schema_version")?,
        payload,
        metadata: parse_stored_metadata(stream_id.as_str(), version, column(row, "metadata")?)?,
        recorded_at: pgoutput::timestamptz_micros(column(row, "recorded_at")?)
            .map_or(std::time::SystemTime::UNIX_EPOCH, from_micros),
        stream_id,
    })
}

/// A `log` insert: (first position, stream, first version, count).
pub(super) fn group_of(row: &HashMap<&str, Option<&str>>) -> Result<(u64, String, u64, u64), StoreError> {
    Ok((
        number(row, "first_position")?,
        column(row, "stream_id")?.to_owned(),
        number(row, "first_version")?,
        number(row, "count")?,
    ))
}

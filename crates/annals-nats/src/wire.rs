//! An event as a NATS message and back: subject, headers, payload (names in the crate docs).

use std::time::SystemTime;

use annals::event::{from_micros, parse_stored_metadata, to_micros};
use annals::{RecordedEvent, StreamId};
use async_nats::HeaderMap;
use bytes::Bytes;
use uuid::Uuid;

/// Header with the event's global position.
pub const HEADER_POSITION: &str = "Annals-Position";
/// Header with the event's metadata as JSON.
pub const HEADER_METADATA: &str = "Annals-Metadata";
const STREAM_ID: &str = "Annals-Stream-Id";
const STREAM_TYPE: &str = "Annals-Stream-Type";
const VERSION: &str = "Annals-Version";
const EVENT_TYPE: &str = "Annals-Event-Type";

/// The event type a message's headers name, without decoding the message.
pub(crate) fn event_type_of(headers: Option<&async_nats::HeaderMap>) -> Option<&str> {
    headers?.get(EVENT_TYPE).map(|v| v.as_str())
}
const SCHEMA_VERSION: &str = "Annals-Schema-Version";
const RECORDED_AT: &str = "Annals-Recorded-At";
const MSG_ID: &str = "Nats-Msg-Id";

/// Whether `token` can be one subject token (no `.`, `*`, `>` or whitespace, not empty).
fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'.' | b'*' | b'>'))
}

/// The subject of an event of `stream_type`/`stream_id`: `<prefix>.<stream_type>.<stream_id>`.
/// Stream ids never hold `.`, `*` or `>` (annals refuses them); a stream type that would not be
/// one subject token is an error naming it.
pub fn subject_for(prefix: &str, stream_type: &str, stream_id: &StreamId) -> Result<String, String> {
    if !valid_token(stream_type) {
        return Err(format!(
            "stream type {stream_type:?} cannot be a NATS subject token (no '.', '*', '>' or spaces)"
        ));
    }
    Ok(format!("{prefix}.{stream_type}.{stream_id}"))
}

/// The event as subject, headers and payload.
pub fn encode(prefix: &str, e: &RecordedEvent) -> Result<(String, HeaderMap, Bytes), String> {
    let subject = subject_for(prefix, &e.stream_type, &e.stream_id)?;
    let mut h = HeaderMap::new();
    h.insert(MSG_ID, e.event_id.to_string().as_str());
    h.insert(STREAM_ID, e.stream_id.as_str());
    h.insert(STREAM_TYPE, e.stream_type.as_str());
    h.insert(VERSION, e.version.to_string().as_str());
    h.insert(EVENT_TYPE, e.event_type.as_str());
    h.insert(SCHEMA_VERSION, e.schema_version.to_string().as_str());
    h.insert(HEADER_POSITION, e.global_position.to_string().as_str());
    h.insert(RECORDED_AT, to_micros(e.recorded_at).to_string().as_str());
    h.insert(HEADER_METADATA, e.metadata.to_json().as_str());
    Ok((subject, h, Bytes::copy_from_slice(e.payload.get().as_bytes())))
}

/// The event a message carries; an error names what is missing or malformed.
pub fn decode(headers: Option<&HeaderMap>, payload: &[u8]) -> Result<RecordedEvent, String> {
    let h = headers.ok_or("the message has no headers: not an annals event")?;
    let text = |name: &str| -> Result<&str, String> {
        h.get(name)
            .map(|v| v.as_str())
            .ok_or_else(|| format!("the message has no {name} header"))
    };
    fn number<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
        v.parse().map_err(|_| format!("header {name} is not a number: {v:?}"))
    }
    let stream_id = StreamId::new(text(STREAM_ID)?).map_err(|e| e.to_string())?;
    let version: u64 = number(VERSION, text(VERSION)?)?;
    let payload = std::str::from_utf8(payload).map_err(|_| "the payload is not UTF-8".to_owned())?;
    let payload = serde_json::value::RawValue::from_string(payload.to_owned())
        .map_err(|e| format!("the payload is not JSON: {e}"))?;
    Ok(RecordedEvent {
        global_position: number(HEADER_POSITION, text(HEADER_POSITION)?)?,
        stream_type: text(STREAM_TYPE)?.to_owned(),
        version,
        event_id: Uuid::parse_str(text(MSG_ID)?).map_err(|e| format!("header {MSG_ID}: {e}"))?,
        event_type: text(EVENT_TYPE)?.to_owned(),
        schema_version: number(SCHEMA_VERSION, text(SCHEMA_VERSION)?)?,
        payload,
        metadata: parse_stored_metadata(stream_id.as_str(), version, text(HEADER_METADATA)?)
            .map_err(|e| e.to_string())?,
        recorded_at: text(RECORDED_AT)
            .and_then(|v| number::<i64>(RECORDED_AT, v))
            .map_or(SystemTime::UNIX_EPOCH, from_micros),
        stream_id,
    })
}

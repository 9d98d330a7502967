//! The untyped event: what the store keeps (type as text, schema version, JSON payload, metadata).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::error::StoreError;
use crate::ids::StreamId;

/// Who did it and why: stored with every event. This is the audit trail.
///
/// Deserialized by hand (not with `#[serde(flatten)]`, which buffers every field): it is read
/// with every event on every load.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Metadata {
    /// The id of the message or command that caused this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// The id shared by everything one request or saga caused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// Who did it: a user, a service, an operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The tenant, where the application has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Anything else the application records.
    #[serde(default, flatten, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = Metadata;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a metadata object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<Metadata, M::Error> {
                let mut m = Metadata::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "causation_id" => m.causation_id = map.next_value()?,
                        "correlation_id" => m.correlation_id = map.next_value()?,
                        "actor" => m.actor = map.next_value()?,
                        "tenant" => m.tenant = map.next_value()?,
                        _ => {
                            m.extra.insert(key.into_owned(), map.next_value()?);
                        }
                    }
                }
                Ok(m)
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

impl Metadata {
    /// Metadata naming the actor.
    pub fn by(actor: impl Into<String>) -> Self {
        Self {
            actor: Some(actor.into()),
            ..Self::default()
        }
    }

    /// Sets the causation id.
    pub fn caused_by(mut self, id: Uuid) -> Self {
        self.causation_id = Some(id);
        self
    }

    /// Sets the correlation id.
    pub fn correlated_with(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// The metadata as JSON text, as stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("metadata always serializes")
    }
}

/// An event about to be appended.
#[derive(Clone, Debug)]
pub struct NewEvent {
    /// Unique id; UUID v7 unless the caller sets one (retrying with the same id is idempotent).
    pub event_id: Uuid,
    /// The event type, e.g. `OrderCreated`.
    pub event_type: String,
    /// The schema version of `payload` (upcasters turn old versions into new).
    pub schema_version: u32,
    /// The payload, valid JSON.
    pub payload: Box<RawValue>,
    /// Who and why.
    pub metadata: Metadata,
}

impl NewEvent {
    /// An event of `event_type` with an already valid JSON payload, schema version 1 and a fresh id.
    pub fn new(event_type: impl Into<String>, payload: Box<RawValue>) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            schema_version: 1,
            payload,
            metadata: Metadata::default(),
        }
    }

    /// An event whose payload is JSON text; malformed JSON is a [`StoreError::MalformedPayload`].
    pub fn from_json(event_type: impl Into<String>, json: impl Into<String>) -> Result<Self, StoreError> {
        let payload = RawValue::from_string(json.into()).map_err(|e| StoreError::MalformedPayload {
            stream: String::new(),
            reason: e.to_string(),
        })?;
        Ok(Self::new(event_type, payload))
    }

    /// An event whose payload is a JSON value.
    pub fn from_value(event_type: impl Into<String>, value: &serde_json::Value) -> Self {
        let payload = serde_json::value::to_raw_value(value).expect("a JSON value always serializes");
        Self::new(event_type, payload)
    }

    /// Sets the event id (for idempotent retries).
    pub fn with_id(mut self, id: Uuid) -> Self {
        self.event_id = id;
        self
    }

    /// Sets the schema version.
    pub fn with_schema_version(mut self, v: u32) -> Self {
        self.schema_version = v;
        self
    }

    /// Sets the metadata.
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }
}

/// An event as stored: where it is, what it is, who caused it, when.
#[derive(Clone, Debug)]
pub struct RecordedEvent {
    /// Position in the global log (increasing in commit order).
    pub global_position: u64,
    /// The stream.
    pub stream_id: StreamId,
    /// The stream's type (the aggregate type), e.g. `Order`.
    pub stream_type: String,
    /// Version within the stream: 1, 2, 3, … without gaps.
    pub version: u64,
    /// The event id.
    pub event_id: Uuid,
    /// The event type.
    pub event_type: String,
    /// The payload's schema version.
    pub schema_version: u32,
    /// The payload.
    pub payload: Box<RawValue>,
    /// Who and why.
    pub metadata: Metadata,
    /// When it was committed (store clock).
    pub recorded_at: SystemTime,
}

impl RecordedEvent {
    /// The payload parsed into a JSON value.
    pub fn payload_value(&self) -> serde_json::Value {
        serde_json::from_str(self.payload.get()).expect("a stored payload is valid JSON")
    }

    /// The event back from [`to_json`](Self::to_json)'s form (a parked message, say); the error
    /// names the field that is missing or malformed.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, String> {
        let text = |k: &str| {
            value[k]
                .as_str()
                .ok_or_else(|| format!("field {k} is missing or not a string"))
        };
        let number = |k: &str| {
            value[k]
                .as_u64()
                .ok_or_else(|| format!("field {k} is missing or not a number"))
        };
        let stream_id = StreamId::new(text("stream_id")?).map_err(|e| e.to_string())?;
        let payload = serde_json::value::to_raw_value(&value["payload"]).map_err(|e| format!("payload: {e}"))?;
        Ok(Self {
            global_position: number("global_position")?,
            stream_type: text("stream_type")?.to_owned(),
            version: number("version")?,
            event_id: text("event_id")?.parse().map_err(|e| format!("event_id: {e}"))?,
            event_type: text("event_type")?.to_owned(),
            schema_version: u32::try_from(number("schema_version")?).map_err(|_| "schema_version out of range")?,
            payload,
            metadata: serde_json::from_value(value["metadata"].clone()).map_err(|e| format!("metadata: {e}"))?,
            recorded_at: humantime::parse_rfc3339(text("recorded_at")?).map_err(|e| format!("recorded_at: {e}"))?,
            stream_id,
        })
    }

    /// The event as one JSON object (for `--json` output and HTTP).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "global_position": self.global_position,
            "stream_id": self.stream_id.as_str(),
            "stream_type": self.stream_type,
            "version": self.version,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "schema_version": self.schema_version,
            "payload": self.payload_value(),
            "metadata": self.metadata,
            "recorded_at": humantime::format_rfc3339_micros(self.recorded_at).to_string(),
        })
    }
}

/// Microseconds since the Unix epoch, the stored form of timestamps.
pub fn to_micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// The inverse of [`to_micros`].
pub fn from_micros(us: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us.max(0) as u64)
}

/// Parses stored text into a payload, naming the row if it is not valid JSON.
pub fn parse_stored_payload(stream: &str, version: u64, text: String) -> Result<Box<RawValue>, StoreError> {
    RawValue::from_string(text).map_err(|e| StoreError::Corrupt {
        stream: stream.to_owned(),
        version,
        reason: format!("payload is not valid JSON: {e}"),
    })
}

/// Rewrites a payload's stored text before it is parsed (`None` keeps it): how a wrapper such as
/// [`Shredding`](crate::privacy::Shredding) opens sealed fields as the backend reads them, so the
/// text is checked once, opened, instead of twice. What it returns must be JSON.
pub type PayloadOpener = std::sync::Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Stored text through `open`, then parsed as [`parse_stored_payload`] does.
pub fn parse_opened_payload(
    stream: &str,
    version: u64,
    text: String,
    open: Option<&PayloadOpener>,
) -> Result<Box<RawValue>, StoreError> {
    let text = match open.and_then(|open| open(&text)) {
        Some(opened) => opened,
        None => text,
    };
    parse_stored_payload(stream, version, text)
}

/// Events already parsed, with `open` applied to each payload: the default of
/// [`EventStore::read_stream_opened`](crate::EventStore::read_stream_opened).
pub fn open_payloads(mut events: Vec<RecordedEvent>, open: &PayloadOpener) -> Result<Vec<RecordedEvent>, StoreError> {
    for e in &mut events {
        if let Some(text) = open(e.payload.get()) {
            e.payload = parse_stored_payload(e.stream_id.as_str(), e.version, text)?;
        }
    }
    Ok(events)
}

/// Parses stored metadata text, naming the row if it is not valid.
pub fn parse_stored_metadata(stream: &str, version: u64, text: &str) -> Result<Metadata, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        stream: stream.to_owned(),
        version,
        reason: format!("metadata is not valid: {e}"),
    })
}

//! The untyped event: what the store keeps (type as text, schema version, JSON payload, metadata).

use std::time::SystemTime;

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

    /// An event whose payload is JSON text; text that is not JSON, or that breaks the
    /// [JSON policy](crate::json), is a [`StoreError::MalformedPayload`].
    pub fn from_json(event_type: impl Into<String>, json: impl Into<String>) -> Result<Self, StoreError> {
        let malformed = |reason: String| StoreError::MalformedPayload {
            stream: String::new(),
            reason,
        };
        let json = json.into();
        crate::json::check(&json).map_err(malformed)?;
        let payload = RawValue::from_string(json).map_err(|e| malformed(e.to_string()))?;
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
    /// Position in the global log (increasing in commit order, from 1). On a stream read, 0 for
    /// an event not in the global log yet: a backend that gives positions after the commit
    /// (PostgreSQL, within milliseconds) does not make a stream read wait for them. A read of
    /// the global log never returns 0.
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
    /// The payload parsed into a JSON value. A payload that does not parse (stored before the
    /// [JSON policy](crate::json) was checked at append, or changed outside annals) is
    /// [`StoreError::Corrupt`] naming the stream and version: never a panic.
    ///
    /// A `Value` holds numbers as 64-bit floats or integers: a wider integer loses digits here.
    /// [`to_json`](Self::to_json) and `payload.get()` keep the stored text exactly.
    pub fn payload_value(&self) -> Result<serde_json::Value, StoreError> {
        serde_json::from_str(self.payload.get()).map_err(|e| StoreError::Corrupt {
            stream: self.stream_id.to_string(),
            version: self.version,
            reason: format!("payload does not parse as JSON: {e}"),
            position: (self.global_position > 0).then_some(self.global_position),
        })
    }

    /// The event back from [`to_json`](Self::to_json)'s form (a parked message, say); the error
    /// names the field that is missing or malformed. The payload keeps its text exactly.
    pub fn from_json(text: &str) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Stored {
            global_position: u64,
            stream_id: String,
            stream_type: String,
            version: u64,
            event_id: Uuid,
            event_type: String,
            schema_version: u32,
            payload: Box<RawValue>,
            metadata: Metadata,
            recorded_at: String,
        }
        let stored: Stored = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Ok(Self {
            global_position: stored.global_position,
            stream_id: StreamId::new(stored.stream_id).map_err(|e| e.to_string())?,
            stream_type: stored.stream_type,
            version: stored.version,
            event_id: stored.event_id,
            event_type: stored.event_type,
            schema_version: stored.schema_version,
            payload: stored.payload,
            metadata: stored.metadata,
            recorded_at: crate::time::parse_rfc3339(&stored.recorded_at).map_err(|e| format!("recorded_at: {e}"))?,
        })
    }

    /// The event as one JSON object (for `--json` output, HTTP, parked messages): see
    /// [`EventView`].
    pub fn to_json(&self) -> String {
        // An `EventView` always serializes: its payload is JSON text and its metadata a map of
        // JSON values.
        serde_json::to_string(&self.view()).unwrap_or_default()
    }

    /// The event as a serializable view: its fields, the payload as stored.
    pub fn view(&self) -> EventView<'_> {
        EventView {
            global_position: self.global_position,
            stream_id: self.stream_id.as_str(),
            stream_type: &self.stream_type,
            version: self.version,
            event_id: self.event_id,
            event_type: &self.event_type,
            schema_version: self.schema_version,
            payload: &self.payload,
            metadata: &self.metadata,
            recorded_at: crate::time::format_micros(self.recorded_at),
        }
    }
}

/// A [`RecordedEvent`] as it is shown in JSON: every field, the payload as stored (so a number
/// wider than a float keeps its digits) and the time as RFC 3339 text with microseconds (any
/// year, never a panic: see [`time`](crate::time)).
#[derive(Debug, Serialize)]
pub struct EventView<'a> {
    /// Position in the global log.
    pub global_position: u64,
    /// The stream.
    pub stream_id: &'a str,
    /// The stream's type.
    pub stream_type: &'a str,
    /// Version in the stream.
    pub version: u64,
    /// The event id.
    pub event_id: Uuid,
    /// The event type.
    pub event_type: &'a str,
    /// The payload's schema version.
    pub schema_version: u32,
    /// The payload, as stored.
    pub payload: &'a RawValue,
    /// Who and why.
    pub metadata: &'a Metadata,
    /// When it was committed.
    pub recorded_at: String,
}

pub use crate::time::{from_micros, to_micros};

/// Parses stored text into a payload, naming the row if it is not valid JSON.
pub fn parse_stored_payload(stream: &str, version: u64, text: String) -> Result<Box<RawValue>, StoreError> {
    RawValue::from_string(text).map_err(|e| StoreError::Corrupt {
        stream: stream.to_owned(),
        version,
        reason: format!("payload is not valid JSON: {e}"),
        position: None,
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
        position: None,
    })
}

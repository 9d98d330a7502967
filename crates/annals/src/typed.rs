//! The typed layer: domain events as serde enums over the untyped store.
//!
//! A domain event type is an externally tagged serde enum: the variant name is the stored event
//! type and the variant's content is the payload, so `OrderCreated { .. }` is stored as event type
//! `OrderCreated` with payload `{..}`.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::error::{DecodeError, EncodeError};
use crate::event::RecordedEvent;

/// A domain event type: a serde enum whose variants are the event types.
pub trait DomainEvent: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The schema version the code writes and reads for `event_type` (1 unless overridden).
    /// Raise it when a payload's shape changes, and register an upcaster for the old version.
    fn schema_version(event_type: &str) -> u32 {
        let _ = event_type;
        1
    }

    /// The id to store this event under, when the event itself decides it (a saga's command
    /// message is stored under its message id); `None` lets the store give it a new UUID v7.
    fn event_id(&self) -> Option<uuid::Uuid> {
        None
    }
}

/// Splits a domain event into its stored type name, schema version and payload.
pub fn encode<E: DomainEvent>(event: &E) -> Result<(String, u32, Box<RawValue>), EncodeError> {
    match serde_json::to_value(event)? {
        serde_json::Value::Object(map) if map.len() == 1 => {
            let (event_type, payload) = map.into_iter().next().expect("one entry");
            let payload = serde_json::value::to_raw_value(&payload)?;
            let version = E::schema_version(&event_type);
            Ok((event_type, version, payload))
        }
        serde_json::Value::String(event_type) => {
            let version = E::schema_version(&event_type);
            Ok((event_type, version, RawValue::from_string("null".to_owned())?))
        }
        other => Err(EncodeError::NotAVariant(other.to_string())),
    }
}

/// Decodes a stored event into the domain event type, checking its schema version.
pub fn decode<E: DomainEvent>(event: &RecordedEvent) -> Result<E, DecodeError> {
    let expected = E::schema_version(&event.event_type);
    if event.schema_version != expected {
        return Err(DecodeError::SchemaVersion {
            stream: event.stream_id.to_string(),
            version: event.version,
            event_type: event.event_type.clone(),
            stored: event.schema_version,
            expected,
        });
    }
    // Event types are validated names (letters, digits, `_`, `-`): no escaping needed.
    let payload = event.payload.get();
    let mut doc = String::with_capacity(event.event_type.len() + payload.len() + 5);
    doc.push_str("{\"");
    doc.push_str(&event.event_type);
    doc.push_str("\":");
    doc.push_str(payload);
    doc.push('}');
    serde_json::from_str(&doc).map_err(|e| {
        let reason = e.to_string();
        if reason.starts_with("unknown variant") {
            DecodeError::UnknownEventType {
                stream: event.stream_id.to_string(),
                version: event.version,
                event_type: event.event_type.clone(),
            }
        } else {
            DecodeError::Payload {
                stream: event.stream_id.to_string(),
                version: event.version,
                event_type: event.event_type.clone(),
                reason,
            }
        }
    })
}

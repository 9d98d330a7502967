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
    decode_parts(
        event.stream_id.as_str(),
        event.version,
        &event.event_type,
        event.schema_version,
        event.payload.get(),
    )
}

/// [`decode`] from a stored event's parts: its stream and version (for errors), type, schema
/// version and payload text.
pub fn decode_parts<E: DomainEvent>(
    stream: &str,
    version: u64,
    event_type: &str,
    schema_version: u32,
    payload: &str,
) -> Result<E, DecodeError> {
    struct Parts<'a> {
        stream: &'a str,
        version: u64,
        event_type: &'a str,
    }
    let event = Parts {
        stream,
        version,
        event_type,
    };
    let expected = E::schema_version(event_type);
    if schema_version != expected {
        return Err(DecodeError::SchemaVersion {
            stream: stream.to_owned(),
            version,
            event_type: event_type.to_owned(),
            stored: schema_version,
            expected,
        });
    }
    // The enum is read straight from the stored parts: the variant from the event type, its
    // content from the payload text, in one pass over the payload and with no copy of it (a
    // `{"Type": payload}` document built per event cost an allocation and a copy).
    let mut payload = serde_json::Deserializer::from_str(payload);
    E::deserialize(Tagged {
        event_type: event.event_type,
        payload: &mut payload,
    })
    .and_then(|e| payload.end().map(|()| e))
    .map_err(|e| {
        let reason = e.to_string();
        if reason.starts_with("unknown variant") {
            DecodeError::UnknownEventType {
                stream: event.stream.to_owned(),
                version: event.version,
                event_type: event.event_type.to_owned(),
            }
        } else {
            DecodeError::Payload {
                stream: event.stream.to_owned(),
                version: event.version,
                event_type: event.event_type.to_owned(),
                reason,
            }
        }
    })
}

/// A stored event as serde sees an externally tagged enum value: the variant named by the event
/// type, its content the payload.
struct Tagged<'a, 'de> {
    event_type: &'a str,
    payload: &'a mut serde_json::Deserializer<serde_json::de::StrRead<'de>>,
}

impl<'de> serde::Deserializer<'de> for Tagged<'_, 'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_enum(self)
    }

    fn deserialize_enum<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

impl<'de> serde::de::EnumAccess<'de> for Tagged<'_, 'de> {
    type Error = serde_json::Error;
    type Variant = Self;

    fn variant_seed<V: serde::de::DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Self::Error> {
        use serde::de::IntoDeserializer;
        let variant = seed.deserialize(self.event_type.into_deserializer())?;
        Ok((variant, self))
    }
}

impl<'de> serde::de::VariantAccess<'de> for Tagged<'_, 'de> {
    type Error = serde_json::Error;

    fn unit_variant(self) -> Result<(), Self::Error> {
        // A unit variant is stored with a `null` payload.
        serde::Deserialize::deserialize(&mut *self.payload)
    }

    fn newtype_variant_seed<T: serde::de::DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Self::Error> {
        seed.deserialize(&mut *self.payload)
    }

    fn tuple_variant<V: serde::de::Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_tuple(&mut *self.payload, len, visitor)
    }

    fn struct_variant<V: serde::de::Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_struct(&mut *self.payload, "", fields, visitor)
    }
}

//! The messages of a saga: commands an orchestrator sends to a participant's channel, and the
//! replies participants send back. Both are events, so both are sent reliably: a command is the
//! orchestrator's `CommandIssued` event (its message id is the event id), a reply is a
//! `SagaReply` event appended with the participant's own events, and the relay publishes both.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{BoxError, DecodeError, StoreError};
use crate::event::{Metadata, NewEvent, RecordedEvent};
use crate::ids::{ExpectedVersion, StreamId};
use crate::store::StreamAppend;

/// The stream type of every saga orchestrator's stream (the saga type is in its events), so a
/// participant follows one stream type, or one broker subject, for the commands of every saga.
pub const SAGA_STREAM_TYPE: &str = "Saga";
/// The stream type of the streams replies are appended to, one per saga.
pub const REPLY_STREAM_TYPE: &str = "SagaReply";
/// The event type of a command message in a saga's stream.
pub const COMMAND_EVENT: &str = "CommandIssued";
/// The event type of a reply message.
pub const REPLY_EVENT: &str = "SagaReply";

/// The stream replies to saga `saga_id` are appended to: `replies~<saga id>`. All messages of one
/// saga share the saga id as their partition key, so a broker consumer keeps them in order.
pub fn reply_stream(saga_id: &str) -> Result<StreamId, StoreError> {
    StreamId::new(format!("replies~{saga_id}"))
}

/// A command or reply type: a serde struct with a stable name.
pub trait Message: Serialize + DeserializeOwned {
    /// The name it travels under, e.g. `CreateTicket`.
    const TYPE: &'static str;
}

/// A command a saga step sends: the channel (participant) it goes to, its type and body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SagaCommand {
    /// The participant's channel, e.g. `kitchen`.
    pub channel: String,
    /// The command type, e.g. `CreateTicket`.
    pub command_type: String,
    /// The command's body.
    pub payload: Value,
}

impl SagaCommand {
    /// Command `command` to `channel`.
    ///
    /// # Panics
    /// If the command's `Serialize` implementation fails, which a derived one on plain data
    /// never does.
    pub fn of<C: Message>(channel: &str, command: &C) -> Self {
        Self {
            channel: channel.to_owned(),
            command_type: C::TYPE.to_owned(),
            payload: serde_json::to_value(command).expect("a saga command serializes to JSON"),
        }
    }
}

/// A command message as a participant receives it: the `CommandIssued` event of a saga.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandMessage {
    /// The message id (the event id): a participant records it to handle the command once.
    pub id: Uuid,
    /// The saga type, e.g. `CreateOrder`.
    pub saga_type: String,
    /// The saga's id (its stream id).
    pub saga_id: StreamId,
    /// The command.
    pub command: SagaCommand,
    /// Whether it undoes an earlier step.
    pub compensation: bool,
    /// The metadata of the event (correlation id, actor).
    pub metadata: Metadata,
}

/// The payload of `event` as `T`, if it is an event of `event_type` in a stream of `stream_type`.
fn fields_of<T: DeserializeOwned>(
    event: &RecordedEvent,
    stream_type: &str,
    event_type: &str,
) -> Result<Option<T>, DecodeError> {
    if event.stream_type != stream_type || event.event_type != event_type {
        return Ok(None);
    }
    serde_json::from_str(event.payload.get())
        .map(Some)
        .map_err(|e| DecodeError::Payload {
            stream: event.stream_id.to_string(),
            version: event.version,
            event_type: event.event_type.clone(),
            reason: e.to_string(),
        })
}

#[derive(Deserialize)]
struct IssuedFields {
    saga_type: String,
    channel: String,
    command_type: String,
    command: Value,
    compensation: bool,
}

impl CommandMessage {
    /// The command in `event`, if it is a saga's `CommandIssued` event.
    pub fn from_event(event: &RecordedEvent) -> Result<Option<Self>, DecodeError> {
        let Some(fields) = fields_of::<IssuedFields>(event, SAGA_STREAM_TYPE, COMMAND_EVENT)? else {
            return Ok(None);
        };
        Ok(Some(Self {
            id: event.event_id,
            saga_type: fields.saga_type,
            saga_id: event.stream_id.clone(),
            command: SagaCommand {
                channel: fields.channel,
                command_type: fields.command_type,
                payload: fields.command,
            },
            compensation: fields.compensation,
            metadata: event.metadata.clone(),
        }))
    }

    /// Whether the command is of type `C`.
    pub fn is<C: Message>(&self) -> bool {
        self.command.command_type == C::TYPE
    }

    /// The command as `C`.
    pub fn decode<C: Message>(&self) -> Result<C, BoxError> {
        serde_json::from_value(self.command.payload.clone()).map_err(|e| {
            format!(
                "command {} of saga {} is not a valid {}: {e}",
                self.id,
                self.saga_id,
                C::TYPE
            )
            .into()
        })
    }

    /// Metadata for the events a participant appends because of this command: caused by it,
    /// in its correlation, by `actor`.
    pub fn caused(&self, actor: &str) -> Metadata {
        let mut m = Metadata::by(actor).caused_by(self.id);
        m.correlation_id = self.metadata.correlation_id.or(Some(self.id));
        m
    }
}

/// How a participant answered a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    /// The command was carried out.
    Success,
    /// The command was refused; the reply says why.
    Failure,
}

/// What a participant answers, before it is addressed: outcome, reply type and body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplyBody {
    /// Success or failure.
    pub outcome: Outcome,
    /// The reply type, e.g. `TicketCreated`, or `Failure`.
    pub reply_type: String,
    /// The body.
    pub body: Value,
}

impl ReplyBody {
    /// A success carrying `body` (e.g. the id of what the command created).
    ///
    /// # Panics
    /// If the body's `Serialize` implementation fails, which a derived one on plain data never does.
    pub fn success<R: Message>(body: &R) -> Self {
        Self {
            outcome: Outcome::Success,
            reply_type: R::TYPE.to_owned(),
            body: serde_json::to_value(body).expect("a saga reply serializes to JSON"),
        }
    }

    /// A success with nothing to say.
    pub fn done() -> Self {
        Self {
            outcome: Outcome::Success,
            reply_type: "Done".to_owned(),
            body: Value::Null,
        }
    }

    /// A failure, with why.
    pub fn failure(reason: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Failure,
            reply_type: "Failure".to_owned(),
            body: serde_json::json!({ "reason": reason.into() }),
        }
    }
}

/// A reply message as the orchestrator receives it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The reply's message id (its event id).
    pub id: Uuid,
    /// The command it answers.
    pub reply_to: Uuid,
    /// The saga type.
    pub saga_type: String,
    /// The saga id.
    pub saga_id: String,
    /// Outcome, type and body.
    #[serde(flatten)]
    pub body: ReplyBody,
}

#[derive(Serialize, Deserialize)]
struct ReplyFields {
    reply_to: Uuid,
    saga_type: String,
    saga_id: String,
    #[serde(flatten)]
    body: ReplyBody,
}

impl Reply {
    /// The reply in `event`, if it is a `SagaReply` event.
    pub fn from_event(event: &RecordedEvent) -> Result<Option<Self>, DecodeError> {
        let Some(f) = fields_of::<ReplyFields>(event, REPLY_STREAM_TYPE, REPLY_EVENT)? else {
            return Ok(None);
        };
        Ok(Some(Self {
            id: event.event_id,
            reply_to: f.reply_to,
            saga_type: f.saga_type,
            saga_id: f.saga_id,
            body: f.body,
        }))
    }

    /// A reply with message id `id` answering `command` (for tests and in-memory use).
    pub fn to(command: &CommandMessage, id: Uuid, body: ReplyBody) -> Self {
        Self {
            id,
            reply_to: command.id,
            saga_type: command.saga_type.clone(),
            saga_id: command.saga_id.to_string(),
            body,
        }
    }

    /// Whether the command was carried out.
    pub fn is_success(&self) -> bool {
        self.body.outcome == Outcome::Success
    }

    /// The body as `R`, if the reply is of type `R`.
    pub fn decode<R: Message>(&self) -> Option<R> {
        (self.body.reply_type == R::TYPE)
            .then(|| serde_json::from_value(self.body.body.clone()).ok())
            .flatten()
    }

    /// Why the command failed (the `reason` of a failure reply).
    pub fn reason(&self) -> Option<&str> {
        self.body.body.get("reason").and_then(Value::as_str)
    }
}

/// The append that sends `body` as the reply to `command`: a `SagaReply` event on the saga's
/// reply stream, to be stored in the same transaction as the participant's own events.
pub fn reply_append(command: &CommandMessage, body: ReplyBody, metadata: Metadata) -> Result<StreamAppend, StoreError> {
    let fields = ReplyFields {
        reply_to: command.id,
        saga_type: command.saga_type.clone(),
        saga_id: command.saga_id.to_string(),
        body,
    };
    let payload = serde_json::value::to_raw_value(&fields).map_err(|e| StoreError::MalformedPayload {
        stream: command.saga_id.to_string(),
        reason: e.to_string(),
    })?;
    Ok(StreamAppend::new(
        reply_stream(command.saga_id.as_str())?,
        REPLY_STREAM_TYPE,
        ExpectedVersion::Any,
        vec![NewEvent::new(REPLY_EVENT, payload).with_metadata(metadata)],
    ))
}

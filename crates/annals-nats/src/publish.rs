//! The relay's publisher: every event of a batch is sent at once (pipelined), then every
//! acknowledgement awaited, so a batch costs about one round trip to the broker.

use annals::error::BoxError;
use annals::relay::Publisher;
use annals::{Failure, RecordedEvent};
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::{self, message::PublishMessage};

use crate::{NatsError, NatsOptions, wire};

/// Publishes events to the JetStream stream of its [`NatsOptions`].
#[derive(Clone)]
pub struct NatsPublisher {
    js: jetstream::Context,
    prefix: String,
}

impl NatsPublisher {
    /// Connects and makes sure the stream exists.
    pub async fn connect(options: &NatsOptions) -> Result<Self, NatsError> {
        Ok(Self::new(crate::connect(options).await?, options))
    }

    /// A publisher on an existing JetStream context (the stream must exist).
    pub fn new(js: jetstream::Context, options: &NatsOptions) -> Self {
        Self {
            js,
            prefix: options.subject_prefix.clone(),
        }
    }
}

impl Publisher for NatsPublisher {
    /// Publishes `events` in one pipelined batch. A failure is an [`annals::Failure`] of the
    /// kind the relay acts on: the broker gone, slow or full is transient; no stream for the
    /// subject, or a message over the server's size limit, is not.
    async fn publish(&self, events: &[RecordedEvent]) -> Result<(), BoxError> {
        let mut acks = Vec::with_capacity(events.len());
        for e in events {
            let (subject, headers, payload) = wire::encode(&self.prefix, e).map_err(|why| {
                Failure::misconfigured(format!("{} v{} cannot be sent: {why}", e.stream_id, e.version))
            })?;
            let message = PublishMessage::build().headers(headers).payload(payload);
            let ack = self
                .js
                .send_publish(subject, message)
                .await
                .map_err(|err| failure(&err, e))?;
            acks.push((ack, e));
        }
        for (ack, e) in acks {
            ack.await.map_err(|err| failure(&err, e))?;
        }
        Ok(())
    }
}

/// A publish failure of `event` with its kind.
fn failure(err: &PublishError, event: &RecordedEvent) -> Failure {
    let what = format!("publishing {} v{}", event.stream_id, event.version);
    match err.kind() {
        PublishErrorKind::StreamNotFound => Failure::misconfigured(format!(
            "{what}: no JetStream stream holds its subject ({err}); the relay's stream and prefix must match"
        )),
        PublishErrorKind::MaxPayloadExceeded => Failure::misconfigured(format!(
            "{what}: the message is larger than the server's max_payload ({err}); raise max_payload"
        )),
        _ => Failure::unavailable(format!("{what}: {}", crate::jetstream_message(err))),
    }
}

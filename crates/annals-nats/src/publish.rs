//! The relay's publisher: every event of a batch is sent at once (pipelined), then every
//! acknowledgement awaited, so a batch costs about one round trip to the broker.

use annals::RecordedEvent;
use annals::error::BoxError;
use annals::relay::Publisher;
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
    async fn publish(&self, events: &[RecordedEvent]) -> Result<(), BoxError> {
        let mut acks = Vec::with_capacity(events.len());
        for e in events {
            let (subject, headers, payload) = wire::encode(&self.prefix, e)?;
            let message = PublishMessage::build().headers(headers).payload(payload);
            acks.push(self.js.send_publish(subject, message).await?);
        }
        for ack in acks {
            ack.await?;
        }
        Ok(())
    }
}

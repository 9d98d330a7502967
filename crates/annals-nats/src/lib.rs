//! The broker half of annals on NATS JetStream (DESIGN §6): a [`NatsPublisher`] the relay
//! ([`annals::relay::Relay`]) publishes committed events through, and a [`NatsConsumer`] that
//! hands them to an [`annals::consume::EventHandler`] — the same handler an in-process
//! [`Subscription`](annals::consume::Subscription) runs in embedded mode, without a broker.
//!
//! # Names on the wire
//!
//! - JetStream stream: `ANNALS` by default ([`NatsOptions::stream`]), created if missing, holding
//!   the subjects `<prefix>.>`; file storage; the broker drops a message id it has seen within its
//!   duplicate window (2 minutes by default).
//! - Subject of an event: `<prefix>.<stream_type>.<stream_id>` (prefix `annals` by default).
//! - `Nats-Msg-Id`: the event id. Headers `Annals-Stream-Id`, `Annals-Stream-Type`,
//!   `Annals-Version`, `Annals-Event-Type`, `Annals-Schema-Version`, `Annals-Position` (global
//!   position), `Annals-Recorded-At` (µs since the Unix epoch), `Annals-Metadata` (JSON).
//! - Payload: the event's JSON payload, as stored.
//! - Durable consumers: named by the application ([`ConsumerOptions::durable`]), created if
//!   missing, explicit acks.

mod consume;
mod publish;
mod wire;

pub use consume::{ConsumerOptions, ConsumerProgress, NatsConsumeError, NatsConsumer};
pub use publish::NatsPublisher;
pub use wire::{HEADER_METADATA, HEADER_POSITION, decode, encode, subject_for};

use std::time::Duration;

use async_nats::jetstream;

/// Where and under which names events go.
#[derive(Clone, Debug)]
pub struct NatsOptions {
    /// The server, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// The JetStream stream holding the events.
    pub stream: String,
    /// The first subject token.
    pub subject_prefix: String,
    /// How long the broker remembers message ids to drop duplicates.
    pub duplicate_window: Duration,
}

impl NatsOptions {
    /// `url` with the default names: stream `ANNALS`, prefix `annals`, a 2-minute window.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stream: "ANNALS".into(),
            subject_prefix: "annals".into(),
            duplicate_window: Duration::from_secs(120),
        }
    }

    /// Uses `stream` and `prefix` instead of the defaults (tests give each run its own).
    pub fn with_names(mut self, stream: impl Into<String>, prefix: impl Into<String>) -> Self {
        self.stream = stream.into();
        self.subject_prefix = prefix.into();
        self
    }
}

/// Errors of this crate's set-up calls.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// The server could not be reached.
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        /// The server.
        url: String,
        /// Why.
        source: async_nats::ConnectError,
    },
    /// The JetStream stream could not be created or read.
    #[error("JetStream stream {stream}: {message}")]
    Stream {
        /// The stream.
        stream: String,
        /// Why.
        message: String,
    },
    /// A durable consumer could not be created or read.
    #[error("JetStream consumer {consumer}: {message}")]
    Consumer {
        /// The consumer.
        consumer: String,
        /// Why.
        message: String,
    },
}

/// Connects to `options.url` and makes sure the events' JetStream stream exists.
pub async fn connect(options: &NatsOptions) -> Result<jetstream::Context, NatsError> {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .connect(options.url.as_str())
        .await
        .map_err(|source| NatsError::Connect {
            url: options.url.clone(),
            source,
        })?;
    let js = jetstream::new(client);
    ensure_stream(&js, options).await?;
    Ok(js)
}

/// Creates the events' JetStream stream if it is missing.
pub async fn ensure_stream(
    js: &jetstream::Context,
    options: &NatsOptions,
) -> Result<jetstream::stream::Stream, NatsError> {
    js.get_or_create_stream(jetstream::stream::Config {
        name: options.stream.clone(),
        subjects: vec![format!("{}.>", options.subject_prefix)],
        storage: jetstream::stream::StorageType::File,
        duplicate_window: options.duplicate_window,
        ..Default::default()
    })
    .await
    .map_err(|e| NatsError::Stream {
        stream: options.stream.clone(),
        message: e.to_string(),
    })
}

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

use annals::ErrorKind;
use async_nats::{ConnectErrorKind, jetstream};

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

/// Errors of this crate's set-up calls, each with the [`ErrorKind`] a caller acts on: a refused
/// or timed-out connection is transient; a bad URL, an unknown host, refused credentials or a
/// server without JetStream are not.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// The URL is not one a NATS client accepts.
    #[error("invalid NATS URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server could not be reached.
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect {
        /// The server.
        url: String,
        /// Why, in words an operator can act on.
        reason: String,
        /// The client's error.
        source: async_nats::ConnectError,
    },
    /// The JetStream stream could not be created or read.
    #[error("JetStream stream {stream}: {message}")]
    Stream {
        /// The stream.
        stream: String,
        /// Why.
        message: String,
        /// Transient (a timeout) or not (JetStream off, a stream configured otherwise).
        kind: ErrorKind,
    },
    /// A durable consumer could not be created or read.
    #[error("JetStream consumer {consumer}: {message}")]
    Consumer {
        /// The consumer.
        consumer: String,
        /// Why.
        message: String,
        /// Transient or not, as for [`NatsError::Stream`].
        kind: ErrorKind,
    },
}

impl NatsError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidUrl { .. } => ErrorKind::Misconfigured,
            Self::Connect { source, .. } => match source.kind() {
                ConnectErrorKind::TimedOut | ConnectErrorKind::Io | ConnectErrorKind::MaxReconnects => {
                    ErrorKind::Unavailable
                }
                _ => ErrorKind::Misconfigured,
            },
            Self::Stream { kind, .. } | Self::Consumer { kind, .. } => *kind,
        }
    }

    /// This error as an [`annals::Failure`], so loops that see it as a boxed error find its kind.
    pub fn into_failure(self) -> annals::Failure {
        annals::Failure::new(self.kind(), self.to_string()).with_source(self)
    }
}

/// Checks a NATS URL before any connection is tried: a scheme other than `nats://` or `tls://`
/// (an `http://` URL, say) or an empty one is refused with what to write instead.
pub fn check_url(url: &str) -> Result<(), NatsError> {
    let bad = |reason: &str| NatsError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = url.trim();
    if trimmed.is_empty() {
        return Err(bad("it is empty; give one like nats://127.0.0.1:4222"));
    }
    if let Some((scheme, _)) = trimmed.split_once("://")
        && !matches!(scheme, "nats" | "tls")
    {
        return Err(bad(&format!(
            "NATS URLs start with nats:// (or tls://), not {scheme}://; e.g. nats://127.0.0.1:4222"
        )));
    }
    trimmed
        .parse::<async_nats::ServerAddr>()
        .map(|_| ())
        .map_err(|e| bad(&e.to_string()))
}

/// A connect failure in words: what the client's error kind means for the operator.
fn connect_reason(e: &async_nats::ConnectError) -> String {
    let detail = std::error::Error::source(e).map_or_else(|| e.to_string(), |s| format!("{e}: {s}"));
    match e.kind() {
        ConnectErrorKind::Dns => format!("the host name does not resolve ({detail}); check the URL"),
        ConnectErrorKind::Io => format!("{detail} (is nats-server running there?)"),
        ConnectErrorKind::TimedOut => format!("no answer within {CONNECT_TIMEOUT:?} ({detail})"),
        ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => {
            format!("the server refused the credentials ({detail})")
        }
        _ => detail,
    }
}

/// How long a first connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The kind of a JetStream API failure from its text: JetStream missing on the server, or a
/// stream or consumer configured otherwise, is permanent; a timeout or a dropped connection is
/// not.
fn jetstream_kind(message: &str) -> ErrorKind {
    let m = message.to_ascii_lowercase();
    if m.contains("timed out") || m.contains("timeout") || m.contains("broken pipe") || m.contains("disconnected") {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Misconfigured
    }
}

/// Says what to do about a JetStream API failure where the words are known.
fn jetstream_message(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    let m = text.to_ascii_lowercase();
    if m.contains("no responders") || m.contains("not enabled") {
        format!("{text}: JetStream is not enabled on the server (start nats-server with -js)")
    } else {
        text
    }
}

/// Connects to `options.url` and makes sure the events' JetStream stream exists. The first
/// connection must succeed (its failure says why: refused, unknown host, bad URL); once
/// connected, the client reconnects by itself.
pub async fn connect(options: &NatsOptions) -> Result<jetstream::Context, NatsError> {
    check_url(&options.url)?;
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(CONNECT_TIMEOUT)
        .connect(options.url.trim())
        .await
        .map_err(|source| NatsError::Connect {
            url: options.url.clone(),
            reason: connect_reason(&source),
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
    .map_err(|e| {
        let message = jetstream_message(&e);
        NatsError::Stream {
            stream: options.stream.clone(),
            kind: jetstream_kind(&message),
            message,
        }
    })
}

/// The README's examples, compiled and run as doctests so they cannot drift.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

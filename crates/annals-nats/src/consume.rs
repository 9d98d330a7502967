//! Consuming from JetStream: a durable pull consumer whose messages go to lanes by stream id, so
//! one stream's events are handled one at a time and in order while different streams are handled
//! concurrently. A message is acknowledged only after its handler returned, so with the inbox
//! ([`annals::consume::Inbox`], effects and the processed mark in one transaction) effects happen
//! exactly once. Failures follow the [`ErrorPolicy`]: retries inside the lane (keeping the
//! message's place, with progress acks so the broker does not redeliver it meanwhile), then park
//! (the dead-letter table, which keeps the message, then ack) or stop (unacknowledged: it comes
//! back on the next run). A parked message an operator marks for retry (`annals parked retry`) is
//! handled again from the dead-letter row within a second.
//!
//! On start, a durable consumer left with unacknowledged messages by a previous run is re-created
//! to start right after its ack floor, so the broker delivers everything unacknowledged again in
//! stream order, never a stream's later event before an earlier one that waits for redelivery.
//! One process runs a durable consumer at a time; scale out with several durables, each filtered
//! to some stream types.

use std::collections::hash_map::DefaultHasher;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use annals::ErrorKind;
use annals::RecordedEvent;
use annals::consume::{DeadLetters, ErrorPolicy, EventHandler, ParkedState, Trouble, Verdict};
use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::{NatsError, NatsOptions, wire};

/// What to consume and how.
#[derive(Clone, Debug)]
pub struct ConsumerOptions {
    /// The durable consumer's name (also the name parked messages are filed under).
    pub durable: String,
    /// Only these stream types (all when empty).
    pub stream_types: Vec<String>,
    /// Only these event types (all when empty): others are acknowledged unread, told apart by
    /// their `Annals-Event-Type` header (a saga participant wants `CommandIssued` only).
    pub event_types: Vec<String>,
    /// Streams handled concurrently (each stream always in the same lane).
    pub lanes: usize,
    /// Retry, then park or stop.
    pub policy: ErrorPolicy,
    /// How long the broker waits for an ack before redelivering.
    pub ack_wait: Duration,
}

impl ConsumerOptions {
    /// Durable `name`, every stream type, 16 lanes, the default policy, a 30 s ack wait.
    pub fn new(durable: impl Into<String>) -> Self {
        Self {
            durable: durable.into(),
            stream_types: Vec::new(),
            event_types: Vec::new(),
            lanes: 16,
            policy: ErrorPolicy::default(),
            ack_wait: Duration::from_secs(30),
        }
    }
}

/// How far a consumer got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsumerProgress {
    /// Messages handled and acknowledged.
    pub handled: u64,
    /// Messages parked after every try failed.
    pub parked: u64,
    /// Messages that are not annals events (terminated, logged).
    pub malformed: u64,
}

/// Why a consumer stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsConsumeError {
    /// Setting up the stream or the consumer failed.
    #[error(transparent)]
    Setup(#[from] NatsError),
    /// The broker connection failed while reading messages.
    #[error("consumer {consumer}: reading messages failed: {message}")]
    Broker {
        /// The consumer.
        consumer: String,
        /// Why.
        message: String,
    },
    /// The policy said stop: the message stays unacknowledged.
    #[error("consumer {consumer} stopped at {stream} v{version} (position {position}) after {attempts} tries: {error}")]
    Stopped {
        /// The consumer.
        consumer: String,
        /// The failing event's stream.
        stream: String,
        /// Its version.
        version: u64,
        /// Its global position.
        position: u64,
        /// Tries made.
        attempts: u32,
        /// The last error.
        error: String,
        /// The last error's kind, where known.
        kind: Option<ErrorKind>,
    },
}

impl NatsConsumeError {
    /// What kind of failure stopped the consumer.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Setup(e) => e.kind(),
            Self::Broker { .. } => ErrorKind::Unavailable,
            Self::Stopped { kind, .. } => kind.unwrap_or(ErrorKind::InvalidInput),
        }
    }
}

/// A durable JetStream consumer driving an [`EventHandler`]; see the module docs.
pub struct NatsConsumer<H, D> {
    js: jetstream::Context,
    options: NatsOptions,
    consumer: ConsumerOptions,
    handler: H,
    dead_letters: D,
}

#[derive(Default)]
struct Counters {
    handled: AtomicU64,
    parked: AtomicU64,
    malformed: AtomicU64,
}

impl<H, D> NatsConsumer<H, D>
where
    H: EventHandler + Clone + Sync + 'static,
    D: DeadLetters + Clone + 'static,
{
    /// A consumer of `options`' stream; each lane gets a clone of `handler`; messages the policy
    /// parks go to `dead_letters`.
    pub fn new(
        js: jetstream::Context,
        options: NatsOptions,
        consumer: ConsumerOptions,
        handler: H,
        dead_letters: D,
    ) -> Self {
        Self {
            js,
            options,
            consumer,
            handler,
            dead_letters,
        }
    }

    /// Consumes until `stop` completes (lanes finish the message they hold) or the policy stops.
    pub async fn run(self, stop: impl Future<Output = ()> + Send) -> Result<ConsumerProgress, NatsConsumeError> {
        let name = self.consumer.durable.clone();
        let consumer = self.durable().await?;
        let mut messages = consumer.messages().await.map_err(|e| NatsConsumeError::Broker {
            consumer: name.clone(),
            message: e.to_string(),
        })?;
        let counters = Arc::new(Counters::default());
        let (failed_tx, mut failed) = mpsc::channel::<NatsConsumeError>(1);
        let mut lanes = Vec::new();
        let mut tasks = Vec::new();
        for _ in 0..self.consumer.lanes.max(1) {
            let (tx, rx) = mpsc::channel::<jetstream::Message>(64);
            lanes.push(tx);
            tasks.push(tokio::spawn(lane(
                rx,
                self.handler.clone(),
                self.dead_letters.clone(),
                self.consumer.clone(),
                counters.clone(),
                failed_tx.clone(),
            )));
        }
        drop(failed_tx);
        let mut stop = std::pin::pin!(stop);
        let mut retry_handler = self.handler.clone();
        let mut retry_tick = tokio::time::interval(Duration::from_secs(1));
        let outcome = loop {
            tokio::select! {
                () = &mut stop => break Ok(()),
                Some(error) = failed.recv() => break Err(error),
                _ = retry_tick.tick() => {
                    if let Err(e) = retry_parked(&self.dead_letters, &mut retry_handler, &name).await {
                        tracing::warn!(consumer = %name, error = %e, "cannot retry parked messages now");
                    }
                }
                next = messages.next() => match next {
                    Some(Ok(message)) => {
                        let lane = lane_of(&message, lanes.len());
                        if lanes[lane].send(message).await.is_err() {
                            // The lane ended: it reported why on `failed`.
                            continue;
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(consumer = %name, error = %e, "reading messages failed; going on");
                    }
                    None => break Err(NatsConsumeError::Broker {
                        consumer: name.clone(),
                        message: "the message stream ended".into(),
                    }),
                },
            }
        };
        drop(lanes);
        for t in tasks {
            let _ = t.await;
        }
        if let Ok(error) = failed.try_recv() {
            return Err(error);
        }
        outcome.map(|()| ConsumerProgress {
            handled: counters.handled.load(Ordering::Relaxed),
            parked: counters.parked.load(Ordering::Relaxed),
            malformed: counters.malformed.load(Ordering::Relaxed),
        })
    }

    /// The durable consumer, created if missing, re-created after its ack floor if a previous run
    /// left messages unacknowledged.
    async fn durable(&self) -> Result<jetstream::consumer::Consumer<pull::Config>, NatsError> {
        let name = &self.consumer.durable;
        let err = |e: &dyn std::fmt::Display| {
            let message = crate::jetstream_message(e);
            NatsError::Consumer {
                consumer: name.clone(),
                kind: crate::jetstream_kind(&message),
                message,
            }
        };
        let stream = crate::ensure_stream(&self.js, &self.options).await?;
        // One stream type: the broker filters. Several: every message comes and the lanes skip
        // (acknowledge) the other types, since multi-subject filters need NATS 2.10.
        let filter_subject = match self.consumer.stream_types.as_slice() {
            [one] => format!("{}.{one}.>", self.options.subject_prefix),
            _ => String::new(),
        };
        let mut config = pull::Config {
            durable_name: Some(name.clone()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: self.consumer.ack_wait,
            max_ack_pending: 1_000,
            filter_subject,
            ..Default::default()
        };
        if let Ok(mut existing) = stream.get_consumer::<pull::Config>(name).await {
            let info = existing.info().await.map_err(|e| err(&e))?;
            if info.num_ack_pending == 0 {
                return Ok(existing);
            }
            let start = info.ack_floor.stream_sequence + 1;
            tracing::info!(consumer = %name, start, pending = info.num_ack_pending,
                "re-creating the durable consumer after its ack floor, for in-order redelivery");
            stream.delete_consumer(name).await.map_err(|e| err(&e))?;
            config.deliver_policy = jetstream::consumer::DeliverPolicy::ByStartSequence { start_sequence: start };
        }
        stream.create_consumer(config).await.map_err(|e| err(&e))
    }
}

/// Handles again the parked messages an operator asked to retry (`annals parked retry`), from
/// the message the dead-letter row keeps: resolved, or parked again with the new error.
async fn retry_parked<H: EventHandler, D: DeadLetters>(
    dead_letters: &D,
    handler: &mut H,
    consumer: &str,
) -> Result<(), annals::StoreError> {
    for p in dead_letters.list_parked(Some(consumer)).await? {
        if p.state != ParkedState::Retry {
            continue;
        }
        let Some(event) = p.event() else {
            dead_letters
                .set_parked(
                    p.id,
                    ParkedState::Parked,
                    Some("the dead-letter row keeps no message to retry"),
                )
                .await?;
            continue;
        };
        match handler.handle(&event).await {
            Ok(()) => dead_letters.set_parked(p.id, ParkedState::Resolved, None).await?,
            Err(e) => {
                let why = format!("{}{}", annals::consume::RETRY_FAILED, annals::error::report(e.as_ref()));
                tracing::warn!(consumer, parked = p.id, error = %why, "a parked message failed again");
                dead_letters.set_parked(p.id, ParkedState::Parked, Some(&why)).await?
            }
        };
    }
    Ok(())
}

/// The lane of a message: by its stream id, so a stream's messages share one lane.
fn lane_of(message: &jetstream::Message, lanes: usize) -> usize {
    let mut h = DefaultHasher::new();
    message
        .headers
        .as_ref()
        .and_then(|h| h.get("Annals-Stream-Id"))
        .map(|v| v.as_str())
        .unwrap_or(message.subject.as_str())
        .hash(&mut h);
    (h.finish() % lanes as u64) as usize
}

/// Handles one lane's messages in arrival order until its channel closes or the policy stops.
async fn lane<H: EventHandler, D: DeadLetters>(
    mut rx: mpsc::Receiver<jetstream::Message>,
    mut handler: H,
    dead_letters: D,
    options: ConsumerOptions,
    counters: Arc<Counters>,
    failed: mpsc::Sender<NatsConsumeError>,
) {
    while let Some(message) = rx.recv().await {
        if !options.event_types.is_empty()
            && !wire::event_type_of(message.headers.as_ref())
                .is_some_and(|t| options.event_types.iter().any(|w| w == t))
        {
            ack(&message, &options.durable).await;
            continue;
        }
        let event = match wire::decode(message.headers.as_ref(), &message.payload) {
            Ok(event) => event,
            Err(why) => {
                tracing::error!(consumer = %options.durable, subject = %message.subject, %why,
                    "not an annals event: terminating it");
                let _ = message.ack_with(AckKind::Term).await;
                counters.malformed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        if !options.stream_types.is_empty() && !options.stream_types.contains(&event.stream_type) {
            ack(&message, &options.durable).await;
            continue;
        }
        match handle_with_policy(&mut handler, &event, &message, &options, &dead_letters).await {
            Ok(()) => {
                ack(&message, &options.durable).await;
                counters.handled.fetch_add(1, Ordering::Relaxed);
            }
            Err(GaveUp {
                error,
                attempts,
                kind,
                verdict,
            }) => match verdict {
                Verdict::Stop => {
                    let _ = failed
                        .send(NatsConsumeError::Stopped {
                            consumer: options.durable.clone(),
                            stream: event.stream_id.to_string(),
                            version: event.version,
                            position: event.global_position,
                            attempts,
                            error,
                            kind,
                        })
                        .await;
                    return;
                }
                _ => {
                    tracing::warn!(consumer = %options.durable, stream = %event.stream_id, version = event.version,
                        %error, "parking a message after {attempts} tries");
                    // Parking must stick before the ack; until it does, keep the message.
                    let mut trouble = Trouble::new(options.durable.clone(), options.policy.backoff());
                    while let Err(e) = dead_letters.park(&options.durable, &event, &error, attempts).await {
                        let _ = message.ack_with(AckKind::Progress).await;
                        trouble.retry(&dead_letters, "parking a message", &e).await;
                    }
                    trouble.recovered(&dead_letters).await;
                    ack(&message, &options.durable).await;
                    counters.parked.fetch_add(1, Ordering::Relaxed);
                }
            },
        }
    }
}

async fn ack(message: &jetstream::Message, consumer: &str) {
    if let Err(e) = message.ack().await {
        // Redelivered later; the inbox absorbs the repeat.
        tracing::warn!(consumer, error = %e, "ack failed; the message will come again");
    }
}

/// Why a lane gave up on a message: the last error (in words), the tries made, its kind and
/// what the policy says to do now (park or stop).
struct GaveUp {
    error: String,
    attempts: u32,
    kind: Option<ErrorKind>,
    verdict: Verdict,
}

/// Runs the handler by the delivery policy: a transient failure is retried for as long as it
/// lasts (logged, in the `health` table), the message's own as the policy's tries say; then
/// whether to park it or stop.
async fn handle_with_policy<H: EventHandler, D: DeadLetters>(
    handler: &mut H,
    event: &RecordedEvent,
    message: &jetstream::Message,
    options: &ConsumerOptions,
    health: &D,
) -> Result<(), GaveUp> {
    let mut backoff = options.policy.backoff();
    let mut trouble = Trouble::new(options.durable.clone(), options.policy.backoff());
    let mut attempts = 0;
    loop {
        attempts += 1;
        let error = match handler.handle(event).await {
            Ok(()) => {
                trouble.recovered(health).await;
                return Ok(());
            }
            Err(e) => e,
        };
        let kind = annals::kind_of(error.as_ref());
        let verdict = options.policy.on_message_failure(kind, attempts);
        if verdict != Verdict::Retry {
            if verdict == Verdict::Stop {
                let what = format!("handling {} v{}", event.stream_id, event.version);
                trouble.stopped(health, &what, error.as_ref()).await;
            }
            return Err(GaveUp {
                error: annals::error::report(error.as_ref()),
                attempts,
                kind,
                verdict,
            });
        }
        // Keep the broker from redelivering it while we wait.
        let _ = message.ack_with(AckKind::Progress).await;
        if kind == Some(ErrorKind::Unavailable) {
            let what = format!("handling {} v{}", event.stream_id, event.version);
            trouble.retry(health, &what, error.as_ref()).await;
        } else {
            tracing::debug!(stream = %event.stream_id, version = event.version, error = %error, "handler failed; retrying");
            backoff.wait().await;
        }
    }
}

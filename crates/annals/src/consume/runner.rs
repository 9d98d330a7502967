//! The runner: moves a [`Consumer`] along the global log, from its checkpoint through history,
//! then live (woken by the store, never a busy poll), applying the [`ErrorPolicy`].

use std::future::Future;
use std::time::Duration;

use crate::error::{BoxError, ErrorKind, StoreError, kind_of};
use crate::event::RecordedEvent;
use crate::store::{EventStore, ReadStream};

use super::policy::{Backoff, ErrorPolicy, Verdict, on_failure};
use super::{DeadLetters, ParkedState, Trouble};

/// How often a running consumer looks for parked messages an operator asked to retry.
const PARKED_EVERY: Duration = Duration::from_secs(1);

/// A handled batch failed at `events[index]` (`index == events.len()`: the commit itself failed);
/// events before `committed` are done (handled and checkpointed), later ones are not.
#[derive(Debug)]
pub struct BatchFailure {
    /// How many events of the batch are done (0 for a consumer that commits all or nothing).
    pub committed: usize,
    /// The event that failed.
    pub index: usize,
    /// Why.
    pub error: BoxError,
}

/// Something that handles the global log from a checkpoint: a subscription, a projection.
pub trait Consumer: Send {
    /// Its name (the checkpoint's and the dead-letter table's key).
    fn name(&self) -> &str;
    /// Its stored checkpoint (0 if none).
    fn checkpoint(&mut self) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Handles `events` (possibly none) and moves the checkpoint to `to`; all or nothing where the
    /// consumer can (a projection in the store's database).
    fn handle_batch(
        &mut self,
        events: &[RecordedEvent],
        to: u64,
    ) -> impl Future<Output = Result<(), BatchFailure>> + Send;
    /// Handles one event again (a parked message an operator asked to retry), without moving the
    /// checkpoint.
    fn handle_again(&mut self, event: &RecordedEvent) -> impl Future<Output = Result<(), BoxError>> + Send;
    /// Stores a checkpoint the consumer has held back (see
    /// [`Subscription::with_checkpoint_every`](super::Subscription::with_checkpoint_every)); the
    /// runner calls it before it waits for new events and when it stops.
    fn flush(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }
}

/// Why a consumer stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The policy says stop, and every try on this event failed.
    #[error("consumer {consumer} stopped at position {position} ({stream} v{version}) after {attempts} tries: {error}")]
    Stopped {
        /// The consumer.
        consumer: String,
        /// The event's global position (the checkpoint stays before it).
        position: u64,
        /// The event's stream.
        stream: String,
        /// The event's version.
        version: u64,
        /// Tries made.
        attempts: u32,
        /// The last error.
        error: String,
        /// The last error's kind, where annals knows it (a handler's own error has none).
        kind: Option<ErrorKind>,
    },
}

impl ConsumeError {
    /// What kind of failure stopped the consumer: the store's, or the failing message's
    /// ([`ErrorKind::InvalidInput`] when the handler's error has no kind of its own).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Store(e) => e.kind(),
            Self::Stopped { kind, .. } => kind.unwrap_or(ErrorKind::InvalidInput),
        }
    }
}

/// What a run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// The checkpoint now.
    pub position: u64,
    /// Events handled (passed the filter).
    pub handled: u64,
    /// Events parked.
    pub parked: u64,
}

/// Drives a consumer. See the module docs.
pub struct Runner<S, C> {
    store: S,
    consumer: C,
    policy: ErrorPolicy,
    batch: usize,
    stream_types: Option<Vec<String>>,
    on_progress: Option<Box<dyn FnMut(u64, u64) + Send>>,
    /// Failures that are not one message's (the store, the commit), by the delivery policy.
    trouble: Trouble,
}

/// Runs `$op` (an expression giving `Result<_, StoreError>`) until it succeeds, retrying a
/// transient failure through the runner's [`Trouble`] and stopping on any other.
macro_rules! retrying {
    ($runner:ident, $what:expr, $op:expr) => {
        loop {
            match $op {
                Ok(value) => break value,
                Err(e) => $runner.failed($what, e).await?,
            }
        }
    };
}

impl<S: EventStore + DeadLetters, C: Consumer> Runner<S, C> {
    /// A runner with the default policy (5 tries, then park) and batches of 512 events.
    pub fn new(store: S, consumer: C) -> Self {
        let policy = ErrorPolicy::default();
        let trouble = Trouble::new(consumer.name(), Backoff::new(policy.backoff, STORE_BACKOFF_MAX));
        Self {
            store,
            consumer,
            policy,
            batch: 512,
            stream_types: None,
            on_progress: None,
            trouble,
        }
    }

    /// Sets the error policy.
    pub fn with_policy(mut self, policy: ErrorPolicy) -> Self {
        self.trouble = Trouble::new(self.consumer.name(), Backoff::new(policy.backoff, STORE_BACKOFF_MAX));
        self.policy = policy;
        self
    }

    /// Sets how many events are read and committed at once.
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Handles only events of these stream types (the checkpoint still moves past the others).
    pub fn only_stream_types(mut self, types: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.stream_types = Some(types.into_iter().map(Into::into).collect());
        self
    }

    /// Calls `f(position, head)` after every committed batch (for progress bars).
    pub fn on_progress(mut self, f: impl FnMut(u64, u64) + Send + 'static) -> Self {
        self.on_progress = Some(Box::new(f));
        self
    }

    /// The consumer.
    pub fn consumer(&mut self) -> &mut C {
        &mut self.consumer
    }

    /// A failure that is not one message's: waits and returns `Ok` to try again if it is
    /// transient, else records the stop and returns the error.
    async fn failed(&mut self, what: &str, e: StoreError) -> Result<(), ConsumeError> {
        match on_failure(e.kind()) {
            Verdict::Retry => {
                self.trouble.retry(&self.store, what, &e).await;
                Ok(())
            }
            _ => {
                self.trouble.stopped(&self.store, what, &e).await;
                Err(e.into())
            }
        }
    }

    /// Handles everything up to the log's head at the time of the call, then returns.
    pub async fn run_until_caught_up(&mut self) -> Result<Progress, ConsumeError> {
        let head = retrying!(self, "reading the log's head", self.store.head_position().await);
        let position = retrying!(self, "reading the checkpoint", self.consumer.checkpoint().await);
        let mut progress = Progress {
            position,
            ..Progress::default()
        };
        self.retry_parked().await?;
        while progress.position < head {
            if !self.step(&mut progress, head).await? {
                break;
            }
        }
        retrying!(self, "storing the checkpoint", self.consumer.flush().await);
        self.trouble.recovered(&self.store).await;
        Ok(progress)
    }

    /// Runs until `stop` completes (or the policy stops it): through history, then live.
    pub async fn run(&mut self, stop: impl Future<Output = ()> + Send) -> Result<Progress, ConsumeError> {
        let mut stop = std::pin::pin!(stop);
        let position = retrying!(self, "reading the checkpoint", self.consumer.checkpoint().await);
        let mut progress = Progress {
            position,
            ..Progress::default()
        };
        let mut parked_checked: Option<std::time::Instant> = None;
        loop {
            // Operators' retries are looked for at most once a second, not on every batch.
            if parked_checked.is_none_or(|t| t.elapsed() >= PARKED_EVERY) {
                self.retry_parked().await?;
                parked_checked = Some(std::time::Instant::now());
            }
            let head = retrying!(self, "reading the log's head", self.store.head_position().await);
            if progress.position >= head {
                retrying!(self, "storing the checkpoint", self.consumer.flush().await);
                self.trouble.recovered(&self.store).await;
                tokio::select! {
                    () = &mut stop => return Ok(progress),
                    waited = self.store.wait_for_new(progress.position, Duration::from_secs(1)) => {
                        if let Err(e) = waited {
                            self.failed("waiting for new events", e).await?;
                        }
                    }
                }
                continue;
            }
            self.step(&mut progress, head).await?;
            self.trouble.recovered(&self.store).await;
            if futures_now(&mut stop) {
                retrying!(self, "storing the checkpoint", self.consumer.flush().await);
                return Ok(progress);
            }
        }
    }

    /// Reads and handles one batch; false if the log had nothing after the checkpoint.
    async fn step(&mut self, progress: &mut Progress, head: u64) -> Result<bool, ConsumeError> {
        let events = loop {
            match self.store.read_all(progress.position, self.batch).await {
                Ok(events) => break events,
                Err(StoreError::Corrupt {
                    stream,
                    version,
                    reason,
                    position: Some(at),
                }) => {
                    // A row that cannot be read: handle what comes before it, one at a time,
                    // then park it and go on.
                    return self.past_corrupt(progress, head, at, (stream, version, reason)).await;
                }
                Err(e) => self.failed("reading the log", e).await?,
            }
        };
        let Some(last) = events.last().map(|e| e.global_position) else {
            return Ok(false);
        };
        self.handle_read(events, last, progress, head).await?;
        Ok(true)
    }

    /// Handles `events` read from the log (those of the wanted stream types) and moves the
    /// checkpoint to `last`.
    async fn handle_read(
        &mut self,
        events: Vec<RecordedEvent>,
        last: u64,
        progress: &mut Progress,
        head: u64,
    ) -> Result<(), ConsumeError> {
        let wanted: Vec<RecordedEvent> = match &self.stream_types {
            None => events,
            Some(types) => events.into_iter().filter(|e| types.contains(&e.stream_type)).collect(),
        };
        self.handle(&wanted, last, progress).await?;
        progress.position = last;
        if let Some(f) = &mut self.on_progress {
            f(last, head.max(last));
        }
        Ok(())
    }

    /// The log holds a row that does not decode at position `at`: the events before it are read
    /// and handled one by one, then it is parked (as far as it can be named) and the checkpoint
    /// moves past it.
    async fn past_corrupt(
        &mut self,
        progress: &mut Progress,
        head: u64,
        at: u64,
        (stream, version, reason): (String, u64, String),
    ) -> Result<bool, ConsumeError> {
        while progress.position + 1 < at {
            let one = match self.store.read_all(progress.position, 1).await {
                Ok(one) => one,
                Err(StoreError::Corrupt { position: Some(p), .. }) if p == at => break,
                Err(e) => {
                    self.failed("reading the log", e).await?;
                    continue;
                }
            };
            let Some(last) = one.first().map(|e| e.global_position).filter(|&p| p < at) else {
                break;
            };
            self.handle_read(one, last, progress, head).await?;
        }
        let error = format!("the stored event cannot be read: {reason}");
        tracing::error!(consumer = self.consumer.name(), position = at, %stream, version, %error,
            "parking a corrupt event");
        let placeholder = RecordedEvent {
            global_position: at,
            stream_id: crate::ids::StreamId::new(stream.clone())
                .unwrap_or_else(|_| crate::ids::StreamId::new(CORRUPT_STREAM).expect("a valid stream id")),
            stream_type: String::new(),
            version,
            event_id: uuid::Uuid::nil(),
            event_type: CORRUPT_EVENT.to_owned(),
            schema_version: 0,
            payload: serde_json::value::to_raw_value(&serde_json::Value::Null).expect("null is JSON"),
            metadata: crate::event::Metadata::default(),
            recorded_at: std::time::SystemTime::now(),
        };
        let name = self.consumer.name().to_owned();
        retrying!(
            self,
            "parking a corrupt event",
            self.store.park(&name, &placeholder, &error, 1).await
        );
        self.commit_checkpoint(at).await?;
        progress.parked += 1;
        progress.position = at;
        if let Some(f) = &mut self.on_progress {
            f(at, head.max(at));
        }
        Ok(true)
    }

    /// Moves the checkpoint to `to` with nothing to handle, retrying a transient failure.
    async fn commit_checkpoint(&mut self, to: u64) -> Result<(), ConsumeError> {
        loop {
            match self.consumer.handle_batch(&[], to).await {
                Ok(()) => return Ok(()),
                Err(f) => self.failed("storing the checkpoint", batch_error(f)).await?,
            }
        }
    }

    /// Handles `events` and moves the checkpoint to `to`, isolating and retrying a failing event.
    async fn handle(
        &mut self,
        mut events: &[RecordedEvent],
        to: u64,
        progress: &mut Progress,
    ) -> Result<(), ConsumeError> {
        loop {
            let failure = match self.consumer.handle_batch(events, to).await {
                Ok(()) => {
                    progress.handled += events.len() as u64;
                    return Ok(());
                }
                Err(f) => f,
            };
            if failure.index >= events.len() {
                // Not an event's fault: the commit itself failed. Nothing of the batch is done
                // beyond `committed`: try the rest again.
                progress.handled += failure.committed as u64;
                events = &events[failure.committed.min(events.len())..];
                self.failed("committing a batch", batch_error(failure)).await?;
                continue;
            }
            progress.handled += failure.committed as u64;
            // Commit what precedes the failing event, then give it its own tries.
            let before = &events[failure.committed..failure.index];
            if let Some(last) = before.last() {
                let upto = last.global_position;
                loop {
                    match self.consumer.handle_batch(before, upto).await {
                        Ok(()) => break,
                        Err(f) => self.failed("committing a batch", batch_error(f)).await?,
                    }
                }
                progress.handled += before.len() as u64;
            }
            let failing = &events[failure.index];
            self.handle_failing(failing, failure.error, progress).await?;
            events = &events[failure.index + 1..];
            if events.is_empty() {
                // Nothing left of this batch but its checkpoint.
                return self.commit_checkpoint(to).await;
            }
        }
    }

    /// Gives a failing event its tries by the policy: handled at last, parked, or the stop.
    async fn handle_failing(
        &mut self,
        failing: &RecordedEvent,
        mut error: BoxError,
        progress: &mut Progress,
    ) -> Result<(), ConsumeError> {
        let mut attempts = 1;
        let mut backoff = self.policy.backoff();
        loop {
            let kind = kind_of(error.as_ref());
            match self.policy.on_message_failure(kind, attempts) {
                Verdict::Retry => {
                    if kind == Some(ErrorKind::Unavailable) {
                        let what = format!("handling {} v{}", failing.stream_id, failing.version);
                        self.trouble.retry(&self.store, &what, error.as_ref()).await;
                    } else {
                        tracing::debug!(consumer = self.consumer.name(), stream = %failing.stream_id,
                            version = failing.version, attempts, error = %error, "handler failed; retrying");
                        backoff.wait().await;
                    }
                }
                Verdict::Park => {
                    tracing::warn!(consumer = self.consumer.name(), position = failing.global_position,
                        error = %error, "parking a message after {attempts} tries");
                    let name = self.consumer.name().to_owned();
                    let text = crate::error::report(error.as_ref());
                    retrying!(
                        self,
                        "parking a message",
                        self.store.park(&name, failing, &text, attempts).await
                    );
                    // Move the checkpoint past it (nothing else in this call).
                    self.commit_checkpoint(failing.global_position).await?;
                    progress.parked += 1;
                    return Ok(());
                }
                Verdict::Stop => {
                    let what = format!("handling {} v{}", failing.stream_id, failing.version);
                    self.trouble.stopped(&self.store, &what, error.as_ref()).await;
                    return Err(ConsumeError::Stopped {
                        consumer: self.consumer.name().to_owned(),
                        position: failing.global_position,
                        stream: failing.stream_id.to_string(),
                        version: failing.version,
                        attempts,
                        kind,
                        error: crate::error::report(error.as_ref()),
                    });
                }
            }
            attempts += 1;
            match self
                .consumer
                .handle_batch(std::slice::from_ref(failing), failing.global_position)
                .await
            {
                Ok(()) => {
                    progress.handled += 1;
                    return Ok(());
                }
                Err(f) => error = f.error,
            }
        }
    }

    /// Re-handles parked messages an operator asked to retry.
    async fn retry_parked(&mut self) -> Result<(), ConsumeError> {
        let name = self.consumer.name().to_owned();
        let parked = retrying!(
            self,
            "reading parked messages",
            self.store.list_parked(Some(&name)).await
        );
        for p in parked {
            if p.state != ParkedState::Retry {
                continue;
            }
            let Ok(stream) = crate::ids::StreamId::new(p.stream_id.clone()) else {
                let why = format!("the parked message names an invalid stream id {:?}", p.stream_id);
                retrying!(
                    self,
                    "updating a parked message",
                    self.store.set_parked(p.id, ParkedState::Parked, Some(&why)).await
                );
                continue;
            };
            let read = self
                .store
                .read_stream(&stream, ReadStream::from_version(p.version).limit(1))
                .await;
            let event = match read {
                Ok(events) => events.into_iter().next().filter(|e| e.event_id == p.event_id),
                Err(e) if e.kind() == ErrorKind::Corrupt => {
                    let why = crate::error::report(&e);
                    retrying!(
                        self,
                        "updating a parked message",
                        self.store.set_parked(p.id, ParkedState::Parked, Some(&why)).await
                    );
                    continue;
                }
                Err(e) => {
                    self.failed("reading a parked message's event", e).await?;
                    continue;
                }
            };
            let Some(event) = event else {
                retrying!(
                    self,
                    "updating a parked message",
                    self.store
                        .set_parked(p.id, ParkedState::Parked, Some("the event is no longer in the store"))
                        .await
                );
                continue;
            };
            match self.consumer.handle_again(&event).await {
                Ok(()) => {
                    retrying!(
                        self,
                        "updating a parked message",
                        self.store.set_parked(p.id, ParkedState::Resolved, None).await
                    );
                }
                Err(e) => {
                    let why = format!("{RETRY_FAILED}{}", crate::error::report(e.as_ref()));
                    tracing::warn!(consumer = %name, parked = p.id, error = %why, "a parked message failed again");
                    retrying!(
                        self,
                        "updating a parked message",
                        self.store.set_parked(p.id, ParkedState::Parked, Some(&why)).await
                    );
                }
            };
        }
        Ok(())
    }
}

/// How the error of a parked message an operator asked to retry begins when it fails again.
pub const RETRY_FAILED: &str = "retried and failed again: ";

/// The stream id a parked corrupt event is filed under when its own id cannot be read.
const CORRUPT_STREAM: &str = "annals-corrupt";
/// The event type of a parked corrupt event (its own could not be read).
pub(super) const CORRUPT_EVENT: &str = "AnnalsCorruptEvent";

/// The longest wait between tries of a failure that is not one message's (a store or broker
/// outage).
const STORE_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A batch's failure that is not an event's (the commit) as a store error, its kind kept when it
/// is one of annals'.
fn batch_error(f: BatchFailure) -> StoreError {
    match f.error.downcast::<StoreError>() {
        Ok(e) => *e,
        Err(other) => StoreError::backend(other),
    }
}

/// Whether `f` is ready now (without waiting).
fn futures_now(f: &mut std::pin::Pin<&mut (impl Future<Output = ()> + Send)>) -> bool {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    f.as_mut().poll(&mut cx).is_ready()
}

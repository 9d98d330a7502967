//! The runner: moves a [`Consumer`] along the global log, from its checkpoint through history,
//! then live (woken by the store, never a busy poll), applying the [`ErrorPolicy`].

use std::future::Future;
use std::time::Duration;

use crate::error::{BoxError, ErrorKind, StoreError, kind_of};
use crate::event::RecordedEvent;
use crate::store::{EventStore, ReadStream};

use super::{DeadLetters, ErrorPolicy, Exhausted, ParkedState};

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
}

impl<S: EventStore + DeadLetters, C: Consumer> Runner<S, C> {
    /// A runner with the default policy (5 tries, then park) and batches of 512 events.
    pub fn new(store: S, consumer: C) -> Self {
        Self {
            store,
            consumer,
            policy: ErrorPolicy::default(),
            batch: 512,
            stream_types: None,
            on_progress: None,
        }
    }

    /// Sets the error policy.
    pub fn with_policy(mut self, policy: ErrorPolicy) -> Self {
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

    /// Handles everything up to the log's head at the time of the call, then returns.
    pub async fn run_until_caught_up(&mut self) -> Result<Progress, ConsumeError> {
        let head = self.store.head_position().await?;
        let mut progress = Progress {
            position: self.consumer.checkpoint().await?,
            ..Progress::default()
        };
        self.retry_parked().await?;
        while progress.position < head {
            if !self.step(&mut progress, head).await? {
                break;
            }
        }
        self.consumer.flush().await?;
        Ok(progress)
    }

    /// Runs until `stop` completes (or the policy stops it): through history, then live.
    pub async fn run(&mut self, stop: impl Future<Output = ()> + Send) -> Result<Progress, ConsumeError> {
        let mut stop = std::pin::pin!(stop);
        let mut progress = Progress {
            position: self.consumer.checkpoint().await?,
            ..Progress::default()
        };
        let mut parked_checked: Option<std::time::Instant> = None;
        loop {
            // Operators' retries are looked for at most once a second, not on every batch.
            if parked_checked.is_none_or(|t| t.elapsed() >= PARKED_EVERY) {
                self.retry_parked().await?;
                parked_checked = Some(std::time::Instant::now());
            }
            let head = self.store.head_position().await?;
            if progress.position >= head {
                self.consumer.flush().await?;
                tokio::select! {
                    () = &mut stop => return Ok(progress),
                    waited = self.store.wait_for_new(progress.position, Duration::from_secs(1)) => { waited?; }
                }
                continue;
            }
            self.step(&mut progress, head).await?;
            if futures_now(&mut stop) {
                self.consumer.flush().await?;
                return Ok(progress);
            }
        }
    }

    /// Reads and handles one batch; false if the log had nothing after the checkpoint.
    async fn step(&mut self, progress: &mut Progress, head: u64) -> Result<bool, ConsumeError> {
        let events = self.store.read_all(progress.position, self.batch).await?;
        let Some(last) = events.last().map(|e| e.global_position) else {
            return Ok(false);
        };
        let wanted: Vec<RecordedEvent> = match &self.stream_types {
            None => events,
            Some(types) => events.into_iter().filter(|e| types.contains(&e.stream_type)).collect(),
        };
        self.handle(&wanted, last, progress).await?;
        progress.position = last;
        if let Some(f) = &mut self.on_progress {
            f(last, head.max(last));
        }
        Ok(true)
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
                // Not an event's fault: the commit itself failed.
                return Err(self.store_error(failure).into());
            }
            progress.handled += failure.committed as u64;
            // Commit what precedes the failing event, then give it its own tries.
            let before = &events[failure.committed..failure.index];
            if let Some(last) = before.last() {
                self.consumer
                    .handle_batch(before, last.global_position)
                    .await
                    .map_err(|f| self.store_error(f))?;
                progress.handled += before.len() as u64;
            }
            let failing = &events[failure.index];
            let mut error = failure.error;
            let mut attempts = 1;
            let mut wait = self.policy.backoff;
            let mut done = false;
            while attempts < self.policy.attempts.max(1) {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(self.policy.max_backoff);
                attempts += 1;
                match self
                    .consumer
                    .handle_batch(std::slice::from_ref(failing), failing.global_position)
                    .await
                {
                    Ok(()) => {
                        done = true;
                        break;
                    }
                    Err(f) => error = f.error,
                }
            }
            if done {
                progress.handled += 1;
            } else {
                match self.policy.exhausted {
                    Exhausted::Stop => {
                        return Err(ConsumeError::Stopped {
                            consumer: self.consumer.name().to_owned(),
                            position: failing.global_position,
                            stream: failing.stream_id.to_string(),
                            version: failing.version,
                            attempts,
                            kind: kind_of(error.as_ref()),
                            error: error.to_string(),
                        });
                    }
                    _ => {
                        tracing::warn!(consumer = self.consumer.name(), position = failing.global_position,
                            error = %error, "parking a message after {attempts} tries");
                        self.store
                            .park(self.consumer.name(), failing, &error.to_string(), attempts)
                            .await?;
                        // Move the checkpoint past it (nothing else in this call).
                        self.consumer
                            .handle_batch(&[], failing.global_position)
                            .await
                            .map_err(|f| self.store_error(f))?;
                        progress.parked += 1;
                    }
                }
            }
            events = &events[failure.index + 1..];
            if events.is_empty() {
                // Nothing left of this batch but its checkpoint.
                return self
                    .consumer
                    .handle_batch(&[], to)
                    .await
                    .map_err(|f| self.store_error(f).into());
            }
        }
    }

    fn store_error(&self, f: BatchFailure) -> StoreError {
        StoreError::backend(format!("consumer {}: {}", self.consumer.name(), f.error))
    }

    /// Re-handles parked messages an operator asked to retry.
    async fn retry_parked(&mut self) -> Result<(), ConsumeError> {
        let name = self.consumer.name().to_owned();
        for p in self.store.list_parked(Some(&name)).await? {
            if p.state != ParkedState::Retry {
                continue;
            }
            let stream = crate::ids::StreamId::new(p.stream_id.clone())
                .map_err(|e| StoreError::backend(format!("parked message {}: {e}", p.id)))?;
            let event = self
                .store
                .read_stream(&stream, ReadStream::from_version(p.version).limit(1))
                .await?
                .into_iter()
                .next()
                .filter(|e| e.event_id == p.event_id);
            let Some(event) = event else {
                self.store
                    .set_parked(p.id, ParkedState::Parked, Some("the event is no longer in the store"))
                    .await?;
                continue;
            };
            match self.consumer.handle_again(&event).await {
                Ok(()) => self.store.set_parked(p.id, ParkedState::Resolved, None).await?,
                Err(e) => {
                    self.store
                        .set_parked(p.id, ParkedState::Parked, Some(&e.to_string()))
                        .await?
                }
            };
        }
        Ok(())
    }
}

/// Whether `f` is ready now (without waiting).
fn futures_now(f: &mut std::pin::Pin<&mut (impl Future<Output = ()> + Send)>) -> bool {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    f.as_mut().poll(&mut cx).is_ready()
}

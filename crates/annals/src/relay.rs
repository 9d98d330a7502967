//! The relay: publishes every committed event to a message broker, in committed order, at least
//! once (DESIGN §1.5, §6). This is the polling source: it reads the global log from a durable
//! cursor (a checkpoint named `relay.<name>`, so `annals status` shows its lag) and stores the
//! cursor only after the broker acknowledged everything before it — when it has caught up, and
//! every 100 ms while it is busy, so the cursor's commit is not on every batch's path. While the
//! broker acknowledges a full batch, the next one is read; one batch is sent at a time, so a
//! failure can never put a later event ahead of an earlier one. Broker or database outages are
//! waited out by the one delivery policy ([`crate::consume::policy`]): retried with a jittered
//! backoff, logged and shown in the `health` table (component `relay.<name>`) while they last;
//! nothing is skipped. A failure no retry fixes (a broker that refuses the stream, a row of the
//! log that cannot be read) stops the relay with its error.
//!
//! One relay per name is active at a time: it holds a lease (a row in the store's `leases`
//! table, renewed every third of its time to live). A second relay with the same name waits and
//! takes over within one time to live after the first stops renewing (it died or lost its
//! database). Duplicates a takeover may cause are harmless: the broker drops a message id it has
//! seen within its window, and consumers use the inbox.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::consume::{Backoff, Checkpoints, HealthReports, Trouble};
use crate::error::{BoxError, ErrorKind, StoreError, kind_of};
use crate::event::RecordedEvent;
use crate::store::EventStore;

/// How often a busy relay stores its cursor (an idle one stores it as soon as it caught up).
const CURSOR_EVERY: Duration = Duration::from_millis(100);

/// A broker the relay publishes to.
pub trait Publisher: Send + Sync {
    /// Publishes `events` (consecutive in the global log) in order and returns once the broker
    /// acknowledged every one of them. On an error, some may have been published: the relay
    /// publishes the whole batch again, so the broker's de-duplication must absorb that.
    fn publish(&self, events: &[RecordedEvent]) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// Named leases with a time to live, so one process at a time does a job.
pub trait Leases: Send + Sync {
    /// Takes lease `name` for `holder` (or renews it if `holder` has it) until `ttl` from now,
    /// by the store's clock. False if another holder has it and it has not expired.
    fn hold_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Gives lease `name` up if `holder` has it, so a waiting relay takes over at once.
    fn release_lease(&self, name: &str, holder: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// How far a relay got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayProgress {
    /// The stored cursor: every event up to it was acknowledged by the broker.
    pub position: u64,
    /// Events published (and acknowledged) by this run.
    pub published: u64,
    /// Publish attempts that failed and were retried.
    pub retries: u64,
}

/// Why a relay stopped: a failure no retry fixes (a transient one is retried, and shown).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The store failed: misconfigured, or a row of the log that cannot be read (the relay
    /// cannot skip an event, so it stops there).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The broker refused in a way no retry fixes (its kind says which).
    #[error("relay {relay}: publishing failed: {error}")]
    Publish {
        /// The relay.
        relay: String,
        /// The failure's kind.
        kind: ErrorKind,
        /// The broker's error.
        #[source]
        error: BoxError,
    },
}

impl RelayError {
    /// What kind of failure stopped the relay.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Store(e) => e.kind(),
            Self::Publish { kind, .. } => *kind,
        }
    }
}

/// Publishes the global log to a [`Publisher`]; see the module docs.
pub struct Relay<S, P> {
    store: S,
    publisher: P,
    name: String,
    holder: String,
    batch: usize,
    lease_ttl: Duration,
    trouble: Trouble,
    on_progress: Option<Box<dyn FnMut(RelayProgress) + Send + Sync>>,
}

impl<S, P> Relay<S, P>
where
    S: EventStore + Checkpoints + Leases + HealthReports,
    P: Publisher,
{
    /// A relay called `name` (its lease and, as `relay.<name>`, its cursor) from `store` to
    /// `publisher`: batches of 500, a 5 s lease, backoff up to 5 s.
    pub fn new(name: impl Into<String>, store: S, publisher: P) -> Self {
        let name = name.into();
        Self {
            store,
            publisher,
            trouble: Trouble::new(
                format!("relay.{name}"),
                Backoff::new(Duration::from_millis(50), MAX_BACKOFF),
            ),
            name,
            holder: format!("{}-{}", std::process::id(), uuid::Uuid::now_v7()),
            batch: 500,
            lease_ttl: Duration::from_secs(5),
            on_progress: None,
        }
    }

    /// Events per read and publish (at least 1).
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// The lease's time to live: how long a standby waits after the active relay stopped.
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_millis(300));
        self
    }

    /// Calls `f` after every acknowledged batch.
    pub fn on_progress(mut self, f: impl FnMut(RelayProgress) + Send + Sync + 'static) -> Self {
        self.on_progress = Some(Box::new(f));
        self
    }

    /// The name of the cursor in the checkpoints table.
    pub fn checkpoint_name(&self) -> String {
        format!("relay.{}", self.name)
    }

    /// Runs until `stop` completes: waits for the lease, then publishes through history and
    /// live. Transient failures of the store or the broker are retried (logged, and in the
    /// `health` table); a permanent one ends the run with its error. Returns the progress at
    /// the stop; gives the lease up on the way out.
    pub async fn run(&mut self, stop: impl Future<Output = ()> + Send) -> Result<RelayProgress, RelayError> {
        let mut stop = std::pin::pin!(stop);
        let mut progress = RelayProgress::default();
        let result = loop {
            tokio::select! {
                () = &mut stop => {
                    // What was published since the cursor was last stored.
                    if progress.published > 0 {
                        let _ = self.store.save_checkpoint(&self.checkpoint_name(), progress.position).await;
                    }
                    break Ok(progress);
                }
                ran = self.lead(&mut progress) => match ran {
                    // The lease was lost: wait for it again.
                    Ok(()) => continue,
                    Err(e) => break Err(e),
                },
            }
        };
        let _ = self.store.release_lease(&self.name, &self.holder).await;
        result
    }

    /// A store failure: retried after the backoff if transient (`Ok`), else the stop.
    async fn store_failed(
        &mut self,
        what: &str,
        e: StoreError,
        progress: &mut RelayProgress,
    ) -> Result<(), RelayError> {
        if e.kind().is_transient() {
            progress.retries += 1;
            self.trouble.retry(&self.store, what, &e).await;
            Ok(())
        } else {
            self.trouble.stopped(&self.store, what, &e).await;
            Err(e.into())
        }
    }

    /// Waits for the lease, then publishes while holding it; returns when the lease is lost.
    async fn lead(&mut self, progress: &mut RelayProgress) -> Result<(), RelayError> {
        let renew_every = self.lease_ttl / 3;
        loop {
            match self.store.hold_lease(&self.name, &self.holder, self.lease_ttl).await {
                Ok(true) => break,
                Ok(false) => tokio::time::sleep(renew_every).await,
                Err(e) => self.store_failed("taking the relay's lease", e, progress).await?,
            }
        }
        tracing::info!(relay = %self.name, "relay holds its lease");
        let cursor = self.checkpoint_name();
        progress.position = loop {
            match self.store.load_checkpoint(&cursor).await {
                Ok(position) => break position.unwrap_or(0),
                Err(e) => self.store_failed("reading the relay's cursor", e, progress).await?,
            }
        };
        let mut renewed = Instant::now();
        let (mut saved, mut saved_at) = (progress.position, Instant::now());
        let mut at_head = false;
        let mut ahead: Option<Vec<RecordedEvent>> = None;
        loop {
            if renewed.elapsed() >= renew_every {
                match self.store.hold_lease(&self.name, &self.holder, self.lease_ttl).await {
                    Ok(true) => renewed = Instant::now(),
                    Ok(false) => {
                        tracing::warn!(relay = %self.name, "relay lost its lease");
                        return Ok(());
                    }
                    // Not renewed: another relay may take over once it expires; this one finds
                    // out at its next renewal.
                    Err(e) => self.store_failed("renewing the relay's lease", e, progress).await?,
                }
            }
            if at_head {
                // Caught up: store the cursor before waiting, so a restart repeats nothing.
                if saved < progress.position {
                    match self.store.save_checkpoint(&cursor, progress.position).await {
                        Ok(()) => saved = progress.position,
                        Err(e) => self.store_failed("storing the relay's cursor", e, progress).await?,
                    }
                }
                self.trouble.recovered(&self.store).await;
                if let Err(e) = self.store.wait_for_new(progress.position, renew_every).await {
                    self.store_failed("waiting for new events", e, progress).await?;
                }
                at_head = false;
            }
            let events = match ahead.take() {
                Some(events) => events,
                None => match self.store.read_all(progress.position, self.batch).await {
                    Ok(events) => events,
                    Err(e) => {
                        self.store_failed("reading the log", e, progress).await?;
                        continue;
                    }
                },
            };
            let Some(last) = events.last().map(|e| e.global_position) else {
                at_head = true;
                continue;
            };
            // A full batch means more is waiting: read the next one while the broker acknowledges
            // this one. The next batch is sent only after this one is acknowledged, so a broker
            // failure can never put a later event ahead of an earlier one.
            let full = events.len() == self.batch;
            let published = if full {
                let (published, next) =
                    tokio::join!(self.publisher.publish(&events), self.store.read_all(last, self.batch));
                // A failed read-ahead is read again, and handled, on the next turn.
                ahead = next.ok().filter(|_| published.is_ok());
                published
            } else {
                self.publisher.publish(&events).await
            };
            if let Err(e) = published {
                let kind = kind_of(e.as_ref()).unwrap_or(ErrorKind::Unavailable);
                if kind.is_transient() {
                    progress.retries += 1;
                    self.trouble
                        .retry(&self.store, "publishing to the broker", e.as_ref())
                        .await;
                    continue;
                }
                self.trouble
                    .stopped(&self.store, "publishing to the broker", e.as_ref())
                    .await;
                return Err(RelayError::Publish {
                    relay: self.name.clone(),
                    kind,
                    error: e,
                });
            }
            progress.position = last;
            // A short batch was the head: wait for more rather than read an empty page.
            at_head = !full;
            // Under load the cursor is stored at most every CURSOR_EVERY, not after every batch:
            // a crash repeats what was published since, which the broker and the inbox absorb.
            if saved_at.elapsed() >= CURSOR_EVERY {
                match self.store.save_checkpoint(&cursor, last).await {
                    Ok(()) => saved = last,
                    Err(e) => self.store_failed("storing the relay's cursor", e, progress).await?,
                }
                saved_at = Instant::now();
            }
            progress.published += events.len() as u64;
            self.trouble.recovered(&self.store).await;
            if let Some(f) = &mut self.on_progress {
                f(*progress);
            }
        }
    }
}

/// The longest wait between tries of a failing store or broker.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl<L: Leases + ?Sized> Leases for std::sync::Arc<L> {
    fn hold_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).hold_lease(name, holder, ttl)
    }
    fn release_lease(&self, name: &str, holder: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).release_lease(name, holder)
    }
}

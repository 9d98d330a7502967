//! The relay: publishes every committed event to a message broker, in committed order, at least
//! once (DESIGN §1.5, §6). This is the polling source: it reads the global log from a durable
//! cursor (a checkpoint named `relay.<name>`, so `annals status` shows its lag) and stores the
//! cursor only after the broker acknowledged everything before it — when it has caught up, and
//! every 100 ms while it is busy, so the cursor's commit is not on every batch's path. Broker or database outages are
//! waited out with a doubling backoff; nothing is skipped.
//!
//! One relay per name is active at a time: it holds a lease (a row in the store's `leases`
//! table, renewed every third of its time to live). A second relay with the same name waits and
//! takes over within one time to live after the first stops renewing (it died or lost its
//! database). Duplicates a takeover may cause are harmless: the broker drops a message id it has
//! seen within its window, and consumers use the inbox.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::consume::Checkpoints;
use crate::error::{BoxError, StoreError};
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

/// Publishes the global log to a [`Publisher`]; see the module docs.
pub struct Relay<S, P> {
    store: S,
    publisher: P,
    name: String,
    holder: String,
    batch: usize,
    lease_ttl: Duration,
    max_backoff: Duration,
    on_progress: Option<Box<dyn FnMut(RelayProgress) + Send + Sync>>,
}

impl<S, P> Relay<S, P>
where
    S: EventStore + Checkpoints + Leases,
    P: Publisher,
{
    /// A relay called `name` (its lease and, as `relay.<name>`, its cursor) from `store` to
    /// `publisher`: batches of 500, a 5 s lease, backoff up to 5 s.
    pub fn new(name: impl Into<String>, store: S, publisher: P) -> Self {
        Self {
            store,
            publisher,
            name: name.into(),
            holder: format!("{}-{}", std::process::id(), uuid::Uuid::now_v7()),
            batch: 500,
            lease_ttl: Duration::from_secs(5),
            max_backoff: Duration::from_secs(5),
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
    /// live. Returns the progress at the stop; gives the lease up on the way out.
    pub async fn run(&mut self, stop: impl Future<Output = ()> + Send) -> Result<RelayProgress, StoreError> {
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

    /// Waits for the lease, then publishes while holding it; returns when the lease is lost.
    async fn lead(&mut self, progress: &mut RelayProgress) -> Result<(), StoreError> {
        let renew_every = self.lease_ttl / 3;
        while !self.hold().await {
            tokio::time::sleep(renew_every).await;
        }
        tracing::info!(relay = %self.name, "relay holds its lease");
        let cursor = self.checkpoint_name();
        let mut backoff = Duration::from_millis(50);
        progress.position = loop {
            match self.store.load_checkpoint(&cursor).await {
                Ok(position) => break position.unwrap_or(0),
                Err(e) => {
                    tracing::warn!(relay = %self.name, error = %e, "relay cannot read its cursor; retrying");
                    backoff = pause(backoff, self.max_backoff).await;
                }
            }
        };
        let mut renewed = Instant::now();
        let (mut saved, mut saved_at) = (progress.position, Instant::now());
        let mut at_head = false;
        loop {
            if renewed.elapsed() >= renew_every {
                if !self.hold().await {
                    tracing::warn!(relay = %self.name, "relay lost its lease");
                    return Ok(());
                }
                renewed = Instant::now();
            }
            if at_head {
                // Caught up: store the cursor before waiting, so a restart repeats nothing.
                if saved < progress.position {
                    match self.store.save_checkpoint(&cursor, progress.position).await {
                        Ok(()) => saved = progress.position,
                        Err(e) => tracing::warn!(relay = %self.name, error = %e, "cannot store the relay cursor"),
                    }
                }
                let _ = self.store.wait_for_new(progress.position, renew_every).await;
                at_head = false;
            }
            let events = match self.store.read_all(progress.position, self.batch).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(relay = %self.name, error = %e, "relay cannot read the log; retrying");
                    progress.retries += 1;
                    backoff = pause(backoff, self.max_backoff).await;
                    continue;
                }
            };
            let Some(last) = events.last().map(|e| e.global_position) else {
                at_head = true;
                continue;
            };
            if let Err(e) = self.publisher.publish(&events).await {
                tracing::warn!(relay = %self.name, error = %e, "publishing failed; retrying the batch");
                progress.retries += 1;
                backoff = pause(backoff, self.max_backoff).await;
                continue;
            }
            backoff = Duration::from_millis(50);
            progress.position = last;
            // A short batch was the head: wait for more rather than read an empty page.
            at_head = events.len() < self.batch;
            // Under load the cursor is stored at most every CURSOR_EVERY, not after every batch:
            // a crash repeats what was published since, which the broker and the inbox absorb.
            if saved_at.elapsed() >= CURSOR_EVERY {
                match self.store.save_checkpoint(&cursor, last).await {
                    Ok(()) => saved = last,
                    Err(e) => tracing::warn!(relay = %self.name, error = %e, "cannot store the relay cursor"),
                }
                saved_at = Instant::now();
            }
            progress.published += events.len() as u64;
            if let Some(f) = &mut self.on_progress {
                f(*progress);
            }
        }
    }

    /// Takes or renews the lease; a store error counts as not holding it.
    async fn hold(&self) -> bool {
        match self.store.hold_lease(&self.name, &self.holder, self.lease_ttl).await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(relay = %self.name, error = %e, "relay cannot reach its lease");
                false
            }
        }
    }
}

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

/// Sleeps `backoff`, then returns the next one: doubled, at most `max`.
async fn pause(backoff: Duration, max: Duration) -> Duration {
    tokio::time::sleep(backoff).await;
    (backoff * 2).min(max)
}

//! A catch-up subscription: any handler, its checkpoint stored after each batch. Delivery is at
//! least once (a crash after the handler ran and before the checkpoint moved replays those
//! events): make the handler idempotent with the [`Inbox`](super::Inbox), or use a projection
//! whose read model commits with its checkpoint.

use std::future::Future;

use crate::error::{BoxError, StoreError};
use crate::event::RecordedEvent;

use super::Checkpoints;
use super::runner::{BatchFailure, Consumer};

/// Handles one event.
pub trait EventHandler: Send {
    /// Handles `event`; an error is retried, then parked or stops the consumer, by the policy.
    fn handle(&mut self, event: &RecordedEvent) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// A named subscription with a handler; run it with a [`Runner`](super::Runner).
///
/// With [`with_lanes`](Self::with_lanes), events of different streams are handled concurrently
/// (each stream always in the same lane, so in version order): a handler that waits on I/O —
/// a saga participant, an orchestrator — then overlaps its waits, and the store can commit
/// their appends together.
pub struct Subscription<S, H> {
    name: String,
    store: S,
    handlers: Vec<H>,
    /// Store the checkpoint at most this often (`None`: after every batch).
    every: Option<std::time::Duration>,
    /// A checkpoint held back, and when one was last stored.
    unsaved: Option<u64>,
    saved_at: std::time::Instant,
}

impl<S: Checkpoints, H: EventHandler> Subscription<S, H> {
    /// A subscription called `name` (its checkpoint's key) that keeps its checkpoint in `store`.
    pub fn new(name: impl Into<String>, store: S, handler: H) -> Self {
        Self {
            name: name.into(),
            store,
            handlers: vec![handler],
            every: None,
            unsaved: None,
            saved_at: std::time::Instant::now(),
        }
    }

    /// Stores the checkpoint at most every `every` while events keep coming (and always before
    /// the runner waits or stops), instead of after every batch: fewer commits for a busy
    /// subscription, and after a crash up to `every` of events are delivered again — which an
    /// idempotent handler (the inbox, a saga) absorbs.
    pub fn with_checkpoint_every(mut self, every: std::time::Duration) -> Self {
        self.every = Some(every);
        self
    }

    /// The handler (the first lane's).
    pub fn handler(&mut self) -> &mut H {
        &mut self.handlers[0]
    }
}

impl<S: Checkpoints, H: EventHandler + Clone> Subscription<S, H> {
    /// Handles up to `lanes` streams at once, each with its own clone of the handler. A failing
    /// event stops only its lane; the checkpoint stays before it, so events of other lanes
    /// handled after it are delivered again (delivery is at least once either way).
    pub fn with_lanes(mut self, lanes: usize) -> Self {
        let first = self.handlers.swap_remove(0);
        self.handlers = vec![first; lanes.max(1)];
        self
    }
}

/// The lane of `stream` among `lanes` (FNV-1a of its id).
fn lane_of(stream: &str, lanes: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in stream.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % lanes as u64) as usize
}

/// Runs `futures` concurrently on this task; their outputs in order.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

impl<S: Checkpoints, H: EventHandler> Consumer for Subscription<S, H> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn checkpoint(&mut self) -> Result<u64, StoreError> {
        Ok(self.store.load_checkpoint(&self.name).await?.unwrap_or(0))
    }

    async fn handle_batch(&mut self, events: &[RecordedEvent], to: u64) -> Result<(), BatchFailure> {
        let lanes = self.handlers.len();
        let failure = if lanes == 1 || events.len() < 2 {
            let mut failure = None;
            for (index, e) in events.iter().enumerate() {
                if let Err(error) = self.handlers[0].handle(e).await {
                    failure = Some((index, error));
                    break;
                }
            }
            failure
        } else {
            let mut parts = vec![Vec::new(); lanes];
            for (i, e) in events.iter().enumerate() {
                parts[lane_of(e.stream_id.as_str(), lanes)].push(i);
            }
            let runs = self.handlers.iter_mut().zip(parts).map(|(handler, part)| async move {
                for i in part {
                    if let Err(error) = handler.handle(&events[i]).await {
                        return Some((i, error));
                    }
                }
                None
            });
            // Every event before the first failure was handled (each lane ran up to its own).
            join_all(runs.collect())
                .await
                .into_iter()
                .flatten()
                .min_by_key(|(i, _)| *i)
        };
        let not_saved = |index: usize| {
            move |e: StoreError| BatchFailure {
                committed: 0,
                index,
                error: e.into(),
            }
        };
        match failure {
            None if self.every.is_some_and(|every| self.saved_at.elapsed() < every) => {
                self.unsaved = Some(to);
                Ok(())
            }
            None => {
                self.store
                    .save_checkpoint(&self.name, to)
                    .await
                    .map_err(not_saved(events.len()))?;
                self.unsaved = None;
                self.saved_at = std::time::Instant::now();
                Ok(())
            }
            Some((index, error)) => {
                if let Some(prev) = index.checked_sub(1).map(|i| events[i].global_position) {
                    self.store
                        .save_checkpoint(&self.name, prev)
                        .await
                        .map_err(not_saved(index))?;
                    self.unsaved = None;
                    self.saved_at = std::time::Instant::now();
                }
                Err(BatchFailure {
                    committed: index,
                    index,
                    error,
                })
            }
        }
    }

    async fn handle_again(&mut self, event: &RecordedEvent) -> Result<(), BoxError> {
        self.handlers[0].handle(event).await
    }

    async fn flush(&mut self) -> Result<(), StoreError> {
        if let Some(position) = self.unsaved {
            self.store.save_checkpoint(&self.name, position).await?;
            self.unsaved = None;
            self.saved_at = std::time::Instant::now();
        }
        Ok(())
    }
}

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
pub struct Subscription<S, H> {
    name: String,
    store: S,
    handler: H,
}

impl<S: Checkpoints, H: EventHandler> Subscription<S, H> {
    /// A subscription called `name` (its checkpoint's key) that keeps its checkpoint in `store`.
    pub fn new(name: impl Into<String>, store: S, handler: H) -> Self {
        Self {
            name: name.into(),
            store,
            handler,
        }
    }

    /// The handler.
    pub fn handler(&mut self) -> &mut H {
        &mut self.handler
    }
}

impl<S: Checkpoints, H: EventHandler> Consumer for Subscription<S, H> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn checkpoint(&mut self) -> Result<u64, StoreError> {
        Ok(self.store.load_checkpoint(&self.name).await?.unwrap_or(0))
    }

    async fn handle_batch(&mut self, events: &[RecordedEvent], to: u64) -> Result<(), BatchFailure> {
        for (index, e) in events.iter().enumerate() {
            if let Err(error) = self.handler.handle(e).await {
                if let Some(prev) = index.checked_sub(1).map(|i| events[i].global_position) {
                    self.store
                        .save_checkpoint(&self.name, prev)
                        .await
                        .map_err(|e| BatchFailure {
                            committed: 0,
                            index,
                            error: e.into(),
                        })?;
                }
                return Err(BatchFailure {
                    committed: index,
                    index,
                    error,
                });
            }
        }
        self.store
            .save_checkpoint(&self.name, to)
            .await
            .map_err(|e| BatchFailure {
                committed: 0,
                index: events.len(),
                error: e.into(),
            })
    }

    async fn handle_again(&mut self, event: &RecordedEvent) -> Result<(), BoxError> {
        self.handler.handle(event).await
    }
}

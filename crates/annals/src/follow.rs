//! Following the global log: read from a checkpoint through history, then wait for new events.

use std::time::Duration;

use crate::error::StoreError;
use crate::event::RecordedEvent;
use crate::store::EventStore;

/// Reads the global log in order from a position, then follows live appends.
///
/// It wakes on the store's commit notification (never a busy poll) and never skips or repeats an
/// event within one pass.
pub struct GlobalLogReader<S> {
    store: S,
    position: u64,
    batch: usize,
}

impl<S: EventStore> GlobalLogReader<S> {
    /// A reader that will return events after `position` (0 = from the start).
    pub fn new(store: S, position: u64) -> Self {
        Self {
            store,
            position,
            batch: 512,
        }
    }

    /// Sets how many events one read returns at most.
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// The position of the last event returned (the checkpoint to resume from).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The next batch of events, waiting up to `timeout` for one; empty if none came.
    pub async fn next_batch(&mut self, timeout: Duration) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = self.store.read_all(self.position, self.batch).await?;
        let events = if events.is_empty() && !timeout.is_zero() {
            self.store.wait_for_new(self.position, timeout).await?;
            self.store.read_all(self.position, self.batch).await?
        } else {
            events
        };
        if let Some(last) = events.last() {
            self.position = last.global_position;
        }
        Ok(events)
    }
}

//! Consuming the global log: durable checkpoints, the inbox (idempotent consumers), parked
//! messages, the per-consumer error policy, and the runner that ties them together.
//!
//! - [`Checkpoints`]: where a consumer's position in the global log is kept, durably.
//! - [`Inbox`]: `processed_messages(consumer, message_id)` recorded in the same transaction as the
//!   events the consumer appends, so a redelivered message has no second effect.
//! - [`DeadLetters`]: messages a consumer gave up on, with the error, until an operator retries
//!   or skips them (`annals parked retry|skip`).
//! - [`Runner`] drives a [`Consumer`] (a [`Subscription`] with any handler, or a backend's
//!   projection whose read model and checkpoint commit together) from its checkpoint through
//!   history, then live, applying an [`ErrorPolicy`].

pub mod health;
pub(crate) mod memory;
pub mod policy;
mod runner;
mod subscription;

use std::future::Future;
use std::time::{Duration, SystemTime};

use uuid::Uuid;

use crate::error::StoreError;
use crate::event::RecordedEvent;
use crate::store::{AppendOutcome, EventStore, StreamAppend};

pub use health::{HealthReport, HealthReports, HealthState, Trouble};
pub use policy::{Backoff, ErrorPolicy, Exhausted, Verdict};
pub use runner::{BatchFailure, ConsumeError, Consumer, Progress, RETRY_FAILED, Runner};
pub use subscription::{EventHandler, Subscription};

/// A consumer's stored position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The consumer (subscription, projection, relay) name.
    pub name: String,
    /// The global position of the last event it handled.
    pub position: u64,
    /// When it last moved.
    pub updated_at: SystemTime,
}

/// Durable checkpoints, one per consumer name.
pub trait Checkpoints: Send + Sync {
    /// The stored position of `name`, if it has one.
    fn load_checkpoint(&self, name: &str) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;
    /// Stores `position` for `name` (creating or replacing it).
    fn save_checkpoint(&self, name: &str, position: u64) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every stored checkpoint, by name.
    fn list_checkpoints(&self) -> impl Future<Output = Result<Vec<Checkpoint>, StoreError>> + Send;
}

/// Idempotent consumers: effects and the "processed" mark commit together.
pub trait Inbox: EventStore {
    /// Appends `appends` (possibly none) and records `message_id` as processed by `consumer`, in
    /// one transaction. `Ok(None)` if `consumer` had already processed `message_id`: nothing is
    /// appended, and the caller acknowledges the message.
    fn append_once(
        &self,
        consumer: &str,
        message_id: Uuid,
        appends: Vec<StreamAppend>,
    ) -> impl Future<Output = Result<Option<AppendOutcome>, StoreError>> + Send;
}

/// Where a parked message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParkedState {
    /// Waiting for an operator.
    Parked,
    /// An operator asked for another try; the consumer picks it up.
    Retry,
    /// An operator chose to skip it (kept for the record).
    Skipped,
    /// A retry succeeded (kept for the record).
    Resolved,
}

impl ParkedState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Parked => "parked",
            Self::Retry => "retry",
            Self::Skipped => "skipped",
            Self::Resolved => "resolved",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "parked" => Self::Parked,
            "retry" => Self::Retry,
            "skipped" => Self::Skipped,
            "resolved" => Self::Resolved,
            _ => return None,
        })
    }
}

/// A message a consumer gave up on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parked {
    /// Its id in the dead-letter table.
    pub id: u64,
    /// The consumer that parked it.
    pub consumer: String,
    /// The event's global position.
    pub position: u64,
    /// The event's id.
    pub event_id: Uuid,
    /// The event's stream.
    pub stream_id: String,
    /// The event's version in its stream.
    pub version: u64,
    /// The last error.
    pub error: String,
    /// How many times the handler ran on it.
    pub attempts: u32,
    /// When it was (last) parked.
    pub parked_at: SystemTime,
    /// Where it stands.
    pub state: ParkedState,
    /// The message itself ([`RecordedEvent::to_json`]), so a consumer whose store does not hold
    /// the event (a broker consumer) can try it again; `None` in rows parked before it was kept.
    pub message: Option<String>,
}

impl Parked {
    /// The parked event, from the kept message.
    pub fn event(&self) -> Option<RecordedEvent> {
        RecordedEvent::from_json(self.message.as_deref()?).ok()
    }
}

/// The dead-letter table, beside the `health` table: together, what went wrong for consumers
/// (messages they gave up on, components failing now).
pub trait DeadLetters: HealthReports {
    /// Parks `event` for `consumer` with its last `error` after `attempts` tries.
    fn park(
        &self,
        consumer: &str,
        event: &RecordedEvent,
        error: &str,
        attempts: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Parked messages (every state), of `consumer` if given, oldest first.
    fn list_parked(&self, consumer: Option<&str>) -> impl Future<Output = Result<Vec<Parked>, StoreError>> + Send;
    /// Moves parked message `id` to `state`, recording `error` if given; false if there is no
    /// such message.
    fn set_parked(
        &self,
        id: u64,
        state: ParkedState,
        error: Option<&str>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// What `annals status` shows for one consumer.
#[derive(Clone, Debug)]
pub struct ConsumerStatus {
    /// The consumer name.
    pub name: String,
    /// Its checkpoint.
    pub position: u64,
    /// Events in the log after its checkpoint.
    pub lag_events: u64,
    /// Age of the oldest event it has not handled (zero when caught up).
    pub lag: Duration,
    /// Messages it parked that wait for an operator (parked or retry).
    pub parked: usize,
    /// When its checkpoint last moved.
    pub updated_at: SystemTime,
}

/// Every consumer's checkpoint, lag and parked messages.
pub async fn status<S: EventStore + Checkpoints + DeadLetters>(store: &S) -> Result<Vec<ConsumerStatus>, StoreError> {
    let head = store.head_position().await?;
    let parked = store.list_parked(None).await?;
    let mut out = Vec::new();
    for c in store.list_checkpoints().await? {
        let lag_events = head.saturating_sub(c.position);
        let lag = if lag_events == 0 {
            Duration::ZERO
        } else {
            match store.read_all(c.position, 1).await?.first() {
                Some(e) => SystemTime::now().duration_since(e.recorded_at).unwrap_or_default(),
                None => Duration::ZERO,
            }
        };
        out.push(ConsumerStatus {
            parked: parked
                .iter()
                .filter(|p| p.consumer == c.name && matches!(p.state, ParkedState::Parked | ParkedState::Retry))
                .count(),
            name: c.name,
            position: c.position,
            lag_events,
            lag,
            updated_at: c.updated_at,
        });
    }
    Ok(out)
}

impl<S: Checkpoints + ?Sized> Checkpoints for std::sync::Arc<S> {
    fn load_checkpoint(&self, name: &str) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        (**self).load_checkpoint(name)
    }
    fn save_checkpoint(&self, name: &str, position: u64) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).save_checkpoint(name, position)
    }
    fn list_checkpoints(&self) -> impl Future<Output = Result<Vec<Checkpoint>, StoreError>> + Send {
        (**self).list_checkpoints()
    }
}

impl<S: Inbox> Inbox for std::sync::Arc<S> {
    fn append_once(
        &self,
        consumer: &str,
        message_id: Uuid,
        appends: Vec<StreamAppend>,
    ) -> impl Future<Output = Result<Option<AppendOutcome>, StoreError>> + Send {
        (**self).append_once(consumer, message_id, appends)
    }
}

impl<S: DeadLetters + ?Sized> DeadLetters for std::sync::Arc<S> {
    fn park(
        &self,
        consumer: &str,
        event: &RecordedEvent,
        error: &str,
        attempts: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).park(consumer, event, error, attempts)
    }
    fn list_parked(&self, consumer: Option<&str>) -> impl Future<Output = Result<Vec<Parked>, StoreError>> + Send {
        (**self).list_parked(consumer)
    }
    fn set_parked(
        &self,
        id: u64,
        state: ParkedState,
        error: Option<&str>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).set_parked(id, state, error)
    }
}

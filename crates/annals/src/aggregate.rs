//! The `Aggregate` trait: pure `handle(command) -> events` and infallible `apply(event)`.

use crate::typed::DomainEvent;

/// An event-sourced aggregate: its state is the fold of its events.
///
/// A load is `Default::default()` followed by `apply` of every event in order. `handle` must be
/// pure (no I/O, no clock, no randomness): the repository may call it again after a conflict.
pub trait Aggregate: Default + Send + Sync + 'static {
    /// The stream type of this aggregate's streams, e.g. `Order`.
    const STREAM_TYPE: &'static str;
    /// The schema version of the serialized state; snapshots of another version are ignored.
    const SNAPSHOT_VERSION: u32 = 1;
    /// The domain events.
    type Event: DomainEvent;
    /// The commands it handles.
    type Command: Send + Sync;
    /// Why a command is refused.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Decides what happens: the events a command produces, or why it is refused.
    fn handle(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Moves the state forward by one event. Never fails: the event already happened.
    fn apply(&mut self, event: &Self::Event);
}

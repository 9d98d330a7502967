//! # annals — event sourcing and sagas for Rust services
//!
//! An aggregate is stored as the sequence of domain events that changed it; loading it is a
//! replay. The [`EventStore`] is untyped (event type as text, JSON payload) so tools can show any
//! event; the typed layer ([`Aggregate`], [`DomainEvent`], [`Repository`]) sits above it.
//!
//! Backends: [`MemoryStore`] here, `annals-sqlite` (the embedded default) and `annals-postgres`.
//! Every backend passes the conformance suite in `annals::testkit` (feature `testkit`).
//!
//! Reading the log as a consumer — catch-up subscriptions from a durable checkpoint, the inbox
//! for idempotent consumers, parked messages and the error policy — is [`consume`].
//!
//! ```
//! use annals::{Aggregate, DomainEvent, MemoryStore, Metadata, Repository, StreamId};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Default, Serialize, Deserialize)]
//! struct Counter { total: i64 }
//!
//! #[derive(Serialize, Deserialize)]
//! enum CounterEvent { Added { amount: i64 } }
//! impl DomainEvent for CounterEvent {}
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("amount must be positive")]
//! struct NotPositive;
//!
//! impl Aggregate for Counter {
//!     const STREAM_TYPE: &'static str = "Counter";
//!     type Event = CounterEvent;
//!     type Command = i64;
//!     type Error = NotPositive;
//!     fn handle(&self, amount: &i64) -> Result<Vec<CounterEvent>, NotPositive> {
//!         if *amount <= 0 { return Err(NotPositive) }
//!         Ok(vec![CounterEvent::Added { amount: *amount }])
//!     }
//!     fn apply(&mut self, CounterEvent::Added { amount }: &CounterEvent) { self.total += amount }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let repo = Repository::<Counter, _>::new(MemoryStore::new());
//! let id = StreamId::new("counter-1").unwrap();
//! repo.execute(&id, &5, &Metadata::by("alice")).await.unwrap();
//! repo.execute(&id, &2, &Metadata::by("bob")).await.unwrap();
//! assert!(repo.execute(&id, &-1, &Metadata::by("eve")).await.is_err());
//! let loaded = repo.load(&id).await.unwrap();
//! assert_eq!((loaded.state.total, loaded.version), (7, 2));
//! # });
//! ```

pub mod aggregate;
pub mod audit;
pub mod consume;
pub mod error;
pub mod event;
pub mod follow;
pub mod ids;
pub mod json;
pub mod memory;
pub mod privacy;
pub mod purge;
pub mod relay;
pub mod repository;
pub mod saga;
pub mod store;
pub mod time;
pub mod typed;
pub mod upcast;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use aggregate::Aggregate;
pub use error::{DecodeError, EncodeError, ErrorKind, Failure, RepositoryError, StoreError, kind_of};
pub use event::{Metadata, NewEvent, RecordedEvent};
pub use follow::GlobalLogReader;
pub use ids::{ExpectedVersion, StreamId};
pub use memory::MemoryStore;
pub use repository::{
    DELETED_EVENT, Decided, Executed, Loaded, RESTORED_EVENT, Repository, SnapshotPolicy, delete_stream, restore_stream,
};
pub use store::{
    AppendOutcome, Direction, EventStore, FoldEvent, MAX_EVENT_BYTES, NewSnapshot, ReadStream, Snapshot, StreamAppend,
    StreamAppended, StreamInfo,
};
pub use typed::{DomainEvent, decode, encode};
pub use upcast::{Upcasters, Upcasting};

/// The README's examples, compiled and run as doctests so they cannot drift.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

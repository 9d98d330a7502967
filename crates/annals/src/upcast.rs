//! Upcasters: turn stored (event type, schema version) payloads into today's shapes on every read.
//!
//! Wrap any store in [`Upcasting`] and every read path (stream reads, the global log, and
//! everything built on them: repositories, subscriptions, projections, the relay) sees upcast
//! events. Stored events are never rewritten.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::error::StoreError;
use crate::event::RecordedEvent;
use crate::ids::StreamId;
use crate::store::{AppendOutcome, EventStore, ReadStream, Snapshot, StreamAppend, StreamInfo};

/// Most steps one event may be upcast through (guards against cycles).
const MAX_STEPS: usize = 64;

type UpcastFn = dyn Fn(Value) -> Result<(String, Value), String> + Send + Sync;

/// A chain of upcasters keyed by (event type, schema version).
#[derive(Clone, Default)]
pub struct Upcasters {
    steps: HashMap<(String, u32), Arc<UpcastFn>>,
}

impl Upcasters {
    /// No upcasters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a step turning `event_type` at `from_version` into `event_type` at `from_version + 1`.
    pub fn add(
        self,
        event_type: &str,
        from_version: u32,
        step: impl Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
    ) -> Self {
        let ty = event_type.to_owned();
        self.add_renaming(event_type, from_version, move |v| step(v).map(|v| (ty.clone(), v)))
    }

    /// Registers a step that may also rename the event type; the result has schema version
    /// `from_version + 1`.
    pub fn add_renaming(
        mut self,
        event_type: &str,
        from_version: u32,
        step: impl Fn(Value) -> Result<(String, Value), String> + Send + Sync + 'static,
    ) -> Self {
        self.steps.insert((event_type.to_owned(), from_version), Arc::new(step));
        self
    }

    /// Whether no upcaster is registered.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Upcasts one event through every matching step.
    pub fn upcast(&self, mut event: RecordedEvent) -> Result<RecordedEvent, StoreError> {
        if self.steps.is_empty() {
            return Ok(event);
        }
        for _ in 0..MAX_STEPS {
            let Some(step) = self.steps.get(&(event.event_type.clone(), event.schema_version)) else {
                return Ok(event);
            };
            let failed = |reason: String, e: &RecordedEvent| StoreError::UpcastFailed {
                stream: e.stream_id.to_string(),
                version: e.version,
                event_type: e.event_type.clone(),
                schema_version: e.schema_version,
                reason,
            };
            let value: Value = serde_json::from_str(event.payload.get()).map_err(|e| failed(e.to_string(), &event))?;
            let (new_type, new_value) = step(value).map_err(|r| failed(r, &event))?;
            event.payload = serde_json::value::to_raw_value(&new_value).map_err(|e| failed(e.to_string(), &event))?;
            event.event_type = new_type;
            event.schema_version += 1;
        }
        Err(StoreError::UpcastFailed {
            stream: event.stream_id.to_string(),
            version: event.version,
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            reason: format!("more than {MAX_STEPS} upcasting steps: is there a cycle?"),
        })
    }

    fn upcast_all(&self, events: Vec<RecordedEvent>) -> Result<Vec<RecordedEvent>, StoreError> {
        if self.steps.is_empty() {
            return Ok(events);
        }
        events.into_iter().map(|e| self.upcast(e)).collect()
    }
}

/// A store whose reads pass through an [`Upcasters`] chain.
#[derive(Clone)]
pub struct Upcasting<S> {
    inner: S,
    upcasters: Arc<Upcasters>,
}

impl<S> Upcasting<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, upcasters: Upcasters) -> Self {
        Self {
            inner,
            upcasters: Arc::new(upcasters),
        }
    }

    /// The wrapped store (reads from it are not upcast).
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: EventStore> EventStore for Upcasting<S> {
    fn append(&self, appends: Vec<StreamAppend>) -> impl Future<Output = Result<AppendOutcome, StoreError>> + Send {
        self.inner.append(appends)
    }

    async fn read_stream(&self, stream: &StreamId, read: ReadStream) -> Result<Vec<RecordedEvent>, StoreError> {
        self.upcasters.upcast_all(self.inner.read_stream(stream, read).await?)
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.upcasters.upcast_all(self.inner.read_all(after, limit).await?)
    }

    fn wait_for_new(&self, after: u64, timeout: Duration) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.inner.wait_for_new(after, timeout)
    }

    fn load_snapshot(
        &self,
        stream: &StreamId,
        at_or_before: Option<u64>,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send {
        self.inner.load_snapshot(stream, at_or_before)
    }

    fn list_streams(
        &self,
        after: Option<&StreamId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StreamInfo>, StoreError>> + Send {
        self.inner.list_streams(after, limit)
    }

    async fn read_from_snapshot(
        &self,
        stream: &StreamId,
        schema_version: u32,
        until: Option<u64>,
        limit: usize,
    ) -> Result<(Option<Snapshot>, Vec<RecordedEvent>), StoreError> {
        let (snapshot, events) = self
            .inner
            .read_from_snapshot(stream, schema_version, until, limit)
            .await?;
        Ok((snapshot, self.upcasters.upcast_all(events)?))
    }

    fn head_position(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.inner.head_position()
    }
}

/// The consumer tables and leases are the inner store's: a relay, subscription or projection run
/// over an [`Upcasting`] store keeps its checkpoint, lease and parked messages there and sees
/// upcast events.
impl<S: crate::consume::Checkpoints> crate::consume::Checkpoints for Upcasting<S> {
    fn load_checkpoint(&self, name: &str) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        self.inner.load_checkpoint(name)
    }
    fn save_checkpoint(&self, name: &str, position: u64) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.save_checkpoint(name, position)
    }
    fn list_checkpoints(&self) -> impl Future<Output = Result<Vec<crate::consume::Checkpoint>, StoreError>> + Send {
        self.inner.list_checkpoints()
    }
}

impl<S: crate::consume::HealthReports> crate::consume::HealthReports for Upcasting<S> {
    fn set_health(
        &self,
        report: &crate::consume::HealthReport,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        self.inner.set_health(report)
    }
    fn clear_health(&self, component: &str) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        self.inner.clear_health(component)
    }
    fn list_health(
        &self,
    ) -> impl std::future::Future<Output = Result<Vec<crate::consume::HealthReport>, StoreError>> + Send {
        self.inner.list_health()
    }
}

impl<S: crate::relay::Leases> crate::relay::Leases for Upcasting<S> {
    fn hold_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.inner.hold_lease(name, holder, ttl)
    }
    fn release_lease(&self, name: &str, holder: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.release_lease(name, holder)
    }
}

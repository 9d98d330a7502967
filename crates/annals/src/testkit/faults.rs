//! Fault injection: a store wrapper that fails chosen calls, to test what callers do when the
//! store (or the network to it) fails.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::consume::{Checkpoint, Checkpoints, DeadLetters, HealthReport, HealthReports, Parked, ParkedState};
use crate::error::StoreError;
use crate::event::RecordedEvent;
use crate::ids::StreamId;
use crate::store::{AppendOutcome, EventStore, ReadStream, Snapshot, StreamAppend, StreamInfo};

/// What goes wrong with one append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendFault {
    /// The append fails before reaching the store: nothing is stored.
    Refused,
    /// The append is stored, but its answer is lost: the caller sees an error.
    AnswerLost,
}

/// Wraps a store and injects faults into chosen calls (counted from 1 per kind of call).
pub struct FaultyStore<S> {
    inner: S,
    appends: AtomicU64,
    reads: AtomicU64,
    append_faults: Mutex<HashMap<u64, AppendFault>>,
    read_faults: Mutex<Vec<u64>>,
}

/// An injected fault: a transient failure, as a dropped connection is.
fn injected(what: &str, n: u64) -> StoreError {
    StoreError::unavailable(format!("injected fault: {what} call {n}"), None)
}

impl<S: EventStore> FaultyStore<S> {
    /// Wraps `inner` with no faults planned.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            appends: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            append_faults: Mutex::new(HashMap::new()),
            read_faults: Mutex::new(Vec::new()),
        }
    }

    /// Makes the `nth` append call (from 1) fail with `fault`.
    pub fn fail_append(self, nth: u64, fault: AppendFault) -> Self {
        self.append_faults.lock().expect("fault plan").insert(nth, fault);
        self
    }

    /// Makes the `nth` read call (stream reads, global-log reads, snapshot loads; from 1) fail.
    pub fn fail_read(self, nth: u64) -> Self {
        self.read_faults.lock().expect("fault plan").push(nth);
        self
    }

    /// Makes the read calls `nths` fail (see [`fail_read`](Self::fail_read)).
    pub fn fail_reads(self, nths: impl IntoIterator<Item = u64>) -> Self {
        self.read_faults.lock().expect("fault plan").extend(nths);
        self
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn read_check(&self) -> Result<(), StoreError> {
        let n = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
        if self.read_faults.lock().expect("fault plan").contains(&n) {
            Err(injected("read", n))
        } else {
            Ok(())
        }
    }
}

impl<S: EventStore> EventStore for FaultyStore<S> {
    async fn append(&self, appends: Vec<StreamAppend>) -> Result<AppendOutcome, StoreError> {
        let n = self.appends.fetch_add(1, Ordering::SeqCst) + 1;
        let fault = self.append_faults.lock().expect("fault plan").get(&n).copied();
        match fault {
            Some(AppendFault::Refused) => Err(injected("append", n)),
            Some(AppendFault::AnswerLost) => {
                self.inner.append(appends).await?;
                Err(injected("append answer of", n))
            }
            None => self.inner.append(appends).await,
        }
    }

    async fn read_stream(&self, stream: &StreamId, read: ReadStream) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_check()?;
        self.inner.read_stream(stream, read).await
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_check()?;
        self.inner.read_all(after, limit).await
    }

    fn wait_for_new(&self, after: u64, timeout: Duration) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.inner.wait_for_new(after, timeout)
    }

    async fn load_snapshot(
        &self,
        stream: &StreamId,
        at_or_before: Option<u64>,
    ) -> Result<Option<Snapshot>, StoreError> {
        self.read_check()?;
        self.inner.load_snapshot(stream, at_or_before).await
    }

    fn list_streams(
        &self,
        after: Option<&StreamId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StreamInfo>, StoreError>> + Send {
        self.inner.list_streams(after, limit)
    }
}

impl<S: Checkpoints> Checkpoints for FaultyStore<S> {
    fn load_checkpoint(&self, name: &str) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        self.inner.load_checkpoint(name)
    }
    fn save_checkpoint(&self, name: &str, position: u64) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.save_checkpoint(name, position)
    }
    fn list_checkpoints(&self) -> impl Future<Output = Result<Vec<Checkpoint>, StoreError>> + Send {
        self.inner.list_checkpoints()
    }
}

impl<S: HealthReports> HealthReports for FaultyStore<S> {
    fn set_health(&self, report: &HealthReport) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.set_health(report)
    }
    fn clear_health(&self, component: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.clear_health(component)
    }
    fn list_health(&self) -> impl Future<Output = Result<Vec<HealthReport>, StoreError>> + Send {
        self.inner.list_health()
    }
}

impl<S: DeadLetters> DeadLetters for FaultyStore<S> {
    fn park(
        &self,
        consumer: &str,
        event: &RecordedEvent,
        error: &str,
        attempts: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.park(consumer, event, error, attempts)
    }
    fn list_parked(&self, consumer: Option<&str>) -> impl Future<Output = Result<Vec<Parked>, StoreError>> + Send {
        self.inner.list_parked(consumer)
    }
    fn set_parked(
        &self,
        id: u64,
        state: ParkedState,
        error: Option<&str>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.inner.set_parked(id, state, error)
    }
}

/// A broker stand-in for relay tests: records every message it is given (duplicates included,
/// so tests see what the relay sent) and fails chosen `publish` calls (counted from 1) after
/// taking the first half of their batch, as a broker that went away mid-batch would.
#[derive(Clone, Default)]
pub struct RecordingPublisher {
    sent: std::sync::Arc<Mutex<Vec<RecordedEvent>>>,
    calls: std::sync::Arc<AtomicU64>,
    fail_calls: std::sync::Arc<Mutex<Vec<u64>>>,
}

impl RecordingPublisher {
    /// A publisher that fails the given calls.
    pub fn failing_calls(calls: impl IntoIterator<Item = u64>) -> Self {
        let p = Self::default();
        p.fail_calls.lock().expect("lock").extend(calls);
        p
    }

    /// Every message given so far, in order, duplicates included.
    pub fn sent(&self) -> Vec<RecordedEvent> {
        self.sent.lock().expect("lock").clone()
    }
}

impl crate::relay::Publisher for RecordingPublisher {
    async fn publish(&self, events: &[RecordedEvent]) -> Result<(), crate::error::BoxError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let fail = self.fail_calls.lock().expect("lock").contains(&n);
        let take = if fail { events.len() / 2 } else { events.len() };
        self.sent.lock().expect("lock").extend_from_slice(&events[..take]);
        if fail {
            return Err(format!("injected fault: publish call {n}").into());
        }
        Ok(())
    }
}

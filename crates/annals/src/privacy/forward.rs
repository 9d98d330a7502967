//! `Shredding` is a whole store: checkpoints and leases go to the store underneath; the inbox's
//! appends are sealed like any other, and so are parked messages: a consumer over `Shredding`
//! handles opened events, and the dead-letter row keeps the event sealed again, so forgetting
//! its subject reaches it too (DESIGN §1.8).

use std::future::Future;

use uuid::Uuid;

use crate::consume::{Checkpoint, Checkpoints, DeadLetters, HealthReport, HealthReports, Inbox, Parked, ParkedState};
use crate::error::StoreError;
use crate::event::RecordedEvent;
use crate::relay::Leases;
use crate::store::{AppendOutcome, EventStore, StreamAppend};

use super::{KeyStore, Shredding};

impl<S: Checkpoints, K: Send + Sync> Checkpoints for Shredding<S, K> {
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

impl<S: DeadLetters + EventStore, K: KeyStore> DeadLetters for Shredding<S, K> {
    async fn park(&self, consumer: &str, event: &RecordedEvent, error: &str, attempts: u32) -> Result<(), StoreError> {
        let sealed = self.reseal(event).await?;
        self.inner.park(consumer, &sealed, error, attempts).await
    }
    async fn list_parked(&self, consumer: Option<&str>) -> Result<Vec<Parked>, StoreError> {
        let mut parked = self.inner.list_parked(consumer).await?;
        for p in &mut parked {
            if let Some(event) = p.event().filter(|e| self.fields.by_event.contains_key(&e.event_type)) {
                let opened = self.open_rest(vec![event]).await?;
                p.message = opened.first().map(RecordedEvent::to_json);
            }
        }
        Ok(parked)
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

impl<S: HealthReports, K: Send + Sync> HealthReports for Shredding<S, K> {
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

impl<S: Leases, K: Send + Sync> Leases for Shredding<S, K> {
    fn hold_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.inner.hold_lease(name, holder, ttl)
    }
    fn release_lease(&self, name: &str, holder: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.inner.release_lease(name, holder)
    }
}

impl<S: Inbox, K: KeyStore> Inbox for Shredding<S, K> {
    async fn append_once(
        &self,
        consumer: &str,
        message_id: Uuid,
        appends: Vec<StreamAppend>,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        let sealed = self.seal_appends(appends, None).await?;
        self.inner.append_once(consumer, message_id, sealed).await
    }
}

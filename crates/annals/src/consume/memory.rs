//! Checkpoints, the inbox and the dead-letter table for [`MemoryStore`].

use std::collections::{BTreeMap, HashSet};
use std::time::SystemTime;

use uuid::Uuid;

use super::{Checkpoint, Checkpoints, DeadLetters, HealthReport, HealthReports, Inbox, Parked, ParkedState};
use crate::error::StoreError;
use crate::event::RecordedEvent;
use crate::memory::MemoryStore;
use crate::store::{AppendOutcome, StreamAppend};

/// The memory store's consumer tables.
#[derive(Default)]
pub(crate) struct ConsumerTables {
    pub(crate) processed: HashSet<(String, Uuid)>,
    checkpoints: BTreeMap<String, (u64, SystemTime)>,
    parked: Vec<Parked>,
    leases: BTreeMap<String, (String, std::time::Instant)>,
    health: BTreeMap<String, HealthReport>,
}

impl MemoryStore {
    fn tables<T>(&self, f: impl FnOnce(&mut ConsumerTables) -> T) -> Result<T, StoreError> {
        let mut inner = self.inner.write().map_err(|_| StoreError::Closed)?;
        Ok(f(&mut inner.consumers))
    }
}

impl Checkpoints for MemoryStore {
    async fn load_checkpoint(&self, name: &str) -> Result<Option<u64>, StoreError> {
        self.tables(|t| t.checkpoints.get(name).map(|c| c.0))
    }

    async fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), StoreError> {
        self.tables(|t| {
            t.checkpoints.insert(name.to_owned(), (position, SystemTime::now()));
        })
    }

    async fn list_checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        self.tables(|t| {
            t.checkpoints
                .iter()
                .map(|(name, &(position, updated_at))| Checkpoint {
                    name: name.clone(),
                    position,
                    updated_at,
                })
                .collect()
        })
    }
}

impl Inbox for MemoryStore {
    async fn append_once(
        &self,
        consumer: &str,
        message_id: Uuid,
        appends: Vec<StreamAppend>,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        self.append_now(appends, Some((consumer, message_id)))
    }
}

impl DeadLetters for MemoryStore {
    async fn park(&self, consumer: &str, event: &RecordedEvent, error: &str, attempts: u32) -> Result<(), StoreError> {
        self.tables(|t| {
            let id = t.parked.len() as u64 + 1;
            t.parked.push(Parked {
                id,
                consumer: consumer.to_owned(),
                position: event.global_position,
                event_id: event.event_id,
                stream_id: event.stream_id.to_string(),
                version: event.version,
                error: error.to_owned(),
                attempts,
                parked_at: SystemTime::now(),
                state: ParkedState::Parked,
                message: Some(event.to_json().to_string()),
            });
        })
    }

    async fn list_parked(&self, consumer: Option<&str>) -> Result<Vec<Parked>, StoreError> {
        self.tables(|t| {
            t.parked
                .iter()
                .filter(|p| consumer.is_none_or(|c| p.consumer == c))
                .cloned()
                .collect()
        })
    }

    async fn set_parked(&self, id: u64, state: ParkedState, error: Option<&str>) -> Result<bool, StoreError> {
        self.tables(|t| {
            let Some(p) = t.parked.iter_mut().find(|p| p.id == id) else {
                return false;
            };
            p.state = state;
            if let Some(e) = error {
                p.error = e.to_owned();
                p.attempts += 1;
            }
            true
        })
    }
}

impl crate::relay::Leases for MemoryStore {
    async fn hold_lease(&self, name: &str, holder: &str, ttl: std::time::Duration) -> Result<bool, StoreError> {
        let now = std::time::Instant::now();
        self.tables(|t| match t.leases.get(name) {
            Some((h, until)) if h != holder && *until > now => false,
            _ => {
                t.leases.insert(name.to_owned(), (holder.to_owned(), now + ttl));
                true
            }
        })
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.tables(|t| {
            if t.leases.get(name).is_some_and(|(h, _)| h == holder) {
                t.leases.remove(name);
            }
        })
    }
}

impl HealthReports for MemoryStore {
    async fn set_health(&self, report: &HealthReport) -> Result<(), StoreError> {
        self.tables(|t| {
            t.health.insert(report.component.clone(), report.clone());
        })
    }

    async fn clear_health(&self, component: &str) -> Result<(), StoreError> {
        self.tables(|t| {
            t.health.remove(component);
        })
    }

    async fn list_health(&self) -> Result<Vec<HealthReport>, StoreError> {
        self.tables(|t| t.health.values().cloned().collect())
    }
}

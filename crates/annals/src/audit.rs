//! The audit trail (DESIGN §3, §8): every change to an aggregate, read from its stream — who
//! (the actor), when, because of which message (causation) in which flow (correlation), and the
//! events it stored. The metadata every event carries is the audit log; this groups it by append.

use std::time::SystemTime;

use uuid::Uuid;

use crate::event::RecordedEvent;

/// One change: the events one append stored in a stream.
#[derive(Clone, Debug)]
pub struct Change {
    /// The first and last version it stored.
    pub versions: (u64, u64),
    /// When it was recorded.
    pub at: SystemTime,
    /// Who made it.
    pub actor: Option<String>,
    /// The message (command, event) that caused it.
    pub causation_id: Option<Uuid>,
    /// The flow it belongs to (a saga, a request).
    pub correlation_id: Option<Uuid>,
    /// The tenant, where used.
    pub tenant: Option<String>,
    /// The events it stored, in order.
    pub events: Vec<RecordedEvent>,
}

/// Groups a stream's events (in version order) into the changes that stored them: consecutive
/// events recorded at the same moment with the same metadata came from one append.
pub fn changes(events: &[RecordedEvent]) -> Vec<Change> {
    let mut out: Vec<Change> = Vec::new();
    for e in events {
        if let Some(last) = out.last_mut()
            && last.at == e.recorded_at
            && last.events.last().is_some_and(|prev| prev.metadata == e.metadata)
        {
            last.versions.1 = e.version;
            last.events.push(e.clone());
            continue;
        }
        out.push(Change {
            versions: (e.version, e.version),
            at: e.recorded_at,
            actor: e.metadata.actor.clone(),
            causation_id: e.metadata.causation_id,
            correlation_id: e.metadata.correlation_id,
            tenant: e.metadata.tenant.clone(),
            events: vec![e.clone()],
        });
    }
    out
}

//! Commands for consumers: their status (checkpoints, lag, parked messages, failing components)
//! and parked messages.

use std::time::Duration;

use annals::EventStore;
use annals::consume::HealthReports as _;
use annals::consume::{DeadLetters, ParkedState};
use serde_json::json;

use crate::backend::AnyStore;
use crate::output;
use crate::output::out;

/// `annals status`: every consumer's checkpoint, lag and parked messages.
pub async fn status(store: &AnyStore, json: bool) -> anyhow::Result<()> {
    let head = store.head_position().await?;
    let all = annals::consume::status(store).await?;
    // Replication slots of tailing relays: WAL kept for them, and events not yet published.
    let mut slots = Vec::new();
    if let AnyStore::Postgres(pg) = store {
        let prefix = format!("annals_{}_", pg.schema());
        for s in annals_postgres::tail::slots(pg).await? {
            let relay = s.slot.strip_prefix(&prefix).unwrap_or(&s.slot).to_owned();
            let cursor = all
                .iter()
                .find(|c| c.name == format!("relay.{relay}"))
                .map_or(0, |c| c.position);
            slots.push((s, head.saturating_sub(cursor)));
        }
    }
    let open = match store {
        AnyStore::Postgres(pg) => annals_postgres::activity::oldest_open_transaction(pg).await?,
        _ => None,
    };
    // Components failing now: retrying (with the last error) or stopped.
    let failing = store.list_health().await?;
    if json {
        crate::output::emit("head", json!({ "position": head }));
        for h in &failing {
            out!(
                "{}",
                json!({ "kind": "component", "component": h.component, "health": h.state.as_str(),
                        "kind": h.kind.map(annals::ErrorKind::as_str), "error": h.error,
                        "since": output::time(h.since), "attempts": h.attempts,
                        "last_try": output::time(h.updated_at) })
            );
        }
        if let Some(t) = &open {
            out!(
                "{}",
                json!({ "kind": "open_transaction", "open_transaction": { "pid": t.pid, "state": t.state,
                        "age_seconds": t.age.as_secs_f64(), "query": t.query } })
            );
        }
        for (s, events) in &slots {
            out!(
                "{}",
                json!({ "kind": "slot", "slot": s.slot, "active": s.active, "lag_bytes": s.lag_bytes, "lag_events": events })
            );
        }
        for c in &all {
            out!(
                "{}",
                json!({ "kind": "consumer", "consumer": c.name, "position": c.position, "head": head, "lag_events": c.lag_events,
                        "lag_seconds": c.lag.as_secs_f64(), "parked": c.parked,
                        "updated_at": output::time(c.updated_at), "behind": behind(c, &failing) })
            );
        }
        return Ok(());
    }
    out!("log head: {head}");
    for h in &failing {
        out!(
            "{} {} since {} ({} tries, last {}): {}",
            h.component,
            h.state.as_str().to_uppercase(),
            output::time(h.since),
            h.attempts,
            output::time(h.updated_at),
            h.error
        );
    }
    if all.is_empty() {
        out!("no consumers yet");
    }
    for c in &all {
        out!(
            "{:<24} at {:<8} lag {:>6} events / {:>8}  parked {:<4} updated {}{}",
            c.name,
            c.position,
            c.lag_events,
            humantime::format_duration(Duration::from_secs(c.lag.as_secs())).to_string(),
            c.parked,
            output::time(c.updated_at),
            behind(c, &failing).map(|why| format!("  <- {why}")).unwrap_or_default()
        );
    }
    for (s, events) in &slots {
        out!(
            "slot {:<19} {:<8} lag {:>6} events / {} bytes of WAL",
            s.slot,
            if s.active { "active" } else { "inactive" },
            events,
            s.lag_bytes
        );
    }
    if let Some(t) = open.filter(|t| t.age >= LONG_TRANSACTION) {
        out!(
            "oldest open transaction: pid {}, {} for {}: row versions written since it began are kept \
             until it ends, so appends to busy streams slow down",
            t.pid,
            t.state,
            humantime::format_duration(Duration::from_secs(t.age.as_secs()))
        );
    }
    Ok(())
}

/// Why consumer `c` is behind the log's head, as far as the store can tell: it is failing (its
/// health row), or its checkpoint has not moved for a while (it may not be running), or it is
/// catching up. `None` when it is at the head.
fn behind(c: &annals::consume::ConsumerStatus, failing: &[annals::consume::HealthReport]) -> Option<String> {
    if c.lag_events == 0 {
        return None;
    }
    // A relay's cursor is `relay.<name>`, and so is its health row; a consumer's are its name.
    if let Some(h) = failing.iter().find(|h| h.component == c.name) {
        return Some(format!(
            "{} since {}: {}",
            h.state.as_str(),
            output::time(h.since),
            h.error
        ));
    }
    let idle = std::time::SystemTime::now()
        .duration_since(c.updated_at)
        .unwrap_or_default();
    Some(if idle >= IDLE {
        format!(
            "its checkpoint has not moved for {}: is it running?",
            humantime::format_duration(Duration::from_secs(idle.as_secs()))
        )
    } else {
        "catching up".to_owned()
    })
}

/// How long a consumer's checkpoint may stay put while it is behind before `status` asks whether
/// it runs.
const IDLE: Duration = Duration::from_secs(60);

/// How long a transaction may stay open before `annals status` points it out (JSON always
/// reports the oldest one).
const LONG_TRANSACTION: Duration = Duration::from_secs(60);

/// `annals parked list|retry|skip`.
pub async fn parked(store: &AnyStore, action: ParkedAction, json: bool) -> anyhow::Result<()> {
    let (id, state) = match action {
        ParkedAction::List { consumer } => {
            for p in store.list_parked(consumer.as_deref()).await? {
                if json {
                    out!(
                        "{}",
                        json!({ "kind": "parked", "id": p.id, "consumer": p.consumer, "position": p.position,
                                "event_id": p.event_id, "stream_id": p.stream_id, "version": p.version,
                                "error": p.error, "attempts": p.attempts, "state": p.state.as_str(),
                                "failed_again": p.error.starts_with(annals::consume::RETRY_FAILED),
                                "parked_at": output::time(p.parked_at) })
                    );
                } else {
                    out!(
                        "#{:<4} {:<9} {:<20} position {:<6} {} v{}  after {} tries: {}",
                        p.id,
                        p.state.as_str(),
                        p.consumer,
                        p.position,
                        p.stream_id,
                        p.version,
                        p.attempts,
                        p.error
                    );
                }
            }
            return Ok(());
        }
        ParkedAction::Retry { id } => (id, ParkedState::Retry),
        ParkedAction::Skip { id } => (id, ParkedState::Skipped),
    };
    if !store.set_parked(id, state, None).await? {
        return Err(crate::exit::not_found(format!("no parked message #{id}")));
    }
    if json {
        crate::output::emit("parked", json!({ "id": id, "state": state.as_str() }));
    } else {
        out!(
            "parked message #{id}: {}",
            match state {
                ParkedState::Retry => "will be retried by its consumer's next run",
                _ => "skipped",
            }
        );
    }
    Ok(())
}

/// What `annals parked` does.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum ParkedAction {
    /// List parked messages.
    List {
        /// Only this consumer's.
        #[arg(long)]
        consumer: Option<String>,
    },
    /// Ask the message's consumer to try it again.
    Retry {
        /// The parked message's id (from `annals parked list`).
        id: u64,
    },
    /// Give up on the message (kept for the record).
    Skip {
        /// The parked message's id.
        id: u64,
    },
}

impl ParkedAction {
    /// Whether the action only reads (`list`).
    pub fn reads_only(&self) -> bool {
        matches!(self, Self::List { .. })
    }
}

//! Commands for the read side: running and rebuilding projections, querying the order-history
//! read model, consumer status and parked messages.

use std::time::{Duration, Instant};

use annals::EventStore;
use annals::consume::HealthReports as _;
use annals::consume::{Consumer, DeadLetters, ParkedState, Progress, Runner};
use annals_postgres::projection::PgProjector;
use annals_sqlite::projection::SqliteProjector;
use ftgo::order_history;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::backend::AnyStore;
use crate::output;
use crate::output::out;

/// The projections this binary knows, by name.
pub const PROJECTIONS: &[&str] = &[order_history::NAME];

/// What to do with a projection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Drop the read model and replay the whole log into it, with a progress bar.
    Rebuild,
    /// Handle what is in the log now, then stop.
    CatchUp,
    /// Catch up, then follow new events until interrupted (Ctrl-C).
    Follow,
}

fn check_name(name: &str) -> anyhow::Result<()> {
    if PROJECTIONS.contains(&name) {
        Ok(())
    } else {
        Err(crate::exit::not_found(format!(
            "unknown projection {name:?}; known: {}",
            PROJECTIONS.join(", ")
        )))
    }
}

/// `annals projection run|rebuild NAME`.
pub async fn projection(store: &AnyStore, name: &str, mode: Mode, batch: usize, json: bool) -> anyhow::Result<()> {
    check_name(name)?;
    let started = Instant::now();
    let progress = match store {
        AnyStore::Sqlite(s) => {
            let p = SqliteProjector::new(s.clone(), order_history::sqlite::OrderHistory).await?;
            if mode == Mode::Rebuild {
                p.reset().await?;
            }
            drive(store.clone(), p, mode, batch).await?
        }
        AnyStore::Postgres(s) => {
            let p = PgProjector::new(s.clone(), order_history::postgres::OrderHistory).await?;
            if mode == Mode::Rebuild {
                p.reset().await?;
            }
            drive(store.clone(), p, mode, batch).await?
        }
        AnyStore::Memory(_) => {
            return Err(crate::exit::invalid(
                "projections need a store that outlives the command: a SQLite file or PostgreSQL",
            ));
        }
    };
    let secs = started.elapsed().as_secs_f64();
    let rate = progress.handled as f64 / secs.max(1e-9);
    if json {
        out!(
            "{}",
            json!({ "projection": name, "position": progress.position, "handled": progress.handled,
                    "parked": progress.parked, "seconds": secs, "events_per_second": rate })
        );
    } else {
        out!(
            "{name}: at position {}, {} events handled, {} parked, in {secs:.2} s ({rate:.0} events/s)",
            progress.position,
            progress.handled,
            progress.parked
        );
    }
    Ok(())
}

async fn drive<C: Consumer>(store: AnyStore, consumer: C, mode: Mode, batch: usize) -> anyhow::Result<Progress> {
    let start = consumer_checkpoint(&store, consumer.name()).await?;
    let head = store.head_position().await?;
    let bar = ProgressBar::new(head.saturating_sub(start));
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} events  {per_sec}  ETA {eta}  {msg}")?
            .progress_chars("=> "),
    );
    bar.set_prefix(consumer.name().to_owned());
    let tick = bar.clone();
    let mut runner = Runner::new(store, consumer)
        .with_batch(batch)
        .only_stream_types(["Order"])
        .on_progress(move |position, head| {
            tick.set_length(head.saturating_sub(start));
            tick.set_position(position.saturating_sub(start));
        });
    let result = match mode {
        Mode::Rebuild | Mode::CatchUp => runner.run_until_caught_up().await,
        Mode::Follow => runner.run(crate::logging::shutdown()).await,
    };
    bar.finish_and_clear();
    Ok(result?)
}

async fn consumer_checkpoint(store: &AnyStore, name: &str) -> anyhow::Result<u64> {
    use annals::consume::Checkpoints;
    Ok(store.load_checkpoint(name).await?.unwrap_or(0))
}

/// `annals orders [--consumer ID]`: the order-history read model.
pub async fn orders(store: &AnyStore, consumer: Option<&str>, json: bool) -> anyhow::Result<()> {
    let answer = match store {
        AnyStore::Sqlite(s) => {
            let consumer = consumer.map(str::to_owned);
            s.read_with(move |conn| {
                order_history::sqlite::orders_of(conn, consumer.as_deref()).map_err(annals::StoreError::backend)
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e} (has `annals projection run order-history` run yet?)"))?
        }
        AnyStore::Postgres(s) => {
            let client = s.client().await?;
            order_history::postgres::orders_of(&**client, consumer)
                .await
                .map_err(|e| anyhow::anyhow!("{e} (has `annals projection run order-history` run yet?)"))?
        }
        AnyStore::Memory(_) => return Err(crate::exit::invalid("read models need a SQLite file or PostgreSQL")),
    };
    if json {
        out!("{}", serde_json::to_string(&answer)?);
        return Ok(());
    }
    for o in &answer.orders {
        out!(
            "{:<40} {:<14} {:<18} {:>8.2}  {} lines",
            o.order_id,
            o.consumer_id,
            order_history::state_name(o.state),
            o.total_cents as f64 / 100.0,
            o.line_items
        );
    }
    out!(
        "{} orders; open total {:.2}",
        answer.orders.len(),
        answer.open_total_cents as f64 / 100.0
    );
    Ok(())
}

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
        for h in &failing {
            out!(
                "{}",
                json!({ "component": h.component, "health": h.state.as_str(),
                        "kind": h.kind.map(annals::ErrorKind::as_str), "error": h.error,
                        "since": output::time(h.since), "attempts": h.attempts,
                        "last_try": output::time(h.updated_at) })
            );
        }
        if let Some(t) = &open {
            out!(
                "{}",
                json!({ "open_transaction": { "pid": t.pid, "state": t.state,
                        "age_seconds": t.age.as_secs_f64(), "query": t.query } })
            );
        }
        for (s, events) in &slots {
            out!(
                "{}",
                json!({ "slot": s.slot, "active": s.active, "lag_bytes": s.lag_bytes, "lag_events": events })
            );
        }
        for c in &all {
            out!(
                "{}",
                json!({ "consumer": c.name, "position": c.position, "head": head, "lag_events": c.lag_events,
                        "lag_seconds": c.lag.as_secs_f64(), "parked": c.parked,
                        "updated_at": output::time(c.updated_at) })
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
            "{:<24} at {:<8} lag {:>6} events / {:>8}  parked {:<4} updated {}",
            c.name,
            c.position,
            c.lag_events,
            humantime::format_duration(Duration::from_secs(c.lag.as_secs())).to_string(),
            c.parked,
            output::time(c.updated_at)
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
                        json!({ "id": p.id, "consumer": p.consumer, "position": p.position,
                                "event_id": p.event_id, "stream_id": p.stream_id, "version": p.version,
                                "error": p.error, "attempts": p.attempts, "state": p.state.as_str(),
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
    out!(
        "parked message #{id}: {}",
        match state {
            ParkedState::Retry => "will be retried by its consumer's next run",
            _ => "skipped",
        }
    );
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

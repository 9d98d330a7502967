//! `annals relay`: the polling relay from the store to NATS JetStream, with a progress line.

use std::time::{Duration, Instant};

use annals::EventStore;
use annals::consume::Checkpoints;
use annals::relay::Relay;
use annals_nats::{NatsOptions, NatsPublisher};
use annals_postgres::tail::TailRelay;

use crate::backend::AnyStore;

/// Where to publish and how.
#[derive(clap::Args)]
pub struct RelayArgs {
    /// The NATS server.
    #[arg(long, env = "ANNALS_NATS", default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// The JetStream stream (created if missing).
    #[arg(long, default_value = "ANNALS")]
    stream: String,
    /// The subject prefix: events go to <prefix>.<stream_type>.<stream_id>.
    #[arg(long, default_value = "annals")]
    prefix: String,
    /// The relay's name: its lease and its cursor (`relay.<name>` in `annals status`).
    #[arg(long, default_value = "main")]
    name: String,
    /// Events per read and publish.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// The lease's time to live: how soon a standby takes over after this relay dies.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    lease: Duration,
    /// Stop once the log's head at start is published.
    #[arg(long)]
    until_caught_up: bool,
    /// Where events come from: `poll` reads the global log (SQLite and PostgreSQL); `tail`
    /// streams PostgreSQL's transaction log through a logical replication slot
    /// `annals_<schema>_<name>` (needs wal_level=logical).
    #[arg(long, value_enum, default_value_t = Source::Poll)]
    source: Source,
}

/// The relay's source.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Source {
    /// Read the global log from the cursor.
    Poll,
    /// Tail the transaction log (PostgreSQL).
    Tail,
}

pub async fn run(store: AnyStore, args: RelayArgs) -> anyhow::Result<()> {
    let options = NatsOptions::new(&args.nats).with_names(&args.stream, &args.prefix);
    // The broker may be down: wait for it, with a doubling backoff.
    let mut wait = Duration::from_millis(100);
    let publisher = loop {
        match NatsPublisher::connect(&options).await {
            Ok(p) => break p,
            Err(e) => {
                eprintln!("relay: {e}; retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    };
    let head = store.head_position().await?;
    let cursor_name = format!("relay.{}", args.name);
    let cursor = store.load_checkpoint(&cursor_name).await?.unwrap_or(0);
    if args.until_caught_up && cursor >= head {
        eprintln!("relay: already at position {cursor}, the head");
        return Ok(());
    }
    eprintln!(
        "relay {} ({}): publishing to {} (stream {}, subjects {}.>)",
        args.name,
        match args.source {
            Source::Poll => "polling the log",
            Source::Tail => "tailing the transaction log",
        },
        args.nats,
        args.stream,
        args.prefix
    );
    // Stops on Ctrl-C, or once the head at start is published; shows progress every second.
    let monitor_store = store.clone();
    let until = args.until_caught_up;
    let stop = async move {
        let started = Instant::now();
        let mut last_line = Instant::now();
        let monitor = async {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let at = monitor_store
                    .load_checkpoint(&cursor_name)
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or(0);
                if last_line.elapsed() >= Duration::from_secs(1) {
                    let rate = at.saturating_sub(cursor) as f64 / started.elapsed().as_secs_f64();
                    let head = monitor_store.head_position().await.unwrap_or(at);
                    eprintln!("relay: position {at} of {head} ({rate:.0} events/s this run)");
                    last_line = Instant::now();
                }
                if until && at >= head {
                    return;
                }
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = monitor => {}
        }
    };
    let progress = match (args.source, store) {
        (Source::Poll, store) => {
            Relay::new(args.name.clone(), store, publisher)
                .with_batch(args.batch)
                .with_lease_ttl(args.lease)
                .run(stop)
                .await?
        }
        (Source::Tail, AnyStore::Postgres(store)) => {
            TailRelay::new(args.name.clone(), store, publisher)
                .with_lease_ttl(args.lease)
                .run(stop)
                .await?
        }
        (Source::Tail, _) => anyhow::bail!("--source tail needs a PostgreSQL store (--db postgres://…)"),
    };
    eprintln!(
        "relay: stopped at position {} ({} published this run, {} retries)",
        progress.position, progress.published, progress.retries
    );
    Ok(())
}

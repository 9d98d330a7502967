//! `annals relay`: the polling relay from the store to NATS JetStream, with a progress line.

use std::time::{Duration, Instant};

use annals::EventStore;
use annals::consume::Checkpoints;
use annals::relay::Relay;
use annals_nats::{NatsOptions, NatsPublisher};

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
    let cursor = store
        .load_checkpoint(&format!("relay.{}", args.name))
        .await?
        .unwrap_or(0);
    let started = Instant::now();
    let mut last_line = Instant::now();
    let (caught_up_tx, caught_up) = tokio::sync::watch::channel(false);
    let until = args.until_caught_up;
    let mut relay = Relay::new(args.name.clone(), store, publisher)
        .with_batch(args.batch)
        .with_lease_ttl(args.lease)
        .on_progress(move |p| {
            if last_line.elapsed() >= Duration::from_secs(1) {
                let rate = p.published as f64 / started.elapsed().as_secs_f64().max(1e-3);
                eprintln!(
                    "relay: position {} | {} published this run ({rate:.0}/s) | {} retries",
                    p.position, p.published, p.retries
                );
                last_line = Instant::now();
            }
            if until && p.position >= head {
                let _ = caught_up_tx.send(true);
            }
        });
    eprintln!(
        "relay {}: publishing to {} (stream {}, subjects {}.>)",
        args.name, args.nats, args.stream, args.prefix
    );
    let stop = async move {
        let mut caught_up = caught_up;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = caught_up.wait_for(|done| *done), if until => {}
        }
    };
    let progress = if until && cursor >= head {
        annals::relay::RelayProgress {
            position: cursor,
            ..Default::default()
        }
    } else {
        relay.run(stop).await?
    };
    eprintln!(
        "relay: stopped at position {} ({} published this run, {} retries)",
        progress.position, progress.published, progress.retries
    );
    Ok(())
}

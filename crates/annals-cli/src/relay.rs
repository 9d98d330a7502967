//! `annals relay`: the polling relay from the store to NATS JetStream, with a progress line.

use std::time::{Duration, Instant};

use annals::EventStore;
use annals::consume::{Backoff, Checkpoints, Trouble};
use annals::relay::Relay;
use annals_nats::{NatsOptions, NatsPublisher};
use annals_postgres::tail::TailRelay;

use crate::backend::AnyStore;

/// Where to publish and how.
#[derive(clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_long_help = "With --source tail the relay creates a logical replication slot \
annals_<schema>_<name> and a publication annals_<schema> in PostgreSQL. They stay when the relay \
stops, so it resumes where it was; while they stay, the server keeps the WAL the slot has not \
confirmed. `annals relay drop-slot --name NAME` removes them once that relay is retired.\n\n\
Failures: a broker or database that cannot be reached is retried with backoff, each try logged \
and shown by `annals status`; a bad URL, an unknown host, a server without JetStream or \
wal_level below logical stops the relay at once with what to fix (exit code 7)."
)]
pub struct RelayArgs {
    #[command(subcommand)]
    action: Option<RelayAction>,
    /// The NATS server.
    #[arg(long, env = "ANNALS_NATS", default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// The JetStream stream (created if missing).
    #[arg(long, default_value = "ANNALS")]
    stream: String,
    /// The subject prefix: events go to <prefix>.<stream_type>.<stream_id>.
    // The text is clap's help as written: `<prefix>` is a placeholder there, not HTML.
    #[allow(rustdoc::invalid_html_tags)]
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
    /// Give up connecting to the broker after this long (exit code 6). Default: keep trying
    /// (each try logged), or 30s with --until-caught-up.
    #[arg(long, value_parser = humantime::parse_duration)]
    give_up_after: Option<Duration>,
    /// Where events come from: `poll` reads the global log (SQLite and PostgreSQL); `tail`
    /// streams PostgreSQL's transaction log through a logical replication slot
    /// `annals_<schema>_<name>` (needs wal_level=logical).
    #[arg(long, value_enum, default_value_t = Source::Poll)]
    source: Source,
}

/// Relay maintenance.
#[derive(clap::Subcommand)]
pub enum RelayAction {
    /// Drop a relay's replication slot (so PostgreSQL stops keeping WAL for it) and, when no
    /// other relay of the store has one, the store's publication. Refused while a relay streams
    /// from the slot. The relay's cursor stays.
    DropSlot {
        /// The relay's name.
        #[arg(long, default_value = "main")]
        name: String,
    },
}

/// The relay's source.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Source {
    /// Read the global log from the cursor.
    Poll,
    /// Tail the transaction log (PostgreSQL).
    Tail,
}

/// `annals relay …`: runs the relay (or a maintenance action) on `store`.
pub async fn run(store: AnyStore, args: RelayArgs, json: bool) -> anyhow::Result<()> {
    if let Some(RelayAction::DropSlot { name }) = &args.action {
        return drop_slot(&store, name, json).await;
    }
    let options = NatsOptions::new(&args.nats).with_names(&args.stream, &args.prefix);
    // One listener for the whole run: a signal while connecting stops it too.
    let mut shutdown = std::pin::pin!(crate::logging::shutdown());
    let give_up = args
        .give_up_after
        .or(args.until_caught_up.then_some(Duration::from_secs(30)));
    let publisher = tokio::select! {
        () = &mut shutdown => return Ok(()),
        connected = connect(&store, &options, &args.name, give_up) => connected?,
    };
    let head = store.head_position().await?;
    let cursor_name = format!("relay.{}", args.name);
    let cursor = store.load_checkpoint(&cursor_name).await?.unwrap_or(0);
    if args.until_caught_up && cursor >= head {
        if json {
            crate::output::emit(
                "relay",
                serde_json::json!({ "name": args.name, "position": cursor, "published": 0, "retries": 0 }),
            );
        } else {
            eprintln!("relay: already at position {cursor}, the head");
        }
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
    // Stops on Ctrl-C or SIGTERM, or once the head at start is published; shows progress every
    // second.
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
            () = shutdown => {}
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
        (Source::Tail, _) => {
            return Err(crate::exit::invalid(
                "--source tail needs a PostgreSQL store (--db postgres://…)",
            ));
        }
    };
    if json {
        crate::output::emit(
            "relay",
            serde_json::json!({ "name": args.name, "position": progress.position,
                                "published": progress.published, "retries": progress.retries }),
        );
    } else {
        eprintln!(
            "relay: stopped at position {} ({} published this run, {} retries)",
            progress.position, progress.published, progress.retries
        );
    }
    Ok(())
}

/// Connects to the broker: a transient failure (nothing listening, a timeout) is retried with
/// backoff, each try logged and shown by `annals status` as `relay.<name>`, until `give_up`
/// passes; any other (a bad URL, an unknown host, JetStream off) is returned at once.
async fn connect(
    store: &AnyStore,
    options: &NatsOptions,
    name: &str,
    give_up: Option<Duration>,
) -> anyhow::Result<NatsPublisher> {
    let started = Instant::now();
    let mut trouble = Trouble::new(
        format!("relay.{name}"),
        Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
    );
    loop {
        match NatsPublisher::connect(options).await {
            Ok(publisher) => {
                trouble.recovered(store).await;
                return Ok(publisher);
            }
            Err(e) if e.kind().is_transient() && give_up.is_none_or(|d| started.elapsed() < d) => {
                trouble.retry(store, "connecting to NATS", &e).await;
            }
            Err(e) => {
                let transient = e.kind().is_transient();
                trouble.stopped(store, "connecting to NATS", &e).await;
                let e = anyhow::Error::new(e);
                return Err(if transient {
                    e.context(format!(
                        "gave up after {} tries in {:.0?}",
                        trouble.attempts(),
                        started.elapsed()
                    ))
                } else {
                    e
                });
            }
        }
    }
}

/// `annals relay drop-slot`.
async fn drop_slot(store: &AnyStore, name: &str, json: bool) -> anyhow::Result<()> {
    let AnyStore::Postgres(store) = store else {
        return Err(crate::exit::invalid(
            "relay slots exist on PostgreSQL only (--db postgres://…)",
        ));
    };
    let dropped = annals_postgres::tail::drop_slot(store, name).await?;
    if json {
        crate::output::emit(
            "dropped",
            serde_json::json!({ "relay": name, "slot": dropped.slot, "publication": dropped.publication }),
        );
        return Ok(());
    }
    match (&dropped.slot, &dropped.publication) {
        (None, None) => eprintln!("relay {name}: no slot to drop"),
        (slot, publication) => {
            if let Some(slot) = slot {
                eprintln!("dropped replication slot {slot}");
            }
            if let Some(publication) = publication {
                eprintln!("dropped publication {publication} (no relay slot of this schema is left)");
            }
        }
    }
    Ok(())
}

//! `annals`: the command-line tool of the annals event store.
//!
//! Run the FTGO demo, list streams, show a stream's history and its state at any version or time
//! (time travel), read and follow the global log, and append events from scripts.

mod audit;
mod backend;
mod commands;
mod consumers;
mod demo;
mod demo_saga;
mod exit;
mod ftgo_services;
mod logging;
mod output;
mod relay;
mod sagas;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Event sourcing for Rust services: inspect and operate an annals event store.
#[derive(Parser)]
#[command(
    name = "annals",
    version,
    about,
    after_long_help = "Exit codes: 0 success; 1 other failure; 2 usage (an unknown option, a missing argument); \
3 conflict (the stream moved on, was deleted, has another type); 4 not found; 5 invalid input (nothing \
was changed); 6 unavailable (the database or broker cannot be reached now: retry later); 7 misconfigured \
(a bad URL, a missing database, a server setting); 8 corrupt stored data. With --json an error is one \
JSON object on stderr: {\"error\":{\"kind\":…,\"message\":…}}.\n\n\
Logs go to stderr: warnings by default, -v for progress, -vv for detail, -q for errors only, \
RUST_LOG to choose per module, --log-format json for machines."
)]
struct Cli {
    /// The store: a SQLite file path (created if missing), a PostgreSQL URL
    /// (`postgres://user@host:5432/db`), or `memory:`.
    #[arg(long, global = true, default_value = "./annals.db", env = "ANNALS_DB")]
    db: String,
    /// On PostgreSQL: the schema holding annals' tables (created if missing).
    #[arg(long, global = true, default_value = "annals", env = "ANNALS_PG_SCHEMA")]
    pg_schema: String,
    /// Print JSON (one object per line for lists) instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// More log lines on stderr (-v: info, -vv: debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Errors only on stderr's log (warnings are shown by default).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// How log lines are written.
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Text)]
    log_format: logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the FTGO order lifecycle demo: create, revise, approve, a conflict, a rejected command,
    /// cancel; `demo saga` runs the Create Order saga with every service in this process.
    Demo {
        #[command(subcommand)]
        which: Option<DemoKind>,
    },
    /// List streams with their type and version.
    Streams {
        /// Only streams of this type.
        #[arg(long = "type")]
        stream_type: Option<String>,
        /// Also deleted aggregates' streams (hidden by default; their events stay).
        #[arg(long)]
        deleted: bool,
    },
    /// Forget a data subject (crypto-shredding): destroy its data key, so its personal fields
    /// read as "[forgotten]" on every path; recorded in the stream `annals-forgotten`.
    Forget {
        /// The subject, e.g. a consumer id.
        subject: String,
        /// Who is forgetting (recorded).
        #[arg(long, env = "USER")]
        actor: Option<String>,
    },
    /// Purge a stream for good (hard delete, for an erasure the law requires): its events,
    /// snapshots and row are removed. Recorded first in the stream `annals-purges` (who, why,
    /// what). Needs --yes.
    Purge {
        /// The stream id.
        stream: String,
        /// Why (recorded).
        #[arg(long)]
        reason: String,
        /// Who is purging (recorded).
        #[arg(long, env = "USER")]
        actor: Option<String>,
        /// Yes, remove these events for good.
        #[arg(long)]
        yes: bool,
    },
    /// Delete an aggregate softly: its stream keeps every event and ends with a `StreamDeleted`
    /// event; later appends and commands are refused (until `annals restore`) and listings hide
    /// it.
    Delete {
        /// The stream id.
        stream: String,
        /// Why (stored in the deletion event).
        #[arg(long)]
        reason: String,
        /// Who is deleting (stored in the metadata).
        #[arg(long, env = "USER")]
        actor: Option<String>,
    },
    /// Bring back a stream deleted softly: appends a `StreamRestored` event, after which appends
    /// and commands are accepted again.
    Restore {
        /// The stream id.
        stream: String,
        /// Why (stored in the restore event).
        #[arg(long)]
        reason: String,
        /// Who is restoring (stored in the metadata).
        #[arg(long, env = "USER")]
        actor: Option<String>,
    },
    /// Show a stream's events and the aggregate state they add up to, now or in the past.
    History {
        /// The stream id.
        stream: String,
        /// Time travel: the state as of this version.
        #[arg(long, conflicts_with = "at_time")]
        at_version: Option<u64>,
        /// Time travel: the state as of this time (RFC 3339, e.g. 2026-11-24T16:30:00Z).
        #[arg(long)]
        at_time: Option<String>,
    },
    /// The audit trail of a stream: each change with who made it, when, the message that caused
    /// it (causation), its flow (correlation) and the events it stored.
    Audit {
        /// The stream id.
        stream: String,
    },
    /// Read the global log from a position; `--follow` keeps streaming new events as they commit.
    Events {
        /// First global position to show.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Show at most this many events (without --follow).
        #[arg(long)]
        limit: Option<usize>,
        /// Keep waiting for new events.
        #[arg(long)]
        follow: bool,
    },
    /// Append one event to a stream (for scripts and operators).
    Append {
        /// The stream id.
        stream: String,
        /// The event type, e.g. OrderNoteAdded.
        #[arg(long = "type")]
        event_type: String,
        /// The payload, as JSON.
        #[arg(long)]
        data: String,
        /// What the stream's version must be: a number, `any`, `no-stream` or `exists`.
        #[arg(long, default_value = "any")]
        expected_version: String,
        /// The stream type; defaults to the stream's own, or the id's prefix before `-`.
        #[arg(long)]
        stream_type: Option<String>,
        /// Who is appending (stored in the metadata).
        #[arg(long, env = "USER")]
        actor: Option<String>,
    },
    /// Run or rebuild a projection (read model) kept in the store's database.
    Projection {
        #[command(subcommand)]
        action: ProjectionAction,
    },
    /// Query the FTGO order-history read model: orders by consumer, with state and totals.
    Orders {
        /// Only this consumer's orders.
        #[arg(long)]
        consumer: Option<String>,
    },
    /// Every consumer's checkpoint, lag (events and seconds) and parked messages, and where the
    /// sagas stand (failed ones listed).
    Status,
    /// Sagas: a saga's timeline (`show ID`), or every saga with its status (`list`).
    Saga {
        #[command(subcommand)]
        action: sagas::SagaAction,
    },
    /// Messages consumers gave up on: list them, retry or skip one.
    Parked {
        #[command(subcommand)]
        action: consumers::ParkedAction,
    },
    /// Publish every committed event to NATS JetStream, in order, from a durable cursor, until
    /// Ctrl-C (or, with --until-caught-up, until the log's head at start is published). One relay
    /// per --name is active; others wait on its lease and take over when it stops.
    Relay(relay::RelayArgs),
    /// FTGO as separate service processes over one store each and NATS: serve a service, add a
    /// consumer, open an account, place orders.
    Ftgo {
        #[command(subcommand)]
        action: ftgo_services::FtgoAction,
    },
}

#[derive(Subcommand)]
enum DemoKind {
    /// FTGO's Create Order saga: the happy path, a consumer refused, a card declined.
    Saga,
}

#[derive(Subcommand)]
enum ProjectionAction {
    /// Catch up from the checkpoint; with --follow, keep applying new events until Ctrl-C.
    Run {
        /// The projection (known: order-history).
        name: String,
        /// Keep following the log.
        #[arg(long)]
        follow: bool,
        /// Events per transaction.
        #[arg(long, default_value_t = 512)]
        batch: usize,
    },
    /// Drop the read model and replay the whole log into it, with a progress bar.
    Rebuild {
        /// The projection (known: order-history).
        name: String,
        /// Events per transaction.
        #[arg(long, default_value_t = 512)]
        batch: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose, cli.quiet, cli.log_format);
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => ExitCode::from(exit::report(&e, json)),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let store = backend::AnyStore::open(&cli.db, &cli.pg_schema).await?;
    match cli.command {
        Command::Demo { which: None } => demo::run(store, &cli.db).await,
        Command::Demo {
            which: Some(DemoKind::Saga),
        } => demo_saga::run(store, &cli.db).await,
        Command::Streams { stream_type, deleted } => {
            commands::streams(&store, stream_type.as_deref(), deleted, cli.json).await
        }
        Command::Forget { subject, actor } => commands::forget(&store, &subject, actor, cli.json).await,
        Command::Purge {
            stream,
            reason,
            actor,
            yes,
        } => commands::purge(&store, &stream, &reason, actor, yes, cli.json).await,
        Command::Delete { stream, reason, actor } => commands::delete(&store, &stream, &reason, actor, cli.json).await,
        Command::Restore { stream, reason, actor } => {
            commands::restore(&store, &stream, &reason, actor, cli.json).await
        }
        Command::History {
            stream,
            at_version,
            at_time,
        } => commands::history(&store, &stream, at_version, at_time.as_deref(), cli.json).await,
        Command::Events { from, limit, follow } => commands::events(&store, from, limit, follow, cli.json).await,
        Command::Append {
            stream,
            event_type,
            data,
            expected_version,
            stream_type,
            actor,
        } => {
            let args = commands::AppendArgs {
                stream,
                event_type,
                data,
                expected_version,
                stream_type,
                actor,
            };
            commands::append(&store, args, cli.json).await
        }
        Command::Projection { action } => {
            let (name, mode, batch) = match action {
                ProjectionAction::Run { name, follow, batch } => (
                    name,
                    if follow {
                        consumers::Mode::Follow
                    } else {
                        consumers::Mode::CatchUp
                    },
                    batch,
                ),
                ProjectionAction::Rebuild { name, batch } => (name, consumers::Mode::Rebuild, batch),
            };
            consumers::projection(&store, &name, mode, batch.max(1), cli.json).await
        }
        Command::Orders { consumer } => consumers::orders(&store, consumer.as_deref(), cli.json).await,
        Command::Status => {
            consumers::status(&store, cli.json).await?;
            sagas::status(&store, cli.json).await
        }
        Command::Saga { action } => sagas::run(&store, action, cli.json).await,
        Command::Audit { stream } => audit::run(&store, &stream, cli.json).await,
        Command::Parked { action } => consumers::parked(&store, action, cli.json).await,
        Command::Relay(args) => relay::run(store, args).await,
        Command::Ftgo { action } => ftgo_services::run(store, action).await,
    }
}

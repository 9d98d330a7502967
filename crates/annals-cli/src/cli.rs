//! The command line: the options every command shares ([`Global`]), the generic commands
//! ([`Command`]), the registry an application fills to show its aggregates' state ([`Registry`]),
//! and [`execute`], which runs a command the way every annals binary does.

use std::collections::HashMap;
use std::process::ExitCode;

use annals::RecordedEvent;
use clap::Subcommand;

use crate::backend::{Access, AnyStore};
use crate::{audit, commands, consumers, exit, logging, reads, relay, sagas};

/// What every command line of an annals binary ends its `--help` with.
pub const AFTER_HELP: &str = "Examples:\n  \
annals --db ./annals.db streams --type Order --limit 20\n  \
annals history order-42 --at-time 2026-11-24T16:30:00Z\n  \
annals events --from 1 --follow --type OrderApproved\n  \
annals append note-1 --type NoteAdded --data-file note.json --expected-version no-stream --stream-type note\n  \
annals --db postgres://app@db:5432/prod --pg-schema orders status --json\n  \
annals relay --source tail --nats nats://127.0.0.1:4222\n\n\
Exit codes: 0 success; 1 other failure; 2 usage (an unknown option, a missing \
argument); 3 conflict (the stream moved on, was deleted, has another type); 4 not found; 5 invalid input (nothing \
was changed); 6 unavailable (the database or broker cannot be reached now: retry later); 7 misconfigured (a bad \
URL, a missing database, a server setting); 8 corrupt stored data.\n\n\
JSON: with --json, stdout is JSON Lines, one object per line, each with a \"kind\" (event, stream, history, \
appended, consumer, saga, parked, relay, …); a list prints a line per item. An error is one JSON object on \
stderr: {\"error\":{\"kind\":…,\"message\":…}}.\n\n\
Logs go to stderr: warnings by default, -v for progress, -vv for detail, -q for errors only, RUST_LOG to choose \
per module, --log-format json for machines.";

/// The options every command takes.
#[derive(clap::Args, Clone, Debug)]
pub struct Global {
    /// The store: a SQLite file path, a PostgreSQL URL (`postgres://user@host:5432/db`), or
    /// `memory:`.
    #[arg(long, global = true, default_value = "./annals.db", env = "ANNALS_DB")]
    pub db: String,
    /// On PostgreSQL: the schema holding annals' tables.
    #[arg(long, global = true, default_value = "annals", env = "ANNALS_PG_SCHEMA")]
    pub pg_schema: String,
    /// Print JSON (one object per line for lists) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log lines on stderr (-v: info, -vv: debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Errors only on stderr's log (warnings are shown by default).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// How log lines are written.
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Text)]
    pub log_format: logging::LogFormat,
}

impl Global {
    /// Opens the store `--db` names, for `access`.
    pub async fn open(&self, access: Access) -> anyhow::Result<AnyStore> {
        AnyStore::open(&self.db, &self.pg_schema, access).await
    }

    /// The store as a person may see it: `--db` with any password replaced by `***`.
    pub fn shown_db(&self) -> String {
        crate::backend::redact(&self.db)
    }

    /// The options that point another command at the same store (`--db …` and, on PostgreSQL,
    /// `--pg-schema …`), password redacted: for hints printed after a command. `None` for
    /// `memory:`, which is gone when the command ends.
    pub fn store_args(&self) -> Option<String> {
        if self.db == "memory:" {
            return None;
        }
        let db = self.shown_db();
        Some(if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            format!("--db {db} --pg-schema {}", self.pg_schema)
        } else {
            format!("--db {db}")
        })
    }
}

/// A fold an application registers for a stream type: the state its events add up to, as JSON,
/// for `history` (a generic view merges the payloads' fields when none is registered).
pub type Fold = fn(&[RecordedEvent]) -> anyhow::Result<serde_json::Value>;

/// What an application adds to the generic commands: folds by stream type, and its command
/// line (for `completions` and `man`).
#[derive(Clone, Default)]
pub struct Registry {
    folds: HashMap<String, (Fold, &'static str)>,
    app: Option<fn() -> clap::Command>,
}

impl Registry {
    /// Nothing registered: the generic `annals`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The binary's whole command line (`<Cli as clap::CommandFactory>::command`), which
    /// `completions` and `man` describe.
    pub fn app_from(mut self, app: fn() -> clap::Command) -> Self {
        self.app = Some(app);
        self
    }

    /// The binary's command line, or a bare one naming the generic commands.
    pub fn app(&self) -> clap::Command {
        match self.app {
            Some(app) => app(),
            None => <Command as clap::Subcommand>::augment_subcommands(clap::Command::new("annals")),
        }
    }

    /// `history` shows the state of `stream_type` streams through `fold`, named `name`.
    pub fn fold(mut self, stream_type: &str, name: &'static str, fold: Fold) -> Self {
        self.folds.insert(stream_type.to_owned(), (fold, name));
        self
    }

    /// The fold registered for `stream_type`, with its name.
    pub fn fold_of(&self, stream_type: &str) -> Option<(Fold, &'static str)> {
        self.folds.get(stream_type).copied()
    }
}

/// The generic commands: they work on any annals store, with no domain code.
#[derive(Subcommand)]
pub enum Command {
    /// Create the store (`--db`, `--pg-schema`) if there is none, or upgrade it to this version's
    /// schema; says which. Reading commands never create a store; `append` creates one, saying so.
    Init,
    /// List streams with their type, version and last change, by id (deleted ones hidden).
    Streams {
        /// Only streams of this type.
        #[arg(long = "type")]
        stream_type: Option<String>,
        /// Also deleted aggregates' streams (hidden by default; their events stay).
        #[arg(long)]
        deleted: bool,
        /// At most this many streams (a note on stderr says where the next page starts).
        #[arg(long)]
        limit: Option<usize>,
        /// Streams after this id: the next page.
        #[arg(long)]
        after: Option<String>,
    },
    /// Show a stream's events and the state they add up to, now or in the past.
    History {
        /// The stream id.
        stream: String,
        /// Time travel: the state as of this version.
        #[arg(long, conflicts_with = "at_time")]
        at_version: Option<u64>,
        /// Time travel: the state as of this time (RFC 3339: 2026-11-24T16:30:00.123456Z, an
        /// offset such as +14:00, or a date; listings show times to the microsecond).
        #[arg(long)]
        at_time: Option<String>,
        /// Show events from this version on (the state still adds them all up).
        #[arg(long)]
        from_version: Option<u64>,
        /// Show at most this many events.
        #[arg(long)]
        limit: Option<usize>,
        /// Show only events of this type.
        #[arg(long = "type")]
        event_type: Option<String>,
        /// Then keep printing the stream's new events as they commit (until Ctrl-C or SIGTERM).
        #[arg(long, conflicts_with_all = ["at_version", "at_time"])]
        follow: bool,
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
        /// Keep waiting for new events (until Ctrl-C or SIGTERM).
        #[arg(long)]
        follow: bool,
        /// Only this stream's events.
        #[arg(long)]
        stream: Option<String>,
        /// Only events of this type.
        #[arg(long = "type")]
        event_type: Option<String>,
    },
    /// Append one event to a stream (for scripts and operators).
    Append {
        /// The stream id.
        stream: String,
        /// The event type, e.g. OrderNoteAdded.
        #[arg(long = "type")]
        event_type: String,
        /// The payload, as JSON; `-` reads it from stdin.
        #[arg(long, required_unless_present = "data_file")]
        data: Option<String>,
        /// Read the payload from this file (events of up to 1 MiB).
        #[arg(long, conflicts_with = "data")]
        data_file: Option<std::path::PathBuf>,
        /// What the stream's version must be: a number, `any`, `no-stream` or `exists`.
        #[arg(long, default_value = "any")]
        expected_version: String,
        /// The stream type; defaults to the stream's own, or the id's prefix before `-`.
        #[arg(long)]
        stream_type: Option<String>,
        /// Who is appending (stored in the metadata; a note says so when there is none).
        #[arg(long, env = "USER")]
        actor: Option<String>,
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
    /// Forget a data subject (crypto-shredding): destroy its data key, so its personal fields
    /// read as "[forgotten]" on every path; recorded in the stream `annals-forgotten`.
    // The text is clap's help as written: "[forgotten]" is what a reader sees, not a doc link.
    #[allow(rustdoc::broken_intra_doc_links)]
    Forget {
        /// The subject, e.g. a consumer id.
        subject: String,
        /// Who is forgetting (recorded).
        #[arg(long, env = "USER")]
        actor: Option<String>,
    },
    /// Every consumer's checkpoint, lag (events and seconds) and parked messages, components
    /// failing now, and where the sagas stand (failed ones listed).
    Status,
    /// Sagas: a saga's timeline (`show ID`), or every saga with its status (`list`).
    Saga {
        /// What to show.
        #[command(subcommand)]
        action: sagas::SagaAction,
    },
    /// Messages consumers gave up on: list them, retry or skip one.
    Parked {
        /// What to do.
        #[command(subcommand)]
        action: consumers::ParkedAction,
    },
    /// Print shell completions for this binary (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print this binary's manual page (roff) to stdout: `annals man | man -l -`.
    Man,
    /// Publish every committed event to NATS JetStream, in order, from a durable cursor, until
    /// Ctrl-C or SIGTERM (or, with --until-caught-up, until the log's head at start is
    /// published). One relay per --name is active; others wait on its lease and take over when
    /// it stops.
    Relay(relay::RelayArgs),
}

impl Command {
    /// What the command needs of its store: reading commands open it read-only, and only `init`
    /// and `append` may create one.
    pub fn access(&self) -> Access {
        match self {
            Self::Init | Self::Append { .. } => Access::Create,
            Self::Completions { .. } | Self::Man => Access::None,
            Self::Streams { .. }
            | Self::History { .. }
            | Self::Audit { .. }
            | Self::Events { .. }
            | Self::Status
            | Self::Saga { .. } => Access::Read,
            Self::Parked { action } if action.reads_only() => Access::Read,
            _ => Access::Write,
        }
    }
}

/// Runs a generic command.
pub async fn run(global: &Global, command: Command, registry: &Registry) -> anyhow::Result<()> {
    let json = global.json;
    match &command {
        Command::Completions { shell } => {
            let mut app = registry.app();
            let name = app.get_name().to_owned();
            clap_complete::generate(*shell, &mut app, name, &mut std::io::stdout());
            return Ok(());
        }
        Command::Man => {
            clap_mangen::Man::new(registry.app()).render(&mut std::io::stdout())?;
            return Ok(());
        }
        _ => {}
    }
    let store = global.open(command.access()).await?;
    match command {
        Command::Completions { .. } | Command::Man => Ok(()),
        Command::Init => commands::init(&store, global, json).await,
        Command::Streams {
            stream_type,
            deleted,
            limit,
            after,
        } => {
            let query = reads::StreamsQuery {
                stream_type,
                deleted,
                limit,
                after,
            };
            reads::streams(&store, query, json).await
        }
        Command::History {
            stream,
            at_version,
            at_time,
            from_version,
            limit,
            event_type,
            follow,
        } => {
            let query = reads::HistoryQuery {
                stream,
                at_version,
                at_time,
                from_version,
                limit,
                event_type,
                follow,
            };
            reads::history(&store, registry, query, json).await
        }
        Command::Audit { stream } => audit::run(&store, &stream, json).await,
        Command::Events {
            from,
            limit,
            follow,
            stream,
            event_type,
        } => {
            let query = reads::EventsQuery {
                from,
                limit,
                follow,
                stream,
                event_type,
            };
            reads::events(&store, query, json).await
        }
        Command::Append {
            stream,
            event_type,
            data,
            data_file,
            expected_version,
            stream_type,
            actor,
        } => {
            let args = commands::AppendArgs {
                stream,
                event_type,
                data,
                data_file,
                expected_version,
                stream_type,
                actor,
            };
            commands::append(&store, args, json).await
        }
        Command::Delete { stream, reason, actor } => commands::delete(&store, &stream, &reason, actor, json).await,
        Command::Restore { stream, reason, actor } => commands::restore(&store, &stream, &reason, actor, json).await,
        Command::Purge {
            stream,
            reason,
            actor,
            yes,
        } => commands::purge(&store, &stream, &reason, actor, yes, json).await,
        Command::Forget { subject, actor } => commands::forget(&store, &subject, actor, json).await,
        Command::Status => {
            consumers::status(&store, json).await?;
            sagas::status(&store, json).await
        }
        Command::Saga { action } => sagas::run(&store, action, json).await,
        Command::Parked { action } => consumers::parked(&store, action, json).await,
        Command::Relay(args) => relay::run(store, args, json).await,
    }
}

/// Runs `work` the way every annals binary does: logs set up from `global`, a runtime, and an
/// error reported by its kind (a line, or a JSON object with `--json`) with its exit code.
pub fn execute(global: &Global, work: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    logging::init(global.verbose, global.quiet, global.log_format);
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
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => ExitCode::from(exit::report(&e, global.json)),
    }
}

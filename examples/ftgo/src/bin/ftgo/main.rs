//! `ftgo`: the FTGO example of *Microservices Patterns* from the command line — the order demo,
//! the Create Order saga in one process, the four services as processes over NATS, the
//! order-history read model — with every generic `annals` command beside them, and `history`
//! showing an order's state through the `Order` aggregate.

/// With `--json`, the demos' story is not told: they print their events and a summary as JSON
/// Lines instead. Set once, before a demo runs.
static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `out!` for the demos' story: printed unless `--json` was given.
macro_rules! say {
    ($($arg:tt)*) => {
        if !crate::JSON.load(std::sync::atomic::Ordering::Relaxed) {
            annals_cli::out!($($arg)*);
        }
    };
}

mod demo;
mod demo_saga;
mod read_model;
mod services;

use std::process::ExitCode;

use annals::{Aggregate, RecordedEvent};
use annals_cli::backend::Access;
use clap::{Parser, Subcommand};
use ftgo::order::{Order, OrderEvent};

/// FTGO, the food-delivery example of Microservices Patterns, on annals.
#[derive(Parser)]
#[command(name = "ftgo", version, about, after_long_help = annals_cli::AFTER_HELP)]
struct Cli {
    #[command(flatten)]
    global: annals_cli::Global,
    #[command(subcommand)]
    command: FtgoCommand,
}

#[derive(Subcommand)]
enum FtgoCommand {
    /// Run the FTGO order lifecycle demo: create, revise, approve, a conflict, a rejected command,
    /// cancel; `demo saga` runs the Create Order saga with every service in this process.
    Demo {
        #[command(subcommand)]
        which: Option<DemoKind>,
    },
    #[command(flatten)]
    Services(services::FtgoAction),
    /// Query the order-history read model: orders by consumer, with state and totals.
    Orders {
        /// Only this consumer's orders.
        #[arg(long)]
        consumer: Option<String>,
    },
    /// Run or rebuild the order-history projection (read model) kept in the store's database.
    Projection {
        #[command(subcommand)]
        action: read_model::ProjectionAction,
    },
    #[command(flatten)]
    Annals(annals_cli::Command),
}

#[derive(Subcommand)]
enum DemoKind {
    /// FTGO's Create Order saga: the happy path, a consumer refused, a card declined.
    Saga,
}

/// An order's state as the Order aggregate folds its events (`history` of an `Order` stream).
fn order_state(events: &[RecordedEvent]) -> anyhow::Result<serde_json::Value> {
    let mut order = Order::default();
    for e in events {
        order.apply(&annals::decode::<OrderEvent>(e)?);
    }
    Ok(serde_json::to_value(order)?)
}

fn main() -> ExitCode {
    let Cli { global, command } = Cli::parse();
    let registry = annals_cli::Registry::new()
        .app_from(<Cli as clap::CommandFactory>::command)
        .fold(Order::STREAM_TYPE, "ftgo Order aggregate", order_state);
    let work = async {
        let json = global.json;
        JSON.store(json, std::sync::atomic::Ordering::Relaxed);
        // A malformed master key is a set-up error, said before anything runs.
        ftgo::privacy::master_key().map_err(annals::Failure::misconfigured)?;
        match command {
            FtgoCommand::Annals(command) => annals_cli::run(&global, command, &registry).await,
            FtgoCommand::Demo { which } => {
                let store = global.open(Access::Create).await?;
                match which {
                    None => demo::run(store, &global).await,
                    Some(DemoKind::Saga) => demo_saga::run(store, &global).await,
                }
            }
            FtgoCommand::Services(action) => services::run(global.open(Access::Create).await?, action).await,
            FtgoCommand::Orders { consumer } => {
                read_model::orders(&global.open(Access::Read).await?, consumer.as_deref(), json).await
            }
            FtgoCommand::Projection { action } => {
                read_model::projection(global.open(Access::Write).await?, action, json).await
            }
        }
    };
    annals_cli::execute(&global, work)
}

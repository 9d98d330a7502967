//! `annals`: the command-line tool of the annals event store, for any store and no domain code.

use std::process::ExitCode;

use clap::Parser;

/// Event sourcing for Rust services: inspect and operate an annals event store.
#[derive(Parser)]
#[command(name = "annals", version, about, after_long_help = annals_cli::AFTER_HELP)]
struct Cli {
    #[command(flatten)]
    global: annals_cli::Global,
    #[command(subcommand)]
    command: annals_cli::Command,
}

fn main() -> ExitCode {
    let Cli { global, command } = Cli::parse();
    let registry = annals_cli::Registry::new().app_from(<Cli as clap::CommandFactory>::command);
    annals_cli::execute(&global, annals_cli::run(&global, command, &registry))
}

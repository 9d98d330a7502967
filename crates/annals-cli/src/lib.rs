//! # annals-cli — the `annals` command line, as a library
//!
//! The `annals` binary operates any annals store with no domain code: streams, history and time
//! travel, the global log, appends, deletion and purge, forgetting, consumers' status and parked
//! messages, sagas, the relay. An application builds its own binary on the same commands: it
//! flattens [`Command`] into its own subcommands, registers folds so `history` shows its
//! aggregates' state ([`Registry`]), runs its projections with [`projection::drive`], and runs
//! everything with [`execute`] (logs, runtime, exit codes by error kind). The FTGO example's
//! `ftgo` binary is built that way.

pub mod audit;
pub mod backend;
mod cli;
pub mod commands;
pub mod consumers;
pub mod exit;
pub mod logging;
pub mod output;
pub mod projection;
pub mod reads;
pub mod relay;
pub mod sagas;

pub use cli::{AFTER_HELP, Command, Fold, Global, Registry, execute, run};

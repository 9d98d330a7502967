//! What every annals bench shares, and what the peers' benches (`benches/peers/*`, workspaces of
//! their own so their dependency trees stay apart) share with annals' own:
//!
//! - the command-path workload ([`workload`]): the event every system stores, how many commands
//!   run per aggregate, and the driver that runs N appenders for a fixed time;
//! - [`Sample`]: latencies and a rate, with percentiles;
//! - the markdown rows a bench prints, and the JSON record ([`record()`]) each case also writes
//!   when `ANNALS_BENCH_JSON` names a file, from which `bench-table` builds the side-by-side table
//!   with each ratio to the raw baseline and to the best peer.

pub mod record;
pub mod sample;
pub mod workload;

pub use record::{Record, record};
pub use sample::{Sample, header, row, secs, us};
pub use workload::{COMMANDS_PER_AGGREGATE, Line, run_commands, timed_loads};

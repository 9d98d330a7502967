//! The JSON record of one case, written when `ANNALS_BENCH_JSON` names a file, so benches run
//! in separate processes (annals and each peer workspace) make one table.

use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::Sample;

/// One case's result, as one JSON line.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    /// `postgres` or `sqlite`.
    pub backend: String,
    /// The workload, e.g. `commands 16×10` or `load 1000`.
    pub workload: String,
    /// Who ran it: `raw …`, `annals …`, or a peer's name.
    pub system: String,
    /// What the rate counts (`events/s`, `loads/s`).
    pub unit: String,
    /// Counted things per second.
    pub rate: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th percentile latency, µs.
    pub p99_us: f64,
    /// How many operations the latencies cover.
    pub operations: usize,
}

/// How a system takes part in a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The baseline with no framework: the same I/O done by hand.
    Raw,
    /// annals itself, in any configuration.
    Annals,
    /// Another event-sourcing library.
    Peer,
}

impl Record {
    /// What the system is, by its name's first word.
    pub fn role(&self) -> Role {
        if self.system.starts_with("raw") {
            Role::Raw
        } else if self.system.starts_with("annals") {
            Role::Annals
        } else {
            Role::Peer
        }
    }
}

/// Writes `sample` as a [`Record`] line to the file `ANNALS_BENCH_JSON` names (appending), if it
/// names one. A bench that cannot write its results stops: a table missing a row would mislead.
pub fn record(backend: &str, workload: &str, system: &str, unit: &str, sample: &Sample) {
    let Some(path) = std::env::var_os("ANNALS_BENCH_JSON") else {
        return;
    };
    let r = Record {
        backend: backend.into(),
        workload: workload.into(),
        system: system.into(),
        unit: unit.into(),
        rate: sample.rate(),
        p50_us: sample.pct(0.5).as_secs_f64() * 1e6,
        p99_us: sample.pct(0.99).as_secs_f64() * 1e6,
        operations: sample.latencies.len(),
    };
    let line = serde_json::to_string(&r).expect("a record serializes");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot write bench results to {}: {e}", path.to_string_lossy()));
    writeln!(f, "{line}").unwrap_or_else(|e| panic!("cannot write bench results: {e}"));
}

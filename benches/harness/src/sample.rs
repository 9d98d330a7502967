//! Samples, percentiles and the markdown rows the benches print.

use std::time::Duration;

/// Latencies of one case and how long it ran.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// One latency per operation (a command, a load, an append call).
    pub latencies: Vec<Duration>,
    /// What the rate counts: events for commands and appends, loads for loads.
    pub events: usize,
    /// Wall time the case ran.
    pub elapsed: Duration,
}

impl Sample {
    /// No operations yet.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Adds another slice of the same case (the benches run each case in rounds).
    pub fn add(&mut self, other: Sample) {
        self.latencies.extend(other.latencies);
        self.events += other.events;
        self.elapsed += other.elapsed;
    }

    /// Counted things per second.
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }

    /// The `p` quantile (0.0 ..= 1.0) of the latencies.
    pub fn pct(&self, p: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort();
        l.get(((l.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or_default()
    }
}

/// How long each case runs: `ANNALS_BENCH_SECS`, 2 seconds by default.
pub fn secs() -> Duration {
    Duration::from_secs_f64(
        std::env::var("ANNALS_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2.0),
    )
}

/// A duration in whole microseconds.
pub fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// One row of a case table; `baseline` is the rate the ratio divides by.
pub fn row(case: &str, s: &Sample, baseline: Option<f64>) {
    let ratio = baseline.map_or_else(|| "—".to_owned(), |b| format!("{:.2}×", s.rate() / b));
    println!(
        "| {case:<44} | {:>10.0} | {:>9} | {:>9} | {ratio:>7} |",
        s.rate(),
        us(s.pct(0.5)),
        us(s.pct(0.99))
    );
}

/// The heading and column names of a case table.
pub fn header(title: &str, unit: &str) {
    println!("\n### {title}\n");
    println!(
        "| {:<44} | {unit:>10} | {:>9} | {:>9} | {:>7} |",
        "case", "p50", "p99", "ratio"
    );
    println!("|{:-<46}|{:-<12}|{:-<11}|{:-<11}|{:-<9}|", "", "", "", "", "");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_from_sorted_latencies() {
        let s = Sample {
            latencies: [5, 1, 3, 2, 4].map(Duration::from_millis).to_vec(),
            events: 10,
            elapsed: Duration::from_secs(2),
        };
        assert_eq!(s.pct(0.5), Duration::from_millis(3));
        assert_eq!(s.pct(1.0), Duration::from_millis(5));
        assert_eq!(s.rate(), 5.0);
    }
}

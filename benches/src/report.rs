//! Shared by the bench targets: samples, percentiles and the markdown rows they print.

#![allow(dead_code)]

use std::time::Duration;

/// Latencies of one case and how long it ran.
pub struct Sample {
    pub latencies: Vec<Duration>,
    pub events: usize,
    pub elapsed: Duration,
}

impl Sample {
    pub fn empty() -> Self {
        Self {
            latencies: Vec::new(),
            events: 0,
            elapsed: Duration::ZERO,
        }
    }
    pub fn add(&mut self, other: Sample) {
        self.latencies.extend(other.latencies);
        self.events += other.events;
        self.elapsed += other.elapsed;
    }
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
    pub fn pct(&self, p: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort();
        l.get(((l.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or_default()
    }
}

pub fn secs() -> Duration {
    Duration::from_secs_f64(
        std::env::var("ANNALS_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2.0),
    )
}

pub fn payload() -> serde_json::Value {
    serde_json::json!({ "line_items": [{ "menu_item_id": "m-7", "name": "Chicken Vindaloo", "quantity": 2, "price_cents": 1250 }], "total_cents": 2500 })
}

pub fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

pub fn row(case: &str, s: &Sample, baseline: Option<f64>) {
    let ratio = baseline.map_or_else(|| "—".to_owned(), |b| format!("{:.2}×", s.rate() / b));
    println!(
        "| {case:<44} | {:>10.0} | {:>9} | {:>9} | {ratio:>7} |",
        s.rate(),
        us(s.pct(0.5)),
        us(s.pct(0.99))
    );
}

pub fn header(title: &str, unit: &str) {
    println!("\n### {title}\n");
    println!(
        "| {:<44} | {unit:>10} | {:>9} | {:>9} | {:>7} |",
        "case", "p50", "p99", "ratio"
    );
    println!("|{:-<46}|{:-<12}|{:-<11}|{:-<11}|{:-<9}|", "", "", "", "", "");
}

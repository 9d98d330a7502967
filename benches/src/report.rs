//! Shared by the bench targets: samples, percentiles and the markdown rows they print.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use annals::{EventStore, ExpectedVersion, NewEvent, StreamId};

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

/// Appends through annals: `appenders` tasks, each on its own stream, `batch` events per call with
/// `ExpectedVersion::Exact`, for `time`.
pub async fn bench_append<S: EventStore + Clone + 'static>(
    store: S,
    appenders: usize,
    batch: usize,
    tag: &str,
    time: Duration,
) -> Sample {
    let deadline = Instant::now() + time;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..appenders {
        let store = store.clone();
        let tag = tag.to_owned();
        tasks.push(tokio::spawn(async move {
            let stream = StreamId::new(format!("bench-{tag}-{w}")).unwrap();
            let mut version = 0u64;
            let mut lat = Vec::new();
            // Serialized once, as the raw baseline's payload is: both start from JSON text.
            let value = serde_json::value::to_raw_value(&payload()).unwrap();
            while Instant::now() < deadline {
                let events = (0..batch)
                    .map(|_| NewEvent::new("OrderRevised", value.clone()))
                    .collect();
                let expected = if version == 0 {
                    ExpectedVersion::NoStream
                } else {
                    ExpectedVersion::Exact(version)
                };
                let t = Instant::now();
                let out = store
                    .append_to_stream(stream.clone(), "Order", expected, events)
                    .await
                    .unwrap();
                lat.push(t.elapsed());
                version = out.last_version;
            }
            lat
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    Sample {
        events: latencies.len() * batch,
        latencies,
        elapsed,
    }
}

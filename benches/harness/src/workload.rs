//! The command-path workload every system runs alike: each appender owns its aggregates and runs
//! commands on them — load, decide, append `k` events — 10 commands per aggregate, then a new
//! one; and the event every system stores (an order revised, one line item).

use std::future::Future;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::Sample;

/// Commands run on an aggregate before its appender moves to a new one.
pub const COMMANDS_PER_AGGREGATE: usize = 10;

/// The line item in every bench event's payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// The menu item ordered.
    pub menu_item_id: String,
    /// Its name.
    pub name: String,
    /// How many.
    pub quantity: u32,
    /// Price of one, in cents.
    pub price_cents: i64,
}

impl Line {
    /// The one line every revision carries.
    pub fn vindaloo() -> Self {
        Self {
            menu_item_id: "m-7".into(),
            name: "Chicken Vindaloo".into(),
            quantity: 2,
            price_cents: 1250,
        }
    }
}

/// Runs `appenders` tasks for `time`, each calling `command(appender, aggregate)` one after
/// another, where `aggregate` counts up every [`COMMANDS_PER_AGGREGATE`] commands; each command
/// appends `k` events. One latency per command; the rate counts events.
pub async fn run_commands<F, Fut>(appenders: usize, k: usize, time: Duration, command: F) -> Sample
where
    F: Fn(usize, usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let deadline = Instant::now() + time;
    let started = Instant::now();
    let tasks: Vec<_> = (0..appenders)
        .map(|w| {
            let command = command.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = 0usize;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    command(w, n / COMMANDS_PER_AGGREGATE).await;
                    latencies.push(t.elapsed());
                    n += 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("a bench task panicked"));
    }
    Sample {
        events: latencies.len() * k,
        latencies,
        elapsed: started.elapsed(),
    }
}

/// Runs `load` one after another for `time`; one latency per load, and the rate counts loads.
pub async fn timed_loads<F, Fut>(time: Duration, load: F) -> Sample
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let started = Instant::now();
    let mut latencies = Vec::new();
    while started.elapsed() < time {
        let t = Instant::now();
        load().await;
        latencies.push(t.elapsed());
    }
    Sample {
        events: latencies.len(),
        latencies,
        elapsed: started.elapsed(),
    }
}

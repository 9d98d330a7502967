//! Shared by annals' bench targets: the harness's samples and rows, the payload and an append loop.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use annals::{EventStore, ExpectedVersion, NewEvent, StreamId};

pub(crate) use annals_bench_harness::{Sample, header, row, secs};

pub(crate) fn payload() -> serde_json::Value {
    serde_json::json!({ "line_items": [{ "menu_item_id": "m-7", "name": "Chicken Vindaloo", "quantity": 2, "price_cents": 1250 }], "total_cents": 2500 })
}

/// Appends through annals: `appenders` tasks, each on its own stream, `batch` events per call with
/// `ExpectedVersion::Exact`, for `time`.
pub(crate) async fn bench_append<S: EventStore + Clone + 'static>(
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

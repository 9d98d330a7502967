//! Relay benchmarks (PostgreSQL → NATS JetStream → a durable consumer), for both sources:
//! polling the global log and tailing the transaction log.
//!
//! - End-to-end latency, from the moment an append returned (committed) to the consumer's handler
//!   receiving the event, p50/p99: at a steady 1 000 events/s (one event per append, one per
//!   millisecond) and at full speed (16 appenders × 10 events per append).
//! - Relay throughput (events/s from the relay's cursor), beside a raw baseline in the same run:
//!   the same messages (subject, headers, payload) published straight to JetStream, pipelined in
//!   batches of 500, with no store in between.
//!
//! Run: `cargo bench -p annals-benches --bench relay` (`ANNALS_BENCH_SECS` per phase, default 2;
//! PostgreSQL from `ANNALS_TEST_PG`, NATS at 127.0.0.1:4222). Everything runs in a fresh schema
//! and JetStream stream, removed at the end.

#[path = "report.rs"]
mod report;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use annals::consume::{Checkpoints, EventHandler};
use annals::error::BoxError;
use annals::relay::{Publisher, Relay};
use annals::{EventStore, ExpectedVersion, MemoryStore, NewEvent, RecordedEvent, StreamId};
use annals_nats::{ConsumerOptions, NatsConsumer, NatsOptions, NatsPublisher};
use annals_postgres::PostgresStore;
use annals_postgres::tail::TailRelay;
use report::{Sample, header, payload, row, secs};

/// When each event's append returned, and when its handler saw it (the first time).
#[derive(Clone, Default)]
struct Clock {
    committed: Arc<Mutex<HashMap<uuid::Uuid, Instant>>>,
    seen: Arc<Mutex<HashMap<uuid::Uuid, Instant>>>,
}

impl EventHandler for Clock {
    async fn handle(&mut self, event: &RecordedEvent) -> Result<(), BoxError> {
        let now = Instant::now();
        self.seen.lock().unwrap().entry(event.event_id).or_insert(now);
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
enum Source {
    Poll,
    Tail,
}

fn start_relay(source: Source, store: &PostgresStore, publisher: NatsPublisher) -> tokio::task::JoinHandle<()> {
    let store = store.clone();
    tokio::spawn(async move {
        match source {
            Source::Poll => {
                let mut r = Relay::new("bench", store, publisher).with_batch(500);
                r.run(std::future::pending()).await.unwrap();
            }
            Source::Tail => {
                let mut r = TailRelay::new("bench", store, publisher);
                r.run(std::future::pending()).await.unwrap();
            }
        };
    })
}

fn start_named_relay(name: &str, store: &PostgresStore, publisher: NatsPublisher) -> tokio::task::JoinHandle<()> {
    let (name, store) = (name.to_owned(), store.clone());
    tokio::spawn(async move {
        let mut r = Relay::new(name, store, publisher).with_batch(500);
        r.run(std::future::pending()).await.unwrap();
    })
}

/// Appends one event per millisecond for `time`, noting when each append returned.
async fn steady(store: &PostgresStore, clock: &Clock, time: Duration) -> usize {
    let value = serde_json::value::to_raw_value(&payload()).unwrap();
    let id = StreamId::new(format!("steady-{}", uuid::Uuid::now_v7().simple())).unwrap();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let deadline = Instant::now() + time;
    let mut n = 0;
    while Instant::now() < deadline {
        tick.tick().await;
        let e = NewEvent::new("OrderRevised", value.clone());
        let event_id = e.event_id;
        store
            .append_to_stream(id.clone(), "Order", ExpectedVersion::Any, vec![e])
            .await
            .unwrap();
        clock.committed.lock().unwrap().insert(event_id, Instant::now());
        n += 1;
    }
    n
}

/// 16 appenders × 10 events per append, as fast as they go, for `time`.
async fn full_speed(store: &PostgresStore, clock: &Clock, time: Duration) -> usize {
    let deadline = Instant::now() + time;
    let mut tasks = Vec::new();
    for w in 0..16 {
        let (store, clock) = (store.clone(), clock.clone());
        tasks.push(tokio::spawn(async move {
            let value = serde_json::value::to_raw_value(&payload()).unwrap();
            let id = StreamId::new(format!("full-{w}-{}", uuid::Uuid::now_v7().simple())).unwrap();
            let mut n = 0;
            while Instant::now() < deadline {
                let events: Vec<NewEvent> = (0..10).map(|_| NewEvent::new("OrderRevised", value.clone())).collect();
                let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.event_id).collect();
                store
                    .append_to_stream(id.clone(), "Order", ExpectedVersion::Any, events)
                    .await
                    .unwrap();
                let now = Instant::now();
                let mut c = clock.committed.lock().unwrap();
                for i in ids {
                    c.insert(i, now);
                }
                n += 10;
            }
            n
        }));
    }
    let mut n = 0;
    for t in tasks {
        n += t.await.unwrap();
    }
    n
}

async fn wait_for_cursor(store: &PostgresStore, position: u64) -> Instant {
    wait_for_cursor_of(store, "relay.bench", position).await
}

async fn wait_for_cursor_of(store: &PostgresStore, cursor: &str, position: u64) -> Instant {
    loop {
        if store.load_checkpoint(cursor).await.unwrap().unwrap_or(0) >= position {
            return Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Waits until the handler saw every committed event (up to 30 s), then returns each one's
/// latency (0 if the handler ran before the appender noted the commit) and forgets them.
async fn wait_seen(clock: &Clock, n: usize) -> Vec<Duration> {
    for _ in 0..3000 {
        let all = {
            let (c, s) = (clock.committed.lock().unwrap(), clock.seen.lock().unwrap());
            c.len() >= n && c.keys().all(|k| s.contains_key(k))
        };
        if all {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let committed = std::mem::take(&mut *clock.committed.lock().unwrap());
    let seen = std::mem::take(&mut *clock.seen.lock().unwrap());
    committed
        .iter()
        .filter_map(|(id, c)| seen.get(id).map(|s| s.saturating_duration_since(*c)))
        .collect()
}

/// Raw baseline: the same messages published straight to JetStream, 500 at a time.
async fn raw_publish(publisher: &NatsPublisher, events: &[RecordedEvent]) -> Duration {
    let started = Instant::now();
    for chunk in events.chunks(500) {
        publisher.publish(chunk).await.unwrap();
    }
    started.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let sync: String;
    {
        let (store, _g) = annals_postgres::testing::fresh().await;
        let c = store.client().await.unwrap();
        sync = c.query_one("SHOW synchronous_commit", &[]).await.unwrap().get(0);
    }
    println!(
        "annals relay benchmarks — PostgreSQL synchronous_commit={sync}, NATS JetStream file storage on loopback; {:?} per phase; {} cores",
        secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    header(
        "End-to-end latency: append returned → consumer handler (events/s = events appended ÷ phase time)",
        "events/s",
    );
    let mut throughput = Vec::new();
    for source in [Source::Poll, Source::Tail] {
        let (store, _guard) = annals_postgres::testing::fresh_with_pool(20).await;
        let id = uuid::Uuid::now_v7().simple().to_string();
        let options = NatsOptions::new("nats://127.0.0.1:4222").with_names(format!("BENCH{id}"), format!("bench{id}"));
        let js = annals_nats::connect(&options).await.unwrap();
        let clock = Clock::default();
        let consumer = NatsConsumer::new(
            js.clone(),
            options.clone(),
            ConsumerOptions::new("clock"),
            clock.clone(),
            Arc::new(MemoryStore::new()),
        );
        let consuming = tokio::spawn(async move { consumer.run(std::future::pending()).await.unwrap() });
        let publisher = NatsPublisher::connect(&options).await.unwrap();
        let mut relay = start_relay(source, &store, publisher.clone());
        tokio::time::sleep(Duration::from_millis(500)).await;

        let started = Instant::now();
        let n = steady(&store, &clock, secs()).await;
        let elapsed = started.elapsed();
        let latencies = wait_seen(&clock, n).await;
        row(
            &format!("{source:?}, steady 1 000 events/s ({} of {n} seen)", latencies.len()),
            &Sample {
                events: n,
                latencies,
                elapsed,
            },
            None,
        );

        let started = Instant::now();
        let n = full_speed(&store, &clock, secs()).await;
        let elapsed = started.elapsed();
        let head = store.head_position().await.unwrap();
        let drained = wait_for_cursor(&store, head).await;
        let latencies = wait_seen(&clock, n).await;
        row(
            &format!("{source:?}, full speed 16 × 10 ({} of {n} seen)", latencies.len()),
            &Sample {
                events: n,
                latencies,
                elapsed,
            },
            None,
        );
        // The relay's throughput during the full-speed phase: everything appended, published.
        let relay_time = drained - started;
        throughput.push((format!("{source:?}, during the full-speed appends"), n, relay_time));
        if matches!(source, Source::Poll) {
            // A backlog: the relay is down while 50 000 events are appended, then drains them.
            relay.abort();
            let _ = (&mut relay).await;
            let before = store.head_position().await.unwrap();
            full_speed_until(&store, before + 50_000).await;
            let head = store.head_position().await.unwrap();
            // A relay of another name (its own lease, nothing to wait for) from the same cursor.
            store.save_checkpoint("relay.backlog", before).await.unwrap();
            let started = Instant::now();
            relay = start_named_relay("backlog", &store, publisher.clone());
            let drained = wait_for_cursor_of(&store, "relay.backlog", head).await;
            throughput.push((
                format!("{source:?}, draining a backlog"),
                (head - before) as usize,
                drained - started,
            ));
            clock.committed.lock().unwrap().clear();
            clock.seen.lock().unwrap().clear();
        }

        if matches!(source, Source::Tail) {
            // Raw baseline with the same messages, on the same broker.
            let events = store.read_all(0, 50_000).await.unwrap();
            let raw_opts = NatsOptions::new("nats://127.0.0.1:4222").with_names(format!("RAW{id}"), format!("raw{id}"));
            let raw = NatsPublisher::connect(&raw_opts).await.unwrap();
            let t = raw_publish(&raw, &events).await;
            let raw_rate = events.len() as f64 / t.as_secs_f64();
            header(
                "Relay throughput during the full-speed phase (events appended ÷ time until the relay's cursor reached them) vs raw JetStream publish",
                "events/s",
            );
            let raw_sample = Sample {
                events: events.len(),
                latencies: vec![t],
                elapsed: t,
            };
            row(
                &format!("raw JetStream publish, {} events, batches of 500", events.len()),
                &raw_sample,
                None,
            );
            for (what, n, time) in &throughput {
                let sample = Sample {
                    events: *n,
                    latencies: vec![*time],
                    elapsed: *time,
                };
                row(&format!("relay {what}, {n} events"), &sample, Some(raw_rate));
            }
            let _ = js.delete_stream(&raw_opts.stream).await;
        }
        relay.abort();
        consuming.abort();
        let _ = js.delete_stream(&options.stream).await;
    }
}

/// Appends (16 appenders × 10 events) until the head reaches `target`, without timing anything.
async fn full_speed_until(store: &PostgresStore, target: u64) {
    let value = serde_json::value::to_raw_value(&payload()).unwrap();
    let mut tasks = Vec::new();
    for w in 0..16 {
        let (store, value) = (store.clone(), value.clone());
        tasks.push(tokio::spawn(async move {
            let id = StreamId::new(format!("backlog-{w}")).unwrap();
            while store.head_position().await.unwrap() < target {
                let events: Vec<NewEvent> = (0..10).map(|_| NewEvent::new("OrderRevised", value.clone())).collect();
                store
                    .append_to_stream(id.clone(), "Order", ExpectedVersion::Any, events)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

//! Create Order saga benchmarks: completed sagas/s and p50/p99 saga duration (from the
//! `SagaStarted` to the last event of the saga, as recorded by the store), on
//!
//! - SQLite, in one process: the four services and the orchestrator as subscriptions on one
//!   store (`synchronous=FULL`, the default);
//! - PostgreSQL + NATS JetStream: four schemas, one per service, each with its relay and its
//!   durable consumers ([`ftgo::over_nats::serve`]), all in this process.
//!
//! Each backend runs at a steady 50 sagas/s (latency without queueing), then at full speed with
//! 64 sagas in flight (64 clients, each placing an order when its last one's saga ended), then
//! with 128 in flight (capacity: the cores busy rather than waiting), each for
//! `ANNALS_BENCH_SECS` (default 2; `ANNALS_BENCH_IN_FLIGHT` sets the 64, the capacity phase
//! runs twice as many); throughput = sagas ended ÷ time from the first order to
//! the last saga's end. Beside each, a raw baseline in the same
//! run: the saga's eleven transactions (one to start it, one per participant's reply, one per
//! orchestrator step) as plain single-row INSERT transactions on the same database with the same
//! durability, four writers — the I/O floor of a saga with no framework.
//!
//! Run: `cargo bench -p annals-benches --bench saga` (PostgreSQL from `ANNALS_TEST_PG`, NATS at
//! 127.0.0.1:4222; `ANNALS_BENCH_ONLY=sqlite|postgres`).

#[path = "report.rs"]
mod report;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;

use annals::{EventStore, Metadata, StreamId};
use annals_nats::NatsOptions;
use annals_postgres::{PostgresOptions, PostgresStore};
use annals_sqlite::SqliteStore;
use ftgo::create_order::saga_id;
use ftgo::in_process::{self, register_consumer};
use ftgo::order::LineItem;
use ftgo::over_nats::{self, Service};
use ftgo::services::OrderService;
use report::{Sample, header, row, secs};

/// Transactions one Create Order saga commits: start, then five commands each answered by a
/// participant and handled by the orchestrator.
const TX_PER_SAGA: usize = 11;
const CONSUMERS: usize = 64;
/// Writers of the raw baselines.
const CLIENTS: usize = 4;
/// Sagas in flight at full speed (`ANNALS_BENCH_IN_FLIGHT`, default 64): as many clients, each
/// placing an order when its last one's saga ended.
fn in_flight() -> usize {
    std::env::var("ANNALS_BENCH_IN_FLIGHT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64)
}

fn lines() -> Vec<LineItem> {
    vec![LineItem::new("m-7", "Chicken Vindaloo", 2, 1_250)]
}

/// When a saga started and, once it has, ended.
type StartEnd = (SystemTime, Option<SystemTime>);

/// Follows `store`'s log: records when each saga started and ended (as the store recorded
/// them) and tells each waiter when its saga ends.
#[derive(Clone, Default)]
struct Endings {
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<()>>>>,
    times: Arc<Mutex<HashMap<String, StartEnd>>>,
}

impl Endings {
    /// Follows from position `from` on.
    fn follow<St: EventStore + 'static>(&self, store: St, from: u64) -> tokio::task::JoinHandle<()> {
        let (waiting, times) = (Arc::clone(&self.waiting), Arc::clone(&self.times));
        tokio::spawn(async move {
            let mut at = from;
            loop {
                let page = store.read_all(at, 1000).await.unwrap();
                for e in &page {
                    match e.event_type.as_str() {
                        "SagaStarted" => {
                            times
                                .lock()
                                .unwrap()
                                .insert(e.stream_id.to_string(), (e.recorded_at, None));
                        }
                        "SagaCompleted" | "SagaFailed" => {
                            assert_eq!(e.event_type, "SagaCompleted", "{} failed", e.stream_id);
                            if let Some(t) = times.lock().unwrap().get_mut(e.stream_id.as_str()) {
                                t.1 = Some(e.recorded_at);
                            }
                            if let Some(tx) = waiting.lock().unwrap().remove(e.stream_id.as_str()) {
                                let _ = tx.send(());
                            }
                        }
                        _ => {}
                    }
                }
                match page.last() {
                    Some(last) => at = last.global_position,
                    None => {
                        store.wait_for_new(at, Duration::from_millis(100)).await.unwrap();
                    }
                }
            }
        })
    }

    fn expect(&self, saga: &StreamId) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().unwrap().insert(saga.to_string(), tx);
        rx
    }

    /// The sagas' durations, and when the last one ended.
    fn durations(&self, ids: &[StreamId]) -> (Vec<Duration>, SystemTime) {
        let times = self.times.lock().unwrap();
        let mut durations = Vec::with_capacity(ids.len());
        let mut last_end = SystemTime::UNIX_EPOCH;
        for id in ids {
            let (start, end) = times[id.as_str()];
            let end = end.expect("the saga ended");
            durations.push(end.duration_since(start).unwrap_or_default());
            last_end = last_end.max(end);
        }
        (durations, last_end)
    }
}

/// Places orders `tag-<client>-<n>` for `time`: `clients` tasks, each placing one order every
/// `pace`, or (without a pace) placing one and waiting for its saga to end before the next.
/// Returns the saga ids once every saga has ended.
async fn place<St: EventStore + Clone + 'static>(
    orders: &Arc<OrderService<St>>,
    endings: &Endings,
    tag: &str,
    clients: usize,
    pace: Option<Duration>,
    time: Duration,
) -> Vec<StreamId> {
    let deadline = Instant::now() + time;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let orders = Arc::clone(orders);
        let tag = format!("{tag}-{c}");
        let endings = endings.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            let mut ends = Vec::new();
            let mut next = Instant::now();
            while Instant::now() < deadline {
                let order = format!("{tag}-{}", ids.len());
                let consumer = format!("c-{}", (ids.len() * clients + c) % CONSUMERS);
                let saga = saga_id(&order).unwrap();
                let end = endings.expect(&saga);
                orders
                    .create_order(
                        &StreamId::new(order.as_str()).unwrap(),
                        &consumer,
                        "ajanta",
                        lines(),
                        &Metadata::by("bench"),
                    )
                    .await
                    .unwrap();
                ids.push(saga);
                match pace {
                    Some(pace) => {
                        ends.push(end);
                        next += pace;
                        tokio::time::sleep_until(next.into()).await;
                    }
                    None => end.await.unwrap(),
                }
            }
            for end in ends {
                end.await.unwrap();
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    ids
}

/// One phase: place orders, wait for their sagas; sagas/s and durations.
async fn phase<St: EventStore + Clone + 'static>(
    store: &St,
    orders: &Arc<OrderService<St>>,
    tag: &str,
    clients: usize,
    pace: Option<Duration>,
) -> Sample {
    let endings = Endings::default();
    let from = store.head_position().await.unwrap();
    let follower = endings.follow(store.clone(), from);
    let started = SystemTime::now();
    let ids = place(orders, &endings, tag, clients, pace, secs()).await;
    follower.abort();
    let (latencies, last_end) = endings.durations(&ids);
    Sample {
        events: ids.len(),
        latencies,
        elapsed: last_end.duration_since(started).unwrap_or(Duration::from_millis(1)),
    }
}

async fn register_all<St: annals::privacy::AppendWithKeys + Clone>(consumers: &St, accounts: &St) {
    for i in 0..CONSUMERS {
        let id = format!("c-{i}");
        // The consumer goes to the Consumer Service's store, the account to Accounting's.
        register_consumer(consumers, &id, "bench", 1_000_000, 1_000_000)
            .await
            .unwrap();
        if !std::ptr::eq(consumers, accounts) {
            register_consumer(accounts, &id, "bench", 1_000_000, 1_000_000)
                .await
                .unwrap();
        }
    }
}

// ---------- raw baselines: the saga's transactions as plain INSERTs ----------

fn raw_sqlite(path: std::path::PathBuf, time: Duration) -> Sample {
    let setup = rusqlite::Connection::open(&path).unwrap();
    setup
        .execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE IF NOT EXISTS t (id BLOB PRIMARY KEY, stream TEXT, body TEXT);",
        )
        .unwrap();
    let deadline = Instant::now() + time;
    let started = Instant::now();
    let writers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || {
                let conn = rusqlite::Connection::open(&path).unwrap();
                conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;")
                    .unwrap();
                let body = report::payload().to_string();
                let mut n = 0usize;
                while Instant::now() < deadline {
                    conn.execute(
                        "INSERT INTO t VALUES (?1, 'saga', ?2)",
                        rusqlite::params![&uuid::Uuid::now_v7().as_bytes()[..], body],
                    )
                    .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let tx: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
    Sample {
        events: tx / TX_PER_SAGA,
        latencies: Vec::new(),
        elapsed: started.elapsed(),
    }
}

async fn raw_postgres(schema: &str, time: Duration) -> Sample {
    let mut config: tokio_postgres::Config = annals_postgres::testing::url().parse().unwrap();
    config.options(format!("-c search_path={schema}"));
    let deadline = Instant::now() + time;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..CLIENTS {
        let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        if w == 0 {
            client
                .batch_execute("CREATE TABLE IF NOT EXISTS raw_saga (id uuid PRIMARY KEY, stream text, body jsonb)")
                .await
                .unwrap();
        }
        tasks.push(tokio::spawn(async move {
            let stmt = client
                .prepare("INSERT INTO raw_saga VALUES ($1, 'saga', $2::text::jsonb)")
                .await
                .unwrap();
            let body = report::payload().to_string();
            let mut n = 0usize;
            while Instant::now() < deadline {
                client.execute(&stmt, &[&uuid::Uuid::now_v7(), &body]).await.unwrap();
                n += 1;
            }
            n
        }));
    }
    let mut tx = 0;
    for t in tasks {
        tx += t.await.unwrap();
    }
    Sample {
        events: tx / TX_PER_SAGA,
        latencies: Vec::new(),
        elapsed: started.elapsed(),
    }
}

/// The sagas in flight of the capacity phase: twice the full-speed phase's, so the two cores
/// are busy rather than waiting on commits and hops.
fn capacity_in_flight() -> usize {
    in_flight() * 2
}

fn report_pair(name: &str, [steady, full, capacity]: [&Sample; 3], raw: &Sample) {
    row(&format!("{name}: steady 50 sagas/s"), steady, None);
    row(&format!("{name}: {} in flight", in_flight()), full, Some(raw.rate()));
    row(
        &format!("{name}: {} in flight", capacity_in_flight()),
        capacity,
        Some(raw.rate()),
    );
    row(&format!("raw: {TX_PER_SAGA} INSERT transactions per saga"), raw, None);
}

async fn sqlite(dir: &std::path::Path) {
    let store = SqliteStore::open(dir.join("saga.db")).await.unwrap();
    register_all(&store, &store).await;
    // Orders are placed through the order service that runs the sagas, as its API would.
    let orders = Arc::new(OrderService::new(store.clone()));
    let services = in_process::spawn_with_orders(&store, Arc::clone(&orders));
    let steady = phase(&store, &orders, "steady", 4, Some(Duration::from_millis(80))).await;
    let full = phase(&store, &orders, "full", in_flight(), None).await;
    let capacity = phase(&store, &orders, "capacity", capacity_in_flight(), None).await;
    services.stop().await.unwrap();
    let raw = raw_sqlite(dir.join("raw.db"), secs());
    report_pair("SQLite in-process", [&steady, &full, &capacity], &raw);
}

async fn postgres() {
    let tag = annals_postgres::testing::unique_schema("sagabench");
    let options = NatsOptions::new("nats://127.0.0.1:4222").with_names(format!("S{tag}"), format!("p{tag}"));
    let mut stores = Vec::new();
    let mut guards = Vec::new();
    for s in Service::ALL {
        let schema = format!("{tag}_{}", s.name());
        let pg = PostgresOptions {
            schema: schema.clone(),
            ..PostgresOptions::default()
        };
        stores.push(
            PostgresStore::connect_with(&annals_postgres::testing::url(), pg)
                .await
                .unwrap(),
        );
        guards.push(annals_postgres::testing::SchemaGuard { schema });
    }
    register_all(&stores[1], &stores[3]).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut running = Vec::new();
    // Orders are placed through the order service that runs the sagas, as its API would.
    let orders = Arc::new(OrderService::new(stores[0].clone()));
    for (s, store) in Service::ALL.into_iter().zip(&stores) {
        let (store, options, rx) = (store.clone(), options.clone(), stop_rx.clone());
        let orders = Arc::clone(&orders);
        running.push(tokio::spawn(async move {
            let stop = move || {
                let mut rx = rx.clone();
                async move {
                    let _ = rx.wait_for(|s| *s).await;
                }
            };
            let served = match s {
                Service::Order => over_nats::serve_orders(store, orders, options, Duration::from_secs(5), stop).await,
                _ => over_nats::serve(store, s, options, Duration::from_secs(5), stop).await,
            };
            served.unwrap();
        }));
    }
    let order = &stores[0];
    let steady = phase(order, &orders, "steady", 4, Some(Duration::from_millis(80))).await;
    let full = phase(order, &orders, "full", in_flight(), None).await;
    let capacity = phase(order, &orders, "capacity", capacity_in_flight(), None).await;
    let _ = stop_tx.send(true);
    for r in running {
        r.await.unwrap();
    }
    let raw = raw_postgres(&format!("{tag}_order"), secs()).await;
    report_pair("PostgreSQL + NATS, 4 services", [&steady, &full, &capacity], &raw);
    if let Ok(client) = async_nats::connect("nats://127.0.0.1:4222").await {
        let _ = async_nats::jetstream::new(client).delete_stream(&options.stream).await;
    }
    drop(guards);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let only = std::env::var("ANNALS_BENCH_ONLY").unwrap_or_default();
    let dir = tempfile::tempdir().unwrap();
    println!(
        "annals saga benchmarks — the FTGO Create Order saga; {:?} per phase; {} cores",
        secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    header(
        "Create Order sagas (sagas/s; p50/p99 saga duration; ratio = annals ÷ raw, same run)",
        "sagas/s",
    );
    if only != "postgres" {
        sqlite(dir.path()).await;
    }
    if only != "sqlite" {
        postgres().await;
    }
}

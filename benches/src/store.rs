//! Store benchmarks: appends and aggregate loads on the in-memory and SQLite stores, each SQLite
//! figure beside a raw `rusqlite` baseline doing the same I/O with the same `synchronous`
//! setting in the same run.
//!
//! Run: `cargo bench -p annals-benches --bench store` (set `ANNALS_BENCH_SECS` to change the time
//! spent per case, default 2; `ANNALS_BENCH_SYNC=normal` for `synchronous=NORMAL`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use annals::{EventStore, ExpectedVersion, MemoryStore, Metadata, NewEvent, Repository, SnapshotPolicy, StreamId};
use annals_sqlite::{SqliteOptions, SqliteStore, Synchronous};
use ftgo::order::{LineItem, Order, OrderCommand, OrderEvent};

#[path = "report.rs"]
mod report;

use report::{Sample, bench_append, header, payload, row, secs};

fn sync_setting() -> Synchronous {
    match std::env::var("ANNALS_BENCH_SYNC").as_deref() {
        Ok("normal") => Synchronous::Normal,
        Ok("off") => Synchronous::Off,
        _ => Synchronous::Full,
    }
}

fn sync_pragma(s: Synchronous) -> &'static str {
    match s {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
        _ => "OFF",
    }
}

// ---------- the raw rusqlite baseline ----------

fn raw_db(path: &Path, sync: Synchronous) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {}; PRAGMA busy_timeout = 10000;",
        sync_pragma(sync)
    ))
    .unwrap();
    conn.execute_batch(include_str!("../../crates/annals-sqlite/sql/events.sql"))
        .ok();
    conn
}

/// Plain INSERTs, one transaction per append, no version check: the floor of SQLite's cost.
fn raw_append(
    path: PathBuf,
    sync: Synchronous,
    appenders: usize,
    batch: usize,
    time: Duration,
    round: usize,
) -> Sample {
    drop(raw_db(&path, sync));
    let deadline = Instant::now() + time;
    let started = Instant::now();
    let threads: Vec<_> = (0..appenders)
        .map(|w| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut conn = raw_db(&path, sync);
                let value = payload().to_string();
                let meta = Metadata::default().to_json();
                let mut version = 0i64;
                let mut lat = Vec::new();
                let stream = format!("raw-{round}-{w}");
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
                    {
                        let mut insert = tx
                            .prepare_cached(
                                "INSERT INTO events (stream_id, stream_type, version, event_id, event_type, schema_version, payload, metadata, recorded_at)
                                 VALUES (?1, 'Order', ?2, ?3, 'OrderRevised', 1, ?4, ?5, ?6)",
                            )
                            .unwrap();
                        for _ in 0..batch {
                            version += 1;
                            let id = uuid::Uuid::now_v7();
                            insert.execute(rusqlite::params![stream, version, &id.as_bytes()[..], value, meta, 0i64]).unwrap();
                        }
                    }
                    tx.commit().unwrap();
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in threads {
        latencies.extend(t.join().unwrap());
    }
    let elapsed = started.elapsed();
    Sample {
        events: latencies.len() * batch,
        latencies,
        elapsed,
    }
}

// ---------- loads ----------

/// Builds an Order stream of `len` events; with `snapshot`, the last command stores a snapshot.
async fn build_order<S: EventStore + Clone>(store: &S, id: &StreamId, len: u64, snapshot: bool) {
    let lines = vec![LineItem::new("m-7", "Chicken Vindaloo", 2, 1_250)];
    let created = OrderEvent::OrderCreated {
        consumer_id: "c-1".into(),
        restaurant_id: "r-1".into(),
        line_items: lines.clone(),
        total_cents: 2_500,
    };
    let revised = OrderEvent::OrderRevised {
        line_items: lines.clone(),
        total_cents: 2_500,
    };
    let encode = |e: &OrderEvent| {
        let (t, v, p) = annals::encode(e).unwrap();
        NewEvent::new(t, p).with_schema_version(v)
    };
    let mut version = 0;
    while version < len - 1 {
        let n = (len - 1 - version).min(500);
        let events = (0..n)
            .map(|i| {
                if version + i == 0 {
                    encode(&created)
                } else {
                    encode(&revised)
                }
            })
            .collect();
        let expected = if version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(version)
        };
        version = store
            .append_to_stream(id.clone(), "Order", expected, events)
            .await
            .unwrap()
            .last_version;
    }
    let policy = if snapshot {
        SnapshotPolicy::When(Arc::new(|_: &Order, _| true))
    } else {
        SnapshotPolicy::Never
    };
    let repo = Repository::<Order, _>::new(store.clone()).with_snapshots(policy);
    repo.execute(id, &OrderCommand::Revise { line_items: lines }, &Metadata::default())
        .await
        .unwrap();
}

async fn bench_load<S: EventStore + Clone>(store: &S, id: &StreamId, snapshot: bool) -> Sample {
    let repo = Repository::<Order, _>::new(store.clone());
    let repo = if snapshot {
        repo.with_snapshots(SnapshotPolicy::Never)
    } else {
        repo
    };
    let deadline = Instant::now() + secs() / 2;
    let started = Instant::now();
    let mut latencies = Vec::new();
    while Instant::now() < deadline || latencies.len() < 5 {
        let t = Instant::now();
        let loaded = repo.load(id).await.unwrap();
        latencies.push(t.elapsed());
        assert_eq!(loaded.from_snapshot.is_some(), snapshot);
    }
    Sample {
        events: latencies.len(),
        latencies,
        elapsed: started.elapsed(),
    }
}

/// Raw load: SELECT the stream's payloads and fold them with serde, no framework.
fn raw_load(path: &Path, stream: &str) -> Sample {
    let conn = rusqlite::Connection::open(path).unwrap();
    let deadline = Instant::now() + secs() / 2;
    let started = Instant::now();
    let mut latencies = Vec::new();
    while Instant::now() < deadline || latencies.len() < 5 {
        let t = Instant::now();
        let mut stmt = conn
            .prepare_cached("SELECT event_type, payload FROM events WHERE stream_id = ?1 ORDER BY version")
            .unwrap();
        let mut rows = stmt.query([stream]).unwrap();
        let mut order = Order::default();
        while let Some(r) = rows.next().unwrap() {
            let ty: String = r.get(0).unwrap();
            let p: String = r.get(1).unwrap();
            let e: OrderEvent = serde_json::from_str(&format!("{{\"{ty}\":{p}}}")).unwrap();
            annals::Aggregate::apply(&mut order, &e);
        }
        latencies.push(t.elapsed());
    }
    Sample {
        events: latencies.len(),
        latencies,
        elapsed: started.elapsed(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let only_loads = std::env::var("ANNALS_BENCH_ONLY").as_deref() == Ok("load");
    let sync = sync_setting();
    let dir = tempfile::tempdir().unwrap();
    println!(
        "annals store benchmarks — SQLite synchronous={}, WAL; {:?} per case; {} cores",
        sync_pragma(sync),
        secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    header(
        "Appends (events/s; latency per append call; ratio = annals ÷ raw rusqlite, same run)",
        "events/s",
    );
    let mut n = 0;
    let only_one = std::env::var("ANNALS_BENCH_ONLY").as_deref() == Ok("append1");
    for appenders in if only_loads {
        vec![]
    } else if only_one {
        vec![1]
    } else {
        vec![1usize, 16]
    } {
        for batch in if only_one { vec![1usize] } else { vec![1usize, 10, 100] } {
            n += 1;
            // Rounds alternate the raw baseline and annals so drift in the machine hits both alike.
            let rounds = 4;
            let slice = secs() / rounds as u32;
            let options = SqliteOptions {
                synchronous: sync,
                ..SqliteOptions::default()
            };
            let sqlite = SqliteStore::open_with(dir.path().join(format!("annals-{n}.db")), options)
                .await
                .unwrap();
            let (mut raw, mut raw1, mut ours) = (Sample::empty(), Sample::empty(), Sample::empty());
            for r in 0..rounds {
                raw.add(raw_append(
                    dir.path().join(format!("raw-{n}.db")),
                    sync,
                    appenders,
                    batch,
                    slice,
                    r,
                ));
                if appenders > 1 {
                    raw1.add(raw_append(
                        dir.path().join(format!("raw1-{n}.db")),
                        sync,
                        1,
                        batch,
                        slice,
                        r,
                    ));
                }
                ours.add(bench_append(sqlite.clone(), appenders, batch, &format!("s{n}-{r}"), slice).await);
            }
            let raw1 = (appenders > 1).then_some(raw1);
            let mem = bench_append(Arc::new(MemoryStore::new()), appenders, batch, &format!("m{n}"), secs()).await;
            let label = format!("{appenders} appender(s) × {batch} event(s)/append");
            row(&format!("raw rusqlite, {label}"), &raw, None);
            row(&format!("annals-sqlite, {label}"), &ours, Some(raw.rate()));
            if let Some(raw1) = raw1 {
                row(&format!("  vs raw rusqlite with 1 appender × {batch}"), &raw1, None);
                println!(
                    "| {:<44} | {:>10} | {:>9} | {:>9} | {:>6.2}× |",
                    "  annals-sqlite ÷ raw 1-appender",
                    "",
                    "",
                    "",
                    ours.rate() / raw1.rate()
                );
            }
            row(&format!("annals in-memory, {label}"), &mem, None);
        }
    }

    if only_one {
        return;
    }
    header(
        "Aggregate load (loads/s of one Order; ratio = annals ÷ raw SELECT + serde fold)",
        "loads/s",
    );
    let options = SqliteOptions {
        synchronous: sync,
        ..SqliteOptions::default()
    };
    let path = dir.path().join("load.db");
    let sqlite = SqliteStore::open_with(&path, options).await.unwrap();
    let mem = Arc::new(MemoryStore::new());
    let mut ten_plain = None;
    // Build every stream first, so every load runs against the same database and WAL state.
    let cases: Vec<(u64, bool)> = [10u64, 1_000, 10_000]
        .into_iter()
        .flat_map(|l| [(l, false), (l, true)])
        .collect();
    let id_of = |len: u64, snapshot: bool| {
        StreamId::new(format!("order-{len}-{}", if snapshot { "snap" } else { "plain" })).unwrap()
    };
    for &(len, snapshot) in &cases {
        build_order(&sqlite, &id_of(len, snapshot), len, snapshot).await;
        build_order(&mem, &id_of(len, snapshot), len, snapshot).await;
    }
    for &(len, snapshot) in &cases {
        let id = id_of(len, snapshot);
        let raw = raw_load(&path, id.as_str());
        let ours = bench_load(&sqlite, &id, snapshot).await;
        let m = bench_load(&mem, &id, snapshot).await;
        let label = format!(
            "{len} events, {}",
            if snapshot { "fresh snapshot" } else { "no snapshot" }
        );
        if !snapshot {
            row(&format!("raw SELECT + fold, {label}"), &raw, None);
        }
        row(
            &format!("annals-sqlite, {label}"),
            &ours,
            if snapshot { None } else { Some(raw.rate()) },
        );
        row(&format!("annals in-memory, {label}"), &m, None);
        if len == 10 && !snapshot {
            ten_plain = Some(ours.pct(0.5));
        }
        if snapshot && let Some(ten) = ten_plain {
            println!(
                "| {:<44} | {:>10} | {:>9} | {:>9} | {:>6.2}× |",
                "  p50 ÷ p50 of the 10-event load (sqlite)",
                "",
                "",
                "",
                ours.pct(0.5).as_secs_f64() / ten.as_secs_f64()
            );
        }
    }
}

//! PostgreSQL benchmarks, each beside a raw baseline on the same server in the same run:
//!
//! - appends (1, 10, 100 events per call; 1 and 16 concurrent appenders) through annals
//!   (optimistic locking + the gap-free log) vs the same rows as one plain multi-row `INSERT` per
//!   append (prepared, one round trip, no version check, no ordering), and vs that INSERT behind
//!   one global advisory lock (the simple gap-free remedy), and (16 × 10) while another session
//!   holds a transaction open;
//! - catch-up read of the global log (events/s);
//! - a projection rebuild (the FTGO order-history read model) into a PostgreSQL table.
//!
//! Run: `cargo bench -p annals-benches --bench postgres` (`ANNALS_BENCH_SECS` per append case,
//! default 2; `ANNALS_TEST_PG` for the server, default the local `test` database). Everything
//! runs in a fresh schema, dropped at the end.

#[path = "report.rs"]
mod report;

use std::time::{Duration, Instant};

use annals::consume::Runner;
use annals::{EventStore, ExpectedVersion, Metadata, NewEvent, StreamId};
use annals_postgres::PostgresStore;
use annals_postgres::projection::PgProjector;
use report::{Sample, bench_append, header, payload, row, secs};

async fn collect(tasks: Vec<tokio::task::JoinHandle<Vec<Duration>>>, batch: usize, started: Instant) -> Sample {
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    Sample {
        events: latencies.len() * batch,
        latencies,
        elapsed: started.elapsed(),
    }
}

const RAW_TABLE: &str = "CREATE TABLE IF NOT EXISTS raw_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, stream_id text NOT NULL, stream_type text NOT NULL,
    version bigint NOT NULL, event_id uuid NOT NULL UNIQUE, event_type text NOT NULL, schema_version integer NOT NULL,
    payload json NOT NULL, metadata json NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, version))";

const RAW_INSERT: &str =
    "INSERT INTO raw_events (stream_id, stream_type, version, event_id, event_type, schema_version, payload, metadata)
    SELECT $1, 'Bench', v, id, 'OrderRevised', 1, p::json, m::json
    FROM UNNEST($2::bigint[], $3::uuid[], $4::text[], $5::text[]) AS t(v, id, p, m)";

const LOCKED_INSERT: &str = "WITH lock AS (SELECT pg_advisory_xact_lock(4242))
    INSERT INTO raw_events (stream_id, stream_type, version, event_id, event_type, schema_version, payload, metadata)
    SELECT $1, 'Bench', v, id, 'OrderRevised', 1, p::json, m::json
    FROM UNNEST($2::bigint[], $3::uuid[], $4::text[], $5::text[]) AS t(v, id, p, m), lock";

/// One connection per appender, one prepared multi-row INSERT per append (autocommit).
async fn raw_append(
    schema: &str,
    sql: &'static str,
    appenders: usize,
    batch: usize,
    tag: &str,
    time: Duration,
) -> Sample {
    let deadline = Instant::now() + time;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..appenders {
        let client = connect(schema).await;
        let stream = format!("raw-{tag}-{w}");
        tasks.push(tokio::spawn(async move {
            let stmt = client.prepare(sql).await.unwrap();
            let value = payload().to_string();
            let meta = Metadata::default().to_json();
            let (mut version, mut lat) = (0i64, Vec::new());
            while Instant::now() < deadline {
                let versions: Vec<i64> = (1..=batch as i64).map(|i| version + i).collect();
                let ids: Vec<uuid::Uuid> = (0..batch).map(|_| uuid::Uuid::now_v7()).collect();
                let t = Instant::now();
                let values = vec![value.as_str(); batch];
                let metas = vec![meta.as_str(); batch];
                client
                    .execute(&stmt, &[&stream, &versions, &ids, &values, &metas])
                    .await
                    .unwrap();
                lat.push(t.elapsed());
                version += batch as i64;
            }
            lat
        }));
    }
    collect(tasks, batch, started).await
}

/// Appends through annals while another session holds a transaction (with an id) open, as an
/// idle-in-transaction client or a long report would: the oldest running transaction stays put.
async fn while_a_transaction_is_open(
    admin: &tokio_postgres::Client,
    store: PostgresStore,
    appenders: usize,
    batch: usize,
    tag: &str,
    time: Duration,
) -> Sample {
    admin.batch_execute("BEGIN; SELECT pg_current_xact_id()").await.unwrap();
    let sample = bench_append(store, appenders, batch, tag, time).await;
    admin.batch_execute("ROLLBACK").await.unwrap();
    sample
}

async fn connect(schema: &str) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = annals_postgres::testing::url().parse().unwrap();
    config.options(format!("-c search_path={schema}"));
    let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

async fn fill(store: &PostgresStore, streams: usize, per_stream: usize) {
    let value = serde_json::value::to_raw_value(&payload()).unwrap();
    let mut tasks = Vec::new();
    for s in 0..streams {
        let store = store.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let id = StreamId::new(format!("fill-{s}")).unwrap();
            let mut left = per_stream;
            while left > 0 {
                let n = left.min(500);
                let events = (0..n).map(|_| NewEvent::new("OrderRevised", value.clone())).collect();
                store
                    .append_to_stream(id.clone(), "Fill", ExpectedVersion::Any, events)
                    .await
                    .unwrap();
                left -= n;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// `ANNALS_BENCH_CASES=16x10,1x1` runs only those append cases (all when unset).
fn case_selected(appenders: usize, batch: usize) -> bool {
    std::env::var("ANNALS_BENCH_CASES").map_or(true, |cases| {
        cases.split(',').any(|c| c.trim() == format!("{appenders}x{batch}"))
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // One connection per appender, as the raw baseline has, plus one for the sequencer.
    let (store, guard) = annals_postgres::testing::fresh_with_pool(17).await;
    let admin = connect(&guard.schema).await;
    admin.batch_execute(RAW_TABLE).await.unwrap();
    let sync: String = admin.query_one("SHOW synchronous_commit", &[]).await.unwrap().get(0);
    let version: String = admin.query_one("SHOW server_version", &[]).await.unwrap().get(0);
    println!(
        "annals PostgreSQL benchmarks — PostgreSQL {version}, synchronous_commit={sync} (annals and raw alike); {:?} per case; {} cores",
        secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let only = std::env::var("ANNALS_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "append" {
        header(
            "Appends (events/s; latency per append call; ratio = annals ÷ raw INSERT, same run)",
            "events/s",
        );
        let mut n = 0;
        for appenders in [1usize, 16] {
            for batch in [1usize, 10, 100] {
                n += 1;
                if !case_selected(appenders, batch) {
                    continue;
                }
                let rounds = 2;
                let slice = secs() / rounds as u32;
                let (mut raw, mut ours, mut locked, mut held) =
                    (Sample::empty(), Sample::empty(), Sample::empty(), Sample::empty());
                for r in 0..rounds {
                    let tag = format!("{n}-{r}");
                    raw.add(raw_append(&guard.schema, RAW_INSERT, appenders, batch, &tag, slice).await);
                    ours.add(bench_append(store.clone(), appenders, batch, &tag, slice).await);
                    if appenders > 1 && batch == 10 {
                        let tag = format!("l{n}-{r}");
                        locked.add(raw_append(&guard.schema, LOCKED_INSERT, appenders, batch, &tag, slice).await);
                        let tag = format!("h{n}-{r}");
                        held.add(
                            while_a_transaction_is_open(&admin, store.clone(), appenders, batch, &tag, slice).await,
                        );
                    }
                }
                let label = format!("{appenders} appender(s) × {batch} event(s)/append");
                row(&format!("raw INSERT, {label}"), &raw, None);
                row(&format!("annals-postgres, {label}"), &ours, Some(raw.rate()));
                if !locked.latencies.is_empty() {
                    row(&format!("raw INSERT + global lock, {label}"), &locked, Some(raw.rate()));
                    row(
                        &format!("annals-postgres, a transaction held open elsewhere, {label}"),
                        &held,
                        Some(raw.rate()),
                    );
                }
            }
        }
    }

    if only.is_empty() || only == "read" {
        header(
            "Catch-up read of the global log (read_all in batches of 1 000)",
            "events/s",
        );
        let head = store.head_position().await.unwrap();
        fill(&store, 20, 5_000).await;
        let target = store.head_position().await.unwrap();
        for round in 0..3 {
            let started = Instant::now();
            let mut at = head;
            let mut latencies = Vec::new();
            while at < target {
                let t = Instant::now();
                let batch = store.read_all(at, 1_000).await.unwrap();
                latencies.push(t.elapsed());
                at = batch.last().unwrap().global_position;
            }
            let s = Sample {
                events: (target - head) as usize,
                latencies,
                elapsed: started.elapsed(),
            };
            row(
                &format!("read_all, {} events, round {}", target - head, round + 1),
                &s,
                None,
            );
        }
    }

    if only.is_empty() || only == "rebuild" {
        header(
            "Projection rebuild: FTGO order-history into a PostgreSQL table (batches of 512; its own schema, 20 000 orders)",
            "events/s",
        );
        let (store, _rebuild_guard) = annals_postgres::testing::fresh().await;
        for i in 0..20_000 {
            let (id, events) = ftgo::order_history::sample_order(i);
            store
                .append_to_stream(id, "Order", ExpectedVersion::NoStream, events)
                .await
                .unwrap();
        }
        for round in 0..2 {
            let projector = PgProjector::new(store.clone(), ftgo::order_history::postgres::OrderHistory)
                .await
                .unwrap();
            projector.reset().await.unwrap();
            let started = Instant::now();
            let mut runner = Runner::new(store.clone(), projector)
                .with_batch(512)
                .only_stream_types(["Order"]);
            let progress = runner.run_until_caught_up().await.unwrap();
            let latencies = vec![started.elapsed()];
            let s = Sample {
                events: progress.handled as usize,
                latencies,
                elapsed: started.elapsed(),
            };
            row(
                &format!(
                    "rebuild, {} order events (of {}), round {}",
                    progress.handled,
                    progress.position,
                    round + 1
                ),
                &s,
                None,
            );
        }
    }
    drop(store);
    drop(guard);
}

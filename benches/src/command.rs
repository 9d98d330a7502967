//! The command path, where users spend their time: each appender owns its aggregates, and each
//! command loads the aggregate, decides and appends (10 commands per aggregate, then a new one),
//! for N ∈ {1, 16} appenders × K ∈ {1, 10} events per command — through annals'
//! `Repository::execute` without and with its state cache, beside a raw baseline doing the same
//! I/O with no framework: a prepared SELECT of the stream's events, serde decode and apply, then one
//! multi-row INSERT whose UNIQUE(stream_id, version) is the version check. Then the load of a
//! 1 000-event aggregate without a snapshot: `Repository::load` beside the raw SELECT + decode +
//! apply. On PostgreSQL and on SQLite (`synchronous=FULL` for both annals and raw).
//!
//! Run: `cargo bench -p annals-benches --bench command` (`ANNALS_BENCH_SECS` per case, default 2;
//! `ANNALS_BENCH_ONLY=postgres|sqlite`, and `ANNALS_BENCH_LOADS_ONLY=1` for the loads alone;
//! `ANNALS_TEST_PG` for the server).

#[path = "report.rs"]
mod report;

use std::sync::Arc;
use std::time::{Duration, Instant};

use annals::{Aggregate, DomainEvent, EventStore, Metadata, Repository, SnapshotPolicy, StreamId};
use annals_bench_harness::{COMMANDS_PER_AGGREGATE, Line, record, run_commands, timed_loads};
use report::{Sample, header, row, secs};
use serde::{Deserialize, Serialize};

/// The bench aggregate: an order revised again and again.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct BenchOrder {
    revisions: u64,
    lines: usize,
    total_cents: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum BenchEvent {
    OrderRevised { line_items: Vec<Line>, total_cents: i64 },
}

impl DomainEvent for BenchEvent {}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

impl Aggregate for BenchOrder {
    const STREAM_TYPE: &'static str = "Order";
    type Event = BenchEvent;
    type Command = usize;
    type Error = Never;

    fn handle(&self, events: &usize) -> Result<Vec<BenchEvent>, Never> {
        Ok((0..*events).map(|i| revised(i as i64)).collect())
    }

    fn apply(
        &mut self,
        BenchEvent::OrderRevised {
            line_items,
            total_cents,
        }: &BenchEvent,
    ) {
        self.revisions += 1;
        self.lines = line_items.len();
        self.total_cents = *total_cents;
    }
}

fn revised(n: i64) -> BenchEvent {
    BenchEvent::OrderRevised {
        line_items: vec![Line::vindaloo()],
        total_cents: 2500 + n,
    }
}

/// The payload of `revised(n)` as JSON text (what the raw baseline inserts).
fn revised_json(n: i64) -> String {
    match revised(n) {
        BenchEvent::OrderRevised {
            line_items,
            total_cents,
        } => serde_json::json!({ "line_items": line_items, "total_cents": total_cents }).to_string(),
    }
}

/// The raw baseline's decode and apply: the same state from the stored payloads.
fn fold_raw(payloads: impl Iterator<Item = String>) -> BenchOrder {
    #[derive(Deserialize)]
    struct Revised {
        line_items: Vec<Line>,
        total_cents: i64,
    }
    let mut state = BenchOrder::default();
    for p in payloads {
        let r: Revised = serde_json::from_str(&p).expect("a payload the bench wrote");
        state.revisions += 1;
        state.lines = r.line_items.len();
        state.total_cents = r.total_cents;
    }
    state
}

/// `appenders` tasks, each running commands of `k` events on aggregates of its own (a new one
/// every 10 commands) through `repo`, for `time`.
async fn annals_commands<S: EventStore + Clone + 'static>(
    repo: Arc<Repository<BenchOrder, S>>,
    appenders: usize,
    k: usize,
    tag: &str,
    time: Duration,
) -> Sample {
    let tag = Arc::<str>::from(tag);
    run_commands(appenders, k, time, move |w, aggregate| {
        let (repo, tag) = (repo.clone(), tag.clone());
        async move {
            let id = StreamId::new(format!("cmd-{tag}-{w}-{aggregate}")).unwrap();
            repo.execute(&id, &k, &Metadata::by("bench")).await.unwrap();
        }
    })
    .await
}

// ---------- PostgreSQL ----------

const PG_RAW_TABLE: &str = "CREATE TABLE IF NOT EXISTS raw_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, stream_id text NOT NULL, stream_type text NOT NULL,
    version bigint NOT NULL, event_id uuid NOT NULL UNIQUE, event_type text NOT NULL, schema_version integer NOT NULL,
    payload json NOT NULL, metadata json NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, version))";

const PG_RAW_SELECT: &str = "SELECT payload::text FROM raw_events WHERE stream_id = $1 ORDER BY version";

const PG_RAW_INSERT: &str =
    "INSERT INTO raw_events (stream_id, stream_type, version, event_id, event_type, schema_version, payload, metadata)
    SELECT $1, 'Order', v, id, 'OrderRevised', 1, p::json, m::json
    FROM UNNEST($2::bigint[], $3::uuid[], $4::text[], $5::text[]) AS t(v, id, p, m)";

async fn pg_connect(schema: &str) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = annals_postgres::testing::url().parse().unwrap();
    config.options(format!("-c search_path={schema}"));
    let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// The raw command: SELECT + decode + apply, then one INSERT of `k` rows (autocommit), each
/// appender on a connection of its own with both statements prepared.
async fn pg_raw_commands(schema: &str, appenders: usize, k: usize, tag: &str, time: Duration) -> Sample {
    let mut clients = Vec::new();
    for _ in 0..appenders {
        let client = pg_connect(schema).await;
        let select = client.prepare(PG_RAW_SELECT).await.unwrap();
        let insert = client.prepare(PG_RAW_INSERT).await.unwrap();
        clients.push(Arc::new((client, select, insert)));
    }
    let clients = Arc::new(clients);
    let tag = Arc::<str>::from(tag);
    let meta = Arc::<str>::from(Metadata::by("bench").to_json());
    run_commands(appenders, k, time, move |w, aggregate| {
        let (c, tag, meta) = (clients[w].clone(), tag.clone(), meta.clone());
        async move {
            let (client, select, insert) = &*c;
            let id = format!("raw-{tag}-{w}-{aggregate}");
            let rows = client.query(select, &[&id]).await.unwrap();
            let state = fold_raw(rows.iter().map(|r| r.get::<_, String>(0)));
            let first = state.revisions as i64 + 1;
            let versions: Vec<i64> = (first..first + k as i64).collect();
            let ids: Vec<uuid::Uuid> = (0..k).map(|_| uuid::Uuid::now_v7()).collect();
            let payloads: Vec<String> = (0..k).map(|i| revised_json(i as i64)).collect();
            let metas: Vec<&str> = (0..k).map(|_| &*meta).collect();
            client
                .execute(insert, &[&id, &versions, &ids, &payloads, &metas])
                .await
                .unwrap();
        }
    })
    .await
}

async fn postgres() {
    let (store, guard) = annals_postgres::testing::fresh_with_pool(17).await;
    let admin = pg_connect(&guard.schema).await;
    admin.batch_execute(PG_RAW_TABLE).await.unwrap();
    let sync: String = admin.query_one("SHOW synchronous_commit", &[]).await.unwrap().get(0);
    println!("\n## PostgreSQL (synchronous_commit={sync}, annals and raw alike)");
    header(
        "Commands: load → decide → append, 10 per aggregate (events/s; latency per command; ratio = ÷ raw)",
        "events/s",
    );
    let plain = Arc::new(Repository::<BenchOrder, _>::new(store.clone()));
    let cached = Arc::new(Repository::<BenchOrder, _>::new(store.clone()).with_cache(4096));
    for appenders in if loads_only() { vec![] } else { vec![1usize, 16] } {
        for k in [1usize, 10] {
            let (mut raw, mut ours, mut ours_cached) = (Sample::empty(), Sample::empty(), Sample::empty());
            let slice = secs() / 2;
            for r in 0..2 {
                let tag = format!("{appenders}x{k}-{r}");
                raw.add(pg_raw_commands(&guard.schema, appenders, k, &tag, slice).await);
                ours.add(annals_commands(plain.clone(), appenders, k, &tag, slice).await);
                ours_cached.add(annals_commands(cached.clone(), appenders, k, &format!("c{tag}"), slice).await);
            }
            commands_rows("postgres", appenders, k, [&raw, &ours, &ours_cached]);
        }
    }
    header(
        "Load of a 1 000-event aggregate (loads/s; latency per load; ratio = ÷ raw); no snapshot but the last row",
        "loads/s",
    );
    let id = StreamId::new("big-1").unwrap();
    let raw_id = "raw-big-1";
    let insert = admin.prepare(PG_RAW_INSERT).await.unwrap();
    let meta = Metadata::by("bench").to_json();
    for chunk in 0..10 {
        plain.execute(&id, &100, &Metadata::by("bench")).await.unwrap();
        let first = chunk * 100 + 1;
        let versions: Vec<i64> = (first..first + 100).collect();
        let ids: Vec<uuid::Uuid> = (0..100).map(|_| uuid::Uuid::now_v7()).collect();
        let payloads: Vec<String> = (0..100).map(revised_json).collect();
        let metas: Vec<&str> = (0..100).map(|_| meta.as_str()).collect();
        admin
            .execute(&insert, &[&raw_id, &versions, &ids, &payloads, &metas])
            .await
            .unwrap();
    }
    let (snapshotting, snapped_id) = snapshotted_aggregate(&store).await;
    store.head_position().await.unwrap();
    let select = admin.prepare(PG_RAW_SELECT).await.unwrap();
    let (mut raw, mut ours, mut snapped) = (Sample::empty(), Sample::empty(), Sample::empty());
    for _ in 0..2 {
        raw.add(
            timed_loads(secs() / 2, || async {
                let rows = admin.query(&select, &[&raw_id]).await.unwrap();
                assert_eq!(fold_raw(rows.iter().map(|r| r.get::<_, String>(0))).revisions, 1000);
            })
            .await,
        );
        ours.add(
            timed_loads(secs() / 2, || async {
                assert_eq!(plain.load(&id).await.unwrap().state.revisions, 1000);
            })
            .await,
        );
        snapped.add(timed_snapshot_loads(&snapshotting, &snapped_id).await);
    }
    load_rows("postgres", &raw, &ours, &snapped);
    drop(store);
    drop(guard);
}

// ---------- SQLite ----------

const SQLITE_RAW_TABLE: &str = "CREATE TABLE IF NOT EXISTS raw_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, stream_id TEXT NOT NULL, stream_type TEXT NOT NULL, version INTEGER NOT NULL,
    event_id BLOB NOT NULL UNIQUE, event_type TEXT NOT NULL, schema_version INTEGER NOT NULL, payload TEXT NOT NULL,
    metadata TEXT NOT NULL, recorded_at INTEGER NOT NULL, UNIQUE (stream_id, version))";

fn sqlite_raw_connection(path: &std::path::Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 60000;")
        .unwrap();
    c
}

/// The raw command on SQLite: in one IMMEDIATE transaction, SELECT + decode + apply, then the
/// INSERTs, then COMMIT (one fsync), each appender on a connection of its own.
fn sqlite_raw_commands(path: &std::path::Path, appenders: usize, k: usize, tag: &str, time: Duration) -> Sample {
    let deadline = Instant::now() + time;
    let started = Instant::now();
    let handles: Vec<_> = (0..appenders)
        .map(|w| {
            let path = path.to_owned();
            let tag = tag.to_owned();
            std::thread::spawn(move || {
                let c = sqlite_raw_connection(&path);
                let meta = Metadata::by("bench").to_json();
                let mut lat = Vec::new();
                let mut n = 0usize;
                while Instant::now() < deadline {
                    let id = format!("raw-{tag}-{w}-{}", n / COMMANDS_PER_AGGREGATE);
                    let t = Instant::now();
                    c.execute_batch("BEGIN IMMEDIATE").unwrap();
                    let state = {
                        let mut s = c
                            .prepare_cached("SELECT payload FROM raw_events WHERE stream_id = ?1 ORDER BY version")
                            .unwrap();
                        let payloads: Vec<String> = s
                            .query_map([&id], |r| r.get(0))
                            .unwrap()
                            .map(Result::unwrap)
                            .collect();
                        fold_raw(payloads.into_iter())
                    };
                    let mut insert = c
                        .prepare_cached(
                            "INSERT INTO raw_events (stream_id, stream_type, version, event_id, event_type, schema_version,
                             payload, metadata, recorded_at) VALUES (?1, 'Order', ?2, ?3, 'OrderRevised', 1, ?4, ?5, ?6)",
                        )
                        .unwrap();
                    for i in 0..k {
                        let v = state.revisions as i64 + 1 + i as i64;
                        insert
                            .execute(rusqlite::params![
                                id,
                                v,
                                &uuid::Uuid::now_v7().as_bytes()[..],
                                revised_json(i as i64),
                                meta,
                                0i64
                            ])
                            .unwrap();
                    }
                    c.execute_batch("COMMIT").unwrap();
                    lat.push(t.elapsed());
                    n += 1;
                }
                lat
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for h in handles {
        latencies.extend(h.join().unwrap());
    }
    Sample {
        events: latencies.len() * k,
        latencies,
        elapsed: started.elapsed(),
    }
}

async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let raw_path = dir.path().join("raw.db");
    sqlite_raw_connection(&raw_path)
        .execute_batch(SQLITE_RAW_TABLE)
        .unwrap();
    let store = annals_sqlite::SqliteStore::open(dir.path().join("annals.db"))
        .await
        .unwrap();
    println!("\n## SQLite (synchronous=FULL, WAL, annals and raw alike)");
    header(
        "Commands: load → decide → append, 10 per aggregate (events/s; latency per command; ratio = ÷ raw)",
        "events/s",
    );
    let plain = Arc::new(Repository::<BenchOrder, _>::new(store.clone()));
    let cached = Arc::new(Repository::<BenchOrder, _>::new(store.clone()).with_cache(4096));
    for appenders in if loads_only() { vec![] } else { vec![1usize, 16] } {
        for k in [1usize, 10] {
            let (mut raw, mut ours, mut ours_cached) = (Sample::empty(), Sample::empty(), Sample::empty());
            let slice = secs() / 2;
            for r in 0..2 {
                let tag = format!("{appenders}x{k}-{r}");
                let path = raw_path.clone();
                let t = tag.clone();
                raw.add(
                    tokio::task::spawn_blocking(move || sqlite_raw_commands(&path, appenders, k, &t, slice))
                        .await
                        .unwrap(),
                );
                ours.add(annals_commands(plain.clone(), appenders, k, &tag, slice).await);
                ours_cached.add(annals_commands(cached.clone(), appenders, k, &format!("c{tag}"), slice).await);
            }
            commands_rows("sqlite", appenders, k, [&raw, &ours, &ours_cached]);
        }
    }
    header(
        "Load of a 1 000-event aggregate (loads/s; latency per load; ratio = ÷ raw); no snapshot but the last row",
        "loads/s",
    );
    let id = StreamId::new("big-1").unwrap();
    for _ in 0..10 {
        plain.execute(&id, &100, &Metadata::by("bench")).await.unwrap();
    }
    let (snapshotting, snapped_id) = snapshotted_aggregate(&store).await;
    {
        let c = sqlite_raw_connection(&raw_path);
        let meta = Metadata::by("bench").to_json();
        c.execute_batch("BEGIN").unwrap();
        for v in 1..=1000i64 {
            c.execute(
                "INSERT INTO raw_events (stream_id, stream_type, version, event_id, event_type, schema_version, payload,
                 metadata, recorded_at) VALUES ('raw-big-1', 'Order', ?1, ?2, 'OrderRevised', 1, ?3, ?4, 0)",
                rusqlite::params![v, &uuid::Uuid::now_v7().as_bytes()[..], revised_json(v), meta],
            )
            .unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
    }
    let reader = sqlite_raw_connection(&raw_path);
    let (mut raw, mut ours, mut snapped) = (Sample::empty(), Sample::empty(), Sample::empty());
    for _ in 0..2 {
        let started = Instant::now();
        let mut latencies = Vec::new();
        while started.elapsed() < secs() / 2 {
            let t = Instant::now();
            let mut s = reader
                .prepare_cached("SELECT payload FROM raw_events WHERE stream_id = 'raw-big-1' ORDER BY version")
                .unwrap();
            let payloads: Vec<String> = s.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
            assert_eq!(fold_raw(payloads.into_iter()).revisions, 1000);
            latencies.push(t.elapsed());
        }
        raw.add(Sample {
            events: latencies.len(),
            latencies,
            elapsed: started.elapsed(),
        });
        ours.add(
            timed_loads(secs() / 2, || async {
                assert_eq!(plain.load(&id).await.unwrap().state.revisions, 1000);
            })
            .await,
        );
        snapped.add(timed_snapshot_loads(&snapshotting, &snapped_id).await);
    }
    load_rows("sqlite", &raw, &ours, &snapped);
}

/// Prints one command case's rows and records them for the side-by-side table.
fn commands_rows(backend: &str, appenders: usize, k: usize, [raw, ours, cached]: [&Sample; 3]) {
    let label = format!("{appenders} appender(s) × {k} event(s)/command");
    row(&format!("raw SELECT + INSERT, {label}"), raw, None);
    row(&format!("annals, {label}"), ours, Some(raw.rate()));
    row(&format!("annals + state cache, {label}"), cached, Some(raw.rate()));
    let workload = format!("commands {appenders}×{k}");
    record(backend, &workload, "raw SELECT + INSERT", "events/s", raw);
    record(backend, &workload, "annals", "events/s", ours);
    record(backend, &workload, "annals + state cache", "events/s", cached);
}

/// A 1 000-event aggregate written through a repository that snapshots every 100 events, and
/// that repository: what annals does that the peers' loads here do not.
async fn snapshotted_aggregate<S: EventStore + Clone>(store: &S) -> (Repository<BenchOrder, S>, StreamId) {
    let repo = Repository::<BenchOrder, _>::new(store.clone()).with_snapshots(SnapshotPolicy::EveryNEvents(100));
    let id = StreamId::new("big-snapshotted").unwrap();
    for _ in 0..10 {
        repo.execute(&id, &100, &Metadata::by("bench")).await.unwrap();
    }
    (repo, id)
}

/// Loads of the snapshotted aggregate for half a case's time.
async fn timed_snapshot_loads<S: EventStore>(repo: &Repository<BenchOrder, S>, id: &StreamId) -> Sample {
    timed_loads(secs() / 2, || async {
        let loaded = repo.load(id).await.unwrap();
        assert_eq!((loaded.state.revisions, loaded.from_snapshot), (1000, Some(1000)));
    })
    .await
}

/// Prints the load rows and records them for the side-by-side table.
fn load_rows(backend: &str, raw: &Sample, ours: &Sample, snapped: &Sample) {
    row("raw SELECT + decode + apply, 1 000 events", raw, None);
    row("annals Repository::load, 1 000 events", ours, Some(raw.rate()));
    row("annals load from a snapshot at v1000", snapped, Some(raw.rate()));
    record(
        backend,
        "load of 1 000 events",
        "annals + snapshot every 100",
        "loads/s",
        snapped,
    );
    record(
        backend,
        "load of 1 000 events",
        "raw SELECT + decode + apply",
        "loads/s",
        raw,
    );
    record(backend, "load of 1 000 events", "annals", "loads/s", ours);
}

fn loads_only() -> bool {
    std::env::var("ANNALS_BENCH_LOADS_ONLY").is_ok_and(|v| v == "1")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!(
        "annals command-path benchmarks — {:?} per case, {} cores",
        secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let only = std::env::var("ANNALS_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "postgres" {
        postgres().await;
    }
    if only.is_empty() || only == "sqlite" {
        sqlite().await;
    }
}

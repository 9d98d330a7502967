//! annals' command-path workload (`benches/src/command.rs`) run by its peers, for the
//! side-by-side table: cqrs-es + postgres-es and esrs on PostgreSQL, cqrs-es + sqlite-es on
//! SQLite (WAL, `synchronous=FULL` as annals and the raw baseline run). N ∈ {1, 16} appenders ×
//! K ∈ {1, 10} events per command, 10 commands per aggregate, each appender on aggregates of its
//! own; then the load of a 1 000-event aggregate with no snapshot. Each library is used as its
//! documentation shows, with no cache or snapshot (neither has a state cache).
//!
//! Run by `benches/peers/run`, or alone: `cargo run --release` here (`ANNALS_BENCH_SECS`,
//! `ANNALS_BENCH_ONLY=postgres|sqlite`, `ANNALS_BENCH_JSON`, `ANNALS_TEST_PG`).

mod model;

use std::str::FromStr;
use std::sync::Arc;

use annals_bench_harness::{Sample, header, record, row, run_commands, secs, timed_loads};
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{AggregateContext, EventStore};
use esrs::AggregateState;
use esrs::manager::AggregateManager;
use esrs::store::postgres::{PgStore, PgStoreBuilder};
use model::{EsrsOrder, OrderState};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// postgres-es' tables, from its `db/init.sql`.
const POSTGRES_ES_TABLES: &str = "
CREATE TABLE events (
    aggregate_type text NOT NULL, aggregate_id text NOT NULL,
    sequence bigint CHECK (sequence >= 0) NOT NULL, event_type text NOT NULL,
    event_version text NOT NULL, payload json NOT NULL, metadata json NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence));
CREATE TABLE snapshots (
    aggregate_type text NOT NULL, aggregate_id text NOT NULL,
    last_sequence bigint CHECK (last_sequence >= 0) NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL, payload json NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence));";

/// sqlite-es' tables, from its migration.
const SQLITE_ES_TABLES: &str = "
CREATE TABLE events (
    aggregate_type text NOT NULL, aggregate_id text NOT NULL,
    sequence integer CHECK (sequence >= 0) NOT NULL, event_type text NOT NULL,
    event_version text NOT NULL, payload text NOT NULL, metadata text NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)) STRICT;
CREATE TABLE snapshots (
    aggregate_type text NOT NULL, aggregate_id text NOT NULL,
    last_sequence integer CHECK (last_sequence >= 0) NOT NULL,
    current_snapshot integer CHECK (current_snapshot >= 0) NOT NULL, payload text NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)) STRICT;";

type Cqrs<R> = cqrs_es::CqrsFramework<OrderState, PersistedEventStore<R, OrderState>>;

/// Commands through cqrs-es: `execute` loads, handles and commits.
async fn cqrs_commands<R>(cqrs: Arc<Cqrs<R>>, appenders: usize, k: usize, tag: &str) -> Sample
where
    R: cqrs_es::persist::PersistedEventRepository + 'static,
{
    let tag = Arc::<str>::from(tag);
    run_commands(appenders, k, secs() / 2, move |w, aggregate| {
        let (cqrs, tag) = (cqrs.clone(), tag.clone());
        async move {
            cqrs.execute(&format!("cqrs-{tag}-{w}-{aggregate}"), k)
                .await
                .expect("a cqrs-es command");
        }
    })
    .await
}

/// Commands through esrs: `load`, then `handle_command` persists.
async fn esrs_commands(
    manager: Arc<AggregateManager<PgStore<EsrsOrder>>>,
    appenders: usize,
    k: usize,
    round: u64,
) -> Sample {
    run_commands(appenders, k, secs() / 2, move |w, aggregate| {
        let manager = manager.clone();
        async move {
            let id = uuid::Uuid::from_u64_pair(round, ((w as u64) << 32) | aggregate as u64);
            let state = manager
                .load(id)
                .await
                .expect("an esrs load")
                .unwrap_or_else(|| AggregateState::with_id(id));
            manager
                .handle_command(state, k)
                .await
                .expect("an esrs store")
                .expect("an esrs command");
        }
    })
    .await
}

fn cases() -> Vec<(usize, usize)> {
    if std::env::var("ANNALS_BENCH_LOADS_ONLY").is_ok_and(|v| v == "1") {
        return Vec::new();
    }
    vec![(1, 1), (1, 10), (16, 1), (16, 10)]
}

async fn postgres() {
    let url = std::env::var("ANNALS_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("peers_cqrs_esrs_{}", std::process::id());
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url}: {e}"));
    sqlx::raw_sql(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ))
    .execute(&admin)
    .await
    .unwrap();
    let options = PgConnectOptions::from_str(&url)
        .unwrap()
        .options([("search_path", schema.as_str())]);
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .connect_with(options)
        .await
        .unwrap();
    sqlx::raw_sql(POSTGRES_ES_TABLES).execute(&pool).await.unwrap();
    let sync: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&pool)
        .await
        .unwrap();
    println!("\n## PostgreSQL peers (synchronous_commit={sync}, pool of 16)");
    let cqrs = Arc::new(postgres_es::postgres_cqrs::<OrderState>(pool.clone(), vec![], ()));
    let esrs = Arc::new(AggregateManager::new(
        PgStoreBuilder::<EsrsOrder>::new(pool.clone())
            .try_build()
            .await
            .unwrap(),
    ));
    header(
        "Commands: load → decide → append, 10 per aggregate (events/s)",
        "events/s",
    );
    for (appenders, k) in cases() {
        let (mut c, mut e) = (Sample::empty(), Sample::empty());
        for r in 0..2u64 {
            let tag = format!("{appenders}x{k}-{r}");
            c.add(cqrs_commands(cqrs.clone(), appenders, k, &tag).await);
            e.add(esrs_commands(esrs.clone(), appenders, k, (appenders * 1000 + k * 10) as u64 + r).await);
        }
        let workload = format!("commands {appenders}×{k}");
        row(&format!("cqrs-es + postgres-es, {workload}"), &c, None);
        row(&format!("esrs, {workload}"), &e, None);
        record("postgres", &workload, "cqrs-es + postgres-es", "events/s", &c);
        record("postgres", &workload, "esrs", "events/s", &e);
    }

    header("Load of a 1 000-event aggregate, no snapshot (loads/s)", "loads/s");
    let big = uuid::Uuid::from_u64_pair(u64::MAX, 1);
    for _ in 0..10 {
        cqrs.execute("big-1", 100).await.unwrap();
        let state = esrs
            .load(big)
            .await
            .unwrap()
            .unwrap_or_else(|| AggregateState::with_id(big));
        esrs.handle_command(state, 100).await.unwrap().unwrap();
    }
    let store =
        PersistedEventStore::<_, OrderState>::new_event_store(postgres_es::PostgresEventRepository::new(pool.clone()));
    let (mut c, mut e) = (Sample::empty(), Sample::empty());
    for _ in 0..2 {
        c.add(
            timed_loads(secs() / 2, || async {
                let mut context = store.load_aggregate("big-1").await.unwrap();
                assert_eq!(context.aggregate().revisions, 1000);
            })
            .await,
        );
        e.add(
            timed_loads(secs() / 2, || async {
                let state = esrs.load(big).await.unwrap().unwrap();
                assert_eq!(state.inner().revisions, 1000);
            })
            .await,
        );
    }
    row("cqrs-es + postgres-es load, 1 000 events", &c, None);
    row("esrs load, 1 000 events", &e, None);
    record(
        "postgres",
        "load of 1 000 events",
        "cqrs-es + postgres-es",
        "loads/s",
        &c,
    );
    record("postgres", "load of 1 000 events", "esrs", "loads/s", &e);
    pool.close().await;
    sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
}

async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("sqlite-es.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(16)
        .connect_with(options)
        .await
        .unwrap();
    sqlx::raw_sql(SQLITE_ES_TABLES).execute(&pool).await.unwrap();
    println!("\n## SQLite peers (synchronous=FULL, WAL, pool of 16)");
    let cqrs = Arc::new(sqlite_es::sqlite_cqrs::<OrderState>(pool.clone(), vec![], ()));
    header(
        "Commands: load → decide → append, 10 per aggregate (events/s)",
        "events/s",
    );
    for (appenders, k) in cases() {
        let mut c = Sample::empty();
        for r in 0..2 {
            c.add(cqrs_commands(cqrs.clone(), appenders, k, &format!("{appenders}x{k}-{r}")).await);
        }
        let workload = format!("commands {appenders}×{k}");
        row(&format!("cqrs-es + sqlite-es, {workload}"), &c, None);
        record("sqlite", &workload, "cqrs-es + sqlite-es", "events/s", &c);
    }
    header("Load of a 1 000-event aggregate, no snapshot (loads/s)", "loads/s");
    for _ in 0..10 {
        cqrs.execute("big-1", 100).await.unwrap();
    }
    let store =
        PersistedEventStore::<_, OrderState>::new_event_store(sqlite_es::SqliteEventRepository::new(pool.clone()));
    let mut c = Sample::empty();
    for _ in 0..2 {
        c.add(
            timed_loads(secs() / 2, || async {
                let mut context = store.load_aggregate("big-1").await.unwrap();
                assert_eq!(context.aggregate().revisions, 1000);
            })
            .await,
        );
    }
    row("cqrs-es + sqlite-es load, 1 000 events", &c, None);
    record("sqlite", "load of 1 000 events", "cqrs-es + sqlite-es", "loads/s", &c);
    pool.close().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!(
        "cqrs-es 0.5 and esrs 0.18 on annals' command-path workload — {:?} per case",
        secs()
    );
    let only = std::env::var("ANNALS_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "postgres" {
        postgres().await;
    }
    if only.is_empty() || only == "sqlite" {
        sqlite().await;
    }
}

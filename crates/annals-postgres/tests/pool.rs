//! The connection pool under more concurrent commands than connections: no path may hold one
//! pooled connection while it waits for another (16 commands over 2 connections once froze for
//! good: each stream read held its connection and asked the pool for a second to run the
//! sequencer), and a checkout that cannot be served in time fails with an error that says so.

use std::time::{Duration, Instant};

use annals::testkit::fixtures::{Tally, TallyCommand};
use annals::{ErrorKind, Metadata, Repository, StoreError, StreamId};
use annals_postgres::testing::{SchemaGuard, unique_schema, url};
use annals_postgres::{PostgresOptions, PostgresStore};

async fn store_with(pool_size: usize, pool_wait: Duration) -> (PostgresStore, SchemaGuard) {
    let schema = unique_schema("pool");
    let store = PostgresStore::connect_with(
        &url(),
        PostgresOptions {
            schema: schema.clone(),
            pool_size,
            pool_wait,
            ..PostgresOptions::default()
        },
    )
    .await
    .expect("PostgreSQL must be reachable on 127.0.0.1:5432 (see .ci/services)");
    (store, SchemaGuard { schema })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_concurrent_commands_than_connections_never_freeze() {
    // Two connections, sixteen tasks each running load → handle → append of 10 events on streams
    // of its own, for three seconds. A task that cannot get a connection within the deadline
    // fails with Unavailable; a freeze would leave every task waiting, caught by the timeout.
    let (store, _guard) = store_with(2, Duration::from_secs(20)).await;
    let until = Instant::now() + Duration::from_secs(3);
    let mut tasks = Vec::new();
    for t in 0..16 {
        let repo = Repository::<Tally, _>::new(store.clone());
        tasks.push(tokio::spawn(async move {
            let mut commands = 0u64;
            let mut n = 0;
            while Instant::now() < until {
                let id = StreamId::new(format!("tally-{t}-{}", n / 10)).unwrap();
                n += 1;
                let ten = TallyCommand::AddMany((1..=10).collect());
                repo.execute(&id, &ten, &Metadata::by("pool-test")).await?;
                commands += 1;
            }
            Ok::<u64, annals::RepositoryError<annals::testkit::fixtures::TallyError>>(commands)
        }));
    }
    let all = tokio::time::timeout(Duration::from_secs(60), futures_join(tasks))
        .await
        .expect("16 commands over 2 connections froze: a path holds a connection while it waits for another");
    let mut done = 0;
    for (t, result) in all.into_iter().enumerate() {
        done += result
            .expect("task panicked")
            .unwrap_or_else(|e| panic!("task {t} failed: {e}"));
    }
    assert!(done >= 16, "every task ran commands ({done})");
}

async fn futures_join<T>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<Result<T, tokio::task::JoinError>> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_past_its_deadline_says_so() {
    let (store, _guard) = store_with(1, Duration::from_millis(300)).await;
    let held = store.client().await.unwrap();
    let started = Instant::now();
    let err = store.client().await.expect_err("the only connection is held");
    assert!(started.elapsed() < Duration::from_secs(5), "the deadline is kept");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err:?}");
    assert!(
        matches!(&err, StoreError::Unavailable { reason, .. }
            if reason.contains("no PostgreSQL connection came free") && reason.contains("the pool has 1")),
        "{err}"
    );
    drop(held);
    drop(store.client().await.expect("free again"));
}

/// A store that outlives the runtime it was made in (its background tasks — the sequencer, the
/// group-commit queue — died with it) still appends, concurrently, from another runtime: the
/// appends that would have waited in the queue run on their own.
#[test]
fn a_store_outliving_its_runtime_still_appends() {
    let first = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (store, guard) = first.block_on(store_with(4, Duration::from_secs(20)));
    drop(first);
    let second = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    second.block_on(async move {
        let mut tasks = Vec::new();
        for t in 0..24 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let s = StreamId::new(format!("outlived-{t}")).unwrap();
                let events = vec![annals::NewEvent::from_value(
                    "Added",
                    &serde_json::json!({ "amount": t }),
                )];
                tokio::time::timeout(
                    Duration::from_secs(30),
                    annals::EventStore::append_to_stream(&store, s, "Tally", annals::ExpectedVersion::NoStream, events),
                )
                .await
                .expect("an append finishes")
            }));
        }
        for task in tasks {
            let appended = task.await.unwrap().expect("the append succeeds");
            assert_eq!(appended.last_version, 1);
        }
        let head = tokio::time::timeout(Duration::from_secs(30), annals::EventStore::head_position(&store))
            .await
            .expect("the head is read")
            .unwrap();
        assert_eq!(head, 24, "every append is in the global log");
        drop(guard);
    });
}

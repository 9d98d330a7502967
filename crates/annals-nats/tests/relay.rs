//! The polling relay to the real NATS JetStream and a durable consumer back, on SQLite and
//! PostgreSQL: every event's effect applied exactly once and in stream order; a standby relay
//! takes over from a dead one; the same handler runs in process without a broker.

mod common;

use std::time::{Duration, Instant};

use annals::EventStore;
use annals::consume::{Checkpoints, Runner, Subscription};
use annals::relay::{Leases, Relay};
use annals_nats::{NatsOptions, NatsPublisher};
use annals_sqlite::SqliteStore;
use common::{
    NATS_URL, Tally, applied, delete_stream, eventually, expected, spawn_tally_consumer, unique_options, write_history,
};

/// Starts a consumer applying the tally into a fresh SQLite store in `dir`.
async fn start_consumer(
    options: &NatsOptions,
    dir: &std::path::Path,
) -> (
    SqliteStore,
    tokio::task::JoinHandle<Result<annals_nats::ConsumerProgress, annals_nats::NatsConsumeError>>,
) {
    let tally = SqliteStore::open(dir.join("tally.db")).await.unwrap();
    let consuming = spawn_tally_consumer(options, &tally).await;
    (tally, consuming)
}

fn spawn_relay<S>(store: S, publisher: NatsPublisher, ttl: Duration) -> tokio::task::JoinHandle<()>
where
    S: EventStore + Checkpoints + Leases + annals::consume::HealthReports + Clone + 'static,
{
    tokio::spawn(async move {
        let mut relay = Relay::new("main", store, publisher).with_batch(64).with_lease_ttl(ttl);
        relay.run(std::future::pending()).await.unwrap();
    })
}

async fn end_to_end<S>(store: S)
where
    S: EventStore + Checkpoints + Leases + annals::consume::HealthReports + Clone + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    let options = unique_options(NATS_URL, "e2e");
    write_history(&store, 4, 40).await;
    let publisher = NatsPublisher::connect(&options).await.unwrap();
    let (tally, stop) = start_consumer(&options, dir.path()).await;
    let relay = spawn_relay(store.clone(), publisher, Duration::from_secs(2));
    // History, then live appends while the relay runs.
    eventually(20, "history applied", || async {
        applied(&tally).await == expected(4, 40)
    })
    .await;
    write_history(&store, 4, 10).await;
    eventually(20, "live appends applied", || async {
        applied(&tally).await == expected(4, 50)
    })
    .await;
    relay.abort();
    stop.abort();
    delete_stream(&options).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_relay_end_to_end_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    end_to_end(SqliteStore::open(dir.path().join("source.db")).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_relay_end_to_end_postgres() {
    let (store, _guard) = annals_postgres::testing::fresh().await;
    end_to_end(store).await;
}

/// Two relays with one name: one publishes, the other waits on the lease; when the active one
/// dies without giving the lease up, the standby takes over within the lease's time to live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_relay_takes_over_when_the_active_one_dies() {
    let (store, _guard) = annals_postgres::testing::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let options = unique_options(NATS_URL, "lease");
    let (tally, stop) = start_consumer(&options, dir.path()).await;
    let ttl = Duration::from_secs(1);
    let first = spawn_relay(store.clone(), NatsPublisher::connect(&options).await.unwrap(), ttl);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = spawn_relay(store.clone(), NatsPublisher::connect(&options).await.unwrap(), ttl);
    write_history(&store, 3, 20).await;
    eventually(20, "history applied", || async {
        applied(&tally).await == expected(3, 20)
    })
    .await;

    // The active relay dies holding its lease (a task abort: no release).
    first.abort();
    let died = Instant::now();
    write_history(&store, 3, 10).await;
    eventually(20, "appends after the failover applied", || async {
        applied(&tally).await == expected(3, 30)
    })
    .await;
    let took = died.elapsed();
    assert!(
        took < ttl + Duration::from_secs(3),
        "the standby took {took:?} to take over (lease {ttl:?})"
    );
    second.abort();
    stop.abort();
    delete_stream(&options).await;
}

/// Embedded mode: the same handler, run by an in-process subscription on the SQLite global log
/// with no broker, gets the same events with the same effects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_handler_runs_in_process_without_a_broker() {
    let dir = tempfile::tempdir().unwrap();
    let source = SqliteStore::open(dir.path().join("source.db")).await.unwrap();
    let tally = SqliteStore::open(dir.path().join("tally.db")).await.unwrap();
    write_history(&source, 4, 30).await;
    let subscription = Subscription::new("tally", source.clone(), Tally { store: tally.clone() });
    let mut runner = Runner::new(source.clone(), subscription);
    runner.run_until_caught_up().await.unwrap();
    assert_eq!(applied(&tally).await, expected(4, 30));
    // Delivered again from scratch (a lost checkpoint): the inbox absorbs every repeat.
    source.save_checkpoint("tally", 0).await.unwrap();
    runner.run_until_caught_up().await.unwrap();
    assert_eq!(applied(&tally).await, expected(4, 30));
}

//! The log-tailing relay (PostgreSQL logical replication, pgoutput) to the real NATS JetStream:
//! history from before the slot existed and live appends both arrive, each effect exactly once and
//! in stream order; a relay stopped without a goodbye resumes from its slot with nothing lost; a
//! slot whose relay is stopped shows its lag.

mod common;

use std::time::Duration;

use annals::EventStore;
use annals::consume::Checkpoints;
use annals_nats::NatsPublisher;
use annals_postgres::PostgresStore;
use annals_postgres::tail::{TailRelay, slots};
use annals_sqlite::SqliteStore;
use common::{
    NATS_URL, applied, delete_stream, eventually, expected, spawn_tally_consumer, unique_options, write_history,
};

fn spawn_tail(store: &PostgresStore, publisher: NatsPublisher) -> tokio::task::JoinHandle<()> {
    let store = store.clone();
    tokio::spawn(async move {
        let mut relay = TailRelay::new("tail", store, publisher).with_lease_ttl(Duration::from_secs(1));
        relay.run(std::future::pending()).await.unwrap();
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tailing_relay_publishes_history_and_live_appends_exactly_once_in_order() {
    let (store, _guard) = annals_postgres::testing::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let tally = SqliteStore::open(dir.path().join("tally.db")).await.unwrap();
    let options = unique_options(NATS_URL, "tail");
    // History written before the slot exists: published from the log at start.
    write_history(&store, 4, 20).await;
    let consumer = spawn_tally_consumer(&options, &tally).await;
    let relay = spawn_tail(&store, NatsPublisher::connect(&options).await.unwrap());
    eventually(20, "history applied", || async {
        applied(&tally).await == expected(4, 20)
    })
    .await;
    // Live appends come through the slot.
    write_history(&store, 4, 30).await;
    eventually(20, "live appends applied", || async {
        applied(&tally).await == expected(4, 50)
    })
    .await;
    // Stored once the relay is idle (within CURSOR_EVERY of its last batch), not per batch.
    let head = store.head_position().await.unwrap();
    eventually(10, "the cursor stored at the head", || async {
        store.load_checkpoint("relay.tail").await.unwrap() == Some(head)
    })
    .await;
    relay.abort();
    consumer.abort();
    delete_stream(&options).await;
}

/// The relay is stopped without a goodbye (its last acknowledgement may be unsent) while appends
/// go on; the slot keeps their WAL and shows the lag; a new relay resumes from the slot and every
/// effect is applied once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_tailing_relay_shows_its_lag_and_a_new_one_resumes() {
    let (store, _guard) = annals_postgres::testing::fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let tally = SqliteStore::open(dir.path().join("tally.db")).await.unwrap();
    let options = unique_options(NATS_URL, "tailstop");
    let consumer = spawn_tally_consumer(&options, &tally).await;
    let relay = spawn_tail(&store, NatsPublisher::connect(&options).await.unwrap());
    write_history(&store, 3, 10).await;
    eventually(20, "first events applied", || async {
        applied(&tally).await == expected(3, 10)
    })
    .await;

    relay.abort();
    let _ = relay.await;
    write_history(&store, 3, 30).await;
    let lag = || async {
        let s = slots(&store).await.unwrap();
        assert_eq!(s.len(), 1, "one slot: {s:?}");
        (s[0].active, s[0].lag_bytes)
    };
    eventually(10, "the slot shows it is inactive and behind", || async {
        let (active, bytes) = lag().await;
        !active && bytes > 0
    })
    .await;
    let (_, stopped_lag) = lag().await;
    let behind = store.head_position().await.unwrap() - store.load_checkpoint("relay.tail").await.unwrap().unwrap();
    assert!(behind >= 60, "{behind} events behind");
    assert_ne!(applied(&tally).await, expected(3, 40));

    let relay = spawn_tail(&store, NatsPublisher::connect(&options).await.unwrap());
    eventually(20, "everything applied after the restart", || async {
        applied(&tally).await == expected(3, 40)
    })
    .await;
    eventually(10, "the slot's lag shrinks once the relay runs", || async {
        let (active, bytes) = lag().await;
        active && bytes < stopped_lag
    })
    .await;
    relay.abort();
    consumer.abort();
    delete_stream(&options).await;
}

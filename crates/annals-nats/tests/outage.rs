//! Fault test (b): the broker dies (SIGKILL) for a few seconds while the relay publishes and
//! appends go on; after it is back, every event's effect is applied exactly once, in stream
//! order; for both sources (polling, log tailing). Runs its own nats-server on a free loopback port, so stopping it disturbs no other test.

mod common;

use std::time::Duration;

use annals::relay::Relay;
use annals_nats::NatsPublisher;
use annals_postgres::tail::TailRelay;
use annals_sqlite::SqliteStore;
use common::{PrivateNats, applied, eventually, expected, spawn_tally_consumer, unique_options, write_history};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_when_the_broker_is_down_for_a_while_polling() {
    broker_outage(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_when_the_broker_is_down_for_a_while_tailing() {
    broker_outage(true).await;
}

async fn broker_outage(tail: bool) {
    let mut nats = PrivateNats::start();
    let options = unique_options(&nats.url(), "outage");
    let dir = tempfile::tempdir().unwrap();
    let (store, _guard) = annals_postgres::testing::fresh().await;
    let tally = SqliteStore::open(dir.path().join("tally.db")).await.unwrap();

    let publisher = NatsPublisher::connect(&options).await.unwrap();
    let relay_store = store.clone();
    let relay = tokio::spawn(async move {
        if tail {
            TailRelay::new("main", relay_store, publisher)
                .run(std::future::pending())
                .await
                .unwrap()
        } else {
            let mut relay = Relay::new("main", relay_store, publisher).with_batch(50);
            relay.run(std::future::pending()).await.unwrap()
        }
    });
    let consuming = spawn_tally_consumer(&options, &tally).await;

    write_history(&store, 4, 30).await;
    eventually(20, "first events applied", || async {
        applied(&tally).await == expected(4, 30)
    })
    .await;

    // The broker goes away while appends continue, and comes back 3 s later.
    nats.kill();
    write_history(&store, 4, 40).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_ne!(
        applied(&tally).await,
        expected(4, 70),
        "applied while the broker was down?"
    );
    nats.restart();
    write_history(&store, 4, 30).await;
    eventually(60, "everything applied after the outage", || async {
        applied(&tally).await == expected(4, 100)
    })
    .await;
    assert!(!consuming.is_finished(), "the consumer gave up during the outage");
    relay.abort();
    consuming.abort();
}

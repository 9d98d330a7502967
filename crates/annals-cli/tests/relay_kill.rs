//! Fault test (a): `annals relay` is killed (SIGKILL) three times while it publishes a 10 000-event
//! history from PostgreSQL to NATS JetStream, then restarted until it has caught up. A durable
//! consumer in this process applies every event through the inbox: each event's effect exactly
//! once, each stream in version order.

use std::process::{Command, Stdio};
use std::time::Duration;

use annals::EventStore;
use annals::consume::Checkpoints;
use annals::testkit::tally::{Tally, applied, expected, write_history};
use annals_nats::{ConsumerOptions, NatsConsumer, NatsOptions};
use annals_postgres::{PostgresOptions, PostgresStore};
use annals_sqlite::SqliteStore;

const NATS: &str = "nats://127.0.0.1:4222";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_relay_restarts_and_every_event_is_applied_exactly_once_in_order() {
    let schema = annals_postgres::testing::unique_schema("relaykill");
    let guard = annals_postgres::testing::SchemaGuard { schema: schema.clone() };
    let url = annals_postgres::testing::url();
    let store = PostgresStore::connect_with(
        &url,
        PostgresOptions {
            schema: schema.clone(),
            ..PostgresOptions::default()
        },
    )
    .await
    .unwrap();
    write_history(&store, 20, 500).await;
    let head = store.head_position().await.unwrap();
    assert_eq!(head, 10_000);

    let id = uuid::Uuid::now_v7().simple().to_string();
    let options = NatsOptions::new(NATS).with_names(format!("KILL{id}"), format!("kill{id}"));
    let dir = tempfile::tempdir().unwrap();
    let tally = SqliteStore::open(dir.path().join("tally.db")).await.unwrap();
    let js = annals_nats::connect(&options).await.unwrap();
    let consumer = NatsConsumer::new(
        js.clone(),
        options.clone(),
        ConsumerOptions::new("tally"),
        Tally { store: tally.clone() },
        tally.clone(),
    );
    let consuming = tokio::spawn(async move { consumer.run(std::future::pending()).await });

    let relay = |extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_annals"));
        c.args(["--db", &url, "--pg-schema", &schema, "relay", "--nats", NATS])
            .args(["--stream", &options.stream, "--prefix", &options.subject_prefix])
            .args(["--batch", "100", "--lease", "1s"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let mut kills_mid_stream = 0;
    for _ in 0..3 {
        let mut child = relay(&[]).spawn().unwrap();
        let before = store.load_checkpoint("relay.main").await.unwrap().unwrap_or(0);
        // Kill it once it has moved on by some batches, before it is done.
        for _ in 0..400 {
            let at = store.load_checkpoint("relay.main").await.unwrap().unwrap_or(0);
            if at >= before + 1_000 || at >= head {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        child.kill().unwrap(); // SIGKILL: no lease release, no goodbye
        child.wait().unwrap();
        let at = store.load_checkpoint("relay.main").await.unwrap().unwrap_or(0);
        if at > before && at < head {
            kills_mid_stream += 1;
        }
    }
    eprintln!("{kills_mid_stream} of 3 kills landed mid-stream");
    assert!(kills_mid_stream > 0, "no kill landed in the middle of the stream");

    // Restarted: it waits out the dead relay's lease, then publishes the rest and stops.
    let status = relay(&["--until-caught-up"]).status().unwrap();
    assert!(status.success());
    assert_eq!(store.load_checkpoint("relay.main").await.unwrap(), Some(head));

    let want = expected(20, 500);
    for _ in 0..600 {
        if applied(&tally).await == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(applied(&tally).await, want, "lost, repeated or reordered effects");
    consuming.abort();
    let _ = js.delete_stream(&options.stream).await;
    drop(guard);
}

//! Fault test (a): `annals relay` is killed (SIGKILL) three times while it publishes 10 000 events
//! from PostgreSQL to NATS JetStream — half written before it starts, half while it runs and is
//! killed — then restarted until it has caught up. A durable consumer in this process applies
//! every event through the inbox: each event's effect exactly once, each stream in version order.
//! Run for both sources: polling the log and tailing the transaction log. Also: `annals status`
//! shows a stopped tailing relay's slot lag.

use std::process::{Command, Stdio};
use std::time::Duration;

use annals::EventStore;
use annals::consume::Checkpoints;
use annals::testkit::tally::{Tally, applied, expected, write_history};
use annals_nats::{ConsumerOptions, NatsConsumer, NatsOptions};
use annals_postgres::{PostgresOptions, PostgresStore};
use annals_sqlite::SqliteStore;

const NATS: &str = "nats://127.0.0.1:4222";

/// A store in a fresh schema, its guard, and the URL and schema to give `annals`.
async fn pg_store(prefix: &str) -> (PostgresStore, annals_postgres::testing::SchemaGuard, String, String) {
    let schema = annals_postgres::testing::unique_schema(prefix);
    let guard = annals_postgres::testing::SchemaGuard { schema: schema.clone() };
    let url = annals_postgres::testing::url();
    let options = PostgresOptions {
        schema: schema.clone(),
        ..PostgresOptions::default()
    };
    let store = PostgresStore::connect_with(&url, options).await.unwrap();
    (store, guard, url, schema)
}

type Consuming = tokio::task::JoinHandle<Result<annals_nats::ConsumerProgress, annals_nats::NatsConsumeError>>;

/// A durable consumer applying the tally into a SQLite store in `dir`.
async fn tally_consumer(
    options: &NatsOptions,
    dir: &std::path::Path,
) -> (SqliteStore, async_nats::jetstream::Context, Consuming) {
    let tally = SqliteStore::open(dir.join("tally.db")).await.unwrap();
    let js = annals_nats::connect(options).await.unwrap();
    let consumer = NatsConsumer::new(
        js.clone(),
        options.clone(),
        ConsumerOptions::new("tally"),
        Tally { store: tally.clone() },
        tally.clone(),
    );
    (
        tally,
        js,
        tokio::spawn(async move { consumer.run(std::future::pending()).await }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_polling_relay_restarts_and_every_event_is_applied_exactly_once_in_order() {
    kill_and_check("poll").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_tailing_relay_restarts_and_every_event_is_applied_exactly_once_in_order() {
    kill_and_check("tail").await;
}

async fn kill_and_check(source: &str) {
    let (store, guard, url, schema) = pg_store("relaykill").await;
    write_history(&store, 20, 250).await;

    let id = uuid::Uuid::now_v7().simple().to_string();
    let options = NatsOptions::new(NATS).with_names(format!("KILL{id}"), format!("kill{id}"));
    let dir = tempfile::tempdir().unwrap();
    let (tally, js, consuming) = tally_consumer(&options, dir.path()).await;

    let relay = |extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_annals"));
        c.args(["--db", &url, "--pg-schema", &schema, "relay", "--nats", NATS])
            .args(["--stream", &options.stream, "--prefix", &options.subject_prefix])
            .args(["--batch", "100", "--lease", "1s", "--source", source])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    // The other half is written while the relay runs and is killed.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move { write_history(&store, 20, 250).await })
    };
    let mut kills_mid_stream = 0;
    for _ in 0..3 {
        let head = store.head_position().await.unwrap();
        let mut child = relay(&[]).spawn().unwrap();
        let before = store.load_checkpoint("relay.main").await.unwrap().unwrap_or(0);
        // Kill it once it has moved on by some batches, before it is done. It may first wait out
        // the last killed relay's lease, and a loaded machine may start it slowly: no fixed
        // window, only a generous deadline for its first batch.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let at = store.load_checkpoint("relay.main").await.unwrap().unwrap_or(0);
            if at >= before + 1_000 || at >= head {
                break;
            }
            if std::time::Instant::now() > deadline {
                assert!(at > before, "the relay published nothing in 60 s");
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
    writer.await.unwrap();
    let head = store.head_position().await.unwrap();
    assert_eq!(head, 10_000);

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_a_stopped_tailing_relays_slot_lag() {
    let (store, guard, url, schema) = pg_store("slotlag").await;
    let id = uuid::Uuid::now_v7().simple().to_string();
    let (stream, prefix) = (format!("LAG{id}"), format!("lag{id}"));
    let annals = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_annals"))
            .args(["--db", &url, "--pg-schema", &schema])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let relay = [
        "relay",
        "--source",
        "tail",
        "--until-caught-up",
        "--stream",
        &stream,
        "--prefix",
        &prefix,
    ];
    let slot_line = |status: String| -> serde_json::Value {
        status
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v.get("slot").is_some())
            .expect("a slot line in annals status --json")
    };

    write_history(&store, 3, 10).await;
    annals(&relay);
    write_history(&store, 3, 10).await;
    let slot = slot_line(annals(&["status", "--json"]));
    assert_eq!(slot["slot"], format!("annals_{schema}_main"));
    assert_eq!(slot["active"], false);
    assert_eq!(slot["lag_events"], 30, "{slot}");
    assert!(slot["lag_bytes"].as_i64().unwrap() > 0, "{slot}");
    let text = annals(&["status"]);
    assert!(text.contains("inactive") && text.contains("30 events"), "{text}");

    annals(&relay);
    let slot = slot_line(annals(&["status", "--json"]));
    assert_eq!(slot["lag_events"], 0, "{slot}");

    let client = async_nats::connect(NATS).await.unwrap();
    let _ = async_nats::jetstream::new(client).delete_stream(&stream).await;
    drop(guard);
}

/// `annals relay` on the embedded default: a SQLite file's log published until caught up, then
/// consumed from JetStream by a durable consumer, each effect once and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_relay_publishes_until_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("source.db");
    let store = SqliteStore::open(&path).await.unwrap();
    write_history(&store, 5, 40).await;
    let id = uuid::Uuid::now_v7().simple().to_string();
    let options = NatsOptions::new(NATS).with_names(format!("SQL{id}"), format!("sql{id}"));
    let status = Command::new(env!("CARGO_BIN_EXE_annals"))
        .args(["--db", &path.display().to_string(), "relay", "--until-caught-up"])
        .args(["--stream", &options.stream, "--prefix", &options.subject_prefix])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(store.load_checkpoint("relay.main").await.unwrap(), Some(200));

    let (tally, js, consuming) = tally_consumer(&options, dir.path()).await;
    let want = expected(5, 40);
    for _ in 0..400 {
        if applied(&tally).await == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(applied(&tally).await, want);
    consuming.abort();
    let _ = js.delete_stream(&options.stream).await;
}

/// Two `annals relay` processes on one database: one holds the lease and publishes, the other
/// waits. The active one is SIGKILLed; the standby takes over within seconds and every event
/// still reaches the consumer once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_relay_process_takes_over_from_a_killed_one() {
    let (store, guard, url, schema) = pg_store("standby").await;
    let id = uuid::Uuid::now_v7().simple().to_string();
    let options = NatsOptions::new(NATS).with_names(format!("SB{id}"), format!("sb{id}"));
    let dir = tempfile::tempdir().unwrap();
    let (tally, js, consuming) = tally_consumer(&options, dir.path()).await;
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_annals"))
            .args(["--db", &url, "--pg-schema", &schema, "relay", "--nats", NATS])
            .args([
                "--stream",
                &options.stream,
                "--prefix",
                &options.subject_prefix,
                "--lease",
                "1s",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut relays = [spawn(), spawn()];
    write_history(&store, 4, 20).await;
    let want = expected(4, 20);
    for _ in 0..400 {
        if applied(&tally).await == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(applied(&tally).await, want);

    // The lease row names the active process (holder = "<pid>-<uuid>").
    let client = store.client().await.unwrap();
    let holder: String = client
        .query_one("SELECT holder FROM leases WHERE name = 'main'", &[])
        .await
        .unwrap()
        .get(0);
    let pid: u32 = holder.split('-').next().unwrap().parse().unwrap();
    let active = relays
        .iter()
        .position(|c| c.id() == pid)
        .expect("the holder is one of ours");
    relays[active].kill().unwrap();
    relays[active].wait().unwrap();
    let killed = std::time::Instant::now();

    write_history(&store, 4, 10).await;
    let want = expected(4, 30);
    for _ in 0..400 {
        if applied(&tally).await == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(applied(&tally).await, want, "the standby did not publish everything");
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(5), "the standby took {took:?} to take over");
    let holder: String = client
        .query_one("SELECT holder FROM leases WHERE name = 'main'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(holder.starts_with(&format!("{}-", relays[1 - active].id())), "{holder}");
    eprintln!("standby took over and caught up {took:?} after the kill");
    let standby = &mut relays[1 - active];
    standby.kill().unwrap();
    standby.wait().unwrap();
    consuming.abort();
    let _ = js.delete_stream(&options.stream).await;
    drop(guard);
}

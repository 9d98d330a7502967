//! Exactly-once projections under `kill -9`: the order-history projection runs in an `annals`
//! process that is killed (SIGKILL) again and again while it works and while orders keep coming;
//! after a final catch-up, every order's row has applied each of its events exactly once (its
//! event count equals the stream's version). Run on SQLite and on PostgreSQL.

use std::collections::HashMap;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use annals::consume::Checkpoints;
use annals::{EventStore, ExpectedVersion};
use annals_postgres::{PostgresOptions, PostgresStore};
use annals_sqlite::SqliteStore;
use ftgo::order_history::sample_order;

/// How to run `annals` against the store.
struct Target {
    args: Vec<String>,
}

impl Target {
    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ftgo"));
        c.args(&self.args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.command().args(args).output().expect("annals runs");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn json_lines(&self, args: &[&str]) -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&self.run(args).stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The projection's checkpoint (0 before its first batch).
    fn checkpoint(&self) -> u64 {
        self.json_lines(&["status", "--json"])
            .iter()
            .find(|c| c["consumer"] == "order-history")
            .and_then(|c| c["position"].as_u64())
            .unwrap_or(0)
    }
}

async fn add_orders<S: EventStore>(store: &S, range: std::ops::Range<usize>) {
    for i in range {
        let (id, events) = sample_order(i);
        store
            .append_to_stream(id, "Order", ExpectedVersion::NoStream, events)
            .await
            .unwrap();
    }
}

/// The projection's checkpoint as the store holds it (0 before its first batch).
async fn stored_checkpoint<S: Checkpoints>(store: &S) -> u64 {
    store.load_checkpoint("order-history").await.unwrap().unwrap_or(0)
}

async fn kill_runs_and_check<S: EventStore + Checkpoints>(store: S, target: Target) {
    add_orders(&store, 0..1500).await;
    let mut next = 1500;
    let mut mid_run_kills = 0;
    for round in 0..5u64 {
        let start = stored_checkpoint(&store).await;
        let mut child = target
            .command()
            .args(["projection", "run", "order-history", "--follow", "--batch", "5"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        add_orders(&store, next..next + 40).await;
        next += 40;
        // Kill once the runner has committed a batch of this round, however slowly it started on
        // a loaded machine (a fixed sleep could kill it before its first batch every time), a
        // little later each round so the kills land at different points of its work.
        let deadline = Instant::now() + Duration::from_secs(60);
        while stored_checkpoint(&store).await <= start {
            assert!(
                Instant::now() < deadline,
                "round {round}: the runner made no progress in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(5 * round)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let at = target.checkpoint();
        let head = store.head_position().await.unwrap();
        if at < head {
            mid_run_kills += 1;
        }
    }
    assert!(
        mid_run_kills > 0,
        "at least one kill must land while the projection works"
    );

    target.run(&["projection", "run", "order-history"]);
    let head = store.head_position().await.unwrap();
    assert_eq!(target.checkpoint(), head);
    let versions: HashMap<String, u64> = target
        .json_lines(&["streams", "--json"])
        .iter()
        .map(|s| {
            (
                s["stream_id"].as_str().unwrap().to_owned(),
                s["version"].as_u64().unwrap(),
            )
        })
        .collect();
    let orders = target.json_lines(&["orders", "--json"]);
    let rows: Vec<&serde_json::Value> = orders.iter().filter(|l| l["kind"] == "order").collect();
    assert_eq!(rows.len(), next, "one row per order");
    for row in rows {
        let id = row["order_id"].as_str().unwrap();
        assert_eq!(
            row["events"].as_u64(),
            versions.get(id).copied(),
            "{id}: every event applied exactly once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_projection_survives_kill_9_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kill.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let target = Target {
        args: vec!["--db".into(), path.display().to_string()],
    };
    kill_runs_and_check(store, target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_projection_survives_kill_9_exactly_once() {
    let schema = annals_postgres::testing::unique_schema("kill");
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
    let target = Target {
        args: vec!["--db".into(), url, "--pg-schema".into(), schema],
    };
    kill_runs_and_check(store, target).await;
    drop(guard);
}

//! The `ftgo` binary end to end: the demo, the order-history read model, the saga demo, with the
//! generic annals commands it carries (history through the Order aggregate, status, sagas). Every
//! test body runs on a SQLite file and on PostgreSQL (a fresh schema of the `test` database).

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// Where a test's `annals` commands point: a SQLite file in a temporary directory, or a fresh
/// PostgreSQL schema (dropped at the end).
struct Db {
    url: String,
    schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            url: dir.path().join("annals.db").display().to_string(),
            schema: None,
            _dir: Some(dir),
        }
    }

    fn postgres() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let url = std::env::var("ANNALS_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = format!("cli_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        Self {
            url,
            schema: Some(schema),
            _dir: None,
        }
    }

    /// The SQLite file, if this is SQLite.
    fn file(&self) -> Option<&Path> {
        self._dir.as_ref().map(|_| Path::new(&self.url))
    }

    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ftgo"));
        c.arg("--db").arg(&self.url);
        if let Some(schema) = &self.schema {
            c.arg("--pg-schema").arg(schema);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("annals runs")
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(schema) = &self.schema {
            let _ = Command::new("psql")
                .args([&self.url, "-qc", &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")])
                .output();
        }
    }
}

/// Stamps each test body into one test per backend.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(&super::Db::sqlite()); } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name(&super::Db::postgres()); } )*
        }
    };
}

on_every_backend!(
    demo_creates_the_store_and_tells_the_story,
    read_side_projection_status_and_parked_messages,
    saga_demo_show_and_status,
    ftgo_commands_keep_the_json_contract,
);

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The JSON contract: one object per line, each with a `kind`.
fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("one JSON object per line");
            assert!(v["kind"].is_string(), "every line says its kind: {l}");
            v
        })
        .collect()
}

fn demo_creates_the_store_and_tells_the_story(db: &Db) {
    let out = db.run(&["demo"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    for needle in [
        "creates order-",
        "approves it",
        "revises it",
        "wrong expected version",
        "cancels it",
        "rejected command",
        "time travel",
    ] {
        assert!(text.contains(needle), "demo output lacks {needle:?}:\n{text}");
    }
    if let Some(file) = db.file() {
        assert!(file.exists());
    }
    let streams = json_lines(&db.run(&["streams", "--json"]));
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0]["stream_type"], "Order");
    assert_eq!(streams[0]["version"], 5);
    let id = streams[0]["stream_id"].as_str().unwrap().to_owned();

    let then = db.run(&["history", &id, "--at-version", "2", "--json"]);
    let then: serde_json::Value = serde_json::from_slice(&then.stdout).unwrap();
    assert_eq!(then["state"]["state"], "APPROVED");
    assert_eq!(then["version"], 2);
    assert_eq!(then["current_version"], 5);
    assert_eq!(then["events"].as_array().unwrap().len(), 2);
    let now = db.run(&["history", &id]);
    assert!(stdout(&now).contains("\"state\": \"CANCELLED\""), "{}", stdout(&now));
    let before = db.run(&["history", &id, "--at-time", "2000-01-01T00:00:00Z", "--json"]);
    let before: serde_json::Value = serde_json::from_slice(&before.stdout).unwrap();
    assert_eq!(before["version"], 0);
    assert_eq!(before["state"]["state"], "NEW");

    // The demo can run again on the same file: a second order.
    assert!(db.run(&["demo"]).status.success());
    assert_eq!(json_lines(&db.run(&["streams", "--json"])).len(), 2);
    let events = json_lines(&db.run(&["events", "--from", "1", "--json"]));
    assert_eq!(events.len(), 10);
    assert!(
        events
            .windows(2)
            .all(|w| w[0]["global_position"].as_u64() < w[1]["global_position"].as_u64())
    );
}

fn read_side_projection_status_and_parked_messages(db: &Db) {
    // Before the projection ever ran, its query says so.
    assert!(
        db.run(&["append", "x-1", "--type", "T", "--data", "{}"])
            .status
            .success()
    );
    let early = db.run(&["orders"]);
    assert_eq!(early.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&early.stderr).contains("has not been built here"));
    for _ in 0..2 {
        assert!(db.run(&["demo"]).status.success());
    }
    // An Order event the read model cannot read: parked after its retries.
    let bad = db.run(&[
        "append",
        "order-broken",
        "--type",
        "OrderCreated",
        "--data",
        r#"{"nonsense":true}"#,
        "--stream-type",
        "Order",
    ]);
    assert!(bad.status.success(), "{}", String::from_utf8_lossy(&bad.stderr));

    let rebuilt = db.run(&["projection", "rebuild", "order-history", "--json"]);
    assert!(rebuilt.status.success(), "{}", String::from_utf8_lossy(&rebuilt.stderr));
    let summary = &json_lines(&rebuilt)[0];
    assert_eq!(
        (summary["position"].as_u64(), summary["handled"].as_u64()),
        (Some(12), Some(10))
    );
    assert_eq!(summary["parked"], 1);

    let lines = json_lines(&db.run(&["orders", "--consumer", "consumer-42", "--json"]));
    let rows: Vec<&serde_json::Value> = lines.iter().filter(|l| l["kind"] == "order").collect();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|o| o["state"] == "CANCELLED" && o["events"] == 5));
    let totals = lines.iter().find(|l| l["kind"] == "orders").expect("a totals line");
    assert_eq!(
        (totals["orders"].as_u64(), totals["open_total_cents"].as_i64()),
        (Some(2), Some(0))
    );
    assert!(stdout(&db.run(&["orders"])).contains("2 orders"));

    let consumer_line = |o: &Output| {
        json_lines(o)
            .into_iter()
            .find(|l| l["kind"] == "consumer")
            .expect("a consumer line")
    };
    let status = &consumer_line(&db.run(&["status", "--json"]));
    assert_eq!(status["consumer"], "order-history");
    assert_eq!(
        (status["position"].as_u64(), status["lag_events"].as_u64()),
        (Some(12), Some(0))
    );
    assert_eq!(status["parked"], 1);
    // New events show as lag until the projection runs.
    assert!(db.run(&["demo"]).status.success());
    let status = &consumer_line(&db.run(&["status", "--json"]));
    assert_eq!(status["lag_events"], 5);
    assert!(status["lag_seconds"].as_f64().unwrap() >= 0.0);
    let text = stdout(&db.run(&["status"]));
    assert!(
        text.contains("order-history") && text.contains("<- catching up"),
        "{text}"
    );
    assert_eq!(status["behind"], "catching up");

    let parked = json_lines(&db.run(&["parked", "list", "--json"]));
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0]["stream_id"], "order-broken");
    assert_eq!(parked[0]["state"], "parked");
    let id = parked[0]["id"].as_u64().unwrap().to_string();
    // A retry that fails again goes back to parked, with one more attempt.
    assert!(db.run(&["parked", "retry", &id]).status.success());
    assert!(db.run(&["projection", "run", "order-history"]).status.success());
    let again = &json_lines(&db.run(&["parked", "list", "--json"]))[0];
    assert_eq!(again["state"], "parked");
    assert_eq!(
        again["failed_again"], true,
        "a retried message that fails again says so"
    );
    assert!(
        again["error"]
            .as_str()
            .unwrap()
            .starts_with("retried and failed again: ")
    );
    assert_eq!(
        again["attempts"].as_u64(),
        parked[0]["attempts"].as_u64().map(|a| a + 1)
    );
    assert!(db.run(&["parked", "skip", &id]).status.success());
    assert_eq!(
        json_lines(&db.run(&["parked", "list", "--json"]))[0]["state"],
        "skipped"
    );
    assert_eq!(consumer_line(&db.run(&["status", "--json"]))["parked"], 0);
    let missing = db.run(&["parked", "skip", "999"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no parked message #999"));
    let unknown = db.run(&["projection", "rebuild", "nope"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("known: order-history"));
}

fn saga_demo_show_and_status(db: &Db) {
    let out = db.run(&["demo", "saga"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    for line in [
        "-> kitchen    CreateTicket",
        "<- accounting FAILURE Failure",
        "-> kitchen    CancelCreateTicket  (compensation)",
        "saga ended: compensated",
    ] {
        assert!(text.contains(line), "demo output lacks {line:?}:\n{text}");
    }
    assert_eq!(text.matches("saga ended: succeeded").count(), 1, "{text}");
    assert!(text.contains("Approved, ticket AwaitingAcceptance"), "{text}");
    assert!(text.contains("Rejected, no ticket"), "{text}");
    assert!(text.contains("Rejected, ticket Cancelled"), "{text}");

    let list = json_lines(&db.run(&["saga", "list", "--json"]));
    assert_eq!(list.len(), 3);
    let statuses: Vec<_> = list.iter().map(|s| s["status"].as_str().unwrap().to_owned()).collect();
    assert_eq!(
        statuses.iter().filter(|s| *s == "Compensated").count(),
        2,
        "{statuses:?}"
    );
    let declined = list
        .iter()
        .find(|s| s["failure"].as_str().is_some_and(|f| f.starts_with("card declined")))
        .expect("the declined order's saga");
    let id = declined["saga"].as_str().unwrap();
    let show = db.run(&["saga", "show", id, "--json"]);
    assert!(show.status.success());
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let timeline: Vec<&str> = shown["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(timeline.first(), Some(&"SagaStarted"));
    assert_eq!(timeline.last(), Some(&"SagaCompleted"));
    assert_eq!(
        timeline.iter().filter(|t| **t == "CommandIssued").count(),
        5,
        "{timeline:?}"
    );
    let text = stdout(&db.run(&["saga", "show", id]));
    assert!(
        text.contains("undo 3 create ticket: CancelCreateTicket -> kitchen"),
        "{text}"
    );

    let status = stdout(&db.run(&["status"]));
    assert!(
        status.contains("sagas: 3 (0 running, 1 succeeded, 2 compensated, 0 failed)"),
        "{status}"
    );
    // The audit trail of the approved order: created by its consumer, approved by the order
    // service because of the saga's ApproveOrder command, all in the saga's correlation.
    let happy = list.iter().find(|s| s["status"] == "Succeeded").unwrap()["saga"]
        .as_str()
        .unwrap();
    let order = happy.trim_start_matches("create-order~");
    let audit = json_lines(&db.run(&["audit", order, "--json"]));
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(audit[0]["actor"].as_str().unwrap().starts_with("alice-"));
    assert_eq!(audit[0]["events"][0]["event_type"], "OrderCreated");
    assert_eq!(
        (audit[1]["actor"].as_str(), audit[1]["events"][0]["event_type"].as_str()),
        (Some("order-service"), Some("OrderApproved"))
    );
    let saga_changes = json_lines(&db.run(&["audit", happy, "--json"]));
    let approve = saga_changes
        .iter()
        .flat_map(|c| c["events"].as_array().unwrap().iter())
        .find(|e| e["event_type"] == "CommandIssued" && e["data"]["command_type"] == "ApproveOrder")
        .unwrap();
    assert_eq!(
        audit[1]["causation_id"], approve["event_id"],
        "caused by the saga's command"
    );
    assert_eq!(audit[0]["correlation_id"], audit[1]["correlation_id"]);
    assert!(
        saga_changes
            .iter()
            .all(|c| c["correlation_id"] == audit[0]["correlation_id"])
    );
    let text = stdout(&db.run(&["audit", order]));
    assert!(
        text.contains("2 changes, 2 events") && text.contains("by order-service"),
        "{text}"
    );
    let missing = db.run(&["saga", "show", "no-such-saga"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no saga `no-such-saga`"));
}

/// `--json` on the FTGO commands: JSON Lines with a kind on every line, the story left out.
fn ftgo_commands_keep_the_json_contract(db: &Db) {
    let demo = json_lines(&db.run(&["demo", "--json"]));
    assert_eq!(demo.last().unwrap()["kind"], "demo");
    assert!(demo.iter().filter(|l| l["kind"] == "event").count() >= 5);
    let saga = json_lines(&db.run(&["demo", "saga", "--json"]));
    let cases: Vec<&serde_json::Value> = saga.iter().filter(|l| l["kind"] == "saga_demo_case").collect();
    assert_eq!(cases.len(), 3, "{saga:?}");
    assert_eq!(cases[0]["order_state"], "Approved");
    let added = json_lines(&db.run(&["add-consumer", "carol", "--json"]));
    assert_eq!(added[0]["kind"], "consumer_added");
    let opened = json_lines(&db.run(&["open-account", "carol", "--json"]));
    assert_eq!(opened[0]["kind"], "account_opened");
    let placed = json_lines(&db.run(&["place-order", "o-json", "--consumer", "carol", "--count", "2", "--json"]));
    assert_eq!(placed.len(), 2);
    assert!(placed.iter().all(|l| l["kind"] == "order_placed"));
}

/// A password in a PostgreSQL URL is never printed: not by the demo's story or hints, not in an
/// error, not under --json. (The test server trusts every login, so the password is accepted and
/// ignored.)
#[test]
fn postgres_a_password_is_never_printed() {
    let url = annals_postgres::testing::url().replacen("postgres@", "postgres:s3cret-pw@", 1);
    assert!(url.contains("s3cret-pw"), "{url}");
    let schema = annals_postgres::testing::unique_schema("secret");
    let _guard = annals_postgres::testing::SchemaGuard { schema: schema.clone() };
    for args in [
        vec!["demo"],
        vec!["demo", "saga"],
        vec!["--json", "demo"],
        vec!["history", "no-such-stream"],
        vec!["--json", "history", "no-such-stream"],
        vec!["init"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ftgo"))
            .args(["--db", url.as_str(), "--pg-schema", schema.as_str()])
            .args(&args)
            .env("RUST_LOG", "debug")
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains("s3cret-pw"), "{args:?} printed the password: {all}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ftgo"))
        .args(["--db", url.as_str(), "--pg-schema", schema.as_str(), "demo"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("postgres:***@"),
        "the hint keeps the URL's shape"
    );
}

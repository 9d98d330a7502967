//! `annals relay` never retries for ever in silence: a broker that cannot work is refused at once
//! with what to fix, one that cannot be reached is retried visibly (a warning per try on stderr,
//! a row in `annals status`) and given up with exit code 6, a signal stops it cleanly (its lease
//! released), and a tailing relay's slot and publication can be dropped by a command.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use annals::EventStore;
use annals_postgres::{PostgresOptions, PostgresStore};

fn annals(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_annals"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A SQLite store in `dir` with one event, and its path.
fn sqlite_with_an_event(dir: &std::path::Path) -> String {
    let db = dir.join("r.db").display().to_string();
    let out = annals(&["--db", &db, "append", "note-1", "--type", "NoteAdded", "--data", "{}"]);
    assert!(out.status.success(), "{}", stderr(&out));
    db
}

#[test]
fn brokers_that_cannot_work_are_refused_at_once_with_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_with_an_event(dir.path());
    for (url, code, says) in [
        ("", 7, "it is empty"),
        ("   ", 7, "it is empty"),
        ("http://127.0.0.1:4222", 7, "not http://"),
        ("nats://no-such-host.invalid:4222", 7, "does not resolve"),
    ] {
        let started = Instant::now();
        let out = annals(&["--db", &db, "relay", "--until-caught-up", "--nats", url]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{url:?}: {err}");
        assert!(err.contains(says), "{url:?}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{url:?} took {:?}",
            started.elapsed()
        );
        let json = annals(&["--db", &db, "--json", "relay", "--until-caught-up", "--nats", url]);
        let line = String::from_utf8_lossy(&json.stderr);
        let last = line.lines().last().unwrap_or_default();
        let parsed: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("{last}: {e}"));
        assert_eq!(parsed["error"]["kind"], "misconfigured", "{last}");
    }
}

#[test]
fn a_broker_nobody_answers_is_retried_visibly_then_given_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_with_an_event(dir.path());
    // Port 9 (discard) on loopback: nothing listens there on the test machines.
    let out = annals(&[
        "--db",
        &db,
        "relay",
        "--until-caught-up",
        "--nats",
        "nats://127.0.0.1:9",
        "--give-up-after",
        "1s",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(
        err.contains("connecting to NATS failed; retrying"),
        "each try is logged: {err}"
    );
    assert!(
        err.contains("is nats-server running there?"),
        "the reason is said: {err}"
    );
    assert!(err.contains("gave up after"), "{err}");
    assert!(!err.contains("jetstream request timed out"), "{err}");
    // The failure is on record for `annals status` until the relay works again.
    let status = annals(&["--db", &db, "status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("relay.main STOPPED since"), "{text}");
    assert!(text.contains("connecting to NATS"), "{text}");
    // Quiet: no warnings, still the error.
    let quiet = annals(&[
        "--db",
        &db,
        "-q",
        "relay",
        "--until-caught-up",
        "--nats",
        "nats://127.0.0.1:9",
        "--give-up-after",
        "300ms",
    ]);
    let err = stderr(&quiet);
    assert_eq!(quiet.status.code(), Some(6), "{err}");
    assert!(!err.contains("retrying"), "{err}");
    assert!(err.contains("error:"), "{err}");
    // Machine-readable logs.
    let json = annals(&[
        "--db",
        &db,
        "--log-format",
        "json",
        "relay",
        "--until-caught-up",
        "--nats",
        "nats://127.0.0.1:9",
        "--give-up-after",
        "300ms",
    ]);
    let warning = String::from_utf8_lossy(&json.stderr)
        .lines()
        .find(|l| l.contains("retrying"))
        .map(str::to_owned)
        .expect("a warning line");
    let parsed: serde_json::Value = serde_json::from_str(&warning).unwrap_or_else(|e| panic!("{warning}: {e}"));
    assert_eq!(parsed["level"], "WARN", "{warning}");
}

#[test]
fn sigterm_stops_a_relay_cleanly_and_releases_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_with_an_event(dir.path());
    let stream = format!("SIGTERM{}", std::process::id());
    let mut relay = Command::new(env!("CARGO_BIN_EXE_annals"))
        .args([
            "--db",
            &db,
            "relay",
            "--stream",
            &stream,
            "--prefix",
            &stream.to_lowercase(),
        ])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until it has published (its cursor is stored), then ask it to stop.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = annals(&["--db", &db, "--json", "status"]);
        if String::from_utf8_lossy(&status.stdout).contains("\"relay.main\"") {
            break;
        }
        assert!(Instant::now() < deadline, "the relay published nothing in 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = relay.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let waited = Instant::now();
    let exit = loop {
        if let Some(exit) = relay.try_wait().unwrap() {
            break exit;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(15),
            "SIGTERM did not stop the relay"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(relay.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(exit.code(), Some(0), "a clean stop: {err}");
    assert!(err.contains("relay: stopped at position 1"), "{err}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let leases: i64 = conn.query_row("SELECT count(*) FROM leases", [], |r| r.get(0)).unwrap();
    assert_eq!(leases, 0, "the lease is given up on the way out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tailing_relays_slot_and_publication_can_be_dropped() {
    let schema = annals_postgres::testing::unique_schema("dropslot");
    let _guard = annals_postgres::testing::SchemaGuard { schema: schema.clone() };
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
    store
        .append_to_stream(
            annals::StreamId::new("note-1").unwrap(),
            "Note",
            annals::ExpectedVersion::Any,
            vec![annals::NewEvent::from_value("NoteAdded", &serde_json::json!({}))],
        )
        .await
        .unwrap();
    let nats_stream = format!("DROP{}", std::process::id());
    let base = ["--db", url.as_str(), "--pg-schema", schema.as_str()];
    let run = |extra: &[&str]| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(extra);
        annals(&args)
    };
    let prefix = nats_stream.to_lowercase();
    let relay = run(&[
        "relay",
        "--source",
        "tail",
        "--until-caught-up",
        "--name",
        "tailer",
        "--stream",
        &nats_stream,
        "--prefix",
        &prefix,
    ]);
    assert!(relay.status.success(), "{}", stderr(&relay));
    let client = store.client().await.unwrap();
    let count = |sql: &'static str, name: String| {
        let client = &client;
        async move { client.query_one(sql, &[&name]).await.unwrap().get::<_, i64>(0) }
    };
    let slot = format!("annals_{schema}_tailer");
    let publication = format!("annals_{schema}");
    let slot_sql = "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1";
    let pub_sql = "SELECT count(*) FROM pg_publication WHERE pubname = $1";
    assert_eq!(
        count(slot_sql, slot.clone()).await,
        1,
        "the slot stays after the relay stops"
    );
    assert_eq!(count(pub_sql, publication.clone()).await, 1);
    let help = annals(&["relay", "--help"]);
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("drop-slot"),
        "relay --help names the command"
    );
    let dropped = run(&["relay", "drop-slot", "--name", "tailer"]);
    let err = stderr(&dropped);
    assert!(dropped.status.success(), "{err}");
    assert!(err.contains(&format!("dropped replication slot {slot}")), "{err}");
    assert!(err.contains(&format!("dropped publication {publication}")), "{err}");
    assert_eq!(count(slot_sql, slot).await, 0);
    assert_eq!(count(pub_sql, publication).await, 0);
    let again = run(&["relay", "drop-slot", "--name", "tailer"]);
    assert!(again.status.success());
    assert!(stderr(&again).contains("no slot to drop"));
    // A relay name that makes no slot name is refused at once, not retried.
    let bad = run(&["relay", "--source", "tail", "--until-caught-up", "--name", "Bad-Name"]);
    let err = stderr(&bad);
    assert_eq!(bad.status.code(), Some(7), "{err}");
    assert!(err.contains("invalid replication slot name"), "{err}");
}

/// The PostgreSQL server at `wal_level = replica` that `.ci/services` runs beside the main one
/// (`ANNALS_TEST_PG_REPLICA`, by default port 5433): log tailing cannot work there.
fn replica_level_url() -> String {
    std::env::var("ANNALS_TEST_PG_REPLICA").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5433/postgres".into())
}

#[test]
fn a_tailing_relay_on_a_server_without_logical_wal_stops_at_once_saying_what_to_set() {
    let url = replica_level_url();
    let schema = format!("walreplica_{}", std::process::id());
    let base = ["--db", url.as_str(), "--pg-schema", schema.as_str()];
    let run = |args: &[&str]| annals(&[&base[..], args].concat());
    let appended = run(&["append", "order-1", "--type", "OrderCreated", "--data", "{}"]);
    assert!(
        appended.status.success(),
        "the wal_level=replica server at {url} is needed (bash .ci/services starts it): {}",
        stderr(&appended)
    );
    let started = Instant::now();
    let out = run(&["relay", "--source", "tail", "--until-caught-up", "--name", "walcheck"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(7), "misconfigured, not retried: {err}");
    assert!(err.contains("wal_level = logical"), "it says what to set: {err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let json = run(&[
        "--json",
        "relay",
        "--source",
        "tail",
        "--until-caught-up",
        "--name",
        "walcheck",
    ]);
    let text = String::from_utf8_lossy(&json.stderr);
    let last = text.lines().last().unwrap_or_default();
    let parsed: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("{last}: {e}"));
    assert_eq!(parsed["error"]["kind"], "misconfigured", "{last}");
    // Nothing is left behind: no slot was made, and the test's schema goes.
    let drop = Command::new("psql")
        .args([
            url.as_str(),
            "-Atqc",
            &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(drop.status.success(), "{}", String::from_utf8_lossy(&drop.stderr));
}

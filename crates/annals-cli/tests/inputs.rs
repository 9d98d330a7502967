//! The inputs a user needs: payloads from a file or stdin (a large one refused by name, not by
//! the OS), one stream followed, the log and a history filtered by stream and event type, pages of
//! streams and of a history, completions, a man page and a `--help` with examples and exit codes.
//! On SQLite and PostgreSQL.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::TestStore;

struct Db(TestStore);

impl Db {
    fn sqlite() -> Self {
        Self(TestStore::sqlite("inputs.db"))
    }

    fn postgres() -> Self {
        Self(TestStore::postgres("inputs"))
    }

    fn command(&self) -> Command {
        let mut c = self.0.annals();
        c.env_remove("RUST_LOG").env("USER", "tester");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn lines(&self, args: &[&str]) -> Vec<serde_json::Value> {
        self.ok(args)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn payloads_from_files_and_stdin(db: &Db) {
    let big_enough = format!(r#"{{"text":"{}"}}"#, "x".repeat(500_000));
    let file = db.0.dir().join("note.json");
    std::fs::write(&file, &big_enough).unwrap();
    let file = file.display().to_string();
    db.ok(&[
        "append",
        "note-1",
        "--type",
        "NoteAdded",
        "--data-file",
        &file,
        "--stream-type",
        "note",
    ]);
    let mut child = db
        .command()
        .args(["append", "note-1", "--type", "NoteAdded", "--data", "-", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"text":"from stdin"}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let appended: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(appended["version"], 2);
    let events = db.lines(&["events", "--json", "--stream", "note-1"]);
    assert_eq!(events[0]["payload"]["text"].as_str().unwrap().len(), 500_000);
    assert_eq!(events[1]["payload"]["text"], "from stdin");
    // Ten megabytes: refused by the event size limit, with the limit named, nothing stored.
    let huge = db.0.dir().join("huge.json");
    std::fs::write(&huge, format!(r#"{{"text":"{}"}}"#, "y".repeat(10 << 20))).unwrap();
    let out = db.run(&[
        "append",
        "note-1",
        "--type",
        "NoteAdded",
        "--data-file",
        &huge.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1048576 bytes"));
    let missing = db.run(&[
        "append",
        "note-1",
        "--type",
        "NoteAdded",
        "--data-file",
        "/no/such/file.json",
    ]);
    assert_eq!(missing.status.code(), Some(5));
    assert_eq!(
        db.run(&["append", "note-1", "--type", "NoteAdded"]).status.code(),
        Some(2)
    );
    assert_eq!(
        db.run(&["append", "note-1", "--type", "T", "--data", "{}", "--data-file", &file])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(db.lines(&["events", "--json"]).len(), 2, "refusals stored nothing");
    // A new stream's type taken from its id is said, never silent.
    let out = db.run(&["append", "order-x", "--type", "OrderNoted", "--data", "{}"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("its type is `order`, taken from its id"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without an actor, the command says so.
    let out = db
        .command()
        .env_remove("USER")
        .args(["append", "note-1", "--type", "NoteAdded", "--data", "{}"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no actor recorded"));
}

fn filters_and_pages(db: &Db) {
    for (stream, t) in [
        ("a-1", "Opened"),
        ("b-1", "Opened"),
        ("a-1", "Closed"),
        ("c-1", "Opened"),
        ("a-1", "Noted"),
    ] {
        db.ok(&["append", stream, "--type", t, "--data", "{}"]);
    }
    let only_a: Vec<u64> = db
        .lines(&["events", "--json", "--stream", "a-1"])
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(only_a, [1, 2, 3]);
    let opened = db.lines(&["events", "--json", "--type", "Opened"]);
    assert_eq!(opened.len(), 3);
    assert_eq!(
        db.lines(&["events", "--json", "--type", "Opened", "--limit", "2"])
            .len(),
        2
    );
    let out = db.run(&["events", "--from", "99"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the log ends at position 9"));
    let page = db.lines(&["history", "a-1", "--json", "--from-version", "2", "--limit", "1"]);
    let shown: Vec<u64> = page[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(shown, [2]);
    assert_eq!(page[0]["version"], 3, "the state still adds every event up");
    let typed = db.lines(&["history", "a-1", "--json", "--type", "Noted"]);
    assert_eq!(typed[0]["events"].as_array().unwrap().len(), 1);
    // Streams: a header, columns that line up, pages.
    let text = db.ok(&["streams"]);
    let rows: Vec<&str> = text.lines().collect();
    assert!(rows[0].starts_with("STREAM"), "{text}");
    let column = |line: &str, word: &str| line.find(word).unwrap();
    let version_at = column(rows[0], "VERSION");
    assert!(rows[1..].iter().all(|r| r.len() > version_at), "{text}");
    let first = db.run(&["streams", "--limit", "2", "--json"]);
    let ids: Vec<String> = String::from_utf8_lossy(&first.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["stream_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids, ["a-1", "b-1"]);
    assert!(String::from_utf8_lossy(&first.stderr).contains("--after b-1"));
    let next: Vec<String> = db
        .lines(&["streams", "--json", "--after", "b-1"])
        .iter()
        .map(|s| s["stream_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(next, ["c-1", "note-1", "order-x"]);
}

fn one_stream_followed(db: &Db) {
    db.ok(&["append", "f-1", "--type", "Started", "--data", "{}"]);
    let mut follower = db
        .command()
        .args(["history", "f-1", "--follow", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(follower.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    let history: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(history["kind"], "history");
    db.ok(&["append", "other-1", "--type", "Ignored", "--data", "{}"]);
    db.ok(&["append", "f-1", "--type", "Stepped", "--data", r#"{"n":2}"#]);
    db.ok(&["append", "f-1", "--type", "Stepped", "--data", r#"{"n":3}"#]);
    let started = Instant::now();
    let mut versions = Vec::new();
    while versions.len() < 2 {
        assert!(started.elapsed() < Duration::from_secs(30), "no new events followed");
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let e: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            (e["kind"].as_str(), e["stream_id"].as_str()),
            (Some("event"), Some("f-1"))
        );
        versions.push(e["version"].as_u64().unwrap());
    }
    assert_eq!(versions, [2, 3]);
    let pid = follower.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert_eq!(
        follower.wait().unwrap().code(),
        Some(0),
        "SIGTERM ends the follow cleanly"
    );
}

fn whole(db: &Db) {
    payloads_from_files_and_stdin(db);
    filters_and_pages(db);
    one_stream_followed(db);
}

#[test]
fn sqlite_inputs_a_user_needs() {
    whole(&Db::sqlite());
}

#[test]
fn postgres_inputs_a_user_needs() {
    whole(&Db::postgres());
}

#[test]
fn help_completions_and_a_man_page() {
    let cwd = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_annals"))
            .args(args)
            .current_dir(cwd.path())
            .env_remove("ANNALS_DB")
            .output()
            .unwrap()
    };
    let help = String::from_utf8_lossy(&run(&["--help"]).stdout).into_owned();
    assert!(
        help.contains("Examples:") && help.contains("annals history order-42 --at-time"),
        "{help}"
    );
    assert!(help.contains("Exit codes:") && help.contains("3 conflict") && help.contains("6 unavailable"));
    assert!(help.contains("JSON Lines") && help.contains("\"kind\""), "{help}");
    let bash = run(&["completions", "bash"]);
    assert!(bash.status.success());
    let script = String::from_utf8_lossy(&bash.stdout);
    assert!(
        script.contains("_annals()") && script.contains("history"),
        "{}",
        &script[..200.min(script.len())]
    );
    let man = run(&["man"]);
    assert!(man.status.success());
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(
        page.contains(".TH annals") && page.contains("relay"),
        "{}",
        &page[..200.min(page.len())]
    );
    // Neither needs a store: nothing was created in the working directory.
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0);
}

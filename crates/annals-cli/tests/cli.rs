//! The `annals` binary end to end on a SQLite file: demo, streams, history, events, append.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn annals(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_annals"))
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("annals runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn demo_creates_the_database_and_tells_the_story() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("annals.db");
    let out = annals(&db, &["demo"]);
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
    assert!(db.exists());
    let streams = json_lines(&annals(&db, &["streams", "--json"]));
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0]["stream_type"], "Order");
    assert_eq!(streams[0]["version"], 5);
    let id = streams[0]["stream_id"].as_str().unwrap().to_owned();

    let then = annals(&db, &["history", &id, "--at-version", "2", "--json"]);
    let then: serde_json::Value = serde_json::from_slice(&then.stdout).unwrap();
    assert_eq!(then["state"]["state"], "APPROVED");
    assert_eq!(then["version"], 2);
    assert_eq!(then["current_version"], 5);
    assert_eq!(then["events"].as_array().unwrap().len(), 2);
    let now = annals(&db, &["history", &id]);
    assert!(stdout(&now).contains("\"state\": \"CANCELLED\""), "{}", stdout(&now));
    let before = annals(&db, &["history", &id, "--at-time", "2000-01-01T00:00:00Z", "--json"]);
    let before: serde_json::Value = serde_json::from_slice(&before.stdout).unwrap();
    assert_eq!(before["version"], 0);
    assert_eq!(before["state"]["state"], "NEW");

    // The demo can run again on the same file: a second order.
    assert!(annals(&db, &["demo"]).status.success());
    assert_eq!(json_lines(&annals(&db, &["streams", "--json"])).len(), 2);
    let events = json_lines(&annals(&db, &["events", "--from", "1", "--json"]));
    assert_eq!(events.len(), 10);
    assert!(
        events
            .windows(2)
            .all(|w| w[0]["global_position"].as_u64() < w[1]["global_position"].as_u64())
    );
}

#[test]
fn append_checks_versions_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let ok = annals(
        &db,
        &[
            "append",
            "note-1",
            "--type",
            "NoteAdded",
            "--data",
            r#"{"text":"hi"}"#,
            "--expected-version",
            "no-stream",
        ],
    );
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let conflict = annals(
        &db,
        &[
            "append",
            "note-1",
            "--type",
            "NoteAdded",
            "--data",
            "{}",
            "--expected-version",
            "no-stream",
        ],
    );
    assert_eq!(conflict.status.code(), Some(2), "a conflict exits with 2");
    let err = String::from_utf8_lossy(&conflict.stderr);
    assert!(
        err.contains("note-1") && err.contains("expected no stream") && err.contains("actual version 1"),
        "{err}"
    );
    let second = annals(
        &db,
        &[
            "append",
            "note-1",
            "--type",
            "NoteAdded",
            "--data",
            r#"{"text":"again"}"#,
            "--expected-version",
            "1",
            "--json",
        ],
    );
    assert_eq!(json_lines(&second)[0]["version"], 2);

    for (args, needle) in [
        (
            vec!["append", "note 1", "--type", "X", "--data", "{}"],
            "invalid stream id",
        ),
        (
            vec!["append", "note-1", "--type", "X", "--data", "{oops"],
            "not valid JSON",
        ),
        (
            vec!["append", "note-1", "--type", "bad type", "--data", "{}"],
            "invalid event type",
        ),
        (
            vec![
                "append",
                "note-1",
                "--type",
                "X",
                "--data",
                "{}",
                "--expected-version",
                "soon",
            ],
            "--expected-version",
        ),
        (vec!["append", "lonely", "--type", "X", "--data", "{}"], "--stream-type"),
    ] {
        let out = annals(&db, &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let events = json_lines(&annals(&db, &["events", "--json"]));
    assert_eq!(events.len(), 2, "refused appends change nothing");
    assert_eq!(events[0]["stream_type"], "note");
    assert_eq!(events[1]["payload"]["text"], "again");
    let history = stdout(&annals(&db, &["history", "note-1"]));
    assert!(
        history.contains("generic fold") && history.contains("\"text\": \"again\""),
        "{history}"
    );
    let missing = annals(&db, &["history", "nobody"]);
    assert!(!missing.status.success());
}

#[test]
fn events_follow_streams_appends_from_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.db");
    assert!(
        annals(&db, &["append", "tick-1", "--type", "Ticked", "--data", r#"{"n":1}"#])
            .status
            .success()
    );
    let mut follower = Command::new(env!("CARGO_BIN_EXE_annals"))
        .arg("--db")
        .arg(&db)
        .args(["events", "--follow", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(20)).expect("the existing event");
    assert!(first.contains("\"n\":1"), "{first}");
    for n in 2..=3 {
        assert!(
            annals(
                &db,
                &[
                    "append",
                    "tick-1",
                    "--type",
                    "Ticked",
                    "--data",
                    &format!(r#"{{"n":{n}}}"#)
                ]
            )
            .status
            .success()
        );
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the follower streams the new event");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["payload"]["n"], n);
        assert_eq!(v["version"], n);
    }
    follower.kill().unwrap();
    let _ = follower.wait();
}

#[test]
fn several_processes_append_to_one_file_without_database_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("multi.db");
    assert!(
        annals(
            &db,
            &[
                "append",
                "shared-1",
                "--type",
                "Opened",
                "--data",
                "{}",
                "--expected-version",
                "no-stream"
            ]
        )
        .status
        .success()
    );
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..8 {
                    let data = format!(r#"{{"writer":{w},"i":{i}}}"#);
                    let out = annals(&db, &["append", "shared-1", "--type", "Noted", "--data", &data]);
                    assert!(
                        out.status.success(),
                        "writer {w}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let events = json_lines(&annals(&db, &["events", "--json"]));
    assert_eq!(events.len(), 33);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["version"], i as u64 + 1, "versions are gap-free across processes");
        assert_eq!(e["global_position"], i as u64 + 1);
    }
}

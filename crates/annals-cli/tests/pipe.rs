//! `annals events | head -1`: when the reader goes away, `annals` stops quietly (exit 0), with no
//! panic about stdout.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use annals::{EventStore, ExpectedVersion, NewEvent, StreamId};
use annals_sqlite::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("annals.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let filler = "x".repeat(500);
    for i in 0..40 {
        let events = (0..50)
            .map(|j| NewEvent::from_value("Noted", &serde_json::json!({ "n": i * 50 + j, "text": filler })))
            .collect();
        store
            .append_to_stream(
                StreamId::new(format!("note-{i}")).unwrap(),
                "Note",
                ExpectedVersion::NoStream,
                events,
            )
            .await
            .unwrap();
    }
    drop(store);
    // 2 000 events of ~600 bytes: far more than a pipe holds, so the writes after `head` left fail.
    let mut child = Command::new(env!("CARGO_BIN_EXE_annals"))
        .arg("--db")
        .arg(&path)
        .arg("events")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("Noted"), "{first}");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
}

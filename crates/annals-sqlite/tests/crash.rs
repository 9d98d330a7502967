//! Crash safety: a process appending in a loop is killed with SIGKILL; on reopen every append it
//! saw acknowledged is there, the stream has no gap and no torn append.
//!
//! A test target without the libtest harness (`harness = false`): the binary re-runs itself as the
//! child appender, selected by an environment variable, and prints a libtest-style result line.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use annals::{EventStore, ExpectedVersion, NewEvent, ReadStream, StreamId};
use annals_sqlite::SqliteStore;

const CHILD_DB: &str = "ANNALS_CRASH_CHILD_DB";

/// In the child: append batches of 3 events forever, printing each acknowledged last version.
async fn child_appender(db: String) {
    let store = SqliteStore::open(db).await.unwrap();
    let s = StreamId::new("crash-1").unwrap();
    let mut version = store.stream_version(&s).await.unwrap();
    loop {
        let events = (0..3)
            .map(|i| NewEvent::from_value("Ticked", &serde_json::json!({ "n": version + 1 + i })))
            .collect();
        let out = store
            .append_to_stream(s.clone(), "Crash", ExpectedVersion::Exact(version), events)
            .await
            .unwrap();
        version = out.last_version;
        println!("acked {version}");
    }
}

async fn kill_9_mid_append_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let mut last_acked = 0u64;
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD_DB, &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut acked_this_round = 0;
        while acked_this_round < 40 + round * 17 {
            let line = lines.next().expect("the child acknowledges appends").unwrap();
            if let Some(v) = line.strip_prefix("acked ") {
                last_acked = v.parse().unwrap();
                acked_this_round += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL, in the middle of whatever append is in flight
        let _ = child.wait();

        let store = SqliteStore::open(&db).await.unwrap();
        let events = store
            .read_stream(&StreamId::new("crash-1").unwrap(), ReadStream::all())
            .await
            .unwrap();
        let stored = events.len() as u64;
        assert!(
            stored >= last_acked,
            "round {round}: acknowledged version {last_acked}, only {stored} stored"
        );
        assert_eq!(stored % 3, 0, "round {round}: a torn append ({stored} events)");
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.version, i as u64 + 1);
            assert_eq!(e.payload_value().unwrap()["n"], i as u64 + 1);
        }
        drop(store);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Ok(db) = std::env::var(CHILD_DB) {
        rt.block_on(child_appender(db));
        return;
    }
    println!("\nrunning 1 test");
    rt.block_on(kill_9_mid_append_loses_no_acknowledged_event());
    println!("test kill_9_mid_append_loses_no_acknowledged_event ... ok");
    println!("\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n");
}

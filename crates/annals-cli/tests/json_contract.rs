//! The JSON contract, command by command, on SQLite and PostgreSQL: with `--json` every command
//! prints JSON Lines on stdout — one object per line, each with a `kind` — and nothing else; an
//! error is one JSON object on stderr with a kind and a message; `append` reports the event's
//! global position on every backend.

use std::process::Output;

mod common;
use common::TestStore;

struct Store(TestStore);

impl Store {
    fn sqlite() -> Self {
        Self(TestStore::sqlite("json.db"))
    }

    fn postgres() -> Self {
        Self(TestStore::postgres("json"))
    }

    fn run(&self, args: &[&str]) -> Output {
        self.0
            .annals()
            .arg("--json")
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    /// Runs a command that must succeed; returns its lines, checked against the contract.
    fn lines(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .map(|l| {
                let v: serde_json::Value =
                    serde_json::from_str(l).unwrap_or_else(|e| panic!("{args:?}: {l:?} is not JSON: {e}"));
                assert!(v.is_object() && v["kind"].is_string(), "{args:?}: {l} has no kind");
                v
            })
            .collect()
    }
}

fn kinds(lines: &[serde_json::Value]) -> Vec<&str> {
    lines.iter().map(|l| l["kind"].as_str().unwrap()).collect()
}

fn contract(store: &Store) {
    assert_eq!(kinds(&store.lines(&["init"])), ["store"]);
    let appended = store.lines(&[
        "append",
        "note-1",
        "--type",
        "NoteAdded",
        "--data",
        r#"{"n":123456789012345678901234567890}"#,
        "--stream-type",
        "note",
    ]);
    assert_eq!(kinds(&appended), ["appended"]);
    assert_eq!(appended[0]["version"], 1);
    assert!(
        appended[0]["global_position"].as_u64().unwrap() >= 1,
        "a position on every backend: {appended:?}"
    );
    store.lines(&["append", "note-1", "--type", "NoteAdded", "--data", "{}"]);
    store.lines(&[
        "append",
        "memo-1",
        "--type",
        "MemoAdded",
        "--data",
        "{}",
        "--stream-type",
        "memo",
    ]);
    assert_eq!(kinds(&store.lines(&["streams"])), ["stream", "stream"]);
    let events = store.lines(&["events"]);
    assert_eq!(kinds(&events), ["event", "event", "event"]);
    assert!(
        String::from_utf8_lossy(&store.run(&["events"]).stdout).contains("123456789012345678901234567890"),
        "payloads go out as stored"
    );
    assert_eq!(
        kinds(&store.lines(&["events", "--from", "2", "--limit", "1"])),
        ["event"]
    );
    assert_eq!(kinds(&store.lines(&["history", "note-1"])), ["history"]);
    assert_eq!(kinds(&store.lines(&["audit", "note-1"])), ["change", "change"]);
    assert_eq!(kinds(&store.lines(&["delete", "memo-1", "--reason", "r"])), ["deleted"]);
    assert_eq!(
        kinds(&store.lines(&["restore", "memo-1", "--reason", "r"])),
        ["restored"]
    );
    assert_eq!(
        kinds(&store.lines(&["purge", "memo-1", "--reason", "r", "--yes"])),
        ["purged"]
    );
    assert_eq!(kinds(&store.lines(&["forget", "nobody"])), ["forgotten"]);
    let status = store.lines(&["status"]);
    assert_eq!(kinds(&status)[0], "head");
    assert!(store.lines(&["saga", "list"]).is_empty());
    assert!(store.lines(&["parked", "list"]).is_empty());
    let stream = format!("JSONC{}", std::process::id());
    let relay = store.lines(&[
        "relay",
        "--until-caught-up",
        "--stream",
        &stream,
        "--prefix",
        &stream.to_lowercase(),
    ]);
    assert_eq!(kinds(&relay), ["relay"]);
    assert!(relay[0]["position"].as_u64().unwrap() >= 4);
    // After the relay ran, status has a consumer line (its cursor).
    assert!(kinds(&store.lines(&["status"])).contains(&"consumer"));
    // An error: one JSON object on stderr, nothing on stdout.
    let out = store.run(&["history", "no-such-stream"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(out.stdout.is_empty());
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["error"]["kind"], "not_found");
    assert!(err["error"]["message"].as_str().unwrap().contains("no-such-stream"));
}

#[test]
fn sqlite_every_command_keeps_the_json_contract() {
    contract(&Store::sqlite());
}

#[test]
fn postgres_every_command_keeps_the_json_contract() {
    let store = Store::postgres();
    contract(&store);
    assert_eq!(
        kinds(&store.lines(&["relay", "drop-slot", "--name", "nobody"])),
        ["dropped"]
    );
}

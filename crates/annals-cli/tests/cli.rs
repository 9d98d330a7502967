//! The generic `annals` binary end to end: streams, history, events, append, from several
//! processes. Every test body runs on a SQLite file and on PostgreSQL (a fresh schema of the
//! `test` database on 127.0.0.1:5432). (The FTGO demo, read model and sagas are tested with the
//! `ftgo` binary, in `examples/ftgo/tests/cli.rs`.)

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

mod common;
use common::TestStore;

/// Where a test's `annals` commands point: a SQLite file, or a fresh PostgreSQL schema.
struct Db(TestStore);

impl Db {
    fn sqlite() -> Self {
        Self(TestStore::sqlite("annals.db"))
    }

    fn postgres() -> Self {
        Self(TestStore::postgres("cli"))
    }

    fn command(&self) -> Command {
        self.0.annals()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("annals runs")
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
    append_checks_versions_and_refuses_bad_input,
    events_follow_streams_appends_from_another_process,
    several_processes_append_to_one_store,
    time_travel_by_a_time_shown_gives_the_state_shown,
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

fn append_checks_versions_and_refuses_bad_input(db: &Db) {
    let ok = db.run(&[
        "append",
        "note-1",
        "--type",
        "NoteAdded",
        "--data",
        r#"{"text":"hi"}"#,
        "--expected-version",
        "no-stream",
    ]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let conflict = db.run(&[
        "append",
        "note-1",
        "--type",
        "NoteAdded",
        "--data",
        "{}",
        "--expected-version",
        "no-stream",
    ]);
    assert_eq!(conflict.status.code(), Some(3), "a conflict exits with 3");
    let err = String::from_utf8_lossy(&conflict.stderr);
    assert!(
        err.contains("note-1") && err.contains("expected no stream") && err.contains("actual version 1"),
        "{err}"
    );
    let second = db.run(&[
        "append",
        "note-1",
        "--type",
        "NoteAdded",
        "--data",
        r#"{"text":"again"}"#,
        "--expected-version",
        "1",
        "--json",
    ]);
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
        let out = db.run(&args);
        assert_eq!(out.status.code(), Some(5), "invalid input exits with 5: {args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let events = json_lines(&db.run(&["events", "--json"]));
    assert_eq!(events.len(), 2, "refused appends change nothing");
    assert_eq!(events[0]["stream_type"], "note");
    assert_eq!(events[1]["payload"]["text"], "again");
    let history = stdout(&db.run(&["history", "note-1"]));
    assert!(
        history.contains("generic fold") && history.contains("\"text\": \"again\""),
        "{history}"
    );
    let missing = db.run(&["history", "nobody"]);
    assert!(!missing.status.success());
}

fn events_follow_streams_appends_from_another_process(db: &Db) {
    assert!(
        db.run(&["append", "tick-1", "--type", "Ticked", "--data", r#"{"n":1}"#])
            .status
            .success()
    );
    let mut follower = db
        .command()
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
            db.run(&[
                "append",
                "tick-1",
                "--type",
                "Ticked",
                "--data",
                &format!(r#"{{"n":{n}}}"#)
            ])
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

fn several_processes_append_to_one_store(db: &Db) {
    assert!(
        db.run(&[
            "append",
            "shared-1",
            "--type",
            "Opened",
            "--data",
            "{}",
            "--expected-version",
            "no-stream"
        ])
        .status
        .success()
    );
    std::thread::scope(|scope| {
        for w in 0..4 {
            scope.spawn(move || {
                for i in 0..8 {
                    let data = format!(r#"{{"writer":{w},"i":{i}}}"#);
                    let out = db.run(&["append", "shared-1", "--type", "Noted", "--data", &data]);
                    assert!(
                        out.status.success(),
                        "writer {w}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            });
        }
    });
    let events = json_lines(&db.run(&["events", "--json"]));
    assert_eq!(events.len(), 33);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["version"], i as u64 + 1, "versions are gap-free across processes");
        assert_eq!(e["global_position"], i as u64 + 1);
    }
}

/// A time printed beside an event, copied into `--at-time`, gives the state with that event in
/// it; every RFC 3339 form is accepted (offsets, dates, before 1970); a version past the end is
/// an error.
fn time_travel_by_a_time_shown_gives_the_state_shown(db: &Db) {
    for n in 1..=3 {
        let data = format!(r#"{{"n":{n}}}"#);
        let out = db.run(&[
            "append",
            "count-1",
            "--type",
            "Counted",
            "--data",
            &data,
            "--stream-type",
            "count",
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let events = json_lines(&db.run(&["events", "--json"]));
    let second = events[1]["recorded_at"].as_str().unwrap().to_owned();
    let at = json_lines(&db.run(&["history", "count-1", "--at-time", &second, "--json"]));
    assert_eq!(at[0]["version"], 2, "the JSON time of v2 gives v2");
    assert_eq!(at[0]["state"]["n"], 2);
    // The text listing shows the same time.
    let text = stdout(&db.run(&["history", "count-1"]));
    let line = text.lines().find(|l| l.contains("count-1@2")).unwrap();
    let shown = line.rsplit('[').next().unwrap().trim_end_matches(']');
    assert_eq!(shown, second, "text and JSON show one time: {line}");
    let at = json_lines(&db.run(&["history", "count-1", "--at-time", shown, "--json"]));
    assert_eq!(at[0]["version"], 2);
    for (t, version) in [
        ("1969-07-20T20:17:00Z", 0),
        ("1970-01-01", 0),
        ("2999-01-01T00:00:00+14:00", 3),
        ("2999-01-01", 3),
    ] {
        let at = json_lines(&db.run(&["history", "count-1", "--at-time", t, "--json"]));
        assert_eq!(at[0]["version"], version, "{t}");
    }
    let past_end = db.run(&["history", "count-1", "--at-version", "99"]);
    assert_eq!(past_end.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&past_end.stderr).contains("has 3 events"));
}

//! The bad-input corpus: about 130 refusals per backend through the `annals` binary, on a SQLite
//! file and on PostgreSQL — stream ids, event and stream types, payloads, expected versions,
//! deleted streams, times, positions, ids, database files and URLs, brokers nobody answers,
//! rows corrupted in every column, racing writers. For each: a clear error with the exit code
//! of its kind, never a panic (exit 101), never a hang (each command has 60 s), never a partial
//! write (the store's fingerprint is unchanged by every refusal). The library-level corpus is the
//! conformance suite's `bad_input_is_refused` and `payloads_follow_one_json_policy`.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::TestStore;

/// The store a corpus runs against.
struct Db(TestStore);

impl Db {
    fn sqlite() -> Self {
        Self(TestStore::sqlite("corpus.db"))
    }

    fn postgres() -> Self {
        Self(TestStore::postgres("corpus"))
    }

    fn is_sqlite(&self) -> bool {
        self.0.schema().is_none()
    }

    fn args(&self) -> Vec<String> {
        self.0.args()
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut all = self.args();
        all.extend(args.iter().map(|a| (*a).to_owned()));
        run_bounded(&all)
    }

    /// Runs SQL on the store's database (its schema first on PostgreSQL).
    fn sql(&self, sql: &str) -> String {
        match self.0.schema() {
            None => {
                let conn = rusqlite::Connection::open(self.0.url()).unwrap();
                if !sql.starts_with("SELECT") {
                    // Damage as a tool outside annals would do it: past the table's checks too.
                    conn.execute_batch("PRAGMA ignore_check_constraints = ON").unwrap();
                    conn.execute(sql, []).unwrap_or_else(|e| panic!("{sql}: {e}"));
                    return String::new();
                }
                conn.query_row(sql, [], |r| r.get::<_, Option<String>>(0))
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
                    .unwrap_or_default()
            }
            Some(schema) => {
                let out = Command::new("psql")
                    .args([
                        self.0.url(),
                        "-Atq",
                        "-v",
                        "ON_ERROR_STOP=1",
                        "-c",
                        &format!("SET search_path TO {schema}"),
                        "-c",
                        sql,
                    ])
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
                String::from_utf8_lossy(&out.stdout).trim().to_owned()
            }
        }
    }

    /// Everything a refusal must leave as it was: events, streams, snapshots, checkpoints,
    /// parked messages and keys (not the health table, where a failing relay says so).
    fn fingerprint(&self) -> String {
        let sql = if self.is_sqlite() {
            "SELECT ifnull((SELECT group_concat(x, ';') FROM (SELECT global_position||'|'||stream_id||'|'||version||'|'||
                 hex(event_id)||'|'||event_type||'|'||schema_version||'|'||payload||'|'||metadata AS x
                 FROM events ORDER BY global_position)), '')
             ||'#'||ifnull((SELECT group_concat(x, ';') FROM (SELECT stream_id||'|'||stream_type||'|'||version||'|'||
                 ifnull(deleted_version, '') AS x FROM streams ORDER BY stream_id)), '')
             ||'#'||(SELECT count(*) FROM snapshots)
             ||'#'||ifnull((SELECT group_concat(name||'='||position) FROM checkpoints), '')
             ||'#'||(SELECT count(*) FROM parked)||'#'||(SELECT count(*) FROM subject_keys)"
        } else {
            "SELECT coalesce((SELECT string_agg(e.stream_id||'|'||e.version||'|'||e.event_id||'|'||e.event_type||'|'||
                 e.schema_version||'|'||e.payload::text||'|'||e.metadata::text, ';' ORDER BY e.stream_id, e.version)
                 FROM events e), '')
             ||'#'||coalesce((SELECT string_agg(stream_id||'|'||stream_type||'|'||version||'|'||
                 coalesce(deleted_version::text, ''), ';' ORDER BY stream_id) FROM streams), '')
             ||'#'||(SELECT count(*) FROM snapshots)
             ||'#'||coalesce((SELECT string_agg(name||'='||position, ',' ORDER BY name) FROM checkpoints), '')
             ||'#'||(SELECT count(*) FROM parked)||'#'||(SELECT count(*) FROM subject_keys)
             ||'#'||coalesce((SELECT max(first_position + count - 1) FROM log), 0)"
        };
        self.sql(sql)
    }
}

/// Runs `annals` with `args`, killing it after 60 s (a hang fails the case).
fn run_bounded(args: &[String]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_annals"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("annals {args:?} hung for 60 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().unwrap()
}

/// One refusal: the arguments, the exit code its kind gives, and words the error must hold.
struct Case {
    args: Vec<String>,
    code: i32,
    says: String,
}

fn case(args: &[&str], code: i32, says: &str) -> Case {
    Case {
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        code,
        says: says.to_owned(),
    }
}

fn owned(args: Vec<String>, code: i32, says: &str) -> Case {
    Case {
        args,
        code,
        says: says.to_owned(),
    }
}

/// Checks one outcome: the exit code, the words, no panic.
fn check(what: &str, out: &Output, code: i32, says: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(101), "{what} panicked: {err}");
    assert!(!err.contains("panicked"), "{what} panicked: {err}");
    assert_eq!(out.status.code(), Some(code), "{what}: exit code; stderr: {err}");
    assert!(err.contains(says), "{what}: the error should say {says:?}: {err}");
}

/// The store every refusal runs against: an order, notes, a deleted memo.
fn seeded(db: &Db) {
    for args in [
        vec![
            "append",
            "order-1",
            "--type",
            "OrderCreated",
            "--data",
            r#"{"total":1}"#,
            "--stream-type",
            "Order",
        ],
        vec!["append", "order-1", "--type", "OrderApproved", "--data", "{}"],
        vec!["append", "note-1", "--type", "NoteAdded", "--data", r#"{"text":"one"}"#],
        vec!["append", "note-1", "--type", "NoteAdded", "--data", r#"{"text":"two"}"#],
        vec!["append", "memo-1", "--type", "MemoAdded", "--data", "{}"],
        vec!["delete", "memo-1", "--reason", "done"],
    ] {
        let out = db.run(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Reading the log gives every event its position (PostgreSQL sequences after the commit).
    assert!(db.run(&["events"]).status.success());
}

/// The refusals on a seeded store (see the module docs).
fn corpus(db: &Db) -> Vec<Case> {
    let mut cases = Vec::new();
    let append = |stream: &str, event_type: &str, data: &str, extra: &[&str]| {
        let mut args: Vec<String> = ["append", stream, "--type", event_type, "--data", data]
            .iter()
            .map(|a| (*a).to_owned())
            .collect();
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    };
    // Stream ids.
    let long_id = "x".repeat(201);
    for id in [
        "",
        " ",
        "a b",
        "a.b",
        "a*b",
        "a>b",
        "$sys",
        &long_id,
        "tab\there",
        "ünï",
        "new\nline",
    ] {
        cases.push(owned(
            append(id, "NoteAdded", "{}", &["--stream-type", "note"]),
            5,
            "invalid stream id",
        ));
    }
    // Event types.
    let long_type = "T".repeat(129);
    for t in ["", "1abc", "a b", "a.b", &long_type, "ünï", "$x", "a/b", "a:b"] {
        cases.push(owned(append("note-1", t, "{}", &[]), 5, "invalid event type"));
    }
    // Payloads: not JSON, or JSON no reader could parse.
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    for (data, says) in [
        ("{oops", "not valid JSON"),
        ("", "not valid JSON"),
        ("[", "not valid JSON"),
        (r#"{"a":1e999}"#, "too large"),
        (r#"{"a":-1e400}"#, "too large"),
        (r#""\ud800""#, "surrogate"),
        (r#"{"k":"\udc00"}"#, "surrogate"),
        (&deep, "deeper than"),
        (r#"{"a":1} x"#, "not valid JSON"),
        ("NaN", "not valid JSON"),
        ("Infinity", "not valid JSON"),
        ("'single'", "not valid JSON"),
        ("{a:1}", "not valid JSON"),
        (r#"{"a":01}"#, "not valid JSON"),
        (r#"{"a":.5}"#, "not valid JSON"),
        (r#"{"a":1,}"#, "not valid JSON"),
        ("[1,2", "not valid JSON"),
        (r#""unterminated"#, "not valid JSON"),
        (r#"{"a":"\x"}"#, "not valid JSON"),
        ("tru", "not valid JSON"),
    ] {
        cases.push(owned(append("note-1", "NoteAdded", data, &[]), 5, says));
    }
    // Expected versions: not one, or not the stream's.
    cases.push(owned(
        append("note-1", "NoteAdded", "{}", &["--expected-version", "-1"]),
        2,
        "unexpected argument",
    ));
    for v in ["soon", "1.5", "18446744073709551616", "", "ANY", "0x1", " 1"] {
        cases.push(owned(
            append("note-1", "NoteAdded", "{}", &["--expected-version", v]),
            5,
            "--expected-version",
        ));
    }
    for (v, says) in [
        ("no-stream", "expected no stream"),
        ("7", "actual version 2"),
        ("1", "actual version 2"),
    ] {
        cases.push(owned(
            append("note-1", "NoteAdded", "{}", &["--expected-version", v]),
            3,
            says,
        ));
    }
    cases.push(owned(
        append(
            "brand-new",
            "NoteAdded",
            "{}",
            &["--expected-version", "exists", "--stream-type", "note"],
        ),
        3,
        "brand-new",
    ));
    // Stream types.
    for t in ["bad type", "1x", "", "a.b", "ü"] {
        cases.push(owned(
            append("fresh-1", "NoteAdded", "{}", &["--stream-type", t]),
            5,
            "invalid stream type",
        ));
    }
    cases.push(owned(
        append("note-1", "NoteAdded", "{}", &["--stream-type", "other"]),
        3,
        "has type",
    ));
    // A deleted stream, whatever the expectation.
    for v in ["any", "exists", "2"] {
        cases.push(owned(
            append("memo-1", "MemoAdded", "{}", &["--expected-version", v]),
            3,
            "was deleted",
        ));
    }
    cases.push(owned(append("memo-1", "StreamDeleted", "{}", &[]), 3, "was deleted"));
    // History and time travel.
    cases.push(case(&["history", "no-such-stream"], 4, "does not exist"));
    cases.push(case(&["history", "a b"], 5, "invalid stream id"));
    cases.push(case(&["history", "note-1", "--at-version", "99"], 5, "has 2 events"));
    cases.push(case(&["history", "note-1", "--at-version", "abc"], 2, "--at-version"));
    cases.push(case(&["history", "note-1", "--at-version", "-1"], 2, ""));
    cases.push(case(
        &["history", "note-1", "--at-version", "1", "--at-time", "2026-01-01"],
        2,
        "cannot be used",
    ));
    for t in [
        "yesterday",
        "2026-13-01",
        "2026-02-30T00:00:00Z",
        "2026-12-04T25:00:00Z",
        "2026-12-04T20:28:45",
        "12/04/2026",
        "",
        "2026-12-04T20:28:45+25:00",
    ] {
        cases.push(case(&["history", "note-1", "--at-time", t], 5, "RFC 3339"));
    }
    // The global log.
    for args in [
        ["events", "--from", "abc"],
        ["events", "--from", "-1"],
        ["events", "--limit", "x"],
        ["events", "--limit", "-5"],
    ] {
        cases.push(case(&args, 2, ""));
    }
    // Audit, sagas, parked messages, projections.
    cases.push(case(&["audit", "no-such-stream"], 4, "does not exist"));
    cases.push(case(&["audit", "a.b"], 5, "invalid stream id"));
    cases.push(case(&["saga", "show", "no-such-saga"], 4, "no saga"));
    cases.push(case(&["saga", "show", "note-1"], 5, "not a saga"));
    cases.push(case(&["parked", "retry", "999"], 4, "no parked message"));
    cases.push(case(&["parked", "skip", "999"], 4, "no parked message"));
    cases.push(case(&["parked", "retry", "abc"], 2, ""));
    cases.push(case(&["parked", "skip", "-1"], 2, ""));
    cases.push(case(
        &["projection", "run", "order-history"],
        2,
        "unrecognized subcommand",
    ));
    cases.push(case(&["demo"], 2, "unrecognized subcommand"));
    // Deleting, restoring, purging.
    cases.push(case(
        &["delete", "no-such-stream", "--reason", "x"],
        4,
        "does not exist",
    ));
    cases.push(case(&["delete", "a b", "--reason", "x"], 5, "invalid stream id"));
    cases.push(case(&["delete", "note-1"], 2, "--reason"));
    cases.push(case(
        &["restore", "no-such-stream", "--reason", "x"],
        4,
        "does not exist",
    ));
    cases.push(case(&["restore", "a*b", "--reason", "x"], 5, "invalid stream id"));
    cases.push(case(&["purge", "note-1", "--reason", "x"], 5, "--yes"));
    cases.push(case(
        &["purge", "no-such-stream", "--reason", "x", "--yes"],
        4,
        "does not exist",
    ));
    cases.push(case(
        &["purge", "annals-purges", "--reason", "x", "--yes"],
        5,
        "cannot be purged",
    ));
    cases.push(case(&["purge", "$x", "--reason", "x", "--yes"], 5, "invalid stream id"));
    // Brokers that cannot work or do not answer.
    for (url, code, says) in [
        ("", 7, "it is empty"),
        ("http://127.0.0.1:4222", 7, "not http://"),
        ("ws://127.0.0.1:4222", 7, "not ws://"),
        ("nats://no-such-host.invalid:4222", 7, "does not resolve"),
        ("nats://127.0.0.1:99999", 7, "invalid NATS URL"),
    ] {
        cases.push(case(&["relay", "--until-caught-up", "--nats", url], code, says));
    }
    cases.push(case(
        &[
            "relay",
            "--until-caught-up",
            "--nats",
            "nats://127.0.0.1:9",
            "--give-up-after",
            "300ms",
        ],
        6,
        "gave up after",
    ));
    cases.push(case(&["relay", "--lease", "abc"], 2, ""));
    cases.push(case(&["relay", "--batch", "-1"], 2, ""));
    if db.is_sqlite() {
        cases.push(case(
            &["relay", "--until-caught-up", "--source", "tail"],
            5,
            "needs a PostgreSQL store",
        ));
        cases.push(case(&["relay", "drop-slot"], 5, "PostgreSQL only"));
    } else {
        cases.push(case(
            &["relay", "--until-caught-up", "--source", "tail", "--name", "No-Good"],
            7,
            "invalid replication slot name",
        ));
    }
    // Usage.
    cases.push(case(&["no-such-command"], 2, "unrecognized subcommand"));
    cases.push(case(&["streams", "--no-such-flag"], 2, "unexpected argument"));
    cases
}

/// `--db` values that cannot be a store: refused with their kind, touching nothing.
fn databases() -> (Vec<Case>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let not_sqlite = dir.path().join("text.db");
    std::fs::write(&not_sqlite, "this is not a database").unwrap();
    let pg = annals_postgres::testing::url();
    let server = pg.rsplit_once('/').map_or(pg.clone(), |(s, _)| s.to_owned());
    let cases = vec![
        case(
            &["--db", &dir.path().display().to_string(), "streams"],
            7,
            "cannot open",
        ),
        case(
            &["--db", "/proc/no/such/dir.db", "streams"],
            4,
            "no annals store at /proc/no/such/dir.db",
        ),
        case(
            &[
                "--db",
                "/proc/no/such/dir.db",
                "append",
                "x-1",
                "--type",
                "T",
                "--data",
                "{}",
            ],
            7,
            "cannot open",
        ),
        case(
            &["--db", &not_sqlite.display().to_string(), "streams"],
            7,
            "not a database",
        ),
        case(&["--db", "mysql://root@127.0.0.1/test", "streams"], 7, "not mysql://"),
        case(&["--db", "", "streams"], 7, "--db is empty"),
        case(
            &["--db", "postgres://postgres@127.0.0.1:99999/test", "streams"],
            7,
            "invalid PostgreSQL URL",
        ),
        case(
            &["--db", "postgres://postgres@127.0.0.1:9/test", "streams"],
            6,
            "Connection refused",
        ),
        case(
            &["--db", "postgres://postgres@no-such-host.invalid/test", "streams"],
            7,
            "check the host",
        ),
        case(
            &["--db", &format!("{server}/annals_no_such_db"), "streams"],
            7,
            "does not exist",
        ),
        case(
            &["--db", &pg, "--pg-schema", "Bad-Schema", "streams"],
            7,
            "invalid schema name",
        ),
        case(
            &["--db", "postgres://postgres:s3cret@127.0.0.1:9/test", "streams"],
            6,
            "127.0.0.1:9",
        ),
    ];
    (cases, dir)
}

fn run_corpus(db: &Db) -> usize {
    seeded(db);
    let before = db.fingerprint();
    let mut n = 0;
    for c in corpus(db) {
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let out = db.run(&args);
        check(&format!("{args:?}"), &out, c.code, &c.says);
        assert_eq!(db.fingerprint(), before, "{args:?} changed the store");
        // The same refusal as JSON names its kind.
        if c.code >= 3 {
            let mut json = args.clone();
            json.insert(0, "--json");
            let out = db.run(&json);
            let last = String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or_default()
                .to_owned();
            let parsed: serde_json::Value =
                serde_json::from_str(&last).unwrap_or_else(|e| panic!("{json:?}: {last:?} is not JSON: {e}"));
            assert!(
                parsed["error"]["kind"].is_string() && parsed["error"]["message"].is_string(),
                "{last}"
            );
        }
        n += 1;
    }
    let (cases, _dir) = databases();
    for c in cases {
        let args: Vec<String> = c.args.clone();
        let out = run_bounded(&args);
        check(&format!("{args:?}"), &out, c.code, &c.says);
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("s3cret"),
            "a password was printed"
        );
        n += 1;
    }
    assert_eq!(db.fingerprint(), before);
    n += race(db);
    n
}

/// Eight processes append at the same expected version at once: exactly one wins, the others are
/// conflicts (exit 3), and the stream holds exactly one new event.
fn race(db: &Db) -> usize {
    let children: Vec<_> = (0..8)
        .map(|i| {
            let mut args = db.args();
            args.extend(
                [
                    "append",
                    "note-1",
                    "--type",
                    "NoteAdded",
                    "--data",
                    &format!(r#"{{"racer":{i}}}"#),
                    "--expected-version",
                    "2",
                ]
                .map(str::to_owned),
            );
            Command::new(env!("CARGO_BIN_EXE_annals"))
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let codes: Vec<Option<i32>> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.code())
        .collect();
    assert_eq!(codes.iter().filter(|c| **c == Some(0)).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == Some(3)).count(), 7, "{codes:?}");
    let history = db.run(&["--json", "history", "note-1"]);
    let parsed: serde_json::Value = serde_json::from_slice(&history.stdout).unwrap();
    assert_eq!(parsed["version"], 3, "exactly one racer's event was stored");
    8
}

/// Rows changed outside annals, one column at a time: reads say which stream and version and
/// exit 8 (or show what they can: a time out of the usual range), never panic; the relay stops
/// there, saying so.
fn corrupt_rows(db: &Db) -> usize {
    let mut n = 0;
    let damage: Vec<(&str, i32)> = if db.is_sqlite() {
        vec![
            (
                "UPDATE events SET stream_id = 'no spaces allowed' WHERE stream_id = 'c-1' AND version = 2",
                8,
            ),
            (
                "UPDATE events SET stream_type = x'00ff' WHERE stream_id = 'c-1' AND version = 2",
                8,
            ),
            (
                "UPDATE events SET version = 'two' WHERE stream_id = 'c-1' AND version = 2",
                8,
            ),
            (
                "UPDATE events SET event_id = 'short' WHERE stream_id = 'c-1' AND version = 2",
                8,
            ),
            (
                "UPDATE events SET event_type = x'ff' WHERE stream_id = 'c-1' AND version = 2",
                8,
            ),
            (
                "UPDATE events SET schema_version = 'new' WHERE stream_id = 'c-1' AND version = 2",
                8,
            ),
            (
                "UPDATE events SET schema_version = -1 WHERE stream_id = 'c-1' AND version = 2",
                8,
            ),
            (
                "UPDATE events SET schema_version = 99999999999 WHERE stream_id = 'c-1' AND version = 2",
                8,
            ),
            (
                "UPDATE events SET payload = '{oops' WHERE stream_id = 'c-1' AND version = 2",
                8,
            ),
            (
                "UPDATE events SET payload = x'ff00' WHERE stream_id = 'c-1' AND version = 2",
                8,
            ),
            (
                "UPDATE events SET metadata = 'nope' WHERE stream_id = 'c-1' AND version = 2",
                8,
            ),
            (
                "UPDATE events SET metadata = '[1]' WHERE stream_id = 'c-1' AND version = 2",
                8,
            ),
            (
                "UPDATE events SET recorded_at = 'soon' WHERE stream_id = 'c-1' AND version = 2",
                8,
            ),
            (
                "UPDATE events SET recorded_at = 253402300800000000 WHERE stream_id = 'c-1' AND version = 2",
                0,
            ),
            (
                "UPDATE events SET recorded_at = -2208988800000000 WHERE stream_id = 'c-1' AND version = 2",
                0,
            ),
            (
                "UPDATE events SET recorded_at = 9223372036854775807 WHERE stream_id = 'c-1' AND version = 2",
                0,
            ),
        ]
    } else {
        vec![
            (
                "UPDATE events SET schema_version = -1 WHERE stream_id = 'c-1' AND version = 2",
                8,
            ),
            (
                "UPDATE events SET metadata = '[1]' WHERE stream_id = 'c-1' AND version = 2",
                8,
            ),
            (
                "UPDATE events SET metadata = '\"text\"' WHERE stream_id = 'c-1' AND version = 2",
                8,
            ),
            (
                "UPDATE events SET recorded_at = 'infinity' WHERE stream_id = 'c-1' AND version = 2",
                0,
            ),
            (
                "UPDATE events SET recorded_at = '-infinity' WHERE stream_id = 'c-1' AND version = 2",
                0,
            ),
            (
                "UPDATE events SET recorded_at = '10000-01-01' WHERE stream_id = 'c-1' AND version = 2",
                0,
            ),
            (
                "UPDATE events SET recorded_at = '1900-01-01' WHERE stream_id = 'c-1' AND version = 2",
                0,
            ),
            // Payloads a json column takes that no reader could parse (stored before the policy).
            (
                "UPDATE events SET payload = '{\"a\":1e999}' WHERE stream_id = 'c-1' AND version = 2",
                0,
            ),
            (
                "UPDATE events SET payload = '{\"a\":\"\\ud800\"}' WHERE stream_id = 'c-1' AND version = 2",
                0,
            ),
        ]
    };
    for (i, (sql, code)) in damage.into_iter().enumerate() {
        // A fresh store per damage: an FTGO order c-1 of three events, its second damaged, so
        // the order-history projection has to get past it.
        let fresh = if db.is_sqlite() { Db::sqlite() } else { Db::postgres() };
        let items = r#"[{"menu_item_id":"m-7","name":"Vindaloo","price_cents":1250,"quantity":2}]"#;
        let created = format!(
            r#"{{"consumer_id":"consumer-1","line_items":{items},"restaurant_id":"ajanta","total_cents":2500}}"#
        );
        let revised = format!(r#"{{"line_items":{items},"total_cents":2500}}"#);
        for (event_type, data) in [
            ("OrderCreated", created.as_str()),
            ("OrderRevised", &revised),
            ("OrderApproved", "null"),
        ] {
            let out = fresh.run(&[
                "append",
                "c-1",
                "--type",
                event_type,
                "--data",
                data,
                "--stream-type",
                "Order",
            ]);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        fresh.run(&["events"]);
        fresh.sql(sql);
        let stream_named = if sql.contains("stream_id =") && sql.contains("no spaces") {
            "no spaces allowed"
        } else {
            "c-1"
        };
        for args in [vec!["events", "--json"], vec!["events"], vec!["audit", "--json", "c-1"]] {
            if args[0] == "audit" && stream_named != "c-1" {
                continue;
            }
            let out = fresh.run(&args);
            let what = format!("damage {i} ({sql}), {args:?}");
            if code == 0 {
                check(&what, &out, 0, "");
            } else {
                check(&what, &out, 8, "corrupt");
                let err = String::from_utf8_lossy(&out.stderr);
                // A version that is not a number cannot be named: the error says so instead.
                let version = if sql.contains("SET version") {
                    "version is not a positive integer"
                } else {
                    "version 2"
                };
                assert!(err.contains(stream_named) && err.contains(version), "{what}: {err}");
            }
            n += 1;
        }
        // The relay cannot skip an event: it stops at a row it cannot read, naming it (a
        // consumer parks it instead: examples/ftgo/tests/read_model_cli.rs).
        let nats_stream = format!("BADINPUT{}", std::process::id());
        let prefix = nats_stream.to_lowercase();
        let out = fresh.run(&[
            "relay",
            "--until-caught-up",
            "--stream",
            &nats_stream,
            "--prefix",
            &prefix,
            "--give-up-after",
            "10s",
        ]);
        check(
            &format!("damage {i}: relay"),
            &out,
            code,
            if code == 8 { "corrupt" } else { "" },
        );
        n += 1;
    }
    n
}

fn whole_corpus(db: &Db) {
    let refused = run_corpus(db);
    let damaged = corrupt_rows(db);
    eprintln!("{refused} refusals and {damaged} reads of damaged rows checked");
    assert!(
        refused + damaged >= 150,
        "the corpus keeps at least 150 cases per backend"
    );
}

#[test]
fn sqlite_refuses_bad_input_clearly_and_changes_nothing() {
    whole_corpus(&Db::sqlite());
}

#[test]
fn postgres_refuses_bad_input_clearly_and_changes_nothing() {
    whole_corpus(&Db::postgres());
}

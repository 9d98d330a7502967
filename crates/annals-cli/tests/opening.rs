//! Opening a store does what the user meant: a reading command never creates one (a typo in
//! `--db` or `--pg-schema` is an error naming it); `init` and `append` create one and say so; a
//! file or schema of another application is refused untouched, in one line; a store written by a
//! newer annals is refused naming both versions; reads open SQLite read-only, so they never wait
//! on a writer. On SQLite and PostgreSQL.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn annals(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_annals"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("ANNALS_DB")
        .env_remove("ANNALS_PG_SCHEMA")
        .output()
        .unwrap()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn psql(sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            annals_postgres::testing::url().as_str(),
            "-Atq",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{sql}: {}", err(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn sqlite_a_typo_is_an_error_and_only_writes_create() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.db").display().to_string();
    for read in [
        vec!["streams"],
        vec!["status"],
        vec!["events"],
        vec!["history", "x-1"],
        vec!["--json", "streams"],
    ] {
        let mut args = vec!["--db", typo.as_str()];
        args.extend(read.iter().copied());
        let out = annals(&args);
        assert_eq!(out.status.code(), Some(4), "{read:?}: {}", err(&out));
        assert!(
            err(&out).contains("no annals store at") && err(&out).contains("typo.db"),
            "{}",
            err(&out)
        );
        assert!(!std::path::Path::new(&typo).exists(), "{read:?} created the file");
    }
    for write in [vec!["delete", "x-1", "--reason", "r"], vec!["parked", "retry", "1"]] {
        let mut args = vec!["--db", typo.as_str()];
        args.extend(write.iter().copied());
        assert_eq!(annals(&args).status.code(), Some(4), "{write:?}");
        assert!(!std::path::Path::new(&typo).exists());
    }
    let created = annals(&["--db", &typo, "append", "note-1", "--type", "T", "--data", "{}"]);
    assert!(created.status.success(), "{}", err(&created));
    assert!(
        err(&created).contains("note: created a new annals store at"),
        "{}",
        err(&created)
    );
    let again = annals(&["--db", &typo, "append", "note-1", "--type", "T", "--data", "{}"]);
    assert!(!err(&again).contains("created"), "said once: {}", err(&again));

    let fresh = dir.path().join("fresh.db").display().to_string();
    let init = annals(&["--db", &fresh, "init"]);
    assert!(init.status.success(), "{}", err(&init));
    assert!(err(&init).contains("created a new annals store"));
    let text = String::from_utf8_lossy(&init.stdout);
    assert!(text.contains("schema version") && text.contains("0 events"), "{text}");
    let init = annals(&["--db", &fresh, "--json", "init"]);
    assert!(!err(&init).contains("created"));
    let v: serde_json::Value = serde_json::from_slice(&init.stdout).unwrap();
    assert_eq!(v["backend"], "sqlite");
    assert!(v["schema_version"].as_i64().unwrap() >= 7);
}

#[test]
fn sqlite_a_file_of_another_application_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    for (name, ddl) in [
        (
            "people.db",
            "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO people (name) VALUES ('ada');",
        ),
        (
            "events.db",
            "CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT); INSERT INTO events (what) VALUES ('launch');",
        ),
    ] {
        let path = dir.path().join(name);
        rusqlite::Connection::open(&path).unwrap().execute_batch(ddl).unwrap();
        let before = std::fs::read(&path).unwrap();
        let db = path.display().to_string();
        for args in [
            vec!["--db", db.as_str(), "streams"],
            vec!["--db", db.as_str(), "append", "x-1", "--type", "T", "--data", "{}"],
            vec!["--db", db.as_str(), "init"],
        ] {
            let out = annals(&args);
            let e = err(&out);
            assert_eq!(out.status.code(), Some(7), "{args:?}: {e}");
            assert!(
                e.contains("is not an annals store") && e.contains("nothing was changed"),
                "{e}"
            );
            assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
            assert!(!e.contains("CREATE TABLE"), "no migration script in the error: {e}");
            assert_eq!(std::fs::read(&path).unwrap(), before, "{args:?} changed the file");
        }
        let tables: i64 = rusqlite::Connection::open(&path)
            .unwrap()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'annals_migrations'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0);
    }
}

#[test]
fn sqlite_a_store_of_a_newer_annals_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("newer.db").display().to_string();
    assert!(annals(&["--db", &db, "init"]).status.success());
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "INSERT INTO annals_migrations (version, note, applied_at) VALUES (999, 'from the future', 0)",
            [],
        )
        .unwrap();
    let known = annals_sqlite::schema::MIGRATIONS.last().unwrap().version;
    for args in [vec!["streams"], vec!["append", "x-1", "--type", "T", "--data", "{}"]] {
        let mut all = vec!["--db", db.as_str()];
        all.extend(args.iter().copied());
        let out = annals(&all);
        let e = err(&out);
        assert_eq!(out.status.code(), Some(7), "{e}");
        assert!(
            e.contains("newer annals") && e.contains("999") && e.contains(&format!("up to {known}")),
            "{e}"
        );
    }
}

#[test]
fn sqlite_reads_never_wait_on_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("busy.db").display().to_string();
    assert!(
        annals(&["--db", &db, "append", "note-1", "--type", "T", "--data", "{}"])
            .status
            .success()
    );
    let before = std::fs::read(&db).unwrap();
    // Another process holds the write lock for as long as this test runs.
    let writer = rusqlite::Connection::open(&db).unwrap();
    writer
        .execute_batch("BEGIN IMMEDIATE; INSERT INTO checkpoints VALUES ('w', 1, 1);")
        .unwrap();
    for args in [
        vec!["streams"],
        vec!["events"],
        vec!["status"],
        vec!["history", "note-1"],
    ] {
        let started = Instant::now();
        let mut all = vec!["--db", db.as_str()];
        all.extend(args.iter().copied());
        let out = annals(&all);
        assert!(out.status.success(), "{args:?}: {}", err(&out));
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{args:?} waited on the writer"
        );
    }
    writer.execute_batch("ROLLBACK").unwrap();
    assert_eq!(std::fs::read(&db).unwrap(), before, "reading wrote nothing to the file");
}

#[test]
fn postgres_opening_does_what_the_user_meant() {
    let url = annals_postgres::testing::url();
    let schema = annals_postgres::testing::unique_schema("open");
    let _guard = annals_postgres::testing::SchemaGuard { schema: schema.clone() };
    let exists = |s: &str| psql(&format!("SELECT count(*) FROM pg_namespace WHERE nspname = '{s}'"));
    // A typo: no schema is made.
    let out = annals(&["--db", &url, "--pg-schema", &schema, "status"]);
    assert_eq!(out.status.code(), Some(4), "{}", err(&out));
    assert!(
        err(&out).contains(&format!("no annals store in schema `{schema}`")),
        "{}",
        err(&out)
    );
    assert_eq!(exists(&schema), "0");
    // A schema too long says so.
    let long = "s".repeat(70);
    let out = annals(&["--db", &url, "--pg-schema", &long, "status"]);
    assert_eq!(out.status.code(), Some(7));
    assert!(err(&out).contains("at most 63 bytes"), "{}", err(&out));
    // init creates it, once.
    let init = annals(&["--db", &url, "--pg-schema", &schema, "init"]);
    assert!(init.status.success(), "{}", err(&init));
    assert!(err(&init).contains("created a new annals store"), "{}", err(&init));
    assert_eq!(exists(&schema), "1");
    assert!(!err(&annals(&["--db", &url, "--pg-schema", &schema, "init"])).contains("created"));
    // A newer annals' store.
    psql(&format!(
        "INSERT INTO {schema}.migrations (version, note) VALUES (999, 'from the future')"
    ));
    let out = annals(&["--db", &url, "--pg-schema", &schema, "streams"]);
    assert_eq!(out.status.code(), Some(7), "{}", err(&out));
    assert!(
        err(&out).contains("newer annals") && err(&out).contains("999"),
        "{}",
        err(&out)
    );
    // Another application's schema, refused untouched.
    let foreign = annals_postgres::testing::unique_schema("foreign");
    let _foreign_guard = annals_postgres::testing::SchemaGuard {
        schema: foreign.clone(),
    };
    psql(&format!(
        "CREATE SCHEMA {foreign}; CREATE TABLE {foreign}.events (id int)"
    ));
    for args in [vec!["streams"], vec!["append", "x-1", "--type", "T", "--data", "{}"]] {
        let mut all = vec!["--db", url.as_str(), "--pg-schema", foreign.as_str()];
        all.extend(args.iter().copied());
        let out = annals(&all);
        assert_eq!(out.status.code(), Some(7), "{}", err(&out));
        assert!(err(&out).contains("is not an annals store"), "{}", err(&out));
    }
    assert_eq!(
        psql(&format!(
            "SELECT string_agg(tablename, ',') FROM pg_tables WHERE schemaname = '{foreign}'"
        )),
        "events",
        "nothing was added"
    );
    // A password is never shown.
    let out = annals(&["--db", "postgres://postgres:s3cret@127.0.0.1:9/test", "status"]);
    assert!(!err(&out).contains("s3cret"), "{}", err(&out));
}

#[test]
fn sqlite_a_file_no_one_may_write_is_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("frozen.db").display().to_string();
    assert!(
        annals(&["--db", &db, "append", "note-1", "--type", "T", "--data", "{}"])
            .status
            .success()
    );
    // Immutable even for root (the tests run as root, whom file modes do not stop).
    let frozen = Command::new("chattr").args(["+i", &db]).status().unwrap();
    assert!(frozen.success(), "chattr +i must work on the test machine's /tmp");
    let read = annals(&["--db", &db, "history", "note-1"]);
    let write = annals(&["--db", &db, "append", "note-1", "--type", "T", "--data", "{}"]);
    assert!(Command::new("chattr").args(["-i", &db]).status().unwrap().success());
    assert!(read.status.success(), "a file no one may write is read: {}", err(&read));
    assert_eq!(write.status.code(), Some(7), "{}", err(&write));
    let e = err(&write);
    assert!(e.contains("readonly") || e.contains("read-only"), "{e}");
    assert_eq!(e.matches("misconfigured").count(), 1, "said once: {e}");
}

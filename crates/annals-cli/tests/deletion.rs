//! `annals delete`: a soft delete keeps the stream's events, hides it from `annals streams`
//! unless `--deleted`, and is shown by `annals audit`; `annals purge` removes a stream for good,
//! only with `--yes`, and records itself; on SQLite and PostgreSQL.

use std::process::{Command, Output};

fn run(db: &[&str], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_annals"))
        .args(db)
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn soft_delete(db: &[&str]) {
    for (t, data) in [
        ("OrderCreated", r#"{"total":1}"#),
        ("OrderApproved", "{}"),
        ("OrderRevised", r#"{"total":2}"#),
    ] {
        text(&run(
            db,
            &[
                "append",
                "order-1",
                "--type",
                t,
                "--data",
                data,
                "--stream-type",
                "Order",
            ],
        ));
    }
    let listed = text(&run(db, &["streams", "--json"]));
    let first: serde_json::Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    let order = first["stream_id"].as_str().unwrap().to_owned();
    let before = first["version"].as_u64().unwrap();
    let done = text(&run(
        db,
        &["delete", &order, "--reason", "gdpr request", "--actor", "admin"],
    ));
    assert!(done.contains("deleted"), "{done}");
    assert!(text(&run(db, &["delete", &order, "--reason", "again"])).contains("deleted already"));
    assert!(
        !text(&run(db, &["streams"])).contains(&order),
        "hidden from the listing"
    );
    let all = text(&run(db, &["streams", "--deleted", "--json"]));
    let row: serde_json::Value = all
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["stream_id"] == order.as_str())
        .unwrap();
    assert_eq!(
        (row["deleted"].as_bool(), row["version"].as_u64()),
        (Some(true), Some(before + 1))
    );
    let audit = text(&run(db, &["audit", &order]));
    let last = audit.lines().last().unwrap();
    assert!(last.contains("by admin") && last.contains("StreamDeleted"), "{audit}");
    let history = text(&run(db, &["history", &order, "--json"]));
    assert!(history.contains("OrderCreated"), "the events stay: {history}");
    let missing = run(db, &["delete", "no-such-stream", "--reason", "x"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"));

    // The hard delete: refused without --yes, then the events are gone and the purge recorded.
    let unsure = run(db, &["purge", &order, "--reason", "erasure"]);
    assert!(!unsure.status.success());
    assert!(String::from_utf8_lossy(&unsure.stderr).contains("--yes"));
    assert!(
        text(&run(db, &["history", &order])).contains("OrderCreated"),
        "nothing purged"
    );
    let purged = text(&run(
        db,
        &["purge", &order, "--reason", "erasure", "--actor", "dpo", "--yes"],
    ));
    assert!(purged.contains(&format!("{} events purged", before + 1)), "{purged}");
    assert!(!run(db, &["history", &order]).status.success(), "the stream is gone");
    let events = text(&run(db, &["events", "--json"]));
    assert!(
        !events.contains(&format!("\"stream_id\":\"{order}\"")),
        "nothing of it in the log"
    );
    let record = text(&run(db, &["audit", "annals-purges"]));
    assert!(record.contains("by dpo") && record.contains("StreamPurged"), "{record}");
}

#[test]
fn soft_delete_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("annals.db").display().to_string();
    soft_delete(&["--db", &path]);
}

#[test]
fn soft_delete_on_postgres() {
    let url = std::env::var("ANNALS_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("cli_delete_{}", std::process::id());
    soft_delete(&["--db", &url, "--pg-schema", &schema]);
    let _ = Command::new("psql")
        .args([&url, "-qc", &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")])
        .output();
}

/// `annals forget SUBJECT` destroys the subject's data key: the library then reads its personal
/// fields as redacted; the CLI never shows them in plain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_destroys_the_subjects_key() {
    use annals::privacy::{MasterKey, PersonalFields, REDACTED, Shredding};
    use annals::{EventStore, ExpectedVersion, NewEvent, ReadStream, StreamId};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("annals.db");
    let store = annals_sqlite::SqliteStore::open(&path).await.unwrap();
    let fields = PersonalFields::new().field("Person", "Registered", "email", "person_id");
    let shred = Shredding::new(
        store.clone(),
        store.clone(),
        fields,
        MasterKey::new("m1", [2; 32]),
        vec![],
    );
    let id = StreamId::new("person-1").unwrap();
    shred
        .append_to_stream(
            id.clone(),
            "Person",
            ExpectedVersion::NoStream,
            vec![NewEvent::from_value(
                "Registered",
                &serde_json::json!({ "person_id": "p1", "email": "p1@example.org" }),
            )],
        )
        .await
        .unwrap();
    let db = ["--db", path.to_str().unwrap()];
    assert!(
        !text(&run(&db, &["events"])).contains("p1@example.org"),
        "the CLI reads ciphertext"
    );
    assert!(text(&run(&db, &["forget", "p1", "--actor", "dpo"])).contains("p1 forgotten"));
    assert!(text(&run(&db, &["forget", "p1"])).contains("no data key"));
    let record = text(&run(&db, &["audit", "annals-forgotten"]));
    assert!(
        record.contains("by dpo") && record.contains("SubjectForgotten"),
        "{record}"
    );
    // This process had the key cached; it forgets within the cache's time to live.
    tokio::time::sleep(annals::privacy::KEY_CACHE_TTL).await;
    let read = shred.read_stream(&id, ReadStream::all()).await.unwrap();
    assert_eq!(read[0].payload_value().unwrap()["email"], REDACTED);
}

//! Behaviour only the SQLite backend has: files, migrations, corrupt rows written with raw SQL,
//! several handles on one file, many concurrent appenders.

use std::sync::Arc;
use std::time::Duration;

use annals::testkit::fixtures::{Tally, TallyCommand};
use annals::{
    DecodeError, EventStore, ExpectedVersion, Metadata, NewEvent, ReadStream, Repository, RepositoryError, StoreError,
    StreamId,
};
use annals_sqlite::SqliteStore;
use serde_json::json;

fn sid(s: &str) -> StreamId {
    StreamId::new(s).unwrap()
}

#[tokio::test]
async fn events_survive_reopen_and_migrations_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    {
        let store = SqliteStore::open(&path).await.unwrap();
        let repo = Repository::<Tally, _>::new(store.clone());
        repo.execute(
            &sid("t-1"),
            &TallyCommand::AddMany(vec![1, 2, 3]),
            &Metadata::by("test"),
        )
        .await
        .unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    let repo = Repository::<Tally, _>::new(store.clone());
    let loaded = repo.load(&sid("t-1")).await.unwrap();
    assert_eq!((loaded.state.total, loaded.version), (6, 3));
    assert_eq!(store.head_position().await.unwrap(), 3);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let applied: i64 = conn
        .query_row("SELECT COUNT(*) FROM annals_migrations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(applied as usize, annals_sqlite::schema::MIGRATIONS.len());
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn a_corrupt_row_is_an_error_naming_stream_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let repo = Repository::<Tally, _>::new(store.clone());
    repo.execute(&sid("t-bad"), &TallyCommand::AddMany(vec![1, 2]), &Metadata::default())
        .await
        .unwrap();

    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute(
        "UPDATE events SET payload = '{\"amount\": ' WHERE stream_id = 't-bad' AND version = 2",
        [],
    )
    .unwrap();
    let err = store.read_stream(&sid("t-bad"), ReadStream::all()).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { stream, version: 2, .. } if stream == "t-bad"),
        "{err:?}"
    );
    assert!(err.to_string().contains("t-bad") && err.to_string().contains("version 2"));
    let err = store.read_all(0, 10).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { version: 2, .. }), "{err:?}");
    // A load reads the payload once, in the typed decode, which names the row the same way.
    let err = repo.load(&sid("t-bad")).await.unwrap_err();
    assert!(
        matches!(&err, RepositoryError::Decode(DecodeError::Payload { stream, version: 2, .. }) if stream == "t-bad"),
        "{err:?}"
    );
    assert_eq!(err.kind(), annals::ErrorKind::Corrupt);

    raw.execute("UPDATE events SET payload = x'ff00' WHERE version = 2", [])
        .unwrap();
    let err = store.read_stream(&sid("t-bad"), ReadStream::all()).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { version: 2, .. }), "{err:?}");
    let err = repo.load(&sid("t-bad")).await.unwrap_err();
    assert!(
        matches!(err, RepositoryError::Store(StoreError::Corrupt { version: 2, .. })),
        "not text: {err:?}"
    );
    raw.execute(
        "UPDATE events SET payload = '{\"amount\": 2}', metadata = 'nope' WHERE version = 2",
        [],
    )
    .unwrap();
    let err = store.read_stream(&sid("t-bad"), ReadStream::all()).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { version: 2, .. }), "{err:?}");
    raw.execute(
        "UPDATE events SET metadata = '{}', event_type = 'Gone' WHERE version = 2",
        [],
    )
    .unwrap();
    let err = repo.load(&sid("t-bad")).await.unwrap_err();
    assert!(
        matches!(
            err,
            RepositoryError::Decode(DecodeError::UnknownEventType { version: 2, .. })
        ),
        "{err:?}"
    );
    // The first event still reads.
    assert_eq!(
        store
            .read_stream(&sid("t-bad"), ReadStream::all().limit(1))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_appenders_never_see_database_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("m.db")).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                let s = sid(&format!("s-{w}"));
                let expected = if i == 0 {
                    ExpectedVersion::NoStream
                } else {
                    ExpectedVersion::Exact(i)
                };
                store
                    .append_to_stream(
                        s,
                        "S",
                        expected,
                        vec![NewEvent::from_value("Added", &json!({ "amount": i }))],
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.head_position().await.unwrap(), 640);
    let all = store.read_all(0, usize::MAX).await.unwrap();
    annals::testkit::conformance::check_history(&all, 640);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_on_one_file_share_the_log_and_wake_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.db");
    let a = SqliteStore::open(&path).await.unwrap();
    let b = SqliteStore::open(&path).await.unwrap();
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move { b.wait_for_new(0, Duration::from_secs(20)).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.append_to_stream(
        sid("x"),
        "X",
        ExpectedVersion::NoStream,
        vec![NewEvent::from_value("Added", &json!({}))],
    )
    .await
    .unwrap();
    assert_eq!(waiter.await.unwrap(), 1, "a handle notices another handle's append");
    // Both write; optimistic locking holds across handles.
    let mut tasks = Vec::new();
    for store in [a.clone(), b.clone()] {
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..30 {
                let v = store.stream_version(&sid("x")).await.unwrap();
                let r = store
                    .append_to_stream(
                        sid("x"),
                        "X",
                        ExpectedVersion::Exact(v),
                        vec![NewEvent::from_value("Added", &json!({}))],
                    )
                    .await;
                match r {
                    Ok(_) => ok += 1,
                    Err(e) => assert!(e.is_conflict(), "{e}"),
                }
            }
            ok
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let events = Arc::new(a.read_stream(&sid("x"), ReadStream::all()).await.unwrap());
    assert_eq!(events.len() as u64, 1 + total);
    assert!(events.iter().enumerate().all(|(i, e)| e.version == i as u64 + 1));
}

/// §1.8 on disk: the database file (and its WAL) never holds a personal field in plain, and
/// forgetting removes the subject's key row.
#[tokio::test]
async fn the_database_file_never_holds_personal_fields_in_plain() {
    use annals::privacy::{KeyStore, MasterKey, Shredding};
    use annals::testkit::fixtures::people;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let shred = Shredding::new(
        store.clone(),
        store.clone(),
        people::fields(),
        MasterKey::new("m1", [3; 32]),
        vec![],
    );
    people::register(&shred, 20).await;
    assert!(shred.forget("p3", &Metadata::by("dpo")).await.unwrap());
    assert!(store.load_key("p3").await.unwrap().is_none());
    assert_eq!(store.list_keys().await.unwrap().len(), 19);
    drop(shred);
    drop(store);
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(!bytes.is_empty());
    let needle = b"@example.org";
    assert!(
        !bytes.windows(needle.len()).any(|w| w == needle),
        "a plaintext address is on disk"
    );
}

/// `Shredding::in_store` on SQLite stores a new subject's key in the transaction of the append
/// that first uses it: an append that is refused leaves no key behind, and one that commits
/// brings its key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_subjects_key_commits_with_its_first_append_or_not_at_all() {
    use annals::privacy::{KeyStore, MasterKey, Shredding};
    use annals::testkit::fixtures::people;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("k.db")).await.unwrap();
    let shred = Shredding::in_store(store.clone(), people::fields(), MasterKey::new("m1", [3; 32]), vec![]);
    let registered = people::registered;
    let refused = shred
        .append_to_stream(
            sid("person-p1"),
            "Person",
            ExpectedVersion::Exact(3),
            vec![registered("p1")],
        )
        .await;
    assert!(matches!(refused, Err(StoreError::Conflict { .. })), "{refused:?}");
    assert!(
        store.load_key("p1").await.unwrap().is_none(),
        "no key without its events"
    );
    shred
        .append_to_stream(
            sid("person-p1"),
            "Person",
            ExpectedVersion::NoStream,
            vec![registered("p1")],
        )
        .await
        .unwrap();
    assert!(store.load_key("p1").await.unwrap().is_some());
    let read = shred.read_stream(&sid("person-p1"), ReadStream::all()).await.unwrap();
    assert_eq!(read[0].payload_value().unwrap()["email"], "p1@example.org");
}

#[derive(Clone, Default)]
struct Seen(Arc<std::sync::Mutex<Vec<(String, u64)>>>);

impl annals::consume::EventHandler for Seen {
    async fn handle(&mut self, event: &annals::RecordedEvent) -> Result<(), annals::error::BoxError> {
        self.0
            .lock()
            .unwrap()
            .push((event.stream_id.to_string(), event.version));
        Ok(())
    }
}

#[tokio::test]
async fn a_consumer_parks_a_corrupt_row_and_goes_on() {
    use annals::consume::{DeadLetters, Runner, Subscription};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let store = SqliteStore::open(&path).await.unwrap();
    for (stream, n) in [("c-1", 3), ("c-2", 2), ("c-3", 1)] {
        let events = (0..n)
            .map(|i| NewEvent::from_value("Added", &json!({ "amount": i })))
            .collect();
        store
            .append_to_stream(sid(stream), "Counter", ExpectedVersion::Any, events)
            .await
            .unwrap();
    }
    // Rows changed outside annals: a payload that is not JSON, a time that is not a number,
    // a stream id that is not one.
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute(
        "UPDATE events SET payload = '{oops' WHERE stream_id = 'c-1' AND version = 2",
        [],
    )
    .unwrap();
    raw.execute(
        "UPDATE events SET recorded_at = 'soon' WHERE stream_id = 'c-2' AND version = 1",
        [],
    )
    .unwrap();
    raw.execute(
        "UPDATE events SET stream_id = 'no spaces allowed' WHERE stream_id = 'c-3'",
        [],
    )
    .unwrap();
    let seen = Seen::default();
    let mut runner = Runner::new(
        store.clone(),
        Subscription::new("survivor", store.clone(), seen.clone()),
    )
    .with_batch(100);
    let progress = runner.run_until_caught_up().await.unwrap();
    assert_eq!((progress.handled, progress.parked, progress.position), (3, 3, 6));
    assert_eq!(
        *seen.0.lock().unwrap(),
        [("c-1".to_owned(), 1), ("c-1".to_owned(), 3), ("c-2".to_owned(), 2)]
    );
    let parked = store.list_parked(Some("survivor")).await.unwrap();
    let named: Vec<(u64, &str, u64)> = parked
        .iter()
        .map(|p| (p.position, p.stream_id.as_str(), p.version))
        .collect();
    assert_eq!(named, [(2, "c-1", 2), (4, "c-2", 1), (6, "annals-corrupt", 1)]);
    assert!(parked.iter().all(|p| p.error.contains("cannot be read")), "{parked:?}");
    // Running again finds nothing new; an operator's retry of a corrupt one parks it again.
    assert_eq!(runner.run_until_caught_up().await.unwrap().handled, 0);
    store
        .set_parked(parked[0].id, annals::consume::ParkedState::Retry, None)
        .await
        .unwrap();
    runner.run_until_caught_up().await.unwrap();
    let again = store.list_parked(Some("survivor")).await.unwrap();
    assert_eq!(again[0].state, annals::consume::ParkedState::Parked);
    assert!(again[0].error.contains("corrupt"), "{}", again[0].error);
}

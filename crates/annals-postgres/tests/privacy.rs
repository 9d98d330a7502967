//! §1.8 in PostgreSQL's tables: no row of events, snapshots or the log holds a personal field in
//! plain, and forgetting deletes the subject's key row.

mod common;

use annals::privacy::{KeyStore, MasterKey, Shredding};
use annals::testkit::fixtures::people;
use annals::{EventStore, Metadata, ReadStream, StreamId};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tables_never_hold_personal_fields_in_plain() {
    let (store, guard) = common::fresh().await;
    let shred = Shredding::new(
        store.clone(),
        store.clone(),
        people::fields(),
        MasterKey::new("m1", [5; 32]),
        vec![],
    );
    people::register(&shred, 10).await;
    let seen = shred
        .read_stream(&StreamId::new("person-4").unwrap(), ReadStream::all())
        .await
        .unwrap();
    assert_eq!(seen[0].payload_value().unwrap()["email"], "p4@example.org");
    assert!(shred.forget("p4", &Metadata::by("dpo")).await.unwrap());
    let client = store.client().await.unwrap();
    for table in ["events", "snapshots", "subject_keys", "log"] {
        let n: i64 = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM {}.{table} t WHERE t::text LIKE '%@example.org%'",
                    guard.schema
                ),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "plaintext in {table}");
    }
    let keys: i64 = client
        .query_one(&format!("SELECT count(*) FROM {}.subject_keys", guard.schema), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(keys, 9, "the forgotten subject's key row is gone");
    assert!(store.load_key("p4").await.unwrap().is_none());
}

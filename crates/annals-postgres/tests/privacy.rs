//! §1.8 in PostgreSQL's tables: no row of events, snapshots or the log holds a personal field in
//! plain, and forgetting deletes the subject's key row.

mod common;

use annals::privacy::{KeyStore, MasterKey, PersonalFields, Shredding};
use annals::{EventStore, ExpectedVersion, Metadata, NewEvent, ReadStream, StreamId};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tables_never_hold_personal_fields_in_plain() {
    let (store, guard) = common::fresh().await;
    let fields = PersonalFields::new().field("Person", "Registered", "email", "person_id");
    let shred = Shredding::new(
        store.clone(),
        store.clone(),
        fields,
        MasterKey::new("m1", [5; 32]),
        vec![],
    );
    for i in 0..10 {
        shred
            .append_to_stream(
                StreamId::new(format!("person-{i}")).unwrap(),
                "Person",
                ExpectedVersion::NoStream,
                vec![NewEvent::from_value(
                    "Registered",
                    &json!({ "person_id": format!("p{i}"), "email": format!("someone{i}@example.org") }),
                )],
            )
            .await
            .unwrap();
    }
    let seen = shred
        .read_stream(&StreamId::new("person-4").unwrap(), ReadStream::all())
        .await
        .unwrap();
    assert_eq!(seen[0].payload_value()["email"], "someone4@example.org");
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

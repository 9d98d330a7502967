//! The tailing relay publishes today's shape of old events (DESIGN §1.7): both the events it
//! reads from the log at start and those that come through the replication slot.

use std::time::Duration;

use annals::testkit::faults::RecordingPublisher;
use annals::testkit::fixtures::person_upcasters;
use annals::{EventStore, ExpectedVersion, NewEvent, StreamId};
use annals_postgres::tail::TailRelay;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tailed_events_are_upcast() {
    let (store, _guard) = annals_postgres::testing::fresh().await;
    let named = |n: &str| NewEvent::from_value("Named", &json!({ "name": n }));
    store
        .append_to_stream(
            StreamId::new("person-1").unwrap(),
            "Person",
            ExpectedVersion::NoStream,
            vec![named("Ada Lovelace")],
        )
        .await
        .unwrap();
    let publisher = RecordingPublisher::default();
    let relay_store = store.clone();
    let relay_publisher = publisher.clone();
    let relay = tokio::spawn(async move {
        TailRelay::new("up", relay_store, relay_publisher)
            .with_upcasters(person_upcasters())
            .run(std::future::pending())
            .await
    });
    // Live, through the slot, once the relay streams.
    for _ in 0..200 {
        if !publisher.sent().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    store
        .append_to_stream(
            StreamId::new("person-2").unwrap(),
            "Person",
            ExpectedVersion::NoStream,
            vec![named("Grace Hopper")],
        )
        .await
        .unwrap();
    for _ in 0..400 {
        if publisher.sent().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let sent = publisher.sent();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent.iter().all(|e| e.schema_version == 2));
    assert_eq!(
        sent[0].payload_value().unwrap(),
        json!({ "first": "Ada", "last": "Lovelace" })
    );
    assert_eq!(
        sent[1].payload_value().unwrap(),
        json!({ "first": "Grace", "last": "Hopper" })
    );
    relay.abort();
}

//! The audit trail groups a stream's events by the append that stored them, with its actor,
//! causation and correlation.

use annals::audit::changes;
use annals::{EventStore, ExpectedVersion, MemoryStore, Metadata, NewEvent, ReadStream, StreamId};
use uuid::Uuid;

#[tokio::test]
async fn changes_are_the_appends_with_who_and_why() {
    let store = MemoryStore::new();
    let id = StreamId::new("account-7").unwrap();
    let (cause, flow) = (Uuid::now_v7(), Uuid::now_v7());
    let by = |who: &str| Metadata::by(who).caused_by(cause).correlated_with(flow);
    let ev = |t: &str, m: Metadata| NewEvent::from_value(t, &serde_json::json!({})).with_metadata(m);
    store
        .append_to_stream(
            id.clone(),
            "Account",
            ExpectedVersion::NoStream,
            vec![ev("Opened", by("alice")), ev("Deposited", by("alice"))],
        )
        .await
        .unwrap();
    store
        .append_to_stream(
            id.clone(),
            "Account",
            ExpectedVersion::Exact(2),
            vec![ev("Withdrawn", Metadata::by("bob"))],
        )
        .await
        .unwrap();
    let all = changes(&store.read_stream(&id, ReadStream::all()).await.unwrap());
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].versions, (1, 2));
    assert_eq!(
        (all[0].actor.as_deref(), all[0].causation_id, all[0].correlation_id),
        (Some("alice"), Some(cause), Some(flow))
    );
    let types: Vec<_> = all[0].events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["Opened", "Deposited"]);
    assert_eq!(
        (all[1].versions, all[1].actor.as_deref(), all[1].causation_id),
        ((3, 3), Some("bob"), None)
    );
}

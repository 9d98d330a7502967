//! §1.5 publication: the polling relay sends every committed event to the broker at least once,
//! in per-stream order, across publish failures and restarts; one relay per name holds a lease.

use std::collections::HashMap;
use std::time::Duration;

use super::{ev, sid};
use crate::consume::Checkpoints;
use crate::event::RecordedEvent;
use crate::ids::ExpectedVersion;
use crate::relay::{Leases, Relay};
use crate::store::EventStore;
use crate::testkit::faults::RecordingPublisher;

/// Every stored event's (stream, version), per stream in version order.
fn per_stream(events: &[RecordedEvent]) -> HashMap<String, Vec<u64>> {
    let mut out: HashMap<String, Vec<u64>> = HashMap::new();
    for e in events {
        out.entry(e.stream_id.to_string()).or_default().push(e.version);
    }
    out
}

/// Each stream's versions as first sent (duplicates dropped, as the broker's window does).
fn first_sent(sent: &[RecordedEvent]) -> HashMap<String, Vec<u64>> {
    let mut seen = std::collections::HashSet::new();
    let firsts: Vec<RecordedEvent> = sent.iter().filter(|e| seen.insert(e.event_id)).cloned().collect();
    per_stream(&firsts)
}

async fn run_until<S>(relay: &mut Relay<S, RecordingPublisher>, store: &S, position: u64)
where
    S: EventStore + Checkpoints + Leases + crate::consume::HealthReports + Clone,
{
    let cursor = relay.checkpoint_name();
    let store = store.clone();
    let reached = async move {
        for _ in 0..400 {
            if store.load_checkpoint(&cursor).await.unwrap().unwrap_or(0) >= position {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the relay did not reach position {position} within 10 s");
    };
    let progress = relay.run(reached).await.unwrap();
    assert!(progress.position >= position, "{progress:?}");
}

/// The relay publishes history then live appends, retries a batch the broker failed half-way
/// (so nothing is lost and per-stream order holds after de-duplication), stores its cursor only
/// after acknowledgements, and a new relay resumes from that cursor.
pub async fn relay_publishes_every_event_in_stream_order_across_failures<S>(store: S)
where
    S: EventStore + Checkpoints + Leases + crate::consume::HealthReports + Clone + 'static,
{
    for i in 0..20 {
        for s in ["relay-a", "relay-b", "relay-c"] {
            store
                .append_to_stream(sid(s), "Account", ExpectedVersion::Any, vec![ev(i), ev(i + 100)])
                .await
                .unwrap();
        }
    }
    let head = store.head_position().await.unwrap();
    let publisher = RecordingPublisher::failing_calls([2, 4]);
    let mut relay = Relay::new("conformance", store.clone(), publisher.clone())
        .with_batch(7)
        .with_lease_ttl(Duration::from_millis(600));
    run_until(&mut relay, &store, head).await;

    let stored = store.read_all(0, usize::MAX).await.unwrap();
    assert_eq!(stored.len(), 120);
    assert_eq!(first_sent(&publisher.sent()), per_stream(&stored), "lost or reordered");
    let before = publisher.sent().len();
    assert!(before > 120, "the failed batches were sent again ({before} messages)");

    // Live appends, then a new relay (a restart) resumes from the stored cursor.
    let mut relay = Relay::new("conformance", store.clone(), publisher.clone()).with_batch(7);
    for i in 0..5 {
        store
            .append_to_stream(sid("relay-b"), "Account", ExpectedVersion::Any, vec![ev(200 + i)])
            .await
            .unwrap();
    }
    let head = store.head_position().await.unwrap();
    run_until(&mut relay, &store, head).await;
    let sent = publisher.sent();
    assert!(
        sent[before..]
            .iter()
            .all(|e| e.global_position > stored[119].global_position),
        "a restarted relay sent again what its cursor covered"
    );
    let stored = store.read_all(0, usize::MAX).await.unwrap();
    assert_eq!(first_sent(&sent), per_stream(&stored));
    assert_eq!(
        store.load_checkpoint(&relay.checkpoint_name()).await.unwrap(),
        Some(head)
    );
}

/// A lease has one holder until it expires or is released; its holder renews it.
pub async fn leases_admit_one_holder_until_expiry<S: Leases>(store: S) {
    // Held leases get a TTL no stall of a loaded machine reaches; only the lease meant to expire
    // gets a short one, set by its holder's renewal.
    let long = Duration::from_secs(60);
    let short = Duration::from_millis(300);
    assert!(store.hold_lease("job", "a", long).await.unwrap());
    assert!(
        !store.hold_lease("job", "b", long).await.unwrap(),
        "b took a held lease"
    );
    assert!(store.hold_lease("job", "a", short).await.unwrap(), "a could not renew");
    assert!(
        store.hold_lease("other", "b", long).await.unwrap(),
        "leases are per name"
    );
    tokio::time::sleep(short + Duration::from_millis(200)).await;
    assert!(
        store.hold_lease("job", "b", long).await.unwrap(),
        "b could not take an expired lease"
    );
    assert!(
        !store.hold_lease("job", "a", long).await.unwrap(),
        "a renewed a lease b took over"
    );
    store.release_lease("job", "a").await.unwrap();
    assert!(
        !store.hold_lease("job", "a", long).await.unwrap(),
        "a released b's lease"
    );
    store.release_lease("job", "b").await.unwrap();
    assert!(
        store.hold_lease("job", "a", long).await.unwrap(),
        "a released lease stayed taken"
    );
}

/// §1.7 on the relay's path: a relay over an [`Upcasting`](crate::upcast::Upcasting) store
/// publishes today's shape of an old event (its cursor and lease live in the inner store).
pub async fn relayed_events_are_upcast<S>(store: S)
where
    S: EventStore + Checkpoints + Leases + crate::consume::HealthReports + Clone + 'static,
{
    let old = crate::event::NewEvent::from_value("Named", &serde_json::json!({ "name": "Ada Lovelace" }));
    store
        .append_to_stream(sid("person-9"), "Person", ExpectedVersion::NoStream, vec![old])
        .await
        .unwrap();
    let upcasting = crate::upcast::Upcasting::new(store.clone(), crate::testkit::fixtures::person_upcasters());
    let publisher = RecordingPublisher::default();
    let mut relay = Relay::new("upcast", upcasting.clone(), publisher.clone());
    let head = store.head_position().await.unwrap();
    run_until(&mut relay, &upcasting, head).await;
    let sent = publisher.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].schema_version, 2);
    assert_eq!(
        sent[0].payload_value().unwrap(),
        serde_json::json!({ "first": "Ada", "last": "Lovelace" })
    );
    assert_eq!(store.load_checkpoint("relay.upcast").await.unwrap(), Some(head));
}

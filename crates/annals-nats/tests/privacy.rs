//! §1.8 on the broker: the relay publishes what the store holds — ciphertext for personal fields
//! — so no message on NATS carries them in plain, before or after the subject is forgotten.

mod common;

use std::sync::Arc;

use annals::privacy::{MasterKey, Shredding};
use annals::relay::Publisher;
use annals::testkit::fixtures::people;
use annals::{EventStore, MemoryStore, Metadata};
use annals_nats::NatsPublisher;
use common::{NATS_URL, delete_stream, unique_options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_messages_carry_no_personal_field_in_plain() {
    let options = unique_options(NATS_URL, "privacy");
    let store = Arc::new(MemoryStore::new());
    let shred = Shredding::new(
        store.clone(),
        store.clone(),
        people::fields(),
        MasterKey::new("m1", [1; 32]),
        vec![],
    );
    people::register(&shred, 5).await;
    shred.forget("p1", &Metadata::by("dpo")).await.unwrap();
    // The relay reads the store underneath the encryption.
    let events = shred.inner().read_all(0, usize::MAX).await.unwrap();
    NatsPublisher::connect(&options)
        .await
        .unwrap()
        .publish(&events)
        .await
        .unwrap();
    let js = annals_nats::connect(&options).await.unwrap();
    let stream = js.get_stream(&options.stream).await.unwrap();
    let mut seen = 0;
    for seq in 1..=events.len() as u64 {
        let m = stream.get_raw_message(seq).await.unwrap();
        let mut all = m.payload.to_vec();
        for (name, values) in m.headers.iter() {
            all.extend(name.to_string().as_bytes());
            for v in values {
                all.extend(v.as_str().as_bytes());
            }
        }
        assert!(
            !String::from_utf8_lossy(&all).contains("@example.org"),
            "plaintext on NATS: {:?}",
            m.payload
        );
        seen += usize::from(String::from_utf8_lossy(&m.payload).contains("Lyon"));
    }
    assert_eq!(seen, 5, "the other fields travel as they are");
    delete_stream(&options).await;
}

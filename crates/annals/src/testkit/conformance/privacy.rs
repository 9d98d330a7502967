//! §1.8 forgetting: personal fields are stored encrypted, read back in plain through
//! [`Shredding`], and read as [`REDACTED`] once their subject is forgotten — every other field
//! still loads, snapshots never hold them, and rotating the master key rewrites no event.

use serde_json::json;

use super::sid;
use crate::error::StoreError;
use crate::event::{Metadata, NewEvent};
use crate::ids::ExpectedVersion;
use crate::privacy::{AppendWithKeys, FORGOTTEN_STREAM, KEY_CACHE_TTL, MasterKey, PersonalFields, REDACTED, Shredding};
use crate::store::{EventStore, NewSnapshot, ReadStream, StreamAppend};

fn registered(person: &str, email: &str) -> NewEvent {
    NewEvent::from_value(
        "Registered",
        &json!({ "person_id": person, "email": email, "city": "Lyon" }),
    )
}

/// §1.8: see the module docs.
pub async fn personal_fields_are_encrypted_and_forgettable<S: AppendWithKeys + Clone>(store: S) {
    let fields = PersonalFields::new().field("Person", "Registered", "email", "person_id");
    let old_master = MasterKey::new("m1", [7; 32]);
    // Keys kept by the store itself: new subjects' keys may ride on the append that uses them.
    let shred = Shredding::in_store(store.clone(), fields.clone(), old_master.clone(), vec![]);
    let (ada, bob) = (sid("person-ada"), sid("person-bob"));
    shred
        .append_to_stream(
            ada.clone(),
            "Person",
            ExpectedVersion::NoStream,
            vec![registered("ada", "ada@example.org")],
        )
        .await
        .unwrap();
    shred
        .append_to_stream(
            bob.clone(),
            "Person",
            ExpectedVersion::NoStream,
            vec![registered("bob", "bob@example.org")],
        )
        .await
        .unwrap();
    let read = shred.read_stream(&ada, ReadStream::all()).await.unwrap();
    assert_eq!(read[0].payload_value().unwrap()["email"], "ada@example.org");
    // Underneath, only ciphertext: the raw rows never held the address.
    for e in store.read_all(0, usize::MAX).await.unwrap() {
        let raw = e.payload.get();
        assert!(!raw.contains("@example.org"), "plaintext stored: {raw}");
    }
    // A snapshot of a stream type with personal fields is not stored.
    let snap = StreamAppend::new(
        ada.clone(),
        "Person",
        ExpectedVersion::Exact(1),
        vec![NewEvent::from_value("Moved", &json!({ "city": "Nice" }))],
    )
    .with_snapshot(NewSnapshot {
        version: 2,
        schema_version: 1,
        state: serde_json::value::to_raw_value(&json!({ "email": "ada@example.org" })).unwrap(),
    });
    shred.append(vec![snap]).await.unwrap();
    assert!(store.load_snapshot(&ada, None).await.unwrap().is_none());

    // Another process's view: it has ada's key cached.
    let elsewhere = Shredding::new(store.clone(), store.clone(), fields.clone(), old_master.clone(), vec![]);
    elsewhere.read_stream(&ada, ReadStream::all()).await.unwrap();

    // Forgetting ada: her address reads as redacted on every path; the rest of her events loads,
    // and bob is untouched.
    assert!(shred.forget("ada", &Metadata::by("dpo")).await.unwrap());
    assert!(
        !shred.forget("ada", &Metadata::by("dpo")).await.unwrap(),
        "forgotten already"
    );
    let read = shred.read_stream(&ada, ReadStream::all()).await.unwrap();
    assert_eq!(read[0].payload_value().unwrap()["email"], REDACTED);
    assert_eq!(
        (read[0].payload_value().unwrap()["city"].as_str(), read.len()),
        (Some("Lyon"), 2)
    );
    let log = shred.read_all(0, usize::MAX).await.unwrap();
    let emails: Vec<String> = log
        .iter()
        .filter(|e| e.event_type == "Registered")
        .map(|e| e.payload_value().unwrap()["email"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(emails, [REDACTED, "bob@example.org"]);
    // The other view forgets within its key cache's time to live.
    tokio::time::sleep(KEY_CACHE_TTL).await;
    let read = elsewhere.read_stream(&ada, ReadStream::all()).await.unwrap();
    assert_eq!(read[0].payload_value().unwrap()["email"], REDACTED);
    let record = store
        .read_stream(&sid(FORGOTTEN_STREAM), ReadStream::all())
        .await
        .unwrap();
    assert_eq!(record.len(), 1);
    assert_eq!(record[0].payload_value().unwrap()["subject"], "ada");

    // Two writers (each with its own key cache) register one new subject at once: one key is
    // kept, and both events are sealed under it.
    let (w1, w2) = (
        Shredding::in_store(store.clone(), fields.clone(), old_master.clone(), vec![]),
        Shredding::in_store(store.clone(), fields.clone(), old_master.clone(), vec![]),
    );
    let (a, b) = tokio::join!(
        w1.append_to_stream(
            sid("person-cy-1"),
            "Person",
            ExpectedVersion::NoStream,
            vec![registered("cy", "cy1@example.org")]
        ),
        w2.append_to_stream(
            sid("person-cy-2"),
            "Person",
            ExpectedVersion::NoStream,
            vec![registered("cy", "cy2@example.org")]
        ),
    );
    a.unwrap();
    b.unwrap();
    for (stream, email) in [("person-cy-1", "cy1@example.org"), ("person-cy-2", "cy2@example.org")] {
        let read = shred.read_stream(&sid(stream), ReadStream::all()).await.unwrap();
        assert_eq!(read[0].payload_value().unwrap()["email"], email);
    }
    assert!(shred.forget("cy", &Metadata::by("dpo")).await.unwrap());

    // A subject whose id needs escaping in JSON reads back and is forgotten like any other.
    let odd = "o\"brien\\ü";
    let odd_stream = sid("person-odd");
    shred
        .append_to_stream(
            odd_stream.clone(),
            "Person",
            ExpectedVersion::NoStream,
            vec![registered(odd, "ob@example.org")],
        )
        .await
        .unwrap();
    let read = shred.read_stream(&odd_stream, ReadStream::all()).await.unwrap();
    assert_eq!(read[0].payload_value().unwrap()["email"], "ob@example.org");
    assert_eq!(read[0].payload_value().unwrap()["person_id"], odd);
    assert!(shred.forget(odd, &Metadata::by("dpo")).await.unwrap());
    let read = shred.read_stream(&odd_stream, ReadStream::all()).await.unwrap();
    assert_eq!(read[0].payload_value().unwrap()["email"], REDACTED);

    // A new master key: keys are re-wrapped, no event is rewritten, and the old key can go.
    let head = store.head_position().await.unwrap();
    let new_master = MasterKey::new("m2", [9; 32]);
    let rotating = Shredding::new(
        store.clone(),
        store.clone(),
        fields.clone(),
        new_master.clone(),
        vec![old_master],
    );
    assert_eq!(rotating.rotate().await.unwrap(), 1, "bob's key; ada has none");
    assert_eq!(store.list_keys().await.unwrap()[0].1.master_id, "m2");
    let rotated = Shredding::new(store.clone(), store.clone(), fields, new_master, vec![]);
    let read = rotated.read_stream(&bob, ReadStream::all()).await.unwrap();
    assert_eq!(read[0].payload_value().unwrap()["email"], "bob@example.org");
    assert_eq!(
        store.head_position().await.unwrap(),
        head,
        "no event written by the rotation"
    );

    // Pseudonyms: stable per value, distinct between values, forgettable.
    use crate::privacy::{forget_pseudonym, pseudonym, reidentify};
    let p1 = pseudonym(&store, "ada@example.org").await.unwrap();
    assert_eq!(pseudonym(&store, "ada@example.org").await.unwrap(), p1);
    assert_ne!(pseudonym(&store, "bob@example.org").await.unwrap(), p1);
    assert_eq!(
        reidentify(&store, p1).await.unwrap().as_deref(),
        Some("ada@example.org")
    );
    assert!(forget_pseudonym(&store, "ada@example.org").await.unwrap());
    assert_eq!(reidentify(&store, p1).await.unwrap(), None);
    assert_ne!(
        pseudonym(&store, "ada@example.org").await.unwrap(),
        p1,
        "a new one, unlinkable"
    );
    assert_eq!(rotated.rotate().await.unwrap(), 0, "pseudonyms are not keys to re-wrap");

    // One event, two subjects. A reader with one of the keys cached opens that value as the store
    // reads it and the other after; forgetting one subject redacts only its own field.
    let gift_fields = PersonalFields::new()
        .field("Gift", "Given", "from_email", "from")
        .field("Gift", "Given", "to_email", "to");
    let m2 = MasterKey::new("m2", [9; 32]);
    let gifts = Shredding::in_store(store.clone(), gift_fields.clone(), m2.clone(), vec![]);
    let given = json!({ "from": "dee", "to": "eve", "from_email": "dee@example.org", "to_email": "eve@example.org" });
    let dee_only = json!({ "from": "dee", "from_email": "dee@example.org" });
    for (stream, payload) in [("gift-1", &given), ("gift-dee", &dee_only)] {
        gifts
            .append_to_stream(
                sid(stream),
                "Gift",
                ExpectedVersion::NoStream,
                vec![NewEvent::from_value("Given", payload)],
            )
            .await
            .unwrap();
    }
    let dee_cached = || async {
        let reader = Shredding::new(store.clone(), store.clone(), gift_fields.clone(), m2.clone(), vec![]);
        reader.read_stream(&sid("gift-dee"), ReadStream::all()).await.unwrap();
        reader.read_stream(&sid("gift-1"), ReadStream::all()).await.unwrap()[0]
            .payload_value()
            .unwrap()
    };
    assert_eq!(dee_cached().await, given);
    assert!(gifts.forget("eve", &Metadata::by("dpo")).await.unwrap());
    let read = dee_cached().await;
    assert_eq!(
        (&read["from_email"], &read["to_email"], &read["to"]),
        (&json!("dee@example.org"), &json!(REDACTED), &json!("eve"))
    );

    // A personal field without its subject is refused, and nothing is stored.
    let bad = rotated
        .append_to_stream(
            sid("person-x"),
            "Person",
            ExpectedVersion::Any,
            vec![NewEvent::from_value("Registered", &json!({ "email": "x@example.org" }))],
        )
        .await;
    assert!(matches!(bad, Err(StoreError::MalformedPayload { .. })), "{bad:?}");
    assert_eq!(store.stream_version(&sid("person-x")).await.unwrap(), 0);
}

/// §1.8 reaches parked messages: a consumer over [`Shredding`] that gives up on a personal event
/// parks it sealed (the store underneath never holds the plaintext), an operator reading through
/// `Shredding` sees it opened, and once the subject is forgotten it reads as [`REDACTED`] there
/// too.
pub async fn parked_messages_hold_no_personal_data_in_plain<S>(store: S)
where
    S: AppendWithKeys + crate::consume::Checkpoints + crate::consume::DeadLetters + Clone + 'static,
{
    use crate::consume::{DeadLetters, ErrorPolicy, EventHandler, Runner, Subscription};

    #[derive(Clone)]
    struct Refuses;
    impl EventHandler for Refuses {
        async fn handle(&mut self, event: &crate::event::RecordedEvent) -> Result<(), crate::error::BoxError> {
            Err(format!("cannot handle {} v{}", event.stream_id, event.version).into())
        }
    }
    let fields = PersonalFields::new().field("Person", "Registered", "email", "person_id");
    let shred = Shredding::in_store(store.clone(), fields, MasterKey::new("m1", [3; 32]), vec![]);
    let cy = sid("person-cy");
    shred
        .append_to_stream(
            cy.clone(),
            "Person",
            ExpectedVersion::NoStream,
            vec![registered("cy", "cy@example.org")],
        )
        .await
        .unwrap();
    let mut runner = Runner::new(shred.clone(), Subscription::new("privacy-park", shred.clone(), Refuses))
        .with_policy(ErrorPolicy::park_after(1));
    assert_eq!(runner.run_until_caught_up().await.unwrap().parked, 1);
    let raw = store.list_parked(Some("privacy-park")).await.unwrap();
    assert_eq!(raw.len(), 1);
    let kept = raw[0].message.as_deref().expect("the message is kept");
    assert!(!kept.contains("cy@example.org"), "parked in plain: {kept}");
    assert!(kept.contains("$sealed"), "{kept}");
    let opened = shred.list_parked(Some("privacy-park")).await.unwrap();
    let event = opened[0].event().expect("an event");
    assert_eq!(event.payload_value().unwrap()["email"], "cy@example.org");
    assert_eq!(event.payload_value().unwrap()["city"], "Lyon");

    assert!(shred.forget("cy", &Metadata::by("dpo")).await.unwrap());
    let opened = shred.list_parked(Some("privacy-park")).await.unwrap();
    let event = opened[0].event().expect("an event");
    assert_eq!(event.payload_value().unwrap()["email"], REDACTED);
    let raw = store.list_parked(Some("privacy-park")).await.unwrap();
    assert!(!raw[0].message.as_deref().unwrap_or_default().contains("cy@example.org"));
}

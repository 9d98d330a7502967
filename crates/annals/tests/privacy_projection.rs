//! §8: a projection that keeps personal data reads the log through `Shredding`, and erases its
//! copy when the subject is forgotten (the `SubjectForgotten` event in `annals-forgotten`); a
//! rebuild after forgetting never sees the plaintext at all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use annals::consume::{EventHandler, Runner, Subscription};
use annals::error::BoxError;
use annals::privacy::{FORGOTTEN_STREAM, MasterKey, PersonalFields, REDACTED, Shredding};
use annals::{EventStore, ExpectedVersion, MemoryStore, Metadata, NewEvent, RecordedEvent, StreamId};
use serde_json::json;

/// A read model: person id → e-mail.
#[derive(Clone, Default)]
struct Directory(Arc<Mutex<HashMap<String, String>>>);

impl EventHandler for Directory {
    async fn handle(&mut self, event: &RecordedEvent) -> Result<(), BoxError> {
        let p = event.payload_value().unwrap();
        match (event.stream_id.as_str(), event.event_type.as_str()) {
            (FORGOTTEN_STREAM, "SubjectForgotten") => {
                self.0.lock().unwrap().remove(p["subject"].as_str().unwrap_or_default());
            }
            (_, "Registered") => {
                let email = p["email"].as_str().unwrap_or_default();
                if email != REDACTED {
                    let id = p["person_id"].as_str().unwrap_or_default().to_owned();
                    self.0.lock().unwrap().insert(id, email.to_owned());
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_projection_erases_a_forgotten_subjects_copy() {
    let store = Arc::new(MemoryStore::new());
    let fields = PersonalFields::new().field("Person", "Registered", "email", "person_id");
    let shred = Shredding::new(
        store.clone(),
        store.clone(),
        fields,
        MasterKey::new("m1", [8; 32]),
        vec![],
    );
    for who in ["ada", "bob"] {
        shred
            .append_to_stream(
                StreamId::new(format!("person-{who}")).unwrap(),
                "Person",
                ExpectedVersion::NoStream,
                vec![NewEvent::from_value(
                    "Registered",
                    &json!({ "person_id": who, "email": format!("{who}@example.org") }),
                )],
            )
            .await
            .unwrap();
    }
    let directory = Directory::default();
    let mut runner = Runner::new(
        shred.clone(),
        Subscription::new("directory", store.clone(), directory.clone()),
    );
    runner.run_until_caught_up().await.unwrap();
    assert_eq!(
        directory.0.lock().unwrap().get("ada").map(String::as_str),
        Some("ada@example.org")
    );

    shred.forget("ada", &Metadata::by("dpo")).await.unwrap();
    runner.run_until_caught_up().await.unwrap();
    {
        let d = directory.0.lock().unwrap();
        assert_eq!(d.get("ada"), None, "the copy is erased");
        assert_eq!(d.get("bob").map(String::as_str), Some("bob@example.org"));
    }

    // A rebuild from the start never sees ada's address.
    let rebuilt = Directory::default();
    let mut again = Runner::new(
        shred.clone(),
        Subscription::new("directory-2", store.clone(), rebuilt.clone()),
    );
    again.run_until_caught_up().await.unwrap();
    let d = rebuilt.0.lock().unwrap();
    assert!(d.values().all(|e| !e.starts_with("ada")), "{d:?}");
    assert_eq!(d.len(), 1);
}

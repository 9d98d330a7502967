//! Upcasting, refusal of bad input, typed-read errors, metadata and soft deletion (DESIGN §1.7,
//! §1.9, §8).

use std::time::{Duration, SystemTime};

use serde_json::json;
use uuid::Uuid;

use super::{ev, sid, snapshot_of_store};
use crate::error::{DecodeError, RepositoryError, StoreError};
use crate::event::{Metadata, NewEvent};
use crate::ids::{ExpectedVersion, StreamId};
use crate::repository::Repository;
use crate::store::{EventStore, MAX_EVENT_BYTES, ReadStream, StreamAppend};
use crate::testkit::fixtures::{Person, PersonEvent, Tally, TallyCommand, TallyError, person_upcasters};
use crate::upcast::Upcasting;

/// §1.7: events stored with an old schema version are upcast on every read path.
pub async fn old_events_stay_readable<S: EventStore + Clone>(store: S) {
    let s = sid("person-1");
    let old = NewEvent::from_value("Named", &json!({ "name": "Ada Lovelace" }));
    store
        .append_to_stream(s.clone(), "Person", ExpectedVersion::NoStream, vec![old])
        .await
        .unwrap();
    let upcasting = Upcasting::new(store.clone(), person_upcasters());
    let repo = Repository::<Person, _>::new(upcasting.clone());
    // Stored as v1, read as v2 through the aggregate load...
    let loaded = repo.load(&s).await.unwrap();
    assert_eq!(
        (loaded.state.first.as_str(), loaded.state.last.as_str()),
        ("Ada", "Lovelace")
    );
    // ...and new v2 events mix with old ones.
    repo.execute(&s, &("Grace".into(), "Hopper".into()), &Metadata::default())
        .await
        .unwrap();
    let stream = upcasting.read_stream(&s, ReadStream::all()).await.unwrap();
    assert!(stream.iter().all(|e| e.schema_version == 2));
    let decoded: Vec<PersonEvent> = stream.iter().map(|e| crate::typed::decode(e).unwrap()).collect();
    assert_eq!(
        decoded[0],
        PersonEvent::Named {
            first: "Ada".into(),
            last: "Lovelace".into()
        }
    );
    // ...and through the global log.
    let log = upcasting.read_all(0, 100).await.unwrap();
    assert_eq!(
        log[0].payload_value().unwrap(),
        json!({ "first": "Ada", "last": "Lovelace" })
    );
    // The stored row is unchanged.
    let raw = store.read_stream(&s, ReadStream::all()).await.unwrap();
    assert_eq!(
        (raw[0].schema_version, raw[0].payload_value().unwrap()),
        (1, json!({ "name": "Ada Lovelace" }))
    );
    // Without the upcaster, the typed read says which upcaster is missing instead of misreading.
    let plain = Repository::<Person, _>::new(store.clone());
    let err = plain.load(&s).await.unwrap_err();
    assert!(
        matches!(
            err,
            RepositoryError::Decode(DecodeError::SchemaVersion {
                stored: 1,
                expected: 2,
                ..
            })
        ),
        "{err:?}"
    );
    // A failing upcaster is an error naming the event.
    store
        .append_to_stream(
            sid("person-2"),
            "Person",
            ExpectedVersion::NoStream,
            vec![NewEvent::from_value("Named", &json!({}))],
        )
        .await
        .unwrap();
    let err = upcasting
        .read_stream(&sid("person-2"), ReadStream::all())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::UpcastFailed { stream, version: 1, .. } if stream == "person-2"),
        "{err:?}"
    );
}

/// §1.9: bad input gets a typed error saying what was wrong, and the store is unchanged.
pub async fn bad_input_is_refused<S: EventStore>(store: S) {
    let s = sid("bad-1");
    store
        .append_to_stream(s.clone(), "Bad", ExpectedVersion::NoStream, vec![ev(1)])
        .await
        .unwrap();
    let before = snapshot_of_store(&store).await;

    for bad in [
        "",
        "has space",
        "a.b",
        "wild*",
        "$system",
        &"x".repeat(201),
        "tab\t",
        "ünïcode",
    ] {
        let err = StreamId::new(bad).unwrap_err();
        assert!(matches!(err, StoreError::InvalidStreamId { .. }), "{bad:?}: {err:?}");
    }
    let err = NewEvent::from_json("Added", "{not json").unwrap_err();
    assert!(matches!(err, StoreError::MalformedPayload { .. }), "{err:?}");

    type Case = (Vec<StreamAppend>, fn(&StoreError) -> bool);
    let cases: Vec<Case> = vec![
        (vec![], |e| matches!(e, StoreError::EmptyAppend { .. })),
        (
            vec![StreamAppend::new(s.clone(), "Bad", ExpectedVersion::Any, vec![])],
            |e| matches!(e, StoreError::EmptyAppend { .. }),
        ),
        (
            vec![StreamAppend::new(
                s.clone(),
                "bad type!",
                ExpectedVersion::Any,
                vec![ev(1)],
            )],
            |e| matches!(e, StoreError::InvalidStreamType { .. }),
        ),
        (
            vec![StreamAppend::new(s.clone(), "Other", ExpectedVersion::Any, vec![ev(1)])],
            |e| matches!(e, StoreError::StreamTypeMismatch { actual, .. } if actual == "Bad"),
        ),
        (
            vec![StreamAppend::new(
                s.clone(),
                "Bad",
                ExpectedVersion::Any,
                vec![NewEvent::from_value("", &json!({}))],
            )],
            |e| matches!(e, StoreError::InvalidEventType { .. }),
        ),
        (
            vec![StreamAppend::new(
                s.clone(),
                "Bad",
                ExpectedVersion::Any,
                vec![NewEvent::from_value("no spaces", &json!({}))],
            )],
            |e| matches!(e, StoreError::InvalidEventType { .. }),
        ),
        (
            vec![StreamAppend::new(
                s.clone(),
                "Bad",
                ExpectedVersion::Any,
                vec![
                    ev(2),
                    NewEvent::from_value("Big", &json!({ "blob": "x".repeat(MAX_EVENT_BYTES) })),
                ],
            )],
            |e| {
                matches!(
                    e,
                    StoreError::EventTooLarge {
                        limit: MAX_EVENT_BYTES,
                        ..
                    }
                )
            },
        ),
        (
            {
                let id = Uuid::now_v7();
                vec![StreamAppend::new(
                    s.clone(),
                    "Bad",
                    ExpectedVersion::Any,
                    vec![ev(2).with_id(id), ev(3).with_id(id)],
                )]
            },
            |e| matches!(e, StoreError::DuplicateEventId { .. }),
        ),
        (
            vec![
                StreamAppend::new(s.clone(), "Bad", ExpectedVersion::Any, vec![ev(2)]),
                StreamAppend::new(s.clone(), "Bad", ExpectedVersion::Any, vec![ev(3)]),
            ],
            |e| matches!(e, StoreError::StreamRepeated { .. }),
        ),
        (
            vec![
                StreamAppend::new(s.clone(), "Bad", ExpectedVersion::Exact(1), vec![ev(2)]).with_snapshot(
                    crate::store::NewSnapshot {
                        version: 7,
                        schema_version: 1,
                        state: serde_json::value::to_raw_value(&json!({})).unwrap(),
                    },
                ),
            ],
            |e| {
                matches!(
                    e,
                    StoreError::SnapshotVersionMismatch {
                        snapshot_version: 7,
                        stream_version: 2,
                        ..
                    }
                )
            },
        ),
    ];
    for (i, (append, check)) in cases.into_iter().enumerate() {
        let err = store.append(append).await.expect_err("bad input must be refused");
        assert!(check(&err), "case {i}: unexpected error {err:?}");
        assert!(!err.to_string().is_empty());
        assert_eq!(snapshot_of_store(&store).await, before, "case {i} changed the store");
    }
    // A bad event in the second stream of an append refuses the whole append.
    let err = store
        .append(vec![
            StreamAppend::new(sid("bad-2"), "Bad", ExpectedVersion::Any, vec![ev(1)]),
            StreamAppend::new(
                s.clone(),
                "Bad",
                ExpectedVersion::Any,
                vec![NewEvent::from_value("1nvalid", &json!(1))],
            ),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidEventType { .. }), "{err:?}");
    assert_eq!(snapshot_of_store(&store).await, before);
}

/// §1.9 on typed reads: an event type the code does not know is a typed error naming the stream
/// and version, not a panic; a command the aggregate refuses stores nothing.
pub async fn unknown_event_types_are_typed_errors<S: EventStore + Clone>(store: S) {
    let repo = Repository::<Tally, _>::new(store.clone());
    let s = sid("tally-unknown");
    repo.execute(&s, &TallyCommand::Add(1), &Metadata::default())
        .await
        .unwrap();
    let before = snapshot_of_store(&store).await;
    let err = repo
        .execute(&s, &TallyCommand::Add(-3), &Metadata::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RepositoryError::Rejected(TallyError::NotPositive(-3))),
        "{err:?}"
    );
    assert_eq!(snapshot_of_store(&store).await, before);

    store
        .append_to_stream(
            s.clone(),
            "Tally",
            ExpectedVersion::Exact(1),
            vec![NewEvent::from_value("Mystery", &json!({}))],
        )
        .await
        .unwrap();
    let err = repo.load(&s).await.unwrap_err();
    match &err {
        RepositoryError::Decode(DecodeError::UnknownEventType {
            stream,
            version,
            event_type,
        }) => {
            assert_eq!(
                (stream.as_str(), *version, event_type.as_str()),
                ("tally-unknown", 2, "Mystery")
            );
        }
        other => panic!("expected an unknown event type error, got {other:?}"),
    }
    store
        .append_to_stream(
            sid("tally-shape"),
            "Tally",
            ExpectedVersion::NoStream,
            vec![NewEvent::from_value("Added", &json!({"amount": "ten"}))],
        )
        .await
        .unwrap();
    let err = repo.load(&sid("tally-shape")).await.unwrap_err();
    assert!(
        matches!(&err, RepositoryError::Decode(DecodeError::Payload { version: 1, .. })),
        "{err:?}"
    );
}

/// Metadata (causation, correlation, actor, tenant, extras) is kept with every event.
pub async fn metadata_is_kept<S: EventStore + Clone>(store: S) {
    let cause = Uuid::now_v7();
    let mut meta = Metadata::by("alice").caused_by(cause);
    meta.tenant = Some("acme".into());
    meta.extra.insert("ip".into(), json!("127.0.0.1"));
    let repo = Repository::<Tally, _>::new(store.clone());
    let s = sid("tally-meta");
    repo.execute(&s, &TallyCommand::AddMany(vec![1, 2]), &meta)
        .await
        .unwrap();
    let events = store.read_stream(&s, ReadStream::all()).await.unwrap();
    assert_eq!(events.len(), 2);
    for e in &events {
        assert_eq!(e.metadata.actor.as_deref(), Some("alice"));
        assert_eq!(e.metadata.causation_id, Some(cause));
        assert_eq!(
            e.metadata.correlation_id,
            Some(cause),
            "correlation defaults to the causation id"
        );
        assert_eq!(e.metadata.tenant.as_deref(), Some("acme"));
        assert_eq!(e.metadata.extra.get("ip"), Some(&json!("127.0.0.1")));
        let age = SystemTime::now().duration_since(e.recorded_at).unwrap_or_default();
        assert!(age < Duration::from_secs(60), "recorded_at is the commit time");
    }
}

/// §8 soft delete: a deleted aggregate keeps its history (for audit and time travel) and refuses
/// every later command with a typed error, also through a repository that cached its state.
pub async fn deleted_aggregates_refuse_commands_and_keep_their_history<S: EventStore + Clone>(store: S) {
    use crate::repository::DELETED_EVENT;
    let repo = Repository::<Tally, _>::new(store.clone());
    let cached = Repository::<Tally, _>::new(store.clone()).with_cache(8);
    let id = sid("tally-deleted");
    let meta = Metadata::by("alice");
    cached.execute(&id, &TallyCommand::Add(5), &meta).await.unwrap();
    cached.execute(&id, &TallyCommand::Add(7), &meta).await.unwrap();
    assert!(
        repo.delete(&id, "closed by request", &Metadata::by("admin"))
            .await
            .unwrap()
    );
    assert!(
        !repo.delete(&id, "again", &Metadata::by("admin")).await.unwrap(),
        "deleted already"
    );
    for r in [&repo, &cached] {
        let refused = r.execute(&id, &TallyCommand::Add(1), &meta).await;
        assert!(
            matches!(&refused, Err(RepositoryError::Deleted { stream, version: 3 }) if stream == "tally-deleted"),
            "{refused:?}"
        );
    }
    let loaded = repo.load(&id).await.unwrap();
    assert_eq!((loaded.deleted, loaded.state.total, loaded.version), (true, 12, 3));
    let before = repo.load_at_version(&id, 2).await.unwrap();
    assert_eq!((before.deleted, before.state.total), (false, 12));
    let events = store.read_stream(&id, ReadStream::all()).await.unwrap();
    assert_eq!(events.len(), 3, "nothing was removed");
    assert_eq!(events[2].event_type, DELETED_EVENT);
    assert_eq!(events[2].metadata.actor.as_deref(), Some("admin"));
    assert_eq!(events[2].payload_value().unwrap()["reason"], "closed by request");
    let missing = repo.delete(&sid("tally-never"), "x", &meta).await;
    assert!(
        matches!(missing, Err(RepositoryError::NoSuchAggregate { .. })),
        "{missing:?}"
    );
    assert_eq!(store.stream_version(&sid("tally-never")).await.unwrap(), 0);
}

/// §8 hard delete: a purged stream's events, snapshots and row are gone from every read; other
/// streams and the global log's order are untouched; positions are not reused; the purge is
/// recorded first (who, why, what) in a stream that cannot itself be purged.
pub async fn purged_streams_are_gone_and_the_purge_is_recorded<S: crate::purge::Purge + Clone>(store: S) {
    use crate::purge::{PURGE_STREAM, PURGED_EVENT, purge};
    let (gone, kept) = (sid("purge-me"), sid("purge-kept"));
    for i in 0..3 {
        store
            .append_to_stream(gone.clone(), "Person", ExpectedVersion::Any, vec![ev(i)])
            .await
            .unwrap();
        store
            .append_to_stream(kept.clone(), "Person", ExpectedVersion::Any, vec![ev(10 + i)])
            .await
            .unwrap();
    }
    let head = store.head_position().await.unwrap();
    let admin = Metadata::by("dpo");
    assert_eq!(purge(&store, &gone, "erasure request", &admin).await.unwrap(), 3);
    assert!(store.read_stream(&gone, ReadStream::all()).await.unwrap().is_empty());
    assert_eq!(store.stream_version(&gone).await.unwrap(), 0);
    let log = store.read_all(0, usize::MAX).await.unwrap();
    assert!(
        log.iter().all(|e| e.stream_id != gone),
        "nothing of it in the global log"
    );
    let kept_events: Vec<_> = log.iter().filter(|e| e.stream_id == kept).map(|e| e.version).collect();
    assert_eq!(kept_events, [1, 2, 3]);
    let listed = store.list_streams(None, usize::MAX).await.unwrap();
    assert!(listed.iter().all(|s| s.stream_id != gone));
    let record = store.read_stream(&sid(PURGE_STREAM), ReadStream::all()).await.unwrap();
    assert_eq!(record.len(), 1);
    assert_eq!(record[0].event_type, PURGED_EVENT);
    assert_eq!(record[0].metadata.actor.as_deref(), Some("dpo"));
    let r = record[0].payload_value().unwrap();
    assert_eq!(
        (r["stream"].as_str(), r["version"].as_u64(), r["reason"].as_str()),
        (Some("purge-me"), Some(3), Some("erasure request"))
    );
    assert!(record[0].global_position > head, "recorded after everything it purged");
    // The id can start again, after everything else in the log.
    let again = store
        .append_to_stream(gone.clone(), "Person", ExpectedVersion::NoStream, vec![ev(99)])
        .await
        .unwrap();
    assert_eq!(again.first_version, 1);
    let fresh = store.read_all(record[0].global_position, usize::MAX).await.unwrap();
    assert_eq!(fresh.len(), 1);
    assert!(fresh[0].global_position > record[0].global_position);
    // Nothing to purge records nothing; the record itself cannot be purged.
    assert_eq!(purge(&store, &sid("never-was"), "x", &admin).await.unwrap(), 0);
    assert!(matches!(
        purge(&store, &sid(PURGE_STREAM), "x", &admin).await,
        Err(StoreError::InvalidStreamId { .. })
    ));
    assert_eq!(store.stream_version(&sid(PURGE_STREAM)).await.unwrap(), 1);
}

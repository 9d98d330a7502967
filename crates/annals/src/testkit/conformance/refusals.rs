//! Refusals and rules that must hold whatever the input: one JSON policy for payloads, refusals
//! that name the stream whatever its id holds, deleted streams that stay deleted, and positions
//! never handed out twice (DESIGN §1.1, §1.4, §1.9, §8).

use serde_json::json;
use serde_json::value::RawValue;

use super::{ev, sid, snapshot_of_store};
use crate::error::{ErrorKind, RepositoryError, StoreError};
use crate::event::{Metadata, NewEvent};
use crate::ids::ExpectedVersion;
use crate::repository::{DELETED_EVENT, RESTORED_EVENT, Repository, delete_stream, restore_stream};
use crate::store::{EventStore, ReadStream, StreamAppend};
use crate::testkit::fixtures::{Tally, TallyCommand};

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).expect("syntactically valid JSON")
}

/// §1.9: a payload every read could not parse is refused at append, by the same parser and
/// limits the reads use; one the reads can parse is accepted and comes back exactly as it was
/// given, a 30-digit integer included.
pub async fn payloads_follow_one_json_policy<S: EventStore>(store: S) {
    let s = sid("json-policy");
    store
        .append_to_stream(s.clone(), "Json", ExpectedVersion::NoStream, vec![ev(1)])
        .await
        .unwrap();
    let before = snapshot_of_store(&store).await;
    let deep = format!("{}1{}", "[".repeat(129), "]".repeat(129));
    for bad in [
        r#"{"a":1e999}"#,
        r#"{"a":-1e400}"#,
        r#"{"a":"\ud800"}"#,
        r#"{"\udc00":1}"#,
        &deep,
    ] {
        // Built around `NewEvent::from_json`, which checks the same policy, as a caller with
        // its own raw value would.
        let event = NewEvent::new("Odd", raw(bad));
        let err = store
            .append_to_stream(s.clone(), "Json", ExpectedVersion::Any, vec![event])
            .await
            .expect_err(bad);
        assert!(
            matches!(&err, StoreError::MalformedPayload { stream, .. } if stream == "json-policy"),
            "{bad}: {err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(snapshot_of_store(&store).await, before, "{bad} changed the store");
        assert!(matches!(
            NewEvent::from_json("Odd", bad),
            Err(StoreError::MalformedPayload { .. })
        ));
    }
    // A snapshot is held to the same policy.
    let err = store
        .append(vec![
            StreamAppend::new(s.clone(), "Json", ExpectedVersion::Exact(1), vec![ev(2)]).with_snapshot(
                crate::store::NewSnapshot {
                    version: 2,
                    schema_version: 1,
                    state: raw(r#"{"total":1e999}"#),
                },
            ),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::MalformedPayload { .. }), "{err:?}");
    assert_eq!(snapshot_of_store(&store).await, before);

    let exact = r#"{"big":123456789012345678901234567890,"small":-0.5e-7,"pair":"\ud83d\ude00","nul":"\u0000"}"#;
    store
        .append_to_stream(
            s.clone(),
            "Json",
            ExpectedVersion::Exact(1),
            vec![NewEvent::new("Wide", raw(exact))],
        )
        .await
        .unwrap();
    for read in [
        store.read_stream(&s, ReadStream::from_version(2)).await.unwrap(),
        store
            .read_all(before.0, 10)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.stream_id == s)
            .collect(),
    ] {
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].payload.get(), exact, "the payload comes back as it was given");
        let shown: serde_json::Value = serde_json::from_str(&read[0].to_json()).unwrap();
        assert_eq!(shown["event_type"], "Wide");
        assert!(
            read[0].to_json().contains("123456789012345678901234567890"),
            "to_json keeps every digit: {}",
            read[0].to_json()
        );
        let back = crate::event::RecordedEvent::from_json(&read[0].to_json()).unwrap();
        assert_eq!(back.payload.get(), exact);
        assert!(read[0].payload_value().is_ok());
    }
}

/// §1.1: a refusal names the stream it is about, whatever characters its id holds (a `|`, a
/// quote, a backslash), with the expected and actual versions or types.
pub async fn refusals_name_streams_whatever_they_contain<S: EventStore>(store: S) {
    for id in ["order|7", r#"q"uote'"#, r"back\slash|x|y", "a|1|2|3"] {
        let s = sid(id);
        store
            .append_to_stream(s.clone(), "Order", ExpectedVersion::NoStream, vec![ev(1)])
            .await
            .unwrap();
        let err = store
            .append_to_stream(s.clone(), "Order", ExpectedVersion::Exact(5), vec![ev(2)])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Conflict { stream, expected: ExpectedVersion::Exact(5), actual: 1 } if stream == id),
            "{id}: {err:?}"
        );
        let err = store
            .append(vec![
                StreamAppend::new(sid("refusal-other"), "Other", ExpectedVersion::Any, vec![ev(1)]),
                StreamAppend::new(s.clone(), "Order", ExpectedVersion::NoStream, vec![ev(2)]),
            ])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Conflict { stream, expected: ExpectedVersion::NoStream, actual: 1 } if stream == id),
            "{id}: {err:?}"
        );
        let err = store
            .append_to_stream(s.clone(), "T|x", ExpectedVersion::Any, vec![ev(2)])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::InvalidStreamType { .. }),
            "stream types are names: {err:?}"
        );
        let err = store
            .append_to_stream(s.clone(), "Invoice", ExpectedVersion::Any, vec![ev(2)])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::StreamTypeMismatch { stream, requested, actual }
                if stream == id && requested == "Invoice" && actual == "Order"),
            "{id}: {err:?}"
        );
        assert_eq!(store.stream_version(&s).await.unwrap(), 1);
    }
    assert_eq!(store.stream_version(&sid("refusal-other")).await.unwrap(), 0);
}

/// §8: a deleted stream stays deleted on every path — a raw append of any expectation, alone or
/// with other streams, is refused and stores nothing — until it is restored explicitly; then
/// appends and commands work again. A retry of the deletion itself is still idempotent.
pub async fn deleted_streams_refuse_appends_until_restored<S: EventStore + Clone>(store: S) {
    let id = sid("memo-1");
    let repo = Repository::<Tally, _>::new(store.clone());
    let meta = Metadata::by("alice");
    repo.execute(&id, &TallyCommand::Add(5), &meta).await.unwrap();
    assert_eq!(delete_stream(&store, &id, "done", &meta).await.unwrap(), Some(true));
    let before = snapshot_of_store(&store).await;
    for expected in [
        ExpectedVersion::Any,
        ExpectedVersion::StreamExists,
        ExpectedVersion::Exact(2),
    ] {
        let err = store
            .append_to_stream(id.clone(), "Tally", expected, vec![ev(1)])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::StreamDeleted { stream, version: 2 } if stream == "memo-1"),
            "{expected:?}: {err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::Conflict);
    }
    let err = store
        .append(vec![
            StreamAppend::new(sid("memo-other"), "Tally", ExpectedVersion::Any, vec![ev(1)]),
            StreamAppend::new(id.clone(), "Tally", ExpectedVersion::Any, vec![ev(1)]),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::StreamDeleted { .. }), "{err:?}");
    // Deleting it again through a raw append is refused too (it takes a restore first).
    let again = NewEvent::from_value(DELETED_EVENT, &json!({ "reason": "again" }));
    let err = store
        .append_to_stream(id.clone(), "Tally", ExpectedVersion::Any, vec![again])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::StreamDeleted { .. }), "{err:?}");
    assert_eq!(snapshot_of_store(&store).await, before, "refusals change nothing");
    let refused = repo.execute(&id, &TallyCommand::Add(1), &meta).await;
    assert!(matches!(refused, Err(RepositoryError::Deleted { .. })), "{refused:?}");

    assert_eq!(
        restore_stream(&store, &id, "asked back", &meta).await.unwrap(),
        Some(true)
    );
    assert_eq!(restore_stream(&store, &id, "twice", &meta).await.unwrap(), Some(false));
    assert_eq!(restore_stream(&store, &sid("never"), "x", &meta).await.unwrap(), None);
    let restored = store.read_stream(&id, ReadStream::last(1)).await.unwrap();
    assert_eq!(restored[0].event_type, RESTORED_EVENT);
    repo.execute(&id, &TallyCommand::Add(2), &meta).await.unwrap();
    let loaded = repo.load(&id).await.unwrap();
    assert_eq!((loaded.deleted, loaded.state.total, loaded.version), (false, 7, 4));

    // A deletion appended raw (as `annals append --type StreamDeleted` would) deletes too, and
    // retrying that very append is idempotent, not refused.
    let delete = NewEvent::from_value(DELETED_EVENT, &json!({ "reason": "raw" }));
    let first = store
        .append_to_stream(id.clone(), "Tally", ExpectedVersion::Exact(4), vec![delete.clone()])
        .await
        .unwrap();
    let retried = store
        .append_to_stream(id.clone(), "Tally", ExpectedVersion::Exact(4), vec![delete])
        .await
        .unwrap();
    assert!(retried.already_stored);
    assert_eq!(retried.last_version, first.last_version);
    let err = store
        .append_to_stream(id.clone(), "Tally", ExpectedVersion::Exact(5), vec![ev(9)])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::StreamDeleted { version: 5, .. }), "{err:?}");
    // A restore and new events in one append.
    let restore = NewEvent::from_value(RESTORED_EVENT, &json!({ "reason": "raw" }));
    store
        .append_to_stream(id.clone(), "Tally", ExpectedVersion::Exact(5), vec![restore, ev(3)])
        .await
        .unwrap();
    assert_eq!(store.stream_version(&id).await.unwrap(), 7);
}

/// §1.4: a position once given is never given again, whatever is purged: events appended after
/// a purge of the newest streams come after every position handed out before, so a reader
/// checkpointed there sees them.
pub async fn positions_are_never_reused_after_a_purge<S: crate::purge::Purge + Clone>(store: S) {
    use crate::purge::purge;
    store
        .append_to_stream(sid("order-p1"), "Order", ExpectedVersion::NoStream, vec![ev(1)])
        .await
        .unwrap();
    let note = sid("note-x");
    for i in 0..3 {
        store
            .append_to_stream(note.clone(), "Note", ExpectedVersion::Any, vec![ev(i)])
            .await
            .unwrap();
    }
    // A reader has seen everything up to here.
    let checkpoint = store.head_position().await.unwrap();
    let seen = store.read_all(0, usize::MAX).await.unwrap();
    assert_eq!(seen.last().map(|e| e.global_position), Some(checkpoint));
    assert_eq!(purge(&store, &note, "test", &Metadata::by("dpo")).await.unwrap(), 3);
    store
        .append_to_stream(sid("order-p2"), "Order", ExpectedVersion::NoStream, vec![ev(2)])
        .await
        .unwrap();
    let later = store.read_all(checkpoint, usize::MAX).await.unwrap();
    let streams: Vec<&str> = later.iter().map(|e| e.stream_id.as_str()).collect();
    assert_eq!(
        streams,
        [crate::purge::PURGE_STREAM, "order-p2"],
        "after the checkpoint: the purge record and the new order"
    );
    assert!(later.iter().all(|e| e.global_position > checkpoint), "{later:?}");
    assert!(store.head_position().await.unwrap() > checkpoint);
    // The same once more, purging the stream that holds the head itself.
    let head = store.head_position().await.unwrap();
    let tip = sid("note-y");
    store
        .append_to_stream(tip.clone(), "Note", ExpectedVersion::Any, vec![ev(7), ev(8)])
        .await
        .unwrap();
    let checkpoint = store.head_position().await.unwrap();
    assert_eq!(checkpoint, head + 2);
    purge(&store, &tip, "test", &Metadata::by("dpo")).await.unwrap();
    store
        .append_to_stream(sid("order-p3"), "Order", ExpectedVersion::NoStream, vec![ev(3)])
        .await
        .unwrap();
    let later = store.read_all(checkpoint, usize::MAX).await.unwrap();
    assert_eq!(later.len(), 2, "{later:?}");
    assert!(later.iter().all(|e| e.global_position > checkpoint));
    let mut positions: Vec<u64> = store
        .read_all(0, usize::MAX)
        .await
        .unwrap()
        .iter()
        .map(|e| e.global_position)
        .collect();
    let n = positions.len();
    positions.dedup();
    assert_eq!(positions.len(), n, "no position is given twice");
}

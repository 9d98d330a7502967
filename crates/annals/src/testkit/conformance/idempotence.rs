//! Idempotent appends (DESIGN §1.3): a retry with the same event ids at the same positions is
//! answered from the store, the same id elsewhere is an error, and an append whose answer was
//! lost is stored once.

use uuid::Uuid;

use super::{amounts, ev, sid, snapshot_of_store};
use crate::error::StoreError;
use crate::event::Metadata;
use crate::ids::ExpectedVersion;
use crate::repository::Repository;
use crate::store::{EventStore, ReadStream};
use crate::testkit::fixtures::{Tally, TallyCommand};

/// §1.3: retrying an append with the same event ids at the same positions succeeds without
/// storing twice; the same id at another position is an error.
pub async fn idempotent_appends<S: EventStore>(store: S) {
    let s = sid("payment-1");
    let (id1, id2) = (Uuid::now_v7(), Uuid::now_v7());
    let batch = || vec![ev(1).with_id(id1), ev(2).with_id(id2)];
    let first = store
        .append_to_stream(s.clone(), "Payment", ExpectedVersion::NoStream, batch())
        .await
        .unwrap();
    let retry = store
        .append_to_stream(s.clone(), "Payment", ExpectedVersion::NoStream, batch())
        .await
        .unwrap();
    assert!(retry.already_stored);
    assert_eq!(
        (retry.first_version, retry.last_version),
        (first.first_version, first.last_version)
    );
    // Positions, where the backend reports them, are the stored events' own.
    let stored = store.read_stream(&s, ReadStream::all()).await.unwrap();
    let (p1, p2) = (stored[0].global_position, stored[1].global_position);
    for (first_position, last_position) in [
        (first.first_position, first.last_position),
        (retry.first_position, retry.last_position),
    ] {
        assert!(first_position.is_none_or(|p| p == p1) && last_position.is_none_or(|p| p == p2));
    }
    let retry_any = store
        .append_to_stream(s.clone(), "Payment", ExpectedVersion::Any, batch())
        .await
        .unwrap();
    assert!(retry_any.already_stored);
    assert_eq!(
        store.read_stream(&s, ReadStream::all()).await.unwrap().len(),
        2,
        "a retry must not store twice"
    );

    let id3 = Uuid::now_v7();
    store
        .append_to_stream(
            s.clone(),
            "Payment",
            ExpectedVersion::Exact(2),
            vec![ev(3).with_id(id3)],
        )
        .await
        .unwrap();
    let retry_at_2 = store
        .append_to_stream(
            s.clone(),
            "Payment",
            ExpectedVersion::Exact(2),
            vec![ev(3).with_id(id3)],
        )
        .await
        .unwrap();
    assert!(
        retry_at_2.already_stored && (retry_at_2.first_version, retry_at_2.last_version) == (3, 3),
        "a retry of an Exact(2) append that landed is recognised: {retry_at_2:?}"
    );
    let err = store
        .append_to_stream(s.clone(), "Order", ExpectedVersion::Exact(3), vec![ev(4)])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::StreamTypeMismatch { requested, actual, .. } if requested == "Order" && actual == "Payment"),
        "{err:?}"
    );
    let retry_exact = store
        .append_to_stream(
            s.clone(),
            "Payment",
            ExpectedVersion::Exact(0),
            vec![ev(1).with_id(id1), ev(2).with_id(id2)],
        )
        .await
        .unwrap();
    assert!(
        retry_exact.already_stored,
        "a retry of an Exact(0) append that landed is recognised"
    );

    let before = snapshot_of_store(&store).await;
    // The same id at a different position of the same stream.
    let err = store
        .append_to_stream(
            s.clone(),
            "Payment",
            ExpectedVersion::Exact(3),
            vec![ev(1).with_id(id1)],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::DuplicateEventId { event_id, stored_version: 1, .. } if *event_id == id1),
        "{err:?}"
    );
    // The same id in another stream.
    let err = store
        .append_to_stream(
            sid("payment-2"),
            "Payment",
            ExpectedVersion::Any,
            vec![ev(2).with_id(id2)],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::DuplicateEventId { stored_stream, stored_version: 2, .. } if stored_stream == "payment-1"),
        "{err:?}"
    );
    // A partial retry: one stored id, one new.
    let err = store
        .append_to_stream(
            s.clone(),
            "Payment",
            ExpectedVersion::Any,
            vec![ev(2).with_id(id2), ev(9)],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::DuplicateEventId { .. }), "{err:?}");
    // A new id after a stored one, in the same append.
    let err = store
        .append_to_stream(
            s.clone(),
            "Payment",
            ExpectedVersion::Any,
            vec![ev(9), ev(1).with_id(id1)],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::DuplicateEventId { .. }), "{err:?}");
    assert_eq!(
        snapshot_of_store(&store).await,
        before,
        "refused duplicates must store nothing"
    );
}

/// §1.3 under faults: an append whose answer was lost is retried with the same event ids and
/// stored once; an append refused before the store stores nothing; the repository surfaces both.
pub async fn lost_answers_are_retried_idempotently<S: EventStore>(store: S) {
    use crate::testkit::faults::{AppendFault, FaultyStore};
    let faulty = FaultyStore::new(store)
        .fail_append(1, AppendFault::AnswerLost)
        .fail_append(3, AppendFault::Refused);
    let s = sid("flaky-1");
    let batch: Vec<crate::event::NewEvent> = vec![ev(1), ev(2)];
    let err = faulty
        .append_to_stream(s.clone(), "Flaky", ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    // The caller cannot know whether it landed: it retries the very same events.
    let retry = faulty
        .append_to_stream(s.clone(), "Flaky", ExpectedVersion::NoStream, batch)
        .await
        .unwrap();
    assert!(
        retry.already_stored,
        "the retry finds the events stored by the lost append"
    );
    assert_eq!((retry.first_version, retry.last_version), (1, 2));
    assert_eq!(
        amounts(&faulty.read_stream(&s, ReadStream::all()).await.unwrap()),
        vec![1, 2]
    );

    let before = snapshot_of_store(faulty.inner()).await;
    let repo = Repository::<Tally, _>::new(faulty);
    let err = repo
        .execute(&sid("flaky-2"), &TallyCommand::Add(5), &Metadata::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            crate::error::RepositoryError::Store(StoreError::Unavailable { .. })
        ),
        "{err:?}"
    );
    assert_eq!(
        snapshot_of_store(repo.store().inner()).await,
        before,
        "a refused append stores nothing"
    );
    let done = repo
        .execute(&sid("flaky-2"), &TallyCommand::Add(5), &Metadata::default())
        .await
        .unwrap();
    assert_eq!(done.version, 1);
}

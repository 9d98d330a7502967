//! Snapshots and time travel (DESIGN §1.6).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{ev, sid};
use crate::event::Metadata;
use crate::repository::{Repository, SnapshotPolicy};
use crate::store::EventStore;
use crate::testkit::fixtures::{Tally, TallyCommand, TallyV2};

/// §1.6: a load from a snapshot plus later events equals a full replay; the snapshot is stored
/// with the append that triggered it.
pub async fn snapshots_never_change_the_answer<S: EventStore + Clone>(store: S) {
    let with = Repository::<Tally, _>::new(store.clone()).with_snapshots(SnapshotPolicy::EveryNEvents(4));
    let without = Repository::<Tally, _>::new(store.clone());
    let s = sid("tally-snap");
    let mut snapshots_taken = 0;
    for i in 1..=11 {
        let cmd = if i % 5 == 0 {
            TallyCommand::Reset
        } else {
            TallyCommand::AddMany(vec![i, i + 1])
        };
        let out = with.execute(&s, &cmd, &Metadata::default()).await.unwrap();
        snapshots_taken += usize::from(out.snapshot_taken);
        let snap = store.load_snapshot(&s, None).await.unwrap();
        if out.snapshot_taken {
            assert_eq!(
                snap.as_ref().map(|s| s.version),
                Some(out.version),
                "the snapshot is stored with the append"
            );
        }
        let (a, b) = (with.load(&s).await.unwrap(), without.load(&s).await.unwrap());
        assert_eq!(a.state, b.state, "after command {i}");
        assert_eq!(a.version, b.version);
        for v in [1, out.version / 2, out.version] {
            assert_eq!(
                with.load_at_version(&s, v).await.unwrap().state,
                without.load_at_version(&s, v).await.unwrap().state
            );
        }
    }
    assert!(
        snapshots_taken >= 3,
        "EveryNEvents(4) over 20 events must snapshot, took {snapshots_taken}"
    );
    let loaded = with.load(&s).await.unwrap();
    assert!(loaded.from_snapshot.is_some(), "the load must start from the snapshot");
    assert!(without.load(&s).await.unwrap().from_snapshot.is_none());

    // A function policy.
    let every_total_over_50 = Repository::<Tally, _>::new(store.clone())
        .with_snapshots(SnapshotPolicy::When(Arc::new(|t: &Tally, _v| t.total > 50)));
    let s2 = sid("tally-snap-fn");
    assert!(
        !every_total_over_50
            .execute(&s2, &TallyCommand::Add(10), &Metadata::default())
            .await
            .unwrap()
            .snapshot_taken
    );
    assert!(
        every_total_over_50
            .execute(&s2, &TallyCommand::Add(45), &Metadata::default())
            .await
            .unwrap()
            .snapshot_taken
    );
}

/// §1.6: a snapshot of a stale schema version is ignored (full replay), never misread.
pub async fn stale_snapshots_are_ignored<S: EventStore + Clone>(store: S) {
    let v1 = Repository::<Tally, _>::new(store.clone()).with_snapshots(SnapshotPolicy::EveryNEvents(1));
    let v2 = Repository::<TallyV2, _>::new(store.clone()).with_snapshots(SnapshotPolicy::EveryNEvents(1000));
    let s = sid("tally-stale");
    for i in 1..=5 {
        v1.execute(&s, &TallyCommand::Add(i), &Metadata::default())
            .await
            .unwrap();
    }
    assert_eq!(store.load_snapshot(&s, None).await.unwrap().unwrap().schema_version, 1);
    let loaded = v2.load(&s).await.unwrap();
    assert_eq!(
        loaded.from_snapshot, None,
        "a snapshot of another schema version must be ignored"
    );
    assert_eq!(loaded.state.0, v1.load(&s).await.unwrap().state);
    assert_eq!(loaded.version, 5);
}

/// Time travel: the state as of a version and as of a time.
pub async fn time_travel_by_version_and_time<S: EventStore + Clone>(store: S) {
    let repo = Repository::<Tally, _>::new(store.clone()).with_snapshots(SnapshotPolicy::EveryNEvents(2));
    let s = sid("tally-travel");
    repo.execute(&s, &TallyCommand::Add(1), &Metadata::default())
        .await
        .unwrap();
    repo.execute(&s, &TallyCommand::Add(2), &Metadata::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let between = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    repo.execute(&s, &TallyCommand::Add(4), &Metadata::default())
        .await
        .unwrap();
    repo.execute(&s, &TallyCommand::Add(8), &Metadata::default())
        .await
        .unwrap();

    let at2 = repo.load_at_version(&s, 2).await.unwrap();
    assert_eq!((at2.state.total, at2.version), (3, 2));
    let at3 = repo.load_at_version(&s, 3).await.unwrap();
    assert_eq!((at3.state.total, at3.version), (7, 3));
    let beyond = repo.load_at_version(&s, 99).await.unwrap();
    assert_eq!((beyond.state.total, beyond.version), (15, 4));
    let then = repo.load_at_time(&s, between).await.unwrap();
    assert_eq!((then.state.total, then.version), (3, 2));
    let before_all = repo.load_at_time(&s, SystemTime::UNIX_EPOCH).await.unwrap();
    assert_eq!((before_all.state.total, before_all.version), (0, 0));
}

/// §3: what a repository's load reads (`read_for_fold`, which backends override to decode less)
/// is exactly the stream read's version, type, schema version and payload, for any window.
pub async fn fold_reads_match_stream_reads<S: EventStore>(store: S) {
    use crate::store::{FoldEvent, ReadStream};
    let (a, b) = (sid("fold-a"), sid("fold-b"));
    for i in 0..7 {
        let e = crate::event::NewEvent::from_json(
            "Counted",
            format!(r#"{{"n":{i},"big":123456789012345678901234567890}}"#),
        )
        .unwrap()
        .with_schema_version(1 + (i % 2) as u32);
        store
            .append_to_stream(a.clone(), "Fold", crate::ids::ExpectedVersion::Any, vec![e])
            .await
            .unwrap();
        store
            .append_to_stream(b.clone(), "Fold", crate::ids::ExpectedVersion::Any, vec![ev(i)])
            .await
            .unwrap();
    }
    type Owned = (u64, String, u32, String);
    // What a fold sees of an event, owned, to compare.
    fn owned(e: FoldEvent<'_>) -> Owned {
        (
            e.version,
            e.event_type.to_owned(),
            e.schema_version,
            e.payload.to_owned(),
        )
    }
    fn collect(all: &mut Vec<Owned>, e: FoldEvent<'_>) {
        all.push(owned(e));
    }
    for (from, limit) in [(1, usize::MAX), (1, 3), (4, 2), (7, 10), (8, 5), (1, 0)] {
        let expected: Vec<_> = store
            .read_stream(&a, ReadStream::from_version(from).limit(limit))
            .await
            .unwrap()
            .iter()
            .map(|e| owned(FoldEvent::from(e)))
            .collect();
        let (got, read) = store.read_for_fold(&a, from, limit, Vec::new(), collect).await.unwrap();
        assert_eq!(got, expected, "from {from}, limit {limit}");
        assert_eq!(read, expected.len(), "from {from}, limit {limit}: the count read");
    }
    let (none, read) = store
        .read_for_fold(&sid("fold-none"), 1, 10, Vec::new(), collect)
        .await
        .unwrap();
    assert!(none.is_empty() && read == 0);
}

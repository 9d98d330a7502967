//! Per-stream order, optimistic concurrency and atomic appends (DESIGN §1.1–§1.2).

use std::sync::Arc;

use super::{amounts, ev, sid, snapshot_of_store};
use crate::error::{RepositoryError, StoreError};
use crate::event::Metadata;
use crate::ids::ExpectedVersion;
use crate::repository::Repository;
use crate::store::{EventStore, ReadStream, StreamAppend};
use crate::testkit::fixtures::{Tally, TallyCommand, TallyError};

/// §1.1: versions 1, 2, 3 … without gaps; every expectation kind is checked; a failed check
/// stores nothing and names the stream, the expected and the actual version.
pub async fn per_stream_order_and_optimistic_concurrency<S: EventStore>(store: S) {
    let s = sid("order-1");
    let out = store
        .append_to_stream(s.clone(), "Order", ExpectedVersion::NoStream, vec![ev(1), ev(2), ev(3)])
        .await
        .unwrap();
    assert_eq!((out.first_version, out.last_version), (1, 3));
    assert!(!out.already_stored);

    let err = store
        .append_to_stream(s.clone(), "Order", ExpectedVersion::NoStream, vec![ev(9)])
        .await
        .unwrap_err();
    match &err {
        StoreError::Conflict {
            stream,
            expected,
            actual,
        } => {
            assert_eq!(
                (stream.as_str(), *expected, *actual),
                ("order-1", ExpectedVersion::NoStream, 3)
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("order-1") && msg.contains("no stream") && msg.contains("version 3"),
        "{msg}"
    );

    let err = store
        .append_to_stream(s.clone(), "Order", ExpectedVersion::Exact(2), vec![ev(9)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                expected: ExpectedVersion::Exact(2),
                actual: 3,
                ..
            }
        ),
        "{err:?}"
    );
    let missing = sid("order-missing");
    let err = store
        .append_to_stream(missing.clone(), "Order", ExpectedVersion::StreamExists, vec![ev(9)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                expected: ExpectedVersion::StreamExists,
                actual: 0,
                ..
            }
        ),
        "{err:?}"
    );
    let err = store
        .append_to_stream(missing.clone(), "Order", ExpectedVersion::Exact(1), vec![ev(9)])
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(store.stream_version(&missing).await.unwrap(), 0);
    assert!(store.read_stream(&missing, ReadStream::all()).await.unwrap().is_empty());

    let out = store
        .append_to_stream(s.clone(), "Order", ExpectedVersion::Exact(3), vec![ev(4)])
        .await
        .unwrap();
    assert_eq!((out.first_version, out.last_version), (4, 4));
    let out = store
        .append_to_stream(s.clone(), "Order", ExpectedVersion::StreamExists, vec![ev(5)])
        .await
        .unwrap();
    assert_eq!(out.last_version, 5);
    let out = store
        .append_to_stream(s.clone(), "Order", ExpectedVersion::Any, vec![ev(6), ev(7)])
        .await
        .unwrap();
    assert_eq!(out.last_version, 7);
    let out = store
        .append_to_stream(sid("order-2"), "Order", ExpectedVersion::Any, vec![ev(1)])
        .await
        .unwrap();
    assert_eq!(out.last_version, 1);

    let all = store.read_stream(&s, ReadStream::all()).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.version).collect::<Vec<_>>(),
        (1..=7).collect::<Vec<_>>()
    );
    assert_eq!(
        amounts(&all),
        vec![1, 2, 3, 4, 5, 6, 7],
        "nothing of a failed append may be stored"
    );
    // A stream read does not wait for global positions: a backend that gives them after the
    // commit (PostgreSQL) shows 0 for the newest events until it has; the others increase.
    let positions: Vec<u64> = all.iter().map(|e| e.global_position).collect();
    let given = positions.iter().take_while(|&&p| p > 0).count();
    assert!(positions[given..].iter().all(|&p| p == 0), "{positions:?}");
    assert!(positions[..given].windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    store.head_position().await.unwrap();
    let all = store.read_stream(&s, ReadStream::all()).await.unwrap();
    assert!(
        all.windows(2)
            .all(|w| 0 < w[0].global_position && w[0].global_position < w[1].global_position),
        "once the log's head is read, every event has its position"
    );
    assert!(all.iter().all(|e| e.stream_id == s && e.stream_type == "Order"));

    let from = store
        .read_stream(&s, ReadStream::from_version(5).limit(2))
        .await
        .unwrap();
    assert_eq!(from.iter().map(|e| e.version).collect::<Vec<_>>(), vec![5, 6]);
    let back = store.read_stream(&s, ReadStream::last(3)).await.unwrap();
    assert_eq!(back.iter().map(|e| e.version).collect::<Vec<_>>(), vec![7, 6, 5]);
    let back_from = store
        .read_stream(
            &s,
            ReadStream {
                from: 2,
                direction: crate::store::Direction::Backwards,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(back_from.iter().map(|e| e.version).collect::<Vec<_>>(), vec![2, 1]);
    assert_eq!(store.stream_version(&s).await.unwrap(), 7);
}

/// §1.1 under concurrency: of several writers expecting the same version, exactly one wins each
/// round; the stream stays gap-free.
pub async fn concurrent_writers_conflict_cleanly<S: EventStore + 'static>(store: S) {
    let store = Arc::new(store);
    let s = sid("contended");
    for round in 0..10u64 {
        let mut tasks = Vec::new();
        for w in 0..6i64 {
            let (store, s) = (store.clone(), s.clone());
            tasks.push(tokio::spawn(async move {
                store
                    .append_to_stream(s, "Tally", ExpectedVersion::Exact(round), vec![ev(w + 1)])
                    .await
            }));
        }
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(out) => {
                    wins += 1;
                    assert_eq!(out.last_version, round + 1);
                }
                Err(StoreError::Conflict { actual, .. }) => assert_eq!(actual, round + 1),
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        assert_eq!(wins, 1, "round {round}: exactly one writer must win");
    }
    let versions: Vec<u64> = store
        .read_stream(&s, ReadStream::all())
        .await
        .unwrap()
        .iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(versions, (1..=10).collect::<Vec<_>>());

    // The repository retries its command on conflict: concurrent commands all succeed.
    let repo = Arc::new(Repository::<Tally, _>::new(store.clone()).with_max_attempts(50));
    let t = sid("tally-retry");
    let mut tasks = Vec::new();
    for i in 1..=8 {
        let (repo, t) = (repo.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            repo.execute(&t, &TallyCommand::Add(i), &Metadata::default()).await
        }));
    }
    for task in tasks {
        task.await.unwrap().expect("a retried command succeeds");
    }
    let loaded = repo.load(&t).await.unwrap();
    assert_eq!((loaded.state.total, loaded.version), (36, 8));
}

/// §1.1–1.3 for appends in flight together (which a backend may send to its database as one
/// transaction): each one-stream append stands or falls alone. Many writers start at once, each on
/// a stream of its own, some of them wrong — an expected version the stream is not at, an event
/// id another stream already holds, a stream that must exist and does not; the right ones are all
/// stored, each wrong one gets its own refusal naming its stream, and nothing of it is stored.
pub async fn concurrent_appends_stand_or_fall_alone<S: EventStore + 'static>(store: S) {
    let store = Arc::new(store);
    let taken = ev(0).with_id(uuid::Uuid::now_v7());
    store
        .append_to_stream(
            sid("alone-owner"),
            "Tally",
            ExpectedVersion::NoStream,
            vec![taken.clone()],
        )
        .await
        .unwrap();
    for round in 0..5 {
        let barrier = Arc::new(tokio::sync::Barrier::new(24));
        let mut tasks = Vec::new();
        for w in 0..24usize {
            let (store, barrier, taken) = (store.clone(), barrier.clone(), taken.clone());
            tasks.push(tokio::spawn(async move {
                let s = sid(&format!("alone-{round}-{w}"));
                let (expected, events) = match w % 8 {
                    3 => (ExpectedVersion::Exact(4), vec![ev(1)]),
                    5 => (ExpectedVersion::NoStream, vec![ev(1), taken]),
                    7 => (ExpectedVersion::StreamExists, vec![ev(1)]),
                    _ => (ExpectedVersion::NoStream, vec![ev(1), ev(2)]),
                };
                barrier.wait().await;
                (w, s.clone(), store.append_to_stream(s, "Tally", expected, events).await)
            }));
        }
        for task in tasks {
            let (w, s, result) = task.await.unwrap();
            let stored = store.stream_version(&s).await.unwrap();
            match (w % 8, result) {
                (3 | 7, Err(StoreError::Conflict { stream, .. })) => assert_eq!(stream, s.to_string()),
                (
                    5,
                    Err(StoreError::DuplicateEventId {
                        stream, stored_stream, ..
                    }),
                ) => {
                    assert_eq!((stream, stored_stream.as_str()), (s.to_string(), "alone-owner"));
                }
                (3 | 5 | 7, other) => panic!("round {round}, writer {w} should be refused: {other:?}"),
                (_, Ok(out)) => assert_eq!((out.first_version, out.last_version), (1, 2)),
                (_, Err(e)) => panic!("round {round}, writer {w} failed with the wrong ones: {e}"),
            }
            let expected_version = if [3, 5, 7].contains(&(w % 8)) { 0 } else { 2 };
            assert_eq!(stored, expected_version, "round {round}, writer {w}: what is stored");
        }
    }
}

/// §1.2: an append to several streams stores all of its events or none.
pub async fn atomic_multi_stream_appends<S: EventStore>(store: S) {
    let (a, b) = (sid("account-a"), sid("account-b"));
    store
        .append_to_stream(b.clone(), "Account", ExpectedVersion::NoStream, vec![ev(1)])
        .await
        .unwrap();
    let before = snapshot_of_store(&store).await;
    let err = store
        .append(vec![
            StreamAppend::new(a.clone(), "Account", ExpectedVersion::NoStream, vec![ev(10), ev(11)]),
            StreamAppend::new(b.clone(), "Account", ExpectedVersion::NoStream, vec![ev(12)]),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { stream, .. } if stream == "account-b"),
        "{err:?}"
    );
    assert_eq!(
        snapshot_of_store(&store).await,
        before,
        "a failed multi-stream append must store nothing"
    );
    assert!(store.read_stream(&a, ReadStream::all()).await.unwrap().is_empty());

    let out = store
        .append(vec![
            StreamAppend::new(a.clone(), "Account", ExpectedVersion::NoStream, vec![ev(10), ev(11)]),
            StreamAppend::new(b.clone(), "Account", ExpectedVersion::Exact(1), vec![ev(12)]),
        ])
        .await
        .unwrap();
    assert_eq!(out.streams.len(), 2);
    assert_eq!((out.streams[0].first_version, out.streams[0].last_version), (1, 2));
    assert_eq!((out.streams[1].first_version, out.streams[1].last_version), (2, 2));
    if let (Some(first_end), Some(second_start)) = (out.streams[0].last_position, out.streams[1].first_position) {
        assert_eq!(second_start, first_end + 1, "one append's positions are contiguous");
    }
    let all = store.read_all(before.0, 100).await.unwrap();
    assert_eq!(amounts(&all), vec![10, 11, 12]);
    assert!(
        all.windows(2).all(|w| w[1].global_position == w[0].global_position + 1),
        "one append's events are contiguous in the log"
    );
}

/// §1.1 through a repository that keeps states between commands: a stale cached state never
/// stores a wrong event (its append conflicts and the command runs again on the stored state),
/// and a refusal or no-op decided on a stale state is decided again.
pub async fn cached_repositories_stay_correct_beside_other_writers<S: EventStore + Clone>(store: S) {
    let cached = Repository::<Tally, _>::new(store.clone()).with_cache(4);
    let other = Repository::<Tally, _>::new(store.clone());
    let t = sid("tally-cached");
    let meta = Metadata::default();
    cached.execute(&t, &TallyCommand::Add(1), &meta).await.unwrap();
    other.execute(&t, &TallyCommand::Add(10), &meta).await.unwrap();
    // The cache says total 1 at v1; the store has 11 at v2.
    let done = cached.execute(&t, &TallyCommand::Add(100), &meta).await.unwrap();
    assert_eq!((done.state.total, done.version, done.attempts), (111, 3, 2));
    other.execute(&t, &TallyCommand::Reset, &meta).await.unwrap();
    // The cache says 111: a reset is allowed on it, and on the store (total 0) it is refused.
    let refused = cached.execute(&t, &TallyCommand::Reset, &meta).await;
    assert!(
        matches!(refused, Err(RepositoryError::Rejected(TallyError::AlreadyZero))),
        "{refused:?}"
    );
    other.execute(&t, &TallyCommand::Add(5), &meta).await.unwrap();
    // Evictions keep at most 4 states; every stream still answers right.
    for i in 0..8 {
        let s = sid(&format!("tally-cached-{i}"));
        cached.execute(&s, &TallyCommand::Add(i + 1), &meta).await.unwrap();
        cached.execute(&s, &TallyCommand::Add(1), &meta).await.unwrap();
        assert_eq!(cached.load(&s).await.unwrap().state.total, i + 2);
    }
    let done = cached.execute(&t, &TallyCommand::Add(2), &meta).await.unwrap();
    assert_eq!(
        (done.state.total, done.state.history.clone()),
        (7, vec![1, 10, 100, 5, 2])
    );
    let events = store.read_stream(&t, ReadStream::all()).await.unwrap();
    assert_eq!(
        events.len(),
        6,
        "1, 10, 100, reset, 5, 2: nothing stored from a stale state"
    );

    // `decide` takes its state from the cache and leaves it there only once told it was stored.
    let d = cached.decide(&t, &TallyCommand::Add(3), &meta).await.unwrap();
    assert_eq!(d.append.as_ref().map(|a| a.expected), Some(ExpectedVersion::Exact(6)));
    other.execute(&t, &TallyCommand::Add(4), &meta).await.unwrap();
    // Not stored, not told: the next decide loads (and sees the other writer's 4).
    let d = cached.decide(&t, &TallyCommand::Add(3), &meta).await.unwrap();
    assert_eq!((d.state.total, d.version), (14, 8));
    store.append(vec![d.append.clone().unwrap()]).await.unwrap();
    cached.stored(&t, &d);
    // Behind another writer: the decided append names the cached version, and conflicts.
    other.execute(&t, &TallyCommand::Add(1), &meta).await.unwrap();
    let stale = cached.decide(&t, &TallyCommand::Add(1), &meta).await.unwrap();
    let err = store.append(vec![stale.append.unwrap()]).await.unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    let d = cached.decide(&t, &TallyCommand::Reset, &meta).await.unwrap();
    assert_eq!((d.state.total, d.version), (0, 10), "decided again on the stored state");
    store.append(vec![d.append.clone().unwrap()]).await.unwrap();
    cached.stored(&t, &d);
    // A refusal on the cached state (total 0) is decided again on the stored one (total 5).
    other.execute(&t, &TallyCommand::Add(5), &meta).await.unwrap();
    let d = cached.decide(&t, &TallyCommand::Reset, &meta).await.unwrap();
    assert_eq!((d.state.total, d.version), (0, 12));

    // `decide_new` decides on the empty state without a read; storing it where the stream
    // exists conflicts. A refusal on the empty state is decided again on the stored one.
    let fresh = sid("tally-new");
    let d = cached.decide_new(&fresh, &TallyCommand::Add(2), &meta).await.unwrap();
    assert_eq!(d.append.as_ref().map(|a| a.expected), Some(ExpectedVersion::NoStream));
    store.append(vec![d.append.unwrap()]).await.unwrap();
    let d = cached.decide_new(&fresh, &TallyCommand::Add(3), &meta).await.unwrap();
    let err = store.append(vec![d.append.unwrap()]).await.unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    let d = cached.decide_new(&fresh, &TallyCommand::Reset, &meta).await.unwrap();
    assert_eq!(d.append.map(|a| a.expected), Some(ExpectedVersion::Exact(1)));
}

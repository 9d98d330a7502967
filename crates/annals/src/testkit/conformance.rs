//! The conformance suite: one generic async function per guarantee of DESIGN §1.
//!
//! Every backend runs all of them through [`conformance_tests!`](crate::conformance_tests).
//! Each function panics (fails the test) when the store breaks the guarantee.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;
use uuid::Uuid;

use crate::error::{DecodeError, RepositoryError, StoreError};
use crate::event::{Metadata, NewEvent, RecordedEvent};
use crate::ids::{ExpectedVersion, StreamId};
use crate::repository::{Repository, SnapshotPolicy};
use crate::store::{EventStore, MAX_EVENT_BYTES, ReadStream, StreamAppend, StreamInfo};
use crate::testkit::fixtures::{Person, PersonEvent, Tally, TallyCommand, TallyError, TallyV2, person_upcasters};
use crate::upcast::Upcasting;

fn sid(s: &str) -> StreamId {
    StreamId::new(s).expect("valid test stream id")
}

fn ev(n: i64) -> NewEvent {
    NewEvent::from_value("Added", &json!({ "amount": n }))
}

fn amounts(events: &[RecordedEvent]) -> Vec<i64> {
    events
        .iter()
        .map(|e| e.payload_value()["amount"].as_i64().unwrap_or(-1))
        .collect()
}

async fn snapshot_of_store<S: EventStore>(store: &S) -> (u64, Vec<StreamInfo>) {
    (
        store.head_position().await.unwrap(),
        store.list_streams(None, usize::MAX).await.unwrap(),
    )
}

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
    assert!(all.windows(2).all(|w| w[0].global_position < w[1].global_position));
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
    assert_eq!(
        out.streams[1].first_position,
        out.streams[0].last_position + 1,
        "one append's positions are contiguous"
    );
    let all = store.read_all(before.0, 100).await.unwrap();
    assert_eq!(amounts(&all), vec![10, 11, 12]);
}

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
    assert_eq!(
        (retry.first_position, retry.last_position),
        (first.first_position, first.last_position)
    );
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

    store
        .append_to_stream(s.clone(), "Payment", ExpectedVersion::Exact(2), vec![ev(3)])
        .await
        .unwrap();
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

/// §1.4: the global log, read in pages from any checkpoint, has every committed event once, with
/// increasing positions and each stream in version order — also under concurrent writers.
pub async fn gap_free_global_log<S: EventStore + 'static>(store: S) {
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let s = sid(&format!("log-{}", (w + i) % 5));
                let n = 1 + (i % 3) as usize;
                let events = (0..n).map(|k| ev(w * 1000 + i * 10 + k as i64)).collect();
                store
                    .append_to_stream(s, "Log", ExpectedVersion::Any, events)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let expected: usize = 8 * (0..25).map(|i| 1 + (i % 3)).sum::<usize>();
    for page in [1, 7, 1000] {
        let mut after = 0;
        let mut seen = Vec::new();
        loop {
            let batch = store.read_all(after, page).await.unwrap();
            if batch.is_empty() {
                break;
            }
            assert!(batch.len() <= page);
            after = batch.last().unwrap().global_position;
            seen.extend(batch);
        }
        check_history(&seen, expected);
    }
    assert_eq!(
        store.head_position().await.unwrap(),
        store
            .read_all(0, usize::MAX)
            .await
            .unwrap()
            .last()
            .unwrap()
            .global_position
    );
}

/// Asserts a history read from the global log is complete, unduplicated and ordered.
pub fn check_history(seen: &[RecordedEvent], expected: usize) {
    assert_eq!(seen.len(), expected, "events lost or duplicated");
    assert!(
        seen.windows(2).all(|w| w[0].global_position < w[1].global_position),
        "positions must increase"
    );
    let mut ids = std::collections::HashSet::new();
    assert!(
        seen.iter().all(|e| ids.insert(e.event_id)),
        "an event was delivered twice"
    );
    let mut versions: HashMap<&StreamId, u64> = HashMap::new();
    for e in seen {
        let last = versions.entry(&e.stream_id).or_insert(0);
        assert_eq!(e.version, *last + 1, "stream {} out of version order", e.stream_id);
        *last = e.version;
    }
}

/// §1.4 live: a reader following the log while writers append sees every event once, in order,
/// woken by commits rather than polling.
pub async fn live_follower_sees_every_event_in_order<S: EventStore + 'static>(store: S) {
    let store = Arc::new(store);
    let total = 6 * 30;
    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut follower = crate::follow::GlobalLogReader::new(store, 0).with_batch(16);
            let mut seen = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while seen.len() < total && tokio::time::Instant::now() < deadline {
                seen.extend(follower.next_batch(Duration::from_secs(5)).await.unwrap());
            }
            seen
        })
    };
    let mut writers = Vec::new();
    for w in 0..6 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..30 {
                let s = sid(&format!("live-{}", (w + i) % 3));
                store
                    .append_to_stream(s, "Live", ExpectedVersion::Any, vec![ev(i as i64)])
                    .await
                    .unwrap();
                if i % 7 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let seen = reader.await.unwrap();
    check_history(&seen, total);

    // A waiter wakes up when an event is committed, well before its timeout.
    let head = store.head_position().await.unwrap();
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let h = store.wait_for_new(head, Duration::from_secs(30)).await.unwrap();
            (h, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    store
        .append_to_stream(sid("live-wake"), "Live", ExpectedVersion::Any, vec![ev(1)])
        .await
        .unwrap();
    let (h, waited) = waiter.await.unwrap();
    assert_eq!(h, head + 1);
    assert!(
        waited < Duration::from_secs(25),
        "wait_for_new must wake on commit, waited {waited:?}"
    );
}

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
    assert_eq!(log[0].payload_value(), json!({ "first": "Ada", "last": "Lovelace" }));
    // The stored row is unchanged.
    let raw = store.read_stream(&s, ReadStream::all()).await.unwrap();
    assert_eq!(
        (raw[0].schema_version, raw[0].payload_value()),
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

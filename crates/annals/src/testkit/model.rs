//! A model-based property test: random appends and reads against a store and a naive in-memory
//! model, then a concurrent phase whose history is checked for lost, duplicated or reordered events.

use std::collections::HashMap;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;
use uuid::Uuid;

use crate::error::StoreError;
use crate::event::NewEvent;
use crate::ids::{ExpectedVersion, StreamId};
use crate::store::{EventStore, ReadStream};

/// One step of a random history.
#[derive(Clone, Debug)]
pub enum Op {
    /// Append `count` events to stream `stream` with an expectation derived from `expect`.
    Append {
        /// Which of 4 streams.
        stream: u8,
        /// 0 = Any, 1 = NoStream, 2 = StreamExists, 3 = Exact(right), 4 = Exact(wrong).
        expect: u8,
        /// 1 to 4 events.
        count: u8,
        /// Retry the previous append's ids (an idempotent retry, or a duplicate elsewhere).
        reuse_ids: bool,
    },
    /// Read a stream forwards from a version and compare with the model.
    ReadStream {
        /// Which stream.
        stream: u8,
        /// From this version.
        from: u8,
    },
    /// Read the global log after a position and compare.
    ReadAll {
        /// After this index into the model's log.
        after: u8,
        /// At most this many.
        limit: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4, 0u8..5, 1u8..5, prop::bool::weighted(0.2))
            .prop_map(|(stream, expect, count, reuse_ids)| Op::Append { stream, expect, count, reuse_ids }),
        1 => (0u8..4, 0u8..6).prop_map(|(stream, from)| Op::ReadStream { stream, from }),
        1 => (0u8..40, 1u8..10).prop_map(|(after, limit)| Op::ReadAll { after, limit }),
    ]
}

/// Runs the property over random histories; `run_case` executes one history against a fresh store.
pub fn check(run_case: impl Fn(Vec<Op>) -> Result<(), TestCaseError>) {
    let cases = std::env::var("ANNALS_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner.run(&prop::collection::vec(op(), 1..40), run_case).unwrap();
}

#[derive(Clone)]
struct ModelEvent {
    stream: u8,
    id: Uuid,
    amount: i64,
}

/// Executes `ops` against `store` and the model, failing on the first divergence; then runs a
/// concurrent phase and checks its history.
pub async fn run<S: EventStore + Clone + 'static>(store: &S, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut log: Vec<ModelEvent> = Vec::new();
    let mut streams: HashMap<u8, Vec<usize>> = HashMap::new();
    let mut last_ids: Option<(u8, Vec<Uuid>, u64)> = None; // stream, ids, version before
    let mut counter = 0i64;
    let head0 = store.head_position().await.map_err(fail)?;
    let name = |s: u8| StreamId::new(format!("model-{s}")).unwrap();

    for op in ops {
        match op {
            Op::Append {
                stream,
                expect,
                count,
                reuse_ids,
            } => {
                let current = streams.get(&stream).map_or(0, |v| v.len() as u64);
                let expected = match expect {
                    0 => ExpectedVersion::Any,
                    1 => ExpectedVersion::NoStream,
                    2 => ExpectedVersion::StreamExists,
                    3 => ExpectedVersion::Exact(current),
                    _ => ExpectedVersion::Exact(current + 1),
                };
                let (ids, retry_of) = match (&last_ids, reuse_ids) {
                    (Some((s, ids, before)), true) => (ids.clone(), Some((*s, *before))),
                    _ => ((0..count).map(|_| Uuid::now_v7()).collect::<Vec<_>>(), None),
                };
                let events: Vec<NewEvent> = ids
                    .iter()
                    .map(|id| {
                        counter += 1;
                        NewEvent::from_value("Added", &json!({ "amount": counter })).with_id(*id)
                    })
                    .collect();
                let result = store.append_to_stream(name(stream), "Model", expected, events).await;
                // What the model says should happen.
                let stored_here = retry_of.is_some_and(|(s, _)| s == stream);
                match (retry_of, result) {
                    (Some((s, before)), Ok(out)) => {
                        prop_assert!(stored_here, "ids stored in stream {s} accepted for stream {stream}");
                        prop_assert!(out.already_stored);
                        prop_assert_eq!(out.first_version, before + 1);
                    }
                    (Some(_), Err(StoreError::DuplicateEventId { .. })) => {}
                    (Some(_), Err(e)) => prop_assert!(false, "retry got {e}"),
                    (None, Ok(out)) => {
                        prop_assert!(expected.allows(current), "{expected:?} accepted at {current}");
                        prop_assert_eq!(out.first_version, current + 1);
                        prop_assert_eq!(out.last_version, current + ids.len() as u64);
                        let first = log.len();
                        for (i, id) in ids.iter().enumerate() {
                            log.push(ModelEvent {
                                stream,
                                id: *id,
                                amount: counter - ids.len() as i64 + 1 + i as i64,
                            });
                        }
                        streams.entry(stream).or_default().extend(first..log.len());
                        last_ids = Some((stream, ids, current));
                    }
                    (
                        None,
                        Err(StoreError::Conflict {
                            actual, expected: e, ..
                        }),
                    ) => {
                        prop_assert!(!expected.allows(current), "{expected:?} refused at {current}");
                        prop_assert_eq!((actual, e), (current, expected));
                    }
                    (None, Err(e)) => prop_assert!(false, "append got {e}"),
                }
            }
            Op::ReadStream { stream, from } => {
                let got = store
                    .read_stream(&name(stream), ReadStream::from_version(u64::from(from)))
                    .await
                    .map_err(fail)?;
                let want: Vec<Uuid> = streams
                    .get(&stream)
                    .map(|v| {
                        v.iter()
                            .skip(usize::from(from.max(1)) - 1)
                            .map(|&i| log[i].id)
                            .collect()
                    })
                    .unwrap_or_default();
                prop_assert_eq!(got.iter().map(|e| e.event_id).collect::<Vec<_>>(), want);
                for e in &got {
                    let m = log.iter().find(|m| m.id == e.event_id).unwrap();
                    prop_assert_eq!(e.payload_value().unwrap()["amount"].as_i64(), Some(m.amount));
                    prop_assert_eq!(m.stream, stream);
                }
            }
            Op::ReadAll { after, limit } => {
                let after = u64::from(after).min(log.len() as u64);
                let got = store.read_all(head0 + after, usize::from(limit)).await.map_err(fail)?;
                let want: Vec<Uuid> = log
                    .iter()
                    .skip(after as usize)
                    .take(usize::from(limit))
                    .map(|m| m.id)
                    .collect();
                prop_assert_eq!(got.iter().map(|e| e.event_id).collect::<Vec<_>>(), want);
            }
        }
    }

    // Concurrent phase: racing appends with Exact expectations; every success must appear once,
    // in order, and every failure must leave nothing behind.
    let mut tasks = Vec::new();
    for w in 0..4u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut stored = Vec::new();
            for i in 0..8 {
                let s = StreamId::new(format!("model-race-{}", (w + i) % 2)).unwrap();
                let v = store.stream_version(&s).await.unwrap();
                let ids = vec![Uuid::now_v7(), Uuid::now_v7()];
                let events = ids
                    .iter()
                    .map(|id| NewEvent::from_value("Added", &json!({ "amount": 0 })).with_id(*id))
                    .collect();
                if store
                    .append_to_stream(s, "Model", ExpectedVersion::Exact(v), events)
                    .await
                    .is_ok()
                {
                    stored.extend(ids);
                }
            }
            stored
        }));
    }
    let mut succeeded = std::collections::HashSet::new();
    for t in tasks {
        succeeded.extend(t.await.map_err(|e| TestCaseError::fail(e.to_string()))?);
    }
    let all = store
        .read_all(head0 + log.len() as u64, usize::MAX)
        .await
        .map_err(fail)?;
    prop_assert_eq!(
        all.len(),
        succeeded.len(),
        "lost or extra events in the concurrent phase"
    );
    prop_assert!(all.iter().all(|e| succeeded.contains(&e.event_id)));
    let mut last: HashMap<String, u64> = HashMap::new();
    for e in &all {
        let v = last.entry(e.stream_id.to_string()).or_insert(0);
        prop_assert_eq!(e.version, *v + 1, "reordered or gapped stream {}", e.stream_id);
        *v = e.version;
    }
    Ok(())
}

fn fail(e: StoreError) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

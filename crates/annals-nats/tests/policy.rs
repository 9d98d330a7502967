//! The broker consumer's error policy against the real NATS JetStream: a failing message is
//! retried in its lane (its stream's later events wait, so order holds), then parked (the
//! dead-letter table, and the consumer goes on) or the consumer stops with a typed error and the
//! message comes back, in order, on the next run.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use annals::consume::{DeadLetters, ErrorPolicy, EventHandler, ParkedState};
use annals::error::BoxError;
use annals::relay::Publisher;
use annals::testkit::tally::Tally;
use annals::{EventStore, MemoryStore, RecordedEvent};
use annals_nats::{ConsumerOptions, NatsConsumeError, NatsConsumer, NatsOptions, NatsPublisher};
use common::{NATS_URL, applied, delete_stream, eventually, expected, unique_options, write_history};

/// The tally, failing the events `fail` names as many times as it says (u32::MAX: always).
#[derive(Clone)]
struct Flaky {
    tally: Tally<Arc<MemoryStore>>,
    fail: Arc<Mutex<HashMap<(String, u64), u32>>>,
}

impl EventHandler for Flaky {
    async fn handle(&mut self, event: &RecordedEvent) -> Result<(), BoxError> {
        {
            let mut fail = self.fail.lock().unwrap();
            if let Some(left) = fail.get_mut(&(event.stream_id.to_string(), event.version))
                && *left > 0
            {
                if *left != u32::MAX {
                    *left -= 1;
                }
                return Err(format!("refusing {} v{}", event.stream_id, event.version).into());
            }
        }
        self.tally.handle(event).await
    }
}

/// Publishes a history of `streams` × `per_stream` events straight to the broker.
async fn publish_history(options: &NatsOptions, streams: usize, per_stream: usize) {
    let source = MemoryStore::new();
    write_history(&source, streams, per_stream).await;
    let events = source.read_all(0, usize::MAX).await.unwrap();
    NatsPublisher::connect(options)
        .await
        .unwrap()
        .publish(&events)
        .await
        .unwrap();
}

async fn consumer(
    options: &NatsOptions,
    handler: Flaky,
    store: &Arc<MemoryStore>,
    policy: ErrorPolicy,
) -> NatsConsumer<Flaky, Arc<MemoryStore>> {
    let mut c = ConsumerOptions::new("flaky");
    c.policy = policy.with_backoff(Duration::from_millis(10));
    c.lanes = 4;
    let js = annals_nats::connect(options).await.unwrap();
    NatsConsumer::new(js, options.clone(), c, handler, store.clone())
}

fn flaky(store: &Arc<MemoryStore>, fails: &[(&str, u64, u32)]) -> Flaky {
    Flaky {
        tally: Tally { store: store.clone() },
        fail: Arc::new(Mutex::new(
            fails.iter().map(|(s, v, n)| ((s.to_string(), *v), *n)).collect(),
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_message_is_retried_in_its_lane_and_order_holds() {
    let options = unique_options(NATS_URL, "retry");
    publish_history(&options, 3, 10).await;
    let store = Arc::new(MemoryStore::new());
    let handler = flaky(&store, &[("order-0", 3, 2), ("order-2", 7, 3)]);
    let c = consumer(&options, handler, &store, ErrorPolicy::park_after(5)).await;
    let run = tokio::spawn(c.run(std::future::pending()));
    eventually(20, "every event applied", || async {
        applied(&store).await == expected(3, 10)
    })
    .await;
    assert!(store.list_parked(None).await.unwrap().is_empty(), "nothing parked");
    run.abort();
    delete_stream(&options).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_failing_every_try_is_parked_the_rest_goes_on_and_an_operator_retry_resolves_it() {
    let options = unique_options(NATS_URL, "park");
    publish_history(&options, 3, 10).await;
    let store = Arc::new(MemoryStore::new());
    let handler = flaky(&store, &[("order-1", 4, u32::MAX)]);
    let fail = handler.fail.clone();
    let c = consumer(&options, handler, &store, ErrorPolicy::park_after(2)).await;
    let run = tokio::spawn(c.run(std::future::pending()));
    let mut want = expected(3, 10);
    want.get_mut("order-1").unwrap().retain(|v| *v != 4);
    eventually(20, "everything but the parked event applied", || async {
        applied(&store).await == want
    })
    .await;
    let parked = store.list_parked(Some("flaky")).await.unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(
        (parked[0].stream_id.as_str(), parked[0].version, parked[0].attempts),
        ("order-1", 4, 2)
    );
    assert!(parked[0].error.contains("refusing order-1 v4"), "{}", parked[0].error);
    let kept = parked[0].event().expect("the dead-letter row keeps the message");
    assert_eq!(
        (kept.stream_id.as_str(), kept.version, kept.event_type.as_str()),
        ("order-1", 4, "Revised")
    );

    // An operator retries it once the cause is fixed: handled from the kept message, resolved.
    fail.lock().unwrap().clear();
    assert!(store.set_parked(parked[0].id, ParkedState::Retry, None).await.unwrap());
    eventually(10, "the retried message applied", || async {
        applied(&store).await["order-1"].contains(&4)
    })
    .await;
    eventually(5, "the parked row resolved", || async {
        store.list_parked(Some("flaky")).await.unwrap()[0].state == ParkedState::Resolved
    })
    .await;
    run.abort();
    delete_stream(&options).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_the_run_and_the_message_comes_back_in_order_next_time() {
    let options = unique_options(NATS_URL, "stop");
    publish_history(&options, 3, 10).await;
    let store = Arc::new(MemoryStore::new());
    let handler = flaky(&store, &[("order-2", 5, u32::MAX)]);
    let fail = handler.fail.clone();
    let c = consumer(&options, handler.clone(), &store, ErrorPolicy::stop_after(2)).await;
    let err = tokio::time::timeout(Duration::from_secs(20), c.run(std::future::pending()))
        .await
        .expect("the policy stops the run")
        .unwrap_err();
    match &err {
        NatsConsumeError::Stopped {
            stream,
            version,
            attempts,
            ..
        } => {
            assert_eq!((stream.as_str(), *version, *attempts), ("order-2", 5, 2), "{err}");
        }
        other => panic!("expected Stopped, got {other}"),
    }
    let seen = applied(&store).await;
    assert_eq!(seen["order-2"], vec![1, 2, 3, 4], "order-2 stopped before v5");

    // Fixed: the next run gets v5 again, then the rest, in order; the inbox absorbs repeats.
    fail.lock().unwrap().clear();
    let c = consumer(&options, handler, &store, ErrorPolicy::stop_after(2)).await;
    let run = tokio::spawn(c.run(std::future::pending()));
    eventually(20, "everything applied after the restart", || async {
        applied(&store).await == expected(3, 10)
    })
    .await;
    run.abort();
    delete_stream(&options).await;
}

//! §1 consuming: catch-up subscriptions with durable checkpoints, the inbox, the error policy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uuid::Uuid;

use super::{ev, sid};
use crate::consume::{
    Checkpoints, ConsumeError, DeadLetters, ErrorPolicy, EventHandler, Inbox, ParkedState, Runner, Subscription,
};
use crate::error::BoxError;
use crate::event::RecordedEvent;
use crate::ids::ExpectedVersion;
use crate::store::{EventStore, ReadStream, StreamAppend};

/// Records what it saw; fails on the events `fail` says to, as often as it says.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<RecordedEvent>>>,
    /// Remaining failures per (stream, version); u32::MAX = always.
    fail: Arc<Mutex<HashMap<(String, u64), u32>>>,
}

impl Recorder {
    fn seen(&self) -> Vec<(String, u64)> {
        let seen = self.seen.lock().unwrap();
        seen.iter().map(|e| (e.stream_id.to_string(), e.version)).collect()
    }
}

impl EventHandler for Recorder {
    async fn handle(&mut self, event: &RecordedEvent) -> Result<(), BoxError> {
        let key = (event.stream_id.to_string(), event.version);
        {
            let mut fail = self.fail.lock().unwrap();
            if let Some(left) = fail.get_mut(&key)
                && *left > 0
            {
                *left = left.saturating_sub(if *left == u32::MAX { 0 } else { 1 });
                return Err(format!("refusing {} v{}", key.0, key.1).into());
            }
        }
        self.seen.lock().unwrap().push(event.clone());
        Ok(())
    }
}

async fn append_n<S: EventStore>(store: &S, stream: &str, stream_type: &str, n: usize) {
    for i in 0..n {
        store
            .append_to_stream(sid(stream), stream_type, ExpectedVersion::Any, vec![ev(i as i64)])
            .await
            .unwrap();
    }
}

/// A subscription reads history from its checkpoint, filtered by stream type, then follows live
/// appends; its checkpoint is durable, so a new runner resumes where the last one stopped.
pub async fn subscriptions_catch_up_then_follow_from_a_durable_checkpoint<S>(store: S)
where
    S: EventStore + Checkpoints + DeadLetters + 'static,
{
    let store = Arc::new(store);
    append_n(&store, "sub-order-1", "Order", 3).await;
    append_n(&store, "sub-ticket-1", "Ticket", 2).await;
    append_n(&store, "sub-order-2", "Order", 2).await;

    let handler = Recorder::default();
    let sub = Subscription::new("orders-view", store.clone(), handler.clone());
    let mut runner = Runner::new(store.clone(), sub).only_stream_types(["Order"]);
    let progress = runner.run_until_caught_up().await.unwrap();
    assert_eq!(progress.handled, 5, "only Order events are handled");
    assert_eq!(
        progress.position, 7,
        "the checkpoint moves past filtered-out events too"
    );
    assert_eq!(store.load_checkpoint("orders-view").await.unwrap(), Some(7));
    assert!(handler.seen().iter().all(|(s, _)| s.starts_with("sub-order")));

    // Live: a running subscription is woken by appends.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let live = tokio::spawn(async move {
        runner
            .run(async {
                let _ = stop_rx.await;
            })
            .await
    });
    append_n(&store, "sub-order-1", "Order", 2).await;
    append_n(&store, "sub-ticket-1", "Ticket", 1).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while handler.seen().len() < 7 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(handler.seen().len(), 7, "live events reach the handler");
    // Wait for the checkpoint to pass the last (filtered) event, then stop.
    while store.load_checkpoint("orders-view").await.unwrap() != Some(10) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop_tx.send(()).unwrap();
    live.await.unwrap().unwrap();
    assert_eq!(store.load_checkpoint("orders-view").await.unwrap(), Some(10));

    // A new runner under the same name resumes from the stored checkpoint.
    let fresh = Recorder::default();
    append_n(&store, "sub-order-3", "Order", 1).await;
    let mut again = Runner::new(
        store.clone(),
        Subscription::new("orders-view", store.clone(), fresh.clone()),
    )
    .only_stream_types(["Order"]);
    assert_eq!(again.run_until_caught_up().await.unwrap().handled, 1);
    assert_eq!(fresh.seen(), [("sub-order-3".to_owned(), 1)]);
    let names: Vec<String> = store
        .list_checkpoints()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["orders-view"]);
}

/// The inbox: each message's effects and its "processed" mark commit together, so delivering
/// every message twice, in a shuffled order, has each effect exactly once.
pub async fn inbox_makes_redelivered_messages_harmless<S: Inbox + 'static>(store: S) {
    let messages: Vec<(Uuid, usize)> = (0..12).map(|i| (Uuid::now_v7(), i)).collect();
    // Every message twice; a fixed shuffle (duplicates both adjacent and far apart).
    let mut deliveries: Vec<(Uuid, usize)> = messages.iter().chain(messages.iter()).copied().collect();
    let mut seed = 0x2545_f491_u64;
    for i in (1..deliveries.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        deliveries.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    let mut applied = 0;
    let mut skipped = 0;
    for (id, i) in deliveries {
        let append = StreamAppend::new(
            sid(&format!("inbox-account-{}", i % 3)),
            "Account",
            ExpectedVersion::Any,
            vec![ev(i as i64)],
        );
        match store.append_once("payments", id, vec![append]).await.unwrap() {
            Some(_) => applied += 1,
            None => skipped += 1,
        }
    }
    assert_eq!((applied, skipped), (12, 12));
    let mut amounts = Vec::new();
    for s in 0..3 {
        let events = store
            .read_stream(&sid(&format!("inbox-account-{s}")), ReadStream::all())
            .await
            .unwrap();
        amounts.extend(super::amounts(&events));
    }
    amounts.sort_unstable();
    assert_eq!(amounts, (0..12).collect::<Vec<i64>>(), "each message took effect once");

    // Another consumer has its own inbox; a message with no events is still marked.
    let id = messages[0].0;
    assert!(store.append_once("audit", id, vec![]).await.unwrap().is_some());
    assert!(store.append_once("audit", id, vec![]).await.unwrap().is_none());
    assert_eq!(store.head_position().await.unwrap(), 12);

    // A refused append does not mark the message: it can be retried.
    let bad = StreamAppend::new(
        sid("inbox-account-0"),
        "Account",
        ExpectedVersion::NoStream,
        vec![ev(99)],
    );
    let retry_id = Uuid::now_v7();
    assert!(store.append_once("payments", retry_id, vec![bad]).await.is_err());
    let good = StreamAppend::new(sid("inbox-account-0"), "Account", ExpectedVersion::Any, vec![ev(99)]);
    assert!(
        store
            .append_once("payments", retry_id, vec![good])
            .await
            .unwrap()
            .is_some()
    );
}

/// The error policy: a flaky message is retried until it passes; a poison message is parked (and
/// the consumer goes on), retried on an operator's request, or stops the consumer.
pub async fn failing_messages_are_retried_parked_or_stop<S>(store: S)
where
    S: EventStore + Checkpoints + DeadLetters + 'static,
{
    let store = Arc::new(store);
    append_n(&store, "policy-1", "Policy", 5).await;
    let handler = Recorder::default();
    handler.fail.lock().unwrap().insert(("policy-1".into(), 2), 2); // flaky: fails twice
    handler.fail.lock().unwrap().insert(("policy-1".into(), 4), u32::MAX); // poison
    let policy = ErrorPolicy::park_after(3).with_backoff(Duration::from_millis(1));
    let mut runner = Runner::new(
        store.clone(),
        Subscription::new("policy-park", store.clone(), handler.clone()),
    )
    .with_policy(policy);
    let progress = runner.run_until_caught_up().await.unwrap();
    assert_eq!((progress.handled, progress.parked, progress.position), (4, 1, 5));
    assert_eq!(
        handler.seen(),
        [1, 2, 3, 5].map(|v| ("policy-1".to_owned(), v)),
        "in order, the poison message left out"
    );
    let parked = store.list_parked(Some("policy-park")).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!((parked[0].version, parked[0].attempts), (4, 3));
    assert_eq!(parked[0].state, ParkedState::Parked);
    assert!(parked[0].error.contains("refusing policy-1 v4"), "{}", parked[0].error);
    // The dead-letter row keeps the message itself.
    let kept = parked[0].event().expect("the parked message is kept");
    let stored = store
        .read_stream(&sid("policy-1"), ReadStream::from_version(4).limit(1))
        .await
        .unwrap();
    assert_eq!(
        (
            kept.event_id,
            kept.version,
            kept.payload_value().unwrap(),
            kept.global_position
        ),
        (
            stored[0].event_id,
            4,
            stored[0].payload_value().unwrap(),
            stored[0].global_position
        )
    );

    // An operator fixes the cause and asks for a retry.
    handler.fail.lock().unwrap().clear();
    assert!(store.set_parked(parked[0].id, ParkedState::Retry, None).await.unwrap());
    runner.run_until_caught_up().await.unwrap();
    assert_eq!(handler.seen().last(), Some(&("policy-1".to_owned(), 4)));
    assert_eq!(store.list_parked(None).await.unwrap()[0].state, ParkedState::Resolved);
    assert!(!store.set_parked(9_999, ParkedState::Skipped, None).await.unwrap());

    // Stop: the consumer halts at the poison message, its checkpoint just before it.
    let stopper = Recorder::default();
    stopper.fail.lock().unwrap().insert(("policy-1".into(), 3), u32::MAX);
    let mut runner = Runner::new(
        store.clone(),
        Subscription::new("policy-stop", store.clone(), stopper.clone()),
    )
    .with_policy(ErrorPolicy::stop_after(2).with_backoff(Duration::from_millis(1)));
    match runner.run_until_caught_up().await {
        Err(ConsumeError::Stopped { position, attempts, .. }) => assert_eq!((position, attempts), (3, 2)),
        other => panic!("expected a stop, got {other:?}"),
    }
    assert_eq!(store.load_checkpoint("policy-stop").await.unwrap(), Some(2));
    assert!(store.list_parked(Some("policy-stop")).await.unwrap().is_empty());
}

/// The one delivery policy: a store outage while a consumer reads the log is waited out with
/// backoff — no message is parked for it, nothing is skipped — and shows in the `health` table
/// (what failed, its kind, since when, how many tries) while it lasts; the row goes once the
/// consumer works again. A handler's transient error is retried past the policy's tries, not
/// parked; a misconfiguration stops the consumer and leaves a `stopped` row.
pub async fn consumers_wait_out_an_outage_and_say_so<S>(store: S)
where
    S: EventStore + Checkpoints + DeadLetters + 'static,
{
    use crate::consume::{HealthReports, HealthState};
    use crate::error::{ErrorKind, StoreError};
    use crate::testkit::faults::FaultyStore;
    let store = Arc::new(store);
    append_n(&store, "outage-1", "Outage", 4).await;
    // The first 8 reads of the log fail as a dropped connection would.
    let faulty = Arc::new(FaultyStore::new(store.clone()).fail_reads(1..=8));
    let handler = Recorder::default();
    let mut runner = Runner::new(
        faulty.clone(),
        Subscription::new("outage-view", faulty.clone(), handler.clone()),
    )
    .with_policy(ErrorPolicy::park_after(2).with_backoff(Duration::from_millis(2)));
    let run = tokio::spawn(async move { runner.run_until_caught_up().await });
    let mut seen = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen.is_none() && tokio::time::Instant::now() < deadline {
        seen = store.list_health().await.unwrap().into_iter().next();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let row = seen.expect("the outage shows in the health table while it lasts");
    assert_eq!(
        (row.component.as_str(), row.state, row.kind),
        ("outage-view", HealthState::Retrying, Some(ErrorKind::Unavailable))
    );
    assert!(
        row.error.contains("reading the log") && row.error.contains("injected fault"),
        "{}",
        row.error
    );
    assert!(row.attempts >= 1 && row.since <= row.updated_at);
    let progress = run.await.unwrap().unwrap();
    assert_eq!((progress.handled, progress.parked, progress.position), (4, 0, 4));
    assert_eq!(handler.seen().len(), 4);
    assert!(
        store.list_health().await.unwrap().is_empty(),
        "the row goes once it works again"
    );
    assert!(store.list_parked(Some("outage-view")).await.unwrap().is_empty());

    // A handler whose error is transient (its own database is down) is retried past the
    // policy's 2 tries, not parked.
    #[derive(Clone, Default)]
    struct Flaky(Arc<Mutex<u32>>);
    impl EventHandler for Flaky {
        async fn handle(&mut self, _: &RecordedEvent) -> Result<(), BoxError> {
            let mut failures = self.0.lock().unwrap();
            if *failures < 5 {
                *failures += 1;
                return Err(Box::new(StoreError::unavailable(
                    "the read model's database is down",
                    None,
                )));
            }
            Ok(())
        }
    }
    let flaky = Flaky::default();
    let mut runner = Runner::new(
        store.clone(),
        Subscription::new("flaky-view", store.clone(), flaky.clone()),
    )
    .with_policy(ErrorPolicy::park_after(2).with_backoff(Duration::from_millis(1)));
    let progress = runner.run_until_caught_up().await.unwrap();
    assert_eq!((progress.handled, progress.parked), (4, 0));
    assert_eq!(*flaky.0.lock().unwrap(), 5);

    // A handler that finds the set-up wrong stops the consumer at once, and says so.
    #[derive(Clone)]
    struct Misconfigured;
    impl EventHandler for Misconfigured {
        async fn handle(&mut self, _: &RecordedEvent) -> Result<(), BoxError> {
            Err(Box::new(StoreError::misconfigured("table read_model is missing", None)))
        }
    }
    let mut runner = Runner::new(
        store.clone(),
        Subscription::new("broken-view", store.clone(), Misconfigured),
    )
    .with_policy(ErrorPolicy::park_after(5).with_backoff(Duration::from_millis(1)));
    let err = runner.run_until_caught_up().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Misconfigured, "{err}");
    assert!(
        matches!(
            &err,
            ConsumeError::Stopped {
                attempts: 1,
                position: 1,
                ..
            }
        ),
        "stopped at the first try: {err:?}"
    );
    let rows = store.list_health().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].component.as_str(), rows[0].state),
        ("broken-view", HealthState::Stopped)
    );
    assert!(
        rows[0].error.contains("table read_model is missing"),
        "{}",
        rows[0].error
    );
    assert_eq!(store.load_checkpoint("broken-view").await.unwrap().unwrap_or(0), 0);
}

/// Counts handlers running at once, each taking a moment.
#[derive(Clone, Default)]
struct Overlap {
    recorder: Recorder,
    running: Arc<std::sync::atomic::AtomicUsize>,
    most: Arc<std::sync::atomic::AtomicUsize>,
}

impl EventHandler for Overlap {
    async fn handle(&mut self, event: &RecordedEvent) -> Result<(), BoxError> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        tokio::time::sleep(Duration::from_millis(1)).await;
        let done = self.recorder.handle(event).await;
        self.running.fetch_sub(1, SeqCst);
        done
    }
}

/// A subscription with lanes handles several streams at once, each stream in version order
/// (also across a failing event's retries), and one that holds its checkpoint back stores it
/// before it returns.
pub async fn subscriptions_with_lanes_keep_each_stream_in_order<S>(store: S)
where
    S: EventStore + Checkpoints + DeadLetters + 'static,
{
    let store = Arc::new(store);
    let mut appends = Vec::new();
    for v in 0..15 {
        for s in 0..4 {
            appends.push(StreamAppend::new(
                sid(&format!("lane-{s}")),
                "Lane",
                ExpectedVersion::Any,
                vec![ev(v)],
            ));
        }
        store.append(std::mem::take(&mut appends)).await.unwrap();
    }
    let handler = Overlap::default();
    handler.recorder.fail.lock().unwrap().insert(("lane-2".into(), 7), 2);
    let subscription = Subscription::new("lanes", store.clone(), handler.clone())
        .with_lanes(4)
        .with_checkpoint_every(Duration::from_secs(3600));
    let policy = ErrorPolicy::stop_after(5).with_backoff(Duration::from_millis(1));
    let mut runner = Runner::new(store.clone(), subscription)
        .with_policy(policy)
        .with_batch(64);
    let progress = runner.run_until_caught_up().await.unwrap();
    assert_eq!(progress.position, 60);
    assert_eq!(
        store.load_checkpoint("lanes").await.unwrap(),
        Some(60),
        "stored on return"
    );
    assert!(
        handler.most.load(std::sync::atomic::Ordering::SeqCst) > 1,
        "lanes overlapped"
    );
    // Per stream: first deliveries in version order, 1 to 15; a repeat only of a version seen.
    let mut first: HashMap<String, Vec<u64>> = HashMap::new();
    for (stream, version) in handler.recorder.seen() {
        let versions = first.entry(stream.clone()).or_default();
        if versions.contains(&version) {
            continue;
        }
        assert_eq!(version, versions.len() as u64 + 1, "{stream} v{version} out of order");
        versions.push(version);
    }
    assert_eq!(first.len(), 4);
    assert!(first.values().all(|v| v.len() == 15));
}

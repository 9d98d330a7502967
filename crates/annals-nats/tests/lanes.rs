//! Lanes: a stream's messages are handled one at a time and in order, different streams at the
//! same time. The handler counts how many events are in its hands at once, overall and per stream.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use annals::consume::EventHandler;
use annals::error::BoxError;
use annals::relay::Publisher;
use annals::{EventStore, MemoryStore, RecordedEvent};
use annals_nats::{ConsumerOptions, NatsConsumer, NatsPublisher};
use common::{NATS_URL, delete_stream, eventually, unique_options, write_history};

#[derive(Default)]
struct Counts {
    now: usize,
    most: usize,
    per_stream_now: HashMap<String, usize>,
    per_stream_most: usize,
    order: HashMap<String, Vec<u64>>,
}

#[derive(Clone, Default)]
struct Slow(Arc<Mutex<Counts>>);

impl EventHandler for Slow {
    async fn handle(&mut self, event: &RecordedEvent) -> Result<(), BoxError> {
        let stream = event.stream_id.to_string();
        {
            let mut c = self.0.lock().unwrap();
            c.now += 1;
            c.most = c.most.max(c.now);
            let n = c.per_stream_now.entry(stream.clone()).or_default();
            *n += 1;
            let n = *n;
            c.per_stream_most = c.per_stream_most.max(n);
            c.order.entry(stream.clone()).or_default().push(event.version);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut c = self.0.lock().unwrap();
        c.now -= 1;
        *c.per_stream_now.get_mut(&stream).unwrap() -= 1;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stream_at_a_time_in_order_streams_in_parallel() {
    let options = unique_options(NATS_URL, "lanes");
    let source = MemoryStore::new();
    write_history(&source, 8, 6).await;
    let events = source.read_all(0, usize::MAX).await.unwrap();
    NatsPublisher::connect(&options)
        .await
        .unwrap()
        .publish(&events)
        .await
        .unwrap();

    let handler = Slow::default();
    let counts = handler.0.clone();
    let js = annals_nats::connect(&options).await.unwrap();
    let consumer = NatsConsumer::new(
        js,
        options.clone(),
        ConsumerOptions::new("slow"),
        handler,
        Arc::new(MemoryStore::new()),
    );
    let run = tokio::spawn(consumer.run(std::future::pending()));
    eventually(20, "every event handled", || async {
        counts.lock().unwrap().order.values().map(Vec::len).sum::<usize>() == 48
    })
    .await;
    {
        let c = counts.lock().unwrap();
        assert_eq!(c.per_stream_most, 1, "a stream had two events in hand at once");
        assert!(c.most > 1, "streams were handled one after another, never together");
        for (stream, versions) in &c.order {
            assert_eq!(versions, &(1..=6).collect::<Vec<u64>>(), "{stream} out of order");
        }
    }
    run.abort();
    delete_stream(&options).await;
}

/// With `event_types`, other events are acknowledged without reaching the handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_event_types_asked_for_reach_the_handler() {
    use annals::{ExpectedVersion, NewEvent, StreamId};
    let options = unique_options(NATS_URL, "types");
    let source = MemoryStore::new();
    for i in 0..10 {
        let kind = if i % 2 == 0 { "Wanted" } else { "Other" };
        source
            .append_to_stream(
                StreamId::new(format!("s-{}", i % 3)).unwrap(),
                "Typed",
                ExpectedVersion::Any,
                vec![NewEvent::from_value(kind, &serde_json::json!({ "i": i }))],
            )
            .await
            .unwrap();
    }
    let events = source.read_all(0, usize::MAX).await.unwrap();
    NatsPublisher::connect(&options)
        .await
        .unwrap()
        .publish(&events)
        .await
        .unwrap();
    let handler = Slow::default();
    let counts = handler.0.clone();
    let mut wanted = ConsumerOptions::new("wanted");
    wanted.event_types = vec!["Wanted".into()];
    let js = annals_nats::connect(&options).await.unwrap();
    let consumer = NatsConsumer::new(js, options.clone(), wanted, handler, Arc::new(MemoryStore::new()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(consumer.run(async {
        let _ = stopped.await;
    }));
    eventually(20, "the wanted events handled", || async {
        counts.lock().unwrap().order.values().map(Vec::len).sum::<usize>() == 5
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = stop.send(());
    let progress = run.await.unwrap().unwrap();
    assert_eq!(progress.handled, 5, "the others were acknowledged unread");
    assert_eq!(counts.lock().unwrap().order.values().map(Vec::len).sum::<usize>(), 5);
    delete_stream(&options).await;
}

//! A handler whose effects prove exactly-once, in-order delivery, for relay and broker tests:
//! [`Tally`] counts each event it handles into `tally-<stream>` through the inbox, so a
//! redelivered message has no second effect and the tally streams show the order events were
//! applied in; [`applied`] reads that back and [`expected`] says what it must be for a history
//! written by [`write_history`].

use std::collections::BTreeMap;

use serde_json::json;

use crate::consume::{EventHandler, Inbox};
use crate::error::BoxError;
use crate::event::{NewEvent, RecordedEvent};
use crate::ids::{ExpectedVersion, StreamId};
use crate::store::{EventStore, StreamAppend};

/// Counts handled events into the store it holds (see the module docs).
#[derive(Clone)]
pub struct Tally<S> {
    /// Where the counts go (the consumer's own store).
    pub store: S,
}

impl<S: Inbox + Clone + Sync> EventHandler for Tally<S> {
    async fn handle(&mut self, event: &RecordedEvent) -> Result<(), BoxError> {
        let tally = StreamId::new(format!("tally-{}", event.stream_id))?;
        let counted = NewEvent::from_value(
            "Counted",
            &json!({ "stream": event.stream_id.as_str(), "version": event.version }),
        );
        self.store
            .append_once(
                "tally",
                event.event_id,
                vec![StreamAppend::new(tally, "Tally", ExpectedVersion::Any, vec![counted])],
            )
            .await?;
        Ok(())
    }
}

/// Appends `per_stream` events to each of `streams` streams `order-<n>`, interleaved, two per append.
pub async fn write_history<S: EventStore>(store: &S, streams: usize, per_stream: usize) {
    for v in (0..per_stream).step_by(2) {
        for s in 0..streams {
            let n = 2.min(per_stream - v);
            let events = (0..n)
                .map(|i| NewEvent::from_value("Revised", &json!({ "v": v + i + 1 })))
                .collect();
            let id = StreamId::new(format!("order-{s}")).expect("valid id");
            store
                .append_to_stream(id, "Order", ExpectedVersion::Any, events)
                .await
                .expect("append");
        }
    }
}

/// Each source stream's versions in the order the tally in `store` applied them.
pub async fn applied<S: EventStore>(store: &S) -> BTreeMap<String, Vec<u64>> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for e in store.read_all(0, usize::MAX).await.expect("read the tally") {
        let v = e.payload_value().unwrap();
        out.entry(v["stream"].as_str().unwrap_or_default().to_owned())
            .or_default()
            .push(v["version"].as_u64().unwrap_or_default());
    }
    out
}

/// What [`applied`] must be for `streams` streams of `per_stream` events: each once, in order.
pub fn expected(streams: usize, per_stream: usize) -> BTreeMap<String, Vec<u64>> {
    (0..streams)
        .map(|s| (format!("order-{s}"), (1..=per_stream as u64).collect()))
        .collect()
}

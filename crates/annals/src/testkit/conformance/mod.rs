//! The conformance suite: one generic async function per guarantee of DESIGN §1.
//!
//! Every backend runs all of them through [`conformance_tests!`](crate::conformance_tests).
//! Each function panics (fails the test) when the store breaks the guarantee.

mod appends;
mod consuming;
mod global_log;
mod idempotence;
mod privacy;
mod reading;
mod refusals;
mod relaying;
mod snapshots;

pub use appends::*;
pub use consuming::*;
pub use global_log::*;
pub use idempotence::*;
pub use privacy::*;
pub use reading::*;
pub use refusals::*;
pub use relaying::*;
pub use snapshots::*;

use serde_json::json;

use crate::event::{NewEvent, RecordedEvent};
use crate::ids::StreamId;
use crate::store::{EventStore, StreamInfo};

fn sid(s: &str) -> StreamId {
    StreamId::new(s).expect("valid test stream id")
}

fn ev(n: i64) -> NewEvent {
    NewEvent::from_value("Added", &json!({ "amount": n }))
}

fn amounts(events: &[RecordedEvent]) -> Vec<i64> {
    events
        .iter()
        .map(|e| e.payload_value().unwrap()["amount"].as_i64().unwrap_or(-1))
        .collect()
}

async fn snapshot_of_store<S: EventStore>(store: &S) -> (u64, Vec<StreamInfo>) {
    (
        store.head_position().await.unwrap(),
        store.list_streams(None, usize::MAX).await.unwrap(),
    )
}

//! The gap-free global log, read in pages and followed live (DESIGN §1.4).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::{ev, sid};
use crate::event::RecordedEvent;
use crate::ids::{ExpectedVersion, StreamId};
use crate::store::EventStore;

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

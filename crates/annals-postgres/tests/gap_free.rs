//! The PostgreSQL global-ordering trap (DESIGN §4), tested against the real server: a transaction
//! that takes its id and then waits while later ones commit must not be skipped by a reader, and a
//! stream's events must reach the log in version order even when an older transaction writes the
//! newer version.

mod common;

use std::sync::Arc;
use std::time::Duration;

use annals::follow::GlobalLogReader;
use annals::testkit::conformance::check_history;
use annals::{EventStore, ExpectedVersion, NewEvent, RecordedEvent, StreamAppend, StreamId};

fn sid(s: &str) -> StreamId {
    StreamId::new(s).unwrap()
}

fn ev(n: i64) -> NewEvent {
    NewEvent::from_value("Counted", &serde_json::json!({ "n": n }))
}

/// Follows the global log from the start until `count` events arrived (or 30 s passed).
fn follow(store: annals_postgres::PostgresStore, count: usize) -> tokio::task::JoinHandle<Vec<RecordedEvent>> {
    tokio::spawn(async move {
        let mut reader = GlobalLogReader::new(store, 0);
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while seen.len() < count && tokio::time::Instant::now() < deadline {
            seen.extend(reader.next_batch(Duration::from_secs(1)).await.unwrap());
        }
        seen
    })
}

/// `seen` is complete, unduplicated and in order (see `check_history`), at positions 1…`total`.
fn check_dense_history(seen: &[RecordedEvent], total: usize) {
    check_history(seen, total);
    let positions: Vec<u64> = seen.iter().map(|e| e.global_position).collect();
    assert_eq!(positions, (1..=total as u64).collect::<Vec<_>>(), "dense from 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_fixture_a_late_committer_is_not_skipped() {
    let (store, guard) = common::fresh().await;
    // A: takes its transaction id and writes, then waits.
    let mut a_conn = common::raw_client(&guard.schema).await;
    let a = a_conn.transaction().await.unwrap();
    let a_id = common::raw_append(&a, "race-a", -1).await;

    // A reader starts during the wait; B and C commit after A began.
    let reader = follow(store.clone(), 3);
    for s in ["race-b", "race-c"] {
        store
            .append_to_stream(sid(s), "Raced", ExpectedVersion::Any, vec![ev(1)])
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !reader.is_finished(),
        "A has not committed: the reader cannot have 3 events"
    );

    // A commits (and, like an appender killed right after its commit, never asks for positions).
    a.commit().await.unwrap();
    let seen = reader.await.unwrap();
    let streams: Vec<&str> = seen.iter().map(|e| e.stream_id.as_str()).collect();
    assert_eq!(
        streams,
        ["race-b", "race-c", "race-a"],
        "the late committer comes after, not never"
    );
    assert_eq!(seen[2].event_id, a_id);
    let positions: Vec<u64> = seen.iter().map(|e| e.global_position).collect();
    assert_eq!(positions, [1, 2, 3], "positions are dense");
    assert_eq!(store.read_all(2, 10).await.unwrap()[0].event_id, a_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_transaction_writing_v2_still_lands_after_v1() {
    let (store, guard) = common::fresh().await;
    // A takes the older transaction id by writing another stream first.
    let mut a_conn = common::raw_client(&guard.schema).await;
    let a = a_conn.transaction().await.unwrap();
    common::raw_append(&a, "trap-other", -1).await;
    // B, younger, writes s v1 and commits; nobody sequences it yet.
    let b_conn = common::raw_client(&guard.schema).await;
    let v1 = common::raw_append(&b_conn, "trap-s", -2).await;
    // A now writes s v2 (it sees v1) and commits.
    let v2 = common::raw_append(&a, "trap-s", 1).await;
    a.commit().await.unwrap();

    // One sequencer batch holds both; by transaction id v2 would come first.
    assert_eq!(store.assign_positions().await.unwrap(), 3);
    let log = store.read_all(0, 10).await.unwrap();
    let s: Vec<_> = log.iter().filter(|e| e.stream_id.as_str() == "trap-s").collect();
    assert_eq!(
        s.iter().map(|e| (e.version, e.event_id)).collect::<Vec<_>>(),
        [(1, v1), (2, v2)]
    );
    assert!(s[0].global_position < s[1].global_position);
    check_history(&log, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_many_writers_few_streams_live_reader() {
    let (store, _guard) = common::fresh().await;
    let writers = 12;
    let per_writer = 40;
    // Every other append also writes a second stream in the same transaction, so transactions
    // take their ids early and then wait on another stream's lock: the per-stream trap.
    let total: usize = (0..per_writer).map(|i| if i % 2 == 0 { 2 } else { 1 }).sum::<usize>() * writers;
    let reader = follow(store.clone(), total);
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let first = sid(&format!("stress-{}", (w + i) % 3));
                let mut appends = vec![StreamAppend::new(
                    first,
                    "Stress",
                    ExpectedVersion::Any,
                    vec![ev(i as i64)],
                )];
                if i % 2 == 0 {
                    let second = sid(&format!("stress-{}", (w + i + 1) % 3));
                    appends.push(StreamAppend::new(
                        second,
                        "Stress",
                        ExpectedVersion::Any,
                        vec![ev(i as i64)],
                    ));
                }
                store.append(appends).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    check_dense_history(&reader.await.unwrap(), total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_store_on_the_same_schema_follows_appends() {
    let (writer, guard) = common::fresh().await;
    // A second store (another service, say) on the same database and schema.
    let reader = annals_postgres::PostgresStore::connect_with(
        &common::url(),
        annals_postgres::PostgresOptions {
            schema: guard.schema.clone(),
            pool_size: 2,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let follower = follow(reader.clone(), 20);
    for i in 0..20 {
        writer
            .append_to_stream(
                sid(&format!("other-{}", i % 4)),
                "Other",
                ExpectedVersion::Any,
                vec![ev(i)],
            )
            .await
            .unwrap();
    }
    let seen = follower.await.unwrap();
    check_history(&seen, 20);
    // Appends report no position on PostgreSQL; reads do, densely from 1.
    let out = writer
        .append_to_stream(sid("other-0"), "Other", ExpectedVersion::Any, vec![ev(99)])
        .await
        .unwrap();
    assert_eq!(out.last_position, None);
    let tail = reader.read_all(20, 10).await.unwrap();
    assert_eq!(
        tail.len(),
        1,
        "a reader at the head sees an append that has just returned"
    );
    assert_eq!(tail[0].global_position, 21);
}

/// A read at the head with appends of its own store pending waits for its store's background
/// sequencer instead of looking itself: that run must also sequence what another store appended
/// before the read began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_waiting_for_its_own_sequencer_sees_another_stores_append() {
    let (a, guard) = common::fresh().await;
    let b = annals_postgres::PostgresStore::connect_with(
        &common::url(),
        annals_postgres::PostgresOptions {
            schema: guard.schema.clone(),
            pool_size: 4,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for i in 0..30 {
        let from = b.head_position().await.unwrap();
        a.append_to_stream(sid(&format!("a-{i}")), "Other", ExpectedVersion::NoStream, vec![ev(i)])
            .await
            .unwrap();
        // B's own append is pending when it reads (its sequencer waits a moment to gather).
        b.append_to_stream(sid(&format!("b-{i}")), "Other", ExpectedVersion::NoStream, vec![ev(i)])
            .await
            .unwrap();
        let read = b.read_all(from, 100).await.unwrap();
        let streams: Vec<&str> = read.iter().map(|e| e.stream_id.as_str()).collect();
        assert!(streams.contains(&format!("a-{i}").as_str()), "round {i}: {streams:?}");
        assert!(streams.contains(&format!("b-{i}").as_str()), "round {i}: {streams:?}");
    }
}

/// The sequencer's plan is priced from the size of `events`; past a few million events that price
/// passed `jit_above_cost` and every run spent about 25 ms compiling. The function turns JIT off
/// for itself, whatever the session or server says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sequencer_runs_without_jit_whatever_the_session_says() {
    let (store, guard) = common::fresh().await;
    store
        .append_to_stream(sid("jit-s"), "Counter", ExpectedVersion::NoStream, vec![ev(1)])
        .await
        .unwrap();
    let client = common::raw_client(&guard.schema).await;
    // A session that would compile every plan.
    client
        .batch_execute("SET jit = on; SET jit_above_cost = 0")
        .await
        .unwrap();
    let config: Vec<String> = client
        .query_one(
            "SELECT p.proconfig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE p.proname = 'assign_positions' AND n.nspname = current_schema()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        config.iter().any(|c| c == "jit=off"),
        "assign_positions is configured {config:?}"
    );
    // Sequencing works under the function's own setting.
    let head: i64 = client.query_one("SELECT assign_positions()", &[]).await.unwrap().get(0);
    assert_eq!(head, 1);
    let jit: String = client.query_one("SHOW jit", &[]).await.unwrap().get(0);
    assert_eq!(jit, "on", "the function's setting does not leak into the session");
}

/// A transaction held open across many sequencer runs (each run's snapshot lists it as running)
/// delays nobody else, and its events are sequenced once it commits, after everything before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_open_across_runs_is_sequenced_when_it_commits() {
    let (store, guard) = common::fresh().await;
    let mut held_conn = common::raw_client(&guard.schema).await;
    let held = held_conn.transaction().await.unwrap();
    let held_id = common::raw_append(&held, "held-open", -1).await;
    for n in 1..=5u64 {
        store
            .append_to_stream(
                sid(&format!("held-other-{n}")),
                "Counter",
                ExpectedVersion::NoStream,
                vec![ev(1)],
            )
            .await
            .unwrap();
        assert_eq!(
            store.head_position().await.unwrap(),
            n,
            "an open transaction delayed others"
        );
    }
    held.commit().await.unwrap();
    assert_eq!(store.head_position().await.unwrap(), 6);
    let all = store.read_all(0, 10).await.unwrap();
    check_history(&all, 6);
    assert_eq!(all[5].event_id, held_id, "the late committer comes last");
}

/// A schema migrated from before `log.seen` (migration 11) has no snapshot of the last run:
/// its first run goes by the fence and skips the groups already in the log, later runs by the
/// snapshot, and every event gets exactly one position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_without_a_snapshot_is_sequenced_once_from_its_fence() {
    let (store, guard) = common::fresh().await;
    for s in ["before-a", "before-b", "before-c"] {
        store
            .append_to_stream(sid(s), "Counter", ExpectedVersion::NoStream, vec![ev(1), ev(2)])
            .await
            .unwrap();
    }
    assert_eq!(store.head_position().await.unwrap(), 6);
    let client = common::raw_client(&guard.schema).await;
    // As migration 11 finds a schema (and with the oldest fence there is: every event a candidate).
    client
        .batch_execute("UPDATE log SET seen = NULL; UPDATE log_head SET fence = '0'")
        .await
        .unwrap();
    store
        .append_to_stream(sid("before-a"), "Counter", ExpectedVersion::Exact(2), vec![ev(3)])
        .await
        .unwrap();
    store
        .append_to_stream(sid("after"), "Counter", ExpectedVersion::NoStream, vec![ev(1), ev(2)])
        .await
        .unwrap();
    assert_eq!(store.head_position().await.unwrap(), 9);
    let seen: Option<String> = client
        .query_one("SELECT seen::text FROM log ORDER BY first_position DESC LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);
    assert!(seen.is_some(), "the first run stored its snapshot");
    store
        .append_to_stream(sid("after"), "Counter", ExpectedVersion::Exact(2), vec![ev(3)])
        .await
        .unwrap();
    assert_eq!(store.head_position().await.unwrap(), 10);
    let all = store.read_all(0, 20).await.unwrap();
    check_history(&all, 10);
    let versions: Vec<(String, u64)> = all[6..]
        .iter()
        .map(|e| (e.stream_id.as_str().to_owned(), e.version))
        .collect();
    assert_eq!(
        versions,
        [
            ("before-a".into(), 3),
            ("after".into(), 1),
            ("after".into(), 2),
            ("after".into(), 3)
        ]
    );
}

/// The sequencer's plan is made once per session (generic) and kept as the table grows, so it
/// must be an index plan whatever the table looked like then: a plan made on an empty `events`
/// was a sequential scan that every later run repeated over the whole table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sequencer_reads_events_by_index_with_a_plan_made_on_an_empty_table() {
    let (store, guard) = common::fresh().await;
    let mut client = common::raw_client(&guard.schema).await;
    // Plans made now, in this session, while nothing is stored.
    client.query_one("SELECT assign_positions()", &[]).await.unwrap();
    client.query_one("SELECT assign_positions(false)", &[]).await.unwrap();
    twenty_streams_of_25(&store, "plan").await;
    let tx = client.transaction().await.unwrap();
    common::raw_append(&tx, "plan-late", -1).await;
    tx.commit().await.unwrap();
    let tx = client.transaction().await.unwrap();
    for check_first in [true, false] {
        tx.query_one("SELECT assign_positions($1)", &[&check_first])
            .await
            .unwrap();
    }
    let (seq, idx) = scans_of_events(&tx).await;
    tx.commit().await.unwrap();
    assert_eq!(seq, 0, "the sequencer scanned all of events");
    assert!(idx > 0, "the sequencer read events by index");
    assert_eq!(store.head_position().await.unwrap(), 501);
}

/// Twenty streams `<prefix>-0` … `<prefix>-19` of 25 events each.
async fn twenty_streams_of_25(store: &annals_postgres::PostgresStore, prefix: &str) {
    for s in 0..20 {
        let events = (0..25).map(ev).collect();
        store
            .append_to_stream(
                sid(&format!("{prefix}-{s}")),
                "Counter",
                ExpectedVersion::NoStream,
                events,
            )
            .await
            .unwrap();
    }
}

/// Sequential and index scans of `events` in this transaction so far.
async fn scans_of_events(tx: &tokio_postgres::Transaction<'_>) -> (i64, i64) {
    let row = tx
        .query_one(
            "SELECT seq_scan, coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables
             WHERE relname = 'events' AND schemaname = current_schema()",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// The repository's fold read (`stream_fold_events`, inlined into the caller's statement) keeps
/// an index plan when its statement was prepared, and its generic plan cached, while nothing was
/// stored: a later read of one stream among many scans no other rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fold_read_keeps_an_index_plan_made_on_an_empty_table() {
    let (store, guard) = common::fresh().await;
    let mut client = common::raw_client(&guard.schema).await;
    let read = client
        .prepare("SELECT * FROM stream_fold_events($1, $2, $3)")
        .await
        .unwrap();
    // More runs than PostgreSQL's five custom plans, so the generic plan is made now and kept.
    for _ in 0..8 {
        let rows = client.query(&read, &[&"fold-0", &1i64, &1000i64]).await.unwrap();
        assert!(rows.is_empty());
    }
    twenty_streams_of_25(&store, "fold").await;
    let tx = client.transaction().await.unwrap();
    let rows = tx.query(&read, &[&"fold-7", &3i64, &1000i64]).await.unwrap();
    let versions: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(versions, (3..=25).collect::<Vec<i64>>(), "the stream from v3, in order");
    let (seq, idx) = scans_of_events(&tx).await;
    tx.commit().await.unwrap();
    assert_eq!(seq, 0, "the fold read scanned all of events");
    assert!(idx > 0, "the fold read used the index");
}

/// The stress test with slow transactions beside fast appends: some writers hold their
/// transaction open for a few milliseconds (several sequencer runs) before committing, to the
/// same streams the fast ones write, so many runs see them in their snapshot's running list. A
/// live reader must still get every event once, densely, each stream in version order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_slow_transactions_beside_fast_appends() {
    let (store, guard) = common::fresh().await;
    let (slow_writers, fast_writers, per_writer) = (4, 6, 30);
    let total = (slow_writers + fast_writers) * per_writer;
    let reader = follow(store.clone(), total);
    let mut tasks = Vec::new();
    for w in 0..slow_writers {
        let schema = guard.schema.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = common::raw_client(&schema).await;
            for i in 0..per_writer {
                let tx = client.transaction().await.unwrap();
                common::raw_append(&tx, &format!("slow-{}", (w + i) % 3), -1).await;
                tokio::time::sleep(Duration::from_millis(((w * 7 + i * 5) % 13) as u64)).await;
                tx.commit().await.unwrap();
            }
        }));
    }
    for w in 0..fast_writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                store
                    .append_to_stream(
                        sid(&format!("slow-{}", (w + i) % 3)),
                        "Raced",
                        ExpectedVersion::Any,
                        vec![ev(i as i64)],
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    check_dense_history(&reader.await.unwrap(), total);
}

/// Reading the head right after appending to a fresh store, while the background sequencer (woken
/// by the append) runs at the same moment: the head counts the append. A reader that found no
/// work once answered the head from before a run that committed between its two looks — 0 with
/// three events stored (seen in CI, in `idempotent_appends`); the window is microseconds wide, so
/// this repeats the race on many fresh stores rather than forcing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_head_read_right_after_an_append_counts_it() {
    for round in 0..12 {
        let (store, _guard) = common::fresh().await;
        for n in 1..=5u64 {
            store
                .append_to_stream(sid("counted"), "Counter", ExpectedVersion::Any, vec![ev(n as i64)])
                .await
                .unwrap();
            let head = store.head_position().await.unwrap();
            assert!(head >= n, "round {round}: the head read after append {n} is {head}");
        }
    }
}

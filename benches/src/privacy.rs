//! Crypto-shredding benchmark (issue #6): append and load throughput on SQLite with personal
//! fields encrypted (`annals::privacy::Shredding`, AES-256-GCM, one data key per subject), as a
//! ratio to the same store without encryption, in the same run. Rounds alternate the two.
//!
//! - Append: one appender, one `ConsumerRegistered` event (name and e-mail personal) per append,
//!   each for a new consumer (so every append also creates its subject's key), or all for one.
//! - Load: a 100-event stream of `AddressChanged` events (the address personal, one subject),
//!   read whole and decoded, as a repository load does.
//!
//! Run: `cargo bench -p annals-benches --bench privacy` (`ANNALS_BENCH_SECS` per case, default 2;
//! `ANNALS_BENCH_ONLY=appends|loads` for one half).

#[path = "report.rs"]
mod report;

use std::time::{Duration, Instant};

use annals::privacy::{KeyStore, MasterKey, PersonalFields, Shredding};
use annals::{EventStore, ExpectedVersion, NewEvent, ReadStream, StreamId};
use annals_sqlite::SqliteStore;
use report::{Sample, header, row, secs};
use serde_json::json;

/// Appends `ConsumerRegistered` events for `time`: each for a new subject, or all for one.
async fn appends<S: EventStore>(store: &S, tag: &str, time: Duration, new_subjects: bool) -> Sample {
    let deadline = Instant::now() + time;
    let started = Instant::now();
    let mut latencies = Vec::new();
    while Instant::now() < deadline {
        let n = latencies.len();
        let event = NewEvent::from_value(
            "ConsumerRegistered",
            &json!({ "consumer_id": if new_subjects { format!("{tag}-{n}") } else { tag.to_owned() }, "name": "Ada Lovelace",
                     "email": format!("ada{n}@example.org"), "order_limit_cents": 50_000 }),
        );
        let t = Instant::now();
        store
            .append_to_stream(
                StreamId::new(format!("consumer-{tag}-{n}")).unwrap(),
                "Consumer",
                ExpectedVersion::NoStream,
                vec![event],
            )
            .await
            .unwrap();
        latencies.push(t.elapsed());
    }
    Sample {
        events: latencies.len(),
        latencies,
        elapsed: started.elapsed(),
    }
}

/// Loads stream `id` whole for `time`, parsing each payload; `opened`: the addresses are plain.
async fn loads<S: EventStore>(store: &S, id: &StreamId, time: Duration, opened: bool) -> Sample {
    let deadline = Instant::now() + time;
    let started = Instant::now();
    let mut latencies = Vec::new();
    while Instant::now() < deadline {
        let t = Instant::now();
        let events = store.read_stream(id, ReadStream::all()).await.unwrap();
        let mut addresses = 0;
        for e in &events {
            let v: serde_json::Value = serde_json::from_str(e.payload.get()).unwrap();
            addresses += usize::from(v["address"].is_string() == opened);
        }
        assert_eq!(addresses, 100);
        latencies.push(t.elapsed());
    }
    Sample {
        events: latencies.len(),
        latencies,
        elapsed: started.elapsed(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("privacy.db")).await.unwrap();
    let fields = PersonalFields::new()
        .field("Consumer", "ConsumerRegistered", "name", "consumer_id")
        .field("Consumer", "ConsumerRegistered", "email", "consumer_id")
        .field("Consumer", "AddressChanged", "address", "consumer_id");
    // Keys in the store's own file: a new subject's key is synced by the append that uses it.
    let shred = Shredding::in_store(store.clone(), fields, MasterKey::new("m1", [4; 32]), vec![]);
    println!(
        "annals crypto-shredding benchmark — SQLite synchronous=FULL; {:?} per case; {} cores",
        secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let (plain_id, secret_id) = (
        StreamId::new("addresses-plain").unwrap(),
        StreamId::new("addresses-secret").unwrap(),
    );
    let events = |n: usize| -> Vec<NewEvent> {
        (0..n)
            .map(|i| {
                NewEvent::from_value(
                    "AddressChanged",
                    &json!({ "consumer_id": "c-1", "address": format!("{i} Rue de la Paix, Paris") }),
                )
            })
            .collect()
    };
    store
        .append_to_stream(plain_id.clone(), "Consumer", ExpectedVersion::NoStream, events(100))
        .await
        .unwrap();
    shred
        .append_to_stream(secret_id.clone(), "Consumer", ExpectedVersion::NoStream, events(100))
        .await
        .unwrap();

    let rounds = 4u32;
    let slice = secs() / rounds;
    let only = std::env::var("ANNALS_BENCH_ONLY").unwrap_or_default();
    if only != "loads" {
        append_cases(&store, &shred, rounds, slice).await;
    }
    if only != "appends" {
        load_cases(&store, &shred, (&plain_id, &secret_id), rounds, slice).await;
    }
}

async fn append_cases<S: EventStore, E: EventStore>(store: &S, shred: &E, rounds: u32, slice: Duration) {
    let (mut plain, mut secret) = (Sample::empty(), Sample::empty());
    let (mut known, mut known_secret) = (Sample::empty(), Sample::empty());
    for r in 0..rounds {
        plain.add(appends(store, &format!("plain{r}"), slice, true).await);
        secret.add(appends(shred, &format!("secret{r}"), slice, true).await);
        known.add(appends(store, &format!("plainone{r}"), slice, false).await);
        known_secret.add(appends(shred, &format!("secretone{r}"), slice, false).await);
    }
    header(
        "Appends with personal fields (appends/s; ratio = encrypted ÷ plain, same run)",
        "appends/s",
    );
    row("plain", &plain, None);
    row(
        "encrypted, a new subject each (key created)",
        &secret,
        Some(plain.rate()),
    );
    row("plain, one subject", &known, None);
    row("encrypted, one subject (key known)", &known_secret, Some(known.rate()));
}

async fn load_cases<S: EventStore, K: KeyStore>(
    store: &S,
    shred: &Shredding<S, K>,
    (plain_id, secret_id): (&StreamId, &StreamId),
    rounds: u32,
    slice: Duration,
) {
    let (mut plain, mut secret, mut unopened) = (Sample::empty(), Sample::empty(), Sample::empty());
    for _ in 0..rounds {
        plain.add(loads(store, plain_id, slice, true).await);
        secret.add(loads(shred, secret_id, slice, true).await);
        unopened.add(loads(shred.inner(), secret_id, slice / 2, false).await);
    }
    header(
        "Loads of a 100-event stream (loads/s; ratio = decrypted ÷ plain, same run)",
        "loads/s",
    );
    row("plain", &plain, None);
    row("decrypted (100 addresses, one subject)", &secret, Some(plain.rate()));
    row("sealed, read without opening", &unopened, Some(plain.rate()));
}

//! Crypto-shredding benchmark (issue #6): append and load throughput on SQLite with personal
//! fields encrypted (`annals::privacy::Shredding`, AES-256-GCM, one data key per subject), as a
//! ratio to the same store without encryption, in the same run. Rounds alternate the two.
//!
//! - Append: one appender, one `ConsumerRegistered` event (name and e-mail personal) per append,
//!   each for a new consumer (so every append also creates its subject's key), or all for one.
//! - Load: a 100-event stream of `AddressChanged` events (the address personal, one subject),
//!   read whole and decoded, as a repository load does: the worst case, every event personal.
//!   Beside it a mixed stream, where one event in ten is an `AddressChanged` and the others
//!   (`OrderLimitChanged`) have no personal field, and a stream whose 100 addresses belong to 100
//!   subjects (as a projection over the global log meets them). And the all-personal stream
//!   loaded as an aggregate through a `Repository` (typed events decoded and applied), as a
//!   service loads it before a command.
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

/// The consumer of the load streams, as an aggregate: what a service would load before a command.
#[derive(Default)]
struct Addressee {
    addresses: usize,
    order_limit_cents: i64,
}

/// The load streams' events, typed.
#[derive(serde::Serialize, serde::Deserialize)]
enum AddresseeEvent {
    AddressChanged {
        consumer_id: String,
        address: String,
    },
    OrderLimitChanged {
        consumer_id: String,
        order_limit_cents: i64,
    },
}

impl annals::DomainEvent for AddresseeEvent {}

/// `Addressee` takes no commands here.
#[derive(Debug)]
struct NoCommands;

impl std::fmt::Display for NoCommands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no commands")
    }
}

impl std::error::Error for NoCommands {}

impl annals::Aggregate for Addressee {
    const STREAM_TYPE: &'static str = "Consumer";
    type Event = AddresseeEvent;
    type Command = ();
    type Error = NoCommands;

    fn handle(&self, (): &()) -> Result<Vec<AddresseeEvent>, NoCommands> {
        Err(NoCommands)
    }

    fn apply(&mut self, event: &AddresseeEvent) {
        match event {
            AddresseeEvent::AddressChanged { address, .. } => self.addresses += usize::from(!address.is_empty()),
            AddresseeEvent::OrderLimitChanged { order_limit_cents, .. } => self.order_limit_cents = *order_limit_cents,
        }
    }
}

/// Loads stream `id` as an `Addressee` through a repository over `store`, for `time`.
async fn aggregate_loads<S: EventStore>(store: S, id: &StreamId, time: Duration) -> Sample {
    let repository = annals::Repository::<Addressee, S>::new(store);
    let deadline = Instant::now() + time;
    let started = Instant::now();
    let mut latencies = Vec::new();
    while Instant::now() < deadline {
        let t = Instant::now();
        let loaded = repository.load(id).await.unwrap();
        assert_eq!((loaded.version, loaded.state.addresses), (100, 100));
        latencies.push(t.elapsed());
    }
    Sample {
        events: latencies.len(),
        latencies,
        elapsed: started.elapsed(),
    }
}

/// Loads stream `id` whole for `time`, parsing each payload; `opened`: its `addresses` addresses
/// are plain.
async fn loads<S: EventStore>(store: &S, (id, addresses): (&StreamId, usize), time: Duration, opened: bool) -> Sample {
    let deadline = Instant::now() + time;
    let started = Instant::now();
    let mut latencies = Vec::new();
    while Instant::now() < deadline {
        let t = Instant::now();
        let events = store.read_stream(id, ReadStream::all()).await.unwrap();
        let mut found = 0;
        for e in &events {
            let v: serde_json::Value = serde_json::from_str(e.payload.get()).unwrap();
            found += usize::from(v.get("address").is_some_and(|a| a.is_string() == opened));
        }
        assert_eq!((events.len(), found), (100, addresses));
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
    // One personal event in `every` (1: all of them); `many`: each of a subject of its own.
    let events = |every: usize, many: bool| -> Vec<NewEvent> {
        (0..100)
            .map(|i| {
                let subject = if many { format!("c-{i}") } else { "c-1".to_owned() };
                if i % every == 0 {
                    NewEvent::from_value(
                        "AddressChanged",
                        &json!({ "consumer_id": subject, "address": format!("{i} Rue de la Paix, Paris") }),
                    )
                } else {
                    NewEvent::from_value(
                        "OrderLimitChanged",
                        &json!({ "consumer_id": "c-1", "order_limit_cents": 50_000 + i }),
                    )
                }
            })
            .collect()
    };
    let mut streams = Vec::new();
    for (name, every, many) in [("addresses", 1, false), ("mixed", 10, false), ("subjects", 1, true)] {
        let (plain_id, secret_id) = (
            StreamId::new(format!("{name}-plain")).unwrap(),
            StreamId::new(format!("{name}-secret")).unwrap(),
        );
        store
            .append_to_stream(
                plain_id.clone(),
                "Consumer",
                ExpectedVersion::NoStream,
                events(every, many),
            )
            .await
            .unwrap();
        shred
            .append_to_stream(
                secret_id.clone(),
                "Consumer",
                ExpectedVersion::NoStream,
                events(every, many),
            )
            .await
            .unwrap();
        streams.push((plain_id, secret_id, 100 / every));
    }

    let rounds = 4u32;
    let slice = secs() / rounds;
    let only = std::env::var("ANNALS_BENCH_ONLY").unwrap_or_default();
    if only != "loads" {
        append_cases(&store, &shred, rounds, slice).await;
    }
    if only != "appends" {
        load_cases(&store, &shred, &streams, rounds, slice).await;
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

async fn load_cases<S: EventStore + Clone, K: KeyStore + Clone>(
    store: &S,
    shred: &Shredding<S, K>,
    streams: &[(StreamId, StreamId, usize)],
    rounds: u32,
    slice: Duration,
) {
    let [
        (plain_id, secret_id, all),
        (mixed_plain, mixed_secret, some),
        (many_plain, many_secret, _),
    ] = streams
    else {
        panic!("three streams: all personal, mixed, and many subjects");
    };
    let mut samples: [Sample; 9] = std::array::from_fn(|_| Sample::empty());
    for _ in 0..rounds {
        samples[0].add(loads(store, (plain_id, *all), slice, true).await);
        samples[1].add(loads(shred, (secret_id, *all), slice, true).await);
        samples[2].add(loads(shred.inner(), (secret_id, *all), slice / 2, false).await);
        samples[3].add(loads(store, (mixed_plain, *some), slice / 2, true).await);
        samples[4].add(loads(shred, (mixed_secret, *some), slice / 2, true).await);
        samples[5].add(loads(store, (many_plain, *all), slice / 2, true).await);
        samples[6].add(loads(shred, (many_secret, *all), slice / 2, true).await);
        samples[7].add(aggregate_loads(store.clone(), plain_id, slice / 2).await);
        samples[8].add(aggregate_loads(shred.clone(), secret_id, slice / 2).await);
    }
    header(
        "Loads of a 100-event stream (loads/s; ratio = decrypted ÷ plain, same run)",
        "loads/s",
    );
    let [
        plain,
        secret,
        unopened,
        mixed,
        mixed_secret,
        many,
        many_secret,
        aggregate,
        aggregate_secret,
    ] = &samples;
    row("plain", plain, None);
    row("decrypted (100 addresses, one subject)", secret, Some(plain.rate()));
    row("sealed, read without opening", unopened, Some(plain.rate()));
    row("mixed, plain (1 event in 10 has an address)", mixed, None);
    row("mixed, decrypted (10 addresses)", mixed_secret, Some(mixed.rate()));
    row("100 subjects, plain (one address each)", many, None);
    row("100 subjects, decrypted", many_secret, Some(many.rate()));
    row("aggregate load (Repository), plain", aggregate, None);
    row(
        "aggregate load (Repository), decrypted",
        aggregate_secret,
        Some(aggregate.rate()),
    );
}

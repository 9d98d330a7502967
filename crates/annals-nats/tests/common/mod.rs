//! Shared by the NATS tests: unique names, a private nats-server when a test must stop its
//! broker, a source history, and a handler whose effects prove exactly-once, in-order handling.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use annals::consume::{EventHandler, Inbox};
use annals::error::BoxError;
use annals::{EventStore, ExpectedVersion, NewEvent, RecordedEvent, StreamAppend, StreamId};
use annals_nats::NatsOptions;
use annals_sqlite::SqliteStore;
use serde_json::json;

/// The shared broker of the machine (`.ci/services` makes sure it runs).
pub const NATS_URL: &str = "nats://127.0.0.1:4222";

/// Names no other test (or earlier run) uses: a stream and prefix of their own.
pub fn unique_options(url: &str, tag: &str) -> NatsOptions {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let id = format!("{}_{}_{n}_{tag}", std::process::id(), uuid::Uuid::now_v7().simple());
    NatsOptions::new(url).with_names(format!("T{id}"), format!("t{id}"))
}

/// Appends `per_stream` events to each of `streams` streams, interleaved, in appends of 2.
pub async fn write_history<S: EventStore>(store: &S, streams: usize, per_stream: usize) {
    for v in (0..per_stream).step_by(2) {
        for s in 0..streams {
            let n = 2.min(per_stream - v);
            let events = (0..n)
                .map(|i| NewEvent::from_value("Revised", &json!({ "v": v + i + 1 })))
                .collect();
            store
                .append_to_stream(
                    StreamId::new(format!("order-{s}")).unwrap(),
                    "Order",
                    ExpectedVersion::Any,
                    events,
                )
                .await
                .unwrap();
        }
    }
}

/// Counts each event it handles into `tally-<stream>` with the inbox, so a redelivered message
/// has no second effect and the tally streams show the order events were applied in.
#[derive(Clone)]
pub struct Tally {
    pub store: SqliteStore,
}

impl EventHandler for Tally {
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

/// Each source stream's versions in the order the tally applied them.
pub async fn applied(store: &SqliteStore) -> BTreeMap<String, Vec<u64>> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for e in store.read_all(0, usize::MAX).await.unwrap() {
        let v = e.payload_value();
        out.entry(v["stream"].as_str().unwrap().to_owned())
            .or_default()
            .push(v["version"].as_u64().unwrap());
    }
    out
}

/// What `applied` must be for `streams` streams of `per_stream` events: each exactly once, in order.
pub fn expected(streams: usize, per_stream: usize) -> BTreeMap<String, Vec<u64>> {
    (0..streams)
        .map(|s| (format!("order-{s}"), (1..=per_stream as u64).collect()))
        .collect()
}

/// Waits until `f` is true, up to `secs` seconds.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..secs * 20 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within {secs} s");
}

/// A nats-server of the test's own on a free loopback port, with JetStream in a temporary
/// directory, that the test may stop and start again.
pub struct PrivateNats {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateNats {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut nats = Self {
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        nats.restart();
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it (again) on the same port and store directory; waits until it accepts connections.
    pub fn restart(&mut self) {
        let bin = [
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
            "/usr/local/bin/nats-server",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("nats-server is not installed (see .ci/services)");
        let child = Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the private nats-server did not start on port {}", self.port);
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Deletes a test's JetStream stream (and its consumers) from the broker.
pub async fn delete_stream(options: &NatsOptions) {
    let client = async_nats::connect(options.url.as_str()).await.unwrap();
    let _ = async_nats::jetstream::new(client).delete_stream(&options.stream).await;
}

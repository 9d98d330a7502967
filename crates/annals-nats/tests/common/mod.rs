//! Shared by the NATS tests: unique names, a private nats-server when a test must stop its
//! broker, and the tally handler (annals::testkit::tally) on SQLite.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

#[allow(unused_imports)] // not every test binary uses all of them
pub(crate) use annals::testkit::tally::{applied, expected, write_history};
use annals_nats::NatsOptions;
use annals_sqlite::SqliteStore;

/// The tally handler on a SQLite store.
pub(crate) type Tally = annals::testkit::tally::Tally<SqliteStore>;

/// The shared broker of the machine (`.ci/services` makes sure it runs).
pub(crate) const NATS_URL: &str = "nats://127.0.0.1:4222";

/// Names no other test (or earlier run) uses: a stream and prefix of their own.
pub(crate) fn unique_options(url: &str, tag: &str) -> NatsOptions {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let id = format!("{}_{}_{n}_{tag}", std::process::id(), uuid::Uuid::now_v7().simple());
    NatsOptions::new(url).with_names(format!("T{id}"), format!("t{id}"))
}

/// Waits until `f` is true, up to `secs` seconds.
pub(crate) async fn eventually<F, Fut>(secs: u64, what: &str, mut f: F)
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
pub(crate) struct PrivateNats {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateNats {
    pub(crate) fn start() -> Self {
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

    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL).
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it (again) on the same port and store directory; waits until it accepts connections.
    pub(crate) fn restart(&mut self) {
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
pub(crate) async fn delete_stream(options: &NatsOptions) {
    let client = async_nats::connect(options.url.as_str()).await.unwrap();
    let _ = async_nats::jetstream::new(client).delete_stream(&options.stream).await;
}

/// Runs a durable consumer `tally` of `options`' stream that applies the tally into `tally`.
pub(crate) async fn spawn_tally_consumer(
    options: &NatsOptions,
    tally: &SqliteStore,
) -> tokio::task::JoinHandle<Result<annals_nats::ConsumerProgress, annals_nats::NatsConsumeError>> {
    let js = annals_nats::connect(options).await.unwrap();
    let consumer = annals_nats::NatsConsumer::new(
        js,
        options.clone(),
        annals_nats::ConsumerOptions::new("tally"),
        Tally { store: tally.clone() },
        tally.clone(),
    );
    tokio::spawn(async move { consumer.run(std::future::pending()).await })
}

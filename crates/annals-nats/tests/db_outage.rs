//! The database goes away under the relay: the relay reaches PostgreSQL through a TCP proxy that
//! the test cuts for 3 s (every open connection dropped, new ones refused) while appends go on
//! directly; afterwards the relay resumes by itself and every event's effect is applied exactly
//! once, in stream order. For both sources: polling and log tailing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use annals::relay::Relay;
use annals_nats::NatsPublisher;
use annals_postgres::tail::TailRelay;
use annals_postgres::{PostgresOptions, PostgresStore};
use annals_sqlite::SqliteStore;
use common::{
    NATS_URL, applied, delete_stream, eventually, expected, spawn_tally_consumer, unique_options, write_history,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// A loopback TCP proxy to PostgreSQL that can be cut and restored.
struct Proxy {
    port: u16,
    down: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (d, l) = (down.clone(), links.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if d.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                l.lock().await.push(tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Self { port, down, links }
    }

    async fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for link in self.links.lock().await.drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

async fn outage(tail: bool) {
    let (direct, _guard) = annals_postgres::testing::fresh().await;
    let proxy = Proxy::start().await;
    let url = format!("postgres://postgres@127.0.0.1:{}/test", proxy.port);
    let proxied = PostgresStore::connect_with(
        &url,
        PostgresOptions {
            schema: direct.schema().to_owned(),
            ..PostgresOptions::default()
        },
    )
    .await
    .unwrap();
    let options = unique_options(NATS_URL, if tail { "dbtail" } else { "dbpoll" });
    let dir = tempfile::tempdir().unwrap();
    let tally = SqliteStore::open(dir.path().join("tally.db")).await.unwrap();
    let consuming = spawn_tally_consumer(&options, &tally).await;
    let publisher = NatsPublisher::connect(&options).await.unwrap();
    let relay = tokio::spawn(async move {
        let ttl = Duration::from_secs(1);
        if tail {
            TailRelay::new("db", proxied, publisher)
                .with_lease_ttl(ttl)
                .run(std::future::pending())
                .await
        } else {
            Relay::new("db", proxied, publisher)
                .with_lease_ttl(ttl)
                .run(std::future::pending())
                .await
        }
    });

    write_history(&direct, 4, 20).await;
    eventually(20, "first events applied", || async {
        applied(&tally).await == expected(4, 20)
    })
    .await;

    proxy.cut().await;
    write_history(&direct, 4, 20).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_ne!(
        applied(&tally).await,
        expected(4, 40),
        "published while the database was unreachable?"
    );
    proxy.restore();
    write_history(&direct, 4, 10).await;
    eventually(30, "everything applied after the outage", || async {
        applied(&tally).await == expected(4, 50)
    })
    .await;
    assert!(!relay.is_finished(), "the relay gave up: {:?}", relay.await);
    relay.abort();
    consuming.abort();
    delete_stream(&options).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_relay_resumes_after_the_database_was_unreachable() {
    outage(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tailing_relay_resumes_after_the_database_was_unreachable() {
    outage(true).await;
}

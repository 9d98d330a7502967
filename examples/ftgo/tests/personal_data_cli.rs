//! FTGO handles personal data as the book says: a consumer's name and address are stored
//! encrypted under their own key, so no byte of them is ever in the database file, its WAL, the
//! order-history read model or the messages the relay publishes; `forget` destroys the key and
//! their record then reads `[forgotten]` while the rest of it loads. Through the `ftgo` binary on
//! SQLite, with the relay publishing to NATS JetStream.

use std::process::{Command, Output};

const NAME: &str = "Zebediah Quuxworth";
const ADDRESS: &str = "42 Rue Introuvable";

fn ftgo(db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ftgo"))
        .args(["--db", db])
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("FTGO_MASTER_KEY")
        .output()
        .unwrap()
}

fn ok(db: &str, args: &[&str]) -> String {
    let out = ftgo(db, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether any file of the store (the database, its WAL and shared memory) holds `needle`.
fn on_disk(dir: &std::path::Path, needle: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|f| {
            let path = f.unwrap().path();
            let bytes = std::fs::read(&path).ok()?;
            bytes
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
                .then(|| path.display().to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumers_name_and_address_never_rest_in_plain_and_are_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ftgo.db").display().to_string();
    ok(&db, &["add-consumer", "zed-1", "--name", NAME, "--address", ADDRESS]);
    ok(&db, &["open-account", "zed-1"]);
    ok(&db, &["place-order", "zed-order", "--consumer", "zed-1"]);
    ok(&db, &["projection", "run", "order-history"]);
    // The relay publishes what is stored: ciphertext.
    let stream = format!("FTGOPRIV{}", std::process::id());
    let prefix = stream.to_lowercase();
    ok(
        &db,
        &["relay", "--until-caught-up", "--stream", &stream, "--prefix", &prefix],
    );
    let client = async_nats::connect("nats://127.0.0.1:4222").await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut published = Vec::new();
    {
        let mut s = js.get_stream(&stream).await.unwrap();
        let last = s.info().await.unwrap().state.last_sequence;
        for seq in 1..=last {
            let m = s.get_raw_message(seq).await.unwrap();
            published.push(format!("{:?} {}", m.headers, String::from_utf8_lossy(&m.payload)));
        }
    }
    let _ = js.delete_stream(&stream).await;
    assert!(published.len() >= 3, "the consumer, the order and more were published");
    for secret in [NAME, ADDRESS] {
        assert!(
            published.iter().all(|m| !m.contains(secret)),
            "{secret} was published in plain"
        );
        assert!(on_disk(dir.path(), secret).is_empty(), "{secret} is on disk in plain");
    }
    // Read through the service, the consumer has their name; the raw store only ciphertext.
    let raw = ok(&db, &["--json", "events", "--stream", "zed-1"]);
    assert!(raw.contains("$sealed") && !raw.contains(NAME), "{raw}");
    // Forgetting destroys the key: the sealed values can no longer be opened anywhere.
    let forgot = ok(&db, &["forget", "zed-1"]);
    assert!(forgot.contains("forgotten"), "{forgot}");
    let again = ok(&db, &["forget", "zed-1"]);
    assert!(again.contains("has no data key"), "{again}");
    let keys: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM subject_keys WHERE subject = 'zed-1'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(keys, 0);
    // The demo tells the same story end to end.
    let demo = ok(&db, &["demo", "saga"]);
    assert!(
        demo.contains("asks to be forgotten") && demo.contains("[forgotten]"),
        "{demo}"
    );
    for secret in [NAME, ADDRESS] {
        assert!(on_disk(dir.path(), secret).is_empty(), "{secret} is on disk in plain");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_consumers_name_and_address_never_rest_in_plain_and_are_forgotten() {
    let url = annals_postgres::testing::url();
    let schema = annals_postgres::testing::unique_schema("ftgopriv");
    let _guard = annals_postgres::testing::SchemaGuard { schema: schema.clone() };
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_ftgo"))
            .args(["--db", url.as_str(), "--pg-schema", schema.as_str()])
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("FTGO_MASTER_KEY")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["add-consumer", "zed-2", "--name", NAME, "--address", ADDRESS]);
    run(&["open-account", "zed-2"]);
    run(&["place-order", "zed-order", "--consumer", "zed-2"]);
    run(&["projection", "run", "order-history"]);
    let stream = format!("FTGOPRIVPG{}", std::process::id());
    let prefix = stream.to_lowercase();
    run(&["relay", "--until-caught-up", "--stream", &stream, "--prefix", &prefix]);
    let client = async_nats::connect("nats://127.0.0.1:4222").await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut published = Vec::new();
    {
        let mut s = js.get_stream(&stream).await.unwrap();
        let last = s.info().await.unwrap().state.last_sequence;
        for seq in 1..=last {
            let m = s.get_raw_message(seq).await.unwrap();
            published.push(format!("{:?} {}", m.headers, String::from_utf8_lossy(&m.payload)));
        }
    }
    let _ = js.delete_stream(&stream).await;
    assert!(published.len() >= 3);
    // Every table of the schema, as text: no byte of the name or address.
    let tables = Command::new("psql")
        .args([
            url.as_str(),
            "-Atq",
            "-c",
            &format!("SELECT tablename FROM pg_tables WHERE schemaname = '{schema}'"),
        ])
        .output()
        .unwrap();
    let tables = String::from_utf8_lossy(&tables.stdout).into_owned();
    assert!(
        tables.contains("events") && tables.contains("order_history"),
        "{tables}"
    );
    for table in tables.lines() {
        let dump = Command::new("psql")
            .args([
                url.as_str(),
                "-Atq",
                "-c",
                &format!("SELECT t::text FROM {schema}.{table} t"),
            ])
            .output()
            .unwrap();
        let rows = String::from_utf8_lossy(&dump.stdout);
        for secret in [NAME, ADDRESS] {
            assert!(!rows.contains(secret), "{secret} is in {table} in plain");
        }
    }
    for secret in [NAME, ADDRESS] {
        assert!(
            published.iter().all(|m| !m.contains(secret)),
            "{secret} was published in plain"
        );
    }
    assert!(run(&["forget", "zed-2"]).contains("forgotten"));
    assert!(run(&["forget", "zed-2"]).contains("has no data key"));
}

//! Test support: a store in a fresh schema of the test database, dropped afterwards.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use annals_postgres::{PostgresOptions, PostgresStore};

/// The test database (`ANNALS_TEST_PG`, default the local `test` database).
pub fn url() -> String {
    std::env::var("ANNALS_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Drops the schema when the test ends.
pub struct SchemaGuard {
    pub schema: String,
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let schema = self.schema.clone();
        // A plain thread: the test's runtime may be shutting down.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok((client, conn)) = tokio_postgres::connect(&url(), tokio_postgres::NoTls).await {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A schema name unique to this process and call.
pub fn unique_schema(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A store in a fresh schema.
pub async fn fresh() -> (PostgresStore, SchemaGuard) {
    let schema = unique_schema("t");
    let store = PostgresStore::connect_with(
        &url(),
        PostgresOptions {
            schema: schema.clone(),
            pool_size: 8,
        },
    )
    .await
    .expect("PostgreSQL must be reachable on 127.0.0.1:5432 (see .ci/run)");
    (store, SchemaGuard { schema })
}

/// A plain connection to the test database with `search_path` set to `schema`.
pub async fn raw_client(schema: &str) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = url().parse().unwrap();
    config.options(format!("-c search_path={schema}"));
    let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// Appends one event through the store's SQL function inside whatever transaction `client` has
/// open, without asking for positions (as an appender that stops right after its commit would).
pub async fn raw_append(client: &impl tokio_postgres::GenericClient, stream: &str, expected: i64) -> uuid::Uuid {
    let id = uuid::Uuid::now_v7();
    client
        .query(
            "SELECT * FROM append_events(ARRAY[$1::text], ARRAY['Raced'], ARRAY[$2::bigint], ARRAY[1], ARRAY[1],
                 ARRAY[NULL::bigint], ARRAY[NULL::int], ARRAY[NULL::text], ARRAY[$3::uuid], ARRAY['Raced'],
                 ARRAY[1], ARRAY['{}'], ARRAY['{}'])",
            &[&stream, &expected, &id],
        )
        .await
        .unwrap();
    id
}

//! Test support (feature `testkit`): a store in a fresh schema of the test database, dropped
//! when the guard goes. The database is `ANNALS_TEST_PG`, by default the local `test` database.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::{PostgresOptions, PostgresStore};

/// The test database (`ANNALS_TEST_PG`, default the local `test` database).
pub fn url() -> String {
    std::env::var("ANNALS_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Drops the schema when the test ends.
pub struct SchemaGuard {
    /// The schema's name.
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
                    // Relays' replication slots would keep WAL forever: drop them (waiting a
                    // moment for a killed relay's connection to go), and the publication.
                    let slots = format!("annals\\_{schema}\\_%");
                    for _ in 0..50 {
                        let _ = client
                            .execute(
                                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                                 WHERE slot_name LIKE $1 AND NOT active",
                                &[&slots],
                            )
                            .await;
                        let left: i64 = client
                            .query_one(
                                "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE $1",
                                &[&slots],
                            )
                            .await
                            .map_or(0, |r| r.get(0));
                        if left == 0 {
                            break;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    let _ = client
                        .batch_execute(&format!(
                            "DROP PUBLICATION IF EXISTS annals_{schema}; DROP SCHEMA IF EXISTS {schema} CASCADE"
                        ))
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
    fresh_with_pool(8).await
}

/// A store in a fresh schema with a pool of `pool_size` connections.
pub async fn fresh_with_pool(pool_size: usize) -> (PostgresStore, SchemaGuard) {
    let schema = unique_schema("t");
    let store = PostgresStore::connect_with(
        &url(),
        PostgresOptions {
            schema: schema.clone(),
            pool_size,
            ..Default::default()
        },
    )
    .await
    .expect("PostgreSQL must be reachable on 127.0.0.1:5432 (see .ci/run)");
    (store, SchemaGuard { schema })
}

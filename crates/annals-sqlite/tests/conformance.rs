//! The conformance suite on the SQLite backend: each test gets a fresh database file.

use annals_sqlite::{SqliteOptions, SqliteStore, Synchronous};

async fn fresh() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions {
        synchronous: Synchronous::Normal,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(dir.path().join("annals.db"), options)
        .await
        .unwrap();
    (store, dir)
}

annals::conformance_tests!(fresh);

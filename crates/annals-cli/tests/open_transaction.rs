//! `annals status` on PostgreSQL names the oldest transaction open in the database: it keeps the
//! row versions written since it began, so appends to busy streams slow down until it ends.

use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_names_the_oldest_open_transaction() {
    let url = annals_postgres::testing::url();
    let schema = annals_postgres::testing::unique_schema("open_tx");
    let _guard = annals_postgres::testing::SchemaGuard { schema: schema.clone() };
    let store = annals_postgres::PostgresStore::connect_with(
        &url,
        annals_postgres::PostgresOptions {
            schema: schema.clone(),
            ..annals_postgres::PostgresOptions::default()
        },
    )
    .await
    .unwrap();
    let mut client = store.client().await.unwrap();
    let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    let tx = client.transaction().await.unwrap();
    tx.query_one("SELECT pg_current_xact_id()", &[]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let out = Command::new(env!("CARGO_BIN_EXE_annals"))
        .args(["--db", &url, "--pg-schema", &schema, "status", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let open = lines
        .iter()
        .find_map(|l| l.get("open_transaction"))
        .unwrap_or_else(|| panic!("no open transaction reported: {lines:?}"));
    // Ours, unless another one in this database is older still.
    let age = open["age_seconds"].as_f64().unwrap();
    assert!(age >= 0.2, "{open}");
    if open["pid"] == pid {
        assert_eq!(open["state"], "idle in transaction", "{open}");
        assert!(open["query"].as_str().unwrap().contains("pg_current_xact_id"), "{open}");
    }
    tx.rollback().await.unwrap();
}

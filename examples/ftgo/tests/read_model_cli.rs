//! A consumer gets past a row it cannot read: `ftgo projection run order-history` over an order
//! whose second event was damaged outside annals parks that event once (naming its stream and
//! version) and projects the rest; running it again finds nothing new. On SQLite and PostgreSQL.

use std::process::{Command, Output};

fn ftgo(db: &[String], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ftgo"))
        .args(db)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An order of three events, then `damage` run on the database by `sql`.
fn damaged_order(db: &[String], sql: impl Fn(&str)) {
    let items = r#"[{"menu_item_id":"m-7","name":"Vindaloo","price_cents":1250,"quantity":2}]"#;
    let created =
        format!(r#"{{"consumer_id":"consumer-1","line_items":{items},"restaurant_id":"ajanta","total_cents":2500}}"#);
    let revised = format!(r#"{{"line_items":{items},"total_cents":2500}}"#);
    for (event_type, data) in [
        ("OrderCreated", created.as_str()),
        ("OrderRevised", &revised),
        ("OrderApproved", "null"),
    ] {
        ok(&ftgo(
            db,
            &[
                "append",
                "order-9",
                "--type",
                event_type,
                "--data",
                data,
                "--stream-type",
                "Order",
            ],
        ));
    }
    ok(&ftgo(db, &["events"]));
    sql("UPDATE events SET metadata = '[1]' WHERE stream_id = 'order-9' AND version = 2");
}

fn parks_once(db: &[String]) {
    for _ in 0..2 {
        ok(&ftgo(db, &["projection", "run", "order-history"]));
    }
    let parked = ok(&ftgo(db, &["--json", "parked", "list"]));
    let rows: Vec<serde_json::Value> = parked.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 1, "parked once: {parked}");
    assert_eq!(
        (rows[0]["stream_id"].as_str(), rows[0]["version"].as_u64()),
        (Some("order-9"), Some(2))
    );
    assert!(
        rows[0]["error"].as_str().unwrap().contains("cannot be read"),
        "{parked}"
    );
    let orders = ok(&ftgo(db, &["--json", "orders"]));
    assert!(orders.contains("order-9"), "the rest is projected: {orders}");
}

#[test]
fn sqlite_a_projection_parks_a_damaged_event_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ftgo.db").display().to_string();
    let db = vec!["--db".to_owned(), path.clone()];
    damaged_order(&db, |sql| {
        rusqlite::Connection::open(&path).unwrap().execute(sql, []).unwrap();
    });
    parks_once(&db);
}

#[test]
fn postgres_a_projection_parks_a_damaged_event_and_goes_on() {
    let schema = annals_postgres::testing::unique_schema("readmodel");
    let _guard = annals_postgres::testing::SchemaGuard { schema: schema.clone() };
    let url = annals_postgres::testing::url();
    let db = vec!["--db".to_owned(), url.clone(), "--pg-schema".to_owned(), schema.clone()];
    damaged_order(&db, |sql| {
        let out = Command::new("psql")
            .args([url.as_str(), "-qc", &format!("SET search_path TO {schema}; {sql}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    });
    parks_once(&db);
}

//! A saga that ended `Failed` is visible: `annals status` counts and lists it, `annals saga list
//! --failed` finds it, and `annals saga show` tells its story.

use std::process::Command;
use std::time::Duration;

use annals::{Metadata, Repository, StreamId};
use annals_sqlite::SqliteStore;
use ftgo::create_order::saga_id;
use ftgo::in_process::{self, register_consumer, wait_for_end};
use ftgo::order::{LineItem, Order, OrderCommand};
use ftgo::services::OrderService;

fn annals(db: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ftgo"))
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_saga_shows_in_status_list_and_show() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ftgo.db");
    let store = SqliteStore::open(&path).await.unwrap();
    register_consumer(&store, "bob", "Bob", 50_000, 2_000).await.unwrap();
    let order = StreamId::new("order-7").unwrap();
    let lines = vec![LineItem::new("m-7", "Chicken Vindaloo", 4, 1_250)];
    OrderService::new(store.clone())
        .create_order(&order, "bob", "ajanta", lines, &Metadata::by("bob"))
        .await
        .unwrap();
    // Cancelled while the saga runs: the order will refuse the saga's RejectOrder.
    Repository::<Order, _>::new(store.clone())
        .execute(
            &order,
            &OrderCommand::Cancel { reason: "no".into() },
            &Metadata::by("bob"),
        )
        .await
        .unwrap();
    let services = in_process::spawn(&store);
    wait_for_end(&store, &saga_id("order-7").unwrap(), Duration::from_secs(20))
        .await
        .unwrap();
    services.stop().await.unwrap();

    let db = path.display().to_string();
    let status = annals(&db, &["status"]);
    assert!(
        status.contains("sagas: 1 (0 running, 0 succeeded, 0 compensated, 1 failed)"),
        "{status}"
    );
    assert!(
        status.contains("create-order~order-7") && status.contains("Failed"),
        "{status}"
    );
    let failed = annals(&db, &["saga", "list", "--failed"]);
    assert_eq!(failed.lines().count(), 1, "{failed}");
    let show = annals(&db, &["saga", "show", "create-order~order-7"]);
    assert!(show.contains("RejectOrder -> order (try 3)"), "{show}");
    assert!(
        show.contains("FAILED: compensation of step 1 (create order) failed 3 times"),
        "{show}"
    );
    assert!(annals(&db, &["saga", "list", "--running"]).is_empty());
}

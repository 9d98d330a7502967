//! The Order aggregate with given/when/then, and its life on the SQLite store.

use annals::testkit::given;
use annals::{Metadata, Repository, RepositoryError, SnapshotPolicy, StreamId};
use ftgo::order::{LineItem, Order, OrderCommand, OrderError, OrderEvent, OrderState};

fn lines() -> Vec<LineItem> {
    vec![LineItem::new("m-1", "Chicken Vindaloo", 2, 1_250)]
}

fn created() -> OrderEvent {
    OrderEvent::OrderCreated {
        consumer_id: "c-1".into(),
        restaurant_id: "r-1".into(),
        line_items: lines(),
        total_cents: 2_500,
    }
}

#[test]
fn create_places_a_pending_order() {
    let state = given::<Order>([])
        .when(OrderCommand::Create {
            consumer_id: "c-1".into(),
            restaurant_id: "r-1".into(),
            line_items: lines(),
        })
        .then([created()]);
    assert_eq!(state.state, OrderState::ApprovalPending);
    assert_eq!(state.total_cents, 2_500);
}

#[test]
fn create_refuses_small_and_empty_orders() {
    let create = |line_items| OrderCommand::Create {
        consumer_id: "c".into(),
        restaurant_id: "r".into(),
        line_items,
    };
    given::<Order>([])
        .when(create(vec![LineItem::new("m", "Naan", 1, 300)]))
        .then_error(|e| *e == OrderError::MinimumNotMet { total_cents: 300 });
    given::<Order>([])
        .when(create(vec![]))
        .then_error(|e| *e == OrderError::EmptyOrder);
    given::<Order>([created()])
        .when(create(lines()))
        .then_error(|e| *e == OrderError::AlreadyExists);
}

#[test]
fn approve_revise_cancel() {
    given::<Order>([created()])
        .when(OrderCommand::Approve)
        .then([OrderEvent::OrderApproved]);
    let revised = vec![LineItem::new("m-1", "Chicken Vindaloo", 3, 1_250)];
    given::<Order>([created(), OrderEvent::OrderApproved])
        .when(OrderCommand::Revise {
            line_items: revised.clone(),
        })
        .then([OrderEvent::OrderRevised {
            line_items: revised,
            total_cents: 3_750,
        }]);
    let state = given::<Order>([created(), OrderEvent::OrderApproved])
        .when(OrderCommand::Cancel {
            reason: "changed my mind".into(),
        })
        .then([OrderEvent::OrderCancelled {
            reason: "changed my mind".into(),
            consumer_id: "c-1".into(),
        }]);
    assert_eq!(state.state, OrderState::Cancelled);
}

#[test]
fn commands_out_of_order_are_refused() {
    given::<Order>([])
        .when(OrderCommand::Approve)
        .then_error(|e| *e == OrderError::NotFound);
    given::<Order>([
        created(),
        OrderEvent::OrderCancelled {
            reason: "x".into(),
            consumer_id: "c-1".into(),
        },
    ])
    .when(OrderCommand::Revise { line_items: lines() })
    .then_error(|e| {
        matches!(
            e,
            OrderError::InvalidState {
                command: "revise",
                state: OrderState::Cancelled
            }
        )
    });
    given::<Order>([created(), OrderEvent::OrderApproved])
        .when(OrderCommand::Approve)
        .then_error(|e| matches!(e, OrderError::InvalidState { command: "approve", .. }));
}

#[tokio::test]
async fn order_lifecycle_on_sqlite_with_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let store = annals_sqlite::SqliteStore::open(dir.path().join("ftgo.db"))
        .await
        .unwrap();
    let repo = Repository::<Order, _>::new(store).with_snapshots(SnapshotPolicy::EveryNEvents(2));
    let id = StreamId::new("order-1").unwrap();
    let by = Metadata::by("test");
    repo.execute(
        &id,
        &OrderCommand::Create {
            consumer_id: "c".into(),
            restaurant_id: "r".into(),
            line_items: lines(),
        },
        &by,
    )
    .await
    .unwrap();
    repo.execute(&id, &OrderCommand::Approve, &by).await.unwrap();
    repo.execute(&id, &OrderCommand::Cancel { reason: "late".into() }, &by)
        .await
        .unwrap();
    let err = repo.execute(&id, &OrderCommand::Approve, &by).await.unwrap_err();
    assert!(
        matches!(err, RepositoryError::Rejected(OrderError::InvalidState { .. })),
        "{err:?}"
    );
    let loaded = repo.load(&id).await.unwrap();
    assert_eq!(
        (loaded.state.state, loaded.version, loaded.from_snapshot),
        (OrderState::Cancelled, 3, Some(2))
    );
    assert_eq!(
        repo.load_at_version(&id, 2).await.unwrap().state.state,
        OrderState::Approved
    );
}

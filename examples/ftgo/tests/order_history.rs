//! The order-history read model on SQLite and PostgreSQL: it matches the aggregates, answers by
//! consumer with totals, rebuilds to the same rows, and parks an event it cannot read.

use std::time::Duration;

use annals::consume::{Consumer, DeadLetters, ErrorPolicy, Runner};
use annals::{EventStore, ExpectedVersion, NewEvent, Repository, StreamId};
use annals_postgres::projection::PgProjector;
use annals_sqlite::SqliteStore;
use annals_sqlite::projection::SqliteProjector;
use ftgo::order::{Order, OrderState};
use ftgo::order_history::{self, ConsumerOrders, OrderSummary};

const ORDERS: usize = 40;

async fn populate<S: EventStore>(store: &S) {
    for i in 0..ORDERS {
        let (id, events) = order_history::sample_order(i);
        store
            .append_to_stream(id, "Order", ExpectedVersion::NoStream, events)
            .await
            .unwrap();
    }
    // Events of another type are not the read model's business.
    store
        .append_to_stream(
            StreamId::new("kitchen-1").unwrap(),
            "Ticket",
            ExpectedVersion::Any,
            vec![NewEvent::from_value("TicketCreated", &serde_json::json!({}))],
        )
        .await
        .unwrap();
}

/// Every row agrees with the aggregate loaded from its events.
async fn check_against_aggregates<S: EventStore + Clone>(store: &S, all: &ConsumerOrders) {
    assert_eq!(all.orders.len(), ORDERS);
    let repo = Repository::<Order, S>::new(store.clone());
    for row in &all.orders {
        let loaded = repo.load(&StreamId::new(row.order_id.clone()).unwrap()).await.unwrap();
        let order = &loaded.state;
        assert_eq!(row.state, order.state, "{}", row.order_id);
        assert_eq!(row.total_cents, order.total_cents, "{}", row.order_id);
        assert_eq!(row.consumer_id, order.consumer_id);
        assert_eq!(
            row.events as u64, loaded.version,
            "each event applied once: {}",
            row.order_id
        );
    }
}

fn check_consumer(orders: &ConsumerOrders, consumer: &str) {
    assert!(!orders.orders.is_empty());
    assert!(orders.orders.iter().all(|o| o.consumer_id == consumer));
    let open: i64 = orders
        .orders
        .iter()
        .filter(|o| matches!(o.state, OrderState::ApprovalPending | OrderState::Approved))
        .map(|o| o.total_cents)
        .sum();
    assert_eq!(orders.open_total_cents, open);
}

fn unreadable_event() -> NewEvent {
    // An OrderApproved of a schema version the code has no upcaster for.
    NewEvent::from_value("OrderApproved", &serde_json::json!({})).with_schema_version(9)
}

/// What the scenario needs from a backend's projector.
trait ReadModel: Consumer {
    async fn reset_model(&self);
    async fn query(&self, consumer: Option<&'static str>) -> ConsumerOrders;
}

impl ReadModel for SqliteProjector<order_history::sqlite::OrderHistory> {
    async fn reset_model(&self) {
        self.reset().await.unwrap();
    }
    async fn query(&self, consumer: Option<&'static str>) -> ConsumerOrders {
        self.store()
            .read_with(move |c| order_history::sqlite::orders_of(c, consumer).map_err(annals::StoreError::backend))
            .await
            .unwrap()
    }
}

impl ReadModel for PgProjector<order_history::postgres::OrderHistory> {
    async fn reset_model(&self) {
        self.reset().await.unwrap();
    }
    async fn query(&self, consumer: Option<&'static str>) -> ConsumerOrders {
        let client = self.store().client().await.unwrap();
        order_history::postgres::orders_of(&**client, consumer).await.unwrap()
    }
}

/// The whole scenario, for any backend.
async fn scenario<S, C>(store: S, projector: C)
where
    S: EventStore + DeadLetters + Clone,
    C: ReadModel,
{
    let mut runner = Runner::new(store.clone(), projector).with_batch(16);
    let progress = runner.run_until_caught_up().await.unwrap();
    assert_eq!(progress.position, store.head_position().await.unwrap());
    let all = runner.consumer().query(None).await;
    check_against_aggregates(&store, &all).await;
    check_consumer(&runner.consumer().query(Some("consumer-3")).await, "consumer-3");

    runner.consumer().reset_model().await;
    assert!(
        runner.consumer().query(None).await.orders.is_empty(),
        "reset empties the model"
    );
    runner.run_until_caught_up().await.unwrap();
    let rebuilt: Vec<OrderSummary> = runner.consumer().query(None).await.orders;
    assert_eq!(rebuilt, all.orders, "a rebuild gives the same rows");

    // An event the model cannot read is parked; the model goes on.
    store
        .append_to_stream(
            StreamId::new("order-1").unwrap(),
            "Order",
            ExpectedVersion::Any,
            vec![unreadable_event()],
        )
        .await
        .unwrap();
    let (id, events) = order_history::sample_order(1000);
    store
        .append_to_stream(id, "Order", ExpectedVersion::NoStream, events)
        .await
        .unwrap();
    let mut runner = runner.with_policy(ErrorPolicy::park_after(2).with_backoff(Duration::from_millis(1)));
    let progress = runner.run_until_caught_up().await.unwrap();
    assert_eq!(progress.parked, 1);
    let parked = store.list_parked(Some(order_history::NAME)).await.unwrap();
    assert_eq!((parked[0].stream_id.as_str(), parked[0].attempts), ("order-1", 2));
    assert!(parked[0].error.contains("schema"), "{}", parked[0].error);
    assert_eq!(
        runner.consumer().query(None).await.orders.len(),
        ORDERS + 1,
        "the next order is projected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_read_model_matches_aggregates_and_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("ftgo.db")).await.unwrap();
    populate(&store).await;
    let projector = SqliteProjector::new(store.clone(), order_history::sqlite::OrderHistory)
        .await
        .unwrap();
    scenario(store, projector).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_read_model_matches_aggregates_and_rebuilds() {
    let (store, _guard) = annals_postgres::testing::fresh().await;
    populate(&store).await;
    let projector = PgProjector::new(store.clone(), order_history::postgres::OrderHistory)
        .await
        .unwrap();
    scenario(store, projector).await;
}

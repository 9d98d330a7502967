//! The Create Order saga end to end, in one process, on every backend: the services run as
//! subscriptions and talk only through events (commands and replies). Scenarios: the happy path,
//! a consumer who may not order, a declined card — and a saga started from an event handler,
//! whose redelivered trigger starts nothing.

use std::sync::Arc;
use std::time::Duration;

use annals::saga::{SagaInstance, SagaStatus};
use annals::{EventStore, MemoryStore, Metadata, ReadStream, Repository, StreamId};
use annals_sqlite::SqliteStore;
use ftgo::create_order::{CreateOrderData, CreateOrderSaga, account_id, saga_id, ticket_id};
use ftgo::in_process::{self, register_consumer, wait_for_end};
use ftgo::kitchen::{Ticket, TicketState};
use ftgo::order::{LineItem, Order, OrderState};
use ftgo::services::OrderService;

const WAIT: Duration = Duration::from_secs(20);

fn lines(quantity: u32) -> Vec<LineItem> {
    vec![LineItem::new("m-7", "Chicken Vindaloo", quantity, 1_250)]
}

async fn place<St: EventStore + Clone>(store: &St, order: &str, consumer: &str, quantity: u32) -> StreamId {
    let id = StreamId::new(order).unwrap();
    OrderService::new(store.clone())
        .create_order(&id, consumer, "ajanta", lines(quantity), &Metadata::by(consumer))
        .await
        .unwrap();
    id
}

async fn order_state<St: EventStore + Clone>(store: &St, id: &StreamId) -> OrderState {
    Repository::<Order, _>::new(store.clone())
        .load(id)
        .await
        .unwrap()
        .state
        .state
}

async fn ticket<St: EventStore + Clone>(store: &St, order: &str) -> (TicketState, u64) {
    let loaded = Repository::<Ticket, _>::new(store.clone())
        .load(&ticket_id(order).unwrap())
        .await
        .unwrap();
    (loaded.state.state, loaded.version)
}

fn commands_sent(events: &[annals::RecordedEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event_type == "CommandIssued")
        .map(|e| e.payload_value().unwrap()["command_type"].as_str().unwrap().to_owned())
        .collect()
}

async fn scenarios<St: ftgo::in_process::ServiceStore>(store: St) {
    register_consumer(&store, "alice", "Alice", 50_000, 50_000)
        .await
        .unwrap();
    register_consumer(&store, "bob", "Bob", 50_000, 2_000).await.unwrap();
    let services = in_process::spawn(&store);

    // Happy path: approved, ticket confirmed, card charged once.
    let happy = place(&store, "order-1", "alice", 2).await;
    // Created pending (version 1), whatever the saga has done since: on the memory store it may
    // have ended already, so only the first version is certain here.
    let created = Repository::<Order, _>::new(store.clone())
        .load_at_version(&happy, 1)
        .await
        .unwrap();
    assert_eq!(created.state.state, OrderState::ApprovalPending);
    let saga = wait_for_end(&store, &saga_id("order-1").unwrap(), WAIT).await.unwrap();
    assert_eq!(saga.status, SagaStatus::Succeeded);
    assert_eq!(saga.data.as_ref().unwrap().ticket_id.as_deref(), Some("ticket~order-1"));
    assert_eq!(order_state(&store, &happy).await, OrderState::Approved);
    assert_eq!(ticket(&store, "order-1").await, (TicketState::AwaitingAcceptance, 2));
    let saga_events = store
        .read_stream(&saga_id("order-1").unwrap(), ReadStream::all())
        .await
        .unwrap();
    assert_eq!(
        commands_sent(&saga_events),
        [
            "ValidateOrderByConsumer",
            "CreateTicket",
            "AuthorizeCard",
            "ConfirmCreateTicket",
            "ApproveOrder"
        ]
    );
    assert_eq!(saga_events.last().unwrap().event_type, "SagaCompleted");

    // The consumer may not place it (unknown consumer): the order is rejected, no ticket.
    let unknown = place(&store, "order-2", "mallory", 2).await;
    let saga = wait_for_end(&store, &saga_id("order-2").unwrap(), WAIT).await.unwrap();
    assert_eq!(saga.status, SagaStatus::Compensated);
    assert_eq!(saga.failure.as_deref(), Some("no such consumer"));
    assert_eq!(order_state(&store, &unknown).await, OrderState::Rejected);
    assert_eq!(ticket(&store, "order-2").await, (TicketState::New, 0));

    // The card is declined: the ticket is cancelled, then the order rejected.
    let declined = place(&store, "order-3", "bob", 4).await;
    let saga = wait_for_end(&store, &saga_id("order-3").unwrap(), WAIT).await.unwrap();
    assert_eq!(saga.status, SagaStatus::Compensated);
    assert!(
        saga.failure.as_deref().unwrap().starts_with("card declined"),
        "{saga:?}"
    );
    assert_eq!(order_state(&store, &declined).await, OrderState::Rejected);
    assert_eq!(ticket(&store, "order-3").await, (TicketState::Cancelled, 2));
    let saga_events = store
        .read_stream(&saga_id("order-3").unwrap(), ReadStream::all())
        .await
        .unwrap();
    assert_eq!(
        commands_sent(&saga_events),
        [
            "ValidateOrderByConsumer",
            "CreateTicket",
            "AuthorizeCard",
            "CancelCreateTicket",
            "RejectOrder"
        ],
        "compensations run last-first"
    );
    let account = Repository::<ftgo::accounting::Account, _>::new(store.clone())
        .load(&account_id("bob").unwrap())
        .await
        .unwrap();
    assert!(account.state.authorized.is_empty());

    // A second order with an id in use is refused (the order as stored says why: creating it
    // as new conflicted), and changes nothing.
    let head = store.head_position().await.unwrap();
    let again = OrderService::new(store.clone())
        .create_order(&happy, "alice", "ajanta", lines(1), &Metadata::by("alice"))
        .await;
    assert!(
        matches!(
            again,
            Err(ftgo::services::CreateOrderError::Order(
                annals::RepositoryError::Rejected(ftgo::order::OrderError::AlreadyExists)
            ))
        ),
        "{again:?}"
    );
    assert_eq!(store.head_position().await.unwrap(), head);

    services.stop().await.unwrap();
    assert!(store.list_parked(None).await.unwrap().is_empty(), "nothing was parked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_order_saga_in_memory() {
    scenarios(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_order_saga_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenarios(SqliteStore::open(dir.path().join("ftgo.db")).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_order_saga_on_postgres() {
    let (store, _guard) = annals_postgres::testing::fresh().await;
    scenarios(store).await;
}

/// A saga started from an event handler derives its id from the triggering event, so the
/// handler running twice for the same event starts one saga.
#[tokio::test]
async fn a_redelivered_trigger_starts_no_second_saga() {
    let store = Arc::new(MemoryStore::new());
    let orders = Repository::<Order, _>::new(Arc::clone(&store));
    let id = StreamId::new("order-9").unwrap();
    orders
        .execute(
            &id,
            &ftgo::order::OrderCommand::Create {
                consumer_id: "alice".into(),
                restaurant_id: "ajanta".into(),
                line_items: lines(2),
            },
            &Metadata::by("alice"),
        )
        .await
        .unwrap();
    let created = store.read_stream(&id, ReadStream::all()).await.unwrap().remove(0);
    let orchestrator = annals::saga::Orchestrator::<CreateOrderSaga, _>::new(Arc::clone(&store));
    let start = |event: annals::RecordedEvent| {
        let orchestrator = orchestrator.clone();
        async move {
            let order: ftgo::order::OrderEvent = annals::decode(&event).unwrap();
            let ftgo::order::OrderEvent::OrderCreated {
                consumer_id,
                restaurant_id,
                line_items,
                total_cents,
            } = order
            else {
                panic!("not a creation")
            };
            let data = CreateOrderData {
                order_id: event.stream_id.to_string(),
                consumer_id,
                restaurant_id,
                line_items,
                total_cents,
                ticket_id: None,
            };
            let meta = Metadata::by("order-service").caused_by(event.event_id);
            orchestrator
                .start(&saga_id(event.stream_id.as_str()).unwrap(), data, &meta)
                .await
                .unwrap()
        }
    };
    assert!(start(created.clone()).await, "the first delivery starts the saga");
    assert!(!start(created).await, "the redelivery finds it started");
    let events = store
        .read_stream(&saga_id("order-9").unwrap(), ReadStream::all())
        .await
        .unwrap();
    let started = events.iter().filter(|e| e.event_type == "SagaStarted").count();
    assert_eq!((started, commands_sent(&events).len()), (1, 1));
    let saga: SagaInstance<CreateOrderSaga> = Repository::new(Arc::clone(&store))
        .load(&saga_id("order-9").unwrap())
        .await
        .unwrap()
        .state;
    assert!(matches!(saga.status, SagaStatus::Running));
}

/// A compensation that keeps failing is sent again, then the saga ends `Failed`, visible in its
/// summary (what `annals status` and `annals saga show` print): the consumer cancelled the order
/// while the saga ran, so the order refuses `RejectOrder` after the card is declined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compensation_that_keeps_failing_leaves_the_saga_failed_and_visible() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("ftgo.db")).await.unwrap();
    register_consumer(&store, "bob", "Bob", 50_000, 2_000).await.unwrap();
    let order = place(&store, "order-5", "bob", 4).await;
    Repository::<Order, _>::new(store.clone())
        .execute(
            &order,
            &ftgo::order::OrderCommand::Cancel {
                reason: "changed my mind".into(),
            },
            &Metadata::by("bob"),
        )
        .await
        .unwrap();
    let services = in_process::spawn(&store);
    let saga = wait_for_end(&store, &saga_id("order-5").unwrap(), WAIT).await.unwrap();
    services.stop().await.unwrap();
    assert_eq!(saga.status, SagaStatus::Failed);
    let events = store
        .read_stream(&saga_id("order-5").unwrap(), ReadStream::all())
        .await
        .unwrap();
    assert_eq!(
        commands_sent(&events),
        [
            "ValidateOrderByConsumer",
            "CreateTicket",
            "AuthorizeCard",
            "CancelCreateTicket",
            "RejectOrder",
            "RejectOrder",
            "RejectOrder"
        ],
        "the failing compensation is sent COMPENSATION_ATTEMPTS times"
    );
    assert_eq!(ticket(&store, "order-5").await.0, TicketState::Cancelled);
    let summary = annals::saga::summarize(&events).unwrap();
    assert_eq!(summary.status, SagaStatus::Failed);
    let why = summary.failure.unwrap();
    assert!(
        why.contains("create order") && why.contains("cannot reject an order that is Cancelled"),
        "{why}"
    );
    assert!(summary.timeline.iter().any(|e| e.text.contains("(try 3)")));
}

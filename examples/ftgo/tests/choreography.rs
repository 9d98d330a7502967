//! The cancel-order choreography on every backend: a consumer cancels an approved order; the
//! Kitchen and Accounting services react through subscriptions alone — the ticket is cancelled,
//! the card authorization given back — and a redelivered `OrderCancelled` changes nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use annals::consume::EventHandler;
use annals::saga::SagaStatus;
use annals::{MemoryStore, Metadata, ReadStream, Repository, StreamId};
use annals_sqlite::SqliteStore;
use ftgo::accounting::Account;
use ftgo::create_order::{account_id, saga_id, ticket_id};
use ftgo::in_process::{self, register_consumer, wait_for_end};
use ftgo::kitchen::{Ticket, TicketState};
use ftgo::order::{LineItem, Order, OrderCommand};
use ftgo::services::OrderService;

async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f().await {
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn cancel_flow<St: ftgo::in_process::ServiceStore>(store: St) {
    register_consumer(&store, "alice", "Alice", 50_000, 50_000)
        .await
        .unwrap();
    let sagas = in_process::spawn(&store);
    let reactions = ftgo::choreography::spawn(&store);
    let order = StreamId::new("order-c1").unwrap();
    OrderService::new(store.clone())
        .create_order(
            &order,
            "alice",
            "ajanta",
            vec![LineItem::new("m-7", "Chicken Vindaloo", 2, 1_250)],
            &Metadata::by("alice"),
        )
        .await
        .unwrap();
    let saga = wait_for_end(&store, &saga_id("order-c1").unwrap(), Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(saga.status, SagaStatus::Succeeded);
    let accounts = Repository::<Account, _>::new(store.clone());
    let tickets = Repository::<Ticket, _>::new(store.clone());
    let alice = account_id("alice").unwrap();
    assert_eq!(accounts.load(&alice).await.unwrap().state.authorized.len(), 1);

    Repository::<Order, _>::new(store.clone())
        .execute(
            &order,
            &OrderCommand::Cancel {
                reason: "changed my mind".into(),
            },
            &Metadata::by("alice"),
        )
        .await
        .unwrap();
    let ticket = ticket_id("order-c1").unwrap();
    eventually("the ticket is cancelled and the card given back", || {
        let (tickets, accounts, ticket, alice) = (&tickets, &accounts, &ticket, &alice);
        async move {
            tickets.load(ticket).await.unwrap().state.state == TicketState::Cancelled
                && accounts.load(alice).await.unwrap().state.authorized.is_empty()
        }
    })
    .await;
    reactions.stop().await.unwrap();
    sagas.stop().await.unwrap();

    // The same event once more, straight to the handlers: nothing new is stored.
    let cancelled = store
        .read_stream(&order, ReadStream::all())
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.event_type == "OrderCancelled")
        .unwrap();
    let (ticket_before, account_before) = (
        store.stream_version(&ticket).await.unwrap(),
        store.stream_version(&alice).await.unwrap(),
    );
    let (mut kitchen, mut accounting) = ftgo::choreography::handlers(&store);
    kitchen.handle(&cancelled).await.unwrap();
    accounting.handle(&cancelled).await.unwrap();
    assert_eq!(store.stream_version(&ticket).await.unwrap(), ticket_before);
    assert_eq!(store.stream_version(&alice).await.unwrap(), account_before);
    let reversed = store
        .read_stream(&alice, ReadStream::all())
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event_type == "AuthorizationReversed")
        .count();
    assert_eq!(reversed, 1);
    assert!(store.list_parked(None).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_order_choreography_in_memory() {
    cancel_flow(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_order_choreography_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    cancel_flow(SqliteStore::open(dir.path().join("ftgo.db")).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_order_choreography_on_postgres() {
    let (store, _guard) = annals_postgres::testing::fresh().await;
    cancel_flow(store).await;
}

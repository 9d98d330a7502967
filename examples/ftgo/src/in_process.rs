//! The whole FTGO system in one process: every service's participant and the Create Order
//! saga's orchestrator run as subscriptions on one store (the embedded default needs no broker).

use std::sync::Arc;
use std::time::{Duration, Instant};

use annals::consume::{Checkpoints, ConsumeError, DeadLetters, EventHandler, Inbox, Progress, Runner, Subscription};
use annals::privacy::AppendWithKeys;
use annals::saga::{ParticipantHandler, REPLY_STREAM_TYPE, SAGA_STREAM_TYPE, SagaInstance};
use annals::{EventStore, Metadata, Repository, StreamId};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::accounting::{Account, AccountCommand};
use crate::consumer::ConsumerCommand;
use crate::create_order::{CreateOrderSaga, account_id};
use crate::services::{AccountingService, ConsumerService, KitchenService, OrderService};

/// A store every service can run on.
pub trait ServiceStore: EventStore + Inbox + Checkpoints + DeadLetters + AppendWithKeys + Clone + 'static {}
impl<T: EventStore + Inbox + Checkpoints + DeadLetters + AppendWithKeys + Clone + 'static> ServiceStore for T {}

/// The running services; [`Services::stop`] ends them.
pub struct Services {
    stops: Vec<watch::Sender<bool>>,
    tasks: Vec<(String, JoinHandle<Result<Progress, ConsumeError>>)>,
}

/// Sagas each service works on at once (each saga's messages stay in order in one lane).
const LANES: usize = 16;
/// How often a busy service stores its checkpoint (handlers are idempotent: a restart repeats
/// at most this much).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

fn spawn_runner<St: ServiceStore, H: EventHandler + Clone + 'static>(
    store: &St,
    name: &str,
    stream_type: &str,
    handler: H,
    stop: &watch::Sender<bool>,
) -> (String, JoinHandle<Result<Progress, ConsumeError>>) {
    let subscription = Subscription::new(name, store.clone(), handler)
        .with_lanes(LANES)
        .with_checkpoint_every(CHECKPOINT_EVERY);
    let mut runner = Runner::new(store.clone(), subscription).only_stream_types([stream_type]);
    let mut stopped = stop.subscribe();
    let task = tokio::spawn(async move {
        runner
            .run(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
    });
    (name.to_owned(), task)
}

/// Starts the Order, Consumer, Kitchen and Accounting services' participants and the Create
/// Order saga's orchestrator, each a subscription named `ftgo.<service>` on `store`.
pub fn spawn<St: ServiceStore>(store: &St) -> Services {
    spawn_with_orders(store, Arc::new(OrderService::new(store.clone())))
}

/// [`spawn`], with the `OrderService` that orders are placed through in this process: one
/// instance, so its caches hold the orders and sagas it starts when their replies arrive.
pub fn spawn_with_orders<St: ServiceStore>(store: &St, order: Arc<OrderService<St>>) -> Services {
    let (stop, _) = watch::channel(false);
    let orchestrator = order.sagas().clone();
    let tasks = vec![
        spawn_runner(store, "ftgo.create-order-saga", REPLY_STREAM_TYPE, orchestrator, &stop),
        spawn_runner(
            store,
            "ftgo.order",
            SAGA_STREAM_TYPE,
            ParticipantHandler::new(store.clone(), order),
            &stop,
        ),
        spawn_runner(
            store,
            "ftgo.consumer",
            SAGA_STREAM_TYPE,
            ParticipantHandler::new(store.clone(), ConsumerService::new(store.clone())),
            &stop,
        ),
        spawn_runner(
            store,
            "ftgo.kitchen",
            SAGA_STREAM_TYPE,
            ParticipantHandler::new(store.clone(), KitchenService::new(store.clone())),
            &stop,
        ),
        spawn_runner(
            store,
            "ftgo.accounting",
            SAGA_STREAM_TYPE,
            ParticipantHandler::new(store.clone(), AccountingService::new(store.clone())),
            &stop,
        ),
    ];
    Services {
        stops: vec![stop],
        tasks,
    }
}

/// Runs `handler` as the subscription `name` on `store`, reading streams of `stream_type`,
/// with the services' lanes and checkpointing.
pub fn spawn_runners<St: ServiceStore, H: EventHandler + Clone + 'static>(
    store: &St,
    name: &str,
    stream_type: &str,
    handler: H,
) -> Services {
    let (stop, _) = watch::channel(false);
    let task = spawn_runner(store, name, stream_type, handler, &stop);
    Services {
        stops: vec![stop],
        tasks: vec![task],
    }
}

impl Services {
    /// Adds `other`'s subscriptions to these (one stop ends all).
    pub fn merge(&mut self, other: Services) {
        self.stops.extend(other.stops);
        self.tasks.extend(other.tasks);
    }

    /// Stops every service and waits for them; the first error any of them stopped with.
    pub async fn stop(self) -> Result<(), String> {
        for stop in &self.stops {
            let _ = stop.send(true);
        }
        let mut first = Ok(());
        for (name, task) in self.tasks {
            let outcome = match task.await {
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => format!("{name} stopped: {e}"),
                Err(e) => format!("{name} panicked: {e}"),
            };
            if first.is_ok() {
                first = Err(outcome);
            }
        }
        first
    }
}

/// Registers consumer `consumer_id` with the Consumer Service (order limit; their name sealed as
/// personal data) and opens their account with the Accounting Service (card limit per charge).
pub async fn register_consumer<St: AppendWithKeys + Clone>(
    store: &St,
    consumer_id: &str,
    name: &str,
    order_limit_cents: i64,
    card_limit_cents: i64,
) -> Result<(), annals::error::BoxError> {
    let meta = Metadata::by("ftgo-admin");
    ConsumerService::new(store.clone())
        .consumers()
        .execute(
            &StreamId::new(consumer_id)?,
            &ConsumerCommand::Register {
                consumer_id: consumer_id.into(),
                name: name.into(),
                address: String::new(),
                order_limit_cents,
            },
            &meta,
        )
        .await?;
    Repository::<Account, _>::new(store.clone())
        .execute(
            &account_id(consumer_id)?,
            &AccountCommand::Open { card_limit_cents },
            &meta,
        )
        .await?;
    Ok(())
}

/// Waits until saga `saga_id` has ended (succeeded, compensated or failed), at most `timeout`.
pub async fn wait_for_end<St: EventStore + Clone>(
    store: &St,
    saga_id: &StreamId,
    timeout: Duration,
) -> Result<SagaInstance<CreateOrderSaga>, annals::error::BoxError> {
    let repo = Repository::<SagaInstance<CreateOrderSaga>, _>::new(store.clone());
    let deadline = Instant::now() + timeout;
    loop {
        let head = store.head_position().await?;
        let saga = repo.load(saga_id).await?.state;
        if saga.status.is_final() {
            return Ok(saga);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("saga {saga_id} has not ended after {timeout:?}: {:?}", saga.status).into());
        }
        store.wait_for_new(head, left.min(Duration::from_millis(200))).await?;
    }
}

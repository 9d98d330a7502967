//! One FTGO service over NATS JetStream: its relay publishes its store's events (commands and
//! replies included) and its durable consumers feed its participant (saga commands) and, for the
//! order service, the Create Order saga's orchestrator (replies). `ftgo serve` runs this
//! in its own process, one per service, each on its own store.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use annals::error::BoxError;
use annals::relay::{Leases, Relay};
use annals::saga::{COMMAND_EVENT, ParticipantHandler, REPLY_EVENT, REPLY_STREAM_TYPE, SAGA_STREAM_TYPE};
use annals_nats::{ConsumerOptions, NatsConsumer, NatsOptions, NatsPublisher};
use tokio::task::JoinSet;

use crate::in_process::ServiceStore;
use crate::services::{AccountingService, ConsumerService, KitchenService, OrderService};

/// A service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// Orders, and the Create Order saga's orchestrator.
    Order,
    /// Consumers.
    Consumer,
    /// Tickets.
    Kitchen,
    /// Accounts.
    Accounting,
}

impl std::str::FromStr for Service {
    type Err = String;
    fn from_str(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| format!("no service `{name}`: order, consumer, kitchen or accounting"))
    }
}

impl Service {
    /// Every service.
    pub const ALL: [Service; 4] = [Self::Order, Self::Consumer, Self::Kitchen, Self::Accounting];

    /// Its name, e.g. `kitchen`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Order => "order",
            Self::Consumer => "consumer",
            Self::Kitchen => "kitchen",
            Self::Accounting => "accounting",
        }
    }
}

fn consumer_options(durable: String, stream_type: &str, event_type: &str) -> ConsumerOptions {
    let mut o = ConsumerOptions::new(durable);
    o.stream_types = vec![stream_type.to_owned()];
    o.event_types = vec![event_type.to_owned()];
    o
}

/// Runs `service` on `store`: its relay (`ftgo-<service>`, lease `lease`) and its consumers
/// (durables `ftgo-<service>` and, for the order service, `ftgo-create-order-saga`), until the
/// future `stop()` makes completes; an error if a part stopped on its own.
pub async fn serve<St, F, Fut>(
    store: St,
    service: Service,
    options: NatsOptions,
    lease: Duration,
    stop: F,
) -> Result<(), BoxError>
where
    St: ServiceStore + Leases + Sync,
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    run(store, service, None, options, lease, stop).await
}

/// [`serve`] for the order service, with the `OrderService` the process also places orders
/// through (its API, say): one instance, so the saga it starts and the order it creates are in
/// its caches when the saga's replies and its `ApproveOrder` arrive.
pub async fn serve_orders<St, F, Fut>(
    store: St,
    orders: Arc<OrderService<St>>,
    options: NatsOptions,
    lease: Duration,
    stop: F,
) -> Result<(), BoxError>
where
    St: ServiceStore + Leases + Sync,
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    run(store, Service::Order, Some(orders), options, lease, stop).await
}

async fn run<St, F, Fut>(
    store: St,
    service: Service,
    orders: Option<Arc<OrderService<St>>>,
    options: NatsOptions,
    lease: Duration,
    stop: F,
) -> Result<(), BoxError>
where
    St: ServiceStore + Leases + Sync,
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let name = service.name();
    let js = annals_nats::connect(&options).await?;
    let publisher = NatsPublisher::new(js.clone(), &options);
    let mut tasks: JoinSet<Result<&'static str, BoxError>> = JoinSet::new();
    let mut relay = Relay::new(format!("ftgo-{name}"), store.clone(), publisher).with_lease_ttl(lease);
    let until = stop();
    tasks.spawn(async move {
        relay.run(until).await?;
        Ok("relay")
    });
    let commands = consumer_options(format!("ftgo-{name}"), SAGA_STREAM_TYPE, COMMAND_EVENT);
    macro_rules! participant {
        ($service:expr) => {{
            let handler = ParticipantHandler::new(store.clone(), $service);
            let consumer = NatsConsumer::new(js.clone(), options.clone(), commands, handler, store.clone());
            let until = stop();
            tasks.spawn(async move {
                consumer.run(until).await?;
                Ok("participant")
            });
        }};
    }
    match service {
        Service::Order => {
            let orders = orders.unwrap_or_else(|| Arc::new(OrderService::new(store.clone())));
            let replies = consumer_options("ftgo-create-order-saga".into(), REPLY_STREAM_TYPE, REPLY_EVENT);
            let orchestrator = orders.sagas().clone();
            let consumer = NatsConsumer::new(js.clone(), options.clone(), replies, orchestrator, store.clone());
            let until = stop();
            tasks.spawn(async move {
                consumer.run(until).await?;
                Ok("orchestrator")
            });
            participant!(orders);
        }
        Service::Consumer => participant!(ConsumerService::new(store.clone())),
        Service::Kitchen => participant!(KitchenService::new(store.clone())),
        Service::Accounting => participant!(AccountingService::new(store.clone())),
    }
    let mut outcome: Result<(), BoxError> = tokio::select! {
        // First: on a stop, the parts end too, and that is not a failure.
        biased;
        () = stop() => Ok(()),
        Some(done) = tasks.join_next() => Err(match done {
            Ok(Ok(part)) => format!("the {name} service's {part} stopped").into(),
            Ok(Err(e)) => e,
            Err(e) => format!("a task of the {name} service panicked: {e}").into(),
        }),
    };
    if outcome.is_err() {
        tasks.abort_all();
    }
    while let Some(done) = tasks.join_next().await {
        if let (Ok(()), Ok(Err(e))) = (&outcome, done) {
            outcome = Err(e);
        }
    }
    outcome
}

//! The four FTGO services as saga participants, and the Order Service's entry point that creates
//! an order and starts its Create Order saga in one transaction.

use annals::error::BoxError;
use annals::privacy::{AppendWithKeys, Shredding};
use annals::saga::{CommandMessage, Handled, Orchestrator, Participant, ReplyBody, SagaRunError};
use annals::{AppendOutcome, EventStore, ExpectedVersion, Metadata, Repository, RepositoryError, StreamId};

use crate::accounting::{Account, AccountCommand};
use crate::consumer::{Consumer, ConsumerCommand};
use crate::create_order::{
    ACCOUNTING, ApproveOrder, AuthorizeCard, CONSUMER, CancelCreateTicket, ConfirmCreateTicket, CreateOrderData,
    CreateOrderSaga, CreateTicket, CreateTicketReply, KITCHEN, ORDER, RejectOrder, ValidateOrderByConsumer, account_id,
    saga_id, ticket_id,
};
use crate::order::{LineItem, Order, OrderCommand, OrderError};

/// Aggregates each service keeps in its repository's cache: a service is the main writer of its
/// aggregates, so a saga's later steps on them (approve an order, confirm a ticket, charge an
/// account again) need no load.
const AGGREGATES_CACHED: usize = 10_000;

fn unknown(service: &str, command: &CommandMessage) -> BoxError {
    format!("the {service} service has no command {}", command.command.command_type).into()
}

/// The Order Service: creates orders (starting their saga) and approves or rejects them.
pub struct OrderService<St> {
    orders: Repository<Order, St>,
    sagas: Orchestrator<CreateOrderSaga, St>,
}

/// Why an order could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateOrderError {
    /// The Order aggregate refused.
    #[error(transparent)]
    Order(#[from] RepositoryError<OrderError>),
    /// Starting the saga failed (an order id used before: its saga exists).
    #[error(transparent)]
    Saga(#[from] SagaRunError),
}

impl<St: EventStore + Clone> OrderService<St> {
    /// The Order Service on `store`.
    pub fn new(store: St) -> Self {
        Self {
            orders: Repository::new(store.clone()).with_cache(AGGREGATES_CACHED),
            sagas: Orchestrator::new(store),
        }
    }

    /// The orchestrator of the Create Order saga (its reply handler).
    pub fn sagas(&self) -> &Orchestrator<CreateOrderSaga, St> {
        &self.sagas
    }

    /// The orders.
    pub fn orders(&self) -> &Repository<Order, St> {
        &self.orders
    }

    /// Creates order `order_id` pending approval and starts its Create Order saga, in one
    /// transaction.
    pub async fn create_order(
        &self,
        order_id: &StreamId,
        consumer_id: &str,
        restaurant_id: &str,
        line_items: Vec<LineItem>,
        metadata: &Metadata,
    ) -> Result<AppendOutcome, CreateOrderError> {
        // One correlation id for the order, its saga and everything the saga causes.
        let mut metadata = metadata.clone();
        metadata.correlation_id = metadata.correlation_id.or_else(|| Some(uuid::Uuid::now_v7()));
        let metadata = &metadata;
        let command = OrderCommand::Create {
            consumer_id: consumer_id.into(),
            restaurant_id: restaurant_id.into(),
            line_items: line_items.clone(),
        };
        let saga = saga_id(order_id.as_str()).map_err(SagaRunError::from)?;
        // A new order (no read): if the id is taken, storing conflicts, and the order as stored
        // decides (and refuses).
        let mut decided = self.orders.decide_new(order_id, &command, metadata).await?;
        loop {
            let data = CreateOrderData {
                order_id: order_id.to_string(),
                consumer_id: consumer_id.into(),
                restaurant_id: restaurant_id.into(),
                total_cents: decided.state.total_cents,
                line_items: line_items.clone(),
                ticket_id: None,
            };
            let order = std::mem::take(&mut decided.append);
            let expected_new = order.as_ref().is_some_and(|a| a.expected == ExpectedVersion::NoStream);
            match self
                .sagas
                .start_with(&saga, data, metadata, order.into_iter().collect())
                .await
            {
                Ok(stored) => {
                    self.orders.stored(order_id, &decided);
                    return Ok(stored);
                }
                // The id is in use (the saga's, the order's, or both): ask the order as stored.
                Err(SagaRunError::AlreadyStarted { .. } | SagaRunError::Store(annals::StoreError::Conflict { .. }))
                    if expected_new =>
                {
                    decided = self.orders.decide(order_id, &command, metadata).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl<St: EventStore + Clone> Participant for OrderService<St> {
    fn channel(&self) -> &str {
        ORDER
    }

    async fn handle(&self, c: &CommandMessage) -> Result<Handled, BoxError> {
        let meta = c.caused("order-service");
        let (order_id, command) = if c.is::<ApproveOrder>() {
            (c.decode::<ApproveOrder>()?.order_id, OrderCommand::Approve)
        } else if c.is::<RejectOrder>() {
            let m = c.decode::<RejectOrder>()?;
            (m.order_id, OrderCommand::Reject { reason: m.reason })
        } else {
            return Err(unknown("order", c));
        };
        let id = StreamId::new(order_id)?;
        Handled::from_repository(
            &self.orders,
            &id,
            self.orders.decide(&id, &command, &meta).await,
            |_| ReplyBody::done(),
        )
    }
}

/// The Consumer Service. Its consumers' names and addresses are sealed in the store
/// ([`crate::privacy`]).
pub struct ConsumerService<St> {
    consumers: Repository<Consumer, Shredding<St, St>>,
}

impl<St: AppendWithKeys + Clone> ConsumerService<St> {
    /// The Consumer Service on `store`, personal fields sealed under [`crate::privacy`]'s master
    /// key.
    pub fn new(store: St) -> Self {
        Self {
            consumers: Repository::new(crate::privacy::sealed(store)).with_cache(AGGREGATES_CACHED),
        }
    }

    /// The consumers (read and written through the sealing store).
    pub fn consumers(&self) -> &Repository<Consumer, Shredding<St, St>> {
        &self.consumers
    }
}

impl<St: AppendWithKeys + Clone> Participant for ConsumerService<St> {
    fn channel(&self) -> &str {
        CONSUMER
    }

    async fn handle(&self, c: &CommandMessage) -> Result<Handled, BoxError> {
        if !c.is::<ValidateOrderByConsumer>() {
            return Err(unknown("consumer", c));
        }
        let m = c.decode::<ValidateOrderByConsumer>()?;
        let command = ConsumerCommand::ValidateOrder {
            order_id: m.order_id,
            total_cents: m.total_cents,
        };
        let id = StreamId::new(m.consumer_id)?;
        let decided = self
            .consumers
            .decide(&id, &command, &c.caused("consumer-service"))
            .await;
        Handled::from_repository(&self.consumers, &id, decided, |_| ReplyBody::done())
    }
}

/// The Kitchen Service.
pub struct KitchenService<St> {
    tickets: Repository<crate::kitchen::Ticket, St>,
}

impl<St: EventStore> KitchenService<St> {
    /// The Kitchen Service on `store`.
    pub fn new(store: St) -> Self {
        Self {
            tickets: Repository::new(store).with_cache(AGGREGATES_CACHED),
        }
    }

    /// The tickets.
    pub fn tickets(&self) -> &Repository<crate::kitchen::Ticket, St> {
        &self.tickets
    }
}

impl<St: EventStore> Participant for KitchenService<St> {
    fn channel(&self) -> &str {
        KITCHEN
    }

    async fn handle(&self, c: &CommandMessage) -> Result<Handled, BoxError> {
        self.carry_out(c, true).await
    }

    async fn handle_after_conflict(&self, c: &CommandMessage) -> Result<Handled, BoxError> {
        self.carry_out(c, false).await
    }
}

impl<St: EventStore> KitchenService<St> {
    /// Carries out `c`; `new_ticket`: a ticket to create is taken to be new (no read).
    async fn carry_out(&self, c: &CommandMessage, new_ticket: bool) -> Result<Handled, BoxError> {
        use crate::kitchen::TicketCommand;
        let meta = c.caused("kitchen-service");
        if c.is::<CreateTicket>() {
            let m = c.decode::<CreateTicket>()?;
            let id = ticket_id(&m.order_id)?;
            let command = TicketCommand::Create {
                order_id: m.order_id,
                restaurant_id: m.restaurant_id,
                line_items: m.line_items,
            };
            let reply = CreateTicketReply {
                ticket_id: id.to_string(),
            };
            let decided = if new_ticket {
                self.tickets.decide_new(&id, &command, &meta).await
            } else {
                self.tickets.decide(&id, &command, &meta).await
            };
            return Handled::from_repository(&self.tickets, &id, decided, |_| ReplyBody::success(&reply));
        }
        let (ticket, command) = if c.is::<ConfirmCreateTicket>() {
            (c.decode::<ConfirmCreateTicket>()?.ticket_id, TicketCommand::Confirm)
        } else if c.is::<CancelCreateTicket>() {
            (c.decode::<CancelCreateTicket>()?.ticket_id, TicketCommand::Cancel)
        } else {
            return Err(unknown("kitchen", c));
        };
        let id = StreamId::new(ticket)?;
        let decided = self.tickets.decide(&id, &command, &meta).await;
        Handled::from_repository(&self.tickets, &id, decided, |_| ReplyBody::done())
    }
}

/// The Accounting Service.
pub struct AccountingService<St> {
    accounts: Repository<Account, St>,
}

impl<St: EventStore> AccountingService<St> {
    /// The Accounting Service on `store`.
    pub fn new(store: St) -> Self {
        Self {
            accounts: Repository::new(store).with_cache(AGGREGATES_CACHED),
        }
    }

    /// The accounts.
    pub fn accounts(&self) -> &Repository<Account, St> {
        &self.accounts
    }
}

impl<St: EventStore> Participant for AccountingService<St> {
    fn channel(&self) -> &str {
        ACCOUNTING
    }

    async fn handle(&self, c: &CommandMessage) -> Result<Handled, BoxError> {
        if !c.is::<AuthorizeCard>() {
            return Err(unknown("accounting", c));
        }
        let m = c.decode::<AuthorizeCard>()?;
        let command = AccountCommand::Authorize {
            order_id: m.order_id,
            amount_cents: m.total_cents,
        };
        let id = account_id(&m.consumer_id)?;
        let decided = self
            .accounts
            .decide(&id, &command, &c.caused("accounting-service"))
            .await;
        Handled::from_repository(&self.accounts, &id, decided, |_| ReplyBody::done())
    }
}

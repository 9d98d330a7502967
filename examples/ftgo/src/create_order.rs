//! The Create Order saga (Microservices Patterns, ch. 4 and 6), orchestrated:
//!
//! | step | participant | command | compensation |
//! |---|---|---|---|
//! | 1 | order (done when the saga starts) | — | `RejectOrder` |
//! | 2 | consumer | `ValidateOrderByConsumer` | |
//! | 3 | kitchen | `CreateTicket` (reply carries the ticket id) | `CancelCreateTicket` |
//! | 4 | accounting | `AuthorizeCard` | |
//! | 5 | kitchen | `ConfirmCreateTicket` | |
//! | 6 | order | `ApproveOrder` | |

use annals::StreamId;
use annals::saga::{Message, Reply, Saga, SagaCommand, Step};
use serde::{Deserialize, Serialize};

use crate::order::LineItem;

/// The channel of the Order Service.
pub const ORDER: &str = "order";
/// The channel of the Consumer Service.
pub const CONSUMER: &str = "consumer";
/// The channel of the Kitchen Service.
pub const KITCHEN: &str = "kitchen";
/// The channel of the Accounting Service.
pub const ACCOUNTING: &str = "accounting";

/// What the saga carries from step to step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateOrderData {
    /// The order.
    pub order_id: String,
    /// Who ordered.
    pub consumer_id: String,
    /// Where from.
    pub restaurant_id: String,
    /// What.
    pub line_items: Vec<LineItem>,
    /// Total, in cents.
    pub total_cents: i64,
    /// The kitchen's ticket, once created.
    pub ticket_id: Option<String>,
}

macro_rules! message {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        pub struct $name { $($(#[$fdoc])* pub $field: $ty),* }
        impl Message for $name {
            const TYPE: &'static str = stringify!($name);
        }
    };
}

message!(
    /// Consumer Service: may this consumer place this order?
    ValidateOrderByConsumer {
        /// The consumer.
        consumer_id: String,
        /// The order.
        order_id: String,
        /// Its total.
        total_cents: i64,
    }
);
message!(
    /// Kitchen Service: create a pending ticket.
    CreateTicket {
        /// The order.
        order_id: String,
        /// The restaurant.
        restaurant_id: String,
        /// What to cook.
        line_items: Vec<LineItem>,
    }
);
message!(
    /// The kitchen's reply to `CreateTicket`.
    CreateTicketReply {
        /// The new ticket.
        ticket_id: String,
    }
);
message!(
    /// Kitchen Service: cancel the pending ticket (compensation).
    CancelCreateTicket {
        /// The ticket.
        ticket_id: String,
    }
);
message!(
    /// Accounting Service: authorize the consumer's card.
    AuthorizeCard {
        /// The consumer.
        consumer_id: String,
        /// The order.
        order_id: String,
        /// The amount.
        total_cents: i64,
    }
);
message!(
    /// Kitchen Service: confirm the ticket.
    ConfirmCreateTicket {
        /// The ticket.
        ticket_id: String,
    }
);
message!(
    /// Order Service: approve the order.
    ApproveOrder {
        /// The order.
        order_id: String,
    }
);
message!(
    /// Order Service: reject the order (compensation).
    RejectOrder {
        /// The order.
        order_id: String,
        /// Why.
        reason: String,
    }
);

fn reject_order(d: &CreateOrderData) -> SagaCommand {
    SagaCommand::of(
        ORDER,
        &RejectOrder {
            order_id: d.order_id.clone(),
            reason: "the Create Order saga failed".into(),
        },
    )
}

fn validate_consumer(d: &CreateOrderData) -> SagaCommand {
    SagaCommand::of(
        CONSUMER,
        &ValidateOrderByConsumer {
            consumer_id: d.consumer_id.clone(),
            order_id: d.order_id.clone(),
            total_cents: d.total_cents,
        },
    )
}

fn create_ticket(d: &CreateOrderData) -> SagaCommand {
    SagaCommand::of(
        KITCHEN,
        &CreateTicket {
            order_id: d.order_id.clone(),
            restaurant_id: d.restaurant_id.clone(),
            line_items: d.line_items.clone(),
        },
    )
}

fn ticket_created(d: &mut CreateOrderData, reply: &Reply) {
    d.ticket_id = reply.decode::<CreateTicketReply>().map(|r| r.ticket_id);
}

fn ticket(d: &CreateOrderData) -> String {
    d.ticket_id.clone().unwrap_or_default()
}

fn cancel_ticket(d: &CreateOrderData) -> SagaCommand {
    SagaCommand::of(KITCHEN, &CancelCreateTicket { ticket_id: ticket(d) })
}

fn authorize_card(d: &CreateOrderData) -> SagaCommand {
    SagaCommand::of(
        ACCOUNTING,
        &AuthorizeCard {
            consumer_id: d.consumer_id.clone(),
            order_id: d.order_id.clone(),
            total_cents: d.total_cents,
        },
    )
}

fn confirm_ticket(d: &CreateOrderData) -> SagaCommand {
    SagaCommand::of(KITCHEN, &ConfirmCreateTicket { ticket_id: ticket(d) })
}

fn approve_order(d: &CreateOrderData) -> SagaCommand {
    SagaCommand::of(
        ORDER,
        &ApproveOrder {
            order_id: d.order_id.clone(),
        },
    )
}

static STEPS: [Step<CreateOrderData>; 6] = [
    Step::done_before("create order").compensate_with(reject_order),
    Step::invoke("validate consumer", validate_consumer),
    Step::invoke("create ticket", create_ticket)
        .on_reply(ticket_created)
        .compensate_with(cancel_ticket),
    Step::invoke("authorize card", authorize_card),
    Step::invoke("confirm ticket", confirm_ticket),
    Step::invoke("approve order", approve_order),
];

/// The Create Order saga.
pub struct CreateOrderSaga;

impl Saga for CreateOrderSaga {
    const SAGA_TYPE: &'static str = "CreateOrder";
    type Data = CreateOrderData;
    fn steps() -> &'static [Step<CreateOrderData>] {
        &STEPS
    }
}

/// The saga id of the order `order_id`: derived from it, so an order has at most one.
pub fn saga_id(order_id: &str) -> Result<StreamId, annals::StoreError> {
    StreamId::new(format!("create-order~{order_id}"))
}

/// The ticket id of the order `order_id`.
pub fn ticket_id(order_id: &str) -> Result<StreamId, annals::StoreError> {
    StreamId::new(format!("ticket~{order_id}"))
}

/// The account id of consumer `consumer_id`.
pub fn account_id(consumer_id: &str) -> Result<StreamId, annals::StoreError> {
    StreamId::new(format!("account~{consumer_id}"))
}

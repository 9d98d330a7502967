//! The Order aggregate: created pending approval, approved or rejected, revised, cancelled.

use annals::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

/// Smallest order total accepted, in cents.
pub const ORDER_MINIMUM_CENTS: i64 = 1_000;

/// One line of an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    /// The menu item.
    pub menu_item_id: String,
    /// Its name, as shown to the consumer.
    pub name: String,
    /// How many.
    pub quantity: u32,
    /// Price of one, in cents.
    pub price_cents: i64,
}

impl LineItem {
    /// A line of `quantity` × `name` at `price_cents` each.
    pub fn new(menu_item_id: &str, name: &str, quantity: u32, price_cents: i64) -> Self {
        Self {
            menu_item_id: menu_item_id.into(),
            name: name.into(),
            quantity,
            price_cents,
        }
    }
}

/// Sum of `quantity × price` over the lines, in cents.
pub fn total_cents(items: &[LineItem]) -> i64 {
    items.iter().map(|i| i64::from(i.quantity) * i.price_cents).sum()
}

/// Where an order is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderState {
    /// No order yet (a fresh aggregate).
    #[default]
    New,
    /// Created; the Create Order saga has not decided yet.
    ApprovalPending,
    /// Approved: the kitchen will cook it.
    Approved,
    /// Rejected by the saga (consumer not valid, card declined, …).
    Rejected,
    /// Cancelled by the consumer.
    Cancelled,
}

/// The Order aggregate's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Where it is in its life.
    pub state: OrderState,
    /// The consumer who ordered.
    pub consumer_id: String,
    /// The restaurant that cooks it.
    pub restaurant_id: String,
    /// What was ordered.
    pub line_items: Vec<LineItem>,
    /// Total in cents.
    pub total_cents: i64,
    /// How many times it was revised.
    pub revisions: u32,
    /// Why it was rejected or cancelled.
    pub reason: Option<String>,
}

/// Events of the Order aggregate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderEvent {
    /// The consumer placed the order; it waits for approval.
    OrderCreated {
        /// The consumer.
        consumer_id: String,
        /// The restaurant.
        restaurant_id: String,
        /// What was ordered.
        line_items: Vec<LineItem>,
        /// Total in cents.
        total_cents: i64,
    },
    /// The order was approved.
    OrderApproved,
    /// The order was rejected.
    OrderRejected {
        /// Why.
        reason: String,
    },
    /// The consumer changed what they ordered.
    OrderRevised {
        /// The new lines.
        line_items: Vec<LineItem>,
        /// The new total in cents.
        total_cents: i64,
    },
    /// The consumer cancelled the order.
    OrderCancelled {
        /// Why.
        reason: String,
        /// The consumer (so the services that react need not ask the Order Service); empty in
        /// events stored before it was carried.
        #[serde(default)]
        consumer_id: String,
    },
}

impl DomainEvent for OrderEvent {}

/// Commands of the Order aggregate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderCommand {
    /// Place an order.
    Create {
        /// The consumer.
        consumer_id: String,
        /// The restaurant.
        restaurant_id: String,
        /// What is ordered.
        line_items: Vec<LineItem>,
    },
    /// Approve a pending order (the saga's last step).
    Approve,
    /// Reject a pending order (the saga's compensation).
    Reject {
        /// Why.
        reason: String,
    },
    /// Replace the lines of a pending or approved order.
    Revise {
        /// The new lines.
        line_items: Vec<LineItem>,
    },
    /// Cancel a pending or approved order.
    Cancel {
        /// Why.
        reason: String,
    },
}

impl OrderCommand {
    fn name(&self) -> &'static str {
        match self {
            Self::Create { .. } => "create",
            Self::Approve => "approve",
            Self::Reject { .. } => "reject",
            Self::Revise { .. } => "revise",
            Self::Cancel { .. } => "cancel",
        }
    }
}

/// Why the Order aggregate refused a command.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OrderError {
    /// `Create` on an order that exists.
    #[error("the order already exists")]
    AlreadyExists,
    /// A command other than `Create` on an order that does not exist.
    #[error("no such order")]
    NotFound,
    /// The command is not allowed in the order's state.
    #[error("cannot {command} an order that is {state:?}")]
    InvalidState {
        /// The refused command.
        command: &'static str,
        /// The order's state.
        state: OrderState,
    },
    /// An order with no lines or a line with no quantity.
    #[error("an order needs at least one line, each with a quantity")]
    EmptyOrder,
    /// The total is under the minimum.
    #[error("order total {total_cents} cents is under the minimum of {ORDER_MINIMUM_CENTS} cents")]
    MinimumNotMet {
        /// The total.
        total_cents: i64,
    },
}

fn check_lines(items: &[LineItem]) -> Result<i64, OrderError> {
    if items.is_empty() || items.iter().any(|i| i.quantity == 0 || i.price_cents < 0) {
        return Err(OrderError::EmptyOrder);
    }
    let total = total_cents(items);
    if total < ORDER_MINIMUM_CENTS {
        return Err(OrderError::MinimumNotMet { total_cents: total });
    }
    Ok(total)
}

impl Aggregate for Order {
    const STREAM_TYPE: &'static str = "Order";
    type Event = OrderEvent;
    type Command = OrderCommand;
    type Error = OrderError;

    fn handle(&self, command: &OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        use OrderState::*;
        let invalid = || OrderError::InvalidState {
            command: command.name(),
            state: self.state,
        };
        match (command, self.state) {
            (
                OrderCommand::Create {
                    consumer_id,
                    restaurant_id,
                    line_items,
                },
                New,
            ) => {
                let total_cents = check_lines(line_items)?;
                Ok(vec![OrderEvent::OrderCreated {
                    consumer_id: consumer_id.clone(),
                    restaurant_id: restaurant_id.clone(),
                    line_items: line_items.clone(),
                    total_cents,
                }])
            }
            (OrderCommand::Create { .. }, _) => Err(OrderError::AlreadyExists),
            (_, New) => Err(OrderError::NotFound),
            (OrderCommand::Approve, ApprovalPending) => Ok(vec![OrderEvent::OrderApproved]),
            (OrderCommand::Reject { reason }, ApprovalPending) => {
                Ok(vec![OrderEvent::OrderRejected { reason: reason.clone() }])
            }
            (OrderCommand::Revise { line_items }, ApprovalPending | Approved) => {
                let total_cents = check_lines(line_items)?;
                Ok(vec![OrderEvent::OrderRevised {
                    line_items: line_items.clone(),
                    total_cents,
                }])
            }
            (OrderCommand::Cancel { reason }, ApprovalPending | Approved) => Ok(vec![OrderEvent::OrderCancelled {
                reason: reason.clone(),
                consumer_id: self.consumer_id.clone(),
            }]),
            _ => Err(invalid()),
        }
    }

    fn apply(&mut self, event: &OrderEvent) {
        match event {
            OrderEvent::OrderCreated {
                consumer_id,
                restaurant_id,
                line_items,
                total_cents,
            } => {
                self.state = OrderState::ApprovalPending;
                self.consumer_id = consumer_id.clone();
                self.restaurant_id = restaurant_id.clone();
                self.line_items = line_items.clone();
                self.total_cents = *total_cents;
            }
            OrderEvent::OrderApproved => self.state = OrderState::Approved,
            OrderEvent::OrderRejected { reason } => {
                self.state = OrderState::Rejected;
                self.reason = Some(reason.clone());
            }
            OrderEvent::OrderRevised {
                line_items,
                total_cents,
            } => {
                self.line_items = line_items.clone();
                self.total_cents = *total_cents;
                self.revisions += 1;
            }
            OrderEvent::OrderCancelled { reason, .. } => {
                self.state = OrderState::Cancelled;
                self.reason = Some(reason.clone());
            }
        }
    }
}

//! The order-history read model (CQRS view): every order with its consumer, state and total,
//! queryable by consumer with totals. Kept by a projection of `Order` events, in the store's own
//! database: [`sqlite::OrderHistory`] or [`postgres::OrderHistory`].
//!
//! The table also counts the events applied to each order (`events`): it equals the order
//! stream's version exactly when every event took effect once, which the kill tests check.

pub mod postgres;
pub mod sqlite;

use annals::RecordedEvent;
use serde::Serialize;

use crate::order::{OrderEvent, OrderState};

/// The projection's name (its checkpoint's key; `ftgo projection rebuild order-history`).
pub const NAME: &str = "order-history";

/// One row of the read model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrderSummary {
    /// The order's stream id.
    pub order_id: String,
    /// Who ordered.
    pub consumer_id: String,
    /// From where.
    pub restaurant_id: String,
    /// Where the order is.
    pub state: OrderState,
    /// The current total in cents.
    pub total_cents: i64,
    /// Lines in the current order.
    pub line_items: i64,
    /// Events applied to this row (= the order's version when each took effect once).
    pub events: i64,
    /// Global position of the last event applied.
    pub last_position: i64,
}

/// A consumer's orders and totals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ConsumerOrders {
    /// Their orders, by order id.
    pub orders: Vec<OrderSummary>,
    /// Sum of the totals of orders not rejected or cancelled, in cents.
    pub open_total_cents: i64,
}

impl ConsumerOrders {
    /// Builds the answer from the rows.
    pub fn from_rows(orders: Vec<OrderSummary>) -> Self {
        let open_total_cents = orders
            .iter()
            .filter(|o| !matches!(o.state, OrderState::Rejected | OrderState::Cancelled))
            .map(|o| o.total_cents)
            .sum();
        Self {
            orders,
            open_total_cents,
        }
    }
}

/// The state's stored name (as serialized: `APPROVAL_PENDING`, …).
pub fn state_name(state: OrderState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Parses a stored state name.
pub fn parse_state(name: &str) -> OrderState {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).unwrap_or_default()
}

/// Folds one recorded event into the order's row (`None`: no row yet). Events of other stream
/// types, and order events before the order was created, leave it as it is.
pub fn fold(row: Option<OrderSummary>, event: &RecordedEvent) -> Result<Option<OrderSummary>, annals::DecodeError> {
    if event.stream_type != <crate::order::Order as annals::Aggregate>::STREAM_TYPE {
        return Ok(row);
    }
    let e: OrderEvent = annals::decode(event)?;
    let position = event.global_position as i64;
    let touched = |mut r: OrderSummary| {
        r.events += 1;
        r.last_position = position;
        r
    };
    Ok(match (row, e) {
        (
            None,
            OrderEvent::OrderCreated {
                consumer_id,
                restaurant_id,
                line_items,
                total_cents,
            },
        ) => Some(touched(OrderSummary {
            order_id: event.stream_id.to_string(),
            consumer_id,
            restaurant_id,
            state: OrderState::ApprovalPending,
            total_cents,
            line_items: line_items.len() as i64,
            events: 0,
            last_position: 0,
        })),
        (None, _) => None,
        (Some(r), OrderEvent::OrderCreated { .. }) => Some(touched(r)),
        (Some(r), OrderEvent::OrderApproved) => Some(touched(OrderSummary {
            state: OrderState::Approved,
            ..r
        })),
        (Some(r), OrderEvent::OrderRejected { .. }) => Some(touched(OrderSummary {
            state: OrderState::Rejected,
            ..r
        })),
        (Some(r), OrderEvent::OrderCancelled { .. }) => Some(touched(OrderSummary {
            state: OrderState::Cancelled,
            ..r
        })),
        (
            Some(r),
            OrderEvent::OrderRevised {
                line_items,
                total_cents,
            },
        ) => Some(touched(OrderSummary {
            total_cents,
            line_items: line_items.len() as i64,
            ..r
        })),
    })
}

/// Sample data for tests, benchmarks and demos: order `i`'s whole life as events, ready to
/// append to stream `order-<i>` (consumer `consumer-<i % 7>`). Every third order is revised;
/// then it is approved, rejected or cancelled by `i % 4`, or left pending.
pub fn sample_order(i: usize) -> (annals::StreamId, Vec<annals::NewEvent>) {
    use crate::order::LineItem;
    let lines = vec![LineItem::new("m-1", "Dal", 1 + (i % 3) as u32, 1_000)];
    let total = crate::order::total_cents(&lines);
    let mut events = vec![OrderEvent::OrderCreated {
        consumer_id: format!("consumer-{}", i % 7),
        restaurant_id: "ajanta".into(),
        line_items: lines,
        total_cents: total,
    }];
    if i.is_multiple_of(3) {
        let lines = vec![LineItem::new("m-2", "Naan", 4, 500)];
        events.push(OrderEvent::OrderRevised {
            total_cents: crate::order::total_cents(&lines),
            line_items: lines,
        });
    }
    match i % 4 {
        0 => events.push(OrderEvent::OrderApproved),
        1 => events.push(OrderEvent::OrderRejected {
            reason: "card declined".into(),
        }),
        2 => events.push(OrderEvent::OrderCancelled {
            reason: "changed my mind".into(),
            consumer_id: format!("consumer-{}", i % 7),
        }),
        _ => {}
    }
    let id = annals::StreamId::new(format!("order-{i}")).expect("a valid stream id");
    let events = events
        .iter()
        .map(|e| {
            let (event_type, schema_version, payload) = annals::encode(e).expect("order events encode");
            annals::NewEvent::new(event_type, payload).with_schema_version(schema_version)
        })
        .collect();
    (id, events)
}

//! The Consumer Service: registered consumers, and the check that a consumer may place an order
//! (the Create Order saga's `ValidateOrderByConsumer`). A consumer's name and address are personal
//! data ([`crate::privacy`]): stored encrypted under the consumer's key, forgotten with it.

use annals::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

/// A consumer of FTGO.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumer {
    /// Whether the consumer registered.
    pub registered: bool,
    /// Their name (personal: `[forgotten]` once they are).
    pub name: String,
    /// Their delivery address (personal).
    pub address: String,
    /// The largest order total they may place, in cents.
    pub order_limit_cents: i64,
}

/// Events of a consumer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsumerEvent {
    /// The consumer registered.
    ConsumerRegistered {
        /// The consumer's id: the subject of the personal fields.
        #[serde(default)]
        consumer_id: String,
        /// Their name (personal).
        name: String,
        /// Their delivery address (personal).
        #[serde(default)]
        address: String,
        /// Their order limit, in cents.
        order_limit_cents: i64,
    },
}

impl DomainEvent for ConsumerEvent {}

/// Commands of a consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsumerCommand {
    /// Register.
    Register {
        /// The consumer's id (their stream's).
        consumer_id: String,
        /// Their name.
        name: String,
        /// Their delivery address.
        address: String,
        /// Their order limit, in cents.
        order_limit_cents: i64,
    },
    /// Check that the consumer may place an order of `total_cents` (changes nothing).
    ValidateOrder {
        /// The order.
        order_id: String,
        /// Its total.
        total_cents: i64,
    },
}

/// Why the Consumer Service refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerError {
    /// `Register` twice.
    #[error("the consumer is registered already")]
    AlreadyRegistered,
    /// No such consumer.
    #[error("no such consumer")]
    NotFound,
    /// The order is over the consumer's limit.
    #[error("order {order_id} of {total_cents} cents is over the consumer's limit of {limit_cents} cents")]
    OverLimit {
        /// The order.
        order_id: String,
        /// Its total.
        total_cents: i64,
        /// The limit.
        limit_cents: i64,
    },
}

impl Aggregate for Consumer {
    const STREAM_TYPE: &'static str = "Consumer";
    type Event = ConsumerEvent;
    type Command = ConsumerCommand;
    type Error = ConsumerError;

    fn handle(&self, command: &ConsumerCommand) -> Result<Vec<ConsumerEvent>, ConsumerError> {
        match command {
            ConsumerCommand::Register { .. } if self.registered => Err(ConsumerError::AlreadyRegistered),
            ConsumerCommand::Register {
                consumer_id,
                name,
                address,
                order_limit_cents,
            } => Ok(vec![ConsumerEvent::ConsumerRegistered {
                consumer_id: consumer_id.clone(),
                name: name.clone(),
                address: address.clone(),
                order_limit_cents: *order_limit_cents,
            }]),
            ConsumerCommand::ValidateOrder { .. } if !self.registered => Err(ConsumerError::NotFound),
            ConsumerCommand::ValidateOrder { order_id, total_cents } if *total_cents > self.order_limit_cents => {
                Err(ConsumerError::OverLimit {
                    order_id: order_id.clone(),
                    total_cents: *total_cents,
                    limit_cents: self.order_limit_cents,
                })
            }
            ConsumerCommand::ValidateOrder { .. } => Ok(Vec::new()),
        }
    }

    fn apply(&mut self, event: &ConsumerEvent) {
        match event {
            ConsumerEvent::ConsumerRegistered {
                name,
                address,
                order_limit_cents,
                ..
            } => {
                self.registered = true;
                self.name = name.clone();
                self.address = address.clone();
                self.order_limit_cents = *order_limit_cents;
            }
        }
    }
}

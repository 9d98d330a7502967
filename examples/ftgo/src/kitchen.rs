//! The Kitchen Service's Ticket aggregate: created pending while the Create Order saga runs,
//! confirmed when it succeeds, cancelled when it compensates.

use annals::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::order::LineItem;

/// Where a ticket is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TicketState {
    /// No ticket yet.
    #[default]
    New,
    /// Created; the saga has not confirmed it.
    CreatePending,
    /// Confirmed: the restaurant may accept it.
    AwaitingAcceptance,
    /// Cancelled by the saga's compensation.
    Cancelled,
}

/// A kitchen ticket for one order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// Where it is.
    pub state: TicketState,
    /// The order.
    pub order_id: String,
    /// The restaurant.
    pub restaurant_id: String,
    /// What to cook.
    pub line_items: Vec<LineItem>,
}

/// Events of a ticket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TicketEvent {
    /// Created, pending confirmation.
    TicketCreated {
        /// The order.
        order_id: String,
        /// The restaurant.
        restaurant_id: String,
        /// What to cook.
        line_items: Vec<LineItem>,
    },
    /// Confirmed.
    TicketConfirmed,
    /// Cancelled.
    TicketCancelled,
}

impl DomainEvent for TicketEvent {}

/// Commands of a ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TicketCommand {
    /// Create it, pending.
    Create {
        /// The order.
        order_id: String,
        /// The restaurant.
        restaurant_id: String,
        /// What to cook.
        line_items: Vec<LineItem>,
    },
    /// Confirm a pending ticket.
    Confirm,
    /// Cancel a ticket the restaurant has not accepted (nothing happens if it is cancelled
    /// already).
    Cancel,
}

/// Why the kitchen refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// `Create` on an existing ticket.
    #[error("the ticket exists already")]
    AlreadyExists,
    /// No such ticket.
    #[error("no such ticket")]
    NotFound,
    /// Not allowed in the ticket's state.
    #[error("cannot {command} a ticket that is {state:?}")]
    InvalidState {
        /// The command.
        command: &'static str,
        /// The state.
        state: TicketState,
    },
}

impl Aggregate for Ticket {
    const STREAM_TYPE: &'static str = "Ticket";
    type Event = TicketEvent;
    type Command = TicketCommand;
    type Error = TicketError;

    fn handle(&self, command: &TicketCommand) -> Result<Vec<TicketEvent>, TicketError> {
        use TicketState::*;
        match (command, self.state) {
            (
                TicketCommand::Create {
                    order_id,
                    restaurant_id,
                    line_items,
                },
                New,
            ) => Ok(vec![TicketEvent::TicketCreated {
                order_id: order_id.clone(),
                restaurant_id: restaurant_id.clone(),
                line_items: line_items.clone(),
            }]),
            (TicketCommand::Create { .. }, _) => Err(TicketError::AlreadyExists),
            (_, New) => Err(TicketError::NotFound),
            (TicketCommand::Confirm, CreatePending) => Ok(vec![TicketEvent::TicketConfirmed]),
            (TicketCommand::Cancel, CreatePending | AwaitingAcceptance) => Ok(vec![TicketEvent::TicketCancelled]),
            (TicketCommand::Cancel, Cancelled) => Ok(Vec::new()),
            (TicketCommand::Confirm, state) => Err(TicketError::InvalidState {
                command: "confirm",
                state,
            }),
        }
    }

    fn apply(&mut self, event: &TicketEvent) {
        match event {
            TicketEvent::TicketCreated {
                order_id,
                restaurant_id,
                line_items,
            } => {
                self.state = TicketState::CreatePending;
                self.order_id = order_id.clone();
                self.restaurant_id = restaurant_id.clone();
                self.line_items = line_items.clone();
            }
            TicketEvent::TicketConfirmed => self.state = TicketState::AwaitingAcceptance,
            TicketEvent::TicketCancelled => self.state = TicketState::Cancelled,
        }
    }
}

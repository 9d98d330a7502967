//! The Accounting Service's Account aggregate: one per consumer, authorizing card payments up to
//! a limit per order.

use annals::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

/// A consumer's account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Whether it was opened.
    pub open: bool,
    /// The largest amount the card may be charged at once, in cents.
    pub card_limit_cents: i64,
    /// Orders authorized, with their amounts.
    pub authorized: Vec<(String, i64)>,
}

/// Events of an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountEvent {
    /// Opened.
    AccountOpened {
        /// The card's limit per charge, in cents.
        card_limit_cents: i64,
    },
    /// A payment was authorized.
    CardAuthorized {
        /// The order.
        order_id: String,
        /// The amount, in cents.
        amount_cents: i64,
    },
    /// An authorization was given back (the order was cancelled).
    AuthorizationReversed {
        /// The order.
        order_id: String,
        /// The amount, in cents.
        amount_cents: i64,
    },
}

impl DomainEvent for AccountEvent {}

/// Commands of an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountCommand {
    /// Open it.
    Open {
        /// The card's limit per charge, in cents.
        card_limit_cents: i64,
    },
    /// Authorize a payment for an order.
    Authorize {
        /// The order.
        order_id: String,
        /// The amount, in cents.
        amount_cents: i64,
    },
    /// Give an order's authorization back (nothing happens if it has none).
    Reverse {
        /// The order.
        order_id: String,
    },
}

/// Why accounting refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// `Open` twice.
    #[error("the account is open already")]
    AlreadyOpen,
    /// No such account.
    #[error("no such account")]
    NotFound,
    /// The card was declined.
    #[error("card declined: {amount_cents} cents is over the card's limit of {card_limit_cents} cents")]
    Declined {
        /// The amount.
        amount_cents: i64,
        /// The limit.
        card_limit_cents: i64,
    },
}

impl Aggregate for Account {
    const STREAM_TYPE: &'static str = "Account";
    type Event = AccountEvent;
    type Command = AccountCommand;
    type Error = AccountError;

    fn handle(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        match command {
            AccountCommand::Open { .. } if self.open => Err(AccountError::AlreadyOpen),
            AccountCommand::Open { card_limit_cents } => Ok(vec![AccountEvent::AccountOpened {
                card_limit_cents: *card_limit_cents,
            }]),
            AccountCommand::Authorize { .. } if !self.open => Err(AccountError::NotFound),
            AccountCommand::Authorize { amount_cents, .. } if *amount_cents > self.card_limit_cents => {
                Err(AccountError::Declined {
                    amount_cents: *amount_cents,
                    card_limit_cents: self.card_limit_cents,
                })
            }
            AccountCommand::Authorize { order_id, amount_cents } => Ok(vec![AccountEvent::CardAuthorized {
                order_id: order_id.clone(),
                amount_cents: *amount_cents,
            }]),
            AccountCommand::Reverse { .. } if !self.open => Err(AccountError::NotFound),
            AccountCommand::Reverse { order_id } => Ok(self
                .authorized
                .iter()
                .filter(|(o, _)| o == order_id)
                .map(|(_, amount)| AccountEvent::AuthorizationReversed {
                    order_id: order_id.clone(),
                    amount_cents: *amount,
                })
                .collect()),
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::AccountOpened { card_limit_cents } => {
                self.open = true;
                self.card_limit_cents = *card_limit_cents;
            }
            AccountEvent::CardAuthorized { order_id, amount_cents } => {
                self.authorized.push((order_id.clone(), *amount_cents));
            }
            AccountEvent::AuthorizationReversed { order_id, .. } => {
                self.authorized.retain(|(o, _)| o != order_id);
            }
        }
    }
}

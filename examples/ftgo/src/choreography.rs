//! Choreography: services react to each other's events through subscriptions, with no
//! orchestrator. When a consumer cancels an order, the Kitchen Service cancels its ticket and the
//! Accounting Service gives the card authorization back — each on its own, from the
//! `OrderCancelled` event, recording the event's id in its inbox with its effects so a
//! redelivered event changes nothing.

use annals::consume::{EventHandler, Inbox};
use annals::error::BoxError;
use annals::{Aggregate, EventStore, Metadata, RecordedEvent, Repository, StreamId, decode};

use crate::accounting::{Account, AccountCommand};
use crate::create_order::{account_id, ticket_id};
use crate::in_process::{ServiceStore, Services, spawn_runners};
use crate::kitchen::{Ticket, TicketCommand, TicketError};
use crate::order::OrderEvent;

/// Runs `command` on aggregate `id` because of `event`, once: the effect and the event's id in
/// `consumer`'s inbox commit together. Refusals are the reaction's business (`refused`).
async fn react<A: Aggregate, St: Inbox + Clone>(
    store: &St,
    consumer: &str,
    event: &RecordedEvent,
    id: &StreamId,
    command: &A::Command,
    refused: impl Fn(&A::Error) -> bool,
) -> Result<(), BoxError> {
    let repo = Repository::<A, _>::new(store.clone());
    let meta = Metadata::by(consumer).caused_by(event.event_id);
    for _ in 0..10 {
        let appends = match repo.decide(id, command, &meta).await {
            Ok(d) => d.append.into_iter().collect(),
            Err(annals::RepositoryError::Rejected(e)) if refused(&e) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        match store.append_once(consumer, event.event_id, appends).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(format!("{consumer}: {id} kept conflicting").into())
}

fn cancelled(event: &RecordedEvent) -> Result<Option<String>, BoxError> {
    if event.stream_type != "Order" || event.event_type != "OrderCancelled" {
        return Ok(None);
    }
    match decode::<OrderEvent>(event)? {
        OrderEvent::OrderCancelled { consumer_id, .. } => Ok(Some(consumer_id)),
        _ => Ok(None),
    }
}

/// The Kitchen Service's reaction: an order cancelled → its ticket cancelled (if it has one).
#[derive(Clone)]
pub struct KitchenOnOrderCancelled<St> {
    store: St,
}

impl<St: Inbox + Clone> EventHandler for KitchenOnOrderCancelled<St> {
    async fn handle(&mut self, event: &RecordedEvent) -> Result<(), BoxError> {
        if cancelled(event)?.is_none() {
            return Ok(());
        }
        let ticket = ticket_id(event.stream_id.as_str())?;
        // An order the saga rejected has no ticket, or a cancelled one: nothing to do.
        let refused = |e: &TicketError| matches!(e, TicketError::NotFound);
        react::<Ticket, _>(
            &self.store,
            "kitchen.on-order-cancelled",
            event,
            &ticket,
            &TicketCommand::Cancel,
            refused,
        )
        .await
    }
}

/// The Accounting Service's reaction: an order cancelled → its card authorization reversed.
#[derive(Clone)]
pub struct AccountingOnOrderCancelled<St> {
    store: St,
}

impl<St: Inbox + Clone> EventHandler for AccountingOnOrderCancelled<St> {
    async fn handle(&mut self, event: &RecordedEvent) -> Result<(), BoxError> {
        let Some(consumer) = cancelled(event)? else {
            return Ok(());
        };
        if consumer.is_empty() {
            return Err(format!(
                "{} v{}: OrderCancelled without its consumer",
                event.stream_id, event.version
            )
            .into());
        }
        let command = AccountCommand::Reverse {
            order_id: event.stream_id.to_string(),
        };
        react::<Account, _>(
            &self.store,
            "accounting.on-order-cancelled",
            event,
            &account_id(&consumer)?,
            &command,
            |_| false,
        )
        .await
    }
}

/// The reactions as handlers, for any way of running them (a subscription, a broker consumer).
pub fn handlers<St: Inbox + Clone>(store: &St) -> (KitchenOnOrderCancelled<St>, AccountingOnOrderCancelled<St>) {
    (
        KitchenOnOrderCancelled { store: store.clone() },
        AccountingOnOrderCancelled { store: store.clone() },
    )
}

/// Runs both reactions as subscriptions on `store` (`ftgo.kitchen-reactions`,
/// `ftgo.accounting-reactions`), reading only Order streams.
pub fn spawn<St: ServiceStore + EventStore>(store: &St) -> Services {
    let (kitchen, accounting) = handlers(store);
    let mut services = spawn_runners(store, "ftgo.kitchen-reactions", "Order", kitchen);
    services.merge(spawn_runners(store, "ftgo.accounting-reactions", "Order", accounting));
    services
}

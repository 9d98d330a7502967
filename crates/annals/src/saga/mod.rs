//! Sagas on event sourcing (Microservices Patterns, ch. 6; DESIGN §7).
//!
//! A saga type declares its steps ([`Saga::steps`]): each may invoke a participant (a command to
//! a channel, with a handler for the success reply), run a local function, and name the
//! compensation that undoes it. The orchestrator is an event-sourced aggregate,
//! [`SagaInstance`], whose `handle` is a pure function from (saga state, start or reply) to new
//! events — so a saga is tested with given/when/then and no store.
//!
//! - Sending a command is appending `CommandIssued` (its message id is the event id); the relay
//!   publishes it, so sending is as reliable as storing.
//! - A reply is handled once: the orchestrator accepts only the reply to its pending command and
//!   records it (`ReplyReceived`), so a duplicate, or a late reply to a superseded command, finds
//!   nothing pending and is ignored.
//! - [`Orchestrator`] starts sagas (alone, or in one transaction with the aggregate that starts
//!   them) and is the [`EventHandler`](crate::consume::EventHandler) for replies.
//! - [`Participant`]s run commands against their aggregates; [`ParticipantHandler`] appends their
//!   events and the reply in one transaction with the command's id in the inbox, so a command
//!   delivered twice has one effect.
//!
//! Both handlers run the same way in one process (subscriptions on the embedded store) and
//! behind a broker (the NATS consumer), because commands and replies are events.
//!
//! ```
//! use annals::saga::{Message, ReplyBody, Saga, SagaCommand, SagaInput, SagaInstance, SagaStatus, Step, Reply};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
//! struct Trip { hotel: Option<String> }
//! #[derive(Serialize, Deserialize)]
//! struct BookHotel;
//! impl Message for BookHotel { const TYPE: &'static str = "BookHotel"; }
//! #[derive(Serialize, Deserialize)]
//! struct Booked { reference: String }
//! impl Message for Booked { const TYPE: &'static str = "Booked"; }
//! #[derive(Serialize, Deserialize)]
//! struct CancelHotel;
//! impl Message for CancelHotel { const TYPE: &'static str = "CancelHotel"; }
//! #[derive(Serialize, Deserialize)]
//! struct Charge;
//! impl Message for Charge { const TYPE: &'static str = "Charge"; }
//!
//! struct TripSaga;
//! static STEPS: [Step<Trip>; 2] = [
//!     Step::invoke("book hotel", |_: &Trip| SagaCommand::of("hotel", &BookHotel))
//!         .on_reply(|trip: &mut Trip, reply: &Reply| trip.hotel = reply.decode::<Booked>().map(|b| b.reference))
//!         .compensate_with(|_: &Trip| SagaCommand::of("hotel", &CancelHotel)),
//!     Step::invoke("charge", |_: &Trip| SagaCommand::of("payments", &Charge)),
//! ];
//! impl Saga for TripSaga {
//!     const SAGA_TYPE: &'static str = "Trip";
//!     type Data = Trip;
//!     fn steps() -> &'static [Step<Trip>] { &STEPS }
//! }
//!
//! let mut saga = SagaInstance::<TripSaga>::default();
//! saga.run(&SagaInput::Start { saga_id: "trip-1".into(), data: Trip::default() });
//! let book = saga.pending_message().unwrap();
//! let booked = ReplyBody::success(&Booked { reference: "H-7".into() });
//! saga.run(&SagaInput::Reply(Reply::to(&book, uuid::Uuid::now_v7(), booked)));
//! assert_eq!(saga.data.as_ref().unwrap().hotel.as_deref(), Some("H-7"));
//!
//! let charge = saga.pending_message().unwrap();
//! saga.run(&SagaInput::Reply(Reply::to(&charge, uuid::Uuid::now_v7(), ReplyBody::failure("card declined"))));
//! let cancel = saga.pending_message().unwrap();
//! assert_eq!((cancel.command.command_type.as_str(), cancel.compensation), ("CancelHotel", true));
//! saga.run(&SagaInput::Reply(Reply::to(&cancel, uuid::Uuid::now_v7(), ReplyBody::done())));
//! assert_eq!(saga.status, SagaStatus::Compensated);
//! ```

mod instance;
mod message;
mod orchestrator;
mod participant;
mod timeline;

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use instance::{NeverRefused, Pending, SagaEvent, SagaInput, SagaInstance, SagaStatus};
pub use message::{
    COMMAND_EVENT, CommandMessage, Message, Outcome, REPLY_EVENT, REPLY_STREAM_TYPE, Reply, ReplyBody,
    SAGA_STREAM_TYPE, SagaCommand, reply_append, reply_stream,
};
pub use orchestrator::{Orchestrator, SagaRunError};
pub use participant::{Handled, Participant, ParticipantHandler};
pub use timeline::{SagaSummary, TimelineEntry, summarize};

/// A saga type: its name, its data and its steps.
pub trait Saga: Send + Sync + 'static {
    /// The saga type's name, e.g. `CreateOrder`.
    const SAGA_TYPE: &'static str;
    /// How many times a failing compensation is sent before the saga ends `Failed`.
    const COMPENSATION_ATTEMPTS: u32 = 3;
    /// What the saga carries from step to step.
    type Data: Clone + Debug + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// The steps, in order.
    fn steps() -> &'static [Step<Self::Data>];
}

/// Builds a command from the saga's data.
pub type MakeCommand<D> = fn(&D) -> SagaCommand;

/// What a step does going forward.
#[derive(Clone, Copy)]
pub(crate) enum Action<D: 'static> {
    /// Nothing: the step happened before the saga (e.g. the aggregate that started it); it may
    /// still have a compensation.
    None,
    /// Sends a command to a participant and waits for its reply.
    Invoke {
        command: MakeCommand<D>,
        on_reply: Option<fn(&mut D, &Reply)>,
    },
    /// Changes the data, or fails with a reason (which starts compensation).
    Local(fn(&mut D) -> Result<(), String>),
}

/// One step of a saga; build them with the `const` constructors so a saga's steps can live in
/// a `static`.
pub struct Step<D: 'static> {
    pub(crate) name: &'static str,
    pub(crate) action: Action<D>,
    pub(crate) compensation: Option<MakeCommand<D>>,
}

impl<D> Step<D> {
    /// A step done before the saga started (it only has a compensation, if any).
    pub const fn done_before(name: &'static str) -> Self {
        Self {
            name,
            action: Action::None,
            compensation: None,
        }
    }

    /// A step that sends the command `command` builds and waits for the reply.
    pub const fn invoke(name: &'static str, command: MakeCommand<D>) -> Self {
        Self {
            name,
            action: Action::Invoke {
                command,
                on_reply: None,
            },
            compensation: None,
        }
    }

    /// A step that runs `run` on the saga's data; an `Err` starts compensation.
    pub const fn local(name: &'static str, run: fn(&mut D) -> Result<(), String>) -> Self {
        Self {
            name,
            action: Action::Local(run),
            compensation: None,
        }
    }

    /// Runs `handler` on the saga's data with a success reply (an invoke step's only).
    pub const fn on_reply(self, handler: fn(&mut D, &Reply)) -> Self {
        let action = match self.action {
            Action::Invoke { command, .. } => Action::Invoke {
                command,
                on_reply: Some(handler),
            },
            other => other,
        };
        Self {
            name: self.name,
            action,
            compensation: self.compensation,
        }
    }

    /// Undoes the step, when a later step fails, by sending the command `compensation` builds.
    pub const fn compensate_with(self, compensation: MakeCommand<D>) -> Self {
        Self {
            name: self.name,
            action: self.action,
            compensation: Some(compensation),
        }
    }

    /// The step's name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

//! The orchestrator as an event-sourced aggregate: [`SagaInstance`] folds a saga's events, and
//! its `handle` decides, purely, what a start or a reply leads to — the next command, the
//! compensations, the end. Every event that changes the saga's data carries the new data, so a
//! replay never runs a step's code again.

use std::fmt;
use std::marker::PhantomData;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::message::{CommandMessage, Outcome, Reply, SagaCommand};
use super::{Action, Saga};
use crate::aggregate::Aggregate;
use crate::event::Metadata;
use crate::ids::StreamId;
use crate::typed::DomainEvent;

/// The events of a saga orchestrator's stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "D: Serialize + serde::de::DeserializeOwned")]
pub enum SagaEvent<D> {
    /// The saga started with its data.
    SagaStarted {
        /// The saga type.
        saga_type: String,
        /// The saga id.
        saga_id: String,
        /// The saga's data.
        data: D,
    },
    /// A command was sent to a participant (stored under the command's message id).
    CommandIssued {
        /// The command's message id.
        command_id: Uuid,
        /// The saga type (so a participant can address its reply).
        saga_type: String,
        /// The step it belongs to (index from 0).
        step: usize,
        /// The step's name.
        step_name: String,
        /// The participant's channel.
        channel: String,
        /// The command type.
        command_type: String,
        /// The command's body.
        command: Value,
        /// Whether it undoes the step.
        compensation: bool,
        /// 1 for the first try; compensations are tried again when they fail.
        attempt: u32,
    },
    /// The reply to the pending command arrived.
    ReplyReceived {
        /// The reply's message id.
        reply_id: Uuid,
        /// The command it answers.
        command_id: Uuid,
        /// Success or failure.
        outcome: Outcome,
        /// The reply type.
        reply_type: String,
        /// The reply's body.
        reply: Value,
        /// The saga's data after the step's reply handler.
        data: D,
    },
    /// A local step ran.
    LocalStepDone {
        /// The step.
        step: usize,
        /// The saga's data after it.
        data: D,
    },
    /// A step failed: the completed steps are undone, last first.
    CompensationStarted {
        /// The failed step.
        step: usize,
        /// Why it failed.
        reason: String,
    },
    /// The saga ended: every step done, or every completed step undone.
    SagaCompleted {
        /// Whether it ended by compensating.
        compensated: bool,
    },
    /// A compensation kept failing: the saga stops here and waits for an operator.
    SagaFailed {
        /// Why.
        reason: String,
    },
}

impl<D: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static> DomainEvent for SagaEvent<D> {
    fn event_id(&self) -> Option<Uuid> {
        match self {
            Self::CommandIssued { command_id, .. } => Some(*command_id),
            _ => None,
        }
    }
}

/// What a saga instance is given: a start or a reply.
#[derive(Clone, Debug, PartialEq)]
pub enum SagaInput<D> {
    /// Start the saga (nothing happens if it has started already).
    Start {
        /// The saga id (its stream id).
        saga_id: String,
        /// The saga's data.
        data: D,
    },
    /// A participant's reply (ignored unless it answers the pending command).
    Reply(Reply),
}

/// Where a saga is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SagaStatus {
    /// No events yet.
    #[default]
    NotStarted,
    /// Going forward.
    Running,
    /// Undoing completed steps.
    Compensating,
    /// Every step done.
    Succeeded,
    /// Every completed step undone.
    Compensated,
    /// A compensation kept failing.
    Failed,
}

impl SagaStatus {
    /// Whether the saga is over.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Compensated | Self::Failed)
    }
}

/// The command a saga waits for a reply to.
#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    /// Its message id.
    pub command_id: Uuid,
    /// Its step.
    pub step: usize,
    /// The command.
    pub command: SagaCommand,
    /// Whether it is a compensation.
    pub compensation: bool,
    /// Which try.
    pub attempt: u32,
}

/// One saga of type `S`, as its events left it.
pub struct SagaInstance<S: Saga> {
    /// Its id (empty before it starts).
    pub saga_id: String,
    /// Its data (`None` before it starts).
    pub data: Option<S::Data>,
    /// Where it is.
    pub status: SagaStatus,
    /// The command it waits for a reply to.
    pub pending: Option<Pending>,
    /// Why it compensates or failed.
    pub failure: Option<String>,
    /// How many events it has.
    pub version: u64,
    _saga: PhantomData<fn() -> S>,
}

impl<S: Saga> Default for SagaInstance<S> {
    fn default() -> Self {
        Self {
            saga_id: String::new(),
            data: None,
            status: SagaStatus::NotStarted,
            pending: None,
            failure: None,
            version: 0,
            _saga: PhantomData,
        }
    }
}

impl<S: Saga> Clone for SagaInstance<S> {
    fn clone(&self) -> Self {
        Self {
            saga_id: self.saga_id.clone(),
            data: self.data.clone(),
            status: self.status,
            pending: self.pending.clone(),
            failure: self.failure.clone(),
            version: self.version,
            _saga: PhantomData,
        }
    }
}

impl<S: Saga> fmt::Debug for SagaInstance<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SagaInstance")
            .field("saga_type", &S::SAGA_TYPE)
            .field("saga_id", &self.saga_id)
            .field("data", &self.data)
            .field("status", &self.status)
            .field("pending", &self.pending)
            .field("failure", &self.failure)
            .field("version", &self.version)
            .finish()
    }
}

/// A saga's `handle` never refuses: a repeated start or a stale reply produce no events.
#[derive(Debug)]
pub enum NeverRefused {}

impl fmt::Display for NeverRefused {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

impl std::error::Error for NeverRefused {}

impl<S: Saga> SagaInstance<S> {
    /// The id of the command stored as event `version` of saga `saga_id`: derived, so `handle`
    /// stays pure (FNV-1a over both, as a UUID v8).
    fn command_id(saga_id: &str, version: u64) -> Uuid {
        let mut hash: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
        for b in saga_id.bytes().chain([0]).chain(version.to_le_bytes()) {
            hash ^= u128::from(b);
            hash = hash.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
        }
        uuid::Builder::from_custom_bytes(hash.to_be_bytes()).into_uuid()
    }

    /// The pending command as the participant receives it (for tests and tools).
    pub fn pending_message(&self) -> Option<CommandMessage> {
        let p = self.pending.as_ref()?;
        Some(CommandMessage {
            id: p.command_id,
            saga_type: S::SAGA_TYPE.to_owned(),
            saga_id: StreamId::new(self.saga_id.as_str()).ok()?,
            command: p.command.clone(),
            compensation: p.compensation,
            metadata: Metadata::default(),
        })
    }

    /// Handles `input` and applies the events it produced: for tests and tools without a store.
    pub fn run(&mut self, input: &SagaInput<S::Data>) -> Vec<SagaEvent<S::Data>> {
        let events = decide::<S>(self, input);
        for e in &events {
            self.apply(e);
        }
        events
    }
}

/// Builds the events of one decision, applying each to a scratch copy as it goes.
struct Decision<S: Saga> {
    next: SagaInstance<S>,
    events: Vec<SagaEvent<S::Data>>,
}

impl<S: Saga> Decision<S> {
    fn emit(&mut self, event: SagaEvent<S::Data>) {
        self.next.apply(&event);
        self.events.push(event);
    }

    fn data(&self) -> S::Data {
        self.next.data.clone().expect("a started saga has data")
    }

    fn issue(&mut self, step: usize, command: SagaCommand, compensation: bool, attempt: u32) {
        let command_id = SagaInstance::<S>::command_id(&self.next.saga_id, self.next.version + 1);
        self.emit(SagaEvent::CommandIssued {
            command_id,
            saga_type: S::SAGA_TYPE.to_owned(),
            step,
            step_name: S::steps()[step].name.to_owned(),
            channel: command.channel,
            command_type: command.command_type,
            command: command.payload,
            compensation,
            attempt,
        });
    }

    /// Runs the steps from `from` on: local ones at once, up to the first that sends a command.
    fn forward(&mut self, from: usize) {
        let steps = S::steps();
        for (i, step) in steps.iter().enumerate().skip(from) {
            match step.action {
                Action::None => {}
                Action::Local(run) => {
                    let mut data = self.data();
                    match run(&mut data) {
                        Ok(()) => self.emit(SagaEvent::LocalStepDone { step: i, data }),
                        Err(reason) => {
                            self.emit(SagaEvent::CompensationStarted { step: i, reason });
                            return self.compensate(i);
                        }
                    }
                }
                Action::Invoke { command, .. } => {
                    let command = command(&self.data());
                    return self.issue(i, command, false, 1);
                }
            }
        }
        self.emit(SagaEvent::SagaCompleted { compensated: false });
    }

    /// Sends the compensation of the last compensatable step before `before`, or ends the saga.
    fn compensate(&mut self, before: usize) {
        let steps = S::steps();
        for i in (0..before).rev() {
            if let Some(compensation) = steps[i].compensation {
                let command = compensation(&self.data());
                return self.issue(i, command, true, 1);
            }
        }
        self.emit(SagaEvent::SagaCompleted { compensated: true });
    }
}

fn decide<S: Saga>(state: &SagaInstance<S>, input: &SagaInput<S::Data>) -> Vec<SagaEvent<S::Data>> {
    let mut d = Decision {
        next: state.clone(),
        events: Vec::new(),
    };
    match input {
        SagaInput::Start { saga_id, data } => {
            if state.status != SagaStatus::NotStarted {
                return Vec::new();
            }
            d.emit(SagaEvent::SagaStarted {
                saga_type: S::SAGA_TYPE.to_owned(),
                saga_id: saga_id.clone(),
                data: data.clone(),
            });
            d.forward(0);
        }
        SagaInput::Reply(reply) => {
            let Some(pending) = &state.pending else {
                return Vec::new();
            };
            if reply.reply_to != pending.command_id || reply.saga_type != S::SAGA_TYPE {
                return Vec::new();
            }
            let mut data = d.data();
            let step = &S::steps()[pending.step];
            if let (
                false,
                true,
                Action::Invoke {
                    on_reply: Some(on_reply),
                    ..
                },
            ) = (pending.compensation, reply.is_success(), &step.action)
            {
                on_reply(&mut data, reply);
            }
            d.emit(SagaEvent::ReplyReceived {
                reply_id: reply.id,
                command_id: reply.reply_to,
                outcome: reply.body.outcome,
                reply_type: reply.body.reply_type.clone(),
                reply: reply.body.body.clone(),
                data,
            });
            match (pending.compensation, reply.is_success()) {
                (false, true) => d.forward(pending.step + 1),
                (false, false) => {
                    let reason = reply.reason().unwrap_or("the participant refused").to_owned();
                    d.emit(SagaEvent::CompensationStarted {
                        step: pending.step,
                        reason,
                    });
                    d.compensate(pending.step);
                }
                (true, true) => d.compensate(pending.step),
                (true, false) if pending.attempt < S::COMPENSATION_ATTEMPTS => {
                    d.issue(pending.step, pending.command.clone(), true, pending.attempt + 1);
                }
                (true, false) => d.emit(SagaEvent::SagaFailed {
                    reason: format!(
                        "compensation of step {} ({}) failed {} times: {}",
                        pending.step + 1,
                        step.name,
                        pending.attempt,
                        reply.reason().unwrap_or("the participant refused")
                    ),
                }),
            }
        }
    }
    d.events
}

impl<S: Saga> Aggregate for SagaInstance<S> {
    const STREAM_TYPE: &'static str = super::message::SAGA_STREAM_TYPE;
    type Event = SagaEvent<S::Data>;
    type Command = SagaInput<S::Data>;
    type Error = NeverRefused;

    fn handle(&self, input: &SagaInput<S::Data>) -> Result<Vec<SagaEvent<S::Data>>, NeverRefused> {
        Ok(decide::<S>(self, input))
    }

    fn apply(&mut self, event: &SagaEvent<S::Data>) {
        self.version += 1;
        match event {
            SagaEvent::SagaStarted { saga_id, data, .. } => {
                self.saga_id = saga_id.clone();
                self.data = Some(data.clone());
                self.status = SagaStatus::Running;
            }
            SagaEvent::CommandIssued {
                command_id,
                step,
                channel,
                command_type,
                command,
                compensation,
                attempt,
                ..
            } => {
                self.pending = Some(Pending {
                    command_id: *command_id,
                    step: *step,
                    command: SagaCommand {
                        channel: channel.clone(),
                        command_type: command_type.clone(),
                        payload: command.clone(),
                    },
                    compensation: *compensation,
                    attempt: *attempt,
                });
            }
            SagaEvent::ReplyReceived { data, .. } => {
                self.pending = None;
                self.data = Some(data.clone());
            }
            SagaEvent::LocalStepDone { data, .. } => self.data = Some(data.clone()),
            SagaEvent::CompensationStarted { reason, .. } => {
                self.status = SagaStatus::Compensating;
                self.failure = Some(reason.clone());
            }
            SagaEvent::SagaCompleted { compensated } => {
                self.pending = None;
                self.status = if *compensated {
                    SagaStatus::Compensated
                } else {
                    SagaStatus::Succeeded
                };
            }
            SagaEvent::SagaFailed { reason } => {
                self.pending = None;
                self.status = SagaStatus::Failed;
                self.failure = Some(reason.clone());
            }
        }
    }
}

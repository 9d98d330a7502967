//! A saga's timeline read from its stream without its Rust type: what tools (`annals saga
//! show`, `annals status`) show for any saga — steps, commands, replies, where it stands.

use std::time::SystemTime;

use serde_json::Value;

use crate::error::DecodeError;
use crate::event::RecordedEvent;
use crate::typed::decode;

use super::instance::{SagaEvent, SagaStatus};

/// One line of a saga's timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct TimelineEntry {
    /// The event's version in the saga's stream.
    pub version: u64,
    /// When it was recorded.
    pub at: SystemTime,
    /// The event type (`CommandIssued`, `ReplyReceived`, …).
    pub event_type: String,
    /// What happened, in words.
    pub text: String,
}

/// A saga as its stream tells it.
#[derive(Clone, Debug, PartialEq)]
pub struct SagaSummary {
    /// The saga id.
    pub saga_id: String,
    /// The saga type.
    pub saga_type: String,
    /// Where it stands.
    pub status: SagaStatus,
    /// Why it compensates or failed.
    pub failure: Option<String>,
    /// The command it waits for a reply to: (channel, command type, compensation).
    pub waiting_for: Option<(String, String, bool)>,
    /// When it started.
    pub started_at: Option<SystemTime>,
    /// When its last event was recorded.
    pub updated_at: Option<SystemTime>,
    /// Every event, in words.
    pub timeline: Vec<TimelineEntry>,
}

fn short(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        other => format!(" {other}"),
    }
}

/// Reads a saga's stream (every event, in order) into its summary.
pub fn summarize(events: &[RecordedEvent]) -> Result<SagaSummary, DecodeError> {
    let mut s = SagaSummary {
        saga_id: events.first().map(|e| e.stream_id.to_string()).unwrap_or_default(),
        saga_type: String::new(),
        status: SagaStatus::NotStarted,
        failure: None,
        waiting_for: None,
        started_at: events.first().map(|e| e.recorded_at),
        updated_at: events.last().map(|e| e.recorded_at),
        timeline: Vec::with_capacity(events.len()),
    };
    for e in events {
        let text = match decode::<SagaEvent<Value>>(e)? {
            SagaEvent::SagaStarted { saga_type, data, .. } => {
                s.saga_type = saga_type.clone();
                s.status = SagaStatus::Running;
                format!("started {saga_type} with {data}")
            }
            SagaEvent::CommandIssued {
                step,
                step_name,
                channel,
                command_type,
                command,
                compensation,
                attempt,
                ..
            } => {
                s.waiting_for = Some((channel.clone(), command_type.clone(), compensation));
                let what = if compensation { "undo" } else { "step" };
                let again = if attempt > 1 {
                    format!(" (try {attempt})")
                } else {
                    String::new()
                };
                format!(
                    "{what} {} {step_name}: {command_type} -> {channel}{again}{}",
                    step + 1,
                    short(&command)
                )
            }
            SagaEvent::ReplyReceived {
                outcome,
                reply_type,
                reply,
                ..
            } => {
                s.waiting_for = None;
                format!("reply {outcome:?}: {reply_type}{}", short(&reply))
            }
            SagaEvent::LocalStepDone { step, .. } => format!("local step {} done", step + 1),
            SagaEvent::CompensationStarted { step, reason } => {
                s.status = SagaStatus::Compensating;
                s.failure = Some(reason.clone());
                format!("step {} failed: {reason}; compensating", step + 1)
            }
            SagaEvent::SagaCompleted { compensated } => {
                s.status = if compensated {
                    SagaStatus::Compensated
                } else {
                    SagaStatus::Succeeded
                };
                s.waiting_for = None;
                if compensated {
                    "ended: compensated".to_owned()
                } else {
                    "ended: succeeded".to_owned()
                }
            }
            SagaEvent::SagaFailed { reason } => {
                s.status = SagaStatus::Failed;
                s.failure = Some(reason.clone());
                s.waiting_for = None;
                format!("FAILED: {reason}")
            }
        };
        s.timeline.push(TimelineEntry {
            version: e.version,
            at: e.recorded_at,
            event_type: e.event_type.clone(),
            text,
        });
    }
    Ok(s)
}

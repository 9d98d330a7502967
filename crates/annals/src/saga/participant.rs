//! Participants: services that carry out a saga's commands against their own aggregates and
//! reply. [`ParticipantHandler`] makes them idempotent and their replies reliable: the
//! aggregate's events, the reply and the command's id in the inbox commit in one transaction.

use std::future::Future;
use std::sync::Arc;

use crate::aggregate::Aggregate;
use crate::consume::{EventHandler, Inbox};
use crate::error::{BoxError, RepositoryError};
use crate::event::RecordedEvent;
use crate::ids::StreamId;
use crate::repository::{Decided, Repository};
use crate::store::{EventStore, StreamAppend};

use super::message::{CommandMessage, ReplyBody, reply_append};

/// Conflicting appends a command is tried again after (each try loads fresh state).
const MAX_CONFLICTS: u32 = 10;

/// A saga participant: carries out the commands sent to its channel.
pub trait Participant: Send + Sync {
    /// The channel it serves, e.g. `kitchen`.
    fn channel(&self) -> &str;

    /// Decides what `command` does: the appends to store (its aggregates' events, not yet stored)
    /// and the reply. A refused command is a failure reply, not an error; an error (the store
    /// is down) is retried by the consumer's policy.
    fn handle(&self, command: &CommandMessage) -> impl Future<Output = Result<Handled, BoxError>> + Send;

    /// Decides `command` again after storing its decision conflicted: by default
    /// [`handle`](Self::handle). A participant that took an aggregate to be new
    /// ([`Repository::decide_new`]) decides on the stored one here.
    fn handle_after_conflict(
        &self,
        command: &CommandMessage,
    ) -> impl Future<Output = Result<Handled, BoxError>> + Send {
        self.handle(command)
    }
}

impl<P: Participant> Participant for Arc<P> {
    fn channel(&self) -> &str {
        (**self).channel()
    }

    fn handle(&self, command: &CommandMessage) -> impl Future<Output = Result<Handled, BoxError>> + Send {
        (**self).handle(command)
    }

    fn handle_after_conflict(
        &self,
        command: &CommandMessage,
    ) -> impl Future<Output = Result<Handled, BoxError>> + Send {
        (**self).handle_after_conflict(command)
    }
}

/// What a participant decided: events to store and the reply to send with them.
pub struct Handled {
    /// The appends (may be none).
    pub appends: Vec<StreamAppend>,
    /// The reply.
    pub reply: ReplyBody,
    /// Run once the appends are stored (a repository's cache learns the new state).
    on_stored: Option<Box<dyn FnOnce() + Send>>,
}

impl std::fmt::Debug for Handled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handled")
            .field("appends", &self.appends)
            .field("reply", &self.reply)
            .finish_non_exhaustive()
    }
}

impl Handled {
    /// A reply with no events (the inbox still records the command).
    pub fn reply(reply: ReplyBody) -> Self {
        Self {
            appends: Vec::new(),
            reply,
            on_stored: None,
        }
    }

    /// [`from_decision`](Self::from_decision) on `repo`'s aggregate `id`: once the handler has
    /// stored the append, `repo`'s cache (if on, see [`Repository::with_cache`]) holds the new
    /// state, so the aggregate's next command needs no load.
    pub fn from_repository<A: Aggregate + Clone + Send + 'static, S: EventStore>(
        repo: &Repository<A, S>,
        id: &StreamId,
        decided: Result<Decided<A>, RepositoryError<A::Error>>,
        on_success: impl FnOnce(&Decided<A>) -> ReplyBody,
    ) -> Result<Self, BoxError> {
        let on_stored = decided.as_ref().ok().and_then(|d| repo.when_stored(id, d));
        let mut handled = Self::from_decision(decided, on_success)?;
        handled.on_stored = on_stored;
        Ok(handled)
    }

    /// From a [`Repository::decide`](crate::Repository::decide) on an aggregate: its append and
    /// the reply `on_success` builds, or a failure reply saying why the aggregate refused.
    pub fn from_decision<A: Aggregate>(
        decided: Result<Decided<A>, RepositoryError<A::Error>>,
        on_success: impl FnOnce(&Decided<A>) -> ReplyBody,
    ) -> Result<Self, BoxError> {
        match decided {
            Ok(d) => Ok(Self {
                reply: on_success(&d),
                appends: d.append.into_iter().collect(),
                on_stored: None,
            }),
            Err(RepositoryError::Rejected(e)) => Ok(Self::reply(ReplyBody::failure(e.to_string()))),
            Err(e @ (RepositoryError::Deleted { .. } | RepositoryError::NoSuchAggregate { .. })) => {
                Ok(Self::reply(ReplyBody::failure(e.to_string())))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Runs a [`Participant`] on the commands in the log (or from a broker): an [`EventHandler`].
pub struct ParticipantHandler<St, P> {
    store: St,
    participant: Arc<P>,
    consumer: String,
}

impl<St: Clone, P> Clone for ParticipantHandler<St, P> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            participant: Arc::clone(&self.participant),
            consumer: self.consumer.clone(),
        }
    }
}

impl<St: Inbox, P: Participant> ParticipantHandler<St, P> {
    /// Runs `participant`, recording handled commands in `store`'s inbox as consumer
    /// `participant.<channel>`.
    pub fn new(store: St, participant: P) -> Self {
        let consumer = format!("participant.{}", participant.channel());
        Self {
            store,
            participant: Arc::new(participant),
            consumer,
        }
    }

    /// The participant.
    pub fn participant(&self) -> &P {
        &self.participant
    }

    /// Handles `command`: `false` if it had been handled before (nothing is stored again).
    pub async fn handle_command(&self, command: &CommandMessage) -> Result<bool, BoxError> {
        let mut conflicts = 0;
        loop {
            let handled = if conflicts == 0 {
                self.participant.handle(command).await?
            } else {
                self.participant.handle_after_conflict(command).await?
            };
            let mut appends = handled.appends;
            let metadata = command.caused(&self.consumer);
            appends.push(reply_append(command, handled.reply, metadata)?);
            match self.store.append_once(&self.consumer, command.id, appends).await {
                Ok(stored) => {
                    if let (Some(_), Some(on_stored)) = (&stored, handled.on_stored) {
                        on_stored();
                    }
                    return Ok(stored.is_some());
                }
                Err(e) if e.is_conflict() && conflicts < MAX_CONFLICTS => conflicts += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl<St: Inbox, P: Participant> EventHandler for ParticipantHandler<St, P> {
    async fn handle(&mut self, event: &RecordedEvent) -> Result<(), BoxError> {
        match CommandMessage::from_event(event)? {
            Some(command) if command.command.channel == self.participant.channel() => {
                self.handle_command(&command).await.map(|_| ())
            }
            _ => Ok(()),
        }
    }
}

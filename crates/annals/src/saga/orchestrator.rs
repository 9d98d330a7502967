//! The orchestrator at run time: starts sagas and handles their replies, storing each decision
//! of [`SagaInstance`] with optimistic locking.

use std::sync::Arc;

use crate::consume::EventHandler;
use crate::error::{BoxError, DecodeError, EncodeError, RepositoryError, StoreError};
use crate::event::{Metadata, RecordedEvent};
use crate::ids::StreamId;
use crate::repository::Repository;
use crate::store::{AppendOutcome, EventStore, StreamAppend};

use super::Saga;
use super::instance::{NeverRefused, SagaInput, SagaInstance};
use super::message::Reply;

/// Sagas whose state an orchestrator keeps between steps (it is their only writer, so a step
/// needs no load).
const CACHED_SAGAS: usize = 10_000;

/// Why starting a saga or handling a reply failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SagaRunError {
    /// `start_with` found the saga started already (nothing was stored).
    #[error("saga `{saga_id}` has started already")]
    AlreadyStarted {
        /// The saga.
        saga_id: String,
    },
    /// A reply names a saga this store does not hold.
    #[error("reply {reply_id} is for saga `{saga_id}`, which does not exist")]
    NoSuchSaga {
        /// The saga.
        saga_id: String,
        /// The reply.
        reply_id: uuid::Uuid,
    },
    /// The saga's stream was deleted.
    #[error("saga `{saga_id}` was deleted")]
    Deleted {
        /// The saga.
        saga_id: String,
    },
    /// The store failed (a conflict here outlived the retries).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored saga event could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A saga event could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

impl From<RepositoryError<NeverRefused>> for SagaRunError {
    fn from(e: RepositoryError<NeverRefused>) -> Self {
        match e {
            RepositoryError::Store(e) => Self::Store(e),
            RepositoryError::Decode(e) => Self::Decode(e),
            RepositoryError::Encode(e) => Self::Encode(e),
            RepositoryError::Rejected(never) => match never {},
            RepositoryError::Deleted { stream, .. } => Self::Deleted { saga_id: stream },
            other => Self::Store(StoreError::backend(other.to_string())),
        }
    }
}

/// Runs sagas of type `S` stored in `St`; as an [`EventHandler`] it handles their replies.
pub struct Orchestrator<S: Saga, St> {
    repo: Arc<Repository<SagaInstance<S>, St>>,
}

impl<S: Saga, St> Clone for Orchestrator<S, St> {
    fn clone(&self) -> Self {
        Self {
            repo: Arc::clone(&self.repo),
        }
    }
}

impl<S: Saga, St: EventStore> Orchestrator<S, St> {
    /// An orchestrator keeping its sagas in `store`.
    pub fn new(store: St) -> Self {
        Self {
            repo: Arc::new(Repository::new(store).with_max_attempts(10).with_cache(CACHED_SAGAS)),
        }
    }

    /// The store.
    pub fn store(&self) -> &St {
        self.repo.store()
    }

    /// Saga `id` as its events left it.
    pub async fn load(&self, id: &StreamId) -> Result<SagaInstance<S>, SagaRunError> {
        Ok(self.repo.load(id).await?.state)
    }

    /// Starts saga `id` with `data`; `false` if it had started already (a redelivered trigger),
    /// in which case nothing changes.
    pub async fn start(&self, id: &StreamId, data: S::Data, metadata: &Metadata) -> Result<bool, SagaRunError> {
        let input = SagaInput::Start {
            saga_id: id.to_string(),
            data,
        };
        let done = self.repo.execute(id, &input, metadata).await?;
        Ok(!done.events.is_empty())
    }

    /// Starts saga `id` with `data` in one transaction with `with` (the aggregate that starts
    /// it): both are stored or neither. A conflict in `with` is returned as the store's conflict.
    /// The saga is taken to be new (no read); if it exists, the append conflicts and the saga is
    /// loaded to tell.
    pub async fn start_with(
        &self,
        id: &StreamId,
        data: S::Data,
        metadata: &Metadata,
        with: Vec<StreamAppend>,
    ) -> Result<AppendOutcome, SagaRunError> {
        let input = SagaInput::Start {
            saga_id: id.to_string(),
            data,
        };
        let mut decided = self.repo.decide_new(id, &input, metadata).await?;
        for assumed_new in [true, false] {
            let Some(append) = decided.append.take() else {
                return Err(SagaRunError::AlreadyStarted {
                    saga_id: id.to_string(),
                });
            };
            let mut appends = with.clone();
            appends.push(append);
            match self.repo.store().append(appends).await {
                Ok(outcome) => {
                    self.repo.stored(id, &decided);
                    return Ok(outcome);
                }
                // It exists: its version conflicts, or (where ids are checked first) its
                // derived command ids are stored already.
                Err(e) if assumed_new && (e.is_conflict() || matches!(e, StoreError::DuplicateEventId { .. })) => {
                    decided = self.repo.decide(id, &input, metadata).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        unreachable!("the second try returns")
    }

    /// Handles `reply`; `false` if it changed nothing (a duplicate, a reply to a superseded
    /// command, or to a saga that has ended).
    pub async fn handle_reply(&self, reply: &Reply, metadata: &Metadata) -> Result<bool, SagaRunError> {
        let id = StreamId::new(reply.saga_id.as_str())?;
        let input = SagaInput::Reply(reply.clone());
        let done = self.repo.execute(&id, &input, metadata).await?;
        if done.version == 0 {
            return Err(SagaRunError::NoSuchSaga {
                saga_id: reply.saga_id.clone(),
                reply_id: reply.id,
            });
        }
        Ok(!done.events.is_empty())
    }
}

impl<S: Saga, St: EventStore + 'static> EventHandler for Orchestrator<S, St> {
    async fn handle(&mut self, event: &RecordedEvent) -> Result<(), BoxError> {
        let Some(reply) = Reply::from_event(event)? else {
            return Ok(());
        };
        if reply.saga_type != S::SAGA_TYPE {
            return Ok(());
        }
        let mut metadata = Metadata::by(format!("saga:{}", S::SAGA_TYPE)).caused_by(reply.id);
        metadata.correlation_id = event.metadata.correlation_id;
        self.handle_reply(&reply, &metadata).await?;
        Ok(())
    }
}

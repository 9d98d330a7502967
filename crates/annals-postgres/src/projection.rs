//! Projections (CQRS read models) in the store's PostgreSQL database: the read-model writes and
//! the checkpoint commit in one transaction, so each event takes effect exactly once, whenever the
//! process dies.
//!
//! A projection gets whole batches (so it can write them with one `UNNEST` statement); if a batch
//! fails, the projector finds the failing event by applying them one at a time in savepoints,
//! commits those before it, and tells the runner, whose error policy takes over.

use std::future::Future;

use annals::consume::{BatchFailure, Consumer};
use annals::error::BoxError;
use annals::{RecordedEvent, StoreError};
use tokio_postgres::Transaction;

use crate::PostgresStore;
use crate::consume::{load_checkpoint_in, save_checkpoint_in};

/// A read model kept in the store's PostgreSQL schema.
pub trait PgProjection: Send + Sync + 'static {
    /// Its name: the checkpoint's key and what a projection command (`ftgo projection rebuild`) calls it.
    fn name(&self) -> &str;
    /// Creates its tables if missing.
    fn setup(&self, tx: &Transaction<'_>) -> impl Future<Output = Result<(), BoxError>> + Send;
    /// Drops its tables (a rebuild then sets up and replays).
    fn reset(&self, tx: &Transaction<'_>) -> impl Future<Output = Result<(), BoxError>> + Send;
    /// Applies `events` (in log order) inside the batch's transaction.
    fn apply(
        &self,
        tx: &Transaction<'_>,
        events: &[RecordedEvent],
    ) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// Runs a [`PgProjection`] as a [`Consumer`].
pub struct PgProjector<P> {
    store: PostgresStore,
    projection: P,
}

fn se(e: tokio_postgres::Error) -> StoreError {
    crate::error::db(e)
}

impl<P: PgProjection> PgProjector<P> {
    /// Sets the projection's tables up (if missing) in `store`'s schema.
    pub async fn new(store: PostgresStore, projection: P) -> Result<Self, StoreError> {
        let mut client = store.client().await?;
        let tx = client.transaction().await.map_err(se)?;
        projection.setup(&tx).await.map_err(StoreError::backend)?;
        tx.commit().await.map_err(se)?;
        drop(client);
        Ok(Self { store, projection })
    }

    /// Drops the read model and its checkpoint and sets it up empty, in one transaction.
    pub async fn reset(&self) -> Result<(), StoreError> {
        let mut client = self.store.client().await?;
        let tx = client.transaction().await.map_err(se)?;
        self.projection.reset(&tx).await.map_err(StoreError::backend)?;
        self.projection.setup(&tx).await.map_err(StoreError::backend)?;
        tx.execute("DELETE FROM checkpoints WHERE name = $1", &[&self.projection.name()])
            .await
            .map_err(se)?;
        tx.commit().await.map_err(se)
    }

    /// The store it projects from and into.
    pub fn store(&self) -> &PostgresStore {
        &self.store
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// Applies `events` and moves the checkpoint to `to` (if given), in one transaction.
    async fn commit(&self, events: &[RecordedEvent], to: Option<u64>) -> Result<(), BoxError> {
        let mut client = self.store.client().await?;
        let tx = client.transaction().await?;
        if !events.is_empty() {
            self.projection.apply(&tx, events).await?;
        }
        if let Some(to) = to {
            save_checkpoint_in(&*tx, self.projection.name(), to).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// After a failed batch: applies events one by one in savepoints to find the first that fails,
    /// and commits those before it with the checkpoint. Returns (committed, failing index, error).
    async fn isolate(&self, events: &[RecordedEvent]) -> Result<(usize, usize, BoxError), BoxError> {
        let mut client = self.store.client().await?;
        let mut tx = client.transaction().await?;
        for (i, e) in events.iter().enumerate() {
            let sp = tx.savepoint("one_event").await?;
            match self.projection.apply(&sp, std::slice::from_ref(e)).await {
                Ok(()) => sp.commit().await?,
                Err(error) => {
                    sp.rollback().await?;
                    if i > 0 {
                        save_checkpoint_in(&*tx, self.projection.name(), events[i - 1].global_position).await?;
                    }
                    tx.commit().await?;
                    return Ok((i, i, error));
                }
            }
        }
        // Each passed alone: the batch failed as a whole (a conflict, say). Commit none.
        tx.rollback().await?;
        Ok((0, events.len(), "the batch failed, but each event passed alone".into()))
    }
}

impl<P: PgProjection> Consumer for PgProjector<P> {
    fn name(&self) -> &str {
        self.projection.name()
    }

    async fn checkpoint(&mut self) -> Result<u64, StoreError> {
        let client = self.store.client().await?;
        Ok(load_checkpoint_in(&**client, self.projection.name())
            .await?
            .unwrap_or(0))
    }

    async fn handle_batch(&mut self, events: &[RecordedEvent], to: u64) -> Result<(), BatchFailure> {
        let Err(error) = self.commit(events, Some(to)).await else {
            return Ok(());
        };
        if events.is_empty() {
            return Err(BatchFailure {
                committed: 0,
                index: 0,
                error,
            });
        }
        match self.isolate(events).await {
            Ok((committed, index, error)) => Err(BatchFailure {
                committed,
                index,
                error,
            }),
            Err(e) => Err(BatchFailure {
                committed: 0,
                index: events.len(),
                error: e,
            }),
        }
    }

    async fn handle_again(&mut self, event: &RecordedEvent) -> Result<(), BoxError> {
        self.commit(std::slice::from_ref(event), None).await
    }
}

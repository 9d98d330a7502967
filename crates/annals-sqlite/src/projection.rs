//! Projections (CQRS read models) in the store's own SQLite file: the read-model writes and the
//! checkpoint commit in one transaction, so each event takes effect exactly once, whenever the
//! process dies.
//!
//! Implement [`SqliteProjection`], wrap it in a [`SqliteProjector`] and drive that with an
//! [`annals::consume::Runner`] (`run_until_caught_up` for a rebuild, `run` to follow live).

use std::sync::{Arc, Mutex};

use annals::consume::{BatchFailure, Consumer};
use annals::error::BoxError;
use annals::{RecordedEvent, StoreError};
use rusqlite::Transaction;

use crate::SqliteStore;
use crate::consume::{load_checkpoint_in, save_checkpoint_in};

/// A read model kept in the store's SQLite file.
pub trait SqliteProjection: Send + 'static {
    /// Its name: the checkpoint's key and what a projection command (`ftgo projection rebuild`) calls it.
    fn name(&self) -> &str;
    /// Creates its tables if missing.
    fn setup(&mut self, tx: &Transaction<'_>) -> Result<(), BoxError>;
    /// Drops its tables (a rebuild then sets up and replays).
    fn reset(&mut self, tx: &Transaction<'_>) -> Result<(), BoxError>;
    /// Applies one event inside the batch's transaction.
    fn apply(&mut self, tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), BoxError>;
}

/// A failed projection transaction: which event, and why (`index == len`: the commit failed).
struct Failed(usize, BoxError);

impl From<StoreError> for Failed {
    fn from(e: StoreError) -> Self {
        Self(usize::MAX, e.into())
    }
}

/// Runs a [`SqliteProjection`] as a [`Consumer`].
pub struct SqliteProjector<P> {
    store: SqliteStore,
    name: String,
    projection: Arc<Mutex<P>>,
}

fn lock<P>(p: &Mutex<P>) -> std::sync::MutexGuard<'_, P> {
    p.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<P: SqliteProjection> SqliteProjector<P> {
    /// Sets the projection's tables up (if missing) in `store`.
    pub async fn new(store: SqliteStore, projection: P) -> Result<Self, StoreError> {
        let name = projection.name().to_owned();
        let projection = Arc::new(Mutex::new(projection));
        let p = projection.clone();
        store
            .write(move |tx| lock(&p).setup(tx).map_err(StoreError::backend))
            .await?;
        Ok(Self {
            store,
            name,
            projection,
        })
    }

    /// Drops the read model and its checkpoint and sets it up empty, in one transaction: the next
    /// run replays the whole log into it.
    pub async fn reset(&self) -> Result<(), StoreError> {
        let p = self.projection.clone();
        let name = self.name.clone();
        self.store
            .write(move |tx| {
                let mut p = lock(&p);
                p.reset(tx).map_err(StoreError::backend)?;
                p.setup(tx).map_err(StoreError::backend)?;
                tx.execute("DELETE FROM checkpoints WHERE name = ?1", [&name])
                    .map_err(crate::error::db)?;
                Ok(())
            })
            .await
    }

    /// The store it projects from and into.
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// The projection (to query it, say).
    pub fn projection(&self) -> std::sync::MutexGuard<'_, P> {
        lock(&self.projection)
    }

    /// Applies `events` and moves the checkpoint to `to` (if given), in one transaction.
    async fn commit(&self, events: Vec<RecordedEvent>, to: Option<u64>) -> Result<(), Failed> {
        let p = self.projection.clone();
        let name = self.name.clone();
        self.store
            .write(move |tx| {
                let mut p = lock(&p);
                for (i, e) in events.iter().enumerate() {
                    p.apply(tx, e).map_err(|err| Failed(i, err))?;
                }
                if let Some(to) = to {
                    save_checkpoint_in(tx, &name, to)?;
                }
                Ok(())
            })
            .await
    }
}

impl<P: SqliteProjection> Consumer for SqliteProjector<P> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn checkpoint(&mut self) -> Result<u64, StoreError> {
        let name = self.name.clone();
        Ok(self
            .store
            .read_with(move |conn| load_checkpoint_in(conn, &name))
            .await?
            .unwrap_or(0))
    }

    async fn handle_batch(&mut self, events: &[RecordedEvent], to: u64) -> Result<(), BatchFailure> {
        let Err(Failed(index, error)) = self.commit(events.to_vec(), Some(to)).await else {
            return Ok(());
        };
        if index >= events.len() {
            return Err(BatchFailure {
                committed: 0,
                index: events.len(),
                error,
            });
        }
        // Everything rolled back: commit what precedes the failing event on its own.
        let mut committed = 0;
        if index > 0 {
            let before = events[..index].to_vec();
            let to = before[index - 1].global_position;
            if self.commit(before, Some(to)).await.is_ok() {
                committed = index;
            }
        }
        Err(BatchFailure {
            committed,
            index,
            error,
        })
    }

    async fn handle_again(&mut self, event: &RecordedEvent) -> Result<(), BoxError> {
        self.commit(vec![event.clone()], None).await.map_err(|Failed(_, e)| e)
    }
}

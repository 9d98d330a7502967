//! The background sequencer that gives committed events their global positions (see
//! `sql/positions.sql`), and what a store knows of its progress.

use std::sync::Arc;
use std::time::Duration;

use annals::StoreError;
use deadpool_postgres::Pool;
use tokio::sync::{Notify, watch};

use crate::advance_head;

/// Counts of appends committed by a store and sequenced by its background sequencer.
#[derive(Default)]
pub(crate) struct SequencerProgress {
    pub(crate) committed: std::sync::atomic::AtomicU64,
    sequenced: std::sync::atomic::AtomicU64,
    /// Woken after each background run.
    advanced: Notify,
}

impl SequencerProgress {
    pub(crate) fn all_sequenced(&self) -> bool {
        use std::sync::atomic::Ordering::Acquire;
        self.sequenced.load(Acquire) >= self.committed.load(Acquire)
    }

    /// Waits until the background sequencer has sequenced every append committed so far, at
    /// most `patience`; false if it has not.
    pub(crate) async fn caught_up(&self, patience: Duration) -> bool {
        use std::sync::atomic::Ordering::Acquire;
        let target = self.committed.load(Acquire);
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let advanced = self.advanced.notified();
            if self.sequenced.load(Acquire) >= target {
                return true;
            }
            if tokio::time::timeout_at(deadline, advanced).await.is_err() {
                return self.sequenced.load(Acquire) >= target;
            }
        }
    }
}

/// How long a reader waits for the background sequencer to sequence this store's own appends
/// before it runs the sequencer itself (taking its lock).
pub(crate) const SEQUENCER_PATIENCE: Duration = Duration::from_millis(50);

/// How long the background sequencer lets appends gather after a wake-up.
const SEQUENCER_GATHER: Duration = Duration::from_millis(1);

/// Runs the sequencer once on a pooled connection; returns the log's head. `check_first`: look
/// for work before taking the sequencer's lock (readers); the background sequencer, woken by
/// appends, skips the look.
pub(crate) async fn assign_positions(pool: &Pool, check_first: bool) -> Result<u64, StoreError> {
    let client = pool.get().await.map_err(StoreError::backend)?;
    let stmt = client
        .prepare_cached("SELECT assign_positions($1)")
        .await
        .map_err(StoreError::backend)?;
    let head: i64 = client
        .query_one(&stmt, &[&check_first])
        .await
        .map_err(StoreError::backend)?
        .get(0);
    Ok(head as u64)
}

/// The background sequencer: after appends (coalesced: a burst of appends wakes it once or
/// twice), gives their events global positions, so followers see them within milliseconds
/// without any appender waiting for it.
pub(crate) fn spawn_sequencer(
    pool: Pool,
    wake: Arc<Notify>,
    progress: Arc<SequencerProgress>,
    head: watch::Sender<u64>,
) -> tokio::task::JoinHandle<()> {
    use std::sync::atomic::Ordering::{AcqRel, Acquire};
    tokio::spawn(async move {
        loop {
            wake.notified().await;
            // Let a burst of appends gather, so one run sequences many.
            tokio::time::sleep(SEQUENCER_GATHER).await;
            let upto = progress.committed.load(Acquire);
            match assign_positions(&pool, false).await {
                Ok(position) => {
                    advance_head(&head, position);
                    progress.sequenced.fetch_max(upto, AcqRel);
                    progress.advanced.notify_waiters();
                }
                Err(e) => {
                    // Nothing is lost: the next append, read or waiting reader sequences instead.
                    tracing::warn!(error = %e, "annals-postgres: background sequencing failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    })
}

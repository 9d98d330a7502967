//! The background sequencer that gives committed events their global positions (see
//! `sql/positions.sql`), and what a store knows of its progress.

use std::sync::Arc;
use std::time::Duration;

use crate::Connections;
use annals::StoreError;
use tokio::sync::{Notify, watch};

use crate::advance_head;

/// Counts of appends committed by a store and sequenced by its background sequencer.
#[derive(Default)]
pub(crate) struct SequencerProgress {
    pub(crate) committed: std::sync::atomic::AtomicU64,
    sequenced: std::sync::atomic::AtomicU64,
    /// Background runs started, and the number of the last one that finished (runs are numbered
    /// from 1 in the order they start; one runs at a time).
    runs_started: std::sync::atomic::AtomicU64,
    runs_done: std::sync::atomic::AtomicU64,
    /// Woken after each background run.
    advanced: Notify,
}

impl SequencerProgress {
    pub(crate) fn all_sequenced(&self) -> bool {
        use std::sync::atomic::Ordering::Acquire;
        self.sequenced.load(Acquire) >= self.committed.load(Acquire)
    }

    /// The number of the last background run started so far.
    pub(crate) fn runs_started(&self) -> u64 {
        self.runs_started.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The appends committed through this store so far.
    pub(crate) fn committed(&self) -> u64 {
        self.committed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits, at most `patience`, for the background sequencer, when it has appends of this store
    /// up to `committed` to sequence. True once a run numbered above `begun` has finished: that
    /// run started after `begun` was read, so every transaction committed before then (in any
    /// process) has its positions. False once those appends are sequenced by an earlier run
    /// (nothing more may come), or after `patience`.
    pub(crate) async fn ran_since(&self, begun: u64, committed: u64, patience: Duration) -> bool {
        use std::sync::atomic::Ordering::Acquire;
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let advanced = self.advanced.notified();
            if self.runs_done.load(Acquire) > begun {
                return true;
            }
            if self.sequenced.load(Acquire) >= committed || tokio::time::timeout_at(deadline, advanced).await.is_err() {
                return self.runs_done.load(Acquire) > begun;
            }
        }
    }
}

/// How long a reader waits for the background sequencer to sequence this store's own appends
/// before it runs the sequencer itself (taking its lock).
pub(crate) const SEQUENCER_PATIENCE: Duration = Duration::from_millis(50);

/// How long the background sequencer lets appends gather after a wake-up.
const SEQUENCER_GATHER: Duration = Duration::from_millis(1);

/// The least time between the starts of two background runs.
const SEQUENCER_PERIOD: Duration = Duration::from_millis(3);

/// Runs the sequencer once on a pooled connection; returns the log's head. `check_first`: look
/// for work before taking the sequencer's lock (readers); the background sequencer, woken by
/// appends, skips the look.
pub(crate) async fn assign_positions(pool: &Connections, check_first: bool) -> Result<u64, StoreError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached("SELECT assign_positions($1)")
        .await
        .map_err(crate::error::db)?;
    let head: i64 = client
        .query_one(&stmt, &[&check_first])
        .await
        .map_err(crate::error::db)?
        .get(0);
    Ok(head as u64)
}

/// The background sequencer: after appends (coalesced: a burst of appends wakes it once or
/// twice), gives their events global positions, so followers see them within milliseconds
/// without any appender waiting for it.
pub(crate) fn spawn_sequencer(
    pool: Connections,
    wake: Arc<Notify>,
    progress: Arc<SequencerProgress>,
    head: watch::Sender<u64>,
) -> tokio::task::JoinHandle<()> {
    use std::sync::atomic::Ordering::{AcqRel, Acquire};
    tokio::spawn(async move {
        let mut last_run = tokio::time::Instant::now();
        loop {
            wake.notified().await;
            // Let a burst of appends gather, so one run sequences many; under a steady stream of
            // appends, runs are at least SEQUENCER_PERIOD apart.
            let now = tokio::time::Instant::now();
            tokio::time::sleep_until((now + SEQUENCER_GATHER).max(last_run + SEQUENCER_PERIOD)).await;
            last_run = tokio::time::Instant::now();
            let upto = progress.committed.load(Acquire);
            let run = progress.runs_started.fetch_add(1, AcqRel) + 1;
            match assign_positions(&pool, false).await {
                Ok(position) => {
                    advance_head(&head, position);
                    progress.sequenced.fetch_max(upto, AcqRel);
                    progress.runs_done.fetch_max(run, AcqRel);
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

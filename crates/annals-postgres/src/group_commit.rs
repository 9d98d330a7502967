//! Group commit: one-stream appends that arrive while others are in flight go to the server
//! together, as one multi-stream append — one statement, one transaction, one WAL flush for all
//! of them — instead of one each. Under concurrent commands the commit (waiting for the flush)
//! is what an append costs on PostgreSQL; a batch of 16 pays it once.
//!
//! Each append keeps its own outcome: a batch is atomic, so when it is refused as a whole (a
//! conflict, a duplicate event id, a deleted stream, a lost connection — anything), every append
//! of it is run again on its own and answered with its own result, exactly as without grouping.
//! A batch holds at most one append per stream, its streams in a fixed order (so two batches in
//! flight take their stream rows' locks in the same order). A lone append goes out at once, in a
//! batch of one, on the one-stream statement; batches form only while earlier ones are in flight.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use annals::{AppendOutcome, StoreError, StreamAppend, StreamAppended, StreamId};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::Connections;

/// The most appends in one batch.
const MAX_BATCH: usize = 64;

/// One append waiting for its batch, and where its outcome goes.
struct Job {
    append: StreamAppend,
    done: oneshot::Sender<Result<AppendOutcome, StoreError>>,
}

/// The queue of one-stream appends, served by a background task.
pub(crate) struct GroupCommit {
    jobs: mpsc::UnboundedSender<Job>,
    /// Batches (or lone appends) on the server now, at most `in_flight`.
    slots: Arc<Semaphore>,
    /// Jobs sent to the task and not yet in a batch.
    queued: Arc<AtomicUsize>,
    connections: Connections,
}

impl GroupCommit {
    /// Starts the task that batches appends, with at most `in_flight` batches on the server at
    /// once (each on a pooled connection). Returns the queue and the task (to abort on drop).
    pub(crate) fn start(connections: Connections, in_flight: usize) -> (Self, tokio::task::JoinHandle<()>) {
        let (jobs, queue) = mpsc::unbounded_channel();
        let slots = Arc::new(Semaphore::new(in_flight.max(1)));
        let queued = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(serve(queue, connections.clone(), slots.clone(), queued.clone()));
        (
            Self {
                jobs,
                slots,
                queued,
                connections,
            },
            task,
        )
    }

    /// Appends `append` (already validated) and returns its own outcome: at once on a free slot
    /// when nothing is queued (no hand-off to the task), else in the next batch.
    pub(crate) async fn append(&self, append: StreamAppend) -> Result<AppendOutcome, StoreError> {
        if self.queued.load(Ordering::Acquire) == 0
            && let Ok(slot) = self.slots.clone().try_acquire_owned()
        {
            let outcome = self.alone(&append).await;
            drop(slot);
            return outcome;
        }
        let (done, outcome) = oneshot::channel();
        self.queued.fetch_add(1, Ordering::AcqRel);
        if let Err(mpsc::error::SendError(job)) = self.jobs.send(Job { append, done }) {
            // The task is gone (its runtime shut down while this store lives on): no grouping.
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return self.alone(&job.append).await;
        }
        outcome.await.map_err(|_| StoreError::Closed)?
    }

    /// `append` on its own, on a pooled connection.
    async fn alone(&self, append: &StreamAppend) -> Result<AppendOutcome, StoreError> {
        let client = self.connections.get().await?;
        crate::append::append(&client, std::slice::from_ref(append)).await
    }
}

/// Takes jobs as they come; whenever a batch may go out, sends everything waiting (up to
/// `MAX_BATCH`, one append per stream) as one.
async fn serve(
    mut queue: mpsc::UnboundedReceiver<Job>,
    connections: Connections,
    slots: Arc<Semaphore>,
    queued: Arc<AtomicUsize>,
) {
    let mut waiting: VecDeque<Job> = VecDeque::new();
    loop {
        if waiting.is_empty() {
            match queue.recv().await {
                Some(job) => waiting.push_back(job),
                None => return,
            }
        }
        // Wait for a free slot, taking in what arrives meanwhile: that is the batch.
        let slot = loop {
            tokio::select! {
                biased;
                slot = slots.clone().acquire_owned() => break slot.expect("the semaphore is never closed"),
                job = queue.recv() => match job {
                    Some(job) => waiting.push_back(job),
                    None if waiting.is_empty() => return,
                    None => {}
                },
            }
        };
        while let Ok(job) = queue.try_recv() {
            waiting.push_back(job);
        }
        let batch = take_batch(&mut waiting);
        queued.fetch_sub(batch.len(), Ordering::AcqRel);
        let connections = connections.clone();
        tokio::spawn(async move {
            run_batch(&connections, batch).await;
            drop(slot);
        });
    }
}

/// The oldest waiting jobs, at most one per stream and `MAX_BATCH` in all, sorted by stream;
/// the rest keep their order for the next batch.
fn take_batch(waiting: &mut VecDeque<Job>) -> Vec<Job> {
    let mut streams = HashSet::new();
    let mut batch = Vec::new();
    let mut rest = VecDeque::new();
    while let Some(job) = waiting.pop_front() {
        if batch.len() < MAX_BATCH && streams.insert(job.append.stream_id.clone()) {
            batch.push(job);
        } else {
            rest.push_back(job);
        }
    }
    *waiting = rest;
    batch.sort_by(|a, b| a.append.stream_id.as_str().cmp(b.append.stream_id.as_str()));
    batch
}

/// Runs one batch on one pooled connection and answers every job of it.
async fn run_batch(connections: &Connections, batch: Vec<Job>) {
    let (appends, dones): (Vec<StreamAppend>, Vec<_>) = batch.into_iter().map(|j| (j.append, j.done)).unzip();
    if appends.len() > 1
        && let Some(mut outcomes) = batch_outcomes(connections, &appends).await
    {
        for (append, done) in appends.iter().zip(dones) {
            let appended = outcomes
                .remove(&append.stream_id)
                .expect("one outcome per stream of the batch");
            let _ = done.send(Ok(AppendOutcome {
                streams: vec![appended],
            }));
        }
        return;
    }
    // A batch of one, or a batch refused as a whole: each append on its own, with its own result
    // (the batch's connection is back in the pool: no path holds one while waiting for another).
    for (append, done) in appends.iter().zip(dones) {
        let outcome = match connections.get().await {
            Ok(client) => crate::append::append(&client, std::slice::from_ref(append)).await,
            Err(e) => Err(e),
        };
        let _ = done.send(outcome);
    }
}

/// The batch as one multi-stream append: each stream's outcome, or `None` if the batch was
/// refused as a whole (or could not be sent).
async fn batch_outcomes(
    connections: &Connections,
    appends: &[StreamAppend],
) -> Option<HashMap<StreamId, StreamAppended>> {
    let client = connections.get().await.ok()?;
    let outcome = crate::append::append(&client, appends).await.ok()?;
    let by_stream: HashMap<_, _> = outcome.streams.into_iter().map(|s| (s.stream_id.clone(), s)).collect();
    (by_stream.len() == appends.len() && appends.iter().all(|a| by_stream.contains_key(&a.stream_id)))
        .then_some(by_stream)
}

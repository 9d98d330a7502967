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

/// The most payload bytes in one batch (a batch takes at least one append, whatever its size).
const MAX_BATCH_BYTES: usize = 4 << 20;

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

/// The oldest waiting jobs, at most one per stream, `MAX_BATCH` in all and `MAX_BATCH_BYTES` of
/// payloads, sorted by stream; the rest keep their order for the next batch.
fn take_batch(waiting: &mut VecDeque<Job>) -> Vec<Job> {
    let mut streams = HashSet::new();
    let mut batch = Vec::new();
    let mut bytes = 0;
    let mut rest = VecDeque::new();
    while let Some(job) = waiting.pop_front() {
        let size: usize = job.append.events.iter().map(|e| e.payload.get().len()).sum();
        let fits = batch.is_empty() || (batch.len() < MAX_BATCH && bytes + size <= MAX_BATCH_BYTES);
        if fits && !streams.contains(&job.append.stream_id) {
            streams.insert(job.append.stream_id.clone());
            bytes += size;
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

#[cfg(test)]
mod tests {
    use super::*;
    use annals::{ExpectedVersion, NewEvent};

    fn job(stream: &str, payload: &str) -> Job {
        let event = NewEvent::from_json("Added", payload.to_owned()).unwrap();
        let append = StreamAppend::new(
            StreamId::new(stream).unwrap(),
            "Tally",
            ExpectedVersion::Any,
            vec![event],
        );
        Job {
            append,
            done: oneshot::channel().0,
        }
    }

    fn streams(jobs: impl IntoIterator<Item = Job>) -> Vec<String> {
        jobs.into_iter().map(|j| j.append.stream_id.to_string()).collect()
    }

    #[test]
    fn a_batch_takes_one_append_per_stream_sorted_and_leaves_the_rest_in_order() {
        let mut waiting: VecDeque<Job> = ["c", "a", "c", "b", "a"].iter().map(|s| job(s, "{}")).collect();
        let batch = take_batch(&mut waiting);
        assert_eq!(streams(batch), ["a", "b", "c"]);
        assert_eq!(streams(waiting), ["c", "a"]);
    }

    #[test]
    fn a_batch_stops_at_its_count_and_byte_limits_but_always_takes_one() {
        let mut waiting: VecDeque<Job> = (0..70).map(|i| job(&format!("s{i:02}"), "{}")).collect();
        assert_eq!(take_batch(&mut waiting).len(), MAX_BATCH);
        assert_eq!(
            streams(waiting)[0],
            format!("s{MAX_BATCH:02}"),
            "the rest keep their order"
        );

        let big = format!("\"{}\"", "x".repeat(1_000_000));
        let mut waiting: VecDeque<Job> = (0..5).map(|i| job(&format!("big{i}"), &big)).collect();
        assert_eq!(take_batch(&mut waiting).len(), 4, "4 MiB of payloads at most");
        assert_eq!(waiting.len(), 1);

        let huge = format!("\"{}\"", "x".repeat(MAX_BATCH_BYTES + 1));
        let mut waiting: VecDeque<Job> = VecDeque::from([job("huge", &huge), job("small", "{}")]);
        assert_eq!(
            streams(take_batch(&mut waiting)),
            ["huge"],
            "an oversized append still goes"
        );
        assert_eq!(streams(waiting), ["small"]);
    }
}

//! The relay's second source: transaction-log tailing (DESIGN §6). A logical replication slot
//! with `pgoutput` streams the inserts into `events` and `log`, in commit order, through
//! `pgwire-replication`; no query polls the tables.
//!
//! Events arrive in their appender's transaction and are kept until the sequencer's transaction
//! (which always commits after them) gives them positions in `log`; each sequencer transaction's
//! groups are then published in position order, so the broker sees the same order as the global
//! log and the same `Annals-Position` headers as with polling. An event the stream did not carry
//! (inserted before the slot existed) is read from the store instead.
//!
//! Batches: a sequencer transaction's events are published as soon as the stream has nothing
//! more ready; under load, the transactions that arrived meanwhile go out as one batch (up to
//! 500 events), so a busy relay does not pay a broker round trip per transaction.
//!
//! Progress: the cursor `relay.<name>` (the last published position, shared with the polling
//! relay of that name, so either can take over) is stored after the broker acknowledged — at
//! once when the relay is idle, at most every 100 ms while it is busy, as the polling relay
//! does (a restart repeats what was published since, which the broker and the inbox absorb); the slot
//! is acknowledged up to the commit of the oldest transaction whose events are still waiting for
//! positions, else to the last fully published transaction — never further, so a restart
//! streams again everything not yet published (positions at or below the cursor are skipped).
//! The relay takes the lease `<name>` first, as the polling relay does; at start it publishes
//! from the cursor to the head by reading the log, then follows the slot.

mod pgoutput;
mod rows;
mod slots;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use annals::consume::Checkpoints;
use annals::consume::{Backoff, Trouble};
use annals::relay::{Leases, Publisher, RelayError, RelayProgress};
use annals::{EventStore, ReadStream, RecordedEvent, StoreError, StreamId};
use pgwire_replication::{Lsn, ReplicationClient, ReplicationConfig, ReplicationEvent, TlsConfig};

use crate::PostgresStore;
use pgoutput::{Message, Relation};
use rows::{event_of, group_of};
pub use slots::{Dropped, SlotStatus, drop_slot, publication_name, slot_name, slots};

/// How often a busy tailing relay stores its cursor (an idle one stores it at once).
const CURSOR_EVERY: Duration = Duration::from_millis(100);

/// The most events published as one batch (several sequencer transactions' worth under load).
const PUBLISH_BATCH: usize = 500;

/// `future`'s output if it is ready at its first poll; else `None` (the future is dropped, so it
/// must be cancel-safe, as a channel's `recv` is).
async fn ready_now<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
        std::task::Poll::Ready(output) => std::task::Poll::Ready(Some(output)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
}

/// Publishes the store's events by tailing its transaction log; see the module docs.
pub struct TailRelay<P> {
    store: PostgresStore,
    publisher: P,
    name: String,
    holder: String,
    lease_ttl: Duration,
    upcasters: Option<annals::upcast::Upcasters>,
}

/// Events waiting for their positions, with the commit LSN of their transaction; the oldest such
/// LSN (how far the slot may be acknowledged) is kept by count per LSN, so no commit scans them.
#[derive(Default)]
struct Waiting {
    events: HashMap<(String, u64), (RecordedEvent, u64, Instant)>,
    per_lsn: BTreeMap<u64, usize>,
}

impl Waiting {
    fn insert(&mut self, e: RecordedEvent, lsn: u64) {
        let key = (e.stream_id.to_string(), e.version);
        if let Some((_, old, _)) = self.events.insert(key, (e, lsn, Instant::now())) {
            self.forget_lsn(old);
        }
        *self.per_lsn.entry(lsn).or_default() += 1;
    }

    fn take(&mut self, stream: &str, version: u64) -> Option<RecordedEvent> {
        let (e, lsn, _) = self.events.remove(&(stream.to_owned(), version))?;
        self.forget_lsn(lsn);
        Some(e)
    }

    fn forget_lsn(&mut self, lsn: u64) {
        if let Some(n) = self.per_lsn.get_mut(&lsn) {
            *n -= 1;
            if *n == 0 {
                self.per_lsn.remove(&lsn);
            }
        }
    }

    /// The commit LSN of the oldest transaction with an event still waiting.
    fn oldest_lsn(&self) -> Option<u64> {
        self.per_lsn.keys().next().copied()
    }

    fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    fn any_older_than(&self, age: Duration) -> bool {
        self.events.values().any(|(_, _, at)| at.elapsed() > age)
    }
}

/// A transaction's inserts, collected until its commit.
#[derive(Default)]
struct Transaction {
    events: Vec<RecordedEvent>,
    groups: Vec<(u64, String, u64, u64)>,
}

impl<P: Publisher> TailRelay<P> {
    /// Relay `name` (lease, cursor `relay.<name>`, slot `annals_<schema>_<name>`) of `store` to
    /// `publisher`, with a 5 s lease.
    pub fn new(name: impl Into<String>, store: PostgresStore, publisher: P) -> Self {
        Self {
            store,
            publisher,
            name: name.into(),
            holder: format!("{}-{}", std::process::id(), uuid::Uuid::now_v7()),
            lease_ttl: Duration::from_secs(5),
            upcasters: None,
        }
    }

    /// Publishes today's shape of old events (DESIGN §1.7), as a polling relay over an
    /// [`Upcasting`](annals::upcast::Upcasting) store does.
    pub fn with_upcasters(mut self, upcasters: annals::upcast::Upcasters) -> Self {
        self.upcasters = Some(upcasters);
        self
    }

    /// Upcasts (if set up to) and publishes one batch. A broker failure keeps its kind (a
    /// transient one by default).
    async fn publish(&self, events: Vec<RecordedEvent>) -> Result<(), RelayError> {
        let events = match &self.upcasters {
            Some(u) => events.into_iter().map(|e| u.upcast(e)).collect::<Result<Vec<_>, _>>()?,
            None => events,
        };
        self.publisher
            .publish(&events)
            .await
            .map_err(|error| RelayError::Publish {
                relay: self.name.clone(),
                kind: annals::kind_of(error.as_ref()).unwrap_or(annals::ErrorKind::Unavailable),
                error,
            })
    }

    /// The lease's time to live.
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_millis(300));
        self
    }

    /// Runs until `stop` completes: lease, publication and slot (created if missing), catch-up
    /// from the cursor, then the slot's stream. Transient failures of the database or the
    /// broker are waited out by the delivery policy (logged, in the `health` table as
    /// `relay.<name>`), resuming from the slot; a permanent one (`wal_level` not `logical`, a
    /// relay name that makes no slot name, a broker that refuses the stream) ends the run with
    /// its error.
    pub async fn run(
        &mut self,
        stop: impl std::future::Future<Output = ()> + Send,
    ) -> Result<RelayProgress, RelayError> {
        let mut stop = std::pin::pin!(stop);
        let mut progress = RelayProgress::default();
        let mut trouble = Trouble::new(
            format!("relay.{}", self.name),
            Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
        );
        let result = loop {
            tokio::select! {
                () = &mut stop => {
                    // What was published since the cursor was last stored.
                    if progress.published > 0 {
                        let _ = self.store.save_checkpoint(&format!("relay.{}", self.name), progress.position).await;
                    }
                    break Ok(progress);
                }
                ran = self.lead(&mut progress) => match ran {
                    Ok(()) => trouble.recovered(&self.store).await,
                    Err(e) if e.kind().is_transient() => {
                        progress.retries += 1;
                        trouble.retry(&self.store, "tailing the transaction log", &e).await;
                    }
                    Err(e) => {
                        trouble.stopped(&self.store, "tailing the transaction log", &e).await;
                        break Err(e);
                    }
                },
            }
        };
        let _ = self.store.release_lease(&self.name, &self.holder).await;
        result
    }

    /// Takes or renews the lease; a store failure is the session's failure (retried by `run`
    /// if transient, and shown), not a silent "not held".
    async fn hold(&self) -> Result<bool, StoreError> {
        self.store.hold_lease(&self.name, &self.holder, self.lease_ttl).await
    }

    /// One session: returns Ok when the lease was lost, Err when the stream or the broker failed.
    async fn lead(&mut self, progress: &mut RelayProgress) -> Result<(), RelayError> {
        let renew_every = self.lease_ttl / 3;
        // A name that makes no slot name is refused before the lease is even asked for.
        let slot = slot_name(self.store.schema(), &self.name);
        if !crate::schema::valid_schema_name(&slot) {
            return Err(StoreError::misconfigured(
                format!(
                    "relay name {:?} makes an invalid replication slot name {slot:?}: use lower-case letters, digits \
                     and _",
                    self.name
                ),
                None,
            )
            .into());
        }
        while !self.hold().await? {
            tokio::time::sleep(renew_every).await;
        }
        let start = self.ensure_slot().await?;
        let cursor_name = format!("relay.{}", self.name);
        let mut cursor = self.store.load_checkpoint(&cursor_name).await?.unwrap_or(0);
        // Catch up by reading the log (history from before the slot, or a cursor left behind).
        let head = self.store.head_position().await?;
        while cursor < head {
            let events = self.store.read_all(cursor, 500).await?;
            let Some(last) = events.last().map(|e| e.global_position) else {
                break;
            };
            let n = events.len() as u64;
            self.publish(events).await?;
            self.store.save_checkpoint(&cursor_name, last).await?;
            progress.published += n;
            cursor = last;
        }
        progress.position = cursor;

        let mut client = ReplicationClient::connect(self.replication_config(start)?)
            .await
            .map_err(|e| StoreError::unavailable(format!("cannot start streaming from slot {slot}: {e}"), None))?;
        let mut relations: HashMap<u32, Relation> = HashMap::new();
        let mut txn = Transaction::default();
        let mut waiting = Waiting::default();
        let mut renewed = Instant::now();
        let schema = self.store.schema().to_owned();
        // Placed events not yet published, and the slot position to acknowledge once they are.
        let mut pending: Vec<RecordedEvent> = Vec::new();
        let mut pending_lsn: Option<u64> = None;
        let mut saved = cursor;
        let mut saved_at = Instant::now();
        loop {
            if renewed.elapsed() >= renew_every {
                if !self.hold().await? {
                    let _ = client.shutdown().await;
                    return Ok(());
                }
                renewed = Instant::now();
                // Events of an appender that died before its sequencer ran: sequence them.
                if waiting.any_older_than(renew_every) {
                    self.store.assign_positions().await?;
                }
            }
            if saved < cursor && pending.is_empty() && saved_at.elapsed() >= CURSOR_EVERY {
                self.store.save_checkpoint(&cursor_name, cursor).await?;
                (saved, saved_at) = (cursor, Instant::now());
            }
            // With events to publish, take only what the stream has ready (several sequencer
            // transactions then go out as one batch); with a cursor to store, wait no longer than
            // CURSOR_EVERY; else until the lease wants renewing.
            let received = if !pending.is_empty() {
                // Polled once, not through a zero timeout: a timer fires only at its next tick
                // (a millisecond), which every published batch would wait for.
                ready_now(client.recv()).await.ok_or(())
            } else {
                let wait = if saved < cursor { CURSOR_EVERY } else { renew_every };
                tokio::time::timeout(wait, client.recv()).await.map_err(|_| ())
            };
            let event = match received {
                Ok(event) if pending.len() < PUBLISH_BATCH => event,
                ready => {
                    if !pending.is_empty() {
                        let batch = std::mem::take(&mut pending);
                        let last = batch.last().map_or(cursor, |e| e.global_position);
                        let n = batch.len() as u64;
                        self.publish(batch).await?;
                        progress.published += n;
                        progress.position = last;
                        cursor = last;
                        if let Some(lsn) = pending_lsn.take() {
                            client.update_applied_lsn(Lsn::from_u64(lsn));
                        }
                    } else if ready.is_err() && saved < cursor {
                        // Nothing came for CURSOR_EVERY: idle, so store the cursor now.
                        self.store.save_checkpoint(&cursor_name, cursor).await?;
                        (saved, saved_at) = (cursor, Instant::now());
                    }
                    match ready {
                        Ok(event) => event,
                        Err(_) => continue,
                    }
                }
            };
            let event =
                event.map_err(|e| StoreError::unavailable(format!("the replication stream failed: {e}"), None))?;
            match event {
                None => return Err(StoreError::unavailable("the replication stream ended", None).into()),
                Some(ReplicationEvent::Begin { .. }) => txn = Transaction::default(),
                Some(ReplicationEvent::XLogData { data, .. }) => {
                    match pgoutput::decode(&data).map_err(|e| {
                        StoreError::unavailable(format!("a replication message does not decode: {e}"), None)
                    })? {
                        Message::Relation(oid, r) => {
                            relations.insert(oid, r);
                        }
                        Message::Insert(insert) => {
                            let Some(rel) = relations.get(&insert.relation) else {
                                continue;
                            };
                            if rel.schema != schema {
                                continue;
                            }
                            let row = pgoutput::by_name(rel, &insert);
                            match rel.name.as_str() {
                                "events" => txn.events.push(event_of(&row)?),
                                "log" => txn.groups.push(group_of(&row)?),
                                _ => {}
                            }
                        }
                        Message::Other => {}
                    }
                }
                Some(ReplicationEvent::Commit { lsn, end_lsn, .. }) => {
                    let txn = std::mem::take(&mut txn);
                    for e in txn.events {
                        waiting.insert(e, lsn.as_u64());
                    }
                    if !txn.groups.is_empty() {
                        let after = pending.last().map_or(cursor, |e| e.global_position);
                        pending.extend(self.place(txn.groups, &mut waiting, after).await?);
                    }
                    let safe = waiting.oldest_lsn().unwrap_or(end_lsn.as_u64());
                    if pending.is_empty() {
                        client.update_applied_lsn(Lsn::from_u64(safe));
                    } else {
                        pending_lsn = Some(safe);
                    }
                }
                Some(ReplicationEvent::KeepAlive { wal_end, .. }) => {
                    if waiting.is_empty() && txn.events.is_empty() && pending.is_empty() {
                        client.update_applied_lsn(wal_end);
                    }
                }
                Some(ReplicationEvent::StoppedAt { .. }) => {
                    return Err(StoreError::unavailable("the replication stream stopped", None).into());
                }
                Some(ReplicationEvent::Message { .. }) => {}
            }
        }
    }

    /// The events of a sequencer transaction's groups, with their positions, in position order,
    /// without those at or below `cursor`; events the stream did not carry are read from the store.
    async fn place(
        &self,
        mut groups: Vec<(u64, String, u64, u64)>,
        waiting: &mut Waiting,
        cursor: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        groups.sort_by_key(|g| g.0);
        let mut out = Vec::new();
        for (first_position, stream, first_version, count) in groups {
            let mut missing = false;
            let mut events = Vec::with_capacity(count as usize);
            for i in 0..count {
                match waiting.take(&stream, first_version + i) {
                    Some(mut e) => {
                        e.global_position = first_position + i;
                        events.push(e);
                    }
                    None => missing = true,
                }
            }
            if missing {
                let id = StreamId::new(stream.clone())?;
                events = self
                    .store
                    .read_stream(&id, ReadStream::from_version(first_version).limit(count as usize))
                    .await?;
                if events.len() as u64 != count {
                    return Err(StoreError::unavailable(
                        format!(
                            "log group {stream} v{first_version}+{count} has {} events in the store",
                            events.len()
                        ),
                        None,
                    ));
                }
            }
            out.extend(events.into_iter().filter(|e| e.global_position > cursor));
        }
        Ok(out)
    }

    /// Creates the publication and this relay's slot if missing; returns where to stream from.
    async fn ensure_slot(&self) -> Result<Lsn, StoreError> {
        let b = crate::error::db;
        let schema = self.store.schema();
        let (publication, slot) = (publication_name(schema), slot_name(schema, &self.name));
        let client = self.store.client().await?;
        let exists = client
            .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&publication])
            .await
            .map_err(b)?
            .is_some();
        if !exists {
            let created = client
                .batch_execute(&format!(
                    "CREATE PUBLICATION {publication} FOR TABLE {schema}.events, {schema}.log WITH (publish = 'insert')"
                ))
                .await;
            // Another relay may have created it meanwhile.
            if let Err(e) = created
                && e.code() != Some(&tokio_postgres::error::SqlState::DUPLICATE_OBJECT)
            {
                return Err(b(e));
            }
        }
        let row = client
            .query_opt(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .map_err(b)?;
        let lsn: String = match row {
            Some(r) => r.get::<_, Option<String>>(0).unwrap_or_else(|| "0/0".into()),
            None => client
                .query_one(
                    "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
                    &[&slot],
                )
                .await
                .map_err(|e| {
                    crate::error::in_context(
                        b(e),
                        "cannot create the replication slot (log tailing needs wal_level = logical: \
                         ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL)",
                    )
                })?
                .get(0),
        };
        Lsn::parse(&lsn).map_err(|e| StoreError::misconfigured(format!("slot {slot}: bad LSN {lsn:?}: {e:?}"), None))
    }

    fn replication_config(&self, start: Lsn) -> Result<ReplicationConfig, StoreError> {
        let config = self.store.config();
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => {
                return Err(StoreError::misconfigured(
                    "log tailing needs a TCP host in the PostgreSQL URL",
                    None,
                ));
            }
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default();
        Ok(ReplicationConfig::new(
            host,
            config.get_user().unwrap_or("postgres"),
            password,
            config.get_dbname().unwrap_or("postgres"),
            slot_name(self.store.schema(), &self.name),
            publication_name(self.store.schema()),
        )
        .with_port(port)
        .with_tls(TlsConfig::disabled())
        .with_start_lsn(start)
        .with_status_interval(Duration::from_secs(1))
        .with_wakeup_interval(Duration::from_secs(1)))
    }
}

//! Checkpoints, the inbox and the dead-letter table on PostgreSQL. The inbox mark and the
//! events it guards are one call of `append_events_once` (one transaction, one round trip with
//! the positions).

use std::time::SystemTime;

use annals::consume::{
    Checkpoint, Checkpoints, DeadLetters, HealthReport, HealthReports, HealthState, Inbox, Parked, ParkedState,
};
use annals::{AppendOutcome, RecordedEvent, StoreError, StreamAppend};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::PostgresStore;

fn b(e: tokio_postgres::Error) -> StoreError {
    crate::error::db(e)
}

/// Stores a checkpoint with `client` (inside a projection's transaction, say).
pub async fn save_checkpoint_in(client: &impl GenericClient, name: &str, position: u64) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO checkpoints (name, position, updated_at) VALUES ($1, $2, now())
             ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
            &[&name, &(position as i64)],
        )
        .await
        .map(|_| ())
        .map_err(b)
}

/// Reads a checkpoint with `client`.
pub async fn load_checkpoint_in(client: &impl GenericClient, name: &str) -> Result<Option<u64>, StoreError> {
    Ok(client
        .query_opt("SELECT position FROM checkpoints WHERE name = $1", &[&name])
        .await
        .map_err(b)?
        .map(|r| r.get::<_, i64>(0) as u64))
}

/// Parks a message with `client` (inside a projection's transaction, say).
pub async fn park_in(
    client: &impl GenericClient,
    consumer: &str,
    event: &RecordedEvent,
    error: &str,
    attempts: u32,
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO parked (consumer, position, event_id, stream_id, version, error, attempts, message)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &consumer,
                &(event.global_position as i64),
                &event.event_id,
                &event.stream_id.as_str(),
                &(event.version as i64),
                &error,
                &(attempts as i32),
                &event.to_json().to_string(),
            ],
        )
        .await
        .map(|_| ())
        .map_err(b)
}

impl Checkpoints for PostgresStore {
    async fn load_checkpoint(&self, name: &str) -> Result<Option<u64>, StoreError> {
        load_checkpoint_in(&**self.client().await?, name).await
    }

    async fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), StoreError> {
        save_checkpoint_in(&**self.client().await?, name, position).await
    }

    async fn list_checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT name, position, updated_at FROM checkpoints ORDER BY name", &[])
            .await
            .map_err(b)?;
        Ok(rows
            .iter()
            .map(|r| Checkpoint {
                name: r.get(0),
                position: r.get::<_, i64>(1) as u64,
                updated_at: r.get::<_, SystemTime>(2),
            })
            .collect())
    }
}

impl Inbox for PostgresStore {
    async fn append_once(
        &self,
        consumer: &str,
        message_id: Uuid,
        appends: Vec<StreamAppend>,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        if !appends.is_empty() {
            annals::store::validate_append(&appends)?;
        }
        let client = self.client().await?;
        let outcome = crate::append::append_guarded(&client, &appends, Some((consumer, message_id))).await?;
        if outcome.is_some() {
            self.appended();
        }
        Ok(outcome)
    }
}

impl DeadLetters for PostgresStore {
    async fn park(&self, consumer: &str, event: &RecordedEvent, error: &str, attempts: u32) -> Result<(), StoreError> {
        park_in(&**self.client().await?, consumer, event, error, attempts).await
    }

    async fn list_parked(&self, consumer: Option<&str>) -> Result<Vec<Parked>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, consumer, position, event_id, stream_id, version, error, attempts, parked_at, state, message
                 FROM parked WHERE $1::text IS NULL OR consumer = $1 ORDER BY id",
                &[&consumer],
            )
            .await
            .map_err(b)?;
        Ok(rows
            .iter()
            .map(|r| Parked {
                id: r.get::<_, i64>(0) as u64,
                consumer: r.get(1),
                position: r.get::<_, i64>(2) as u64,
                event_id: r.get(3),
                stream_id: r.get(4),
                version: r.get::<_, i64>(5) as u64,
                error: r.get(6),
                attempts: r.get::<_, i32>(7) as u32,
                parked_at: r.get(8),
                state: ParkedState::parse(r.get(9)).unwrap_or(ParkedState::Parked),
                message: r.get(10),
            })
            .collect())
    }

    async fn set_parked(&self, id: u64, state: ParkedState, error: Option<&str>) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE parked SET state = $2, error = COALESCE($3, error),
                        attempts = attempts + CASE WHEN $3 IS NULL THEN 0 ELSE 1 END, parked_at = now()
                 WHERE id = $1",
                &[&(id as i64), &state.as_str(), &error],
            )
            .await
            .map_err(b)?;
        Ok(n > 0)
    }
}

impl HealthReports for PostgresStore {
    async fn set_health(&self, report: &HealthReport) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO health (component, state, kind, error, since, attempts, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (component) DO UPDATE SET state = excluded.state, kind = excluded.kind,
                     error = excluded.error, since = excluded.since, attempts = excluded.attempts,
                     updated_at = excluded.updated_at",
                &[
                    &report.component,
                    &report.state.as_str(),
                    &report.kind.map(annals::ErrorKind::as_str),
                    &report.error,
                    &report.since,
                    &i64::try_from(report.attempts).unwrap_or(i64::MAX),
                    &report.updated_at,
                ],
            )
            .await
            .map(|_| ())
            .map_err(b)
    }

    async fn clear_health(&self, component: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM health WHERE component = $1", &[&component])
            .await
            .map(|_| ())
            .map_err(b)
    }

    async fn list_health(&self) -> Result<Vec<HealthReport>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT component, state, kind, error, since, attempts, updated_at FROM health ORDER BY component",
                &[],
            )
            .await
            .map_err(b)?;
        rows.iter()
            .map(|r| {
                Ok(HealthReport {
                    component: r.try_get(0).map_err(b)?,
                    state: HealthState::parse(r.try_get(1).map_err(b)?).unwrap_or(HealthState::Retrying),
                    kind: r
                        .try_get::<_, Option<&str>>(2)
                        .map_err(b)?
                        .and_then(annals::ErrorKind::parse),
                    error: r.try_get(3).map_err(b)?,
                    since: r.try_get(4).map_err(b)?,
                    attempts: u64::try_from(r.try_get::<_, i64>(5).map_err(b)?).unwrap_or(0),
                    updated_at: r.try_get(6).map_err(b)?,
                })
            })
            .collect()
    }
}

impl annals::relay::Leases for PostgresStore {
    async fn hold_lease(&self, name: &str, holder: &str, ttl: std::time::Duration) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO leases AS l (name, holder, expires_at)
                 VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3))
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE l.holder = excluded.holder OR l.expires_at < clock_timestamp()",
            )
            .await
            .map_err(b)?;
        let n = client
            .execute(&stmt, &[&name, &holder, &ttl.as_secs_f64()])
            .await
            .map_err(b)?;
        Ok(n == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM leases WHERE name = $1 AND holder = $2", &[&name, &holder])
            .await
            .map(|_| ())
            .map_err(b)
    }
}

impl annals::purge::Purge for PostgresStore {
    async fn purge_stream(&self, stream: &annals::StreamId) -> Result<u64, StoreError> {
        let b = crate::error::db;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(b)?;
        // The sequencer's lock: no run may place the stream's events while they go.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('annals.sequencer.' || current_schema()))",
            &[],
        )
        .await
        .map_err(b)?;
        let id = stream.as_str();
        // The stream's row first: an append racing this purge waits for it, or commits before
        // the deletes below start (and its events go too).
        tx.execute("SELECT 1 FROM streams WHERE stream_id = $1 FOR UPDATE", &[&id])
            .await
            .map_err(b)?;
        let n = tx
            .execute("DELETE FROM events WHERE stream_id = $1", &[&id])
            .await
            .map_err(b)?;
        for table in ["snapshots", "streams"] {
            tx.execute(&format!("DELETE FROM {table} WHERE stream_id = $1"), &[&id])
                .await
                .map_err(b)?;
        }
        // The stream's groups stay in the log under a name no stream can have (stream ids never
        // start with `$`), so the log keeps a hole where the events were: the head never moves
        // back, no position is handed out twice, and the sequencer's last snapshot (on the newest
        // group) is kept. Deleting them let the next append reuse the purged positions behind
        // readers' checkpoints, and could make the next sequencer run start from an older
        // snapshot.
        tx.execute(
            "UPDATE log SET stream_id = '$purged:' || first_position WHERE stream_id = $1",
            &[&id],
        )
        .await
        .map_err(b)?;
        tx.commit().await.map_err(b)?;
        Ok(n)
    }
}

/// Keys first (each its own commit), then the append.
impl annals::privacy::AppendWithKeys for PostgresStore {
    async fn append_with_keys(
        &self,
        keys: Vec<(String, annals::privacy::WrappedKey)>,
        appends: Vec<StreamAppend>,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        annals::privacy::append_with_keys_in_two_steps(self, keys, appends).await
    }
}

impl annals::privacy::KeyStore for PostgresStore {
    async fn load_key(&self, subject: &str) -> Result<Option<annals::privacy::WrappedKey>, StoreError> {
        let b = crate::error::db;
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT master_id, wrapped FROM subject_keys WHERE subject = $1")
            .await
            .map_err(b)?;
        Ok(client
            .query_opt(&stmt, &[&subject])
            .await
            .map_err(b)?
            .map(|r| annals::privacy::WrappedKey {
                master_id: r.get(0),
                bytes: r.get(1),
            }))
    }

    async fn create_key(
        &self,
        subject: &str,
        key: annals::privacy::WrappedKey,
    ) -> Result<annals::privacy::WrappedKey, StoreError> {
        let b = crate::error::db;
        let client = self.client().await?;
        // Either this insert wins, or the row another one stored comes back. When the other
        // insert was still running, this statement waited for it and then did nothing, and its
        // snapshot (older) does not show that row: the next statement's does.
        let row = client
            .query_opt(
                "WITH ins AS (INSERT INTO subject_keys (subject, master_id, wrapped) VALUES ($1, $2, $3)
                              ON CONFLICT DO NOTHING RETURNING master_id, wrapped)
                 SELECT master_id, wrapped FROM ins
                 UNION ALL SELECT master_id, wrapped FROM subject_keys WHERE subject = $1 AND NOT EXISTS (SELECT 1 FROM ins)",
                &[&subject, &key.master_id, &key.bytes],
            )
            .await
            .map_err(b)?;
        let row = match row {
            Some(row) => row,
            None => client
                .query_one(
                    "SELECT master_id, wrapped FROM subject_keys WHERE subject = $1",
                    &[&subject],
                )
                .await
                .map_err(b)?,
        };
        Ok(annals::privacy::WrappedKey {
            master_id: row.get(0),
            bytes: row.get(1),
        })
    }

    async fn forget_key(&self, subject: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM subject_keys WHERE subject = $1", &[&subject])
            .await
            .map(|n| n == 1)
            .map_err(crate::error::db)
    }

    async fn list_keys(&self) -> Result<Vec<(String, annals::privacy::WrappedKey)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT subject, master_id, wrapped FROM subject_keys ORDER BY subject",
                &[],
            )
            .await
            .map_err(crate::error::db)?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    annals::privacy::WrappedKey {
                        master_id: r.get(1),
                        bytes: r.get(2),
                    },
                )
            })
            .collect())
    }

    async fn replace_key(&self, subject: &str, key: annals::privacy::WrappedKey) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE subject_keys SET master_id = $2, wrapped = $3 WHERE subject = $1",
                &[&subject, &key.master_id, &key.bytes],
            )
            .await
            .map(|_| ())
            .map_err(crate::error::db)
    }
}

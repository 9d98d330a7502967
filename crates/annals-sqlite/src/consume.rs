//! Checkpoints, the inbox and the dead-letter table on SQLite. Inbox marks go through the
//! writer's group commit with the append they guard; the other writes run as small transactions
//! on the writer connection.

use std::time::SystemTime;

use annals::consume::{
    Checkpoint, Checkpoints, DeadLetters, HealthReport, HealthReports, HealthState, Inbox, Parked, ParkedState,
};
use annals::event::{from_micros, to_micros};
use annals::{AppendOutcome, RecordedEvent, StoreError, StreamAppend};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use crate::SqliteStore;

fn b(e: rusqlite::Error) -> StoreError {
    crate::error::db(e)
}

/// Stores a checkpoint inside an open transaction (projections call it with their own writes).
pub fn save_checkpoint_in(conn: &Connection, name: &str, position: u64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO checkpoints (name, position, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
    )
    .and_then(|mut s| s.execute(params![name, position as i64, to_micros(SystemTime::now())]))
    .map(|_| ())
    .map_err(b)
}

/// Reads a checkpoint.
pub fn load_checkpoint_in(conn: &Connection, name: &str) -> Result<Option<u64>, StoreError> {
    conn.prepare_cached("SELECT position FROM checkpoints WHERE name = ?1")
        .and_then(|mut s| s.query_row([name], |r| r.get::<_, i64>(0)).optional())
        .map(|p| p.map(|p| p as u64))
        .map_err(b)
}

impl Checkpoints for SqliteStore {
    async fn load_checkpoint(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let name = name.to_owned();
        self.read(move |conn| load_checkpoint_in(conn, &name)).await
    }

    async fn save_checkpoint(&self, name: &str, position: u64) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.write(move |tx| save_checkpoint_in(tx, &name, position)).await
    }

    async fn list_checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT name, position, updated_at FROM checkpoints ORDER BY name")
                .map_err(b)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(Checkpoint {
                        name: r.get(0)?,
                        position: r.get::<_, i64>(1)? as u64,
                        updated_at: from_micros(r.get(2)?),
                    })
                })
                .map_err(b)?;
            rows.collect::<Result<_, _>>().map_err(b)
        })
        .await
    }
}

impl Inbox for SqliteStore {
    async fn append_once(
        &self,
        consumer: &str,
        message_id: Uuid,
        appends: Vec<StreamAppend>,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        if !appends.is_empty() {
            annals::store::validate_append(&appends)?;
        }
        self.submit(appends, Some((consumer.to_owned(), message_id))).await
    }
}

fn parked_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Parked> {
    let id: Vec<u8> = r.get(3)?;
    let state: String = r.get(9)?;
    Ok(Parked {
        id: r.get::<_, i64>(0)? as u64,
        consumer: r.get(1)?,
        position: r.get::<_, i64>(2)? as u64,
        event_id: Uuid::from_slice(&id).unwrap_or_default(),
        stream_id: r.get(4)?,
        version: r.get::<_, i64>(5)? as u64,
        error: r.get(6)?,
        attempts: r.get::<_, i64>(7)? as u32,
        parked_at: from_micros(r.get(8)?),
        state: ParkedState::parse(&state).unwrap_or(ParkedState::Parked),
        message: r.get(10)?,
    })
}

/// Parks a message inside an open transaction (projections park with their checkpoint).
pub fn park_in(
    conn: &Connection,
    consumer: &str,
    event: &RecordedEvent,
    error: &str,
    attempts: u32,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO parked (consumer, position, event_id, stream_id, version, error, attempts, parked_at, message)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .and_then(|mut s| {
        s.execute(params![
            consumer,
            event.global_position as i64,
            &event.event_id.as_bytes()[..],
            event.stream_id.as_str(),
            event.version as i64,
            error,
            attempts,
            to_micros(SystemTime::now()),
            event.to_json().to_string()
        ])
    })
    .map(|_| ())
    .map_err(b)
}

impl DeadLetters for SqliteStore {
    async fn park(&self, consumer: &str, event: &RecordedEvent, error: &str, attempts: u32) -> Result<(), StoreError> {
        let (consumer, event, error) = (consumer.to_owned(), event.clone(), error.to_owned());
        self.write(move |tx| park_in(tx, &consumer, &event, &error, attempts))
            .await
    }

    async fn list_parked(&self, consumer: Option<&str>) -> Result<Vec<Parked>, StoreError> {
        let consumer = consumer.map(str::to_owned);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, consumer, position, event_id, stream_id, version, error, attempts, parked_at, state, message
                     FROM parked WHERE ?1 IS NULL OR consumer = ?1 ORDER BY id",
                )
                .map_err(b)?;
            let rows = stmt.query_map([consumer], parked_row).map_err(b)?;
            rows.collect::<Result<_, _>>().map_err(b)
        })
        .await
    }

    async fn set_parked(&self, id: u64, state: ParkedState, error: Option<&str>) -> Result<bool, StoreError> {
        let error = error.map(str::to_owned);
        self.write(move |tx| {
            tx.prepare_cached(
                "UPDATE parked SET state = ?2, error = COALESCE(?3, error),
                        attempts = attempts + (?3 IS NOT NULL), parked_at = ?4 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![id as i64, state.as_str(), error, to_micros(SystemTime::now())]))
            .map(|n| n > 0)
            .map_err(b)
        })
        .await
    }
}

impl HealthReports for SqliteStore {
    async fn set_health(&self, report: &HealthReport) -> Result<(), StoreError> {
        let report = report.clone();
        self.write(move |tx| {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO health (component, state, kind, error, since, attempts, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    report.component,
                    report.state.as_str(),
                    report.kind.map(annals::ErrorKind::as_str),
                    report.error,
                    to_micros(report.since),
                    i64::try_from(report.attempts).unwrap_or(i64::MAX),
                    to_micros(report.updated_at)
                ])
            })
            .map(|_| ())
            .map_err(b)
        })
        .await
    }

    async fn clear_health(&self, component: &str) -> Result<(), StoreError> {
        let component = component.to_owned();
        self.write(move |tx| {
            tx.prepare_cached("DELETE FROM health WHERE component = ?1")
                .and_then(|mut s| s.execute([component]))
                .map(|_| ())
                .map_err(b)
        })
        .await
    }

    async fn list_health(&self) -> Result<Vec<HealthReport>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT component, state, kind, error, since, attempts, updated_at FROM health ORDER BY component",
                )
                .map_err(b)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(HealthReport {
                        component: r.get(0)?,
                        state: HealthState::parse(&r.get::<_, String>(1)?).unwrap_or(HealthState::Retrying),
                        kind: r
                            .get::<_, Option<String>>(2)?
                            .as_deref()
                            .and_then(annals::ErrorKind::parse),
                        error: r.get(3)?,
                        since: from_micros(r.get(4)?),
                        attempts: u64::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
                        updated_at: from_micros(r.get(6)?),
                    })
                })
                .map_err(b)?;
            rows.collect::<Result<_, _>>().map_err(b)
        })
        .await
    }
}

impl annals::relay::Leases for SqliteStore {
    async fn hold_lease(&self, name: &str, holder: &str, ttl: std::time::Duration) -> Result<bool, StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        let now = to_micros(SystemTime::now());
        let until = now.saturating_add(i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX));
        self.write(move |tx| {
            tx.prepare_cached(
                "INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE leases.holder = excluded.holder OR leases.expires_at < ?4",
            )
            .and_then(|mut s| s.execute(params![name, holder, until, now]))
            .map(|n| n == 1)
            .map_err(b)
        })
        .await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write(move |tx| {
            tx.prepare_cached("DELETE FROM leases WHERE name = ?1 AND holder = ?2")
                .and_then(|mut s| s.execute(params![name, holder]))
                .map(|_| ())
                .map_err(b)
        })
        .await
    }
}

impl annals::purge::Purge for SqliteStore {
    async fn purge_stream(&self, stream: &annals::StreamId) -> Result<u64, StoreError> {
        let id = stream.to_string();
        self.write(move |tx| {
            // AUTOINCREMENT: the purged positions are never handed out again.
            let n = tx
                .execute("DELETE FROM events WHERE stream_id = ?1", params![id])
                .map_err(b)?;
            tx.execute("DELETE FROM snapshots WHERE stream_id = ?1", params![id])
                .map_err(b)?;
            tx.execute("DELETE FROM streams WHERE stream_id = ?1", params![id])
                .map_err(b)?;
            Ok(n as u64)
        })
        .await
    }
}

impl annals::privacy::KeyStore for SqliteStore {
    async fn load_key(&self, subject: &str) -> Result<Option<annals::privacy::WrappedKey>, StoreError> {
        let subject = subject.to_owned();
        self.read_with(move |conn| {
            conn.prepare_cached("SELECT master_id, wrapped FROM subject_keys WHERE subject = ?1")
                .and_then(|mut s| {
                    s.query_row(params![subject], |r| {
                        Ok(annals::privacy::WrappedKey {
                            master_id: r.get(0)?,
                            bytes: r.get(1)?,
                        })
                    })
                    .optional()
                })
                .map_err(b)
        })
        .await
    }

    async fn create_key(
        &self,
        subject: &str,
        key: annals::privacy::WrappedKey,
    ) -> Result<annals::privacy::WrappedKey, StoreError> {
        let subject = subject.to_owned();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO subject_keys (subject, master_id, wrapped) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![subject, key.master_id, key.bytes],
            )
            .map_err(b)?;
            tx.query_row(
                "SELECT master_id, wrapped FROM subject_keys WHERE subject = ?1",
                params![subject],
                |r| {
                    Ok(annals::privacy::WrappedKey {
                        master_id: r.get(0)?,
                        bytes: r.get(1)?,
                    })
                },
            )
            .map_err(b)
        })
        .await
    }

    async fn forget_key(&self, subject: &str) -> Result<bool, StoreError> {
        let subject = subject.to_owned();
        self.write(move |tx| {
            tx.execute("DELETE FROM subject_keys WHERE subject = ?1", params![subject])
                .map(|n| n == 1)
                .map_err(b)
        })
        .await
    }

    async fn list_keys(&self) -> Result<Vec<(String, annals::privacy::WrappedKey)>, StoreError> {
        self.read_with(|conn| {
            let mut s = conn
                .prepare("SELECT subject, master_id, wrapped FROM subject_keys ORDER BY subject")
                .map_err(b)?;
            let rows = s
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        annals::privacy::WrappedKey {
                            master_id: r.get(1)?,
                            bytes: r.get(2)?,
                        },
                    ))
                })
                .map_err(b)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(b)
        })
        .await
    }

    async fn replace_key(&self, subject: &str, key: annals::privacy::WrappedKey) -> Result<(), StoreError> {
        let subject = subject.to_owned();
        self.write(move |tx| {
            tx.execute(
                "UPDATE subject_keys SET master_id = ?2, wrapped = ?3 WHERE subject = ?1",
                params![subject, key.master_id, key.bytes],
            )
            .map(|_| ())
            .map_err(b)
        })
        .await
    }
}

/// New subjects' keys commit in the transaction (and the group commit) of the append that first
/// uses them.
impl annals::privacy::AppendWithKeys for SqliteStore {
    async fn append_with_keys(
        &self,
        keys: Vec<(String, annals::privacy::WrappedKey)>,
        appends: Vec<StreamAppend>,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        annals::store::validate_append(&appends)?;
        self.submit_job(appends, None, keys).await
    }
}

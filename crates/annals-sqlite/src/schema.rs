//! Embedded schema migrations, applied in order on open; each has a number and a note.

use rusqlite::Connection;

/// One migration: its number, what it does, and its SQL.
pub struct Migration {
    /// Applied in increasing order; never renumbered.
    pub version: i64,
    /// What it does.
    pub note: &'static str,
    /// The SQL, run in one transaction.
    pub sql: &'static [&'static str],
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        note: "events, streams and snapshots",
        sql: &[
            include_str!("../sql/events.sql"),
            include_str!("../sql/streams.sql"),
            include_str!("../sql/snapshots.sql"),
        ],
    },
    Migration {
        version: 2,
        note: "consumers: checkpoints, processed_messages (the inbox), parked (dead letters)",
        sql: &[
            include_str!("../sql/checkpoints.sql"),
            include_str!("../sql/processed_messages.sql"),
            include_str!("../sql/parked.sql"),
        ],
    },
    Migration {
        version: 3,
        note: "leases (one active relay per name)",
        sql: &[include_str!("../sql/leases.sql")],
    },
    Migration {
        version: 4,
        note: "parked.message: dead letters keep the message itself",
        sql: &[include_str!("../sql/parked_message.sql")],
    },
    Migration {
        version: 5,
        note: "subject_keys: data keys for crypto-shredding",
        sql: &[include_str!("../sql/subject_keys.sql")],
    },
    Migration {
        version: 6,
        note: "streams.deleted_version: appends to a deleted stream are refused until it is restored",
        sql: &[include_str!("../sql/streams_deleted.sql")],
    },
    Migration {
        version: 7,
        note: "health: long-running components that are failing now (shown by annals status)",
        sql: &[include_str!("../sql/health.sql")],
    },
];

/// Checks, before anything is written, that the file at `path` (open on `conn`) can be annals'
/// store: empty (a new store), or annals' tables at a schema version this code knows. A file of
/// another application (tables, and no `annals_migrations`) is refused untouched, naming what it
/// holds; one written by a newer annals is refused naming both versions; with `read_only`, one
/// that needs a migration is refused too (reading it as it is could misread it).
pub fn check(conn: &Connection, path: &std::path::Path, read_only: bool) -> Result<(), annals::StoreError> {
    let db = crate::error::db;
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(db)?;
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if tables.is_empty() {
        return if read_only {
            Err(annals::StoreError::NotFound {
                what: format!(
                    "no annals store at {}: the file is empty (`annals init` creates one)",
                    path.display()
                ),
            })
        } else {
            Ok(())
        };
    }
    if !tables.iter().any(|t| t == "annals_migrations") {
        let shown: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
        let more = if tables.len() > 5 { ", …" } else { "" };
        return Err(annals::StoreError::misconfigured(
            format!(
                "{} is not an annals store: it holds tables {}{more} and no annals_migrations; nothing was changed",
                path.display(),
                shown.join(", ")
            ),
            None,
        ));
    }
    let version: i64 = conn
        .query_row("SELECT COALESCE(MAX(version), 0) FROM annals_migrations", [], |r| {
            r.get(0)
        })
        .map_err(db)?;
    if version > known {
        return Err(annals::StoreError::misconfigured(
            format!(
                "{} was written by a newer annals (schema version {version}; this annals knows up to {known}): \
                 use that version",
                path.display()
            ),
            None,
        ));
    }
    if read_only && version < known {
        return Err(annals::StoreError::misconfigured(
            format!(
                "{} is at schema version {version} and this annals reads {known}: open it once for writing \
                 (`annals init`) to upgrade it",
                path.display()
            ),
            None,
        ));
    }
    Ok(())
}

/// Applies the migrations not yet applied; returns how many ran.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<usize> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS annals_migrations (
             version INTEGER PRIMARY KEY, note TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )?;
    let mut applied = 0;
    for m in MIGRATIONS {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let done: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM annals_migrations WHERE version = ?1)",
            [m.version],
            |r| r.get(0),
        )?;
        if !done {
            for sql in m.sql {
                tx.execute_batch(sql)?;
            }
            tx.execute(
                "INSERT INTO annals_migrations (version, note, applied_at) VALUES (?1, ?2, ?3)",
                rusqlite::params![
                    m.version,
                    m.note,
                    annals::event::to_micros(std::time::SystemTime::now())
                ],
            )?;
            applied += 1;
        }
        tx.commit()?;
    }
    Ok(applied)
}

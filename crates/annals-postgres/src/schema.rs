//! Embedded schema migrations, applied in order on connect; each has a number and a note.
//!
//! The files in `sql/` say what each object is now, so a later migration that changes an object
//! re-runs its file (written to be re-runnable: `CREATE OR REPLACE`, `IF EXISTS`) and an earlier
//! migration that created it gives a fresh schema the current form at once.
//!
//! Function bodies are not checked when a migration creates them (`check_function_bodies = off`,
//! as `pg_dump` does): a file re-run by an earlier migration may use a column that a later one
//! adds (the SQL functions of `positions.sql` read `log.seen`, added by migration 11), and is
//! checked when it first runs instead.
//!
//! Everything lives in one PostgreSQL schema (default `annals`), so several stores can share a
//! database (tests give each case its own schema). Concurrent connects serialize on an advisory
//! lock derived from the schema name.

use tokio_postgres::Client;

/// One migration: its number, what it does, and its SQL.
pub struct Migration {
    /// Applied in increasing order; never renumbered.
    pub version: i32,
    /// What it does.
    pub note: &'static str,
    /// The SQL, run in one transaction.
    pub sql: &'static [&'static str],
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        note: "events, streams, snapshots, the gap-free log and its sequencer, the append function",
        sql: &[
            include_str!("../sql/events.sql"),
            include_str!("../sql/streams.sql"),
            include_str!("../sql/snapshots.sql"),
            include_str!("../sql/log.sql"),
            include_str!("../sql/positions.sql"),
            include_str!("../sql/append.sql"),
        ],
    },
    Migration {
        version: 2,
        note: "consumers: checkpoints, processed_messages (the inbox) with append_events_once, parked",
        sql: &[
            include_str!("../sql/checkpoints.sql"),
            include_str!("../sql/processed_messages.sql"),
            include_str!("../sql/parked.sql"),
        ],
    },
    Migration {
        version: 3,
        note: "refuse() for the one-stream append statement; events lose their row id (one index fewer \
               per event) and the sequencer orders a transaction's groups by stream instead",
        sql: &[
            include_str!("../sql/refuse.sql"),
            "ALTER TABLE events DROP COLUMN IF EXISTS id;",
            include_str!("../sql/positions.sql"),
        ],
    },
    Migration {
        version: 4,
        note: "leases (one active relay per name)",
        sql: &[include_str!("../sql/leases.sql")],
    },
    Migration {
        version: 5,
        note: "reads as functions that allow index plans only (plans cached on a young table stay fast)",
        sql: &[include_str!("../sql/reads.sql")],
    },
    Migration {
        version: 6,
        note: "parked.message: dead letters keep the message itself",
        sql: &[include_str!("../sql/parked_message.sql")],
    },
    Migration {
        version: 7,
        note: "assign_positions(check_first): the background sequencer skips the look for work",
        sql: &[
            "DROP FUNCTION IF EXISTS assign_positions();",
            include_str!("../sql/positions.sql"),
        ],
    },
    Migration {
        version: 8,
        note: "subject_keys: data keys for crypto-shredding",
        sql: &[include_str!("../sql/subject_keys.sql")],
    },
    Migration {
        version: 9,
        note: "reads in PL/pgSQL: the SQL versions were planned on every call (PostgreSQL < 18)",
        sql: &[include_str!("../sql/reads.sql")],
    },
    Migration {
        version: 10,
        note: "assign_positions runs without JIT: past a few million events its estimated cost made \
               every run compile expressions (about 25 ms a run)",
        sql: &[include_str!("../sql/positions.sql")],
    },
    Migration {
        version: 11,
        note: "the sequencer looks only at transactions its last run did not see (the snapshot on the \
               log's newest group) and reads the head from the log instead of updating log_head: a \
               transaction held open elsewhere made every run re-read every event since it began",
        sql: &[
            "ALTER TABLE log ADD COLUMN IF NOT EXISTS seen pg_snapshot;",
            include_str!("../sql/positions.sql"),
        ],
    },
    Migration {
        version: 12,
        note: "streams.deleted_version: appends to a deleted stream are refused until it is restored \
               (streams deleted before are found by their last event)",
        sql: &["ALTER TABLE streams ADD COLUMN IF NOT EXISTS deleted_version bigint;
                UPDATE streams s SET deleted_version = s.version
                WHERE EXISTS (SELECT 1 FROM events e WHERE e.stream_id = s.stream_id
                              AND e.version = s.version AND e.event_type = 'StreamDeleted');"],
    },
    Migration {
        version: 13,
        note: "health: long-running components that are failing now (shown by annals status)",
        sql: &[include_str!("../sql/health.sql")],
    },
    Migration {
        version: 14,
        note: "stream reads without a probe of log per event: stream_events_forwards/backwards and \
               stream_groups, read together; the client computes positions",
        sql: &[include_str!("../sql/reads.sql")],
    },
    Migration {
        version: 15,
        note: "stream_fold_events as an inlinable SQL function: no tuplestore copy of every row",
        sql: &[
            "DROP FUNCTION IF EXISTS stream_fold_events(text, bigint, bigint);",
            include_str!("../sql/reads.sql"),
        ],
    },
    Migration {
        version: 16,
        note: "assign_positions: a reader finding no work reads the head again, after the look (a run \
               committing between the two could make it answer a head from before that run)",
        sql: &[include_str!("../sql/positions.sql")],
    },
];

/// Whether `name` can be used as a schema name without quoting (lower-case ASCII letters, digits,
/// `_`, starting with a letter, at most 63 bytes).
pub fn valid_schema_name(name: &str) -> bool {
    schema_name_problem(name).is_none()
}

/// What is wrong with `name` as a schema name, if anything.
pub fn schema_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.len() > 63 {
        Some("PostgreSQL names are at most 63 bytes")
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        Some("it must start with a lower-case ASCII letter")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Some("use lower-case ASCII letters, digits and _ only")
    } else {
        None
    }
}

/// What a schema holds, looked at before anything is changed in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// No such schema, or one with no tables: no annals store yet.
    Nothing,
    /// annals' tables, at this migration.
    Annals {
        /// The highest migration applied.
        version: i32,
    },
    /// Tables of something else (no annals `migrations`, `events` and `log`).
    Foreign {
        /// Some of them, by name.
        tables: Vec<String>,
    },
}

/// Looks at `schema` without changing anything.
pub async fn inspect(client: &Client, schema: &str) -> Result<Found, tokio_postgres::Error> {
    let tables: Vec<String> = client
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = $1 ORDER BY tablename",
            &[&schema],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if tables.is_empty() {
        return Ok(Found::Nothing);
    }
    let has = |t: &str| tables.iter().any(|x| x == t);
    if !(has("migrations") && has("events") && has("log")) {
        return Ok(Found::Foreign {
            tables: tables.into_iter().take(5).collect(),
        });
    }
    let version: Option<i32> = client
        .query_one(&format!("SELECT max(version) FROM {schema}.migrations"), &[])
        .await?
        .get(0);
    Ok(Found::Annals {
        version: version.unwrap_or(0),
    })
}

/// The newest migration this code knows.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Creates `schema` if missing and applies the migrations not yet applied; returns how many ran.
pub async fn migrate(client: &mut Client, schema: &str) -> Result<usize, tokio_postgres::Error> {
    migrate_until(client, schema, i32::MAX).await
}

/// Creates `schema` if missing and applies the migrations not yet applied up to version `last`
/// (tests use it to build a schema as an earlier release left it); returns how many ran.
pub async fn migrate_until(client: &mut Client, schema: &str, last: i32) -> Result<usize, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('annals.migrate.' || $1))",
        &[&schema],
    )
    .await?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema}; SET LOCAL search_path TO {schema};
         SET LOCAL check_function_bodies = off;
         CREATE TABLE IF NOT EXISTS migrations (
             version integer PRIMARY KEY, note text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());"
    ))
    .await?;
    let done: Vec<i32> = tx
        .query("SELECT version FROM migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut applied = 0;
    for m in MIGRATIONS
        .iter()
        .filter(|m| m.version <= last && !done.contains(&m.version))
    {
        for sql in m.sql {
            tx.batch_execute(sql).await?;
        }
        tx.execute(
            "INSERT INTO migrations (version, note) VALUES ($1, $2)",
            &[&m.version, &m.note],
        )
        .await?;
        applied += 1;
    }
    tx.commit().await?;
    Ok(applied)
}

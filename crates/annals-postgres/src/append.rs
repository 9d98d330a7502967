//! Appends: every stream of an append goes to the server in one prepared statement
//! (`append_exact.sql` for one stream at an exact version, `append_stream.sql` for other
//! one-stream appends, `append_streams.sql` for several or with an inbox mark;
//! one transaction, batched as arrays): one round trip per append, no global
//! lock, no wait for the sequencer (which gives the events their global positions right after;
//! see the crate docs). Refusals come back as errors with annals' own SQLSTATEs (see `append.sql`).
//! Idempotent retries are told apart from real duplicates on those error paths only.

use std::collections::HashMap;

use annals::store::{StoredAt, resolve_retry};
use annals::{AppendOutcome, ExpectedVersion, StoreError, StreamAppend, StreamAppended};
use deadpool_postgres::Client;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

const APPEND_STREAM: &str = include_str!("../sql/append_stream.sql");
const APPEND_EXACT: &str = include_str!("../sql/append_exact.sql");
const APPEND_STREAMS: &str = include_str!("../sql/append_streams.sql");

/// `sql` without its optional `part`: every run of lines from `-- <part>` through `-- end`.
fn without_part(sql: &str, part: &str) -> String {
    let start = format!("-- {part}");
    let mut out = String::with_capacity(sql.len());
    let mut skipping = false;
    for line in sql.lines() {
        if line == start {
            skipping = true;
        } else if skipping {
            skipping = line != "-- end";
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The multi-stream append (`append_streams.sql`), with its inbox mark or without.
fn append_streams(inbox: bool) -> &'static str {
    static PLAIN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| without_part(APPEND_STREAMS, "inbox"));
    if inbox { APPEND_STREAMS } else { &PLAIN }
}

/// The one-stream append (`append_stream.sql`), cut for a stream that must exist (`update`) or
/// may not (`upsert`), with the snapshot CTE or without.
fn append_stream_sql(must_exist: bool, snapshot: bool) -> &'static str {
    use std::sync::LazyLock;
    fn cut(parts: &[&str]) -> String {
        parts
            .iter()
            .fold(APPEND_STREAM.to_owned(), |sql, part| without_part(&sql, part))
    }
    static CUTS: LazyLock<[String; 4]> = LazyLock::new(|| {
        [
            cut(&["update", "snapshot"]),
            cut(&["update"]),
            cut(&["upsert", "snapshot"]),
            cut(&["upsert"]),
        ]
    });
    &CUTS[usize::from(must_exist) * 2 + usize::from(snapshot)]
}
const STORED: &str = crate::read::STORED_BY_ID;

/// The events of an append as parallel arrays, one per column (sent as `UNNEST` parameters).
#[derive(Default)]
struct EventArrays<'a> {
    ids: Vec<Uuid>,
    types: Vec<&'a str>,
    schemas: Vec<i32>,
    payloads: Vec<&'a str>,
    metadata: Vec<String>,
}

impl<'a> EventArrays<'a> {
    fn push(&mut self, a: &'a StreamAppend) {
        for e in &a.events {
            self.ids.push(e.event_id);
            self.types.push(e.event_type.as_str());
            self.schemas.push(e.schema_version as i32);
            self.payloads.push(e.payload.get());
            self.metadata.push(e.metadata.to_json());
        }
    }
}

fn expected_code(e: ExpectedVersion) -> i64 {
    match e {
        ExpectedVersion::Any => -1,
        ExpectedVersion::NoStream => -2,
        ExpectedVersion::StreamExists => -3,
        ExpectedVersion::Exact(v) => i64::try_from(v).unwrap_or(i64::MAX),
    }
}

/// Appends already-validated `appends` atomically.
pub(crate) async fn append(client: &Client, appends: &[StreamAppend]) -> Result<AppendOutcome, StoreError> {
    append_guarded(client, appends, None).await?.ok_or_else(|| {
        StoreError::misconfigured(
            "the append statement answered for an inbox it was not given: the schema's SQL is not this \
                 version's",
            None,
        )
    })
}

/// Appends already-validated `appends` atomically; with `inbox`, only if that consumer has not
/// processed that message yet, marking it in the same transaction (`Ok(None)`: it had).
pub(crate) async fn append_guarded(
    client: &Client,
    appends: &[StreamAppend],
    inbox: Option<(&str, Uuid)>,
) -> Result<Option<AppendOutcome>, StoreError> {
    let b = crate::error::db;
    if let ([one], None) = (appends, inbox) {
        return append_stream(client, one, appends).await.map(Some);
    }
    let append_stmt = client
        .prepare_cached(append_streams(inbox.is_some()))
        .await
        .map_err(b)?;

    let (mut s_ids, mut s_types, mut s_expected, mut s_count) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut snap_v, mut snap_s, mut snap_state) = (Vec::new(), Vec::new(), Vec::new());
    let (mut restores, mut deletes) = (Vec::new(), Vec::new());
    let (mut e_stream, mut e_place) = (Vec::new(), Vec::new());
    let mut ev = EventArrays::default();
    for (i, a) in appends.iter().enumerate() {
        s_ids.push(a.stream_id.as_str());
        s_types.push(a.stream_type.as_str());
        s_expected.push(expected_code(a.expected));
        s_count.push(a.events.len() as i64);
        snap_v.push(a.snapshot.as_ref().map(|s| s.version as i64));
        snap_s.push(a.snapshot.as_ref().map(|s| s.schema_version as i32));
        snap_state.push(a.snapshot.as_ref().map(|s| s.state.get()));
        restores.push(annals::store::restores(a));
        deletes.push(annals::store::deletes(a));
        e_stream.extend(std::iter::repeat_n(i as i32 + 1, a.events.len()));
        e_place.extend(1..=a.events.len() as i64);
        ev.push(a);
    }
    let (consumer, message_id) = inbox.unwrap_or_default();
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![
        &s_ids,
        &s_types,
        &s_expected,
        &s_count,
        &snap_v,
        &snap_s,
        &snap_state,
        &e_stream,
        &e_place,
        &ev.ids,
        &ev.types,
        &ev.schemas,
        &ev.payloads,
        &ev.metadata,
        &restores,
        &deletes,
    ];
    if inbox.is_some() {
        params.extend([&consumer as &(dyn tokio_postgres::types::ToSql + Sync), &message_id]);
    }
    let appended = client.query(&append_stmt, &params).await;
    let rows = match appended {
        Ok(rows) => rows,
        Err(e) if e.code().is_some_and(|c| c.code() == "AN005") => return Ok(None),
        Err(e) => return refusal(client, appends, &ev.ids, e).await.map(Some),
    };
    let mut streams = Vec::with_capacity(appends.len());
    for row in rows {
        let i = row.try_get::<_, i32>(0).map_err(b)? as usize - 1;
        let first_version = row.try_get::<_, i64>(1).map_err(b)? as u64;
        let a = &appends[i];
        streams.push(StreamAppended {
            stream_id: a.stream_id.clone(),
            first_version,
            last_version: first_version + a.events.len() as u64 - 1,
            first_position: None,
            last_position: None,
            already_stored: false,
        });
    }
    Ok(Some(AppendOutcome { streams }))
}

/// Appends to one stream with the one-statement path (`append_stream.sql`).
async fn append_stream(
    client: &Client,
    a: &StreamAppend,
    appends: &[StreamAppend],
) -> Result<AppendOutcome, StoreError> {
    let b = crate::error::db;
    let snap = a.snapshot.as_ref();
    if let (ExpectedVersion::Exact(v @ 1..), None) = (a.expected, snap)
        && let Some(outcome) = append_exact(client, a, v).await?
    {
        return Ok(outcome);
    }
    let must_exist =
        matches!(a.expected, ExpectedVersion::StreamExists) || matches!(a.expected, ExpectedVersion::Exact(v) if v > 0);
    let sql = append_stream_sql(must_exist, snap.is_some());
    let stmt = client.prepare_cached(sql).await.map_err(b)?;
    let n = a.events.len();
    let mut ev = EventArrays::default();
    ev.push(a);
    let (snap_version, snap_schema, snap_state) = (
        snap.map(|s| s.version as i64),
        snap.map(|s| s.schema_version as i32),
        snap.map(|s| s.state.get()),
    );
    let (stream_id, stream_type, expected, count) = (
        a.stream_id.as_str(),
        a.stream_type.as_str(),
        expected_code(a.expected),
        n as i64,
    );
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![
        &stream_id,
        &stream_type,
        &expected,
        &count,
        &snap_version,
        &ev.ids,
        &ev.types,
        &ev.schemas,
        &ev.payloads,
        &ev.metadata,
    ];
    if snap.is_some() {
        params.extend([&snap_schema as &(dyn tokio_postgres::types::ToSql + Sync), &snap_state]);
    }
    let appended = client.query_one(&stmt, &params).await;
    let first_version = match appended {
        Ok(row) => row.try_get::<_, i64>(0).map_err(b)? as u64,
        Err(e) => return refusal(client, appends, &ev.ids, e).await,
    };
    Ok(AppendOutcome {
        streams: vec![StreamAppended {
            stream_id: a.stream_id.clone(),
            first_version,
            last_version: first_version + n as u64 - 1,
            first_position: None,
            last_position: None,
            already_stored: false,
        }],
    })
}

/// Appends to one stream expected at exactly `version` (above 0), with no snapshot
/// (`append_exact.sql`). `None`: the stream was not at that version with that type, and the caller
/// sends the append again through `append_stream.sql`, which says why or appends.
async fn append_exact(client: &Client, a: &StreamAppend, version: u64) -> Result<Option<AppendOutcome>, StoreError> {
    let b = crate::error::db;
    let stmt = client.prepare_cached(APPEND_EXACT).await.map_err(b)?;
    let mut ev = EventArrays::default();
    ev.push(a);
    let n = a.events.len();
    let (expected, count) = (i64::try_from(version).unwrap_or(i64::MAX), n as i64);
    let stored = client
        .execute(
            &stmt,
            &[
                &a.stream_id.as_str(),
                &a.stream_type.as_str(),
                &expected,
                &count,
                &ev.ids,
                &ev.types,
                &ev.schemas,
                &ev.payloads,
                &ev.metadata,
            ],
        )
        .await;
    match stored {
        Ok(0) => Ok(None),
        Ok(_) => Ok(Some(AppendOutcome {
            streams: vec![StreamAppended {
                stream_id: a.stream_id.clone(),
                first_version: version + 1,
                last_version: version + n as u64,
                first_position: None,
                last_position: None,
                already_stored: false,
            }],
        })),
        Err(e) => refusal(client, std::slice::from_ref(a), &ev.ids, e).await.map(Some),
    }
}

/// Turns a failed append statement into the store error it stands for. A conflict or a stored
/// event id may be an idempotent retry: then streams whose events are all stored are answered
/// from the store and the rest are appended again.
async fn refusal(
    client: &Client,
    appends: &[StreamAppend],
    ids: &[Uuid],
    e: tokio_postgres::Error,
) -> Result<AppendOutcome, StoreError> {
    let Some(db) = e.as_db_error() else {
        return Err(crate::error::db(e));
    };
    let maybe_retry = matches!(db.code().code(), "AN003" | "AN006")
        || (db.code() == &SqlState::UNIQUE_VIOLATION && db.constraint() == Some("events_event_id_key"));
    if maybe_retry && !stored(client, ids).await?.is_empty() {
        return retry(client, appends, ids).await;
    }
    let code = db.code().code();
    if !code.starts_with("AN") {
        return Err(crate::error::db(e));
    }
    // annals' own refusals carry a JSON object naming what was wrong (see append_stream.sql).
    let detail: serde_json::Value = db
        .detail()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_default();
    let text = |k: &str| detail[k].as_str().unwrap_or_default().to_owned();
    let number = |k: &str| detail[k].as_u64().unwrap_or_default();
    Err(match code {
        "AN002" => StoreError::StreamTypeMismatch {
            stream: text("stream"),
            requested: text("requested"),
            actual: text("actual"),
        },
        "AN003" => {
            let stream = text("stream");
            let expected = appends
                .iter()
                .find(|a| a.stream_id.as_str() == stream)
                .map_or(ExpectedVersion::Any, |a| a.expected);
            StoreError::Conflict {
                stream,
                expected,
                actual: number("actual"),
            }
        }
        "AN004" => StoreError::SnapshotVersionMismatch {
            stream: text("stream"),
            snapshot_version: number("snapshot_version"),
            stream_version: number("stream_version"),
        },
        "AN006" => StoreError::StreamDeleted {
            stream: text("stream"),
            version: number("version"),
        },
        _ => crate::error::db(e),
    })
}

async fn stored(client: &Client, ids: &[Uuid]) -> Result<HashMap<Uuid, StoredAt>, StoreError> {
    let b = crate::error::db;
    let stmt = client.prepare_cached(STORED).await.map_err(b)?;
    let mut out = HashMap::new();
    for row in client.query(&stmt, &[&ids]).await.map_err(b)? {
        let id: Uuid = row.try_get(0).map_err(b)?;
        out.insert(
            id,
            StoredAt {
                stream_id: row.try_get(1).map_err(b)?,
                version: row.try_get::<_, i64>(2).map_err(b)? as u64,
                global_position: row.try_get::<_, Option<i64>>(3).map_err(b)?.map(|p| p as u64),
            },
        );
    }
    Ok(out)
}

async fn retry(client: &Client, appends: &[StreamAppend], ids: &[Uuid]) -> Result<AppendOutcome, StoreError> {
    let found = stored(client, ids).await?;
    let mut done = Vec::new();
    let mut fresh = Vec::new();
    for (i, a) in appends.iter().enumerate() {
        let at: Vec<Option<StoredAt>> = a.events.iter().map(|e| found.get(&e.event_id).cloned()).collect();
        match resolve_retry(a, &at)? {
            Some(appended) => done.push((i, appended)),
            None => fresh.push(i),
        }
    }
    if !fresh.is_empty() {
        let rest: Vec<StreamAppend> = fresh.iter().map(|&i| appends[i].clone()).collect();
        let outcome = Box::pin(append(client, &rest)).await?;
        done.extend(fresh.into_iter().zip(outcome.streams));
    }
    done.sort_by_key(|(i, _)| *i);
    Ok(AppendOutcome {
        streams: done.into_iter().map(|(_, s)| s).collect(),
    })
}

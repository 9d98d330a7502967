//! Reads: a small pool of read connections (WAL lets them run beside the writer) and row decoding
//! that turns a corrupt row into an error naming its stream and version.

use std::path::PathBuf;
use std::sync::Mutex;

use annals::event::{PayloadOpener, from_micros, parse_opened_payload, parse_stored_metadata};
use annals::{RecordedEvent, StoreError, StreamId};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, Row};

/// An event query: the columns [`decode_row`] reads, in its order, then `$rest`.
macro_rules! select_events {
    ($rest:literal) => {
        concat!(
            "SELECT global_position, stream_id, stream_type, version, event_id, event_type, ",
            "schema_version, payload, metadata, recorded_at FROM events ",
            $rest
        )
    };
}

/// A stream's events from a version on, oldest first.
pub(crate) const STREAM_FORWARDS: &str =
    select_events!("WHERE stream_id = ?1 AND version >= ?2 ORDER BY version LIMIT ?3");
/// A stream's events up to a version, newest first.
pub(crate) const STREAM_BACKWARDS: &str =
    select_events!("WHERE stream_id = ?1 AND version <= ?2 ORDER BY version DESC LIMIT ?3");
/// The global log after a position.
pub(crate) const LOG_AFTER: &str = select_events!("WHERE global_position > ?1 ORDER BY global_position LIMIT ?2");

/// Read connections, opened on demand and reused.
pub(crate) struct ReaderPool {
    path: PathBuf,
    /// Open the file read-only (a store opened for reading only).
    read_only: bool,
    idle: Mutex<Vec<Connection>>,
}

impl ReaderPool {
    pub(crate) fn new(path: PathBuf, read_only: bool) -> Self {
        Self {
            path,
            read_only,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` with a read connection.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let conn = self.idle.lock().map_err(|_| StoreError::Closed)?.pop();
        let conn = match conn {
            Some(c) => c,
            None => {
                let access = if self.read_only {
                    OpenFlags::SQLITE_OPEN_READ_ONLY
                } else {
                    OpenFlags::SQLITE_OPEN_READ_WRITE
                };
                let c = Connection::open_with_flags(
                    &self.path,
                    access | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
                )
                .map_err(crate::error::db)?;
                c.execute_batch("PRAGMA query_only = ON; PRAGMA busy_timeout = 5000;")
                    .and_then(|()| crate::stable_plans(&c))
                    .map_err(crate::error::db)?;
                c
            }
        };
        let result = f(&conn);
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < 8
        {
            idle.push(conn);
        }
        result
    }
}

fn text(row: &Row<'_>, i: usize) -> Result<Option<String>, rusqlite::Error> {
    Ok(match row.get_ref(i)? {
        ValueRef::Text(t) => std::str::from_utf8(t).ok().map(str::to_owned),
        _ => None,
    })
}

/// Decodes one event row, its payload through `open` if given; a row that does not decode (any
/// column of the wrong type or shape: a row written outside annals) is [`StoreError::Corrupt`],
/// naming its stream, version and global position as far as they can be read.
pub(crate) fn decode_row(row: &Row<'_>, open: Option<&PayloadOpener>) -> Result<RecordedEvent, StoreError> {
    let b = crate::error::db;
    // The rowid: always an integer.
    let position = row.get::<_, i64>(0).map_err(b)?;
    let stream = text(row, 1).map_err(b)?.unwrap_or_default();
    let version = row.get::<_, i64>(3).ok().and_then(|v| u64::try_from(v).ok());
    let corrupt = |reason: String| StoreError::Corrupt {
        stream: stream.clone(),
        version: version.unwrap_or(0),
        reason,
        position: u64::try_from(position).ok(),
    };
    let version = version.ok_or_else(|| corrupt("version is not a positive integer".into()))?;
    let stream_id = StreamId::new(stream.clone()).map_err(|e| corrupt(format!("stream id: {e}")))?;
    let event_id = match row.get_ref(4).map_err(b)? {
        ValueRef::Blob(bytes) => {
            uuid::Uuid::from_slice(bytes).map_err(|_| corrupt("event id is not 16 bytes".into()))?
        }
        _ => return Err(corrupt("event id is not a blob".into())),
    };
    let payload = text(row, 7)
        .map_err(b)?
        .ok_or_else(|| corrupt("payload is not UTF-8 text".into()))?;
    let metadata = text(row, 8)
        .map_err(b)?
        .ok_or_else(|| corrupt("metadata is not UTF-8 text".into()))?;
    let schema_version = row
        .get::<_, i64>(6)
        .map_err(|e| corrupt(format!("schema version: {e}")))?;
    let recorded_at = row
        .get::<_, i64>(9)
        .map_err(|e| corrupt(format!("recorded_at is not microseconds since 1970: {e}")))?;
    let at = |e: StoreError| e.at_position(position as u64);
    Ok(RecordedEvent {
        global_position: position as u64,
        stream_type: text(row, 2)
            .map_err(b)?
            .ok_or_else(|| corrupt("stream type is not text".into()))?,
        version,
        event_id,
        event_type: text(row, 5)
            .map_err(b)?
            .ok_or_else(|| corrupt("event type is not text".into()))?,
        schema_version: u32::try_from(schema_version).map_err(|_| corrupt("schema version out of range".into()))?,
        metadata: parse_stored_metadata(&stream, version, &metadata).map_err(at)?,
        payload: parse_opened_payload(&stream, version, payload, open).map_err(at)?,
        recorded_at: from_micros(recorded_at),
        stream_id,
    })
}

/// Runs an event query and decodes every row (payloads through `open` if given).
pub(crate) fn query_events(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    open: Option<&PayloadOpener>,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(crate::error::db)?;
    let mut rows = stmt.query(params).map_err(crate::error::db)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(crate::error::db)? {
        out.push(decode_row(row, open)?);
    }
    Ok(out)
}

/// Folds a stream's events from version `from` on into `acc`: version, type, schema version and
/// payload text, each given to `step` borrowed from the row (no copy; the typed decode checks the
/// payload), nothing else read. Returns how many were read. A row whose columns are not of their
/// types is [`StoreError::Corrupt`].
pub(crate) fn fold_events<A>(
    conn: &Connection,
    stream: &str,
    from: i64,
    limit: i64,
    acc: &mut A,
    mut step: impl FnMut(&mut A, annals::FoldEvent<'_>),
) -> Result<usize, StoreError> {
    let b = crate::error::db;
    let mut stmt = conn
        .prepare_cached(
            "SELECT version, event_type, schema_version, payload FROM events
             WHERE stream_id = ?1 AND version >= ?2 ORDER BY version LIMIT ?3",
        )
        .map_err(b)?;
    let mut rows = stmt.query(rusqlite::params![stream, from, limit]).map_err(b)?;
    let mut read = 0;
    while let Some(row) = rows.next().map_err(b)? {
        let corrupt = |version: u64, reason: &str| StoreError::Corrupt {
            stream: stream.to_owned(),
            version,
            reason: reason.to_owned(),
            position: None,
        };
        let version = row
            .get::<_, i64>(0)
            .ok()
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| corrupt(0, "version is not a positive integer"))?;
        let schema_version = row
            .get::<_, i64>(2)
            .ok()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| corrupt(version, "schema version out of range"))?;
        let event_type = borrowed_text(row, 1)
            .map_err(b)?
            .ok_or_else(|| corrupt(version, "event type is not text"))?;
        let payload = borrowed_text(row, 3)
            .map_err(b)?
            .ok_or_else(|| corrupt(version, "payload is not UTF-8 text"))?;
        step(
            acc,
            annals::FoldEvent {
                version,
                event_type,
                schema_version,
                payload,
            },
        );
        read += 1;
    }
    Ok(read)
}

/// Column `i` as text borrowed from the row; `None` if it is not UTF-8 text.
fn borrowed_text<'r>(row: &'r Row<'_>, i: usize) -> Result<Option<&'r str>, rusqlite::Error> {
    Ok(match row.get_ref(i)? {
        ValueRef::Text(t) => std::str::from_utf8(t).ok(),
        _ => None,
    })
}

//! The reading commands: `streams` (paged, by type, deleted ones on request), `history` (a
//! stream's events, paged and filtered, the state they add up to, time travel, `--follow`) and
//! `events` (the global log from a position, by stream or type, `--follow`).

use std::io::Write;
use std::time::Duration;

use annals::{EventStore, ReadStream, RecordedEvent, StreamId};
use serde_json::{Map, Value};

use crate::backend::AnyStore;
use crate::output::{emit, event_line, out, print_events, stream_json, time};

/// What `streams` lists.
#[derive(Clone, Debug, Default)]
pub struct StreamsQuery {
    /// Only streams of this type.
    pub stream_type: Option<String>,
    /// Deleted streams too.
    pub deleted: bool,
    /// At most this many.
    pub limit: Option<usize>,
    /// Those after this stream id (the last of the previous page).
    pub after: Option<String>,
}

/// `annals streams`: stream id, type, version and last change, under a header, ordered by id.
pub async fn streams(store: &AnyStore, query: StreamsQuery, json: bool) -> anyhow::Result<()> {
    let mut after: Option<StreamId> = query.after.map(StreamId::new).transpose()?;
    let limit = query.limit.unwrap_or(usize::MAX);
    let mut rows = Vec::new();
    let mut more = false;
    'pages: loop {
        let page = store.list_streams(after.as_ref(), 1000).await?;
        for s in page
            .iter()
            .filter(|s| query.stream_type.as_deref().is_none_or(|t| t == s.stream_type))
        {
            // A soft-deleted aggregate's stream ends with its deletion: hidden unless asked for.
            let last = store.read_stream(&s.stream_id, ReadStream::last(1)).await?;
            let is_deleted = last.first().is_some_and(|e| e.event_type == annals::DELETED_EVENT);
            if is_deleted && !query.deleted {
                continue;
            }
            if rows.len() == limit {
                more = true;
                break 'pages;
            }
            rows.push((s.clone(), is_deleted));
        }
        match page.last() {
            Some(last) if page.len() == 1000 => after = Some(last.stream_id.clone()),
            _ => break,
        }
    }
    if json {
        for (s, is_deleted) in &rows {
            let mut v = stream_json(s);
            v["deleted"] = (*is_deleted).into();
            emit("stream", v);
        }
    } else if rows.is_empty() {
        out!("(no streams)");
    } else {
        let id_width = rows
            .iter()
            .map(|(s, _)| s.stream_id.as_str().len())
            .max()
            .unwrap_or(0)
            .max(6);
        let type_width = rows.iter().map(|(s, _)| s.stream_type.len()).max().unwrap_or(0).max(4);
        out!(
            "{:<id_width$}  {:<type_width$}  {:>7}  UPDATED",
            "STREAM",
            "TYPE",
            "VERSION"
        );
        for (s, is_deleted) in &rows {
            out!(
                "{:<id_width$}  {:<type_width$}  {:>7}  {}{}",
                s.stream_id.as_str(),
                s.stream_type,
                s.version,
                time(s.updated_at),
                if *is_deleted { "  (deleted)" } else { "" }
            );
        }
    }
    if more && let Some((last, _)) = rows.last() {
        eprintln!("(more streams: --after {} for the next page)", last.stream_id);
    }
    Ok(())
}

/// The state the events add up to: the generic fold merges every payload's fields in order. A
/// payload that does not parse (stored before the JSON policy) is an error naming its version.
fn generic_state(events: &[RecordedEvent]) -> anyhow::Result<Value> {
    let mut state = Map::new();
    for e in events {
        if let Value::Object(fields) = e.payload_value()? {
            state.extend(fields);
        }
    }
    Ok(Value::Object(state))
}

/// What `history` shows.
#[derive(Clone, Debug, Default)]
pub struct HistoryQuery {
    /// The stream.
    pub stream: String,
    /// Time travel: the state as of this version.
    pub at_version: Option<u64>,
    /// Time travel: the state as of this time (RFC 3339).
    pub at_time: Option<String>,
    /// Show events from this version on.
    pub from_version: Option<u64>,
    /// Show at most this many events.
    pub limit: Option<usize>,
    /// Show only events of this type (the state still folds them all).
    pub event_type: Option<String>,
    /// Keep printing the stream's new events as they commit.
    pub follow: bool,
}

/// `annals history`: a stream's events and the state they add up to, now or in the past.
pub async fn history(
    store: &AnyStore,
    registry: &crate::Registry,
    query: HistoryQuery,
    json: bool,
) -> anyhow::Result<()> {
    let stream = query.stream.as_str();
    let id = StreamId::new(stream)?;
    let at_time = query
        .at_time
        .as_deref()
        .map(|t| annals::time::parse_rfc3339(t).map_err(|e| crate::exit::invalid(format!("--at-time: {e}"))))
        .transpose()?;
    // The log's head first: on PostgreSQL that gives positions to events committed a moment
    // ago, so every event shown has its position.
    store.head_position().await?;
    let all = store.read_stream(&id, ReadStream::all()).await?;
    let Some(first) = all.first() else {
        return Err(crate::exit::not_found(format!("stream `{stream}` does not exist")));
    };
    let stream_type = first.stream_type.clone();
    let current = all.last().map_or(0, |e| e.version);
    if let Some(v) = query.at_version.filter(|&v| v > current) {
        return Err(crate::exit::invalid(format!(
            "--at-version {v}: stream `{stream}` has {current} events"
        )));
    }
    let events: Vec<RecordedEvent> = all
        .into_iter()
        .take_while(|e| query.at_version.is_none_or(|v| e.version <= v) && at_time.is_none_or(|t| e.recorded_at <= t))
        .collect();
    // A fold the application registered for this stream type, else the generic view. A
    // deletion or restore event is bookkeeping, not the aggregate's: left out of the fold.
    let domain: Vec<RecordedEvent> = events
        .iter()
        .filter(|e| e.event_type != annals::DELETED_EVENT && e.event_type != annals::RESTORED_EVENT)
        .cloned()
        .collect();
    let (state, how) = match registry.fold_of(&stream_type) {
        Some((fold, name)) => (fold(&domain)?, name),
        None => (
            generic_state(&domain)?,
            "generic fold: the fields of every payload merged in order",
        ),
    };
    let version = events.last().map_or(0, |e| e.version);
    let shown = |e: &&RecordedEvent| {
        query.from_version.is_none_or(|v| e.version >= v)
            && query.event_type.as_deref().is_none_or(|t| e.event_type == t)
    };
    let listed: Vec<&RecordedEvent> = events
        .iter()
        .filter(shown)
        .take(query.limit.unwrap_or(usize::MAX))
        .collect();
    if json {
        // A struct, not `json!`: events go out with their payloads as stored.
        #[derive(serde::Serialize)]
        struct History<'a> {
            stream_id: &'a str,
            stream_type: &'a str,
            version: u64,
            current_version: u64,
            state: &'a Value,
            events: Vec<annals::event::EventView<'a>>,
        }
        let history = History {
            stream_id: stream,
            stream_type: &stream_type,
            version,
            current_version: current,
            state: &state,
            events: listed.iter().map(|e| e.view()).collect(),
        };
        crate::output::emit_with("history", &history);
    } else {
        let when = match (query.at_version, at_time) {
            (_, Some(t)) => format!("as of {}", time(t)),
            (Some(_), None) => format!("as of version {version}"),
            (None, None) => "now".to_owned(),
        };
        out!("stream {stream} ({stream_type}), version {version} of {current}, {when}");
        for e in &listed {
            out!("  {}", event_line(e));
        }
        if listed.len() < events.len() {
            out!("  ({} of {} events shown)", listed.len(), events.len());
        }
        out!("state ({how}):");
        out!("{}", serde_json::to_string_pretty(&state)?);
    }
    if query.follow {
        follow_stream(store, &id, current, query.event_type.as_deref(), json).await?;
    }
    Ok(())
}

/// Prints `stream`'s events after `version` as they commit, until Ctrl-C or SIGTERM.
async fn follow_stream(
    store: &AnyStore,
    stream: &StreamId,
    mut version: u64,
    event_type: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let mut shutdown = std::pin::pin!(crate::logging::shutdown());
    let mut head = store.head_position().await?;
    loop {
        let new = store.read_stream(stream, ReadStream::from_version(version + 1)).await?;
        if let Some(last) = new.last() {
            version = last.version;
            let wanted: Vec<RecordedEvent> = new
                .into_iter()
                .filter(|e| event_type.is_none_or(|t| e.event_type == t))
                .collect();
            if json {
                print_events(&wanted, true);
            } else {
                for e in &wanted {
                    out!("  {}", event_line(e));
                }
            }
            std::io::stdout().flush()?;
        }
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            waited = store.wait_for_new(head, Duration::from_secs(30)) => head = waited?,
        }
    }
}

/// What `events` shows.
#[derive(Clone, Debug, Default)]
pub struct EventsQuery {
    /// The first global position to show.
    pub from: u64,
    /// At most this many (without `follow`).
    pub limit: Option<usize>,
    /// Keep waiting for new events.
    pub follow: bool,
    /// Only this stream's events.
    pub stream: Option<String>,
    /// Only events of this type.
    pub event_type: Option<String>,
}

/// `annals events`: the global log from a position, filtered, followed if asked.
pub async fn events(store: &AnyStore, query: EventsQuery, json: bool) -> anyhow::Result<()> {
    let stream = query.stream.map(StreamId::new).transpose()?;
    let head = store.head_position().await?;
    if !query.follow && query.from > head.saturating_add(1) {
        return Err(crate::exit::invalid(format!(
            "--from {}: the log ends at position {head} (add --follow to wait for it)",
            query.from
        )));
    }
    let wanted = |e: &RecordedEvent| {
        stream.as_ref().is_none_or(|s| &e.stream_id == s)
            && query.event_type.as_deref().is_none_or(|t| e.event_type == t)
    };
    let mut after = query.from.saturating_sub(1);
    let mut left = if query.follow {
        usize::MAX
    } else {
        query.limit.unwrap_or(usize::MAX)
    };
    // One signal listener for the whole run: a SIGTERM between two waits is not lost.
    let mut shutdown = std::pin::pin!(crate::logging::shutdown());
    while left > 0 {
        let batch = store.read_all(after, 1000).await?;
        if let Some(last) = batch.last() {
            after = last.global_position;
            let shown: Vec<RecordedEvent> = batch.into_iter().filter(|e| wanted(e)).take(left).collect();
            left -= shown.len();
            print_events(&shown, json);
            std::io::stdout().flush()?;
            continue;
        }
        if !query.follow {
            break;
        }
        tokio::select! {
            () = &mut shutdown => break,
            waited = store.wait_for_new(after, Duration::from_secs(30)) => { waited?; }
        }
    }
    Ok(())
}

//! The inspection and operator commands: streams, history (time travel), events, append.

use std::io::Write;
use std::time::Duration;

use annals::{EventStore, ExpectedVersion, Metadata, NewEvent, ReadStream, RecordedEvent, StreamId};
use serde_json::{Map, Value, json};

use crate::backend::AnyStore;
use crate::output::out;
use crate::output::{event_line, print_events, stream_json, time};

/// Lists streams.
pub async fn streams(store: &AnyStore, stream_type: Option<&str>, deleted: bool, json: bool) -> anyhow::Result<()> {
    let mut after: Option<StreamId> = None;
    let mut count = 0;
    loop {
        let page = store.list_streams(after.as_ref(), 1000).await?;
        for s in page.iter().filter(|s| stream_type.is_none_or(|t| t == s.stream_type)) {
            // A soft-deleted aggregate's stream ends with its deletion: hidden unless asked for.
            let last = store.read_stream(&s.stream_id, ReadStream::last(1)).await?;
            let is_deleted = last.first().is_some_and(|e| e.event_type == annals::DELETED_EVENT);
            if is_deleted && !deleted {
                continue;
            }
            count += 1;
            if json {
                let mut v = stream_json(s);
                v["deleted"] = is_deleted.into();
                crate::output::emit("stream", v);
            } else {
                out!(
                    "{:<40} {:<12} v{:<6} {}{}",
                    s.stream_id,
                    s.stream_type,
                    s.version,
                    time(s.updated_at),
                    if is_deleted { "  (deleted)" } else { "" }
                );
            }
        }
        match page.last() {
            Some(last) if page.len() == 1000 => after = Some(last.stream_id.clone()),
            _ => break,
        }
    }
    if !json && count == 0 {
        out!("(no streams)");
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

/// Shows a stream's history and state, now or as of a version or time.
pub async fn history(
    store: &AnyStore,
    registry: &crate::Registry,
    stream: &str,
    at_version: Option<u64>,
    at_time: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let id = StreamId::new(stream)?;
    let at_time = at_time
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
    if let Some(v) = at_version.filter(|&v| v > current) {
        return Err(crate::exit::invalid(format!(
            "--at-version {v}: stream `{stream}` has {current} events"
        )));
    }
    let events: Vec<RecordedEvent> = all
        .into_iter()
        .take_while(|e| at_version.is_none_or(|v| e.version <= v) && at_time.is_none_or(|t| e.recorded_at <= t))
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
            events: events.iter().map(RecordedEvent::view).collect(),
        };
        crate::output::emit_with("history", &history);
        return Ok(());
    }
    let when = match (at_version, at_time) {
        (_, Some(t)) => format!("as of {}", time(t)),
        (Some(_), None) => format!("as of version {version}"),
        (None, None) => "now".to_owned(),
    };
    out!("stream {stream} ({stream_type}), version {version} of {current}, {when}");
    for e in &events {
        out!("  {}", event_line(e));
    }
    out!("state ({how}):");
    out!("{}", serde_json::to_string_pretty(&state)?);
    Ok(())
}

/// Prints the global log from `from`, and follows it if asked.
pub async fn events(store: &AnyStore, from: u64, limit: Option<usize>, follow: bool, json: bool) -> anyhow::Result<()> {
    let mut after = from.saturating_sub(1);
    let mut left = if follow {
        usize::MAX
    } else {
        limit.unwrap_or(usize::MAX)
    };
    // One signal listener for the whole run: a SIGTERM between two waits is not lost.
    let mut shutdown = std::pin::pin!(crate::logging::shutdown());
    while left > 0 {
        let batch = store.read_all(after, left.min(1000)).await?;
        if let Some(last) = batch.last() {
            after = last.global_position;
            left -= batch.len();
            print_events(&batch, json);
            std::io::stdout().flush()?;
            continue;
        }
        if !follow {
            break;
        }
        tokio::select! {
            () = &mut shutdown => break,
            waited = store.wait_for_new(after, Duration::from_secs(30)) => { waited?; }
        }
    }
    Ok(())
}

/// What `annals append` was given.
pub struct AppendArgs {
    /// The stream id.
    pub stream: String,
    /// The event type.
    pub event_type: String,
    /// The payload, as JSON text.
    pub data: String,
    /// `any`, `no-stream`, `exists` or a version.
    pub expected_version: String,
    /// The stream type, if given.
    pub stream_type: Option<String>,
    /// Who appends.
    pub actor: Option<String>,
}

fn parse_expected(s: &str) -> anyhow::Result<ExpectedVersion> {
    Ok(match s {
        "any" => ExpectedVersion::Any,
        "no-stream" => ExpectedVersion::NoStream,
        "exists" => ExpectedVersion::StreamExists,
        n => ExpectedVersion::Exact(n.parse().map_err(|_| {
            crate::exit::invalid(format!(
                "--expected-version {n:?}: use a number, any, no-stream or exists"
            ))
        })?),
    })
}

/// Appends one event.
pub async fn append(store: &AnyStore, args: AppendArgs, json: bool) -> anyhow::Result<()> {
    let id = StreamId::new(args.stream.clone())?;
    let expected = parse_expected(&args.expected_version)?;
    let stream_type = match args.stream_type {
        Some(t) => t,
        None => match store.read_stream(&id, ReadStream::all().limit(1)).await?.first() {
            Some(e) => e.stream_type.clone(),
            None => match args.stream.split_once('-') {
                Some((prefix, _)) if annals::ids::type_name_problem(prefix).is_none() => prefix.to_owned(),
                _ => {
                    return Err(crate::exit::invalid(format!(
                        "stream `{}` is new: say its type with --stream-type",
                        args.stream
                    )));
                }
            },
        },
    };
    let mut metadata = Metadata {
        actor: args.actor,
        ..Metadata::default()
    };
    metadata.extra.insert("source".into(), json!("annals-cli"));
    let event = NewEvent::from_json(&args.event_type, args.data)
        .map_err(|e| crate::exit::invalid(format!("--data is not valid JSON: {e}")))?
        .with_metadata(metadata);
    let event_id = event.event_id;
    let out = store
        .append_to_stream(id.clone(), &stream_type, expected, vec![event])
        .await?;
    // PostgreSQL gives positions right after the commit: reading the log's head sequences the
    // event, and the stream read then has its position.
    let position = match out.last_position {
        Some(p) => p,
        None => {
            store.head_position().await?;
            store
                .read_stream(&id, ReadStream::from_version(out.last_version).limit(1))
                .await?
                .first()
                .map_or(0, |e| e.global_position)
        }
    };
    if json {
        crate::output::emit(
            "appended",
            json!({ "stream_id": args.stream, "version": out.last_version, "global_position": position,
                    "event_id": event_id, "already_stored": out.already_stored }),
        );
    } else {
        out!(
            "appended {} to {} at version {} (global position {position})",
            args.event_type,
            args.stream,
            out.last_version
        );
    }
    Ok(())
}

/// `annals delete STREAM --reason R`: a soft delete of any aggregate (its events stay).
pub async fn delete(
    store: &AnyStore,
    stream: &str,
    reason: &str,
    actor: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let id = StreamId::new(stream)?;
    let metadata = annals::Metadata {
        actor,
        ..annals::Metadata::default()
    };
    let done = match annals::delete_stream(store, &id, reason, &metadata).await? {
        None => return Err(crate::exit::not_found(format!("stream `{stream}` does not exist"))),
        Some(done) => done,
    };
    if json {
        crate::output::emit("deleted", json!({ "stream_id": stream, "already": !done }));
    } else if done {
        out!(
            "{stream} deleted: its events stay; appends and commands are refused (until `annals restore`) and listings hide it"
        );
    } else {
        out!("{stream} was deleted already");
    }
    Ok(())
}

/// `annals init`: the store exists now (created, or upgraded, by opening it for `Create`); says
/// where and at which schema version.
pub async fn init(store: &AnyStore, global: &crate::Global, json: bool) -> anyhow::Result<()> {
    let head = store.head_position().await?;
    let (backend, schema) = match store {
        AnyStore::Sqlite(_) => (
            "sqlite",
            annals_sqlite::schema::MIGRATIONS.last().map_or(0, |m| m.version),
        ),
        AnyStore::Postgres(_) => ("postgres", i64::from(annals_postgres::schema::latest())),
        AnyStore::Memory(_) => ("memory", 0),
    };
    let db = global.shown_db();
    if json {
        crate::output::emit(
            "store",
            json!({ "store": db, "backend": backend, "schema_version": schema, "head": head }),
        );
    } else {
        out!("annals store at {db} ({backend}, schema version {schema}): {head} events in the log");
    }
    Ok(())
}

/// `annals restore STREAM --reason R`: brings back a stream deleted softly.
pub async fn restore(
    store: &AnyStore,
    stream: &str,
    reason: &str,
    actor: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let id = StreamId::new(stream)?;
    let metadata = annals::Metadata {
        actor,
        ..annals::Metadata::default()
    };
    let done = match annals::restore_stream(store, &id, reason, &metadata).await? {
        None => return Err(crate::exit::not_found(format!("stream `{stream}` does not exist"))),
        Some(done) => done,
    };
    if json {
        crate::output::emit("restored", json!({ "stream_id": stream, "restored": done }));
    } else if done {
        out!("{stream} restored: appends and commands are accepted again");
    } else {
        out!("{stream} was not deleted");
    }
    Ok(())
}

/// `annals purge STREAM --reason R --yes`: the audited hard delete.
pub async fn purge(
    store: &AnyStore,
    stream: &str,
    reason: &str,
    actor: Option<String>,
    yes: bool,
    json: bool,
) -> anyhow::Result<()> {
    let id = StreamId::new(stream)?;
    if !yes {
        return Err(crate::exit::invalid(format!(
            "purging removes `{stream}`'s events for good; add --yes if that is what you want (a soft `annals delete` keeps them)"
        )));
    }
    let metadata = annals::Metadata {
        actor,
        ..annals::Metadata::default()
    };
    let removed = annals::purge::purge(store, &id, reason, &metadata).await?;
    if removed == 0 {
        return Err(crate::exit::not_found(format!("stream `{stream}` does not exist")));
    }
    if json {
        crate::output::emit("purged", json!({ "stream_id": stream, "purged_events": removed }));
    } else {
        out!(
            "{stream}: {removed} events purged; recorded in {}",
            annals::purge::PURGE_STREAM
        );
    }
    Ok(())
}

/// `annals forget SUBJECT`: destroys the subject's data key.
pub async fn forget(store: &AnyStore, subject: &str, actor: Option<String>, json: bool) -> anyhow::Result<()> {
    let metadata = annals::Metadata {
        actor,
        ..annals::Metadata::default()
    };
    let forgotten = annals::privacy::forget(store, store, subject, &metadata).await?;
    if json {
        crate::output::emit("forgotten", json!({ "subject": subject, "forgotten": forgotten }));
    } else if forgotten {
        out!("{subject} forgotten: its data key is destroyed; its personal fields read as [forgotten]");
    } else {
        out!("{subject} has no data key (never had personal data here, or forgotten already)");
    }
    Ok(())
}

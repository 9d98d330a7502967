//! The writing commands: init, append, delete, restore, purge, forget.

use std::io::Read;

use annals::{EventStore, ExpectedVersion, Metadata, NewEvent, ReadStream, StreamId};
use serde_json::json;

use crate::backend::AnyStore;
use crate::output::out;

/// What `annals append` was given.
pub struct AppendArgs {
    /// The stream id.
    pub stream: String,
    /// The event type.
    pub event_type: String,
    /// The payload: JSON text, or `-` to read it from stdin.
    pub data: Option<String>,
    /// A file holding the payload.
    pub data_file: Option<std::path::PathBuf>,
    /// `any`, `no-stream`, `exists` or a version.
    pub expected_version: String,
    /// The stream type, if given.
    pub stream_type: Option<String>,
    /// Who appends.
    pub actor: Option<String>,
}

/// The payload's text from `--data JSON`, `--data -` (stdin) or `--data-file PATH`; a file too
/// large for an event is refused by the store's size limit, with the limit named.
fn payload_text(data: Option<String>, file: Option<&std::path::Path>) -> anyhow::Result<String> {
    // Read at most a little past the limit: enough to say it is too large.
    let cap = annals::MAX_EVENT_BYTES as u64 + 1;
    let read = |mut r: Box<dyn Read>, what: &str| -> anyhow::Result<String> {
        let mut text = String::new();
        r.by_ref()
            .take(cap)
            .read_to_string(&mut text)
            .map_err(|e| crate::exit::invalid(format!("{what}: {e}")))?;
        if text.len() as u64 >= cap {
            return Err(crate::exit::invalid(format!(
                "{what} holds more than {} bytes, the largest event annals stores",
                annals::MAX_EVENT_BYTES
            )));
        }
        Ok(text)
    };
    match (data, file) {
        (Some(_), Some(_)) => Err(crate::exit::invalid("give the payload once: --data or --data-file")),
        (None, None) => Err(crate::exit::invalid(
            "no payload: --data JSON, --data - (stdin) or --data-file PATH",
        )),
        (Some(d), None) if d == "-" => read(Box::new(std::io::stdin()), "stdin"),
        (Some(d), None) => Ok(d),
        (None, Some(path)) => {
            let f = std::fs::File::open(path)
                .map_err(|e| crate::exit::invalid(format!("--data-file {}: {e}", path.display())))?;
            read(Box::new(f), &format!("--data-file {}", path.display()))
        }
    }
}

/// Says on stderr when no actor will be recorded (no --actor, no USER): the audit trail would
/// not say who did it.
fn note_actor(actor: &Option<String>) {
    if actor.is_none() {
        eprintln!("note: no actor recorded (pass --actor or set USER)");
    }
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
                Some((prefix, _)) if annals::ids::type_name_problem(prefix).is_none() => {
                    // Never silently: a projection that reads `Order` streams would not see an
                    // `order` one.
                    eprintln!(
                        "note: {} is a new stream; its type is `{prefix}`, taken from its id (--stream-type \
                         chooses another)",
                        args.stream
                    );
                    prefix.to_owned()
                }
                _ => {
                    return Err(crate::exit::invalid(format!(
                        "stream `{}` is new: say its type with --stream-type",
                        args.stream
                    )));
                }
            },
        },
    };
    let data = payload_text(args.data, args.data_file.as_deref())?;
    note_actor(&args.actor);
    let mut metadata = Metadata {
        actor: args.actor,
        ..Metadata::default()
    };
    metadata.extra.insert("source".into(), json!("annals-cli"));
    let event = NewEvent::from_json(&args.event_type, data)
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
    note_actor(&actor);
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
    note_actor(&actor);
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
    note_actor(&actor);
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
    note_actor(&actor);
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

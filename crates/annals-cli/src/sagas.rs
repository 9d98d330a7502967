//! `annals saga show|list` and the sagas line of `annals status`: any saga's timeline and where
//! every saga stands, read from the store without the sagas' Rust types.

use annals::saga::{SAGA_STREAM_TYPE, SagaStatus, SagaSummary, summarize};
use annals::{EventStore, ReadStream, StreamId};
use serde_json::json;

use crate::backend::AnyStore;
use crate::output;
use crate::output::out;

/// `annals saga …`.
#[derive(clap::Subcommand)]
pub enum SagaAction {
    /// Show a saga's timeline: its steps, the commands it sent and the replies it got.
    Show {
        /// The saga id, e.g. create-order~order-1.
        id: String,
    },
    /// List sagas with where they stand.
    List {
        /// Only sagas that ended Failed (a compensation kept failing).
        #[arg(long)]
        failed: bool,
        /// Only sagas that have not ended.
        #[arg(long, conflicts_with = "failed")]
        running: bool,
    },
}

/// Reads saga `id`'s summary; an error if the stream is missing or not a saga.
pub async fn load(store: &AnyStore, id: &StreamId) -> anyhow::Result<SagaSummary> {
    let events = store.read_stream(id, ReadStream::all()).await?;
    let Some(first) = events.first() else {
        return Err(crate::exit::not_found(format!(
            "no saga `{id}`: the stream does not exist"
        )));
    };
    if first.stream_type != SAGA_STREAM_TYPE {
        return Err(crate::exit::invalid(format!(
            "stream `{id}` is of type {}, not a saga",
            first.stream_type
        )));
    }
    Ok(summarize(&events)?)
}

/// Every saga in the store, by id.
pub async fn all(store: &AnyStore) -> anyhow::Result<Vec<SagaSummary>> {
    let mut out = Vec::new();
    let mut after: Option<StreamId> = None;
    loop {
        let page = store.list_streams(after.as_ref(), 1000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.stream_id.clone());
        for s in page.iter().filter(|s| s.stream_type == SAGA_STREAM_TYPE) {
            out.push(load(store, &s.stream_id).await?);
        }
    }
    Ok(out)
}

fn summary_json(s: &SagaSummary) -> serde_json::Value {
    json!({
        "kind": "saga", "saga": s.saga_id, "type": s.saga_type, "status": format!("{:?}", s.status),
        "failure": s.failure,
        "waiting_for": s.waiting_for.as_ref().map(|(channel, command, compensation)|
            json!({ "channel": channel, "command": command, "compensation": compensation })),
        "started_at": s.started_at.map(output::time), "updated_at": s.updated_at.map(output::time),
    })
}

fn summary_line(s: &SagaSummary) -> String {
    let mut line = format!(
        "{:<36} {:<12} {:<12}",
        s.saga_id,
        s.saga_type,
        format!("{:?}", s.status)
    );
    if let Some((channel, command, _)) = &s.waiting_for {
        line.push_str(&format!(" waiting for {channel}: {command}"));
    }
    if let Some(why) = &s.failure {
        line.push_str(&format!(" ({why})"));
    }
    line
}

/// Prints saga `id`'s timeline.
pub fn print_timeline(s: &SagaSummary) {
    out!("{}", summary_line(s));
    for e in &s.timeline {
        out!("  v{:<3} {}  {}", e.version, output::time(e.at), e.text);
    }
}

/// `annals saga show|list`.
pub async fn run(store: &AnyStore, action: SagaAction, json: bool) -> anyhow::Result<()> {
    match action {
        SagaAction::Show { id } => {
            let s = load(store, &StreamId::new(id)?).await?;
            if json {
                let mut v = summary_json(&s);
                v["timeline"] = s
                    .timeline
                    .iter()
                    .map(|e| json!({ "version": e.version, "at": output::time(e.at), "event_type": e.event_type, "text": e.text }))
                    .collect();
                out!("{v}");
            } else {
                print_timeline(&s);
            }
        }
        SagaAction::List { failed, running } => {
            for s in all(store).await? {
                if (failed && s.status != SagaStatus::Failed) || (running && s.status.is_final()) {
                    continue;
                }
                if json {
                    out!("{}", summary_json(&s));
                } else {
                    out!("{}", summary_line(&s));
                }
            }
        }
    }
    Ok(())
}

/// The sagas part of `annals status`: counts by status, and every failed saga.
pub async fn status(store: &AnyStore, json: bool) -> anyhow::Result<()> {
    let sagas = all(store).await?;
    if sagas.is_empty() {
        return Ok(());
    }
    let count = |st: SagaStatus| sagas.iter().filter(|s| s.status == st).count();
    let running = count(SagaStatus::Running) + count(SagaStatus::Compensating);
    let (succeeded, compensated, failed) = (
        count(SagaStatus::Succeeded),
        count(SagaStatus::Compensated),
        count(SagaStatus::Failed),
    );
    if json {
        out!(
            "{}",
            json!({ "kind": "sagas", "sagas": sagas.len(), "running": running, "succeeded": succeeded,
                    "compensated": compensated, "failed": failed })
        );
        for s in sagas.iter().filter(|s| s.status == SagaStatus::Failed) {
            out!("{}", summary_json(s));
        }
        return Ok(());
    }
    out!(
        "sagas: {} ({running} running, {succeeded} succeeded, {compensated} compensated, {failed} failed)",
        sagas.len()
    );
    for s in sagas.iter().filter(|s| s.status == SagaStatus::Failed) {
        out!("  {}", summary_line(s));
    }
    Ok(())
}

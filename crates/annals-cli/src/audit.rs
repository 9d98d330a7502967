//! `annals audit STREAM`: who changed an aggregate, when, because of which message, and what
//! each change stored ([`annals::audit::changes`]).

use annals::audit::changes;
use annals::{EventStore, ReadStream, StreamId};

use crate::backend::AnyStore;
use crate::output;
use crate::output::out;

fn id_text(id: Option<uuid::Uuid>) -> String {
    id.map_or_else(|| "-".to_owned(), |i| i.to_string())
}

/// Prints the changes of `stream`, readable or one JSON object per change.
pub async fn run(store: &AnyStore, stream: &str, json: bool) -> anyhow::Result<()> {
    let id = StreamId::new(stream)?;
    let events = store.read_stream(&id, ReadStream::all()).await?;
    let Some(first) = events.first() else {
        return Err(crate::exit::not_found(format!("stream `{stream}` does not exist")));
    };
    let all = changes(&events);
    if !json {
        out!(
            "{stream} ({}): {} changes, {} events",
            first.stream_type,
            all.len(),
            events.len()
        );
    }
    for c in &all {
        if json {
            // Serialized as structs, not `json!`: a payload goes out as stored (a `Value` would
            // round wide integers, and refuse a payload stored before the JSON policy).
            #[derive(serde::Serialize)]
            struct Stored<'a> {
                version: u64,
                event_type: &'a str,
                event_id: uuid::Uuid,
                data: &'a serde_json::value::RawValue,
            }
            #[derive(serde::Serialize)]
            struct Change<'a> {
                stream: &'a str,
                versions: [u64; 2],
                at: String,
                actor: &'a Option<String>,
                causation_id: Option<uuid::Uuid>,
                correlation_id: Option<uuid::Uuid>,
                tenant: &'a Option<String>,
                events: Vec<Stored<'a>>,
            }
            let change = Change {
                stream,
                versions: [c.versions.0, c.versions.1],
                at: output::time(c.at),
                actor: &c.actor,
                causation_id: c.causation_id,
                correlation_id: c.correlation_id,
                tenant: &c.tenant,
                events: c
                    .events
                    .iter()
                    .map(|e| Stored {
                        version: e.version,
                        event_type: &e.event_type,
                        event_id: e.event_id,
                        data: &e.payload,
                    })
                    .collect(),
            };
            output::emit_with("change", &change);
            continue;
        }
        let versions = if c.versions.0 == c.versions.1 {
            format!("v{}", c.versions.0)
        } else {
            format!("v{}-{}", c.versions.0, c.versions.1)
        };
        let types: Vec<&str> = c.events.iter().map(|e| e.event_type.as_str()).collect();
        out!(
            "{versions:<8} {}  by {:<24} caused by {:<36} correlation {}  {}",
            output::time(c.at),
            c.actor.as_deref().unwrap_or("-"),
            id_text(c.causation_id),
            id_text(c.correlation_id),
            types.join(", ")
        );
    }
    Ok(())
}

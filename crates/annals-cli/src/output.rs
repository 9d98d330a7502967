//! How the CLI prints events and streams: a line a person can read, or one JSON object per line.

use std::time::SystemTime;

use annals::{RecordedEvent, StreamInfo};

/// A timestamp as RFC 3339 with seconds.
pub fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// One event as a readable line.
pub fn event_line(e: &RecordedEvent) -> String {
    let who = e
        .metadata
        .actor
        .as_deref()
        .map(|a| format!("  by {a}"))
        .unwrap_or_default();
    format!(
        "#{:<6} {}@{:<3} {:<18} {}{}  [{}]",
        e.global_position,
        e.stream_id,
        e.version,
        e.event_type,
        e.payload.get(),
        who,
        time(e.recorded_at)
    )
}

/// Prints events, readable or as JSON lines.
pub fn print_events(events: &[RecordedEvent], json: bool) {
    for e in events {
        if json {
            println!("{}", e.to_json());
        } else {
            println!("{}", event_line(e));
        }
    }
}

/// One stream as a JSON object.
pub fn stream_json(s: &StreamInfo) -> serde_json::Value {
    serde_json::json!({
        "stream_id": s.stream_id.as_str(),
        "stream_type": s.stream_type,
        "version": s.version,
        "updated_at": time(s.updated_at),
    })
}

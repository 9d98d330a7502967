//! How the CLI prints events and streams: a line a person can read, or one JSON object per line.

use std::time::SystemTime;

/// `println!` that stops the process quietly when stdout is closed (`annals events | head`),
/// instead of panicking.
#[macro_export]
macro_rules! out {
    () => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock()) {
            $crate::output::stdout_failed(e)
        }
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            $crate::output::stdout_failed(e)
        }
    }};
}
pub use crate::out;

/// Ends the process after a failed write to stdout: quietly (success) if the reader went away,
/// with an error otherwise.
pub fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write to stdout: {e}");
    std::process::exit(1)
}

use annals::{RecordedEvent, StreamInfo};

/// A timestamp as RFC 3339 in UTC with microseconds: exactly the stored time, so a time copied
/// from a listing into `history --at-time` gives the state with that event in it (whole seconds
/// gave the state before it).
pub fn time(t: SystemTime) -> String {
    annals::time::format_micros(t)
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

/// The JSON contract: with `--json`, stdout is JSON Lines — one object per line, each with a
/// `kind` saying what it describes (`event`, `stream`, `consumer`, `saga`, …). A command with
/// one result prints one line; a list prints a line per item (and, where it has one, a summary
/// line of its own kind). Errors go to stderr as `{"error":{"kind":…,"message":…}}`.
pub fn emit(kind: &str, mut value: serde_json::Value) {
    if let serde_json::Value::Object(fields) = &mut value {
        fields.insert("kind".to_owned(), kind.into());
    }
    out!("{value}");
}

/// [`emit`] for a value serialized as it is (an event's payload as stored, say).
pub fn emit_with<T: serde::Serialize>(kind: &'static str, value: &T) {
    #[derive(serde::Serialize)]
    struct Tagged<'a, T> {
        kind: &'static str,
        #[serde(flatten)]
        value: &'a T,
    }
    match serde_json::to_string(&Tagged { kind, value }) {
        Ok(line) => out!("{line}"),
        Err(e) => emit("error", serde_json::json!({ "message": e.to_string() })),
    }
}

/// Prints events, readable or as JSON lines (kind `event`).
pub fn print_events(events: &[RecordedEvent], json: bool) {
    for e in events {
        if json {
            emit_with("event", &e.view());
        } else {
            out!("{}", event_line(e));
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

//! How a failed command ends: one line on stderr (or, with `--json`, one JSON object with the
//! error's kind and message) and an exit code a script can act on, chosen by the error's
//! [`ErrorKind`]:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | any other failure |
//! | 2 | usage: an unknown command or option, a missing argument (from the argument parser) |
//! | 3 | conflict: the stream moved on (expected version), was deleted, has another type |
//! | 4 | not found: no such stream, parked message, saga |
//! | 5 | invalid input: a bad stream id, payload, version, time or option value; nothing changed |
//! | 6 | unavailable: the database or broker cannot be reached now; retrying later may work |
//! | 7 | misconfigured: a bad URL, a missing database or permission, a server setting |
//! | 8 | corrupt: stored data that cannot be read |

use annals::{ErrorKind, Failure};

/// The exit code of an error of `kind` (see the module docs).
pub fn code(kind: Option<ErrorKind>) -> u8 {
    match kind {
        Some(ErrorKind::Conflict) => 3,
        Some(ErrorKind::NotFound) => 4,
        Some(ErrorKind::InvalidInput) => 5,
        Some(ErrorKind::Unavailable) => 6,
        Some(ErrorKind::Misconfigured) => 7,
        Some(ErrorKind::Corrupt) => 8,
        _ => 1,
    }
}

/// The kind of a command's error: the first error in its chain that has one.
pub fn kind(e: &anyhow::Error) -> Option<ErrorKind> {
    e.chain().find_map(|cause| {
        annals::kind_of(cause)
            .or_else(|| {
                cause
                    .downcast_ref::<annals_nats::NatsError>()
                    .map(annals_nats::NatsError::kind)
            })
            .or_else(|| {
                cause
                    .downcast_ref::<annals_nats::NatsConsumeError>()
                    .map(annals_nats::NatsConsumeError::kind)
            })
    })
}

/// Prints `e` for a person (`error: …`) or, with `json`, as `{"error":{"kind":…,"message":…}}`;
/// returns the exit code.
pub fn report(e: &anyhow::Error, json: bool) -> u8 {
    let kind = kind(e);
    let message = text(e);
    if json {
        let object =
            serde_json::json!({ "error": { "kind": kind.map_or("other", ErrorKind::as_str), "message": message } });
        eprintln!("{object}");
    } else {
        eprintln!("error: {message}");
    }
    code(kind)
}

/// `e` and its causes, outermost first, each said once (see [`annals::error::report`]).
pub fn text(e: &anyhow::Error) -> String {
    let mut report = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if report.contains(&part) {
            continue;
        }
        if !report.is_empty() {
            report.push_str(": ");
        }
        report.push_str(&part);
    }
    report
}

/// An error of the user's input (exit code 5): nothing was changed.
pub fn invalid(message: impl Into<String>) -> anyhow::Error {
    Failure::new(ErrorKind::InvalidInput, message).into()
}

/// Something asked for does not exist (exit code 4).
pub fn not_found(message: impl Into<String>) -> anyhow::Error {
    Failure::new(ErrorKind::NotFound, message).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_report_names_each_cause_once() {
        let io = std::io::Error::other("disk full");
        let store = annals::StoreError::backend(io);
        let e = anyhow::Error::new(store).context("appending to order-1");
        assert_eq!(text(&e), "appending to order-1: storage backend error: disk full");
        let plain = anyhow::anyhow!("no such stream").context("history of order-9");
        assert_eq!(text(&plain), "history of order-9: no such stream");
    }

    #[test]
    fn the_kind_chooses_the_code_through_context() {
        let conflict = annals::StoreError::Conflict {
            stream: "s".into(),
            expected: annals::ExpectedVersion::Exact(5),
            actual: 1,
        };
        let e = anyhow::Error::new(conflict).context("appending");
        assert_eq!((kind(&e), code(kind(&e))), (Some(ErrorKind::Conflict), 3));
        assert_eq!(code(kind(&invalid("bad"))), 5);
        assert_eq!(code(kind(&not_found("gone").context("looking"))), 4);
        assert_eq!(code(kind(&anyhow::anyhow!("plain"))), 1);
    }
}

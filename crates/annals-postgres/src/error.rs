//! Driver and pool failures as [`StoreError`]s of the right [kind](annals::ErrorKind): what a
//! retry can fix (a refused connection, a server shutting down, a pool with no free connection
//! in time, a deadlock) is `Unavailable`; what only an operator can fix (a login refused, a
//! missing database, schema or permission, a server setting) is `Misconfigured`, with the
//! server's own words. Everything else stays `Backend` (treated as transient, retried visibly).

use std::time::Duration;

use annals::StoreError;
use deadpool_postgres::PoolError;

/// A failure of the driver (a statement, a connection) as a store error of the right kind.
pub(crate) fn db(e: tokio_postgres::Error) -> StoreError {
    let Some(server) = e.as_db_error() else {
        // No answer from the server: the connection broke, was closed, or never opened.
        let reason = format!("PostgreSQL connection failed: {}", with_cause(&e));
        // A host name that does not resolve is a wrong URL far more often than a DNS outage.
        if reason.contains("failed to lookup address") {
            return StoreError::misconfigured(format!("{reason} (check the host in the URL)"), Some(Box::new(e)));
        }
        return StoreError::unavailable(reason, Some(Box::new(e)));
    };
    let code = server.code().code();
    let said = match server.detail() {
        Some(detail) => format!("{}: {} ({detail})", server.severity(), server.message()),
        None => format!("{}: {}", server.severity(), server.message()),
    };
    match Class::of(code) {
        Class::Transient => {
            StoreError::unavailable(format!("PostgreSQL is busy or going away: {said}"), Some(Box::new(e)))
        }
        Class::SetUp => StoreError::misconfigured(
            format!("PostgreSQL refused: {said} (SQLSTATE {code})"),
            Some(Box::new(e)),
        ),
        Class::Other => StoreError::backend(e),
    }
}

/// A failed pool checkout as a store error: a wait past the pool's deadline is `Unavailable`,
/// naming the deadline and the pool's size.
pub(crate) fn pool(e: PoolError, size: usize, wait: Duration) -> StoreError {
    match e {
        PoolError::Backend(e) => db(e),
        PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => StoreError::unavailable(
            format!("no PostgreSQL connection came free within {wait:?} (the pool has {size}, all in use)"),
            None,
        ),
        PoolError::Timeout(_) => StoreError::unavailable(
            format!("PostgreSQL did not open or check a connection within {wait:?}"),
            None,
        ),
        PoolError::Closed => StoreError::Closed,
        other => StoreError::backend(other),
    }
}

/// `e` with `context` (what was being done) in front of its reason; an unclassified failure
/// becomes `Unavailable` so the context is kept.
pub(crate) fn in_context(e: StoreError, context: &str) -> StoreError {
    match e {
        StoreError::Unavailable { reason, source } => StoreError::Unavailable {
            reason: format!("{context}: {reason}"),
            source,
        },
        StoreError::Misconfigured { reason, source } => StoreError::Misconfigured {
            reason: format!("{context}: {reason}"),
            source,
        },
        StoreError::Backend(source) => StoreError::Unavailable {
            reason: format!("{context}: {source}"),
            source: Some(source),
        },
        other => other,
    }
}

/// What a SQLSTATE says about retrying.
#[derive(Debug, PartialEq, Eq)]
enum Class {
    /// The server is unreachable, overloaded, shutting down, or the transaction lost a race.
    Transient,
    /// Only an operator can fix it: login, database, schema, permission, settings.
    SetUp,
    /// Anything else.
    Other,
}

impl Class {
    fn of(code: &str) -> Self {
        match code {
            // Connection exceptions, insufficient resources, operator intervention (shutdown,
            // cannot connect now, query cancelled), serialization failures and deadlocks, a lock
            // not available.
            c if c.starts_with("08") || c.starts_with("53") || c.starts_with("57") || c.starts_with("40") => {
                Self::Transient
            }
            "55P03" => Self::Transient,
            // Authorization, an unknown database or schema, access rules (permissions, undefined
            // objects: a schema of another version), unsupported features, a server setting that
            // is not as needed (wal_level for logical decoding), configuration file errors.
            c if c.starts_with("28")
                || c.starts_with("3D")
                || c.starts_with("3F")
                || c.starts_with("42")
                || c.starts_with("0A")
                || c.starts_with("F0") =>
            {
                Self::SetUp
            }
            "55000" => Self::SetUp,
            _ => Self::Other,
        }
    }
}

/// A driver error as text with its cause: the driver prints "db error" or "error connecting to
/// server" and keeps what the server or the OS said (`FATAL: database "x" does not exist`,
/// `Connection refused`) as its source, which a message built with `format!` would drop.
pub(crate) fn with_cause(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::Class;

    #[test]
    fn sqlstates_say_whether_to_retry() {
        for transient in [
            "08006", "08001", "53300", "57P01", "57P03", "57014", "40001", "40P01", "55P03",
        ] {
            assert_eq!(Class::of(transient), Class::Transient, "{transient}");
        }
        for set_up in [
            "28P01", "28000", "3D000", "3F000", "42501", "42P01", "42883", "0A000", "55000",
        ] {
            assert_eq!(Class::of(set_up), Class::SetUp, "{set_up}");
        }
        for other in ["23505", "22P02", "XX000", "AN003"] {
            assert_eq!(Class::of(other), Class::Other, "{other}");
        }
    }
}

//! SQLite failures as [`StoreError`]s of the right [kind](annals::ErrorKind): a busy or locked
//! database, a full disk or an I/O error is `Unavailable` (retry later); a file that cannot be
//! opened or written, or is not a database, is `Misconfigured` (fix the path or permissions); a
//! damaged file is `Corrupt`. Everything else stays `Backend`.

use annals::StoreError;
use rusqlite::ErrorCode;

/// A driver failure as a store error of the right kind.
pub(crate) fn db(e: rusqlite::Error) -> StoreError {
    let Some(code) = e.sqlite_error_code() else {
        return StoreError::backend(e);
    };
    match code {
        ErrorCode::DatabaseBusy
        | ErrorCode::DatabaseLocked
        | ErrorCode::DiskFull
        | ErrorCode::SystemIoFailure
        | ErrorCode::OutOfMemory
        | ErrorCode::FileLockingProtocolFailed => {
            StoreError::unavailable(format!("SQLite cannot go on now: {e}"), Some(Box::new(e)))
        }
        ErrorCode::CannotOpen
        | ErrorCode::PermissionDenied
        | ErrorCode::ReadOnly
        | ErrorCode::NotADatabase
        | ErrorCode::AuthorizationForStatementDenied => {
            StoreError::misconfigured(format!("SQLite refused: {e}"), Some(Box::new(e)))
        }
        ErrorCode::DatabaseCorrupt => StoreError::Corrupt {
            stream: String::new(),
            version: 0,
            reason: format!("the database file is damaged: {e}"),
            position: None,
        },
        _ => StoreError::backend(e),
    }
}

/// `e` with the file it is about.
pub(crate) fn opening(e: StoreError, path: &std::path::Path) -> StoreError {
    let context = format!("cannot open {}", path.display());
    match e {
        StoreError::Unavailable { reason, source } => StoreError::Unavailable {
            reason: format!("{context}: {reason}"),
            source,
        },
        StoreError::Misconfigured { reason, source } => StoreError::Misconfigured {
            reason: format!("{context}: {reason}"),
            source,
        },
        other => other,
    }
}

/// An error of the same kind and text as `e` (one failure answered to several callers).
pub(crate) fn copy(e: &StoreError) -> StoreError {
    let reason = match e {
        StoreError::Unavailable { reason, .. } | StoreError::Misconfigured { reason, .. } => reason.clone(),
        other => other.to_string(),
    };
    match e.kind() {
        annals::ErrorKind::Misconfigured => StoreError::misconfigured(reason, None),
        annals::ErrorKind::Corrupt => StoreError::Corrupt {
            stream: String::new(),
            version: 0,
            reason,
            position: None,
        },
        _ => StoreError::unavailable(reason, None),
    }
}

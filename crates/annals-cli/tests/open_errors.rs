//! Opening a store that cannot be opened: the error says why, once.

use std::process::Command;

/// A store that cannot be opened is refused with what the server or the OS said, not only the
/// driver's "db error", said once, and an exit code by kind: a missing database is a
/// misconfiguration (7), a refused connection is transient (6).
#[test]
fn an_unreachable_database_is_refused_with_its_reason() {
    let url = annals_postgres::testing::url();
    let server = url.rsplit_once('/').map_or(url.as_str(), |(server, _)| server);
    let missing = Command::new(env!("CARGO_BIN_EXE_annals"))
        .args(["--db", &format!("{server}/annals_no_such_database"), "status"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(missing.status.code(), Some(7), "{err}");
    assert!(
        err.contains(r#"database "annals_no_such_database" does not exist"#),
        "{err}"
    );
    assert_eq!(
        err.matches("does not exist").count(),
        1,
        "the cause is said once: {err}"
    );
    assert!(!err.contains("db error: db error"), "{err}");

    // Port 9 (discard) on loopback: nothing listens there in the test machines.
    let refused = Command::new(env!("CARGO_BIN_EXE_annals"))
        .args(["--db", "postgres://postgres@127.0.0.1:9/test", "status"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(6), "{err}");
    assert!(err.contains("Connection refused"), "{err}");
}

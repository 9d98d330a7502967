//! The store a CLI test points `annals` at: a SQLite file in a temporary directory, or a fresh
//! schema of the PostgreSQL test database (dropped when the store goes), and its `--db` arguments.
// Each test file uses the part it needs.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use annals_postgres::testing::{SchemaGuard, unique_schema, url};

pub(crate) struct TestStore {
    url: String,
    schema: Option<String>,
    dir: tempfile::TempDir,
    _guard: Option<SchemaGuard>,
}

impl TestStore {
    /// A SQLite store: the file `file` in a temporary directory of its own.
    pub(crate) fn sqlite(file: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            url: dir.path().join(file).display().to_string(),
            schema: None,
            dir,
            _guard: None,
        }
    }

    /// A PostgreSQL store in a fresh schema named after `prefix`.
    pub(crate) fn postgres(prefix: &str) -> Self {
        let schema = unique_schema(prefix);
        Self {
            url: url(),
            schema: Some(schema.clone()),
            dir: tempfile::tempdir().unwrap(),
            _guard: Some(SchemaGuard { schema }),
        }
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The PostgreSQL schema; `None` for SQLite.
    pub(crate) fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// A scratch directory for the test's own files.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `--db URL`, and `--pg-schema SCHEMA` on PostgreSQL.
    pub(crate) fn args(&self) -> Vec<String> {
        let mut args = vec!["--db".to_owned(), self.url.clone()];
        if let Some(schema) = &self.schema {
            args.extend(["--pg-schema".to_owned(), schema.clone()]);
        }
        args
    }

    /// The `annals` binary, pointed at this store.
    pub(crate) fn annals(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_annals"));
        c.args(self.args());
        c
    }
}

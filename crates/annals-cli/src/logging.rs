//! Logs and signals for every command: a `tracing` subscriber on stderr (warnings by default, so
//! a retry or a parked message is never silent; `-v`/`-vv` for more, `-q` for errors only,
//! `RUST_LOG` to choose per module, `--log-format json` for machines), and one shutdown signal
//! (Ctrl-C or SIGTERM) for commands that run until stopped.

use tracing_subscriber::EnvFilter;

/// How logs are written.
#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per record.
    #[default]
    Text,
    /// One JSON object per record.
    Json,
}

/// Installs the subscriber: `RUST_LOG` if set, else warnings (`verbose` raises the level once or
/// twice, `quiet` lowers it to errors).
pub fn init(verbose: u8, quiet: bool, format: LogFormat) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec).unwrap_or_else(|e| {
            eprintln!("warning: RUST_LOG={spec:?} is not a filter ({e}); logging warnings");
            EnvFilter::new("warn")
        }),
        _ => EnvFilter::new(level),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM, whichever comes first: a long-running command stops
/// cleanly (leases released, cursors stored) either way. The handlers are installed when this is
/// called, not when the future is first polled, so a signal that comes early is not lost; call it
/// once per command (inside the runtime).
pub fn shutdown() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    };
    async move {
        #[cfg(unix)]
        match signals {
            (Ok(mut interrupt), Ok(mut term)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("stopping on a signal");
    }
}

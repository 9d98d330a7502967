//! Running a projection (or any [`Consumer`]) from the command line: catch up with a progress
//! bar, or follow the log until Ctrl-C or SIGTERM, and say what it did. An application's binary
//! builds its projections and hands them here (the FTGO example's `ftgo projection`).

use std::time::Instant;

use annals::EventStore;
use annals::consume::{Checkpoints, Consumer, Progress, Runner};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::backend::AnyStore;
use crate::output::out;

/// How far to run a projection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Replay the whole log (the caller has reset the read model), with a progress bar.
    Rebuild,
    /// Handle what is in the log now, then stop.
    CatchUp,
    /// Catch up, then follow new events until Ctrl-C or SIGTERM.
    Follow,
}

/// Runs `consumer` over `store` (events of `stream_types` only, all when empty) in batches of
/// `batch`, showing progress on stderr, and prints what it did (text or `--json`).
pub async fn drive<C: Consumer>(
    store: AnyStore,
    consumer: C,
    stream_types: &[&str],
    mode: Mode,
    batch: usize,
    json: bool,
) -> anyhow::Result<Progress> {
    let name = consumer.name().to_owned();
    let started = Instant::now();
    let start = store.load_checkpoint(&name).await?.unwrap_or(0);
    let head = store.head_position().await?;
    let bar = ProgressBar::new(head.saturating_sub(start));
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} events  {per_sec}  ETA {eta}  {msg}")?
            .progress_chars("=> "),
    );
    bar.set_prefix(name.clone());
    let tick = bar.clone();
    let mut runner = Runner::new(store, consumer)
        .with_batch(batch.max(1))
        .on_progress(move |position, head| {
            tick.set_length(head.saturating_sub(start));
            tick.set_position(position.saturating_sub(start));
        });
    if !stream_types.is_empty() {
        runner = runner.only_stream_types(stream_types.iter().copied());
    }
    let result = match mode {
        Mode::Rebuild | Mode::CatchUp => runner.run_until_caught_up().await,
        Mode::Follow => runner.run(crate::logging::shutdown()).await,
    };
    bar.finish_and_clear();
    let progress = result?;
    let secs = started.elapsed().as_secs_f64();
    let rate = progress.handled as f64 / secs.max(1e-9);
    if json {
        out!(
            "{}",
            json!({ "kind": "projection", "projection": name, "position": progress.position, "handled": progress.handled,
                    "parked": progress.parked, "seconds": secs, "events_per_second": rate })
        );
    } else {
        out!(
            "{name}: at position {}, {} events handled, {} parked, in {secs:.2} s ({rate:.0} events/s)",
            progress.position,
            progress.handled,
            progress.parked
        );
    }
    Ok(progress)
}

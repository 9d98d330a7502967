//! Nothing retries in silence: a long-running component that is failing (retrying, or stopped)
//! says so in the log on every try and in a row of the store's `health` table, which
//! `annals status` shows with the last error and since when. The row goes when the component
//! recovers.
//!
//! [`Trouble`] is the one place loops report through: it logs, keeps the row (best effort: the
//! store itself may be what is down) and waits the [`Backoff`].

use std::future::Future;
use std::time::{Duration, SystemTime};

use super::policy::Backoff;
use crate::error::{ErrorKind, StoreError};

/// Where a failing component stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HealthState {
    /// It fails and tries again (a transient failure).
    Retrying,
    /// It stopped on a failure no retry can fix.
    Stopped,
}

impl HealthState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retrying => "retrying",
            Self::Stopped => "stopped",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "retrying" => Some(Self::Retrying),
            "stopped" => Some(Self::Stopped),
            _ => None,
        }
    }
}

/// A failing component's row in the `health` table.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthReport {
    /// The component: a consumer's or relay's name (`relay.main`, `order-history`).
    pub component: String,
    /// Retrying or stopped.
    pub state: HealthState,
    /// The last error's kind, where known.
    pub kind: Option<ErrorKind>,
    /// What it was doing and the last error, in words.
    pub error: String,
    /// When its current run of failures began.
    pub since: SystemTime,
    /// Failed tries in this run.
    pub attempts: u64,
    /// When it last tried.
    pub updated_at: SystemTime,
}

/// The `health` table: one row per component that is failing now.
pub trait HealthReports: Send + Sync {
    /// Creates or replaces `report.component`'s row.
    fn set_health(&self, report: &HealthReport) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Removes `component`'s row (it works again).
    fn clear_health(&self, component: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every row, by component.
    fn list_health(&self) -> impl Future<Output = Result<Vec<HealthReport>, StoreError>> + Send;
}

impl<H: HealthReports + ?Sized> HealthReports for std::sync::Arc<H> {
    fn set_health(&self, report: &HealthReport) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).set_health(report)
    }
    fn clear_health(&self, component: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).clear_health(component)
    }
    fn list_health(&self) -> impl Future<Output = Result<Vec<HealthReport>, StoreError>> + Send {
        (**self).list_health()
    }
}

/// How long a health write may take before the loop goes on without it (the store may be what
/// is failing).
const REPORT_WITHIN: Duration = Duration::from_secs(2);

/// One component's run of failures: see the module docs.
#[derive(Debug)]
pub struct Trouble {
    component: String,
    backoff: Backoff,
    since: Option<SystemTime>,
    attempts: u64,
}

impl Trouble {
    /// No failures yet for `component`; waits between tries follow `backoff`.
    pub fn new(component: impl Into<String>, backoff: Backoff) -> Self {
        Self {
            component: component.into(),
            backoff,
            since: None,
            attempts: 0,
        }
    }

    /// Whether the component is in a run of failures.
    pub fn is_failing(&self) -> bool {
        self.since.is_some()
    }

    /// Failed tries in the current run.
    pub fn attempts(&self) -> u64 {
        self.attempts
    }

    /// A transient failure of `what`: a warning in the log, the health row kept, then the wait.
    pub async fn retry<H: HealthReports + ?Sized>(
        &mut self,
        health: &H,
        what: &str,
        error: &(dyn std::error::Error + Send + Sync + 'static),
    ) {
        let wait = self.backoff.next_wait();
        let report = self.record(HealthState::Retrying, what, error);
        tracing::warn!(
            component = %self.component,
            kind = report.kind.map_or("unknown", ErrorKind::as_str),
            attempt = self.attempts,
            failing_since = %crate::time::format_seconds(report.since),
            "{what} failed; retrying in {} ms: {}",
            wait.as_millis(),
            report.error
        );
        store_report(health, &report).await;
        tokio::time::sleep(wait).await;
    }

    /// A failure no retry fixes: an error in the log and a `stopped` row.
    pub async fn stopped<H: HealthReports + ?Sized>(
        &mut self,
        health: &H,
        what: &str,
        error: &(dyn std::error::Error + Send + Sync + 'static),
    ) {
        let report = self.record(HealthState::Stopped, what, error);
        tracing::error!(component = %self.component, kind = report.kind.map_or("unknown", ErrorKind::as_str),
            "{what} failed; stopping: {}", report.error);
        store_report(health, &report).await;
    }

    /// Works again after failures: the row goes, the backoff starts over. Cheap when it was not
    /// failing.
    pub async fn recovered<H: HealthReports + ?Sized>(&mut self, health: &H) {
        let Some(since) = self.since.take() else {
            return;
        };
        tracing::info!(component = %self.component, attempts = self.attempts,
            "recovered after {} failed tries since {}", self.attempts, crate::time::format_seconds(since));
        self.attempts = 0;
        self.backoff.reset();
        match tokio::time::timeout(REPORT_WITHIN, health.clear_health(&self.component)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(component = %self.component, error = %e, "cannot clear the health row"),
            Err(_) => tracing::debug!(component = %self.component, "clearing the health row timed out"),
        }
    }

    fn record(
        &mut self,
        state: HealthState,
        what: &str,
        error: &(dyn std::error::Error + Send + Sync + 'static),
    ) -> HealthReport {
        let now = SystemTime::now();
        let since = *self.since.get_or_insert(now);
        self.attempts += 1;
        HealthReport {
            component: self.component.clone(),
            state,
            kind: crate::error::kind_of(error),
            error: format!("{what}: {}", crate::error::report(error)),
            since,
            attempts: self.attempts,
            updated_at: now,
        }
    }
}

async fn store_report<H: HealthReports + ?Sized>(health: &H, report: &HealthReport) {
    match tokio::time::timeout(REPORT_WITHIN, health.set_health(report)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(component = %report.component, error = %e, "cannot store the health row"),
        Err(_) => tracing::debug!(component = %report.component, "storing the health row timed out"),
    }
}

//! The one delivery policy every long-running loop follows — subscriptions, projections, both
//! relays, broker consumers, saga runners — so a failure is handled the same way wherever it
//! happens, from its [`ErrorKind`] alone:
//!
//! - **transient** ([`ErrorKind::Unavailable`]: a database or broker down or overloaded): retried
//!   with [`Backoff`] (doubling, with jitter) for as long as it lasts, never parking a message
//!   because a service was away, and shown meanwhile ([`super::health`]: `annals status` and a
//!   warning in the log on each try);
//! - **permanent** ([`ErrorKind::Misconfigured`]): the loop stops and its error says what to fix;
//! - **the message's own** (corrupt data, a refusal, or a handler's error of no known kind):
//!   retried as the consumer's [`ErrorPolicy`] says, then parked or the consumer stopped.

use std::time::Duration;

use crate::error::ErrorKind;

/// What a consumer does when handling a message fails (see the module docs for failures that
/// are not the message's).
#[derive(Clone, Debug)]
pub struct ErrorPolicy {
    /// Tries in all, the first included (at least 1), for a failure that is the message's own.
    pub attempts: u32,
    /// Wait before the second try; doubled after each failure.
    pub backoff: Duration,
    /// The longest wait between tries.
    pub max_backoff: Duration,
    /// What to do when every try failed.
    pub exhausted: Exhausted,
}

/// What to do with a message every try failed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exhausted {
    /// Park it in the dead-letter table and go on with the next message.
    Park,
    /// Stop the consumer with an error (its checkpoint stays before the message).
    Stop,
}

impl Default for ErrorPolicy {
    /// 5 tries, 50 ms doubling up to 2 s, then park.
    fn default() -> Self {
        Self {
            attempts: 5,
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            exhausted: Exhausted::Park,
        }
    }
}

/// What a loop does next after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Wait (the backoff) and try again.
    Retry,
    /// Park the message and go on.
    Park,
    /// Stop, with the error.
    Stop,
}

impl ErrorPolicy {
    /// Retry `attempts - 1` times, then stop.
    pub fn stop_after(attempts: u32) -> Self {
        Self {
            attempts,
            exhausted: Exhausted::Stop,
            ..Self::default()
        }
    }

    /// Retry `attempts - 1` times, then park.
    pub fn park_after(attempts: u32) -> Self {
        Self {
            attempts,
            exhausted: Exhausted::Park,
            ..Self::default()
        }
    }

    /// Sets the first backoff.
    pub fn with_backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// What to do after the handler failed on a message `attempts` times, the last time with an
    /// error of `kind` (`None`: the handler's own error, of no kind annals knows).
    pub fn on_message_failure(&self, kind: Option<ErrorKind>, attempts: u32) -> Verdict {
        match kind {
            Some(ErrorKind::Unavailable) => Verdict::Retry,
            Some(ErrorKind::Misconfigured) => Verdict::Stop,
            _ if attempts < self.attempts.max(1) => Verdict::Retry,
            _ => match self.exhausted {
                Exhausted::Park => Verdict::Park,
                Exhausted::Stop => Verdict::Stop,
            },
        }
    }

    /// A fresh backoff of this policy's steps.
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.backoff, self.max_backoff)
    }
}

/// What to do after a failure that is not one message's (reading the log, storing a checkpoint,
/// reaching the broker): retry what is transient, stop on the rest.
pub fn on_failure(kind: ErrorKind) -> Verdict {
    if kind.is_transient() {
        Verdict::Retry
    } else {
        Verdict::Stop
    }
}

/// Waits between tries: each wait is drawn between half and all of a step that doubles from
/// `first` up to `max` ("equal jitter"), so processes that failed together do not retry in step.
#[derive(Clone, Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    step: Duration,
    seed: u64,
}

impl Backoff {
    /// Steps from `first` (at least 1 ms) doubling up to `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        let first = first.max(Duration::from_millis(1));
        Self {
            first,
            max: max.max(first),
            step: first,
            seed: seed(),
        }
    }

    /// The wait before the next try; the step then doubles (up to the max).
    pub fn next_wait(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let half = step / 2;
        let span = u64::try_from((step - half).as_micros()).unwrap_or(u64::MAX).max(1);
        half + Duration::from_micros(self.random() % span)
    }

    /// Sleeps the next wait; returns how long it was.
    pub async fn wait(&mut self) -> Duration {
        let wait = self.next_wait();
        tokio::time::sleep(wait).await;
        wait
    }

    /// Back to the first step (after a success).
    pub fn reset(&mut self) {
        self.step = self.first;
    }

    /// splitmix64: jitter needs spread, not secrecy.
    fn random(&mut self) -> u64 {
        self.seed = self.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A seed that differs between processes and between backoffs of one process.
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(uuid::Uuid::now_v7().as_u128());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_with_jitter_up_to_the_max() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let steps = [100, 200, 400, 800, 800, 800];
        for step in steps {
            let w = b.next_wait();
            let step = Duration::from_millis(step);
            assert!(w >= step / 2 && w <= step, "{w:?} outside [{:?}, {step:?}]", step / 2);
        }
        b.reset();
        assert!(b.next_wait() <= Duration::from_millis(100));
        let mut other = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
        let waits: std::collections::HashSet<Duration> = (0..20).map(|_| other.next_wait()).collect();
        assert!(waits.len() > 1, "jittered");
    }

    #[test]
    fn the_kind_decides() {
        let policy = ErrorPolicy::park_after(3);
        assert_eq!(
            policy.on_message_failure(Some(ErrorKind::Unavailable), 99),
            Verdict::Retry
        );
        assert_eq!(
            policy.on_message_failure(Some(ErrorKind::Misconfigured), 1),
            Verdict::Stop
        );
        assert_eq!(policy.on_message_failure(None, 2), Verdict::Retry);
        assert_eq!(policy.on_message_failure(None, 3), Verdict::Park);
        assert_eq!(policy.on_message_failure(Some(ErrorKind::Corrupt), 3), Verdict::Park);
        assert_eq!(
            ErrorPolicy::stop_after(1).on_message_failure(Some(ErrorKind::InvalidInput), 1),
            Verdict::Stop
        );
        assert_eq!(on_failure(ErrorKind::Unavailable), Verdict::Retry);
        assert_eq!(on_failure(ErrorKind::Corrupt), Verdict::Stop);
    }
}

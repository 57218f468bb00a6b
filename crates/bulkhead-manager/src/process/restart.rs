//! The restart policy of a supervised process ([`crate::process`]): how long to wait before
//! the next start after failures in a row. Pure bookkeeping on `Instant`s; never sleeps.

use std::time::{Duration, Instant};

/// Pause before retrying after `failures` failed starts in a row: 0.5 s, 1 s, 2 s … up to 30 s.
pub fn backoff(failures: u32) -> Duration {
    let ms = 500u64.saturating_mul(1u64 << failures.saturating_sub(1).min(10));
    Duration::from_millis(ms.min(30_000))
}

/// Failures in a row and the time before which no new start is tried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restarts {
    failures: u32,
    retry_at: Option<Instant>,
}

impl Restarts {
    /// One more failure: returns the pause before the next try (also recorded).
    pub fn failed(&mut self, now: Instant) -> Duration {
        self.count_failure();
        self.schedule(now)
    }

    /// Schedules the next try after the pause the failures so far call for; returns it.
    pub fn schedule(&mut self, now: Instant) -> Duration {
        let delay = backoff(self.failures);
        self.retry_at = Some(now + delay);
        delay
    }

    /// A running process died after living `lived`: one that died within `quick` of its start
    /// counts as a failure (back-off before the restart), one that ran longer restarts at once
    /// with its failures forgotten. Returns the pause before the restart.
    pub fn died(&mut self, now: Instant, lived: Duration, quick: Duration) -> Duration {
        if lived < quick {
            self.failed(now)
        } else {
            self.succeeded();
            Duration::ZERO
        }
    }

    /// Counts a failure without scheduling a retry (the next start is on demand).
    pub fn count_failure(&mut self) {
        self.failures = self.failures.saturating_add(1);
    }

    /// It started (or ran long enough): failures forgotten, starts allowed at once.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.retry_at = None;
    }

    /// A start is wanted now regardless of the pause (an operator, a demand start).
    pub fn allow_now(&mut self) {
        self.retry_at = None;
    }

    /// Whether a start may be tried at `now`.
    pub fn may_start(&self, now: Instant) -> bool {
        self.retry_at.is_none_or(|t| now >= t)
    }

    /// A retry is scheduled and due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.retry_at.is_some_and(|t| now >= t)
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(40), Duration::from_secs(30));
    }

    #[test]
    fn failures_pause_starts_until_a_success() {
        let now = Instant::now();
        let mut r = Restarts::default();
        assert!(r.may_start(now) && !r.due(now));
        assert_eq!(r.failed(now), Duration::from_millis(500));
        assert_eq!(r.failed(now), Duration::from_secs(1));
        assert!(!r.may_start(now) && r.may_start(now + Duration::from_secs(1)));
        assert!(r.due(now + Duration::from_secs(1)));
        r.succeeded();
        assert!(r.may_start(now));
        assert_eq!(r.failed(now), Duration::from_millis(500), "the count restarted");
    }

    #[test]
    fn a_quick_death_backs_off_and_a_long_life_restarts_at_once() {
        let now = Instant::now();
        let quick = Duration::from_secs(10);
        let mut r = Restarts::default();
        assert_eq!(r.died(now, Duration::from_secs(1), quick), Duration::from_millis(500));
        assert_eq!(r.died(now, Duration::from_secs(1), quick), Duration::from_secs(1));
        assert_eq!(r.died(now, Duration::from_secs(60), quick), Duration::ZERO);
        assert!(r.may_start(now) && r.failures() == 0);
    }
}

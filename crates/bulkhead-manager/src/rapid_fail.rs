//! Rapid-fail protection (IIS's "Rapid-Fail Protection", DESIGN §3): `max_crashes` failures
//! within `interval` take a pool offline until an operator starts it again.
//!
//! The supervisor feeds it every unexpected worker exit and every failed start; it answers how
//! many failures are in the window and whether the pool must be disabled. Pure bookkeeping on
//! `Instant`s passed in, so it is tested without clocks or processes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bulkhead_config::units::format_duration;

/// The failure window of one pool.
#[derive(Debug, Clone)]
pub struct RapidFail {
    enabled: bool,
    max: u32,
    interval: Duration,
    failures: VecDeque<Instant>,
}

/// The outcome of recording one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Failures within the window, this one included.
    pub count: u32,
    /// The pool must be disabled.
    pub tripped: bool,
}

impl RapidFail {
    pub fn new(config: &bulkhead_config::RapidFail) -> Self {
        RapidFail {
            enabled: config.enabled,
            max: config.max_crashes,
            interval: config.interval,
            failures: VecDeque::new(),
        }
    }

    /// Records a failure at `now`.
    pub fn record(&mut self, now: Instant) -> Verdict {
        while let Some(first) = self.failures.front() {
            if now.duration_since(*first) >= self.interval {
                self.failures.pop_front();
            } else {
                break;
            }
        }
        self.failures.push_back(now);
        let count = self.failures.len() as u32;
        Verdict { count, tripped: self.enabled && self.max > 0 && count >= self.max }
    }

    /// Forgets every failure (an operator started the pool again).
    pub fn reset(&mut self) {
        self.failures.clear();
    }

    /// `"crash 2 of 5 within 5m"` (or without the limit when protection is off).
    pub fn describe(&self, verdict: Verdict, word: &str) -> String {
        if self.enabled && self.max > 0 {
            format!("{word} {} of {} within {}", verdict.count, self.max, format_duration(self.interval))
        } else {
            format!("{word} {} within {}; rapid-fail protection is off", verdict.count, format_duration(self.interval))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max: u32, secs: u64) -> bulkhead_config::RapidFail {
        bulkhead_config::RapidFail { enabled: true, max_crashes: max, interval: Duration::from_secs(secs) }
    }

    #[test]
    fn trips_on_the_max_th_failure_within_the_interval() {
        let mut rf = RapidFail::new(&cfg(3, 60));
        let t = Instant::now();
        assert_eq!(rf.record(t), Verdict { count: 1, tripped: false });
        assert_eq!(rf.record(t + Duration::from_secs(10)), Verdict { count: 2, tripped: false });
        assert_eq!(rf.record(t + Duration::from_secs(20)), Verdict { count: 3, tripped: true });
        assert_eq!(rf.describe(Verdict { count: 2, tripped: false }, "crash"), "crash 2 of 3 within 1m");
    }

    #[test]
    fn old_failures_leave_the_window() {
        let mut rf = RapidFail::new(&cfg(3, 60));
        let t = Instant::now();
        rf.record(t);
        rf.record(t + Duration::from_secs(30));
        assert_eq!(rf.record(t + Duration::from_secs(61)), Verdict { count: 2, tripped: false });
        rf.reset();
        assert_eq!(rf.record(t + Duration::from_secs(62)).count, 1);
    }

    #[test]
    fn disabled_never_trips() {
        let mut rf = RapidFail::new(&bulkhead_config::RapidFail { enabled: false, ..cfg(1, 60) });
        assert!(!rf.record(Instant::now()).tripped);
    }
}

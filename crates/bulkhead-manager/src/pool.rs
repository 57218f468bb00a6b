//! One application pool as the manager runs it: its configuration, its workers and where it is
//! in the lifecycle of DESIGN §3 (`Idle → Starting → Running → Stopping → Stopped | Disabled`).
//!
//! Owned by the supervisor, which makes every decision; this module keeps the bookkeeping and
//! derives the operator-visible [`PoolState`] from the pool's [`Mode`] (what it should be
//! doing) and its workers (what is actually running), so the two can never disagree.
//!
//! A worker being recycled ([`Worker::retiring`]) or left as an orphan does not count towards
//! `processes`, so the pool starts its replacement; with `recycle.overlapped = false` no
//! replacement starts until the recycled worker has exited.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use bulkhead_proto::WorkerId;

use crate::rapid_fail::RapidFail;
use crate::recycle::Schedule;
use crate::worker::{Worker, WorkerState};

/// What the pool should be doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No worker wanted; the next request demand-starts the pool.
    Idle,
    /// `processes` workers wanted.
    Active,
    /// Stopped by an operator: requests get 503 `Disabled`.
    Stopped,
    /// Taken offline by rapid-fail protection: requests get 503 `AppOffline`.
    Disabled,
}

/// The lifecycle state an operator sees (DESIGN §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolState {
    Idle,
    Starting,
    Running,
    Stopping,
    Stopped,
    Disabled,
}

impl fmt::Display for PoolState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PoolState::Idle => "Idle",
            PoolState::Starting => "Starting",
            PoolState::Running => "Running",
            PoolState::Stopping => "Stopping",
            PoolState::Stopped => "Stopped",
            PoolState::Disabled => "Disabled",
        })
    }
}

/// The state shown for a pool in `mode` with workers in the given situation.
pub fn derive_state(mode: Mode, any_ready: bool, any_starting: bool, any_stopping: bool) -> PoolState {
    match mode {
        Mode::Disabled => PoolState::Disabled,
        Mode::Stopped | Mode::Idle if any_ready || any_starting || any_stopping => PoolState::Stopping,
        Mode::Stopped => PoolState::Stopped,
        Mode::Idle => PoolState::Idle,
        Mode::Active if any_ready => PoolState::Running,
        Mode::Active => PoolState::Starting,
    }
}

/// A pool and its workers.
#[derive(Debug)]
pub struct Pool {
    pub config: bulkhead_config::Pool,
    pub mode: Mode,
    pub workers: BTreeMap<WorkerId, Worker>,
    pub rapid_fail: RapidFail,
    /// Last time a request was seen (or the pool started): drives the idle timeout.
    pub last_activity: Instant,
    /// Requests dispatched, as reported by the listener.
    pub requests: u64,
    /// Failed starts since the last worker became ready (drives the retry back-off).
    pub start_failures: u32,
    /// No new worker before this instant (back-off after failed starts).
    pub retry_at: Option<Instant>,
    /// The state last logged, to log each transition once.
    pub shown_state: PoolState,
    /// `recycle.schedule` bookkeeping.
    pub schedule: Schedule,
    /// The pool's cgroup directory, once prepared (`None` without cgroups).
    pub cgroup: Option<std::path::PathBuf>,
    /// The cgroup was prepared (or failed and was reported) once.
    pub cgroup_done: bool,
}

impl Pool {
    pub fn new(config: bulkhead_config::Pool, now: Instant) -> Self {
        Pool {
            rapid_fail: RapidFail::new(&config.rapid_fail),
            config,
            mode: Mode::Idle,
            workers: BTreeMap::new(),
            last_activity: now,
            requests: 0,
            start_failures: 0,
            retry_at: None,
            shown_state: PoolState::Idle,
            schedule: Schedule::default(),
            cgroup: None,
            cgroup_done: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn state(&self) -> PoolState {
        let has = |f: fn(&WorkerState) -> bool| self.workers.values().any(|w| f(&w.state));
        derive_state(
            self.mode,
            has(|s| matches!(s, WorkerState::Ready)),
            has(|s| matches!(s, WorkerState::Starting { .. })),
            has(|s| matches!(s, WorkerState::Stopping { .. })),
        )
    }

    /// Workers that are starting or ready (not on their way out, not being replaced).
    pub fn live_workers(&self) -> usize {
        self.workers.values().filter(|w| w.is_live()).count()
    }

    /// A recycle is under way: a worker waits for its replacement, or a replacement starts.
    /// A web garden recycles one worker at a time.
    pub fn recycling(&self) -> bool {
        self.workers.values().any(|w| w.retiring.is_some() || matches!(w.state, WorkerState::Starting { .. }))
            || self.waiting_for_recycled_exit()
    }

    /// `overlapped = false` and a recycled worker has not exited yet.
    fn waiting_for_recycled_exit(&self) -> bool {
        !self.config.recycle.overlapped && self.workers.values().any(|w| w.recycled && w.is_stopping())
    }

    /// The web-garden slot a new worker fills (0-based): how many live workers there are.
    pub fn next_slot(&self) -> u32 {
        self.live_workers() as u32
    }

    pub fn has_ready_worker(&self) -> bool {
        self.workers.values().any(|w| w.state == WorkerState::Ready)
    }

    /// How many more workers the pool wants now.
    pub fn missing_workers(&self, now: Instant) -> usize {
        if self.mode != Mode::Active || self.retry_at.is_some_and(|t| now < t) || self.waiting_for_recycled_exit() {
            return 0;
        }
        (self.config.processes as usize).saturating_sub(self.live_workers())
    }
}

/// Pause before retrying after `failures` failed starts in a row: 0.5 s, 1 s, 2 s … up to 30 s.
pub fn start_backoff(failures: u32) -> Duration {
    let ms = 500u64.saturating_mul(1u64 << failures.saturating_sub(1).min(10));
    Duration::from_millis(ms.min(30_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_follow_mode_and_workers() {
        assert_eq!(derive_state(Mode::Idle, false, false, false), PoolState::Idle);
        assert_eq!(derive_state(Mode::Active, false, true, false), PoolState::Starting);
        assert_eq!(derive_state(Mode::Active, false, false, false), PoolState::Starting);
        assert_eq!(derive_state(Mode::Active, true, true, true), PoolState::Running);
        assert_eq!(derive_state(Mode::Idle, false, false, true), PoolState::Stopping);
        assert_eq!(derive_state(Mode::Stopped, true, false, false), PoolState::Stopping);
        assert_eq!(derive_state(Mode::Stopped, false, false, false), PoolState::Stopped);
        assert_eq!(derive_state(Mode::Disabled, true, false, true), PoolState::Disabled);
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        assert_eq!(start_backoff(1), Duration::from_millis(500));
        assert_eq!(start_backoff(2), Duration::from_secs(1));
        assert_eq!(start_backoff(3), Duration::from_secs(2));
        assert_eq!(start_backoff(40), Duration::from_secs(30));
    }

    #[test]
    fn missing_workers_respects_mode_and_backoff() {
        let cfg =
            bulkhead_config::parse("[pools.p]\ncommand = [\"x\"]\nprocesses = 3\n", "t", std::path::Path::new("/"))
                .unwrap()
                .pools
                .remove("p")
                .unwrap();
        let now = Instant::now();
        let mut p = Pool::new(cfg, now);
        assert_eq!(p.missing_workers(now), 0);
        p.mode = Mode::Active;
        assert_eq!(p.missing_workers(now), 3);
        p.retry_at = Some(now + Duration::from_secs(1));
        assert_eq!(p.missing_workers(now), 0);
        assert_eq!(p.missing_workers(now + Duration::from_secs(2)), 3);
    }
}

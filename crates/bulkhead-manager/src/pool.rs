//! One application pool as the manager runs it: its configuration, its workers and where it is
//! in the lifecycle of DESIGN §3 (`Idle → Starting → Running → Stopping → Stopped | Disabled`).
//!
//! Owned by the supervisor, which makes every decision. The pool's [`Mode`] (what it should be
//! doing: `Idle`, `Active`, or `Disabled` with its [`Disabled`] cause) changes only in
//! [`Pool::enter`], which also returns the one message that transition owes the listener (the
//! refusal with the cause's 503 reason, or `PoolAvailable`); the supervisor's `set_mode` sends
//! it. The operator-visible [`PoolState`] is derived from the mode and the workers (what is
//! actually running), so the two can never disagree. A worker's own end is
//! [`crate::worker::Ending`], recorded when the manager decides it. Nothing here does I/O.
//!
//! A worker being recycled ([`Worker::retiring`]) or left as an orphan does not count towards
//! `processes`, so the pool starts its replacement; with `recycle.overlapped = false` no
//! replacement starts until the recycled worker has exited.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

use bulkhead_proto::{ManagerToListener, PoolRefusal, WorkerId};

use crate::process::Restarts;
use crate::rapid_fail::RapidFail;
use crate::recycle::Schedule;
use crate::worker::{Worker, WorkerState};

/// What the pool should be doing. Changed only by [`Pool::enter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// No worker wanted; the next request demand-starts the pool.
    Idle,
    /// `processes` workers wanted.
    Active,
    /// No worker wanted and requests refused with 503, for the reason it carries.
    Disabled(Disabled),
}

/// Why a pool is [`Mode::Disabled`]: decides the 503's HTTPERR reason, the status shown and
/// what an operator must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disabled {
    /// Stopped by an operator (`bulkhead pool stop`): 503 `Disabled` until started again.
    Operator,
    /// Rapid-fail protection tripped: 503 `AppOffline` until an operator starts it again.
    RapidFail,
    /// The configuration gives this pool something it cannot run with (for example, started
    /// as root with no `user`): 503 `Disabled` until the config is fixed.
    Refused(String),
    /// Removed from the configuration; its workers drain, then it is forgotten.
    Removed,
}

impl Disabled {
    /// The 503 reason the listener gives (its HTTPERR word).
    pub fn refusal(&self) -> PoolRefusal {
        match self {
            Disabled::RapidFail => PoolRefusal::AppOffline,
            Disabled::Operator | Disabled::Refused(_) => PoolRefusal::Disabled,
            Disabled::Removed => PoolRefusal::AppShutdown,
        }
    }

    /// One word for status displays and metrics: `operator`, `rapid-fail`, `config`, `removed`.
    pub fn label(&self) -> &'static str {
        match self {
            Disabled::Operator => "operator",
            Disabled::RapidFail => "rapid-fail",
            Disabled::Refused(_) => "config",
            Disabled::Removed => "removed",
        }
    }
}

impl fmt::Display for Disabled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disabled::Operator => f.write_str("the pool was stopped by an operator"),
            Disabled::RapidFail => f.write_str("rapid-fail protection disabled the pool"),
            Disabled::Refused(why) => write!(f, "the configuration cannot be run: {why}"),
            Disabled::Removed => f.write_str("the pool was removed from the configuration"),
        }
    }
}

impl Mode {
    /// The refusal a pool in this mode stands by (sent again to a restarted listener and on
    /// each demand start), if any.
    pub fn refusal(&self, pool: &str) -> Option<ManagerToListener> {
        match self {
            Mode::Disabled(cause) => Some(ManagerToListener::PoolRefused {
                pool: pool.to_string(),
                refusal: cause.refusal(),
                detail: cause.to_string(),
            }),
            Mode::Idle | Mode::Active => None,
        }
    }
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
pub fn derive_state(mode: &Mode, any_ready: bool, any_starting: bool, any_stopping: bool) -> PoolState {
    let busy = any_ready || any_starting || any_stopping;
    match mode {
        Mode::Disabled(Disabled::RapidFail | Disabled::Refused(_)) => PoolState::Disabled,
        Mode::Disabled(Disabled::Operator | Disabled::Removed) | Mode::Idle if busy => PoolState::Stopping,
        Mode::Disabled(Disabled::Operator | Disabled::Removed) => PoolState::Stopped,
        Mode::Idle => PoolState::Idle,
        Mode::Active if any_ready => PoolState::Running,
        Mode::Active => PoolState::Starting,
    }
}

/// A pool and its workers.
#[derive(Debug)]
pub struct Pool {
    pub config: bulkhead_config::Pool,
    /// Changed only by [`Pool::enter`].
    mode: Mode,
    pub workers: BTreeMap<WorkerId, Worker>,
    pub rapid_fail: RapidFail,
    /// Last time a request was seen (or the pool started): drives the idle timeout.
    pub last_activity: Instant,
    /// Requests dispatched, as reported by the listener.
    pub requests: u64,
    /// Failed starts since the last worker became ready, and the back-off they call for
    /// ([`crate::process`]'s restart policy).
    pub restarts: Restarts,
    /// The state last logged, to log each transition once.
    pub shown_state: PoolState,
    /// `recycle.schedule` bookkeeping.
    pub schedule: Schedule,
    /// The pool's cgroup directory, once prepared (`None` without cgroups).
    pub cgroup: Option<std::path::PathBuf>,
    /// The cgroup was prepared (or failed and was reported) once.
    pub cgroup_done: bool,
    /// A `fastcgi` pool's one listening socket, shared by all its processes (made at the first
    /// launch, unlinked when the pool goes).
    pub fastcgi_socket: Option<crate::worker::SharedSocket>,
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
            restarts: Restarts::default(),
            shown_state: PoolState::Idle,
            schedule: Schedule::default(),
            cgroup: None,
            cgroup_done: false,
            fastcgi_socket: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// The one place a pool changes mode. Returns the message the listener must get for this
    /// transition: the refusal when the pool becomes disabled (or its cause changes),
    /// `PoolAvailable` when a disabled pool may take requests again, nothing otherwise.
    /// Becoming active restarts the idle clock and drops any start back-off.
    #[must_use = "the listener must be told"]
    pub fn enter(&mut self, to: Mode, now: Instant) -> Option<ManagerToListener> {
        if to == self.mode {
            return None;
        }
        let from = std::mem::replace(&mut self.mode, to);
        if self.mode == Mode::Active {
            self.last_activity = now;
            self.restarts.allow_now();
        }
        match (&from, &self.mode) {
            (_, Mode::Disabled(_)) => self.mode.refusal(&self.config.name),
            (Mode::Disabled(_), _) => Some(ManagerToListener::PoolAvailable { pool: self.config.name.clone() }),
            _ => None,
        }
    }

    pub fn state(&self) -> PoolState {
        let has = |f: fn(&WorkerState) -> bool| self.workers.values().any(|w| f(&w.state));
        derive_state(
            &self.mode,
            has(|s| matches!(s, WorkerState::Ready)),
            has(|s| matches!(s, WorkerState::Starting { .. })),
            has(|s| matches!(s, WorkerState::Stopping)),
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
        !self.config.recycle.overlapped && self.workers.values().any(|w| w.is_stopping() && w.is_recycled())
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
        // An external FastCGI server (`connect`): the listener routes to it; nothing to run.
        if self.config.connect.is_some() {
            return 0;
        }
        if self.mode != Mode::Active || !self.restarts.may_start(now) || self.waiting_for_recycled_exit() {
            return 0;
        }
        (self.config.processes as usize).saturating_sub(self.live_workers())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn states_follow_mode_and_workers() {
        let stopped = Mode::Disabled(Disabled::Operator);
        assert_eq!(derive_state(&Mode::Idle, false, false, false), PoolState::Idle);
        assert_eq!(derive_state(&Mode::Active, false, true, false), PoolState::Starting);
        assert_eq!(derive_state(&Mode::Active, false, false, false), PoolState::Starting);
        assert_eq!(derive_state(&Mode::Active, true, true, true), PoolState::Running);
        assert_eq!(derive_state(&Mode::Idle, false, false, true), PoolState::Stopping);
        assert_eq!(derive_state(&stopped, true, false, false), PoolState::Stopping);
        assert_eq!(derive_state(&stopped, false, false, false), PoolState::Stopped);
        assert_eq!(derive_state(&Mode::Disabled(Disabled::RapidFail), true, false, true), PoolState::Disabled);
        assert_eq!(
            derive_state(&Mode::Disabled(Disabled::Refused("x".into())), false, false, false),
            PoolState::Disabled
        );
    }

    fn test_pool() -> Pool {
        let text = "[pools.p]\ncommand = [\"x\"]\n";
        let cfg = bulkhead_config::parse(text, "t", std::path::Path::new("/")).unwrap().pools.remove("p").unwrap();
        Pool::new(cfg, Instant::now())
    }

    fn refusal_of(message: Option<ManagerToListener>) -> (PoolRefusal, String) {
        match message {
            Some(ManagerToListener::PoolRefused { refusal, detail, .. }) => (refusal, detail),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// Each cause of `Disabled` gives its own 503 reason and words: a pool the config cannot
    /// run (root without `user`) is not reported as rapid-fail's `AppOffline`.
    #[test]
    fn each_disabled_cause_tells_the_listener_its_own_reason() {
        let now = Instant::now();
        let mut p = test_pool();
        let (refusal, detail) = refusal_of(p.enter(Mode::Disabled(Disabled::RapidFail), now));
        assert_eq!((refusal, detail.as_str()), (PoolRefusal::AppOffline, "rapid-fail protection disabled the pool"));
        let why = "refusing to run its workers as root".to_string();
        let (refusal, detail) = refusal_of(p.enter(Mode::Disabled(Disabled::Refused(why)), now));
        assert_eq!(refusal, PoolRefusal::Disabled);
        assert!(detail.contains("as root") && !detail.contains("rapid-fail"), "{detail}");
        let (refusal, _) = refusal_of(p.enter(Mode::Disabled(Disabled::Operator), now));
        assert_eq!(refusal, PoolRefusal::Disabled);
        assert_eq!(p.enter(Mode::Disabled(Disabled::Operator), now), None, "no message without a transition");
        assert_eq!(p.enter(Mode::Idle, now), Some(ManagerToListener::PoolAvailable { pool: "p".into() }));
        assert_eq!(p.enter(Mode::Active, now), None);
        assert_eq!(p.enter(Mode::Idle, now), None);
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
        assert_eq!(p.enter(Mode::Active, now), None);
        assert_eq!(p.missing_workers(now), 3);
        p.restarts.failed(now);
        assert_eq!(p.missing_workers(now), 0);
        assert_eq!(p.missing_workers(now + Duration::from_secs(2)), 3);
    }
}

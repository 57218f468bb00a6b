//! The supervisor's orderly shutdown (SIGTERM/SIGINT in the binary resolve the `shutdown`
//! future): drain the listener, then stop every worker, then close the listener's channel,
//! then clean up the state directory.
//!
//! Each phase is bounded: the listener gets `grace` (the longest `shutdown_time_limit` of the
//! pools, at least [`MIN_GRACE`]) plus a margin, workers get their pool's limit before SIGKILL,
//! and whatever is still alive at the end is killed and reaped. Runs inside the supervisor task,
//! on its events and tick, like everything else.

use std::time::{Duration, Instant};

use bulkhead_config::units::format_duration;
use bulkhead_proto::ManagerToListener;
use nix::sys::signal::Signal;

use super::{Phase, Supervisor};
use crate::pool::Mode;
use crate::process::Stop;
use crate::spawn;
use crate::worker::StopCause;

/// The listener's drain grace is never shorter than this.
pub const MIN_GRACE: Duration = Duration::from_secs(3);
/// Extra time after a limit before the manager stops waiting.
const MARGIN: Duration = Duration::from_secs(2);

impl Supervisor {
    fn grace(&self) -> Duration {
        self.pools.values().map(|p| p.config.shutdown_time_limit).max().unwrap_or(MIN_GRACE).max(MIN_GRACE)
    }

    pub(super) fn begin_shutdown(&mut self) {
        let grace = self.grace();
        match &self.listener {
            Some(l) if self.listener_ever_ready => {
                self.events.info(
                    None,
                    format!(
                        "shutting down: the listener stops accepting and drains (up to {})",
                        format_duration(grace)
                    ),
                );
                l.send(ManagerToListener::Shutdown { grace_ms: grace.as_millis() as u64 });
                self.phase = Phase::DrainingListener { deadline: Instant::now() + grace + MARGIN };
            }
            _ => {
                self.events.info(None, "shutting down".into());
                self.stop_everything();
            }
        }
    }

    /// Stops every worker of every pool; no restarts from here on.
    pub(super) fn stop_everything(&mut self) {
        let now = Instant::now();
        let longest = self.pools.values().map(|p| p.config.shutdown_time_limit).max().unwrap_or_default();
        self.phase = Phase::StoppingWorkers { deadline: now + longest + MARGIN };
        let names: Vec<String> = self.pools.keys().cloned().collect();
        for name in names {
            if self.pools.get(&name).is_some_and(|p| p.mode() == &Mode::Active) {
                self.set_mode(&name, Mode::Idle);
            }
            self.stop_pool_workers(&name, StopCause::Shutdown);
        }
        self.stop_services(now);
        self.check_shutdown_progress();
    }

    /// Moves to the next phase when the current one is complete.
    pub(super) fn check_shutdown_progress(&mut self) {
        if let Phase::StoppingWorkers { .. } = self.phase {
            if self.pools.values().all(|p| p.workers.is_empty()) && self.services_stopped() {
                self.close_listener();
            }
        }
        if let Phase::StoppingListener = self.phase {
            if self.listener.is_none() {
                self.phase = Phase::Done;
            }
        }
    }

    fn close_listener(&mut self) {
        self.phase = Phase::StoppingListener;
        if let Some(l) = self.listener.as_mut() {
            l.close();
            l.process.begin_stop(Stop::kill_after(Instant::now(), MARGIN));
        }
    }

    pub(super) fn tick_shutdown(&mut self, now: Instant) {
        match self.phase {
            Phase::DrainingListener { deadline } if now >= deadline => {
                self.events.warn(None, "the listener did not finish draining in time; stopping the workers".into());
                self.stop_everything();
            }
            Phase::StoppingWorkers { deadline } if now >= deadline => {
                self.events.warn(None, "some workers did not stop in time; killing them".into());
                for p in self.pools.values() {
                    for w in p.workers.values() {
                        spawn::signal_group(w.process.pid, Signal::SIGKILL);
                    }
                }
                self.close_listener();
            }
            Phase::StoppingListener => match self.listener.as_mut() {
                Some(l) if l.process.stop.is_some_and(|s| now >= s.kill_at) => {
                    self.events.warn(None, format!("the listener (pid {}) did not exit; killing it", l.process.pid));
                    l.process.tick_stop(now, false);
                    self.phase = Phase::Done;
                }
                Some(_) => {}
                None => self.phase = Phase::Done,
            },
            _ => {}
        }
    }

    /// Kills and reaps whatever is still alive, removes socket files and the state files.
    pub(super) fn finish(&mut self) {
        self.stop_acme();
        for (pid, _) in self.children.drain() {
            spawn::signal_group(pid, Signal::SIGKILL);
            spawn::reap(pid);
        }
        for p in self.pools.values_mut() {
            for w in p.workers.values_mut() {
                w.release();
            }
            p.workers.clear();
        }
        if let Some(mut l) = self.listener.take() {
            l.release();
        }
        if let Some(c) = &self.upkeep.cgroups {
            c.remove_all();
        }
        self.state_dir.cleanup();
    }
}

//! The supervisor's health pings (DESIGN §3, issue #4 item 1): starting a ping per ready worker
//! every `health.ping_interval`, taking answers (`Pong`, or a probe's `HealthAnswered`), and
//! dealing with a worker that stays silent for `health.ping_timeout`.
//!
//! A hung worker is taken out of routing at once with `WorkerGone` (not `WorkerDraining`: it
//! would never finish its requests, so the listener fails them over by its retry rules), counts
//! as a failure for rapid-fail protection, and is replaced. It is then killed — or, with
//! `orphan.enabled`, left alive and unrouted while `orphan.action` runs ([`crate::orphan`]).
//! How a worker is pinged is [`crate::health`]'s business.

use std::time::Instant;

use bulkhead_config::units::format_duration;
use bulkhead_proto::{ManagerToWorker, WorkerId};
use nix::sys::signal::Signal;

use super::{send, Supervisor};
use crate::health::{self, Method, PingState};
use crate::orphan;
use crate::spawn;
use crate::worker::{pool_log, Ending, WorkerState};

impl Supervisor {
    /// A worker just became ready: its pings start one interval from now.
    pub(super) fn start_pinging(&mut self, name: &str, id: WorkerId) {
        let Some(pool) = self.pools.get_mut(name) else { return };
        let interval = pool.config.health.ping_interval;
        if let Some(w) = pool.workers.get_mut(&id) {
            w.ping = (!interval.is_zero()).then(|| PingState::new(Instant::now(), interval));
        }
    }

    /// Starts due pings and judges expired ones.
    pub(super) fn tick_health(&mut self, name: &str, now: Instant) {
        let Some(pool) = self.pools.get_mut(name) else { return };
        let (interval, timeout) = (pool.config.health.ping_interval, pool.config.health.ping_timeout);
        let path = pool.config.health.path.clone();
        let mut hung = Vec::new();
        for w in pool.workers.values_mut().filter(|w| w.state == WorkerState::Ready) {
            let Some(ping) = w.ping.as_mut() else { continue };
            if let Some(o) = ping.expired(now, timeout) {
                hung.push((w.id, o.method.describe()));
                continue;
            }
            let method = Method::choose(w.speaks_control, &path);
            let Some(seq) = ping.start(now, interval, method.clone()) else { continue };
            if method == Method::Control {
                let _ = w.control.send(ManagerToWorker::Ping { seq });
            } else if let Some(o) = ping.outstanding.as_mut() {
                o.task = health::spawn_probe(&method, w.address.clone(), name.to_string(), w.id, seq, &self.tx);
            }
        }
        for (id, method) in hung {
            self.worker_hung(name, id, &method);
        }
    }

    /// An answer to ping `seq` (a `Pong`, or a probe that got through).
    pub(super) fn on_health_answer(&mut self, name: &str, id: WorkerId, seq: u64) {
        if let Some(ping) = self.pools.get_mut(name).and_then(|p| p.workers.get_mut(&id)).and_then(|w| w.ping.as_mut())
        {
            ping.answered(seq);
        }
    }

    /// No answer within `ping_timeout`: out of routing, counted, replaced; killed or orphaned.
    fn worker_hung(&mut self, name: &str, id: WorkerId, method: &str) {
        let Some(pool) = self.pools.get_mut(name) else { return };
        let timeout = format_duration(pool.config.health.ping_timeout);
        let orphan_cfg = pool.config.orphan.clone();
        let directory = pool.config.directory.clone();
        let Some(w) = pool.workers.get_mut(&id) else { return };
        if let Some(mut p) = w.ping.take() {
            p.cancel();
        }
        if let Some(gone) = w.unroute(name, format!("did not answer a ping within {timeout}"), orphan_cfg.enabled) {
            send(&self.listener, gone);
        }
        let pid = w.process.pid;
        let reason = format!("did not answer a {method} within {timeout} (health.ping_timeout)");
        if orphan_cfg.enabled {
            let argv = orphan::expand(&orphan_cfg.action, pid.as_raw() as u32, name, &reason);
            let ran = orphan::run_action(&argv, &directory, &self.state_dir.pool_log(name));
            let line = format!(
                "pool {name:?}: worker {pid} ({id}) {reason}; left running, unrouted, as an orphan for debugging (orphan.enabled; kill {pid} when done); {ran}"
            );
            self.crashed(name, line);
            self.reconcile(name);
        } else {
            w.end(Ending::Killed(reason));
            spawn::signal_group(pid, Signal::SIGKILL);
            let line = format!("pool {name:?}: worker {pid} ({id}) is hung (no answer to a {method}); killing it");
            pool_log(&self.state_dir.pool_log(name), &line);
        }
    }
}

//! The supervised-process type: what the manager keeps for every child it runs — the
//! listener, each pool's workers, and the services to come (FTP, SMTP, the certificate
//! renewer) — and the three policies every one of them follows.
//!
//! - [`Restarts`] (`process/restart.rs`): the restart policy. A child that fails to start, or
//!   dies soon after starting ([`Restarts::died`]), waits before the next attempt: 0.5 s, 1 s,
//!   2 s … up to 30 s ([`backoff`]); a success, or a long life, resets the count. The listener
//!   uses it for its restarts, each pool for its workers' failed starts (rapid-fail protection,
//!   [`crate::rapid_fail`], decides when a pool gives up).
//! - Readiness: a child is started `Starting` and becomes ready when it says so on its control
//!   channel (or, for a plain HTTP worker, when its probe answers — [`crate::readiness`]),
//!   within a time limit after which the supervisor kills it as a failed start.
//! - [`Stop`] (`process/stop.rs`): stop with a time limit. Asked to stop, the child first
//!   gets its graceful signal (its control channel's `Drain`/`Shutdown`, then SIGTERM) and,
//!   if it outlives the limit, SIGKILL; the exit is then reported as forced.
//! - Events: a child's exit arrives as one `Event::Exited { pid }` from its exit-watcher
//!   thread ([`crate::spawn`]); the supervisor looks the pid up in its table of [`Role`]s.
//!
//! [`Process`] ties them together for one running child. Adding a service is a crate with its
//! hidden subcommand and one [`ServiceSpec`] the binary registers
//! ([`crate::run_with_services`]); the supervisor runs every registered service through the
//! same code (`process/service.rs`, `supervisor/services.rs`), with no special case for it.
//! Callers: the supervisor and its submodules, [`crate::worker`], [`crate::listener_process`].
//! This module decides *when*; it never spawns, reaps or waits itself (signals go through
//! [`crate::spawn::signal_group`]), and it never blocks.

use std::time::Instant;

use bulkhead_proto::WorkerId;
use nix::unistd::Pid;

mod restart;
mod service;
mod stop;

pub use restart::{backoff, Restarts};
pub use service::{Service, ServiceSpec};
pub use stop::Stop;

/// What a supervised child is, for the supervisor's pid table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The listener process (one at a time).
    Listener,
    /// A worker of a pool.
    Worker { pool: String, id: WorkerId },
    /// A registered service, by its index in the supervisor's list.
    Service { index: usize },
}

/// One running supervised child.
#[derive(Debug)]
pub struct Process {
    pub pid: Pid,
    pub started: Instant,
    /// Set once it was asked to stop.
    pub stop: Option<Stop>,
}

impl Process {
    pub fn new(pid: Pid, started: Instant) -> Process {
        Process { pid, started, stop: None }
    }

    pub fn is_stopping(&self) -> bool {
        self.stop.is_some()
    }

    /// Starts stopping (no-op if already stopping); see [`Stop`].
    pub fn begin_stop(&mut self, stop: Stop) {
        if self.stop.is_none() {
            self.stop = Some(stop);
        }
    }

    /// Sends the signal the stop timer says is due now, if any (`quiet`: the child has no
    /// connection left open, so its graceful signal need not wait).
    pub fn tick_stop(&mut self, now: Instant, quiet: bool) {
        if let Some(signal) = self.stop.as_mut().and_then(|s| s.due(now, quiet)) {
            // Unreaped child: the pid cannot have been reused, repeating is harmless.
            crate::spawn::signal_group(self.pid, signal);
        }
    }

    /// It outlived its stop limit and was killed.
    pub fn was_forced(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.forced)
    }
}

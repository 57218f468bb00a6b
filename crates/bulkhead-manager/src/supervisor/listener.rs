//! The supervisor's side of the listener process: starting it (and telling a restarted one
//! which workers are up and which pools refuse), reacting to its messages (`Ready`,
//! `DemandStart`, `WorkerUnreachable`, `Activity`, `Drained`, `WorkerStderr` into the pool's
//! log), and restarting it — with a
//! back-off when it dies quickly — if it dies while the manager is serving. The public sockets
//! stay open in the manager throughout, so a restart never closes a port.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bulkhead_config::units::format_duration;
use bulkhead_proto::{ListenerToManager, ManagerToListener, WorkerId};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::{send, Phase, Supervisor, LISTENER_QUICK_DEATH};
use crate::admin_command::Reply;
use crate::listener_process::{self, ListenerStartError};
use crate::process::Role;
use crate::process::Stop;
use crate::spawn::{self, ExitStatus};
use crate::worker::WorkerState;
use crate::ManagerError;

/// How long past its grace a retiring listener may take before it is killed.
const HANDOVER_MARGIN: Duration = Duration::from_secs(2);

impl Supervisor {
    pub(super) fn start_listener(&mut self) -> Result<(), ListenerStartError> {
        self.listener_generation += 1;
        let configure = ManagerToListener::Configure {
            config_toml: self.options.config_text.clone(),
            config_path: self.options.config_path.clone(),
            base_dir: self.options.base_dir.clone(),
            sockets: listener_process::listen_sockets(&self.public),
            certificates: self.admin.certificates.clone(),
        };
        let listener = listener_process::start(
            &self.options.self_exe,
            &self.options.env,
            &self.public,
            self.listener_generation,
            configure,
            &self.tx,
            self.upkeep.listener.as_ref().map(|l| l.credentials.clone()),
        )?;
        self.children.insert(listener.process.pid, Role::Listener);
        if let Err(e) = self.state_dir.write_listener_pid(listener.process.pid.as_raw() as u32) {
            self.events.warn(None, format!("{e}"));
        }
        // A restarted listener learns the pools' current situation right after its config.
        for (name, pool) in &self.pools {
            for w in pool.workers.values().filter(|w| w.state == WorkerState::Ready) {
                listener.send(ManagerToListener::WorkerUp(w.info(&pool.config)));
            }
            if let Some(refusal) = pool.mode().refusal(name) {
                listener.send(refusal);
            }
        }
        self.events.info(None, format!("listener started (pid {})", listener.process.pid));
        self.listener = Some(listener);
        // …and the ACME challenges it must answer (an order may be waiting on them).
        self.send_challenges();
        Ok(())
    }

    /// Sends to the listener — and to a retiring one finishing its requests, which needs the
    /// same news of workers and pools to finish them.
    pub(super) fn send_listener(&self, message: ManagerToListener) {
        if self.retiring.is_some() {
            send(&self.retiring, message.clone());
        }
        send(&self.listener, message);
    }

    /// `bulkhead listener restart` (`POST /listener/restart`): starts a new listener on the
    /// same sockets, workers and certificates; once it is ready the old one is told to shut
    /// down gracefully (it stops accepting, finishes its requests and closes its keep-alive
    /// connections, HTTP/2 with GOAWAY) and exits. The ports never close and both accept while
    /// they overlap, so no connection is refused. The same handover will serve a binary upgrade.
    pub(super) fn hand_over_listener(&mut self) -> Reply {
        if self.phase != Phase::Serving {
            return Reply::error(409, "the server is shutting down");
        }
        if let Some(old) = &self.retiring {
            return Reply::error(
                409,
                format!("a listener handover is already under way (pid {} is finishing its requests)", old.process.pid),
            );
        }
        match &self.listener {
            Some(l) if l.ready => {}
            _ => return Reply::error(409, "the listener is starting or restarting; try again when it is ready"),
        }
        let old = self.listener.take();
        let old_pid = old.as_ref().map(|l| l.process.pid.as_raw()).unwrap_or_default();
        self.retiring = old;
        if let Err(e) = self.start_listener() {
            self.listener = self.retiring.take();
            return Reply::error(500, format!("{e}; the running listener (pid {old_pid}) stays"));
        }
        let new_pid = self.listener.as_ref().map(|l| l.process.pid.as_raw()).unwrap_or_default();
        let message = format!(
            "listener handover: the new listener (pid {new_pid}) takes over once ready; the old one (pid {old_pid}) then finishes its requests and exits"
        );
        self.events.info(None, message.clone());
        Reply::json(200, serde_json::json!({ "old_pid": old_pid, "new_pid": new_pid, "message": message }))
    }

    /// A retiring listener's messages: its requests still need workers started and failures
    /// reported; its `Ready` and `Drained` mean nothing to the supervisor.
    pub(super) fn on_retiring_message(&mut self, message: ListenerToManager) {
        match message {
            ListenerToManager::Ready | ListenerToManager::Drained => {}
            other => self.on_listener_message(other),
        }
    }

    /// The new listener is ready: the retiring one stops accepting and drains, within the
    /// shutdown grace (then it is killed).
    fn retire_old_listener(&mut self) {
        let grace = self.grace();
        let Some(old) = self.retiring.as_mut() else { return };
        old.send(ManagerToListener::Shutdown { grace_ms: grace.as_millis() as u64 });
        old.process.begin_stop(Stop::kill_after(Instant::now(), grace + HANDOVER_MARGIN));
        let pid = old.process.pid;
        self.events.info(
            None,
            format!(
                "the old listener (pid {pid}) stops accepting and finishes its requests (up to {})",
                format_duration(grace)
            ),
        );
    }

    pub(super) fn on_retiring_exit(&mut self, status: ExitStatus) {
        let Some(mut old) = self.retiring.take() else { return };
        self.listener_done_with_stopping_workers();
        let pid = old.process.pid;
        old.release();
        if old.process.was_forced() {
            self.events.warn(
                None,
                format!(
                    "the old listener (pid {pid}) did not finish in time and was killed ({status}); handover complete"
                ),
            );
        } else {
            self.events.info(
                None,
                format!("the old listener (pid {pid}) finished its requests and exited; handover complete"),
            );
        }
    }

    /// A FastCGI responder's `FCGI_STDERR` lines, into its pool's log (through the pool's output
    /// pipe, as the workers' own stderr; straight to the file for a pool that runs nothing).
    fn worker_stderr(&mut self, pool: &str, worker: WorkerId, lines: &[String]) {
        if !self.pools.contains_key(pool) {
            return;
        }
        let stamp = crate::worker::pool_log_stamp();
        let mut text = String::new();
        for line in lines {
            let _ = writeln!(text, "{stamp} [FastCGI {worker} stderr] {line}");
        }
        match self.pool_outputs.get(pool) {
            Some(output) => {
                if !output.write_text(&text) {
                    tracing::warn!(
                        "pool {pool:?}: its log pipe is full; {} FastCGI stderr line(s) dropped",
                        lines.len()
                    );
                }
            }
            None => crate::worker::append_pool_log(&self.state_dir.pool_log(pool), &text),
        }
    }

    pub(super) fn on_listener_message(&mut self, message: ListenerToManager) {
        match message {
            ListenerToManager::Ready => self.on_listener_ready(),
            ListenerToManager::DemandStart { pool } => self.demand_start(&pool),
            ListenerToManager::WorkerUnreachable { pool, worker, error } => {
                self.check_unreachable(&pool, worker, error)
            }
            ListenerToManager::Activity { pool, requests } => {
                if let Some(p) = self.pools.get_mut(&pool) {
                    p.last_activity = Instant::now();
                    p.requests += requests;
                }
                self.count_requests(&pool, requests);
            }
            ListenerToManager::Stats { sites, pools, tls_handshake_failures, log_lines_dropped, cache } => {
                self.admin.metrics.add_tls_handshake_failures(tls_handshake_failures);
                self.admin.metrics.add_cache(&cache);
                self.admin.metrics.add_log_lines_dropped(log_lines_dropped);
                self.on_listener_stats(sites, pools)
            }
            ListenerToManager::WorkerDrained { pool, worker } => self.on_worker_drained(&pool, worker),
            ListenerToManager::WorkerStderr { pool, worker, lines } => self.worker_stderr(&pool, worker, &lines),
            ListenerToManager::Drained => {
                if let Phase::DrainingListener { .. } = self.phase {
                    self.events.info(None, "listener drained its requests".into());
                    self.stop_everything();
                }
            }
        }
    }

    pub(super) fn on_listener_ready(&mut self) {
        let Some(listener) = self.listener.as_mut() else { return };
        if listener.ready {
            return;
        }
        listener.ready = true;
        let pid = listener.process.pid;
        if self.retiring.is_some() {
            self.events.info(None, format!("the new listener (pid {pid}) is ready and accepting"));
            self.retire_old_listener();
            return;
        }
        if self.listener_ever_ready {
            self.events.info(None, format!("listener (pid {pid}) restarted and ready; the ports never closed"));
            return;
        }
        self.listener_ever_ready = true;
        if let Err(e) = self.state_dir.write_bindings(&self.public.bindings) {
            self.fatal = Some(e.into());
            return;
        }
        let list: Vec<String> = self.public.bindings.iter().map(|(b, a)| format!("{b} ({a})")).collect();
        self.events.info(None, format!("listening on {}", list.join(", ")));
    }

    pub(super) fn on_listener_channel_closed(&mut self, generation: u64, error: Option<String>) {
        let Some(listener) = self.listener.as_ref().filter(|l| l.generation == generation) else { return };
        match self.phase {
            Phase::Serving => {
                let why = error.map(|e| format!(" ({e})")).unwrap_or_default();
                self.events
                    .warn(None, format!("listener (pid {}) closed its control channel{why}", listener.process.pid));
                spawn::signal_group(listener.process.pid, Signal::SIGKILL);
            }
            Phase::DrainingListener { .. } => self.stop_everything(),
            _ => {}
        }
    }

    pub(super) fn on_listener_exit(&mut self, pid: Pid, status: ExitStatus) {
        let lived = self.listener.as_ref().map_or(Duration::MAX, |l| l.process.started.elapsed());
        if let Some(mut l) = self.listener.take() {
            l.release();
        }
        self.listener_done_with_stopping_workers();
        match self.phase {
            Phase::Serving if !self.listener_ever_ready => {
                self.fatal =
                    Some(ManagerError::ListenerFailed(format!("listener (pid {pid}) {status} before it was ready")));
            }
            Phase::Serving => {
                let now = Instant::now();
                let delay = self.listener_restarts.died(now, lived, LISTENER_QUICK_DEATH);
                self.events.error(
                    None,
                    format!(
                        "listener (pid {pid}) {status}; restarting it in {} (the ports stay open)",
                        format_duration(delay)
                    ),
                );
                if delay.is_zero() {
                    self.restart_listener(now);
                }
            }
            Phase::DrainingListener { .. } => self.stop_everything(),
            _ => self.check_shutdown_progress(),
        }
    }

    pub(super) fn restart_listener(&mut self, now: Instant) {
        self.listener_restarts.allow_now();
        if let Err(e) = self.start_listener() {
            let delay = self.listener_restarts.failed(now);
            self.events.error(None, format!("{e}; retrying in {}", format_duration(delay)));
        }
    }
}

//! The supervisor: one task that owns all of the manager's running state and makes every
//! lifecycle decision (DESIGN §3).
//!
//! [`crate::run`] builds it, running nothing, after the config is validated and the state
//! directory locked, then awaits [`Supervisor::run`], which first applies the config as the
//! diff from the empty one (`supervisor/metabase.rs`, the path of every live change: sockets
//! bound, pools set up, history version 1), then starts the admin service and the listener.
//! Pool modes change only through `set_mode` ([`Pool::enter`]). Everything that happens elsewhere —
//! a child exiting (exit-watcher threads), a message from the listener or a worker (reader
//! tasks), a readiness probe answering — arrives as an [`Event`] on one mpsc channel; time-based
//! work (startup and shutdown limits, idle timeouts, retry back-off, listener restarts, health
//! pings and recycling — `supervisor/health_checks.rs`, `supervisor/recycling.rs`) is done on
//! a single periodic tick. No state is shared: helpers only send events.
//!
//! It must never block on a socket or a process: messages to the listener and workers are
//! queued to writer tasks, and exits are reaped only after the watcher saw them.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};

use bulkhead_config::units::format_duration;
use bulkhead_config::{Config, PoolKind, StartMode};
use bulkhead_proto::{ManagerToListener, ManagerToWorker, PoolRefusal, WorkerId, WorkerInfo, WorkerToManager};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::sync::mpsc;

pub(crate) use crate::event::{Event, EventSender};
use crate::event_log::EventLog;
use crate::listener_process::ListenerProcess;
use crate::pool::{Disabled, Mode, Pool, PoolState};
use crate::pool_output::PoolOutput;
use crate::process::{Restarts, Role, Service, ServiceSpec, Stop};
use crate::procfs;
use crate::readiness;
use crate::sockets::PublicSockets;
use crate::spawn::{self, ExitStatus};
use crate::state_dir::StateDir;
use crate::worker::{self, pool_log, Ending, LaunchContext, Readiness, SharedSocket, StopCause, WorkerState};
use crate::{ManagerError, ManagerOptions};

mod acme_sites;
mod admin_ops;
mod certificates;
mod health_checks;
mod listener;
mod metabase;
mod recycling;
mod services;
mod shutdown;

pub(crate) use recycling::Upkeep;

/// How often time-based work runs.
const TICK: Duration = Duration::from_millis(100);
/// The first listener must be ready within this.
const LISTENER_BOOT_LIMIT: Duration = Duration::from_secs(30);
/// A listener that lived shorter than this before dying counts as failing quickly (back-off).
const LISTENER_QUICK_DEATH: Duration = Duration::from_secs(10);

/// Where the manager is between serving and exiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    /// `Shutdown` sent to the listener; waiting for `Drained` or its exit.
    DrainingListener {
        deadline: Instant,
    },
    /// Workers told to stop; waiting for their exits.
    StoppingWorkers {
        deadline: Instant,
    },
    /// Listener's control channel closed; waiting for it to exit (its [`Stop`] timer kills
    /// it if it does not).
    StoppingListener,
    Done,
}

pub(crate) struct Supervisor {
    options: ManagerOptions,
    state_dir: StateDir,
    public: PublicSockets,
    pools: BTreeMap<String, Pool>,
    /// Each pool's output pipe into its log file, made at its first launch (`pool_output`).
    pool_outputs: HashMap<String, PoolOutput>,
    listener: Option<ListenerProcess>,
    /// The listener being replaced by `bulkhead listener restart`: it finishes its requests
    /// once the new one is ready, then exits (`supervisor/listener.rs`).
    retiring: Option<ListenerProcess>,
    listener_generation: u64,
    listener_ever_ready: bool,
    /// The listener's restart policy: quick deaths in a row and the next try.
    listener_restarts: Restarts,
    /// The registered services (`supervisor/services.rs`), indexed by `Role::Service`.
    services: Vec<Service>,
    boot_deadline: Instant,
    children: HashMap<Pid, Role>,
    next_worker: u64,
    events: EventLog,
    tx: EventSender,
    phase: Phase,
    fatal: Option<ManagerError>,
    upkeep: Upkeep,
    /// The running config, its history, the admin service and metrics (`supervisor/metabase.rs`).
    admin: metabase::AdminState,
    /// Every https site's certificate: files' expiry, ACME sites' orders (`supervisor/acme_sites.rs`).
    certs: acme_sites::CertificateState,
}

impl Supervisor {
    /// A supervisor running nothing yet: [`Supervisor::run`] applies the config.
    pub(crate) fn new(
        options: ManagerOptions,
        max_history: u32,
        state_dir: StateDir,
        tx: EventSender,
        upkeep: Upkeep,
        services: Vec<ServiceSpec>,
    ) -> Self {
        let now = Instant::now();
        let admin = metabase::AdminState::new(&state_dir.root, max_history);
        Supervisor {
            options,
            state_dir,
            public: PublicSockets::default(),
            pools: BTreeMap::new(),
            pool_outputs: HashMap::new(),
            listener: None,
            retiring: None,
            listener_generation: 0,
            listener_ever_ready: false,
            listener_restarts: Restarts::default(),
            services: services.into_iter().map(Service::new).collect(),
            boot_deadline: now + LISTENER_BOOT_LIMIT,
            children: HashMap::new(),
            next_worker: 1,
            events: EventLog::default(),
            tx,
            phase: Phase::Serving,
            fatal: None,
            upkeep,
            admin,
            certs: acme_sites::CertificateState::default(),
        }
    }

    /// Applies `config` (start-up: the same path as a live change), then runs until
    /// `shutdown` resolves and everything is stopped, or a fatal error.
    pub(crate) async fn run(
        mut self,
        config: Config,
        mut rx: mpsc::UnboundedReceiver<Event>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ManagerError> {
        tokio::pin!(shutdown);
        if let Err(e) = self.start_up(config) {
            self.finish();
            return Err(e);
        }
        if let Err(e) = self.start_admin() {
            self.finish();
            return Err(ManagerError::Admin(e));
        }
        if let Err(e) = self.start_listener() {
            self.finish();
            return Err(e.into());
        }
        self.start_services();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown_requested = false;
        loop {
            tokio::select! {
                _ = &mut shutdown, if !shutdown_requested => {
                    shutdown_requested = true;
                    self.begin_shutdown();
                }
                Some(event) = rx.recv() => self.handle(event),
                _ = tick.tick() => self.on_tick(Instant::now()),
            }
            self.log_pool_transitions();
            if let Some(e) = self.fatal.take() {
                self.events.error(None, format!("stopping: {e}"));
                self.finish();
                return Err(e);
            }
            if self.phase == Phase::Done {
                break;
            }
        }
        self.finish();
        self.events.info(None, "bulkhead stopped".into());
        Ok(())
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Listener { generation, message } => {
                if self.listener.as_ref().is_some_and(|l| l.generation == generation) {
                    self.on_listener_message(message);
                } else if self.retiring.as_ref().is_some_and(|l| l.generation == generation) {
                    self.on_retiring_message(message);
                }
            }
            Event::ListenerChannelClosed { generation, error } => self.on_listener_channel_closed(generation, error),
            // Only our own, not yet reaped children are reaped (a reaped pid may be reused).
            Event::Exited { pid } => match self.children.remove(&pid) {
                Some(Role::Listener) => {
                    let status = spawn::reap(pid);
                    if self.retiring.as_ref().is_some_and(|l| l.process.pid == pid) {
                        self.on_retiring_exit(status);
                    } else {
                        self.on_listener_exit(pid, status);
                    }
                }
                Some(Role::Worker { pool, id }) => {
                    let status = spawn::reap(pid);
                    self.on_worker_exit(&pool, id, status);
                }
                Some(Role::Service { index }) => {
                    let status = spawn::reap(pid);
                    self.on_service_exit(index, pid, status);
                }
                None => {}
            },
            Event::WorkerControl { pool, worker, message } => self.on_worker_control(&pool, worker, message),
            Event::WorkerAnswered { pool, worker } => self.worker_ready(&pool, worker, "answered HTTP"),
            Event::WorkerRefusesConnections { pool, worker } => {
                if let Some(w) = self.pools.get_mut(&pool).and_then(|p| p.workers.get_mut(&worker)) {
                    if w.state == WorkerState::Ready {
                        w.end(Ending::Killed("refused connections although its process was running".into()));
                        spawn::signal_group(w.process.pid, Signal::SIGKILL);
                    }
                }
            }
            Event::WorkerReachable { pool, worker } => {
                if let Some(info) = self.worker_info(&pool, worker) {
                    self.events.info(
                        Some(&pool),
                        format!("pool {pool:?}: worker {} ({worker}) accepts connections again; keeping it", info.pid),
                    );
                    self.send_listener(ManagerToListener::WorkerUp(info));
                }
            }
            Event::HealthAnswered { pool, worker, seq } => self.on_health_answer(&pool, worker, seq),
            Event::Usage { samples } => self.on_usage(samples),
            Event::Admin(command) => self.on_admin(command),
            Event::CertificatesChanged => self.on_certificates_changed(),
            Event::AcmeChallenges { site, tokens } => self.on_acme_challenges(&site, tokens),
            Event::AcmeFinished { site, result } => self.on_acme_finished(&site, result),
            Event::ReopenLogs => self.reopen_logs(),
        }
    }

    /// SIGUSR1 (logrotate moved the log files): the listener reopens its access and HTTPERR
    /// logs, each pool's copier its pool log. The manager's own lines in pool logs open the
    /// path each time and need nothing.
    fn reopen_logs(&mut self) {
        self.send_listener(ManagerToListener::ReopenLogs);
        for output in self.pool_outputs.values() {
            output.reopen();
        }
        self.events.info(None, format!("log files reopened (listener and {} pool logs)", self.pool_outputs.len()));
    }

    // ---- pools and workers ----------------------------------------------------------------

    /// The identity check every pool passes when it is added or changed, at start-up or live.
    /// A config with a pool that can never run (started as root with no `user`, a missing
    /// user or command) is refused whole before this, by [`crate::preflight`] at validation;
    /// this is the second line, for a machine that changed between validation and the pool's
    /// turn: such a pool is disabled with that cause — 503 `Disabled` — until the config is
    /// fixed, instead of failing at launch and counting as a crash. Returns whether it may run.
    fn check_runnable(&mut self, name: &str) -> bool {
        let Some(pool) = self.pools.get(name) else { return false };
        let as_root = crate::identity::running_as_root();
        match crate::identity::check_pool(&pool.config, as_root, self.upkeep.allow_root) {
            Ok(()) => {
                if let Mode::Disabled(Disabled::Refused(_)) = pool.mode() {
                    self.set_mode(name, Mode::Idle);
                }
                true
            }
            Err(why) => {
                self.events.error(
                    Some(name),
                    format!("{why}; the pool is disabled (requests get 503 Disabled) until the config is fixed"),
                );
                self.set_mode(name, Mode::Disabled(Disabled::Refused(why)));
                self.stop_pool_workers(name, StopCause::PoolOffline);
                false
            }
        }
    }

    fn demand_start(&mut self, name: &str) {
        if self.phase != Phase::Serving {
            return;
        }
        let Some(pool) = self.pools.get_mut(name) else {
            self.events.warn(None, format!("the listener asked to start unknown pool {name:?}"));
            return;
        };
        match pool.mode() {
            Mode::Idle => {
                self.set_mode(name, Mode::Active);
                self.events.info(Some(name), format!("pool {name:?}: demand start"));
                self.reconcile(name);
            }
            Mode::Active => self.reconcile(name),
            Mode::Disabled(_) => {
                // The listener asked although the pool refuses: remind it of the standing refusal.
                if let Some(refusal) = pool.mode().refusal(name) {
                    self.send_listener(refusal);
                }
            }
        }
    }

    /// Moves pool `name` to `to` ([`Pool::enter`], the only place a pool changes mode) and
    /// tells the listener what that transition requires.
    fn set_mode(&mut self, name: &str, to: Mode) {
        let Some(pool) = self.pools.get_mut(name) else { return };
        if let Some(message) = pool.enter(to, Instant::now()) {
            send(&self.listener, message);
        }
    }

    /// Starts workers until the pool has as many as it wants now.
    fn reconcile(&mut self, name: &str) {
        if self.phase != Phase::Serving {
            return;
        }
        while self.pools.get(name).is_some_and(|p| p.missing_workers(Instant::now()) > 0) {
            if !self.launch_worker(name) {
                break;
            }
        }
    }

    fn launch_worker(&mut self, name: &str) -> bool {
        let cgroup = self.pool_cgroup(name);
        let Some(pool) = self.pools.get_mut(name) else { return false };
        let id = WorkerId(self.next_worker);
        self.next_worker += 1;
        // Boot and demand starts fill web-garden slots (staggered limits); replacements do not.
        let slot = if pool.workers.values().any(|w| w.retiring.is_some()) { 0 } else { pool.next_slot() };
        if !self.pool_outputs.contains_key(name) {
            let path = self.state_dir.pool_log(name);
            match PoolOutput::start(&path) {
                Ok(output) => {
                    self.pool_outputs.insert(name.to_string(), output);
                }
                Err(e) => self.events.warn(
                    Some(name),
                    format!("pool {name:?}: no output pipe ({e}); workers write {} directly and SIGUSR1 cannot move them off it", path.display()),
                ),
            }
        }
        if pool.config.kind == PoolKind::Fastcgi && pool.fastcgi_socket.is_none() {
            match SharedSocket::bind(self.state_dir.fastcgi_socket(name), self.upkeep.listener.as_ref()) {
                Ok(socket) => pool.fastcgi_socket = Some(socket),
                Err(e) => {
                    let message = format!("cannot start {:?}: {e}", pool.config.command);
                    self.start_failed(name, None, message);
                    return false;
                }
            }
        }
        let ctx = LaunchContext {
            shared_socket: pool.fastcgi_socket.as_ref(),
            self_exe: &self.options.self_exe,
            env: &self.options.env,
            socket_path: self.state_dir.worker_socket(name, id),
            log_path: self.state_dir.pool_log(name),
            output: self.pool_outputs.get(name),
            events: &self.tx,
            allow_root: self.upkeep.allow_root,
            listener: self.upkeep.listener.as_ref(),
            cgroup: cgroup.as_deref(),
            limits: crate::recycle::Limits::staggered(&pool.config.recycle, slot, pool.config.processes),
        };
        let mut w = match worker::launch(&pool.config, id, &ctx) {
            Ok(w) => w,
            Err(e) => {
                let message = format!("cannot start {:?}: {e}", pool.config.command);
                self.start_failed(name, None, message);
                return false;
            }
        };
        let readiness = worker::readiness(&pool.config);
        if let Readiness::HttpProbe(path) = &readiness {
            let (tx, address, path, pool_name) = (self.tx.clone(), w.address.clone(), path.clone(), name.to_string());
            let probe = tokio::spawn(async move {
                readiness::probe_until_ready(address, path).await;
                let _ = tx.send(Event::WorkerAnswered { pool: pool_name, worker: id });
            });
            w.probe = Some(probe.abort_handle());
        }
        let line = format!("pool {name:?}: worker {} ({id}) started: {:?}", w.process.pid, pool.config.command);
        pool_log(&self.state_dir.pool_log(name), &line);
        self.events.info(Some(name), line);
        self.children.insert(w.process.pid, Role::Worker { pool: name.to_string(), id });
        pool.workers.insert(id, w);
        if readiness == Readiness::Immediate {
            self.worker_ready(name, id, "is running");
        }
        true
    }

    fn worker_ready(&mut self, name: &str, id: WorkerId, how: &str) {
        let Some(pool) = self.pools.get_mut(name) else { return };
        let Some(w) = pool.workers.get_mut(&id) else { return };
        let Some(up) = w.become_ready(&pool.config, Instant::now()) else { return };
        pool.restarts.succeeded();
        pool.last_activity = Instant::now();
        let took = w.process.started.elapsed().as_millis();
        let line = format!("pool {name:?}: worker {} ({id}) is ready ({how} after {took} ms)", w.process.pid);
        pool_log(&self.state_dir.pool_log(name), &line);
        self.events.info(Some(name), line);
        self.send_listener(up);
        self.start_pinging(name, id);
        self.replace_retiring(name, id);
    }

    fn worker_info(&self, pool: &str, id: WorkerId) -> Option<WorkerInfo> {
        let p = self.pools.get(pool)?;
        p.workers.get(&id).filter(|w| w.state == WorkerState::Ready).map(|w| w.info(&p.config))
    }

    fn on_worker_control(&mut self, name: &str, id: WorkerId, message: WorkerToManager) {
        let Some(w) = self.pools.get_mut(name).and_then(|p| p.workers.get_mut(&id)) else { return };
        w.speaks_control = true;
        match message {
            WorkerToManager::Ready => self.worker_ready(name, id, "said ready"),
            WorkerToManager::Pong { seq, requests, .. } => {
                w.requests = w.requests.max(requests);
                self.on_health_answer(name, id, seq);
            }
            WorkerToManager::RequestRecycle { reason } => {
                self.request_recycle(name, id, crate::recycle::Reason::WorkerAsked(reason));
            }
        }
    }

    fn check_unreachable(&mut self, name: &str, id: WorkerId, error: String) {
        let Some(w) = self.pools.get(name).and_then(|p| p.workers.get(&id)) else { return };
        if w.state != WorkerState::Ready {
            return;
        }
        self.events.warn(
            Some(name),
            format!(
                "pool {name:?}: the listener could not reach worker {} ({id}): {error}; checking it",
                w.process.pid
            ),
        );
        let (tx, address, pool, pid) = (self.tx.clone(), w.address.clone(), name.to_string(), w.process.pid.as_raw());
        tokio::spawn(async move {
            let refuses = readiness::refuses_connections(&address).await;
            // A process killed a moment ago still takes connections until the kernel releases
            // its listening socket (after its connected ones, which is what the listener saw
            // fail): it is neither reachable nor to be killed; its exit is on the way.
            if procfs::is_exiting(pid) {
                return;
            }
            let event = if refuses {
                Event::WorkerRefusesConnections { pool, worker: id }
            } else {
                Event::WorkerReachable { pool, worker: id }
            };
            let _ = tx.send(event);
        });
    }

    /// A worker could not be started, or died or was killed before it was ready.
    fn start_failed(&mut self, name: &str, worker: Option<(Pid, WorkerId)>, message: String) {
        let Some(pool) = self.pools.get_mut(name) else { return };
        let now = Instant::now();
        pool.restarts.count_failure();
        let verdict = pool.rapid_fail.record(now);
        let who = worker.map(|(pid, id)| format!("worker {pid} ({id}) ")).unwrap_or_default();
        let line = format!("pool {name:?}: {who}{message}");
        let count = pool.rapid_fail.describe(verdict, "failure");
        pool_log(&self.state_dir.pool_log(name), &format!("{line} ({count})"));
        if verdict.tripped {
            self.disable(name, format!("{line} ({count})"));
            return;
        }
        if !pool.has_ready_worker() {
            send(
                &self.listener,
                ManagerToListener::PoolRefused {
                    pool: name.into(),
                    refusal: PoolRefusal::AppStartFailed,
                    detail: line.clone(),
                },
            );
        }
        if self.phase != Phase::Serving || pool.mode() != &Mode::Active {
            self.events.warn(Some(name), format!("{line} ({count})"));
        } else if pool.config.start == StartMode::OnDemand && pool.live_workers() == 0 && !pool.has_ready_worker() {
            self.events.warn(Some(name), format!("{line} ({count}); the next request will try again"));
            self.set_mode(name, Mode::Idle);
        } else {
            let delay = pool.restarts.schedule(now);
            self.events.warn(Some(name), format!("{line} ({count}); retrying in {}", format_duration(delay)));
        }
    }

    /// Rapid-fail protection tripped: take the pool offline until an operator starts it.
    fn disable(&mut self, name: &str, why: String) {
        if !self.pools.contains_key(name) {
            return;
        }
        self.admin.metrics.rapid_fail_trip(name);
        let line = format!(
            "{why}; rapid-fail protection disabled the pool: requests get 503 AppOffline until an operator starts it again (`bulkhead pool start {name}`)"
        );
        pool_log(&self.state_dir.pool_log(name), &line);
        self.events.error(Some(name), line);
        self.set_mode(name, Mode::Disabled(Disabled::RapidFail));
        self.stop_pool_workers(name, StopCause::PoolOffline);
    }

    fn on_worker_exit(&mut self, name: &str, id: WorkerId, status: ExitStatus) {
        let Some(pool) = self.pools.get_mut(name) else { return };
        let Some(mut w) = pool.workers.remove(&id) else { return };
        let (directory, command) = (pool.config.directory.clone(), pool.config.command.clone());
        let fastcgi = pool.config.kind == PoolKind::Fastcgi;
        let shutdown_limit = pool.config.shutdown_time_limit;
        w.release();
        let pid = w.process.pid;
        if let Some(gone) = w.exited(name, &status) {
            send(&self.listener, gone);
        }
        let forced = w.process.was_forced();
        match (spawn::exec_failure(&w.exec_report), w.take_ending()) {
            (Some(failure), _) => {
                let reason = failure.describe(Some(&directory));
                self.start_failed(name, None, format!("cannot start {command:?}: {reason}"));
            }
            (None, Some(Ending::Orphaned)) => {
                let line = format!("pool {name:?}: orphaned worker {pid} ({id}) {status}");
                pool_log(&self.state_dir.pool_log(name), &line);
                self.events.info(Some(name), line);
            }
            (None, Some(why @ (Ending::Recycled | Ending::Stopped(_)))) => {
                let line = if forced {
                    let limit = format_duration(shutdown_limit);
                    format!("pool {name:?}: worker {pid} ({id}) did not exit within {limit} (shutdown_time_limit); killed ({status})")
                } else {
                    format!("pool {name:?}: worker {pid} ({id}) stopped ({status}; {why})")
                };
                pool_log(&self.state_dir.pool_log(name), &line);
                self.events.info(Some(name), line);
            }
            (None, Some(Ending::Killed(reason))) if !w.was_ready() => self.start_failed(name, Some((pid, id)), reason),
            (None, Some(Ending::Killed(reason))) => {
                self.crashed(name, format!("pool {name:?}: worker {pid} ({id}) {reason}; killed it ({status})"))
            }
            (None, None) if !w.was_ready() => {
                self.start_failed(name, Some((pid, id)), format!("{status} before it was ready"))
            }
            // php-cgi ends itself with status 0 after PHP_FCGI_MAX_REQUESTS (default 500)
            // requests: its own recycle, replaced by `reconcile` below, not a crash.
            (None, None) if fastcgi && matches!(status, ExitStatus::Code(0)) => {
                let line = format!(
                    "pool {name:?}: FastCGI worker {pid} ({id}) exited with status 0 (a responder recycling itself, like php-cgi after PHP_FCGI_MAX_REQUESTS); recycled, not a crash: replacing it"
                );
                self.admin.metrics.recycle(name, "worker");
                pool_log(&self.state_dir.pool_log(name), &line);
                self.events.info(Some(name), line);
            }
            (None, None) => self.crashed(name, format!("pool {name:?}: worker {pid} ({id}) {status}")),
        }
        self.reconcile(name);
        self.check_shutdown_progress();
    }

    /// A ready worker died unexpectedly: count it, then restart (by `reconcile`) or disable.
    fn crashed(&mut self, name: &str, line: String) {
        let Some(pool) = self.pools.get_mut(name) else { return };
        let verdict = pool.rapid_fail.record(Instant::now());
        let count = pool.rapid_fail.describe(verdict, "crash");
        self.admin.metrics.crash(name);
        let restarting = self.phase == Phase::Serving && pool.mode() == &Mode::Active;
        if verdict.tripped {
            self.disable(name, format!("{line} ({count})"));
            return;
        }
        let line = if restarting { format!("{line}; restarting ({count})") } else { format!("{line} ({count})") };
        pool_log(&self.state_dir.pool_log(name), &line);
        self.events.warn(Some(name), line);
    }

    /// Asks one worker to stop: no new requests, `Drain`, then SIGTERM, then SIGKILL after
    /// `shutdown_time_limit`. A worker that speaks the control protocol gets half the limit to
    /// drain before SIGTERM; a plain app gets SIGTERM (its usual graceful signal) as soon as no
    /// connection to its socket is left open — the listener closes them as its in-flight
    /// requests finish — or after half the limit. An orphan is killed at once.
    fn stop_worker(&mut self, name: &str, id: WorkerId, now: Instant, why: Ending) {
        let Some(pool) = self.pools.get_mut(name) else { return };
        let limit = pool.config.shutdown_time_limit;
        let Some(w) = pool.workers.get_mut(&id) else { return };
        if w.is_stopping() {
            return;
        }
        if w.is_orphaned() {
            let _unrouted_already = w.begin_stop(name, why, Stop::immediate(now));
            spawn::signal_group(w.process.pid, Signal::SIGKILL);
            return;
        }
        let draining = w.begin_stop(name, why, Stop::graceful(now, limit));
        // The listener answers `WorkerDraining` with `WorkerDrained` once nothing of it is in
        // flight there ([`Supervisor::on_worker_drained`]); until then the worker is not told.
        w.listener_done = draining.is_none() || self.listener.is_none();
        if let Some(draining) = draining {
            send(&self.listener, draining);
        }
        if let Some(p) = w.probe.take() {
            p.abort();
        }
        if let Some(mut p) = w.ping.take() {
            p.cancel();
        }
        // SIGTERM comes once the listener is done with it and its connections are closed (plain
        // apps, see `tick_pool`) or after half the limit; a worker that speaks the control
        // protocol is told `Drain` once the listener is done with it, and exits by itself.
        if w.listener_done {
            let _ = w.control.send(ManagerToWorker::Drain);
        }
        let why = w.ending().map(|e| format!(" ({e})")).unwrap_or_default();
        let line = format!("pool {name:?}: stopping worker {} ({id}){why}", w.process.pid);
        pool_log(&self.state_dir.pool_log(name), &line);
        self.events.info(Some(name), line);
    }

    /// The listener has nothing more for a stopping worker: it may be told to stop now.
    pub(super) fn on_worker_drained(&mut self, pool: &str, id: WorkerId) {
        let Some(w) = self.pools.get_mut(pool).and_then(|p| p.workers.get_mut(&id)) else { return };
        if w.is_stopping() && !w.listener_done {
            w.listener_done = true;
            let _ = w.control.send(ManagerToWorker::Drain);
        }
    }

    /// The listener that was told of the stopping workers is gone (it died, or a handover's old
    /// one exited): nothing of it is in flight to them any more.
    pub(super) fn listener_done_with_stopping_workers(&mut self) {
        for pool in self.pools.values_mut() {
            for w in pool.workers.values_mut() {
                if w.is_stopping() && !w.listener_done {
                    w.listener_done = true;
                    let _ = w.control.send(ManagerToWorker::Drain);
                }
            }
        }
    }

    /// Stops the pool's workers; orphans are left for debugging while the server serves.
    fn stop_pool_workers(&mut self, name: &str, why: StopCause) {
        let now = Instant::now();
        let operator_stop = |p: &Pool| matches!(p.mode(), Mode::Disabled(Disabled::Operator | Disabled::Removed));
        let keep_orphans = self.phase == Phase::Serving && self.pools.get(name).is_some_and(|p| !operator_stop(p));
        let ids: Vec<WorkerId> = self
            .pools
            .get(name)
            .map(|p| p.workers.values().filter(|w| !(keep_orphans && w.is_orphaned())).map(|w| w.id).collect())
            .unwrap_or_default();
        for id in ids {
            self.stop_worker(name, id, now, Ending::Stopped(why));
        }
    }

    /// Operator command: start a stopped or disabled pool (clears rapid-fail history).
    #[allow(dead_code)] // called by the admin API (issue #5)
    pub(crate) fn start_pool(&mut self, name: &str) -> bool {
        let Some(pool) = self.pools.get_mut(name) else { return false };
        if let Mode::Disabled(Disabled::Refused(why)) = pool.mode() {
            let line = format!("pool {name:?}: cannot be started: {why}; fix the configuration");
            self.events.warn(Some(name), line);
            return false;
        }
        pool.rapid_fail.reset();
        pool.restarts.succeeded();
        let to = if pool.config.start == StartMode::Always { Mode::Active } else { Mode::Idle };
        let was_disabled = matches!(pool.mode(), Mode::Disabled(_));
        self.events.info(Some(name), format!("pool {name:?}: started by an operator"));
        self.set_mode(name, to);
        if !was_disabled {
            // Nothing refused it; the listener may still hold a failed start's refusal.
            self.send_listener(ManagerToListener::PoolAvailable { pool: name.into() });
        }
        self.reconcile(name);
        true
    }

    /// Operator command: stop a pool; its requests get 503 `Disabled` until it is started.
    #[allow(dead_code)] // called by the admin API (issue #5)
    pub(crate) fn stop_pool(&mut self, name: &str) -> bool {
        if !self.pools.contains_key(name) {
            return false;
        }
        self.events.info(Some(name), format!("pool {name:?}: stopped by an operator (requests get 503 Disabled)"));
        self.set_mode(name, Mode::Disabled(Disabled::Operator));
        self.stop_pool_workers(name, StopCause::PoolOffline);
        true
    }

    // ---- time ---------------------------------------------------------------------------------

    fn on_tick(&mut self, now: Instant) {
        if !self.listener_ever_ready && self.phase == Phase::Serving && now >= self.boot_deadline {
            self.fatal = Some(ManagerError::ListenerFailed(format!(
                "the listener did not report ready within {}",
                format_duration(LISTENER_BOOT_LIMIT)
            )));
            return;
        }
        if self.phase == Phase::Serving && self.listener.is_none() && self.listener_restarts.due(now) {
            self.restart_listener(now);
        }
        let names: Vec<String> = self.pools.keys().cloned().collect();
        for name in names {
            self.tick_pool(&name, now);
        }
        self.tick_services(now);
        if let Some(old) = self.retiring.as_mut() {
            old.process.tick_stop(now, false);
        }
        self.tick_acme();
        self.tick_sampling(now);
        self.sweep_retired_pools();
        self.tick_shutdown(now);
    }

    fn tick_pool(&mut self, name: &str, now: Instant) {
        let Some(pool) = self.pools.get_mut(name) else { return };
        let limit = pool.config.startup_time_limit;
        for w in pool.workers.values_mut() {
            match w.state {
                WorkerState::Starting { deadline } if now >= deadline && w.ending().is_none() => {
                    w.end(Ending::Killed(format!(
                        "did not become ready within {} (startup_time_limit)",
                        format_duration(limit)
                    )));
                    spawn::signal_group(w.process.pid, Signal::SIGKILL);
                }
                WorkerState::Stopping => {
                    // A plain app gets SIGTERM as soon as no connection to it is left open.
                    let term_pending = w.process.stop.is_some_and(|s| s.term_at.is_some());
                    let quiet = term_pending
                        && !w.speaks_control
                        && w.listener_done
                        && procfs::open_connections(&w.address) == Some(0);
                    w.process.tick_stop(now, quiet);
                }
                _ => {}
            }
        }
        let idle = pool.config.idle_timeout;
        if pool.mode() == &Mode::Active
            && !idle.is_zero()
            && pool.has_ready_worker()
            && now.saturating_duration_since(pool.last_activity) >= idle
        {
            self.set_mode(name, Mode::Idle);
            self.events.info(
                Some(name),
                format!(
                    "pool {name:?}: no requests for {} (idle_timeout); stopping its workers",
                    format_duration(idle)
                ),
            );
            self.stop_pool_workers(name, StopCause::IdleTimeout);
        }
        self.tick_health(name, now);
        self.tick_recycle(name, now);
        self.reconcile(name);
    }

    fn log_pool_transitions(&mut self) {
        for pool in self.pools.values_mut() {
            let state = pool.state();
            if state != pool.shown_state {
                let name = pool.config.name.clone();
                self.events.info(Some(&name), format!("pool {name:?}: {} → {state}", pool.shown_state));
                pool.shown_state = state;
            }
        }
    }

    /// Pool states for status displays.
    #[allow(dead_code)] // read by the admin API (issue #5)
    pub(crate) fn pool_states(&self) -> Vec<(String, PoolState)> {
        self.pools.iter().map(|(n, p)| (n.clone(), p.state())).collect()
    }
}

/// Queues a message to the listener, if there is one (borrows only that field).
fn send(listener: &Option<ListenerProcess>, message: ManagerToListener) {
    if let Some(l) = listener {
        l.send(message);
    }
}

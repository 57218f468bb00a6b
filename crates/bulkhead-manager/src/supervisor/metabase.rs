//! The supervisor's side of the metabase (issue #5): the running configuration, its history,
//! and applying a new one while serving — validate, diff, apply the list of changes — plus the
//! admin service, the file watch and the metrics that live beside it ([`AdminState`]).
//!
//! Every way a configuration arrives (the watched file, SIGHUP, `PUT /config`,
//! `POST /config/reload`, a rollback) ends in [`Supervisor::apply_config`]:
//! 1. validate the whole text, [`crate::preflight`] included (users, commands); any error
//!    refuses it whole — nothing changes, the error is logged, counted and shown by
//!    `bulkhead status` until a good file arrives;
//! 2. `bulkhead_config::diff(running, new)`; an identical text is a no-op;
//! 3. bind the listening sockets the new config needs (a bind failure refuses it too), hand
//!    them to the running listener over its fd channel (`AddSockets`), then send `Configure`:
//!    the listener swaps its route table atomically (requests in flight finish on the old one)
//!    and stops accepting on sockets no binding needs, which the manager then closes;
//! 4. pools: added ones are set up (started if `start = "always"`), changed ones take their new
//!    settings (workers recycled, overlapped, when something a worker sees changed), removed
//!    ones are drained and stopped and forgotten when their last worker is gone; untouched
//!    pools and their workers are left alone;
//! 5. record the version in `<state_dir>/history` and say what changed.
//!
//! Start-up takes the same path ([`Supervisor::start_up`]): the diff from [`Config::empty`],
//! whose `BindingAdded` records open every socket and whose `PoolAdded` records set up every
//! pool, recorded as the first version; the listener is spawned afterwards with every socket.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Instant, SystemTime};

use bulkhead_config::{Change, Config, ConfigErrors, StartMode};
use bulkhead_proto::{ListenSocket, ManagerToListener, PoolStats, SiteStats};

use super::{Phase, Supervisor};
use crate::admin::{describe_change, AdminService};
use crate::admin_command::Reply;
use crate::config_store::{self, ConfigStore, Source};
use crate::metrics::Metrics;
use crate::pool::{Disabled, Mode, Pool};
use crate::rapid_fail::RapidFail;
use crate::recycle::Reason;
use crate::reload::FileWatch;
use crate::sockets::PublicSocket;
use crate::worker::{Ending, StopCause};

/// A configuration the manager refused; shown by `bulkhead status` until a good one arrives.
#[derive(Debug, Clone)]
pub(crate) struct Refused {
    pub at: SystemTime,
    pub source: Source,
    pub errors: Vec<String>,
    pub structured: serde_json::Value,
}

/// The admin service's state inside the supervisor.
pub(crate) struct AdminState {
    /// The running configuration and its exact text.
    pub config: Config,
    pub version: Option<u64>,
    pub store: ConfigStore,
    pub refused: Option<Refused>,
    pub metrics: Metrics,
    /// Pools removed from the config whose workers are still stopping.
    pub retiring: BTreeSet<String>,
    /// Per pool: the last recycle's reason and time.
    pub last_recycle: BTreeMap<String, (String, SystemTime)>,
    /// The listener's latest queue figures, per pool.
    pub pool_stats: BTreeMap<String, PoolStats>,
    /// Per site: requests since start and the latest rate per second.
    pub site_requests: BTreeMap<String, (u64, f64)>,
    pub last_stats: Option<Instant>,
    /// Per worker pid: the CPU ticks and time of the previous status, for CPU%.
    pub cpu_seen: HashMap<i32, (u64, Instant)>,
    pub started: SystemTime,
    pub service: Option<AdminService>,
    pub watch: Option<FileWatch>,
    /// The certificates the listener serves, and the watch on their files.
    pub certificates: Vec<bulkhead_proto::SiteCertificate>,
    pub certificate_files: Vec<std::path::PathBuf>,
    pub certificate_watch: Option<FileWatch>,
    pub signal_task: Option<tokio::task::AbortHandle>,
    pub reopen_task: Option<tokio::task::AbortHandle>,
}

impl AdminState {
    /// Before start-up: the running config is [`Config::empty`] and no version is recorded;
    /// [`Supervisor::start_up`] applies the real one.
    pub(crate) fn new(state_root: &Path, max_history: u32) -> AdminState {
        AdminState {
            config: Config::empty(),
            version: None,
            store: ConfigStore::new(state_root, max_history),
            refused: None,
            metrics: Metrics::new(),
            retiring: BTreeSet::new(),
            last_recycle: BTreeMap::new(),
            pool_stats: BTreeMap::new(),
            site_requests: BTreeMap::new(),
            last_stats: None,
            cpu_seen: HashMap::new(),
            started: SystemTime::now(),
            service: None,
            watch: None,
            certificates: Vec::new(),
            certificate_files: Vec::new(),
            certificate_watch: None,
            signal_task: None,
            reopen_task: None,
        }
    }

    /// One worker's recycle began (called by `supervisor/recycling.rs` for every reason).
    pub(crate) fn note_recycle(&mut self, pool: &str, reason: &Reason) {
        let label = match reason {
            Reason::Age { .. } => "age",
            Reason::Requests { .. } => "requests",
            Reason::Schedule(_) => "schedule",
            Reason::Memory { .. } => "memory",
            Reason::VirtualMemory { .. } => "virtual_memory",
            Reason::Cpu(_) => "cpu",
            Reason::ConfigChange => "config",
            Reason::Operator => "operator",
            Reason::WorkerAsked(_) => "worker",
        };
        self.metrics.recycle(pool, label);
        self.last_recycle.insert(pool.to_string(), (reason.to_string(), SystemTime::now()));
    }
}

/// The outcome of applying a configuration, as the API answers it.
pub(crate) fn applied_reply(version: Option<u64>, changes: &[String]) -> Reply {
    Reply::json(200, serde_json::json!({ "applied": true, "version": version, "changes": changes }))
}

impl Supervisor {
    /// Starts the admin service, the file watch and the SIGHUP bridge (at the start of `run`).
    pub(super) fn start_admin(&mut self) -> Result<(), crate::admin::AdminError> {
        let service = crate::admin::start(
            &self.admin.config.server,
            self.admin.store.clone(),
            self.options.base_dir.clone(),
            self.tx.clone(),
        )?;
        if let Some(addr) = service.tcp_addr {
            self.events.info(None, format!("admin API and dashboard on http://{addr}/ (token required)"));
        }
        self.admin.service = Some(service);
        if let Some(path) = self.options.config_path.clone() {
            match crate::reload::watch_file(&path, self.tx.clone()) {
                Ok(w) => self.admin.watch = Some(w),
                Err(e) => self.events.warn(None, format!("{e}; edits are applied on SIGHUP or `bulkhead config` only")),
            }
        }
        if let Some(signal) = self.options.reload.clone() {
            self.admin.signal_task = Some(crate::reload::on_signal(signal, self.tx.clone()));
        }
        if let Some(signal) = self.options.reopen_logs.clone() {
            self.admin.reopen_task = Some(crate::reload::on_reopen_signal(signal, self.tx.clone()));
        }
        Ok(())
    }

    /// Start-up: applies `config` (the text in `options.config_text`, already validated by
    /// [`crate::run`]) as the diff from [`Config::empty`], through the same [`Supervisor::commit`]
    /// as every live change; it is recorded as history version 1 (`source = start`). A socket
    /// that cannot be bound stops the server.
    pub(super) fn start_up(&mut self, config: Config) -> Result<(), crate::ManagerError> {
        let changes = bulkhead_config::diff(&self.admin.config, &config);
        let opened = self.public.open(&changes, &config)?;
        let text = self.options.config_text.clone();
        self.commit(config, changes, text, opened, Source::Start, None);
        Ok(())
    }

    /// Validates `text` and, if it is valid and differs from the running text, applies it.
    /// `write_back`: replace the config file with `text` first (API and rollback).
    pub(super) fn apply_config(
        &mut self,
        text: String,
        source: Source,
        note: Option<String>,
        write_back: bool,
    ) -> Reply {
        if self.phase != Phase::Serving {
            return Reply::error(503, "the server is shutting down; no configuration is applied");
        }
        let file =
            self.options.config_path.as_ref().map_or("<embedded default>".to_string(), |p| p.display().to_string());
        let host = crate::preflight::Host::of(&self.options);
        let checked = match crate::preflight::validate(&text, &file, &self.options.base_dir, &host) {
            Ok(c) => c,
            Err(errors) => return self.refuse(source, errors, !write_back),
        };
        for w in &checked.warnings {
            self.events.warn(None, format!("config: {w}"));
        }
        let unchanged = text == self.options.config_text && source != Source::Rollback;
        let new = checked.config;
        let changes = if unchanged { Vec::new() } else { bulkhead_config::diff(&self.admin.config, &new) };
        // Sockets first: a binding that cannot be bound refuses the file before it is written.
        let opened = match self.public.open(&changes, &new) {
            Ok(o) => o,
            Err(e) => {
                let errors = ConfigErrors(vec![bulkhead_config::ConfigError {
                    file,
                    line: None,
                    column: None,
                    key: "sites.bindings".into(),
                    message: e.to_string(),
                }]);
                return self.refuse(source, errors, !write_back);
            }
        };
        if write_back {
            if let Some(path) = self.options.config_path.clone() {
                if let Err(e) = config_store::write_back(&path, &text) {
                    return Reply::error(500, format!("{e}; nothing was applied"));
                }
            }
        }
        if unchanged {
            self.admin.refused = None;
            // A reload re-reads the certificates even when the config text is the same.
            self.on_certificates_changed();
            return applied_reply(self.admin.version, &[]);
        }
        let described = self.commit(new, changes, text, opened, source, note);
        applied_reply(self.admin.version, &described)
    }

    /// The one apply path, at start-up and live: makes `new` the running config, hands the
    /// listener its sockets and config, applies each change record (pools added, changed,
    /// removed), records the version in the history and says what changed. Returns the
    /// changes as the operator reads them.
    fn commit(
        &mut self,
        new: Config,
        changes: Vec<Change>,
        text: String,
        opened: Vec<PublicSocket>,
        source: Source,
        note: Option<String>,
    ) -> Vec<String> {
        self.options.config_text = text;
        self.admin.config = new.clone();
        self.admin.store.set_max(new.server.max_history);
        self.refresh_certificates();
        self.reconfigure_listener(&changes, opened);
        for change in &changes {
            self.apply_change(change, &new);
        }
        let version = match self.admin.store.record(&self.options.config_text, source, note) {
            Ok(v) => Some(v.version),
            Err(e) => {
                self.events.warn(None, format!("config history: {e}"));
                None
            }
        };
        self.admin.version = version.or(self.admin.version);
        self.admin.refused = None;
        let described: Vec<String> = changes.iter().map(describe_change).collect();
        if source != Source::Start {
            self.admin.metrics.config_applied(source.as_str());
            let what =
                if described.is_empty() { "no change to the running server".to_string() } else { described.join("; ") };
            let v = version.map_or(String::new(), |v| format!(" as version {v}"));
            self.events.info(None, format!("configuration applied ({}){v}: {what}", source.as_str()));
        } else {
            let v = version.map_or(String::new(), |v| format!(" (history version {v})"));
            self.events.info(None, format!("configuration loaded{v}"));
        }
        described
    }

    /// Logs and counts a refused configuration. `from_file`: it is what the config file holds
    /// now, so `bulkhead status` shows it until a good file arrives (a refused `PUT /config` or
    /// rollback left the file alone and is only answered to its caller).
    pub(super) fn refuse(&mut self, source: Source, errors: ConfigErrors, from_file: bool) -> Reply {
        let lines: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
        let structured: Vec<serde_json::Value> = errors
            .0
            .iter()
            .map(|e| {
                serde_json::json!({ "file": e.file, "line": e.line, "column": e.column, "key": e.key, "message": e.message })
            })
            .collect();
        self.events.error(
            None,
            format!(
                "configuration refused ({}): {} error(s); the running configuration stays:\n{}",
                source.as_str(),
                lines.len(),
                lines.join("\n")
            ),
        );
        self.admin.metrics.config_refused(source.as_str());
        let structured = serde_json::Value::Array(structured);
        if from_file {
            self.admin.refused =
                Some(Refused { at: SystemTime::now(), source, errors: lines, structured: structured.clone() });
        }
        Reply::json(400, serde_json::json!({ "applied": false, "errors": structured }))
    }

    /// Commits the sockets for `self.admin.config` and tells the listener: new sockets over
    /// its fd channel, then the new `Configure`; sockets no binding needs are closed afterwards.
    /// Before the first listener starts (start-up) only the socket set changes: the listener
    /// gets every socket when it is spawned.
    fn reconfigure_listener(&mut self, changes: &[Change], opened: Vec<PublicSocket>) {
        let added_list: Vec<ListenSocket> = opened
            .iter()
            .map(|s| ListenSocket { fd: -1, local_addr: s.local_addr, bindings: s.bindings.clone() })
            .collect();
        let old = self.public.commit(changes, &self.admin.config, opened);
        // bindings.json first: the new sockets already queue connections, and whoever reads
        // the file must not find a binding the listener serves missing from it.
        if self.listener_ever_ready {
            if let Err(e) = self.state_dir.write_bindings(&self.public.bindings) {
                self.events.warn(None, format!("{e}"));
            }
        }
        for s in &old {
            self.events.info(None, format!("no longer listening on {} ({})", s.local_addr, s.bindings.join(", ")));
        }
        if let Some(listener) = self.listener.as_mut() {
            listener.forget_sockets(old.iter().map(|s| s.local_addr));
            if !added_list.is_empty() {
                let new_sockets =
                    self.public.sockets.iter().filter(|s| added_list.iter().any(|a| a.local_addr == s.local_addr));
                match listener.pass_sockets(new_sockets.map(|s| s.socket.as_fd())) {
                    Ok(fd_channel) => {
                        listener.send(ManagerToListener::AddSockets { fd_channel, sockets: added_list.clone() })
                    }
                    Err(e) => {
                        self.events.error(None, format!("cannot hand new listening sockets to the listener: {e}"))
                    }
                }
            }
            let sockets = listener.socket_list(&self.public);
            let certificates = self.admin.certificates.clone();
            listener.send(ManagerToListener::Configure {
                config_toml: self.options.config_text.clone(),
                config_path: self.options.config_path.clone(),
                base_dir: self.options.base_dir.clone(),
                sockets,
                certificates,
            });
        }
        if self.listener.is_some() {
            for s in &added_list {
                self.events.info(None, format!("listening on {} ({})", s.local_addr, s.bindings.join(", ")));
            }
        }
        // The listener closes its copies of `old` when it applies the Configure; ours close here.
        drop(old);
    }

    fn apply_change(&mut self, change: &Change, new: &Config) {
        match change {
            Change::ServerChanged { fields, restart_needed: true } => self.events.warn(
                None,
                format!("[server] {} changed: takes effect when the server is restarted", fields.join(", ")),
            ),
            Change::PoolAdded { name } => self.add_pool(name, new),
            Change::PoolChanged { name, recycle_needed, fields } => {
                self.change_pool(name, new, *recycle_needed, fields)
            }
            Change::PoolRemoved { name } => self.remove_pool(name),
            _ => {}
        }
    }

    fn add_pool(&mut self, name: &str, new: &Config) {
        let Some(cfg) = new.pools.get(name).cloned() else { return };
        let always = cfg.start == StartMode::Always;
        if self.admin.retiring.remove(name) {
            // Removed and added back while its old workers still stop: reuse the entry.
            if let Some(p) = self.pools.get_mut(name) {
                p.rapid_fail = RapidFail::new(&cfg.rapid_fail);
                p.config = cfg;
            }
            self.set_mode(name, Mode::Idle);
        } else {
            self.pools.insert(name.to_string(), Pool::new(cfg, Instant::now()));
        }
        self.events.info(Some(name), format!("pool {name:?} added"));
        if self.check_runnable(name) && always {
            self.events.info(Some(name), format!("pool {name:?}: starting now (start = \"always\")"));
            self.set_mode(name, Mode::Active);
            self.reconcile(name);
        }
    }

    fn change_pool(&mut self, name: &str, new: &Config, recycle_needed: bool, fields: &[&'static str]) {
        let Some(cfg) = new.pools.get(name).cloned() else { return };
        let Some(pool) = self.pools.get_mut(name) else { return };
        if fields.contains(&"rapid_fail") {
            pool.rapid_fail = RapidFail::new(&cfg.rapid_fail);
        }
        let fewer = cfg.processes < pool.config.processes;
        pool.config = cfg;
        if !self.check_runnable(name) {
            return;
        }
        let Some(pool) = self.pools.get(name) else { return };
        if pool.config.start == StartMode::Always && pool.mode() == &Mode::Idle {
            self.set_mode(name, Mode::Active);
        }
        if recycle_needed {
            self.recycle_pool(name, Reason::ConfigChange);
        } else if fewer {
            self.trim_pool(name);
        }
        self.reconcile(name);
    }

    /// Stops the newest workers beyond the pool's `processes`.
    fn trim_pool(&mut self, name: &str) {
        let Some(pool) = self.pools.get(name) else { return };
        let live: Vec<_> = pool.workers.values().filter(|w| !w.is_stopping()).map(|w| w.id).collect();
        let excess = live.len().saturating_sub(pool.config.processes as usize);
        let now = Instant::now();
        for id in live.into_iter().rev().take(excess) {
            self.stop_worker(name, id, now, Ending::Stopped(StopCause::FewerProcesses));
        }
    }

    fn remove_pool(&mut self, name: &str) {
        if !self.pools.contains_key(name) {
            return;
        }
        self.events.info(Some(name), format!("pool {name:?} removed from the configuration; stopping its workers"));
        self.set_mode(name, Mode::Disabled(Disabled::Removed));
        self.stop_pool_workers(name, StopCause::PoolOffline);
        self.admin.retiring.insert(name.to_string());
        self.admin.pool_stats.remove(name);
        self.admin.metrics.forget_pool(name);
        self.sweep_retired_pools();
    }

    /// Forgets removed pools whose last worker is gone (called on every tick).
    pub(super) fn sweep_retired_pools(&mut self) {
        let done: Vec<String> = self
            .admin
            .retiring
            .iter()
            .filter(|n| self.pools.get(*n).is_none_or(|p| p.workers.is_empty()))
            .cloned()
            .collect();
        for name in done {
            self.admin.retiring.remove(&name);
            self.pools.remove(&name);
            self.pool_outputs.remove(&name);
        }
    }

    /// A `Stats` report from the listener.
    pub(super) fn on_listener_stats(&mut self, sites: Vec<SiteStats>, pools: Vec<PoolStats>) {
        let now = Instant::now();
        let elapsed = self.admin.last_stats.map_or(1.0, |t| now.duration_since(t).as_secs_f64().max(0.001));
        self.admin.last_stats = Some(now);
        self.admin.metrics.add_stats(&sites, &pools);
        for entry in self.admin.site_requests.values_mut() {
            entry.1 = 0.0;
        }
        for s in &sites {
            let n: u64 = s.responses.iter().map(|(_, n)| n).sum();
            let e = self.admin.site_requests.entry(s.site.clone()).or_default();
            e.0 += n;
            e.1 = n as f64 / elapsed;
        }
        self.admin.pool_stats = pools.into_iter().map(|p| (p.pool.clone(), p)).collect();
    }
}

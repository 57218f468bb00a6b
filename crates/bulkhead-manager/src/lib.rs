//! Bulkhead's manager (`bulkhead serve`, IIS's WAS): the only process that reads the config
//! and the parent of every other process (DESIGN §1, §3).
//!
//! The binary calls [`run`] with the config text and a `shutdown` future (resolved on
//! SIGTERM/SIGINT). `run` validates the config (refusing it whole, every error listed), takes
//! the state directory ([`state_dir`]), then hands everything to the [`supervisor`], which
//! applies the config as the diff from the empty one — the same path as every live reload:
//! its change records bind the public sockets ([`sockets`]) and set up the pools — and is
//! the one task that spawns the listener
//! ([`listener_process`]) and the pools' workers ([`pool`], [`worker`], [`spawn`]), decides
//! readiness ([`readiness`]), restarts what crashes within the limits of rapid-fail protection
//! ([`rapid_fail`]), stops idle pools, and records every lifecycle event ([`event_log`]).
//! The metabase side (issue #5): the [`admin`] service (HTTP/JSON on the admin socket, the
//! dashboard, [`metrics`]), the config history and write-back ([`config_store`]) and the
//! triggers of a live reload ([`reload`]: file watch, SIGHUP); the supervisor applies a new
//! config as a diff (`supervisor/metabase.rs`). The https sites' certificate and key files are
//! read and checked here only ([`tls`], at validation and on their files' change,
//! `supervisor/certificates.rs`) and handed to the listener, which never opens a key; so are
//! certificates obtained from an ACME server ([`acme`], `supervisor/acme_sites.rs`), whose
//! HTTP-01 challenges the listener answers.
//!
//! The modules are a layering: each line may use the lines under it, never those above, and
//! no two modules import each other (the e2e test `layering` pins these lines):
//!
//! ```text
//! supervisor        the event loop; owns the pools, the listener and the services
//! pool              Pool state machine (Idle, Active, Disabled(cause)) → listener messages
//! worker            Worker state machine, its launch and its ending
//! admin | health | listener_process | reload | acme   the API, pings, the listener child,
//!                                   triggers, ACME orders (tasks that report by events)
//! event | preflight                 the supervisor's messages; machine checks at validation
//! admin_command | command           operator commands; a pool's program found as its user
//! config_store | identity | process history; users; the supervised-process type (process/)
//! cgroup | cpu | event_log | metrics | orphan | procfs | rapid_fail | readiness | recycle |
//! sockets | spawn | state_dir       leaves
//! ```
//!
//! The manager never parses client HTTP and never runs application code; it reads no
//! environment, argv or signals itself — the binary passes them in through
//! [`ManagerOptions`]. `unsafe` is confined to [`spawn`] (fork/exec).
#![deny(unsafe_code)]

use std::ffi::OsString;
use std::future::Future;
use std::path::PathBuf;

mod acme;
pub mod admin;
mod admin_command;
pub mod cgroup;
pub mod command;
pub mod config_store;
pub mod cpu;
mod event;
pub mod event_log;
pub mod health;
pub mod identity;
mod listener_process;
pub mod metrics;
pub mod orphan;
pub mod pool;
pub mod pool_output;
pub mod preflight;
pub mod process;
pub mod procfs;
pub mod rapid_fail;
pub mod readiness;
pub mod recycle;
pub mod reload;
pub mod sockets;
pub mod spawn;
pub mod state_dir;
mod supervisor;
pub mod tls;
mod worker;

/// What the binary tells the manager at start-up. The manager reads no environment, argv or
/// signals itself.
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    /// The config file, or `None` for the embedded default.
    pub config_path: Option<PathBuf>,
    /// The config text (read by the binary from `config_path`, or the embedded default).
    pub config_text: String,
    /// Anchor for relative paths: the config file's directory, or the working directory.
    pub base_dir: PathBuf,
    /// This very executable: spawned as `bulkhead listener`, and substituted for a pool
    /// command whose program is the bare word `bulkhead`.
    pub self_exe: PathBuf,
    /// The environment the listener and workers inherit (the binary passes its own); each
    /// pool's `env` is added on top, and `PATH` from it is used to find pool programs.
    pub env: Vec<(OsString, OsString)>,
    /// The local time zone's UTC offset, read by the binary before it started threads (the
    /// `time` crate cannot read it later); `None` when unknown: `recycle.schedule` times are
    /// then read as UTC, and the manager says so.
    pub local_offset: Option<time::UtcOffset>,
    /// Started as root, run pools without a `user` as root too instead of refusing them (see
    /// [`identity::check_pool`]). For containers and test harnesses where everything is root.
    pub allow_root_workers: bool,
    /// Notified by the binary on SIGHUP: re-read and apply the config file (`None`: no signal).
    pub reload: Option<std::sync::Arc<tokio::sync::Notify>>,
    /// Notified by the binary on SIGUSR1: reopen every log file (the listener's access and
    /// HTTPERR logs, the pool logs) at its path, for logrotate (`None`: no signal).
    pub reopen_logs: Option<std::sync::Arc<tokio::sync::Notify>>,
}

/// Errors that stop the manager.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("{0}")]
    Config(#[from] bulkhead_config::ConfigErrors),
    #[error(transparent)]
    StateDir(#[from] state_dir::StateDirError),
    #[error(transparent)]
    Bind(#[from] sockets::BindError),
    #[error(transparent)]
    ListenerStart(#[from] listener_process::ListenerStartError),
    #[error("{0}")]
    ListenerFailed(String),
    /// The listener's user cannot be resolved or given its directories.
    #[error("{0}")]
    Identity(String),
    #[error(transparent)]
    Admin(#[from] admin::AdminError),
}

/// Runs the server until `shutdown` resolves, then drains and stops everything.
pub async fn run(options: ManagerOptions, shutdown: impl Future<Output = ()>) -> Result<(), ManagerError> {
    run_with_services(options, Vec::new(), shutdown).await
}

/// [`run`], also keeping the registered `services` running (FTP, SMTP, the certificate
/// renewer…): each is started after the listener, restarted with back-off when it dies and
/// stopped at shutdown ([`process::ServiceSpec`]). The binary, which knows each service's
/// subcommand, registers them here.
pub async fn run_with_services(
    options: ManagerOptions,
    services: Vec<process::ServiceSpec>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ManagerError> {
    let file = match &options.config_path {
        Some(p) => p.display().to_string(),
        None => "<embedded default>".to_string(),
    };
    // The machine-dependent checks too (users, commands): a pool that can never start stops us.
    let checked = preflight::validate(&options.config_text, &file, &options.base_dir, &preflight::Host::of(&options))?;
    for warning in &checked.warnings {
        tracing::warn!(target: "bulkhead::manager", "config: {warning}");
    }
    let config = checked.config;
    let state_dir = state_dir::StateDir::prepare(&config.server, std::process::id())?;
    let upkeep = supervisor::Upkeep::new(&config, options.local_offset, options.allow_root_workers).and_then(|u| {
        match &u.listener {
            Some(l) => l.prepare_dirs(&state_dir.sockets, &state_dir.body_temp, &state_dir.log_dir).map(|()| u),
            None => Ok(u),
        }
    });
    let upkeep = match upkeep {
        Ok(u) => u,
        Err(e) => {
            state_dir.cleanup();
            return Err(ManagerError::Identity(e));
        }
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let supervisor = supervisor::Supervisor::new(options, config.server.max_history, state_dir, tx, upkeep, services);
    supervisor.run(config, rx, shutdown).await
}

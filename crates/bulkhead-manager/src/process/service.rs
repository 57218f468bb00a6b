//! A registered service: a long-running child the manager keeps alive beside the listener and
//! the pools — FTP, SMTP, the certificate renewer to come ([`crate::process`]).
//!
//! The binary registers each one ([`crate::run_with_services`]) as a [`ServiceSpec`]: what to
//! run (usually this executable with the service's hidden subcommand), how long it may take to
//! stop, and how soon a death counts as a failure. The supervisor (`supervisor/services.rs`)
//! starts every service after the listener, restarts one that dies by its [`Restarts`]
//! policy, stops them with [`Stop`] at shutdown, and records each step as an event. Pure
//! data here: nothing spawns or signals.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

#[cfg(doc)]
use super::Stop;
use super::{Process, Restarts};

/// What the binary registers for one service.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// Its name in logs, events and `/status` (`ftp`, `smtp`, `cert-renewer`).
    pub name: String,
    /// The program to run (usually this executable).
    pub program: PathBuf,
    /// Full argv, including `argv[0]` (usually `["bulkhead", "<subcommand>"]`).
    pub argv: Vec<OsString>,
    /// SIGTERM when stopping, SIGKILL after this.
    pub stop_limit: Duration,
    /// A death sooner than this after its start counts as a failure: the restart backs off.
    pub quick_death: Duration,
}

/// One registered service and its running process, if any.
#[derive(Debug)]
pub struct Service {
    pub spec: ServiceSpec,
    pub process: Option<Process>,
    /// Read at its exit, to tell a failed exec from a death.
    pub exec_report: Option<OwnedFd>,
    pub restarts: Restarts,
    /// Times it was started.
    pub starts: u64,
}

impl Service {
    pub fn new(spec: ServiceSpec) -> Service {
        Service { spec, process: None, exec_report: None, restarts: Restarts::default(), starts: 0 }
    }
}

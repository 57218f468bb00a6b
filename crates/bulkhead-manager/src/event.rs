//! The events the supervisor reacts to: everything that happens outside its task — a child
//! exiting (exit-watcher threads), a message from the listener or a worker (reader tasks), a
//! readiness or health probe answering, a resource sample, an admin command — arrives as one
//! [`Event`] on one unbounded channel ([`EventSender`]).
//!
//! A leaf module: it names the messages and depends only on [`crate::admin_command`] and
//! [`crate::procfs`]'s sample type. Senders: `listener_process`, `worker`, `health`,
//! `readiness` probes, `admin`, `reload`, `acme`; the receiver: the supervisor's loop. It must never
//! hold state or do I/O. (Operator-facing records of what happened are [`crate::event_log`].)

use std::collections::HashMap;

use bulkhead_proto::{ListenerToManager, WorkerId, WorkerToManager};
use nix::unistd::Pid;
use tokio::sync::mpsc;

use crate::admin_command::Command;
use crate::procfs::Usage;

/// Something the supervisor must react to.
#[derive(Debug)]
pub(crate) enum Event {
    /// A message from the listener of this generation.
    Listener { generation: u64, message: ListenerToManager },
    /// The listener's control channel closed (it died or broke the protocol).
    ListenerChannelClosed { generation: u64, error: Option<String> },
    /// A child exited; it is not reaped yet.
    Exited { pid: Pid },
    /// A message on a worker's control channel.
    WorkerControl { pool: String, worker: WorkerId, message: WorkerToManager },
    /// A worker answered its readiness probe.
    WorkerAnswered { pool: String, worker: WorkerId },
    /// A worker the listener could not reach refuses connections: it must be replaced.
    WorkerRefusesConnections { pool: String, worker: WorkerId },
    /// A worker the listener could not reach accepts connections after all.
    WorkerReachable { pool: String, worker: WorkerId },
    /// A worker answered health ping `seq` over HTTP or by accepting a connection.
    HealthAnswered { pool: String, worker: WorkerId, seq: u64 },
    /// Resource use of the workers' process groups, by leader pid.
    Usage { samples: HashMap<i32, Usage> },
    /// The admin service, the config file watch or SIGHUP (issue #5; `supervisor/admin_ops.rs`).
    Admin(Command),
    /// A watched certificate or key file changed (`reload::watch_certificates`).
    CertificatesChanged,
    /// An ACME order's current HTTP-01 challenges for `site` (`acme::spawn_order`): the whole
    /// set for that site, empty when the order is over.
    AcmeChallenges { site: String, tokens: Vec<(String, String)> },
    /// An ACME order for `site` ended: the certificate is stored, or why not.
    AcmeFinished { site: String, result: Result<(), String> },
    /// SIGUSR1: reopen every log file (`reload::on_reopen_signal`).
    ReopenLogs,
}

/// The sending side every helper task holds.
pub(crate) type EventSender = mpsc::UnboundedSender<Event>;

//! [`ControlTx`]: the request path's way to the manager — the sending half of the channel that
//! feeds the control writer task (`DemandStart`, `WorkerUnreachable`, `Activity`, `Stats`, FastCGI
//! `WorkerStderr`).
//!
//! A leaf of the crate's layering, so the queue ([`crate::queue`]) and the shared state
//! ([`crate::state`]) can send to the manager without importing the control module above them.
//! Sending never blocks and never awaits a socket write; [`crate::run`] owns the receiving end.

use bulkhead_proto::ListenerToManager;
use tokio::sync::mpsc;

/// The request path's way to the manager.
pub type ControlTx = mpsc::UnboundedSender<ListenerToManager>;

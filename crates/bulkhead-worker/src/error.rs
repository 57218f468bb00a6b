//! [`WorkerError`]: everything that can stop a worker from serving, with the context an operator
//! needs to fix it (which fd, which variable, which address).
//!
//! Returned by [`serve`](crate::serve) and [`serve_with`](crate::serve_with). Errors of a single
//! connection (a peer that resets, a malformed request) are not here: they end that connection
//! only and are logged at debug level, never returned.

use std::io;

use bulkhead_proto::env::EnvError;
use bulkhead_proto::ChannelError;

/// Why a worker could not start serving, or stopped serving abnormally.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The worker environment (`LISTEN_FDS`, `PORT`, `BULKHEAD_CONTROL_FD`) is missing or invalid.
    #[error("worker environment: {0}")]
    Env(#[from] EnvError),
    /// `BULKHEAD_PROTOCOL` names no protocol this SDK knows.
    #[error("BULKHEAD_PROTOCOL={value:?} is not a protocol (expected \"http\" or \"native\")")]
    BadProtocol { value: String },
    /// An inherited fd is not open, or not a socket we can use.
    #[error("inherited fd {fd} ({role}) is not usable: {source}")]
    InheritedFd { fd: i32, role: &'static str, source: io::Error },
    /// The inherited serving fd is a socket, but not one that is listening.
    #[error("inherited fd {fd} is a socket but not a listening one (was listen() called on it?)")]
    NotListening { fd: i32 },
    /// The inherited serving fd is neither a unix nor a TCP socket.
    #[error("inherited fd {fd} is a socket of family {family}, expected a unix or TCP socket")]
    UnsupportedFamily { fd: i32, family: String },
    /// Binding the socket given by `PORT` (or by the application) failed.
    #[error("cannot listen on {address}: {source}")]
    Bind { address: String, source: io::Error },
    /// Accepting connections failed in a way that will not get better by retrying.
    #[error("accepting connections failed: {0}")]
    Accept(#[source] io::Error),
    /// Talking to the manager on the control channel failed.
    #[error("control channel: {0}")]
    Control(#[from] ChannelError),
}

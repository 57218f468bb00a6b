//! Errors of the listener, one enum per boundary.
//!
//! - [`ListenerError`]: what ends the listener process (returned by [`crate::run`]).
//! - [`QueueError`]: why a pool's [`RequestQueue`](crate::queue::RequestQueue) gave no worker slot;
//!   each maps to a 503 and an HTTPERR reason.
//! - [`DispatchError`]: what went wrong sending a request to a worker. Like pingora's errors, it
//!   knows who caused it ([`ErrorSource`]) and whether the request may be sent again
//!   ([`RetryType`]); the request path uses exactly that to choose between a transparent retry,
//!   a 502 and a 413.
//!
//! Nothing here does I/O or decides policy beyond those two questions. A leaf of the crate's
//! layering: it imports nothing of the listener, so every module may use it.

use bulkhead_proto::{PoolRefusal, WorkerId};

/// Errors that end the listener process.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error("listener control channel: {0}")]
    Control(#[from] bulkhead_proto::ChannelError),
    #[error("the manager closed the control channel before sending the configuration")]
    NoConfiguration,
    #[error("the first control message must be Configure, got {got}")]
    UnexpectedMessage { got: String },
    #[error("configuration from the manager does not parse (it should have been validated): {0}")]
    Config(#[from] bulkhead_config::ConfigErrors),
    #[error("inherited listening socket fd {fd} ({addr}): {source}")]
    Inherit { fd: i32, addr: std::net::SocketAddr, source: std::io::Error },
    #[error("log directory {path}: {source}")]
    LogDir { path: std::path::PathBuf, source: std::io::Error },
}

/// Why a request got no worker slot from its pool's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// `queue_length` requests are already waiting.
    #[error("the pool's queue is full")]
    Full,
    /// The request waited `limits.queue_timeout` without a slot.
    #[error("no worker slot within the queue timeout")]
    Timeout,
    /// The manager said the pool cannot take requests.
    #[error("the pool refused the request: {}", .0.as_str())]
    Refused(PoolRefusal),
}

impl QueueError {
    /// The HTTPERR reason word, as IIS writes it.
    pub fn reason(self) -> &'static str {
        match self {
            QueueError::Full => "QueueFull",
            QueueError::Timeout => "AppPoolTimer",
            QueueError::Refused(r) => r.as_str(),
        }
    }
}

/// Who caused an error on the request path (pingora's `ErrorSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSource {
    /// The client: it went away, sent a malformed or oversized body.
    Client,
    /// The worker: refused the connection, reset it, answered garbage.
    Worker,
    /// The listener itself (a bug or an unsupported configuration).
    Internal,
}

/// Whether a failed request may be sent again (pingora's `RetryType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryType {
    /// Never (the request body is gone, or the client caused it).
    Never,
    /// The request never reached the worker: send it again, even with a body.
    NotSent,
    /// The request reached the worker, which failed before answering: send it again only if it
    /// is replayable (GET/HEAD/OPTIONS without a body), and only once.
    IfReplayable,
}

/// What went wrong sending one request to one worker.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("worker {worker}: connect to {address}: {source}")]
    Connect { worker: WorkerId, address: String, source: std::io::Error },
    #[error("worker {worker}: HTTP/1.1 handshake: {source}")]
    Handshake { worker: WorkerId, source: hyper::Error },
    #[error("worker {worker}: connection failed before the response (request {}): {source}", if *.sent { "sent" } else { "not sent" })]
    BeforeResponse { worker: WorkerId, sent: bool, source: hyper::Error },
    #[error("the client's request body failed: {0}")]
    ClientBody(String),
    #[error("the request body exceeds limits.max_body ({max} bytes)")]
    BodyTooLarge { max: u64 },
    #[error("worker {worker}: native protocol (request {}): {source}", if *.sent { "sent" } else { "not sent" })]
    Native { worker: WorkerId, sent: bool, source: bulkhead_proto::native::conn::StreamError },
    #[error("worker {worker}: FastCGI (request {}): {reason}", if *.sent { "sent" } else { "not sent" })]
    Fastcgi { worker: WorkerId, sent: bool, reason: String },
}

impl DispatchError {
    /// Who caused it.
    pub fn source_of(&self) -> ErrorSource {
        match self {
            DispatchError::Connect { .. }
            | DispatchError::Handshake { .. }
            | DispatchError::BeforeResponse { .. }
            | DispatchError::Native { .. }
            | DispatchError::Fastcgi { .. } => ErrorSource::Worker,
            DispatchError::ClientBody(_) | DispatchError::BodyTooLarge { .. } => ErrorSource::Client,
        }
    }

    /// Whether it may be sent again.
    pub fn retry(&self) -> RetryType {
        match self {
            DispatchError::Connect { .. } | DispatchError::Handshake { .. } => RetryType::NotSent,
            DispatchError::BeforeResponse { sent: false, .. } => RetryType::NotSent,
            DispatchError::BeforeResponse { sent: true, .. } => RetryType::IfReplayable,
            DispatchError::Native { sent: false, .. } => RetryType::NotSent,
            DispatchError::Native { sent: true, .. } => RetryType::IfReplayable,
            DispatchError::Fastcgi { sent: false, .. } => RetryType::NotSent,
            DispatchError::Fastcgi { sent: true, .. } => RetryType::IfReplayable,
            _ => RetryType::Never,
        }
    }

    /// The worker this error is about, when it is the worker's fault.
    pub fn worker(&self) -> Option<WorkerId> {
        match self {
            DispatchError::Connect { worker, .. }
            | DispatchError::Handshake { worker, .. }
            | DispatchError::BeforeResponse { worker, .. }
            | DispatchError::Native { worker, .. }
            | DispatchError::Fastcgi { worker, .. } => Some(*worker),
            _ => None,
        }
    }
}

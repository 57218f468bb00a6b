//! [`WorkerEnv`]: everything a worker needs to know to serve — where its socket is, whether it
//! has a control channel, which protocol to speak — as one explicit value.
//!
//! [`WorkerEnv::from_process_env`] is the one place in Bulkhead's libraries that reads the process
//! environment. That is deliberate: this SDK *is* the process glue of a worker, the code an
//! application's `main` calls, so reading the worker contract (DESIGN §4) is its documented job.
//! The parsing itself is pure ([`WorkerEnv::from_vars`]) and delegated to `bulkhead_proto::env`.
//!
//! Following the systemd convention, a program should drop `LISTEN_FDS`/`LISTEN_PID` before
//! starting children of its own so they do not think the fds are theirs. This library never
//! mutates the environment (that is not thread-safe in a running program); an application that
//! spawns children should remove those variables from the child's `Command` instead.

use std::os::fd::RawFd;

use bulkhead_proto::env::{self as names, ServeSocket};
use bulkhead_proto::Protocol;

use crate::WorkerError;

/// Where the worker serves and how it talks to its manager.
#[derive(Debug)]
pub struct WorkerEnv {
    /// The socket to accept connections on.
    pub listen: Listen,
    /// The control channel to the manager, if it gave one.
    pub control: Option<Control>,
    /// The protocol to speak on accepted connections.
    pub protocol: Protocol,
    /// The pool this worker belongs to (`BULKHEAD_POOL`), for log lines.
    pub pool: Option<String>,
    /// The manager's id for this worker (`BULKHEAD_WORKER_ID`), for log lines.
    pub worker_id: Option<String>,
}

/// The socket a worker accepts connections on.
#[derive(Debug)]
pub enum Listen {
    /// A listening socket inherited at this fd (unix or TCP; detected at start).
    InheritedFd(RawFd),
    /// Bind `127.0.0.1:port` (`socket = "port"`).
    LoopbackPort(u16),
    /// A unix listening socket the application bound itself.
    Unix(std::os::unix::net::UnixListener),
    /// A TCP listening socket the application bound itself.
    Tcp(std::net::TcpListener),
}

/// The control channel to the manager.
#[derive(Debug)]
pub enum Control {
    /// A connected unix stream socket inherited at this fd (`BULKHEAD_CONTROL_FD`).
    InheritedFd(RawFd),
    /// A connected unix stream socket the caller already holds (tests, embedding).
    Stream(std::os::unix::net::UnixStream),
}

impl WorkerEnv {
    /// Reads the worker contract from this process's environment.
    pub fn from_process_env() -> Result<WorkerEnv, WorkerError> {
        Self::from_vars(|name| std::env::var(name).ok(), std::process::id())
    }

    /// Decodes the worker contract from variables looked up by `var`, for a process whose pid is
    /// `own_pid`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>, own_pid: u32) -> Result<WorkerEnv, WorkerError> {
        let socket = names::serve_socket(
            var(names::LISTEN_FDS).as_deref(),
            var(names::LISTEN_PID).as_deref(),
            var(names::PORT).as_deref(),
            own_pid,
        )?;
        let listen = match socket {
            ServeSocket::InheritedFd(fd) => Listen::InheritedFd(fd),
            ServeSocket::LoopbackPort(port) => Listen::LoopbackPort(port),
        };
        let control = names::control_fd(var(names::CONTROL_FD).as_deref())?.map(Control::InheritedFd);
        let protocol = parse_protocol(var(names::PROTOCOL).as_deref())?;
        Ok(WorkerEnv { listen, control, protocol, pool: var(names::POOL), worker_id: var(names::WORKER_ID) })
    }

    /// A worker serving HTTP/1.1 on `listen`, with no control channel (benchmarks, local runs).
    pub fn standalone(listen: Listen) -> WorkerEnv {
        WorkerEnv { listen, control: None, protocol: Protocol::Http, pool: None, worker_id: None }
    }

    /// A short name for log lines: `pool "api" worker w3`, or `worker` when run standalone.
    pub(crate) fn log_name(&self) -> String {
        match (&self.pool, &self.worker_id) {
            (Some(pool), Some(id)) => format!("pool {pool:?} worker {id}"),
            (Some(pool), None) => format!("pool {pool:?} worker"),
            _ => "worker".to_string(),
        }
    }
}

/// Decodes `BULKHEAD_PROTOCOL`; absent means HTTP/1.1.
fn parse_protocol(value: Option<&str>) -> Result<Protocol, WorkerError> {
    match value.map(str::trim) {
        None | Some("") | Some("http") => Ok(Protocol::Http),
        Some("native") => Ok(Protocol::Native),
        Some(other) => Err(WorkerError::BadProtocol { value: other.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)], pid: u32) -> Result<WorkerEnv, WorkerError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        WorkerEnv::from_vars(|name| map.get(name).cloned(), pid)
    }

    #[test]
    fn inherited_socket_with_control_channel() {
        let e =
            env(&[("LISTEN_FDS", "1"), ("LISTEN_PID", "7"), ("BULKHEAD_CONTROL_FD", "4"), ("BULKHEAD_POOL", "api")], 7)
                .unwrap();
        assert!(matches!(e.listen, Listen::InheritedFd(3)));
        assert!(matches!(e.control, Some(Control::InheritedFd(4))));
        assert_eq!(e.protocol, Protocol::Http);
        assert_eq!(e.log_name(), "pool \"api\" worker");
    }

    #[test]
    fn port_without_control() {
        let e = env(&[("PORT", "9000"), ("BULKHEAD_PROTOCOL", "native")], 1).unwrap();
        assert!(matches!(e.listen, Listen::LoopbackPort(9000)));
        assert!(e.control.is_none());
        assert_eq!(e.protocol, Protocol::Native);
    }

    #[test]
    fn errors_name_the_variable() {
        let err = env(&[], 1).unwrap_err().to_string();
        assert!(err.contains("LISTEN_FDS") && err.contains("PORT"), "{err}");
        let err = env(&[("PORT", "1"), ("BULKHEAD_PROTOCOL", "h2")], 1).unwrap_err().to_string();
        assert!(err.contains("BULKHEAD_PROTOCOL=\"h2\""), "{err}");
        let err = env(&[("PORT", "1"), ("BULKHEAD_CONTROL_FD", "x")], 1).unwrap_err().to_string();
        assert!(err.contains("BULKHEAD_CONTROL_FD"), "{err}");
    }
}

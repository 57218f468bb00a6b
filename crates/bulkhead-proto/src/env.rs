//! Names of environment variables and file descriptors shared between processes.
//!
//! Workers follow the systemd socket-activation convention (`LISTEN_FDS`, `LISTEN_PID`, first
//! fd 3), so gunicorn, uvicorn, Node or Go programs that already speak it need nothing of ours.
//! Everything Bulkhead-specific is prefixed `BULKHEAD_`. Parsing here is pure (values are passed
//! in), so it is the caller — a binary — that reads the process environment.

/// First inherited listening fd, as in systemd's `SD_LISTEN_FDS_START`.
pub const LISTEN_FDS_START: i32 = 3;
/// Number of inherited listening fds (always `1` for a Bulkhead worker).
pub const LISTEN_FDS: &str = "LISTEN_FDS";
/// Pid the inherited fds are meant for; a process whose pid differs must ignore them.
pub const LISTEN_PID: &str = "LISTEN_PID";
/// Names for the inherited fds, colon separated (`LISTEN_FDNAMES=bulkhead`).
pub const LISTEN_FDNAMES: &str = "LISTEN_FDNAMES";
/// With `socket = "port"`: the loopback TCP port the worker must listen on.
pub const PORT: &str = "PORT";
/// The fd number of the worker's control channel (a unix stream socket), when it has one.
pub const CONTROL_FD: &str = "BULKHEAD_CONTROL_FD";
/// The protocol the worker must speak on its socket: `http` or `native`.
pub const PROTOCOL: &str = "BULKHEAD_PROTOCOL";
/// The name of the pool the worker belongs to (informational).
pub const POOL: &str = "BULKHEAD_POOL";
/// The manager's id for this worker process (informational, appears in logs).
pub const WORKER_ID: &str = "BULKHEAD_WORKER_ID";
/// The control-channel fd handed to the listener process.
pub const LISTENER_CONTROL_FD: i32 = 3;

/// Where a process finds the socket it must serve on, decoded from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServeSocket {
    /// An inherited listening socket at this fd (`LISTEN_FDS`, usually fd 3).
    InheritedFd(i32),
    /// Bind `127.0.0.1:port` (`PORT`).
    LoopbackPort(u16),
}

/// Why [`serve_socket`] could not find a socket.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    #[error("{LISTEN_FDS}={value:?} is not a positive count of inherited fds")]
    BadListenFds { value: String },
    #[error("{LISTEN_PID}={value:?} names another process (this is pid {pid}); the fds are not ours")]
    NotOurFds { value: String, pid: u32 },
    #[error("{PORT}={value:?} is not a TCP port number")]
    BadPort { value: String },
    #[error("no socket to serve on: neither {LISTEN_FDS} nor {PORT} is set (is this process running under Bulkhead?)")]
    NoSocket,
    #[error("{CONTROL_FD}={value:?} is not a file descriptor number")]
    BadControlFd { value: String },
}

/// Decodes the serving socket from the values of `LISTEN_FDS`, `LISTEN_PID` and `PORT`.
pub fn serve_socket(
    listen_fds: Option<&str>,
    listen_pid: Option<&str>,
    port: Option<&str>,
    own_pid: u32,
) -> Result<ServeSocket, EnvError> {
    if let Some(value) = listen_fds {
        let count: u32 = value.trim().parse().map_err(|_| EnvError::BadListenFds { value: value.into() })?;
        if count == 0 {
            return Err(EnvError::BadListenFds { value: value.into() });
        }
        if let Some(pid) = listen_pid {
            if pid.trim().parse::<u32>().ok() != Some(own_pid) {
                return Err(EnvError::NotOurFds { value: pid.into(), pid: own_pid });
            }
        }
        return Ok(ServeSocket::InheritedFd(LISTEN_FDS_START));
    }
    if let Some(value) = port {
        let port: u16 = value.trim().parse().map_err(|_| EnvError::BadPort { value: value.into() })?;
        return Ok(ServeSocket::LoopbackPort(port));
    }
    Err(EnvError::NoSocket)
}

/// Decodes `BULKHEAD_CONTROL_FD`; `None` when the variable is absent.
pub fn control_fd(value: Option<&str>) -> Result<Option<i32>, EnvError> {
    match value {
        None => Ok(None),
        Some(v) => match v.trim().parse::<i32>() {
            Ok(fd) if fd >= 0 => Ok(Some(fd)),
            _ => Err(EnvError::BadControlFd { value: v.into() }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inherited_fd_for_our_pid() {
        assert_eq!(serve_socket(Some("1"), Some("42"), None, 42), Ok(ServeSocket::InheritedFd(3)));
    }

    #[test]
    fn fds_for_another_pid_are_refused() {
        assert!(matches!(serve_socket(Some("1"), Some("41"), None, 42), Err(EnvError::NotOurFds { .. })));
    }

    #[test]
    fn port_when_no_fds() {
        assert_eq!(serve_socket(None, None, Some("8081"), 1), Ok(ServeSocket::LoopbackPort(8081)));
        assert!(matches!(serve_socket(None, None, Some("http"), 1), Err(EnvError::BadPort { .. })));
        assert_eq!(serve_socket(None, None, None, 1), Err(EnvError::NoSocket));
    }

    #[test]
    fn control_fd_parses() {
        assert_eq!(control_fd(Some("4")), Ok(Some(4)));
        assert_eq!(control_fd(None), Ok(None));
        assert!(control_fd(Some("x")).is_err());
    }
}

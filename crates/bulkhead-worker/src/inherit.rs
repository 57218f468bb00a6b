//! Turns the raw fds a worker inherited (its listening socket at fd 3, its control channel at
//! `BULKHEAD_CONTROL_FD`) into owned std sockets — the only `unsafe` code in this crate.
//!
//! Called by the server at start-up, once per fd. Each fd is first inspected through a borrow
//! (an fd that turns out not to be ours is left open): it must be open and be a socket of the
//! right kind — a *listening* unix or TCP socket, or a unix stream for the control channel. Only
//! then is it owned, at most once per process, so two owners can never close the same fd. Taken
//! fds are marked close-on-exec so an application's own child processes
//! do not inherit them. This module must never guess: a wrong fd is an error naming the fd.

#![allow(unsafe_code)]

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Mutex;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::socket::{getsockname, getsockopt, sockopt, AddressFamily, SockaddrLike, SockaddrStorage};

use crate::WorkerError;

/// An inherited listening socket, unix or TCP.
#[derive(Debug)]
pub(crate) enum InheritedListener {
    Unix(UnixListener),
    Tcp(std::net::TcpListener),
}

/// Fds already turned into owned sockets by this process.
static TAKEN: Mutex<Option<HashSet<RawFd>>> = Mutex::new(None);

/// Takes ownership of the listening socket inherited at `fd`.
pub(crate) fn listener(fd: RawFd) -> Result<InheritedListener, WorkerError> {
    let role = "listening socket";
    let kind = check(fd, role, |borrowed| {
        let listening = getsockopt(&borrowed, sockopt::AcceptConn)?;
        Ok((family(borrowed)?, listening))
    })?;
    let family = match kind {
        (_, false) => return Err(WorkerError::NotListening { fd }),
        (Some(family @ (AddressFamily::Unix | AddressFamily::Inet | AddressFamily::Inet6)), true) => family,
        (other, true) => return Err(WorkerError::UnsupportedFamily { fd, family: format!("{other:?}") }),
    };
    let owned = take(fd, role)?;
    match family {
        AddressFamily::Unix => Ok(InheritedListener::Unix(UnixListener::from(owned))),
        _ => Ok(InheritedListener::Tcp(std::net::TcpListener::from(owned))),
    }
}

/// Takes ownership of the control channel (a connected unix stream socket) inherited at `fd`.
pub(crate) fn control(fd: RawFd) -> Result<UnixStream, WorkerError> {
    let role = "control channel";
    match check(fd, role, family)? {
        Some(AddressFamily::Unix) => Ok(UnixStream::from(take(fd, role)?)),
        other => Err(WorkerError::InheritedFd {
            fd,
            role,
            source: io::Error::new(io::ErrorKind::InvalidInput, format!("socket family {other:?}, expected unix")),
        }),
    }
}

/// Checks that `fd` is open, then inspects it through a borrow, without taking ownership: an fd
/// that turns out not to be ours (e.g. the runtime's own epoll fd took number 3 because nothing
/// was inherited) is left open for its real owner.
fn check<T>(
    fd: RawFd,
    role: &'static str,
    inspect: impl FnOnce(BorrowedFd<'_>) -> io::Result<T>,
) -> Result<T, WorkerError> {
    let err = |source: io::Error| WorkerError::InheritedFd { fd, role, source };
    if fd < 0 {
        return Err(err(io::Error::from_raw_os_error(libc::EBADF)));
    }
    // SAFETY: F_GETFD only reads the descriptor flags of an integer fd; it touches no memory and
    // fails with EBADF when `fd` is not open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(err(io::Error::last_os_error()));
    }
    // SAFETY: `fd` is open (checked just above) and stays open while `inspect` runs: the borrow
    // does not outlive this call and nothing in between closes fds.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    inspect(borrowed).map_err(err)
}

/// Owns a checked `fd` — at most once per process — and marks it close-on-exec.
fn take(fd: RawFd, role: &'static str) -> Result<OwnedFd, WorkerError> {
    let err = |source: io::Error| WorkerError::InheritedFd { fd, role, source };
    {
        let mut taken = TAKEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !taken.get_or_insert_with(HashSet::new).insert(fd) {
            return Err(err(io::Error::new(io::ErrorKind::AlreadyExists, "already taken by this process")));
        }
    }
    // SAFETY: `fd` is an open socket of the expected kind (checked by the caller) that the parent
    // handed to this process for us; the TAKEN set guarantees no other OwnedFd in this process was
    // made from it, so this is the single owner that will close it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    fcntl(&owned, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(|errno| err(errno.into()))?;
    Ok(owned)
}

/// The address family of a socket fd; `ENOTSOCK` when it is not a socket.
fn family(fd: BorrowedFd<'_>) -> io::Result<Option<AddressFamily>> {
    let addr: SockaddrStorage = getsockname(fd.as_raw_fd())?;
    Ok(addr.family())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::IntoRawFd;

    /// Moves `fd` to a number of its own at or above `base`: fds taken here stay in TAKEN after
    /// they close, and tests run in parallel, so each test uses its own range of numbers.
    fn renumber(fd: impl IntoRawFd, base: RawFd) -> RawFd {
        let fd = fd.into_raw_fd();
        // SAFETY: plain fcntl/close on fds this test owns.
        unsafe {
            let moved = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, base);
            assert!(moved >= base);
            libc::close(fd);
            moved
        }
    }

    #[test]
    fn unix_listener_round_trips() {
        let dir = std::env::temp_dir().join(format!("bulkhead-worker-inherit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("l.sock");
        let _ = std::fs::remove_file(&path);
        let fd = renumber(UnixListener::bind(&path).unwrap(), 600);
        assert!(matches!(listener(fd), Ok(InheritedListener::Unix(_))));
        // The same fd cannot be owned twice.
        assert!(matches!(listener(fd), Err(WorkerError::InheritedFd { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tcp_listener_is_detected() {
        let fd = renumber(std::net::TcpListener::bind("127.0.0.1:0").unwrap(), 620);
        assert!(matches!(listener(fd), Ok(InheritedListener::Tcp(_))));
    }

    #[test]
    fn connected_stream_is_not_a_listener() {
        let (a, _b) = UnixStream::pair().unwrap();
        assert!(matches!(listener(renumber(a, 640)), Err(WorkerError::NotListening { .. })));
    }

    #[test]
    fn control_channel_from_socketpair() {
        let (a, _b) = UnixStream::pair().unwrap();
        assert!(control(renumber(a, 660)).is_ok());
    }

    #[test]
    fn closed_fd_and_regular_file_are_refused() {
        let err = listener(1_000_000).unwrap_err().to_string();
        assert!(err.contains("fd 1000000"), "{err}");
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let fd = renumber(file, 680);
        let err = control(fd).unwrap_err().to_string();
        assert!(err.contains("control channel"), "{err}");
        // Not ours: left open for its owner.
        // SAFETY: the fd is still open and owned by this test.
        assert!(unsafe { libc::close(fd) } == 0);
    }
}

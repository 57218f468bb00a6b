//! Listening sockets inherited from the manager: fd number → tokio `TcpListener`.
//!
//! The only module of the listener with `unsafe` (taking ownership of an inherited fd). The
//! manager binds every public socket and passes them at the fd numbers it names in `Configure`
//! (DESIGN §1: the manager holds the sockets, so a restarted listener finds the ports still open).
//! Called by [`crate::control`] when a configuration names a socket the listener does not hold yet.
//! A leaf of the crate's layering: imports nothing of the listener.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::FromRawFd;

/// Takes ownership of the listening TCP socket at `fd` and registers it with tokio. Must be
/// called inside a tokio runtime, at most once per fd.
pub fn tcp_listener(fd: i32) -> io::Result<tokio::net::TcpListener> {
    if fd < 3 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "fds 0-2 are stdio, not listening sockets"));
    }
    // SAFETY: the manager passed this fd to this process as an open listening socket meant for
    // us alone (the `sockets` list of `Configure`), and the caller takes each fd once, so nothing
    // else in this process owns or closes it.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    listener.set_nonblocking(true)?;
    listener.local_addr()?;
    tokio::net::TcpListener::from_std(listener)
}

/// Takes ownership of the inherited unix stream socket at `fd` (the manager's fd channel, named
/// in `AddSockets`), as a blocking std socket. Call at most once per fd.
pub fn unix_stream(fd: i32) -> io::Result<std::os::unix::net::UnixStream> {
    if fd < 3 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "fds 0-2 are stdio, not the fd channel"));
    }
    // SAFETY: the manager started this process with its fd channel at this number (it names it
    // in every `AddSockets`); the caller adopts it once and keeps it, so nothing else owns it.
    let stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
    stream.set_nonblocking(false)?;
    Ok(stream)
}

//! Passing open file descriptors between processes (`SCM_RIGHTS` on a unix stream socket).
//!
//! The manager binds a listening socket a new config needs while the listener keeps running,
//! then hands the fd over a dedicated socketpair (the listener's *fd channel*, inherited at the
//! fd named in `ManagerToListener::AddSockets`), so the listener is never restarted for a config
//! change. One `sendmsg` carries one fd and one payload byte, so each `recvmsg` returns exactly
//! one fd and fds can never be split or merged by the stream.
//!
//! Ordering: the sender writes the fds *before* it queues the control message that announces
//! them, so the receiver finds them already buffered. Neither side ever reads the fd channel
//! without ancillary space (that would silently close the fds). The only `unsafe` of this crate
//! is here: nix hands received fds back as raw numbers, which must be adopted as `OwnedFd`.
#![allow(unsafe_code)]

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// Sends one fd with a one-byte payload. Blocks only if the socket's buffer is full, which a
/// handful of one-byte messages never makes it.
pub fn send_fd(channel: &impl AsFd, fd: &impl AsFd) -> io::Result<()> {
    let raw = [fd.as_fd().as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let iov = [IoSlice::new(b"F")];
    let sent = sendmsg::<()>(channel.as_fd().as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)
        .map_err(io::Error::from)?;
    if sent != 1 {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "fd channel: payload byte not sent"));
    }
    Ok(())
}

/// Receives one fd sent by [`send_fd`]. `channel` must be a blocking socket; `timeout` bounds
/// the wait (the sender wrote the fd before announcing it, so it normally returns at once).
pub fn recv_fd(channel: &std::os::unix::net::UnixStream, timeout: Duration) -> io::Result<OwnedFd> {
    channel.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(channel.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(io::Error::from)?;
    if msg.bytes == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "fd channel closed by the peer"));
    }
    let mut received: Vec<OwnedFd> = Vec::new();
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: the kernel just installed this fd in our table for this message;
                // nothing else in the process knows its number, so we are its only owner.
                received.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    let mut it = received.into_iter();
    let first = it.next().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "fd channel: no fd attached"))?;
    // More than one fd in one message breaks the protocol; the extras are closed on drop.
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn an_fd_crosses_a_socketpair_and_still_works() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (mut x, y) = std::os::unix::net::UnixStream::pair().unwrap();
        send_fd(&a, &y).unwrap();
        send_fd(&a, &y).unwrap();
        drop(y);
        let got = recv_fd(&b, Duration::from_secs(5)).unwrap();
        let _second = recv_fd(&b, Duration::from_secs(5)).unwrap();
        let mut y2 = std::os::unix::net::UnixStream::from(got);
        y2.write_all(b"hi").unwrap();
        let mut buf = [0u8; 2];
        x.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");
    }

    #[test]
    fn nothing_sent_times_out() {
        let (_a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(recv_fd(&b, Duration::from_millis(20)).is_err());
    }
}

//! The worker's listening socket, unix or TCP, as one type the accept loop can use, and the
//! accepted connection ([`Conn`]) handed to the protocol handler.
//!
//! Called by the server at start-up ([`Listener::open`]) and in its accept loop. It opens or
//! adopts exactly the socket the [`Listen`] names and never unlinks a socket path: the path
//! belongs to whoever created it (the manager, or the application that bound it).

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::env::Listen;
use crate::inherit::{self, InheritedListener};
use crate::WorkerError;

/// A listening socket registered with the tokio runtime.
#[derive(Debug)]
pub(crate) enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// One accepted connection; reads and writes go straight to the socket inside.
#[derive(Debug)]
pub(crate) enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Listener {
    /// Adopts or binds the socket `listen` names; needs a tokio runtime.
    pub(crate) fn open(listen: Listen) -> Result<Listener, WorkerError> {
        match listen {
            Listen::InheritedFd(fd) => {
                let adopt = |source| WorkerError::InheritedFd { fd, role: "listening socket", source };
                match inherit::listener(fd)? {
                    InheritedListener::Unix(l) => Self::unix(l).map_err(adopt),
                    InheritedListener::Tcp(l) => Self::tcp(l).map_err(adopt),
                }
            }
            Listen::LoopbackPort(port) => {
                let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                let bind_err = |source| WorkerError::Bind { address: address.to_string(), source };
                let listener = std::net::TcpListener::bind(address).map_err(bind_err)?;
                Self::tcp(listener).map_err(bind_err)
            }
            Listen::Unix(l) => {
                Self::unix(l).map_err(|source| WorkerError::Bind { address: "unix socket".into(), source })
            }
            Listen::Tcp(l) => Self::tcp(l).map_err(|source| WorkerError::Bind { address: "tcp socket".into(), source }),
        }
    }

    fn unix(listener: std::os::unix::net::UnixListener) -> io::Result<Listener> {
        listener.set_nonblocking(true)?;
        Ok(Listener::Unix(UnixListener::from_std(listener)?))
    }

    fn tcp(listener: std::net::TcpListener) -> io::Result<Listener> {
        listener.set_nonblocking(true)?;
        Ok(Listener::Tcp(TcpListener::from_std(listener)?))
    }

    /// Where this socket listens, for log lines.
    pub(crate) fn describe(&self) -> String {
        match self {
            Listener::Unix(l) => {
                match l.local_addr().ok().and_then(|a| a.as_pathname().map(|p| p.display().to_string())) {
                    Some(path) => format!("unix socket {path}"),
                    None => "an unnamed unix socket".to_string(),
                }
            }
            Listener::Tcp(l) => match l.local_addr() {
                Ok(address) => format!("tcp {address}"),
                Err(_) => "a tcp socket".to_string(),
            },
        }
    }

    /// Accepts the next connection.
    pub(crate) async fn accept(&self) -> io::Result<Conn> {
        match self {
            Listener::Unix(l) => Ok(Conn::Unix(l.accept().await?.0)),
            Listener::Tcp(l) => {
                let (stream, _) = l.accept().await?;
                // Responses are written whole by hyper; don't let Nagle hold back their tails.
                let _ = stream.set_nodelay(true);
                Ok(Conn::Tcp(stream))
            }
        }
    }
}

/// What to do about an accept error: `Ok` = keep accepting (after a pause when the process is
/// out of fds or memory), `Err` = the socket is unusable.
pub(crate) async fn recover_from_accept_error(error: io::Error, name: &str) -> Result<(), WorkerError> {
    match error.raw_os_error() {
        Some(libc::ECONNABORTED | libc::EINTR | libc::EAGAIN | libc::EPROTO | libc::EPERM | libc::ECONNRESET) => Ok(()),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
            tracing::warn!("{name}: cannot accept a connection ({error}); pausing accepts for 100ms");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            Ok(())
        }
        _ => Err(WorkerError::Accept(error)),
    }
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Unix(s) => s.is_write_vectored(),
            Conn::Tcp(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Unix(s) => Pin::new(s).poll_flush(cx),
            Conn::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

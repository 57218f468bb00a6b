//! HTTP/1.1 to a worker over its unix socket (or loopback TCP port), with keep-alive: the
//! [`Transport`] for `protocol = "http"`.
//!
//! Each worker keeps a stack of idle connections (at most its concurrency). A request takes an
//! idle one — checking it is still open — or connects a new one; the connection is lent to the
//! response body ([`Http1Body`]), which puts it back on the stack itself the moment it has been
//! read to the end, so a half-read connection is never reused and nobody above the transport
//! handles connections. A connection the worker closed while idle gives the request back unsent
//! and the next connection is tried; only a failure on a fresh connection is the worker's
//! fault. Bodies stream both ways (hyper's client connection). Uses only [`crate::body`] and
//! [`crate::error`]; reached only through [`crate::dispatch::Worker`].
//!
//! **No task per connection.** hyper's client connection is a future that does the socket I/O;
//! the usual way is to spawn it, and then every request crosses tasks twice (the request into
//! the connection's task through a channel, the response head back through a oneshot), each a
//! wake-up and a trip through the scheduler. Here the connection future travels with the
//! connection ([`Conn`]) and is polled by whoever uses it: the request's own task polls it
//! while it waits for the connection to be ready and for the response head, and the response
//! body ([`Http1Body`]) polls it before each frame, so the worker's bytes are read on the task
//! that writes them to the client. An idle connection is polled by nobody: a worker that closed
//! it is noticed when it is next taken (the connection future ends, or hyper gives the request
//! back unsent), and the next one is tried, as before.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bulkhead_proto::{WorkerAddress, WorkerId};
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{Builder, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Failure, Transport};
use crate::body::{BoxError, RequestBody};
use crate::error::DispatchError;

/// Stale idle connections tried before connecting afresh.
const MAX_STALE: usize = 4;

/// The HTTP/1.1 transport of one worker.
pub struct Http1Transport {
    worker: WorkerId,
    address: WorkerAddress,
    idle: Arc<IdleConns>,
}

/// One HTTP/1.1 connection to a worker: the handle requests are sent on, and the future that
/// does its I/O, polled by the task using it ([`Conn::drive`]).
struct Conn {
    sender: SendRequest<RequestBody>,
    /// `None` once the I/O future has ended (the worker closed the connection, or it failed).
    /// It is dropped then, as a spawned one would be: that fails every request still queued on
    /// it (hyper hands each back unsent), instead of leaving it waiting for ever.
    io: Option<Pin<Box<ConnIo>>>,
}

/// The I/O future of a [`Conn`].
type ConnIo = Connection<TokioIo<Stream>, RequestBody>;

impl Conn {
    /// Does the connection's pending I/O; `false` once it has ended.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(io) = &mut self.io else { return false };
        match io.as_mut().poll(cx) {
            Poll::Pending => true,
            Poll::Ready(done) => {
                if let Err(e) = done {
                    tracing::debug!("worker connection ended: {e}");
                }
                self.io = None;
                false
            }
        }
    }

    fn ended(&self) -> bool {
        self.io.is_none() || self.sender.is_closed()
    }

    /// Ready for a request; `false` if the connection ended or cannot take one.
    async fn ready(&mut self) -> bool {
        std::future::poll_fn(|cx| {
            let open = self.drive(cx);
            match self.sender.poll_ready(cx) {
                Poll::Pending if open => Poll::Pending,
                Poll::Pending => Poll::Ready(false),
                Poll::Ready(r) => Poll::Ready(r.is_ok()),
            }
        })
        .await
    }
}

/// The worker's idle connections, shared with the bodies that hold lent ones.
struct IdleConns {
    conns: Mutex<Vec<Conn>>,
    max: usize,
    closed: AtomicBool,
}

impl IdleConns {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts a connection back on the idle stack (unless the worker is draining, the connection
    /// ended, or the stack is full).
    fn give_back(&self, conn: Conn) {
        if self.closed.load(Ordering::Relaxed) || conn.ended() {
            return;
        }
        let mut idle = self.lock();
        if idle.len() < self.max {
            idle.push(conn);
        }
    }
}

/// A worker's HTTP/1.1 response body; the connection it came on goes back to the idle stack when
/// the body has been read to the end (and is closed if the body is dropped before that).
pub struct Http1Body {
    incoming: Incoming,
    lent: Option<(Conn, Arc<IdleConns>)>,
}

impl Http1Body {
    fn give_back(&mut self) {
        if let Some((conn, idle)) = self.lent.take() {
            idle.give_back(conn);
        }
    }
}

impl Body for Http1Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        // The connection's reads feed `incoming`: do them first, on this task.
        if let Some((conn, _)) = &mut self.lent {
            conn.drive(cx);
        }
        let polled = Pin::new(&mut self.incoming).poll_frame(cx).map_err(BoxError::from);
        if let Poll::Ready(None) = polled {
            self.give_back();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

impl Drop for Http1Body {
    fn drop(&mut self) {
        // A body hyper never had to poll (empty, or its length already reached) is complete too.
        if self.incoming.is_end_stream() {
            self.give_back();
        }
    }
}

impl Http1Transport {
    pub fn new(worker: WorkerId, address: WorkerAddress, concurrency: u32) -> Self {
        let idle = IdleConns {
            conns: Mutex::new(Vec::new()),
            max: (concurrency as usize).clamp(1, 1024),
            closed: AtomicBool::new(false),
        };
        Http1Transport { worker, address, idle: Arc::new(idle) }
    }
}

impl Transport for Http1Transport {
    type Body = Http1Body;

    fn close_idle(&self) {
        self.idle.closed.store(true, Ordering::Relaxed);
        self.idle.lock().clear();
    }

    async fn send(&self, mut request: Request<RequestBody>) -> Result<Response<Http1Body>, Failure> {
        let mut stale = 0;
        loop {
            let reused = self.pop_idle();
            let fresh = reused.is_none();
            let mut conn = match reused {
                Some(c) => c,
                None => match self.connect().await {
                    Ok(c) => c,
                    Err(error) => return Err(Failure { error, request: Some(request) }),
                },
            };
            if !fresh && !conn.ready().await {
                stale += 1;
                if stale > MAX_STALE {
                    self.idle.lock().clear();
                }
                continue;
            }
            let mut answer = std::pin::pin!(conn.sender.try_send_request(request));
            let answered = std::future::poll_fn(|cx| {
                conn.drive(cx);
                answer.as_mut().poll(cx)
            })
            .await;
            match answered {
                Ok(response) => {
                    let lent = Some((conn, self.idle.clone()));
                    return Ok(response.map(|incoming| Http1Body { incoming, lent }));
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if !fresh && stale < MAX_STALE => {
                        stale += 1;
                        request = unsent;
                    }
                    unsent => {
                        let sent = unsent.is_none();
                        let error = DispatchError::BeforeResponse { worker: self.worker, sent, source: e.into_error() };
                        return Err(Failure { error, request: unsent });
                    }
                },
            }
        }
    }
}

impl Http1Transport {
    fn pop_idle(&self) -> Option<Conn> {
        let mut idle = self.idle.lock();
        while let Some(c) = idle.pop() {
            if !c.ended() {
                return Some(c);
            }
        }
        None
    }

    async fn connect(&self) -> Result<Conn, DispatchError> {
        let connect_error = |source| DispatchError::Connect { worker: self.worker, address: self.describe(), source };
        let stream = match &self.address {
            WorkerAddress::Unix(path) => {
                Stream::Unix(tokio::net::UnixStream::connect(path).await.map_err(connect_error)?)
            }
            WorkerAddress::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr).await.map_err(connect_error)?;
                let _ = stream.set_nodelay(true);
                Stream::Tcp(stream)
            }
        };
        let (sender, io) = Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| DispatchError::Handshake { worker: self.worker, source })?;
        Ok(Conn { sender, io: Some(Box::pin(io)) })
    }

    fn describe(&self) -> String {
        match &self.address {
            WorkerAddress::Unix(p) => p.display().to_string(),
            WorkerAddress::Tcp(a) => a.to_string(),
        }
    }
}

/// A worker's socket: unix (the default) or loopback TCP (`socket = "port"`).
enum Stream {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

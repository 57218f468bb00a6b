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

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bulkhead_proto::{WorkerAddress, WorkerId};
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{Builder, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

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

/// The worker's idle connections, shared with the bodies that hold lent ones.
struct IdleConns {
    conns: Mutex<Vec<SendRequest<RequestBody>>>,
    max: usize,
    closed: AtomicBool,
}

impl IdleConns {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<SendRequest<RequestBody>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts a connection back on the idle stack (unless the worker is draining, the connection
    /// closed, or the stack is full).
    fn give_back(&self, sender: SendRequest<RequestBody>) {
        if self.closed.load(Ordering::Relaxed) || sender.is_closed() {
            return;
        }
        let mut idle = self.lock();
        if idle.len() < self.max {
            idle.push(sender);
        }
    }
}

/// A worker's HTTP/1.1 response body; the connection it came on goes back to the idle stack when
/// the body has been read to the end (and is closed if the body is dropped before that).
pub struct Http1Body {
    incoming: Incoming,
    lent: Option<(SendRequest<RequestBody>, Arc<IdleConns>)>,
}

impl Http1Body {
    fn give_back(&mut self) {
        if let Some((sender, idle)) = self.lent.take() {
            idle.give_back(sender);
        }
    }
}

impl Body for Http1Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
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
            let mut sender = match reused {
                Some(s) => s,
                None => match self.connect().await {
                    Ok(s) => s,
                    Err(error) => return Err(Failure { error, request: Some(request) }),
                },
            };
            if !fresh && sender.ready().await.is_err() {
                stale += 1;
                if stale > MAX_STALE {
                    self.idle.lock().clear();
                }
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let lent = Some((sender, self.idle.clone()));
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
    fn pop_idle(&self) -> Option<SendRequest<RequestBody>> {
        let mut idle = self.idle.lock();
        while let Some(s) = idle.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    async fn connect(&self) -> Result<SendRequest<RequestBody>, DispatchError> {
        let connect_error = |source| DispatchError::Connect { worker: self.worker, address: self.describe(), source };
        match &self.address {
            WorkerAddress::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path).await.map_err(connect_error)?;
                self.handshake(stream).await
            }
            WorkerAddress::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr).await.map_err(connect_error)?;
                let _ = stream.set_nodelay(true);
                self.handshake(stream).await
            }
        }
    }

    async fn handshake<S>(&self, stream: S) -> Result<SendRequest<RequestBody>, DispatchError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| DispatchError::Handshake { worker: self.worker, source })?;
        let worker = self.worker;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("worker {worker}: connection ended: {e}");
            }
        });
        Ok(sender)
    }

    fn describe(&self) -> String {
        match &self.address {
            WorkerAddress::Unix(p) => p.display().to_string(),
            WorkerAddress::Tcp(a) => a.to_string(),
        }
    }
}

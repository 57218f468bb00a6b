//! HTTP/1.1 to a worker over its unix socket (or loopback TCP port), with keep-alive.
//!
//! Each worker keeps a stack of idle connections (at most its concurrency). A request takes an
//! idle one — checking it is still open — or connects a new one; the connection is lent to the
//! exchange and comes back ([`Lent::give_back`]) only when the response body was read to the end,
//! so a half-read connection is never reused. A connection the worker closed while idle gives
//! the request back unsent and the next connection is tried; only a failure on a fresh connection
//! is the worker's fault. Bodies stream both ways (hyper's client connection).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bulkhead_proto::{WorkerAddress, WorkerId};
use http::Request;
use hyper::client::conn::http1::{Builder, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{ConnReturn, Exchange, Failure};
use crate::body::RequestBody;
use crate::error::DispatchError;

/// Stale idle connections tried before connecting afresh.
const MAX_STALE: usize = 4;

/// The HTTP/1.1 transport of one worker.
pub struct Http1Transport {
    worker: WorkerId,
    address: WorkerAddress,
    idle: Mutex<Vec<SendRequest<RequestBody>>>,
    max_idle: usize,
    closed: AtomicBool,
}

/// A connection lent to one exchange.
pub struct Lent {
    sender: SendRequest<RequestBody>,
    transport: Arc<Http1Transport>,
}

impl Lent {
    /// Puts the connection back on the idle stack (unless the worker is draining or the stack is
    /// full).
    pub fn give_back(self) {
        let t = &self.transport;
        if t.closed.load(Ordering::Relaxed) || self.sender.is_closed() {
            return;
        }
        let mut idle = t.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < t.max_idle {
            idle.push(self.sender);
        }
    }
}

impl Http1Transport {
    pub fn new(worker: WorkerId, address: WorkerAddress, concurrency: u32) -> Arc<Self> {
        Arc::new(Http1Transport {
            worker,
            address,
            idle: Mutex::new(Vec::new()),
            max_idle: (concurrency as usize).clamp(1, 1024),
            closed: AtomicBool::new(false),
        })
    }

    pub fn close_idle(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    pub async fn send(self: &Arc<Self>, mut request: Request<RequestBody>) -> Result<Exchange, Failure> {
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
                    self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
                }
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let conn = ConnReturn::Http1(Lent { sender, transport: self.clone() });
                    return Ok(Exchange { response: response.map(super::WorkerBody::Http1), conn: Some(conn) });
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

    fn pop_idle(&self) -> Option<SendRequest<RequestBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
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

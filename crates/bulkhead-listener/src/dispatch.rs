//! Dispatch: sending one request to one worker and getting its response back.
//!
//! A [`Worker`] is the listener's handle on one worker process: its id, its concurrency and its
//! transport. Every transport implements the one [`Transport`] trait — send a request, get a
//! response head and a streaming body, close idle connections — and each owns its connections:
//! a transport that pools them ([`http1`]) puts a connection back in its own pool when the
//! response body it lent it to has been read to the end, so nothing above dispatch ever holds or
//! returns a transport connection. The transports: HTTP/1.1 over the worker's unix socket or
//! loopback port ([`http1`]), the native multiplexed protocol of DESIGN §4 ([`native`]), and
//! FastCGI for `kind = "fastcgi"` pools ([`fastcgi`], which reads the CGI variables it needs
//! from the request's [`fastcgi::CgiFacts`] extension).
//! The queue and the request path never know which transport a worker speaks.
//!
//! Dispatch never retries and never decides status codes: it reports a [`DispatchError`] that
//! says who failed and whether the request went out, and gives the request back when it did not
//! (the request path in [`crate::request`] decides). Called with a queue slot already held.
//! Layering: uses only [`crate::body`], [`crate::error`] and the leaf [`crate::to_manager`] (FastCGI
//! stderr lines go to the manager) below it.

pub mod fastcgi;
pub mod http1;
pub mod native;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bulkhead_proto::{WorkerAddress, WorkerId, WorkerInfo};
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};

use crate::body::{BoxError, RequestBody};
use crate::error::DispatchError;

/// How requests reach a worker: one implementation per protocol.
pub trait Transport: Send + Sync {
    /// The response body; it gives the transport's connection back (if the transport pools
    /// them) once read to the end, and cancels the exchange when dropped early.
    type Body: Body<Data = Bytes, Error = BoxError> + Send + Unpin;

    /// Sends a request and waits for the response head.
    fn send(&self, request: Request<RequestBody>)
        -> impl Future<Output = Result<Response<Self::Body>, Failure>> + Send;

    /// Closes idle connections and opens no new ones (the worker is draining or gone).
    fn close_idle(&self);
}

/// The listener's handle on one worker process.
pub struct Worker {
    pub id: WorkerId,
    pub pid: u32,
    pub concurrency: u32,
    /// A server Bulkhead does not run (a `fastcgi` pool's `connect`): failing to reach it never
    /// takes it out of routing (nobody would bring it back); the request gets 502.
    pub external: bool,
    transport: AnyTransport,
}

/// The worker's transport, chosen by its protocol (an enum, not a `Box<dyn>`: no allocation
/// per request for the future or the body).
enum AnyTransport {
    Http1(http1::Http1Transport),
    Native(native::NativeTransport),
    Fastcgi(fastcgi::FastcgiTransport),
}

/// A worker's response body, whichever transport carries it.
pub enum WorkerBody {
    Http1(http1::Http1Body),
    Native(native::NativeBody),
    Fastcgi(fastcgi::FastcgiBody),
}

/// A failed exchange: the error, and the request when it was never sent.
pub struct Failure {
    pub error: DispatchError,
    pub request: Option<Request<RequestBody>>,
}

impl Worker {
    /// `share`: what the FastCGI workers of the pool share (unused by other protocols).
    pub fn new(info: &WorkerInfo, share: &Arc<fastcgi::PoolShare>) -> Arc<Worker> {
        let transport = match info.protocol {
            bulkhead_proto::Protocol::Http => {
                AnyTransport::Http1(http1::Http1Transport::new(info.worker, info.address.clone(), info.concurrency))
            }
            bulkhead_proto::Protocol::Native => {
                AnyTransport::Native(native::NativeTransport::new(info.worker, info.address.clone()))
            }
            bulkhead_proto::Protocol::Fastcgi => AnyTransport::Fastcgi(fastcgi::FastcgiTransport::new(
                info.worker,
                info.address.clone(),
                share,
                info.concurrency <= 1,
            )),
        };
        Arc::new(Worker {
            id: info.worker,
            pid: info.pid,
            concurrency: info.concurrency.max(1),
            external: false,
            transport,
        })
    }

    /// The one worker of a pool whose FastCGI server Bulkhead does not run (`connect`).
    /// `share`: what the pool's FastCGI workers share (here only the way to the pool's log: a
    /// server Bulkhead does not run keeps no connection, see [`fastcgi`]).
    pub fn external(address: WorkerAddress, concurrency: u32, share: &Arc<fastcgi::PoolShare>) -> Worker {
        let transport =
            AnyTransport::Fastcgi(fastcgi::FastcgiTransport::new(WorkerId::EXTERNAL, address, share, false));
        Worker { id: WorkerId::EXTERNAL, pid: 0, concurrency: concurrency.max(1), external: true, transport }
    }

    /// Sends a request and waits for the response head.
    pub async fn send(&self, request: Request<RequestBody>) -> Result<Response<WorkerBody>, Failure> {
        match &self.transport {
            AnyTransport::Http1(t) => t.send(request).await.map(|r| r.map(WorkerBody::Http1)),
            AnyTransport::Native(t) => t.send(request).await.map(|r| r.map(WorkerBody::Native)),
            AnyTransport::Fastcgi(t) => t.send(request).await.map(|r| r.map(WorkerBody::Fastcgi)),
        }
    }

    /// Closes idle connections and keeps no new ones (draining, gone).
    pub fn close_idle(&self) {
        match &self.transport {
            AnyTransport::Http1(t) => t.close_idle(),
            AnyTransport::Native(t) => t.close_idle(),
            AnyTransport::Fastcgi(t) => t.close_idle(),
        }
    }
}

impl Body for WorkerBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            WorkerBody::Http1(b) => Pin::new(b).poll_frame(cx),
            WorkerBody::Native(b) => Pin::new(b).poll_frame(cx),
            WorkerBody::Fastcgi(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            WorkerBody::Http1(b) => b.is_end_stream(),
            WorkerBody::Native(b) => b.is_end_stream(),
            WorkerBody::Fastcgi(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            WorkerBody::Http1(b) => b.size_hint(),
            WorkerBody::Native(b) => b.size_hint(),
            WorkerBody::Fastcgi(b) => b.size_hint(),
        }
    }
}

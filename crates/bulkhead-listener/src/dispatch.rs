//! Dispatch: sending one request to one worker and getting its response head back.
//!
//! A [`Worker`] is the listener's handle on one worker process: its id, its concurrency and its
//! transport. The transport is chosen by the worker's protocol: HTTP/1.1 over its unix socket or
//! loopback port ([`http1`]), or the native multiplexed protocol of DESIGN §4 ([`native`]); the
//! queue and routing never know which.
//!
//! Dispatch never retries and never decides status codes: it reports a [`DispatchError`] that
//! says who failed and whether the request went out, and gives the request back when it did not
//! (the request path in [`crate::request`] decides). Called with a [`Slot`] already held.

pub mod http1;
pub mod native;

use std::sync::Arc;

use std::pin::Pin;
use std::task::{Context, Poll};

use bulkhead_proto::native::conn::RecvStream;
use bulkhead_proto::{WorkerId, WorkerInfo};
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;

use crate::body::{BoxError, RequestBody};
use crate::error::DispatchError;
use crate::queue::Slot;

/// The listener's handle on one worker process.
pub struct Worker {
    pub id: WorkerId,
    pub pid: u32,
    pub concurrency: u32,
    transport: Transport,
}

/// How requests reach a worker.
enum Transport {
    Http1(Arc<http1::Http1Transport>),
    Native(Arc<native::NativeTransport>),
}

/// A response head from a worker, and the connection to give back once its body is read (none
/// for native streams, which share their connection).
pub struct Exchange {
    pub response: Response<WorkerBody>,
    pub conn: Option<ConnReturn>,
}

/// A worker's response body, whichever protocol carries it.
pub enum WorkerBody {
    Http1(Incoming),
    /// Credit is granted back to the worker as this is read; dropping it cancels the stream.
    Native(RecvStream),
    /// No body (a response the listener made in the worker's place).
    Empty,
}

impl http_body::Body for WorkerBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            WorkerBody::Http1(incoming) => Pin::new(incoming).poll_frame(cx).map_err(BoxError::from),
            WorkerBody::Native(stream) => {
                stream.poll_data(cx).map(|chunk| chunk.map(|r| r.map(Frame::data).map_err(BoxError::from)))
            }
            WorkerBody::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            WorkerBody::Http1(incoming) => incoming.is_end_stream(),
            WorkerBody::Native(stream) => stream.is_end(),
            WorkerBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            WorkerBody::Http1(incoming) => incoming.size_hint(),
            WorkerBody::Native(_) => SizeHint::default(),
            WorkerBody::Empty => SizeHint::with_exact(0),
        }
    }
}

/// A transport connection lent to one exchange.
pub enum ConnReturn {
    Http1(http1::Lent),
}

/// A failed exchange: the error, and the request when it was never sent.
pub struct Failure {
    pub error: DispatchError,
    pub request: Option<Request<RequestBody>>,
}

/// The worker slot and connection a streaming response holds until its body ends.
pub struct Lease {
    pub slot: Slot,
    pub conn: Option<ConnReturn>,
}

impl Lease {
    /// Gives the connection back for reuse when the exchange `complete`d; the slot is released
    /// either way.
    pub fn finish(mut self, complete: bool) {
        if let Some(conn) = self.conn.take() {
            match conn {
                ConnReturn::Http1(lent) if complete => lent.give_back(),
                ConnReturn::Http1(_) => {}
            }
        }
    }
}

impl Worker {
    pub fn new(info: &WorkerInfo) -> Arc<Worker> {
        let transport = match info.protocol {
            bulkhead_proto::Protocol::Http => {
                Transport::Http1(http1::Http1Transport::new(info.worker, info.address.clone(), info.concurrency))
            }
            bulkhead_proto::Protocol::Native => {
                Transport::Native(native::NativeTransport::new(info.worker, info.address.clone()))
            }
        };
        Arc::new(Worker { id: info.worker, pid: info.pid, concurrency: info.concurrency.max(1), transport })
    }

    /// Sends a request and waits for the response head.
    pub async fn send(&self, request: Request<RequestBody>) -> Result<Exchange, Failure> {
        match &self.transport {
            Transport::Http1(t) => t.send(request).await,
            Transport::Native(t) => t.send(request).await,
        }
    }

    /// Closes idle connections and keeps no new ones (draining, gone).
    pub fn close_idle(&self) {
        match &self.transport {
            Transport::Http1(t) => t.close_idle(),
            Transport::Native(t) => t.close_idle(),
        }
    }
}

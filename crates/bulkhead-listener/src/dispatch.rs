//! Dispatch: sending one request to one worker and getting its response head back.
//!
//! A [`Worker`] is the listener's handle on one worker process: its id, its concurrency and its
//! transport. The transport is chosen by the worker's protocol — today HTTP/1.1 over its unix
//! socket or loopback port ([`http1`]); the native multiplexed protocol of DESIGN §4 plugs in as
//! another [`Transport`] variant without touching the queue or routing.
//!
//! Dispatch never retries and never decides status codes: it reports a [`DispatchError`] that
//! says who failed and whether the request went out, and gives the request back when it did not
//! (the request path in [`crate::request`] decides). Called with a [`Slot`] already held.

pub mod http1;

use std::sync::Arc;

use bulkhead_proto::{Protocol, WorkerId, WorkerInfo};
use http::{Request, Response};
use hyper::body::Incoming;

use crate::body::RequestBody;
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
    /// A protocol this listener does not speak yet: every request fails with an internal error.
    Unsupported(Protocol),
}

/// A response head from a worker, and the connection to give back once its body is read.
pub struct Exchange {
    pub response: Response<Incoming>,
    pub conn: ConnReturn,
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
            Protocol::Http => {
                Transport::Http1(http1::Http1Transport::new(info.worker, info.address.clone(), info.concurrency))
            }
            other => Transport::Unsupported(other),
        };
        Arc::new(Worker { id: info.worker, pid: info.pid, concurrency: info.concurrency.max(1), transport })
    }

    /// Sends a request and waits for the response head.
    pub async fn send(&self, request: Request<RequestBody>) -> Result<Exchange, Failure> {
        match &self.transport {
            Transport::Http1(t) => t.send(request).await,
            Transport::Unsupported(protocol) => Err(Failure {
                error: DispatchError::Unsupported { worker: self.id, protocol: *protocol },
                request: Some(request),
            }),
        }
    }

    /// Closes idle connections and keeps no new ones (draining, gone).
    pub fn close_idle(&self) {
        if let Transport::Http1(t) = &self.transport {
            t.close_idle();
        }
    }
}

//! The native protocol to a worker (`docs/protocol.md`), the [`Transport`] for
//! `protocol = "native"`: requests multiplexed as streams over one (or, when one is full or
//! closing, a few) connections per worker.
//!
//! The framing, flow-control windows and the batching writer are the shared engine in
//! `bulkhead_proto::native::conn`; this file turns an `http::Request` into a stream and the
//! worker's answer back into an `http::Response`. A request body is pumped into its stream by a
//! task of its own, waiting for the worker's credit, so a worker that reads an upload slowly
//! holds back the client. The response body is the stream itself ([`NativeBody`]): credit goes
//! back to the worker only as the client's socket takes the bytes, and dropping it (client gone)
//! cancels the stream in the worker. Streams share their connection, so there is no connection
//! to give back per exchange.
//!
//! Failures are reported as [`DispatchError::Native`] with whether the request went out, so the
//! request path applies the same retry rules as for HTTP/1.1. Uses only [`crate::body`] and
//! [`crate::error`]; reached only through [`crate::dispatch::Worker`].

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use bulkhead_proto::native::conn::{Client, RecvStream, SendStream, StreamError};
use bulkhead_proto::native::{Hello, RequestHead};
use bulkhead_proto::{WorkerAddress, WorkerId};
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::{Failure, Transport};
use crate::body::{BoxError, RequestBody};
use crate::error::DispatchError;

/// Connections kept to one worker at most.
const MAX_CONNECTIONS: usize = 4;
/// Longest wait for a worker's HELLO.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The native transport of one worker.
pub struct NativeTransport {
    worker: WorkerId,
    address: WorkerAddress,
    connections: Mutex<Vec<Client>>,
    /// Held while connecting, so a burst of requests opens one connection, not hundreds.
    connecting: tokio::sync::Mutex<()>,
    closed: AtomicBool,
}

/// A worker's response body over the native protocol: its stream (credit is granted back to
/// the worker as it is read; dropping it cancels the stream), or nothing when the listener made
/// the response in the worker's place.
pub enum NativeBody {
    Stream(RecvStream),
    Empty,
}

impl Body for NativeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            NativeBody::Stream(stream) => {
                stream.poll_data(cx).map(|chunk| chunk.map(|r| r.map(Frame::data).map_err(BoxError::from)))
            }
            NativeBody::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            NativeBody::Stream(stream) => stream.is_end(),
            NativeBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            NativeBody::Stream(_) => SizeHint::default(),
            NativeBody::Empty => SizeHint::with_exact(0),
        }
    }
}

impl NativeTransport {
    pub fn new(worker: WorkerId, address: WorkerAddress) -> Self {
        NativeTransport {
            worker,
            address,
            connections: Mutex::new(Vec::new()),
            connecting: tokio::sync::Mutex::new(()),
            closed: AtomicBool::new(false),
        }
    }

    /// A connection with room for one more stream, if there is one.
    fn usable(&self) -> Option<Client> {
        let mut conns = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        conns.retain(|c| !c.is_unusable());
        conns.iter().find(|c| c.open_streams() < c.peer().max_streams as usize).cloned()
    }

    async fn connection(&self) -> Result<Client, DispatchError> {
        if let Some(c) = self.usable() {
            return Ok(c);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(c) = self.usable() {
            return Ok(c);
        }
        if self.connections.lock().unwrap_or_else(|e| e.into_inner()).len() >= MAX_CONNECTIONS {
            return Err(DispatchError::Native {
                worker: self.worker,
                sent: false,
                source: StreamError::Refused(format!("{MAX_CONNECTIONS} connections at their stream limit")),
            });
        }
        let client = self.connect().await?;
        self.connections.lock().unwrap_or_else(|e| e.into_inner()).push(client.clone());
        Ok(client)
    }

    async fn connect(&self) -> Result<Client, DispatchError> {
        let connect_error = |source| DispatchError::Connect { worker: self.worker, address: self.describe(), source };
        let handshake = |source| DispatchError::Native { worker: self.worker, sent: false, source };
        let timed_out = || handshake(StreamError::ConnectionLost("no HELLO from the worker within 10s".into()));
        match &self.address {
            WorkerAddress::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path).await.map_err(connect_error)?;
                tokio::time::timeout(HANDSHAKE_TIMEOUT, Client::handshake(stream, Hello::default()))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(handshake)
            }
            WorkerAddress::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr).await.map_err(connect_error)?;
                let _ = stream.set_nodelay(true);
                tokio::time::timeout(HANDSHAKE_TIMEOUT, Client::handshake(stream, Hello::default()))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(handshake)
            }
        }
    }

    fn describe(&self) -> String {
        match &self.address {
            WorkerAddress::Unix(p) => p.display().to_string(),
            WorkerAddress::Tcp(a) => a.to_string(),
        }
    }
}

impl Transport for NativeTransport {
    type Body = NativeBody;

    /// No new connections; idle ones are closed, busy ones finish their streams.
    fn close_idle(&self) {
        self.closed.store(true, Ordering::Relaxed);
        let mut conns = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        conns.retain(|c| {
            let idle = c.open_streams() == 0;
            if idle {
                c.close("worker draining");
            }
            !idle
        });
    }

    /// Sends a request as a new stream and waits for the response head.
    async fn send(&self, request: Request<RequestBody>) -> Result<Response<NativeBody>, Failure> {
        let client = match self.connection().await {
            Ok(c) => c,
            Err(error) => return Err(Failure { error, request: Some(request) }),
        };
        let (parts, body) = request.into_parts();
        let head = RequestHead {
            method: Bytes::copy_from_slice(parts.method.as_str().as_bytes()),
            target: Bytes::copy_from_slice(parts.uri.path_and_query().map_or("/", |pq| pq.as_str()).as_bytes()),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| (Bytes::copy_from_slice(n.as_str().as_bytes()), Bytes::copy_from_slice(v.as_bytes())))
                .collect(),
        };
        let end = body.is_end_stream();
        let (send, mut recv) = match client.open(head, end) {
            Ok(pair) => pair,
            Err(source) => {
                let request = Request::from_parts(parts, body);
                return Err(Failure {
                    error: DispatchError::Native { worker: self.worker, sent: false, source },
                    request: Some(request),
                });
            }
        };
        if !end {
            tokio::spawn(pump(body, send));
        }
        match recv.response().await {
            Ok((head, _end)) => {
                let mut response = Response::new(NativeBody::Stream(recv));
                *response.status_mut() =
                    http::StatusCode::from_u16(head.status).unwrap_or(http::StatusCode::BAD_GATEWAY);
                let headers = response.headers_mut();
                headers.reserve(head.headers.len());
                for (name, value) in head.headers {
                    if let (Ok(n), Ok(v)) =
                        (http::HeaderName::from_bytes(&name), http::HeaderValue::from_maybe_shared(value))
                    {
                        headers.append(n, v);
                    }
                }
                Ok(response)
            }
            // The application failed to answer; the worker itself is fine: 502, no retry.
            Err(StreamError::Failed { message, .. }) => {
                tracing::warn!("worker {}: the application failed the request: {message}", self.worker);
                let mut response = Response::new(NativeBody::Empty);
                *response.status_mut() = http::StatusCode::BAD_GATEWAY;
                Ok(response)
            }
            // Never started by the worker (draining, at its stream limit): as good as unsent.
            Err(source @ StreamError::Refused(_)) => Err(Failure {
                error: DispatchError::Native { worker: self.worker, sent: false, source },
                request: None,
            }),
            Err(source) => {
                Err(Failure { error: DispatchError::Native { worker: self.worker, sent: true, source }, request: None })
            }
        }
    }
}

/// Streams the client's body into the worker's stream, as fast as the worker's credit allows.
/// A client body that fails drops `send`, which cancels the stream.
async fn pump(body: RequestBody, mut send: SendStream) {
    let mut body = std::pin::pin!(body);
    loop {
        let frame = match body.frame().await {
            Some(Ok(frame)) => frame,
            Some(Err(_)) => return,
            None => {
                let _ = send.finish().await;
                return;
            }
        };
        if let Ok(data) = frame.into_data() {
            let last = body.is_end_stream();
            if send.send_data(data, last).await.is_err() || last {
                return;
            }
        }
    }
}

//! Bodies on the request path, both directions.
//!
//! - [`ResponseBody`]: what the listener sends a client — empty, a small buffer, a file streamed
//!   in chunks, or a worker's response streamed through. It carries the request's
//!   [`Completion`]: when the body ends or is dropped (client gone, response aborted), the access
//!   log line is queued with the bytes really sent, the connection's in-flight count drops, and a
//!   worker's slot and connection are given back ([`crate::dispatch::Lease`]).
//! - [`RequestBody`]: what the listener sends a worker — nothing (replays) or the client's body
//!   streamed through, cut off past `limits.max_body` and when the client stalls longer than
//!   `limits.connection_timeout`; the reason is left in the connection's state so the request
//!   path can answer 413 rather than 502.
//!
//! Never buffers a whole body: every chunk is passed on as it comes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, ReadBuf};

use crate::dispatch::{Lease, WorkerBody};
use crate::log::{AccessRecord, LogSender};
use crate::server::{BodyFault, ConnState};

/// Bytes read from a file per chunk when streaming.
pub const FILE_CHUNK: usize = 64 * 1024;

/// Error type of both bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body to a client.
pub struct ResponseBody {
    kind: Kind,
    sent: u64,
    ended: bool,
    /// Boxed: it is large, and moved only once, while the body moves through hyper.
    completion: Option<Box<Completion>>,
}

enum Kind {
    Empty,
    Full(Option<Bytes>),
    File(FileChunks),
    Worker { incoming: WorkerBody, lease: Option<Lease> },
}

/// A file read in chunks of [`FILE_CHUNK`] bytes, `remaining` bytes in all.
pub struct FileChunks {
    file: tokio::fs::File,
    remaining: u64,
    buf: BytesMut,
}

impl ResponseBody {
    pub fn empty() -> Self {
        Self::of(Kind::Empty)
    }

    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self::of(Kind::Full(Some(bytes.into())))
    }

    /// Streams `len` bytes of an open file.
    pub fn file(file: tokio::fs::File, len: u64) -> Self {
        Self::of(Kind::File(FileChunks { file, remaining: len, buf: BytesMut::new() }))
    }

    /// Streams a worker's response; the lease is given back when the body ends or is dropped.
    pub fn worker(incoming: WorkerBody, lease: Lease) -> Self {
        Self::of(Kind::Worker { incoming, lease: Some(lease) })
    }

    fn of(kind: Kind) -> Self {
        ResponseBody { kind, sent: 0, ended: false, completion: None }
    }

    /// Attaches the request's completion (logged when this body ends or is dropped).
    pub fn set_completion(&mut self, completion: Box<Completion>) {
        self.completion = Some(completion);
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = match &mut this.kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::File(f) => f.poll_chunk(cx).map(|r| r.map(|r| r.map(Frame::data).map_err(BoxError::from))),
            Kind::Worker { incoming, .. } => Pin::new(incoming).poll_frame(cx),
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                }
            }
            Poll::Ready(None) => this.ended = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(b) => b.is_none(),
            Kind::File(f) => f.remaining == 0,
            Kind::Worker { incoming, .. } => incoming.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::File(f) => SizeHint::with_exact(f.remaining),
            Kind::Worker { incoming, .. } => incoming.size_hint(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        let complete = self.ended || self.is_end_stream();
        if let Kind::Worker { lease, .. } = &mut self.kind {
            if let Some(lease) = lease.take() {
                lease.finish(complete);
            }
        }
        if let Some(c) = self.completion.take() {
            c.finish(self.sent, complete);
        }
    }
}

impl FileChunks {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<std::io::Result<Bytes>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = FILE_CHUNK.min(usize::try_from(self.remaining).unwrap_or(FILE_CHUNK));
        self.buf.resize(want, 0);
        let mut read_buf = ReadBuf::new(&mut self.buf[..]);
        match Pin::new(&mut self.file).poll_read(cx, &mut read_buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) => {
                let n = read_buf.filled().len();
                if n == 0 {
                    // The file shrank under us: end the body short (the client sees a truncated
                    // response, which its Content-Length check reports).
                    return Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "file shrank while being sent",
                    ))));
                }
                self.remaining -= n as u64;
                self.buf.truncate(n);
                Poll::Ready(Some(Ok(self.buf.split().freeze())))
            }
        }
    }
}

/// What is left to do when a response finishes: the access-log line and the connection's
/// bookkeeping. Built by the request path; finished by [`ResponseBody`]'s drop.
pub struct Completion {
    pub log: Option<(LogSender, AccessRecord)>,
    pub started: Instant,
    /// Estimated size of the response head.
    pub head_bytes: u64,
    /// Estimated size of the request head.
    pub request_head_bytes: u64,
    pub conn: Arc<ConnState>,
}

impl Completion {
    fn finish(self, body_sent: u64, complete: bool) {
        let body_read = self.conn.request_body_bytes();
        self.conn.request_done();
        if let Some((log, mut record)) = self.log {
            record.when = SystemTime::now();
            record.time_taken = self.started.elapsed();
            record.sc_bytes = self.head_bytes + body_sent;
            record.cs_bytes = self.request_head_bytes + body_read;
            record.win32_status = if complete { 0 } else { 64 };
            log.access(record);
        }
    }
}

/// A request body on its way to a worker.
pub enum RequestBody {
    Empty,
    Client(ClientBody),
}

/// The client's body, limited and watched for stalls.
pub struct ClientBody {
    incoming: Incoming,
    read: u64,
    max: u64,
    stall: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    armed: bool,
    conn: Arc<ConnState>,
}

impl RequestBody {
    pub fn client(incoming: Incoming, max: u64, stall: Duration, conn: Arc<ConnState>) -> Self {
        RequestBody::Client(ClientBody { incoming, read: 0, max, stall, timer: None, armed: false, conn })
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut *self {
            RequestBody::Empty => Poll::Ready(None),
            RequestBody::Client(body) => body.poll(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Empty => true,
            RequestBody::Client(b) => b.incoming.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Empty => SizeHint::with_exact(0),
            RequestBody::Client(b) => b.incoming.size_hint(),
        }
    }
}

impl ClientBody {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                self.armed = false;
                if let Some(data) = frame.data_ref() {
                    self.read += data.len() as u64;
                    self.conn.add_request_body_bytes(data.len() as u64);
                    if self.read > self.max {
                        self.conn.set_body_fault(BodyFault::TooLarge);
                        return Poll::Ready(Some(Err("request body exceeds limits.max_body".into())));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.conn.set_body_fault(BodyFault::Client);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = tokio::time::Instant::now() + self.stall;
                let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if !self.armed {
                    timer.as_mut().reset(deadline);
                    self.armed = true;
                }
                if timer.as_mut().poll(cx).is_ready() {
                    self.conn.set_body_fault(BodyFault::Stalled);
                    return Poll::Ready(Some(Err("client stalled sending the request body".into())));
                }
                Poll::Pending
            }
        }
    }
}

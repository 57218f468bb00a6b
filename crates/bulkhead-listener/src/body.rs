//! Request bodies on their way to a worker: [`RequestBody`] — nothing (replays, bodiless
//! requests) or the client's body streamed through, cut off past `limits.max_body` and when the
//! client stalls longer than `limits.connection_timeout`.
//!
//! What happened to one request's body — bytes read, and why it stopped early ([`BodyFault`]) —
//! is kept in that request's own [`BodyProgress`], shared by the body (which may be polled in a
//! transport's task) and the request path (which answers 413/408/400 rather than 502, and logs
//! `cs-bytes`). It is per request, never per connection, so concurrent requests on one
//! connection (HTTP/2 streams) cannot overwrite each other's. Only a request that has a body
//! gets one (one allocation); a bodiless request reads as zero bytes, no fault.
//!
//! The bottom of the request path's layering: imports nothing of the listener. Called by
//! [`crate::request`] (which builds the body) and the transports in [`crate::dispatch`] (which
//! send it). Never buffers a whole body: every chunk is passed on as it comes.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// Error type of the listener's bodies, both directions.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request body stopped early (left for the request path to choose 413 vs 408 vs 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BodyFault {
    None = 0,
    /// More than `limits.max_body` bytes.
    TooLarge = 1,
    /// No byte for `limits.connection_timeout`.
    Stalled = 2,
    /// The client's side failed (reset, malformed chunking).
    Client = 3,
}

/// One request's body: bytes read so far and the fault that stopped it, if any.
#[derive(Debug, Default)]
pub struct BodyProgress {
    bytes: AtomicU64,
    fault: AtomicU8,
}

impl BodyProgress {
    /// Body bytes read from the client so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Why the body stopped early ([`BodyFault::None`] if it did not).
    pub fn fault(&self) -> BodyFault {
        match self.fault.load(Ordering::Relaxed) {
            1 => BodyFault::TooLarge,
            2 => BodyFault::Stalled,
            3 => BodyFault::Client,
            _ => BodyFault::None,
        }
    }

    fn set_fault(&self, fault: BodyFault) {
        self.fault.store(fault as u8, Ordering::Relaxed);
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
    progress: Arc<BodyProgress>,
}

impl RequestBody {
    /// The client's body, at most `max` bytes, failing after `stall` without a byte. Returns the
    /// body and its progress (for the request path and the access log).
    pub fn client(incoming: Incoming, max: u64, stall: Duration) -> (Self, Arc<BodyProgress>) {
        let progress = Arc::new(BodyProgress::default());
        let body = ClientBody { incoming, read: 0, max, stall, timer: None, armed: false, progress: progress.clone() };
        (RequestBody::Client(body), progress)
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
                    self.progress.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                    if self.read > self.max {
                        self.progress.set_fault(BodyFault::TooLarge);
                        return Poll::Ready(Some(Err("request body exceeds limits.max_body".into())));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.progress.set_fault(BodyFault::Client);
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
                    self.progress.set_fault(BodyFault::Stalled);
                    return Poll::Ready(Some(Err("client stalled sending the request body".into())));
                }
                Poll::Pending
            }
        }
    }
}

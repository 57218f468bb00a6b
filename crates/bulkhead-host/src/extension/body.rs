//! The response body an extension produces, as the host's service returns it: whole (a response
//! that fit in `BH_BUFFERED_BODY`, sent with `Content-Length`) or streamed from the extension's
//! extension thread through a bounded channel (each chunk at most [`CHUNK`] bytes, at most
//! [`QUEUED_CHUNKS`] of them queued, so one request holds at most `BH_BUFFERED_BODY` in
//! flight and a slow client makes the extension's `write` wait instead of memory grow).
//!
//! Built by `call` (the sending side); read by whatever serves the host's responses (hyper or
//! the native protocol). Dropping it (the client went away) closes the channel, which the
//! extension's next `write` sees as `BH_ERROR`.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::mpsc;

/// Bytes per streamed chunk.
pub const CHUNK: usize = 16 * 1024;
/// Streamed chunks queued at most: `CHUNK * QUEUED_CHUNKS` = `BH_BUFFERED_BODY`.
pub const QUEUED_CHUNKS: usize = 4;

/// The extension failed (returned `BH_ERROR`, panicked) after its response head was sent, so the
/// response is cut short instead of ending normally.
#[derive(Debug, thiserror::Error)]
#[error("the extension failed after its response head was sent; the response is cut short")]
pub struct Cut;

/// One item of a streamed body.
pub(super) type Chunk = Result<Bytes, Cut>;

/// An extension's response body.
#[derive(Debug)]
pub struct ExtensionBody {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Whole(Option<Bytes>),
    Streamed(mpsc::Receiver<Chunk>),
}

impl ExtensionBody {
    pub(super) fn whole(bytes: Bytes) -> Self {
        ExtensionBody { inner: Inner::Whole(Some(bytes).filter(|b| !b.is_empty())) }
    }

    pub(super) fn streamed(rx: mpsc::Receiver<Chunk>) -> Self {
        ExtensionBody { inner: Inner::Streamed(rx) }
    }

    /// The length of a whole body; `None` for a streamed one.
    pub fn whole_len(&self) -> Option<usize> {
        match &self.inner {
            Inner::Whole(b) => Some(b.as_ref().map_or(0, Bytes::len)),
            Inner::Streamed(_) => None,
        }
    }
}

impl http_body::Body for ExtensionBody {
    type Data = Bytes;
    type Error = Cut;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Cut>>> {
        match &mut self.get_mut().inner {
            Inner::Whole(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Inner::Streamed(rx) => rx.poll_recv(cx).map(|item| item.map(|chunk| chunk.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.inner, Inner::Whole(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Whole(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Inner::Streamed(_) => SizeHint::default(),
        }
    }
}

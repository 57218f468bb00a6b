//! The response body of every host answer ([`HostBody`]: boxed, so each execute kind streams
//! its own way), and the plain-text answers the host makes itself (its errors).
//!
//! A leaf: used by [`crate::cgi`] and [`crate::dispatch`].

use std::pin::Pin;
use std::task::{Context, Poll};

use bulkhead_worker::BoxError;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use tokio::sync::mpsc;

/// What the host answers with.
pub type HostBody = UnsyncBoxBody<Bytes, BoxError>;

/// `code` with its reason as a short `text/plain` body (the listener may replace it with the
/// site's error page only for answers it makes itself; a host's answer is passed through).
pub fn plain(code: StatusCode) -> Response<HostBody> {
    let text = format!("{} {}\n", code.as_u16(), code.canonical_reason().unwrap_or(""));
    let mut resp = Response::new(
        Full::new(Bytes::from(text))
            .map_err(|never: std::convert::Infallible| -> BoxError { match never {} })
            .boxed_unsync(),
    );
    *resp.status_mut() = code;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// A body fed through a channel by a task (a program's output pump): it ends when the sender is
/// dropped, and the sender sees `closed()` as soon as this body is dropped (the client went
/// away), so the task can stop the program at once.
pub struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, BoxError>>,
}

impl ChannelBody {
    /// A body and the sender that feeds it, `depth` chunks ahead at most (back-pressure: a slow
    /// client slows the program's reads, never grows a buffer).
    pub fn new(depth: usize) -> (mpsc::Sender<Result<Bytes, BoxError>>, ChannelBody) {
        let (tx, rx) = mpsc::channel(depth);
        (tx, ChannelBody { rx })
    }
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.rx.poll_recv(cx).map(|chunk| chunk.map(|r| r.map(Frame::data)))
    }
}

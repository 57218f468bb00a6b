//! [`Body`]: the request body an application's service receives, whichever protocol brought it.
//!
//! Under `protocol = "http"` it wraps hyper's `Incoming`; under `protocol = "native"` it wraps a
//! native stream, granting flow-control credit back to the listener as the application reads. So
//! one service type serves both, and an axum `Router` (generic over any `http_body::Body` with
//! `Bytes` data) takes it as it is.

use std::pin::Pin;
use std::task::{Context, Poll};

use bulkhead_proto::native::conn::RecvStream;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;

use crate::BoxError;

/// A request body.
pub struct Body {
    inner: Inner,
}

enum Inner {
    Http1(Incoming),
    Native(RecvStream),
}

impl Body {
    pub(crate) fn http1(incoming: Incoming) -> Self {
        Body { inner: Inner::Http1(incoming) }
    }

    pub(crate) fn native(stream: RecvStream) -> Self {
        Body { inner: Inner::Native(stream) }
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.inner {
            Inner::Http1(_) => "Body(http1)",
            Inner::Native(_) => "Body(native)",
        })
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().inner {
            Inner::Http1(incoming) => Pin::new(incoming).poll_frame(cx).map_err(Into::into),
            Inner::Native(stream) => {
                stream.poll_data(cx).map(|chunk| chunk.map(|r| r.map(Frame::data).map_err(Into::into)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Http1(incoming) => incoming.is_end_stream(),
            Inner::Native(stream) => stream.is_end(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Http1(incoming) => incoming.size_hint(),
            Inner::Native(_) => SizeHint::default(),
        }
    }
}

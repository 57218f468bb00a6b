//! The native handler over an in-memory pipe, the listener's side played by the real
//! `bulkhead_proto` client: what reaches the listener when the worker dies mid-exchange.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bulkhead_proto::native::conn::{Client, StreamError};
use bulkhead_proto::native::{Hello, RequestHead};
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

use super::Native;

/// The worker's end of a pipe that dies right after its `writes`-th write (its write side shut,
/// later writes refused), as a process killed at that instant would.
struct DiesAfter {
    inner: DuplexStream,
    writes: usize,
}

impl AsyncRead for DiesAfter {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for DiesAfter {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.writes == 0 {
            return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
        }
        let written = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, buf));
        if written.is_ok() {
            self.writes -= 1;
            if self.writes == 0 {
                let _ = Pin::new(&mut self.inner).poll_shutdown(cx);
            }
        }
        Poll::Ready(written)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A page of known length that is not ready at once (as one read from a file is not): its
/// bytes come after a timer, so the runtime is idle meanwhile and the connection's writer sends
/// whatever is queued — the head alone, unless the handler waits for the body first.
struct NotYet {
    page: Option<Bytes>,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for NotYet {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::ready!(self.timer.as_mut().poll(cx));
        Poll::Ready(self.page.take().map(|p| Ok(http_body::Frame::data(p))))
    }

    fn is_end_stream(&self) -> bool {
        self.page.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.page.as_ref().map_or(0, |p| p.len() as u64))
    }
}

#[tokio::test]
async fn a_page_leaves_with_its_head_so_a_kill_after_that_write_loses_nothing() {
    let (listener_end, worker_end) = tokio::io::duplex(64 * 1024);
    let service = hyper::service::service_fn(|_req: http::Request<crate::body::Body>| async {
        let timer = Box::pin(tokio::time::sleep(std::time::Duration::from_millis(1)));
        let page = NotYet { page: Some(Bytes::from_static(b"<p>a whole page</p>")), timer };
        Ok::<_, std::convert::Infallible>(http::Response::new(page))
    });
    let (_drain_tx, drain) = tokio::sync::watch::channel(false);
    // The worker writes its HELLO, then one more write, then dies.
    let worker = tokio::spawn(Native::default().serve(DiesAfter { inner: worker_end, writes: 2 }, service, drain));
    let client = Client::handshake(listener_end, Hello::default()).await.unwrap();
    let head = RequestHead { method: Bytes::from_static(b"GET"), target: Bytes::from_static(b"/"), headers: vec![] };
    let (_, mut recv) = client.open(head, true).unwrap();
    let (head, end) = recv.response().await.unwrap();
    assert_eq!((head.status, end), (200, false));
    let mut body = Vec::new();
    while let Some(chunk) = recv.data().await {
        match chunk {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::ConnectionLost(why)) => panic!("the head arrived without its body: {why}"),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(body, b"<p>a whole page</p>");
    client.close("test over");
    worker.await.unwrap();
}

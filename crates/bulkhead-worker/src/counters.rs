//! Per-worker request counters (requests served, requests in flight) and the service wrapper
//! that maintains them on the request path.
//!
//! The server wraps the application's service in a [`CountingService`]; the control channel reads
//! a [`Counters`] snapshot to answer the manager's `Ping`. The request path pays two relaxed atomic
//! additions and one subtraction per request and allocates nothing. A request is "in flight"
//! from the moment hyper hands it to the service until its response body has been sent (or
//! dropped, e.g. when the client went away). Nothing here may block or log per request.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// Counters shared by every connection of one worker.
#[derive(Debug, Default)]
pub struct Counters {
    requests: AtomicU64,
    in_flight: AtomicU64,
}

impl Counters {
    /// Requests received since start (including those still in flight).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Requests whose response has not finished yet.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    fn start(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }
}

/// One request in flight; dropping it ends the request.
#[derive(Debug)]
struct InFlight(Arc<Counters>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A hyper service that counts the requests it passes to `inner`.
#[derive(Debug, Clone)]
pub(crate) struct CountingService<S> {
    inner: S,
    counters: Arc<Counters>,
}

impl<S> CountingService<S> {
    pub(crate) fn new(inner: S, counters: Arc<Counters>) -> Self {
        CountingService { inner, counters }
    }
}

impl<S, ReqB, B> hyper::service::Service<Request<ReqB>> for CountingService<S>
where
    S: hyper::service::Service<Request<ReqB>, Response = Response<B>>,
{
    type Response = Response<CountedBody<B>>;
    type Error = S::Error;
    type Future = CountedFuture<S::Future>;

    fn call(&self, req: Request<ReqB>) -> Self::Future {
        let guard = self.counters.start();
        CountedFuture { inner: self.inner.call(req), guard: Some(guard) }
    }
}

pin_project! {
    /// The response future of a [`CountingService`]; moves the in-flight guard into the body.
    pub(crate) struct CountedFuture<F> {
        #[pin]
        inner: F,
        guard: Option<InFlight>,
    }
}

impl<F, B, E> std::future::Future for CountedFuture<F>
where
    F: std::future::Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<CountedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let guard = this.guard.take();
        Poll::Ready(result.map(|response| response.map(|inner| CountedBody { inner, guard })))
    }
}

pin_project! {
    /// A response body that ends its request's in-flight count when it ends or is dropped.
    pub(crate) struct CountedBody<B> {
        #[pin]
        inner: B,
        guard: Option<InFlight>,
    }
}

impl<B: Body> Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if frame.is_none() {
            this.guard.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use std::convert::Infallible;

    #[derive(Clone)]
    struct Hello;

    impl hyper::service::Service<Request<()>> for Hello {
        type Response = Response<Full<Bytes>>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Self::Response, Infallible>>;

        fn call(&self, _req: Request<()>) -> Self::Future {
            std::future::ready(Ok(Response::new(Full::new(Bytes::from_static(b"hi")))))
        }
    }

    #[tokio::test]
    async fn in_flight_until_body_is_done() {
        let counters = Arc::new(Counters::default());
        let svc = CountingService::new(Hello, Arc::clone(&counters));
        let fut = hyper::service::Service::call(&svc, Request::new(()));
        assert_eq!((counters.requests(), counters.in_flight()), (1, 1));
        let response = fut.await.unwrap();
        assert_eq!(counters.in_flight(), 1, "the body has not been sent yet");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hi");
        assert_eq!((counters.requests(), counters.in_flight()), (1, 0));
    }

    #[tokio::test]
    async fn dropped_request_is_no_longer_in_flight() {
        let counters = Arc::new(Counters::default());
        let svc = CountingService::new(Hello, Arc::clone(&counters));
        drop(hyper::service::Service::call(&svc, Request::new(())));
        assert_eq!((counters.requests(), counters.in_flight()), (1, 0));
    }
}

//! The HTTP/1.1 connection handler: serves one accepted connection with hyper, keep-alive on,
//! and shuts it down gracefully (finish the request in progress, then close) when the worker
//! drains.
//!
//! Called by [`protocol`](crate::protocol) for every connection of a pool with
//! `protocol = "http"`. It applies no timeouts of its own: the worker is reached only through
//! Bulkhead's listener (or a local proxy in benchmarks), which enforces client timeouts and
//! limits, so an idle keep-alive connection from it is normal and must not be cut.

use std::future::Future;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::body::Body;
use crate::BoxError;

/// Serves HTTP/1.1 connections.
#[derive(Debug, Clone)]
pub(crate) struct Http1 {
    builder: http1::Builder,
}

impl Http1 {
    pub(crate) fn new() -> Self {
        let mut builder = http1::Builder::new();
        builder.keep_alive(true).header_read_timeout(None);
        Http1 { builder }
    }

    /// The future serving `io` until the peer closes it or the drain signal reaches `watcher`.
    pub(crate) fn serve<I, S, B>(
        &self,
        io: I,
        service: S,
        watcher: Watcher,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: hyper::service::Service<http::Request<Body>, Response = http::Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let service = AsBody(service);
        let connection = self.builder.serve_connection(TokioIo::new(io), service);
        async move {
            if let Err(error) = watcher.watch(connection).await {
                // A peer that goes away mid-request is routine; it ends only this connection.
                tracing::debug!("http/1.1 connection ended with an error: {error}");
            }
        }
    }
}

/// Hands hyper's `Incoming` to the application as a [`Body`], the type every protocol gives it.
struct AsBody<S>(S);

impl<S, B> hyper::service::Service<http::Request<Incoming>> for AsBody<S>
where
    S: hyper::service::Service<http::Request<Body>, Response = http::Response<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, request: http::Request<Incoming>) -> Self::Future {
        self.0.call(request.map(Body::http1))
    }
}

//! Chooses the connection handler for the pool's protocol (`BULKHEAD_PROTOCOL`): HTTP/1.1
//! ([`Http1`]) or Bulkhead's native multiplexed protocol ([`Native`], DESIGN §4).
//!
//! Called by the server once at start-up ([`ConnectionHandler::for_protocol`]) and once per
//! accepted connection ([`ConnectionHandler::serve`]). Handlers receive the application's service
//! already wrapped for counting and the drain signals (hyper's graceful watcher for HTTP/1.1, a
//! watch channel for native); they must honour them (finish what is in progress, then close) and
//! never decide policy such as when to stop accepting.

use std::future::Future;

use bulkhead_proto::Protocol;
use futures_util::future::Either;
use hyper_util::server::graceful::Watcher;
use tokio::sync::watch;

use crate::body::Body;
use crate::http1::Http1;
use crate::listen::Conn;
use crate::native::Native;
use crate::{BoxError, WorkerError};

/// Serves accepted connections in one protocol.
#[derive(Debug, Clone)]
pub(crate) enum ConnectionHandler {
    Http1(Http1),
    Native(Native),
}

impl ConnectionHandler {
    /// The handler for `protocol`.
    pub(crate) fn for_protocol(protocol: Protocol) -> Result<ConnectionHandler, WorkerError> {
        match protocol {
            Protocol::Http => Ok(ConnectionHandler::Http1(Http1::new())),
            Protocol::Native => Ok(ConnectionHandler::Native(Native::default())),
            // The SDK serves HTTP and the native protocol; FastCGI pools run FastCGI responders.
            Protocol::Fastcgi => Err(WorkerError::BadProtocol { value: protocol.as_str().to_string() }),
        }
    }

    /// The future serving one connection to its end.
    pub(crate) fn serve<S, B>(
        &self,
        conn: Conn,
        service: S,
        watcher: Watcher,
        drain: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        S: hyper::service::Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        match self {
            ConnectionHandler::Http1(http1) => Either::Left(http1.serve(conn, service, watcher)),
            ConnectionHandler::Native(native) => Either::Right(native.serve(conn, service, drain)),
        }
    }
}

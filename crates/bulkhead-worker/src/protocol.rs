//! Chooses the connection handler for the pool's protocol (`BULKHEAD_PROTOCOL`): HTTP/1.1 today,
//! Bulkhead's native multiplexed protocol next (DESIGN §4), as a second handler beside
//! [`Http1`].
//!
//! Called by the server once at start-up ([`ConnectionHandler::for_protocol`]) and once per
//! accepted connection ([`ConnectionHandler::serve`]). Handlers receive the application's service
//! already wrapped for counting and a drain watcher; they must honour the watcher (finish what
//! is in progress, then close) and never decide policy such as when to stop accepting.

use std::future::Future;

use bulkhead_proto::Protocol;
use hyper::body::Incoming;
use hyper_util::server::graceful::Watcher;

use crate::http1::Http1;
use crate::listen::Conn;
use crate::{BoxError, WorkerError};

/// Serves accepted connections in one protocol.
#[derive(Debug, Clone)]
pub(crate) enum ConnectionHandler {
    Http1(Http1),
}

impl ConnectionHandler {
    /// The handler for `protocol`, or an error when this SDK cannot speak it yet.
    pub(crate) fn for_protocol(protocol: Protocol) -> Result<ConnectionHandler, WorkerError> {
        match protocol {
            Protocol::Http => Ok(ConnectionHandler::Http1(Http1::new())),
            Protocol::Native => Err(WorkerError::ProtocolNotImplemented { protocol: Protocol::Native.as_str() }),
        }
    }

    /// The future serving one connection to its end.
    pub(crate) fn serve<S, B>(
        &self,
        conn: Conn,
        service: S,
        watcher: Watcher,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        S: hyper::service::Service<http::Request<Incoming>, Response = http::Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let ConnectionHandler::Http1(http1) = self;
        http1.serve(conn, service, watcher)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_is_refused_clearly() {
        let err = ConnectionHandler::for_protocol(Protocol::Native).unwrap_err();
        assert_eq!(err.to_string(), "protocol native is not implemented yet (set protocol = \"http\" on the pool)");
    }
}

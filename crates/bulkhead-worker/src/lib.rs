//! Bulkhead's worker SDK (DESIGN §4): one call turns any hyper/tower service — an axum `Router`,
//! a `tower::service_fn` closure — into a Bulkhead pool worker.
//!
//! An application's `main` calls [`serve`], which reads the worker contract from the process
//! environment (the inherited listening socket at fd 3 with `LISTEN_FDS`, or a loopback `PORT`;
//! the control channel at `BULKHEAD_CONTROL_FD`; `BULKHEAD_PROTOCOL`) and serves until the
//! manager says `Drain` or `Stop`. This crate is the process glue of a worker, so unlike
//! Bulkhead's other libraries it reads the environment — in one place, [`WorkerEnv::from_process_env`];
//! [`serve_with`] takes everything explicitly instead, plus a shutdown future.
//!
//! It never reads signals or exits the process. The manager always sends `Drain` before it sends
//! SIGTERM, and SIGTERM's default action ends the process, which is what a worker that did not
//! finish draining in time should get. If the control channel closes (the manager died), the
//! worker drains and [`serve`] returns.
//!
//! Layout: [`env`] (the contract), `inherit` (the only `unsafe`: adopting inherited fds),
//! `listen` (unix or TCP socket), `server` (accept, drain, stop), `protocol` (which connection
//! handler), `http1` (the HTTP/1.1 handler), `native` (the native protocol handler,
//! `docs/protocol.md`), `body` (the request [`Body`] both give the service), `control` (the
//! control channel), [`counters`].
//!
//! The same application binary runs under `protocol = "http"` or `"native"`: the manager says
//! which in `BULKHEAD_PROTOCOL`, and the service sees the same `http::Request<Body>` either way.
#![deny(unsafe_code)]

mod body;
mod control;
pub mod counters;
pub mod env;
mod error;
mod http1;
mod inherit;
mod listen;
mod native;
mod protocol;
mod server;

use std::future::Future;

pub use body::Body;
pub use env::{Control, Listen, WorkerEnv};
pub use error::WorkerError;

/// The boxed error type hyper accepts from services and bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves `service` as a Bulkhead worker, configured from the process environment, until the
/// manager drains or stops it (or closes the control channel).
///
/// ```no_run
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http_body_util::Full;
///
/// #[tokio::main]
/// async fn main() -> Result<(), bulkhead_worker::WorkerError> {
///     let app = tower::service_fn(|_req: http::Request<bulkhead_worker::Body>| async {
///         Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"hello\n"))))
///     });
///     bulkhead_worker::serve(app).await
/// }
/// ```
pub async fn serve<S, B>(service: S) -> Result<(), WorkerError>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    serve_with(WorkerEnv::from_process_env()?, service, std::future::pending()).await
}

/// Serves `service` on the socket and control channel in `env` until the manager drains or stops
/// the worker, or `shutdown` completes (which drains: stop accepting, finish in-flight requests).
///
/// Returns `Ok(())` after a drain or a stop; an error when the socket or control channel cannot
/// be used. Must be called inside a tokio runtime.
pub async fn serve_with<S, B, F>(env: WorkerEnv, service: S, shutdown: F) -> Result<(), WorkerError>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    F: Future<Output = ()>,
{
    server::run(env, service, shutdown).await
}

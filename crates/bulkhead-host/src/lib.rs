//! Bulkhead's built-in host worker (DESIGN §4, `kind = "host"`; IIS's w3wp): the process the
//! manager starts for a host pool, running this same binary as the hidden `bulkhead worker`.
//!
//! It is a native-protocol worker built on `bulkhead-worker` — one [`serve`] call serves a tower
//! service, says `ready`, answers pings, drains when told — and it runs only what the listener
//! asks for: each request carries its route's facts in the `x-bulkhead-*` headers of
//! [`bulkhead_proto::host`] (the listener resolved the program under the route's root and removed
//! any such header a client sent). Lockdown by default, as IIS's Web Service Extensions: a route
//! must say `execute`; nothing is run because of a file's name.
//!
//! Modules, lowest first:
//! - [`facts`]: the route's facts, read from the `x-bulkhead-*` headers;
//! - [`answer`]: the response body type every execute kind answers with, and plain answers;
//! - [`cgi`]: `execute = "cgi"` — runs the program (RFC 3875) in its own process group;
//! - [`extension`]: `execute = "extension"` — loads native libraries (the C ABI of
//!   `include/bulkhead_extension.h`) once per process and calls them on blocking threads;
//!   allowed `unsafe` as a whole (loading and calling foreign code; `cgi::group` has the crate's
//!   other, one-block exception), each block with its `// SAFETY:`;
//! - [`dispatch`]: the service: one request → the execute kind's handler (the `match` a new
//!   execute kind adds its arm to).
//!
//! Like the other libraries it reads no environment of its own: the binary passes the worker
//! contract ([`bulkhead_worker::WorkerEnv`]) and the `PATH` programs get ([`Host`]).

#![deny(unsafe_code)]

pub mod answer;
pub mod cgi;
pub mod dispatch;
#[allow(unsafe_code)]
pub mod extension;
pub mod facts;

use std::ffi::OsString;
use std::sync::Arc;

pub use bulkhead_worker::{WorkerEnv, WorkerError};

/// What the host passes on to every program it runs.
#[derive(Debug, Clone)]
pub struct Host {
    /// The `PATH` a CGI program gets (the host's own: the pool's `env.PATH`, else the server's).
    pub program_path: OsString,
}

/// Serves the host on the socket and control channel of `env` until the manager drains or stops
/// it. Programs still running when it returns are killed with their process groups (their
/// guards are dropped with the runtime's tasks).
pub async fn serve(env: WorkerEnv, host: Host) -> Result<(), WorkerError> {
    let host = Arc::new(host);
    // One per worker process: each library is loaded once and kept for the process's life.
    let extensions = Arc::new(extension::Extensions::new());
    let service = tower::service_fn(move |req| dispatch::handle(Arc::clone(&host), Arc::clone(&extensions), req));
    bulkhead_worker::serve_with(env, service, std::future::pending()).await
}

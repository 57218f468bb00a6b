//! Native extensions (IIS's ISAPI extensions and filters): shared libraries with the C ABI of
//! `include/bulkhead_extension.h`, loaded into the host worker and called for the requests of
//! `execute = "extension"` routes.
//!
//! The host's dispatch calls [`answer`] for `execute = "extension"` routes, which calls [`serve`]
//! with the route's [`Target`] (its `library` and `filters`, which the listener passes in the
//! [`bulkhead_proto::host`] headers, and the client's address) and the request. Uses
//! [`crate::facts`] and [`crate::answer`] (leaves); used by [`crate::dispatch`]. Layout: [`library`]
//! (dlopen, the version handshake, the entry points), `threads` (the threads calls run on),
//! `call` (one request through the hooks on an extension thread, the structs and callbacks the
//! libraries see), [`body`] (the response body).
//!
//! Choices:
//! - Each library is loaded once per worker process, at the first request that names it, and
//!   kept for the process's life ([`Extensions`] caches it by path). Loading happens on the
//!   extension thread, under the cache's lock, so two first requests do not both run the
//!   handshake. A library that fails to load is not cached: each request names the reason in the
//!   pool's log and gets 500, and a fixed file is picked up by the next request.
//! - Every entry point runs on one of the process's extension threads ([`threads`]: a fixed set,
//!   4 per CPU, fed by one queue), never on the event loop: an extension may block (a file, a
//!   database), and a slow one holds an extension thread, not the worker's event loop or its
//!   pings. All the hooks of one request run on that one thread.
//! - Bodies: the request body streams to `read_body` as the client sends it (the listener has
//!   enforced `max_body` already). Up to `BH_BUFFERED_BODY` (64 KiB) of a response is held and
//!   sent whole with `Content-Length`; past that (or after `flush`) the head goes out and the
//!   body streams through a channel bounded to another 64 KiB, so `write` waits for a slow
//!   client rather than memory growing.
//! - Failures: an entry point that returns `BH_ERROR` or panics (the SDK turns a panic into
//!   `BH_ERROR`) gets the host's 500 when nothing was sent yet, else its response is cut. A
//!   segfault ends the worker process: the manager replaces it (the listener answers 502).

pub mod body;
mod call;
pub mod library;
mod threads;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::oneshot;

pub use body::{Cut, ExtensionBody};

use crate::answer::{self, HostBody};
use crate::facts::RouteFacts;
use http::Response;
pub use library::{Library, LoadError};
pub use threads::PER_CPU as THREADS_PER_CPU;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a request runs: its route's `library` (which must have a handler) and `filters`, in
/// order, and the client's address the extension sees (`remote_addr`; `""` when unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub library: PathBuf,
    pub filters: Vec<PathBuf>,
    pub remote_addr: String,
}

/// The libraries this worker process has loaded, by path, and the threads that call them.
#[derive(Debug, Default)]
pub struct Extensions {
    loaded: Mutex<HashMap<PathBuf, Arc<Library>>>,
    threads: threads::CallThreads,
}

impl Extensions {
    pub fn new() -> Self {
        Self::default()
    }

    /// The library at `path`, loaded (and its handshake run) the first time.
    pub fn get(&self, path: &Path) -> Result<Arc<Library>, LoadError> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(library) = loaded.get(path) {
            return Ok(Arc::clone(library));
        }
        let library = Arc::new(Library::load(path)?);
        loaded.insert(path.to_path_buf(), Arc::clone(&library));
        Ok(library)
    }

    /// The loaded libraries of `target`, filters first; refuses a `library` with no handler.
    fn chain(&self, target: &Target) -> Result<call::Chain, LoadError> {
        let mut libraries = Vec::with_capacity(target.filters.len() + 1);
        for path in &target.filters {
            libraries.push(self.get(path)?);
        }
        let library = self.get(&target.library)?;
        if !library.has_handler() {
            return Err(LoadError::NoHandler { path: target.library.clone() });
        }
        libraries.push(library);
        Ok(call::Chain { libraries })
    }
}

/// Serves one request with `target`'s libraries: loads them if needed, runs the hooks on an
/// extension thread ([`threads`]), and returns the response once its head is ready (its body may still be
/// streaming from the extension). Never fails: what goes wrong is a 500, and the reason is in
/// the pool's log (a `tracing` warning naming the library's path).
///
/// Must be called inside a tokio runtime.
pub async fn serve<B>(
    extensions: Arc<Extensions>,
    target: Target,
    request: http::Request<B>,
) -> http::Response<ExtensionBody>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (parts, body) = request.into_parts();
    let body = body.map_err(Into::into).boxed_unsync();
    let (head_tx, head_rx) = oneshot::channel();
    let runtime = tokio::runtime::Handle::current();
    let queue = Arc::clone(&extensions);
    let job: threads::Job = Box::new(move || match extensions.chain(&target) {
        Ok(chain) => call::run(chain, parts, body, target.remote_addr, head_tx, runtime),
        Err(error) => {
            tracing::warn!("{error}; answering 500 to {} {}", parts.method, parts.uri.path());
            drop(head_tx);
        }
    });
    if let Err(job) = queue.threads.run(job) {
        // No extension thread could be started: tokio's blocking pool instead.
        drop(tokio::task::spawn_blocking(job));
    }
    match head_rx.await {
        Ok(head) => {
            let mut response = http::Response::new(head.body);
            *response.status_mut() = StatusCode::from_u16(head.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let headers = response.headers_mut();
            for (name, value) in head.headers {
                headers.append(name, value);
            }
            response
        }
        // No head: the libraries could not be loaded, or the host's own code panicked (both
        // logged where they happened).
        Err(_) => internal_error(),
    }
}

/// `execute = "extension"` in the host's dispatch: the route's facts → a [`Target`], the
/// listener's `x-bulkhead-*` headers removed (an extension sees the client's request), [`serve`].
pub async fn answer(
    extensions: Arc<Extensions>,
    mut req: http::Request<bulkhead_worker::Body>,
    facts: RouteFacts,
) -> Response<HostBody> {
    let Some(library) = facts.library else {
        tracing::error!(
            "{}: an extension route without {}; answering 500",
            req.uri().path(),
            bulkhead_proto::host::LIBRARY
        );
        return answer::plain(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let listener_headers: Vec<http::HeaderName> =
        req.headers().keys().filter(|n| bulkhead_proto::host::is_host_header(n.as_str())).cloned().collect();
    for name in listener_headers {
        req.headers_mut().remove(name);
    }
    let target = Target { library, filters: facts.filters, remote_addr: facts.remote.0 };
    serve(extensions, target, req).await.map(|body| body.map_err(Into::into).boxed_unsync())
}

/// The host's own 500.
fn internal_error() -> http::Response<ExtensionBody> {
    let body = Bytes::from_static(b"500 Internal Server Error\n");
    let mut response = http::Response::new(ExtensionBody::whole(body.clone()));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response.headers_mut().insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    response
}

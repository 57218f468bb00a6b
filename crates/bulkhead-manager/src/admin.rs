//! The admin service (IIS Admin Service's role): HTTP/JSON on the admin unix socket
//! (`server.admin_socket`, mode 0600 — the filesystem decides who may talk to it) and,
//! optionally, on a loopback TCP address (`server.admin_listen`) where every request needs the
//! bearer token `server.admin_token`. The CLI, the dashboard and Prometheus use it.
//!
//! Started by [`crate::run`] once the state directory is locked; it holds no server state.
//! Each request becomes a [`Command`] for the supervisor task (which owns everything and
//! answers on a oneshot), except the history reads, which only read `<state_dir>/history`
//! through [`ConfigStore`]. It must never block the supervisor or wait for a worker.
//!
//! Endpoints (JSON unless said otherwise; errors are `{"error": "..."}` with a 4xx/5xx status):
//! - `GET /` — the dashboard (one HTML page, no build step; [`dashboard`]).
//! - `GET /status` — server (pid, uptime, config file and version, listener, bindings,
//!   `log_lines_dropped`), the
//!   last refused config (`config_error`, `null` when the running config is the file's), sites
//!   (bindings, requests, requests per second), pools (state, `disabled` — `null` or
//!   `{"by": "operator"|"rapid-fail"|"config"|"removed", "reason"}` —, queue depth, in flight,
//!   requests, last recycle) with their workers (id, pid, state, uptime, requests, in flight, RSS, CPU%,
//!   `ending`: why the manager is ending it, e.g. `"recycled"`, `"idle timeout"`, or `null`),
//!   and the registered services (`[{"name","pid","starts"}]`, `pid` null while restarting).
//! - `GET /pools` — the `pools` part of `/status`.
//! - `POST /listener/restart` — hand over to a new listener process on the same sockets
//!   (`{"old_pid","new_pid","message"}`); 409 while a handover is already under way.
//! - `POST /cache/purge` — body (optional) `{"site": "NAME", "prefix": "/PATH"}`, both optional:
//!   drop the listener's cached answers of that site (every site) under that path prefix (every
//!   path); `{"site","prefix","message"}`; 400 for a malformed body or a prefix without `/`,
//!   404 for an unknown site. The purge acts in the listener just after the answer.
//! - `POST /pools/NAME/start`, `/stop`, `/recycle` — `{"pool","action","message"}`; 404 for an
//!   unknown pool.
//! - `GET /events?limit=N` — the most recent lifecycle events, oldest first:
//!   `[{"at","level","pool","message"}]` (default 100).
//! - `GET /metrics` — Prometheus/OpenMetrics text ([`crate::metrics`]).
//! - `GET /config` — `{"file","version","hash","text"}`: the running configuration.
//! - `PUT /config` — body: the whole TOML file. Validated; if valid, written back to the file
//!   atomically and applied: `{"applied":true,"version","changes":[...]}`. Invalid: 400
//!   `{"applied":false,"errors":[{"file","line","column","key","message"}]}`, nothing changes.
//!   `?dry_run=1` only validates.
//! - `POST /config/reload` — re-read the file (as SIGHUP does); same answer as `PUT /config`.
//! - `GET /config/history` — `[{"version","applied_at","hash","source","note","current"}]`.
//! - `GET /config/history/N` — `{"version",...,"text"}`.
//! - `GET /config/diff?from=A&to=B` — `{"from","to","diff","changes"}`: a line diff and the
//!   list of changes applying B over A would make (default: the previous and current version).
//! - `POST /config/rollback/N` — write version N back to the file and apply it (answer as
//!   `PUT /config`).
//! - TCP only: `POST /login` (form field `token`) and `GET /?token=T` set an HttpOnly,
//!   SameSite=Strict cookie holding the token and redirect to `/`; without a valid token,
//!   `GET /` shows a login form and every other path answers 401.

mod auth;
pub mod dashboard;
mod routes;

pub(crate) use routes::describe_change;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

pub(crate) use crate::admin_command::{Command, PoolAction, Reply, ReplyBody};
use crate::config_store::ConfigStore;
use crate::event::{Event, EventSender};

/// Why the admin service could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot create the admin socket {path}: {source}")]
    Socket { path: PathBuf, source: std::io::Error },
    #[error("cannot listen on {addr} (server.admin_listen): {source}")]
    Tcp { addr: SocketAddr, source: std::io::Error },
}

/// The running admin service; dropping it stops serving and removes the socket file.
pub struct AdminService {
    socket_path: PathBuf,
    tasks: Vec<AbortHandle>,
    /// The TCP address actually bound, if any.
    pub tcp_addr: Option<SocketAddr>,
}

impl Drop for AdminService {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = std::fs::remove_file(&self.socket_path);
    }
}

/// What every connection's handler shares.
pub(crate) struct Context {
    pub events: EventSender,
    pub store: ConfigStore,
    /// `Some(token)` on the TCP endpoint: every request must carry it.
    pub token: Option<String>,
    /// Anchor of the config's relative paths (to compare history versions).
    pub base_dir: PathBuf,
}

/// Binds the admin socket (mode 0600; a stale file from a dead manager is replaced — the
/// state directory lock proves no other manager owns it) and the optional TCP endpoint, and
/// serves them. Must run inside a tokio runtime.
pub(crate) fn start(
    server: &bulkhead_config::Server,
    store: ConfigStore,
    base_dir: PathBuf,
    events: EventSender,
) -> Result<AdminService, AdminError> {
    let path = server.admin_socket.clone();
    let unix = bind_unix(&path).map_err(|source| AdminError::Socket { path: path.clone(), source })?;
    let mut service = AdminService { socket_path: path, tasks: Vec::new(), tcp_addr: None };
    let local =
        Arc::new(Context { events: events.clone(), store: store.clone(), token: None, base_dir: base_dir.clone() });
    service.tasks.push(
        tokio::spawn(async move {
            loop {
                match unix.accept().await {
                    Ok((stream, _)) => serve_connection(stream, local.clone()),
                    Err(e) => {
                        tracing::warn!(target: "bulkhead::manager", "admin socket accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        })
        .abort_handle(),
    );
    if let Some(addr) = server.admin_listen {
        let std_listener = std::net::TcpListener::bind(addr).map_err(|source| AdminError::Tcp { addr, source })?;
        std_listener.set_nonblocking(true).map_err(|source| AdminError::Tcp { addr, source })?;
        service.tcp_addr = std_listener.local_addr().ok();
        let tcp = tokio::net::TcpListener::from_std(std_listener).map_err(|source| AdminError::Tcp { addr, source })?;
        let remote = Arc::new(Context { events, store, token: Some(server.admin_token.clone()), base_dir });
        service.tasks.push(
            tokio::spawn(async move {
                loop {
                    match tcp.accept().await {
                        Ok((stream, _)) => serve_connection(stream, remote.clone()),
                        Err(e) => {
                            tracing::warn!(target: "bulkhead::manager", "admin TCP accept: {e}");
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                    }
                }
            })
            .abort_handle(),
        );
    }
    Ok(service)
}

fn bind_unix(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

fn serve_connection<S>(stream: S, ctx: Arc<Context>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let service = hyper::service::service_fn(move |req| {
            let ctx = ctx.clone();
            async move { Ok::<_, std::convert::Infallible>(routes::handle(req, &ctx).await) }
        });
        let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
        if let Err(e) = conn.await {
            tracing::debug!(target: "bulkhead::manager", "admin connection: {e}");
        }
    });
}

/// Sends `command` to the supervisor and waits for its reply (503 when it is gone).
pub(crate) async fn ask(ctx: &Context, make: impl FnOnce(oneshot::Sender<Reply>) -> Command) -> Reply {
    let (tx, rx) = oneshot::channel();
    if ctx.events.send(Event::Admin(make(tx))).is_err() {
        return Reply::error(503, "the server is shutting down");
    }
    rx.await.unwrap_or_else(|_| Reply::error(503, "the server is shutting down"))
}

/// An HTTP response from a [`Reply`].
pub(crate) fn response(reply: Reply) -> hyper::Response<Full<Bytes>> {
    let (content_type, body) = match reply.body {
        ReplyBody::Json(v) => ("application/json", format!("{v:#}\n")),
        ReplyBody::Text { content_type, text } => (content_type, text),
    };
    hyper::Response::builder()
        .status(reply.status)
        .header("content-type", content_type)
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())))
}

//! One client connection: hyper's HTTP/1.1 connection settings, the connection's timers, and the
//! in-flight layer on every response — for any stream that reads and writes (plain TCP today; a
//! TLS stream later is another `S`, wrapped before [`serve`] is called).
//!
//! Limits applied here (DESIGN §2.1): `max_request_bytes` bounds hyper's read buffer (hyper's
//! minimum is 8 KiB; too large a head gets 431 from hyper and HTTPERR `RequestLength`); a
//! malformed head gets 400 from hyper and HTTPERR `BadRequest`; a connection accepted past
//! `max_connections` ([`crate::accept`] decides) is served without keep-alive, its requests
//! answered 503 `ConnLimit`. The two timers are kept here rather than with hyper's
//! `header_read_timeout`, because hyper runs that timer while a keep-alive connection is idle
//! too, which would cut idle connections at the header-wait time instead of
//! `connection_timeout`: the watchdog closes a connection with no request in flight and no bytes
//! for `connection_timeout` (`Timer_ConnectionIdle`), or one that began a request head and did
//! not finish it within `header_wait_timeout` (`Timer_HeaderWait`). Request body stalls are
//! timed per request by [`crate::body`].
//!
//! [`ConnState`] holds only what belongs to the connection (bytes read, requests in flight,
//! when it went idle); each request's own state lives with the request ([`crate::request`]).
//! Layering: called by [`crate::accept`]; uses [`crate::request`], [`crate::response`] (one
//! more layer), [`crate::state`], [`crate::log`] and [`crate::proxy`]. This is where HTTP/2 will
//! plug in (pick the builder by ALPN); the request path does not care. Never runs application
//! code.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::log::HttpErrRecord;
use crate::request::{Answer, ConnInfo};
use crate::response::{End, Layered, OnEnd};
use crate::routing::Table;
use crate::state::{Phase, Shared};

/// A response body as the connection sends it: the request path's [`Answer`] under the
/// connection's in-flight layer.
pub type ConnBody = Layered<Answer, InFlight>;

/// One client connection's counters, shared by its watchdog, its I/O and its in-flight layers.
pub struct ConnState {
    start: Instant,
    bytes_read: AtomicU64,
    in_flight: AtomicU32,
    /// `bytes_read` when the connection last had no request in flight.
    idle_bytes: AtomicU64,
    /// Milliseconds since `start` when the connection last had no request in flight.
    idle_since_ms: AtomicU64,
}

impl ConnState {
    pub fn new() -> Self {
        ConnState {
            start: Instant::now(),
            bytes_read: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            idle_bytes: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(0),
        }
    }

    fn request_done(&self) {
        if self.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.idle_bytes.store(self.bytes_read.load(Ordering::Relaxed), Ordering::Relaxed);
            self.idle_since_ms.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
    }
}

impl Default for ConnState {
    fn default() -> Self {
        Self::new()
    }
}

/// One request in flight on the connection, from its head's arrival until its response ends
/// (or is abandoned): the outermost response layer.
pub struct InFlight(Arc<ConnState>);

impl InFlight {
    fn start(state: &Arc<ConnState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(state.clone())
    }
}

impl OnEnd for InFlight {
    fn on_end(self, _: End) {}
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_done();
    }
}

/// The two ends of an accepted connection.
#[derive(Debug, Clone, Copy)]
pub struct Endpoints {
    /// The inherited listening socket (its fd) it was accepted on.
    pub socket: i32,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    /// The stream is TLS (decrypted by [`crate::tls`] before it got here).
    pub tls: bool,
}

/// Serves one accepted connection until it closes, a timer cuts it, or the listener aborts.
/// `table` is the configuration current at accept (its limits set up the connection; each
/// request takes the table current when it arrives).
pub async fn serve<S>(shared: Arc<Shared>, table: Arc<Table>, stream: S, ends: Endpoints, over_limit: bool)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Endpoints { socket, local, peer, tls } = ends;
    let limits = &table.limits;
    let state = Arc::new(ConnState::new());
    let peer_ip = crate::proxy::client_ip_value(peer.ip());
    let info = Arc::new(ConnInfo {
        shared: shared.clone(),
        socket,
        local,
        peer,
        peer_ip,
        over_limit,
        tls,
        site_connections: OnceLock::new(),
    });
    let io = TokioIo::new(CountingIo { inner: stream, state: state.clone() });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(!over_limit)
        .max_buf_size((limits.max_request_bytes as usize).max(8192));
    let requests = info.clone();
    let counters = state.clone();
    let service = service_fn(move |req| {
        let in_flight = InFlight::start(&counters);
        let info = requests.clone();
        async move {
            let resp = crate::request::handle(&info, req).await?;
            Ok::<_, std::convert::Infallible>(resp.map(|body| ConnBody::new(body, in_flight)))
        }
    });
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);

    let header_wait = limits.header_wait_timeout;
    let idle_timeout = limits.connection_timeout;
    let tick = (header_wait.min(idle_timeout) / 8).clamp(Duration::from_millis(50), Duration::from_secs(5));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    drop(table);
    let mut phase = shared.phase();
    if *phase.borrow() != Phase::Running {
        conn.as_mut().graceful_shutdown();
    }
    let mut head_seen: Option<(Instant, u64)> = None;
    let result = loop {
        tokio::select! {
            r = conn.as_mut() => break r,
            _ = ticker.tick() => {
                if let Some(reason) = watchdog(&state, &mut head_seen, header_wait, idle_timeout) {
                    shared.log.http_err(HttpErrRecord {
                        when: SystemTime::now(), client: peer, server: local, version: None, method: None,
                        uri: None, status: None, site_id: None, reason, queue: None,
                    });
                    break Ok(());
                }
            }
            changed = phase.changed() => {
                let now = if changed.is_ok() { *phase.borrow() } else { Phase::Abort };
                match now {
                    Phase::Running => {}
                    Phase::Graceful => conn.as_mut().graceful_shutdown(),
                    Phase::Abort => break Ok(()),
                }
            }
        }
    };
    if let Some(site) = info.site_connections.get() {
        site.fetch_sub(1, Ordering::Relaxed);
    }
    if let Err(e) = result {
        let (reason, status) = if e.is_parse_too_large() {
            ("RequestLength", Some(431))
        } else if e.is_parse() {
            ("BadRequest", Some(400))
        } else if e.is_timeout() {
            ("Timer_HeaderWait", None)
        } else {
            tracing::debug!("connection from {peer}: {e}");
            return;
        };
        shared.log.http_err(HttpErrRecord {
            when: SystemTime::now(),
            client: peer,
            server: local,
            version: None,
            method: None,
            uri: None,
            status,
            site_id: None,
            reason,
            queue: None,
        });
    }
}

/// Decides whether a connection has waited too long; returns the HTTPERR reason to close it.
fn watchdog(
    state: &ConnState,
    head_seen: &mut Option<(Instant, u64)>,
    header_wait: Duration,
    idle: Duration,
) -> Option<&'static str> {
    if state.in_flight.load(Ordering::Relaxed) > 0 {
        *head_seen = None;
        return None;
    }
    let read = state.bytes_read.load(Ordering::Relaxed);
    let idle_bytes = state.idle_bytes.load(Ordering::Relaxed);
    if read > idle_bytes {
        // Part of a request head is in: the header-wait timer runs from when we first saw it.
        let (since, _) = *head_seen.get_or_insert((Instant::now(), read));
        if since.elapsed() >= header_wait {
            return Some("Timer_HeaderWait");
        }
        return None;
    }
    *head_seen = None;
    let idle_since = state.start + Duration::from_millis(state.idle_since_ms.load(Ordering::Relaxed));
    (idle_since.elapsed() >= idle).then_some("Timer_ConnectionIdle")
}

/// The client stream, counting bytes read for the watchdog.
struct CountingIo<S> {
    inner: S,
    state: Arc<ConnState>,
}

impl<S: AsyncRead + Unpin> AsyncRead for CountingIo<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.state.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountingIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

//! Accepting and serving client connections: the accept loop of each inherited socket, the
//! connection limits, hyper's HTTP/1.1 connection settings, and a per-connection watchdog for
//! the idle and header-wait timers.
//!
//! Limits applied here (DESIGN §2.1): `max_connections` (over it, the connection is served one
//! 503 `ConnLimit` and closed); `max_request_bytes` bounds hyper's read buffer (hyper's minimum
//! is 8 KiB; too large a head gets 431 from hyper and HTTPERR `RequestLength`); a malformed head
//! gets 400 from hyper and HTTPERR `BadRequest`. The two timers are kept here rather than with
//! hyper's `header_read_timeout`, because hyper runs that timer while a keep-alive connection is
//! idle too, which would cut idle connections at the header-wait time instead of
//! `connection_timeout`: the watchdog closes a connection with no request in flight and no bytes
//! for `connection_timeout` (`Timer_ConnectionIdle`), or one that began a request head and did
//! not finish it within `header_wait_timeout` (`Timer_HeaderWait`). Request body stalls are
//! timed by [`crate::body::RequestBody`].
//!
//! The connection layer is where TLS and HTTP/2 will plug in (wrap the stream, pick the builder
//! by ALPN); the request path ([`crate::request`]) does not care. Never runs application code.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::log::HttpErrRecord;
use crate::state::{Phase, Shared};

/// Why a request body stopped early (left for the request path to choose 413 vs 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BodyFault {
    None = 0,
    TooLarge = 1,
    Stalled = 2,
    Client = 3,
}

/// One client connection's counters, shared by its watchdog, its I/O and its requests.
pub struct ConnState {
    start: Instant,
    bytes_read: AtomicU64,
    in_flight: AtomicU32,
    /// `bytes_read` when the connection last had no request in flight.
    idle_bytes: AtomicU64,
    /// Milliseconds since `start` when the connection last had no request in flight.
    idle_since_ms: AtomicU64,
    body_bytes: AtomicU64,
    body_fault: AtomicU8,
    /// The site's connection counter, once a request told us the site.
    pub site_connections: OnceLock<Arc<AtomicU64>>,
}

impl ConnState {
    pub fn new() -> Self {
        ConnState {
            start: Instant::now(),
            bytes_read: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            idle_bytes: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(0),
            body_bytes: AtomicU64::new(0),
            body_fault: AtomicU8::new(0),
            site_connections: OnceLock::new(),
        }
    }

    /// A request head arrived.
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.body_bytes.store(0, Ordering::Relaxed);
        self.body_fault.store(BodyFault::None as u8, Ordering::Relaxed);
    }

    /// A response finished (or was abandoned).
    pub fn request_done(&self) {
        if self.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.idle_bytes.store(self.bytes_read.load(Ordering::Relaxed), Ordering::Relaxed);
            self.idle_since_ms.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
    }

    pub fn add_request_body_bytes(&self, n: u64) {
        self.body_bytes.fetch_add(n, Ordering::Relaxed);
    }

    pub fn request_body_bytes(&self) -> u64 {
        self.body_bytes.load(Ordering::Relaxed)
    }

    pub fn set_body_fault(&self, fault: BodyFault) {
        self.body_fault.store(fault as u8, Ordering::Relaxed);
    }

    pub fn body_fault(&self) -> BodyFault {
        match self.body_fault.load(Ordering::Relaxed) {
            1 => BodyFault::TooLarge,
            2 => BodyFault::Stalled,
            3 => BodyFault::Client,
            _ => BodyFault::None,
        }
    }
}

impl Default for ConnState {
    fn default() -> Self {
        Self::new()
    }
}

/// What a request handler knows about its connection.
pub struct ConnCtx {
    pub shared: Arc<Shared>,
    /// The inherited socket (fd) it was accepted on: the key for site lookup.
    pub socket: i32,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    /// `peer`'s address as an `X-Forwarded-For` value, formatted once per connection.
    pub peer_ip: http::HeaderValue,
    pub state: Arc<ConnState>,
    /// Accepted past `limits.max_connections`: every request gets 503 `ConnLimit`.
    pub over_limit: bool,
}

/// Accepts connections on one inherited socket until the listener stops accepting or this
/// socket is dropped by a new configuration (`stop` turns true).
pub async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, socket: i32, mut stop: watch::Receiver<bool>) {
    let mut phase = shared.phase();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let shared = shared.clone();
                    tokio::spawn(serve_connection(shared, stream, socket, peer));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept on fd {socket}: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => break,
            changed = phase.changed() => if changed.is_err() || *phase.borrow() != Phase::Running { break },
        }
    }
}

async fn serve_connection(shared: Arc<Shared>, stream: TcpStream, socket: i32, peer: SocketAddr) {
    let _counted = shared.connection_opened();
    let local = stream.local_addr().unwrap_or(peer);
    let table = shared.table();
    let limits = &table.limits;
    let over_limit = shared.connections() > limits.max_connections;
    let _ = stream.set_nodelay(true);
    let state = Arc::new(ConnState::new());
    let peer_ip = crate::proxy::client_ip_value(peer.ip());
    let ctx =
        Arc::new(ConnCtx { shared: shared.clone(), socket, local, peer, peer_ip, state: state.clone(), over_limit });
    let io = TokioIo::new(CountingIo { inner: stream, state: state.clone() });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(!over_limit)
        .max_buf_size((limits.max_request_bytes as usize).max(8192));
    let service = service_fn(move |req| crate::request::handle(ctx.clone(), req));
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
    if let Some(site) = state.site_connections.get() {
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
struct CountingIo {
    inner: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for CountingIo {
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

impl AsyncWrite for CountingIo {
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

//! One client connection: HTTP/1.1 and HTTP/2 on any stream that reads and writes (plain TCP,
//! or the TLS stream [`crate::accept`] wraps it in before [`serve`] is called), the
//! connection's timers, and the in-flight layer on every response.
//!
//! The protocol is chosen by hyper-util's auto builder from the first bytes: the HTTP/2
//! connection preface (`PRI * HTTP/2.0…`) means HTTP/2 — h2c with prior knowledge on an
//! `http://` binding, or `h2` chosen by ALPN under TLS, which sends the same preface — and
//! anything else is HTTP/1.1 with the settings it always had. No h2c `Upgrade:` is offered.
//!
//! Limits applied here (DESIGN §2.1): `max_request_bytes` bounds hyper's HTTP/1.1 read buffer
//! (hyper's minimum is 8 KiB; too large a head gets 431 from hyper and HTTPERR `RequestLength`)
//! and is HTTP/2's `SETTINGS_MAX_HEADER_LIST_SIZE`; a malformed head gets 400 from hyper and an
//! HTTPERR line with the reason [`crate::conformance::parse_error_reason`] names; HTTP/2's own limits come from `[limits]`'s `http2_*` keys (concurrent
//! streams, flow-control windows, and the reset-stream floods of CVE-2023-44487, beyond which h2
//! closes the connection with GOAWAY); keep-alive pings are off (idle connections are the
//! watchdog's). A connection accepted past `max_connections` ([`crate::accept`] decides) gets
//! its requests answered 503 `ConnLimit` and is closed after the first (HTTP/1.1 without
//! keep-alive; HTTP/2 with GOAWAY).
//!
//! The two timers are kept here rather than with hyper's `header_read_timeout`, because hyper
//! runs that timer while a keep-alive connection is idle too, which would cut idle connections
//! at the header-wait time instead of `connection_timeout`: the watchdog closes a connection with
//! no request in flight and no bytes for `connection_timeout` (`Timer_ConnectionIdle`), or one
//! that began an HTTP/1.1 request head and did not finish it within `header_wait_timeout`
//! (`Timer_HeaderWait`). An HTTP/2 connection reads frames of its own between requests
//! (SETTINGS, PING, WINDOW_UPDATE), so it is idle when no stream is in flight, whatever it reads;
//! it is closed with GOAWAY. Request body stalls are timed per request by [`crate::body`].
//! Shutdown and listener handover (`Phase::Graceful`) shut every connection down gracefully:
//! HTTP/2 sends GOAWAY and finishes its streams; HTTP/1.1 answers its next request with
//! `Connection: close` and closes after it, and a connection that stays idle for [`DRAIN_IDLE`]
//! is closed (closing an idle keep-alive connection at once races a request the client may be
//! sending on it: the client would see a reset instead of an answer).
//!
//! [`ConnState`] holds only what belongs to the connection (bytes read, requests in flight,
//! when it went idle); each request's — each stream's — own state lives with the request
//! ([`crate::request`]), so one stream's fault touches no other.
//! Layering: called by [`crate::accept`]; uses [`crate::request`], [`crate::response`] (one
//! more layer), [`crate::state`], [`crate::log`] and [`crate::proxy`]. Never runs application
//! code.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bulkhead_config::Limits;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

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
    /// The client opened with the HTTP/2 preface (set by the first read).
    http2: AtomicBool,
    /// Bytes written to the client.
    bytes_written: AtomicU64,
    /// The last write found the client's socket full (it is not reading fast enough).
    write_blocked: AtomicBool,
    /// The listener is shutting down or handing over: HTTP/1.1 responses say
    /// `Connection: close`, so a client learns it before it sends its next request.
    draining: AtomicBool,
    /// A request of a connection over `max_connections` was answered: time to close.
    refused: Notify,
}

impl ConnState {
    pub fn new() -> Self {
        ConnState {
            start: Instant::now(),
            bytes_read: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            idle_bytes: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(0),
            http2: AtomicBool::new(false),
            bytes_written: AtomicU64::new(0),
            write_blocked: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            refused: Notify::new(),
        }
    }

    /// Notes a write's outcome for [`slow_reader`].
    fn wrote(&self, r: &Poll<io::Result<usize>>) {
        match r {
            Poll::Pending => self.write_blocked.store(true, Ordering::Relaxed),
            Poll::Ready(Ok(n)) => {
                self.bytes_written.fetch_add(*n as u64, Ordering::Relaxed);
                self.write_blocked.store(false, Ordering::Relaxed);
            }
            Poll::Ready(Err(_)) => {}
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

/// How long a draining HTTP/1.1 connection may stay idle before it is closed (a client sending
/// requests back to back gets `Connection: close` on its next response instead).
const DRAIN_IDLE: Duration = Duration::from_secs(1);

/// The first bytes of an HTTP/2 connection (RFC 9113 §3.4), as far as the watchdog needs them.
const H2_PREFACE_START: &[u8] = b"PRI * HTTP/2.0";

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
    let io = TokioIo::new(CountingIo { inner: stream, state: state.clone(), first_read: true });
    let builder = builder(limits, over_limit);
    let requests = info.clone();
    let counters = state.clone();
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let in_flight = InFlight::start(&counters);
        let info = requests.clone();
        let http1 = req.version() != http::Version::HTTP_2;
        async move {
            // Boxed, so the request path's large future lives only while a request is in
            // flight: hyper keeps the service's future in an allocation of its size for the
            // connection's whole life, and an idle keep-alive connection would hold it.
            let mut resp = Box::pin(crate::request::handle(&info, req)).await?;
            if info.over_limit {
                in_flight.0.refused.notify_one();
            }
            if http1 && in_flight.0.draining.load(Ordering::Relaxed) {
                resp.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
            }
            Ok::<_, std::convert::Infallible>(resp.map(|body| ConnBody::new(body, in_flight)))
        }
    });
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);

    let header_wait = limits.header_wait_timeout;
    let idle_timeout = limits.connection_timeout;
    let (min_rate, grace) = (limits.min_bytes_per_sec, limits.min_bytes_grace);
    let tick = (header_wait.min(idle_timeout) / 8).clamp(Duration::from_millis(50), Duration::from_secs(5));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    drop(table);
    let mut phase = shared.phase();
    if *phase.borrow() != Phase::Running {
        conn.as_mut().graceful_shutdown();
    }
    let mut head_seen: Option<(Instant, u64)> = None;
    let mut draining_since: Option<Instant> = None;
    let mut blocked: Option<(Instant, u64)> = None;
    let mut goaway_sent = false;
    let result = loop {
        tokio::select! {
            r = conn.as_mut() => break r,
            _ = ticker.tick() => {
                let http2 = state.http2.load(Ordering::Relaxed);
                if !http2
                    && draining_since.is_some_and(|t| t.elapsed() >= DRAIN_IDLE)
                    && state.in_flight.load(Ordering::Relaxed) == 0
                {
                    // Draining, and no request came for a while: close it (hyper closes an
                    // idle HTTP/1.1 connection at once, a busy one after its response).
                    conn.as_mut().graceful_shutdown();
                    draining_since = None;
                }
                let slow = slow_reader(&state, &mut blocked, min_rate, grace);
                if let Some(reason) = slow.or_else(|| watchdog(&state, http2, &mut head_seen, header_wait, idle_timeout)) {
                    if http2 && goaway_sent {
                        // The client had a tick to take the GOAWAY and close.
                        break Ok(());
                    }
                    shared.log.http_err(HttpErrRecord {
                        when: SystemTime::now(), client: peer, server: local, version: None, method: None,
                        uri: None, status: None, site_id: None, reason, queue: None,
                    });
                    if !http2 {
                        break Ok(());
                    }
                    conn.as_mut().graceful_shutdown();
                    goaway_sent = true;
                }
            }
            _ = state.refused.notified(), if over_limit && !goaway_sent => {
                conn.as_mut().graceful_shutdown();
                goaway_sent = true;
            }
            changed = phase.changed() => {
                let now = if changed.is_ok() { *phase.borrow() } else { Phase::Abort };
                match now {
                    Phase::Running => {}
                    // HTTP/2: GOAWAY, and the streams in flight finish. HTTP/1.1: closing an idle
                    // connection now would race a request the client is sending on it, so the
                    // next response says `Connection: close` instead, and a connection that stays
                    // idle is closed after DRAIN_IDLE.
                    Phase::Graceful if state.http2.load(Ordering::Relaxed) => conn.as_mut().graceful_shutdown(),
                    Phase::Graceful => {
                        state.draining.store(true, Ordering::Relaxed);
                        draining_since = Some(Instant::now());
                    }
                    Phase::Abort => break Ok(()),
                }
            }
        }
    };
    if let Some(site) = info.site_connections.get() {
        site.fetch_sub(1, Ordering::Relaxed);
    }
    if let Err(e) = result {
        // hyper-util boxes the connection's error; a parse error or timeout is hyper's own.
        let Some(e) = e.downcast_ref::<hyper::Error>() else {
            tracing::debug!("connection from {peer}: {e}");
            return;
        };
        let (reason, status) = if e.is_parse_too_large() {
            ("RequestLength", Some(431))
        } else if e.is_parse() {
            (crate::conformance::parse_error_reason(e), Some(400))
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

/// hyper's connection builder for one connection: HTTP/1.1 as it always was, HTTP/2 with the
/// `[limits]` it is given.
fn builder(limits: &Limits, over_limit: bool) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(!over_limit)
        .max_buf_size((limits.max_request_bytes as usize).max(8192));
    let h2 = &limits.http2;
    builder
        .http2()
        .max_concurrent_streams(if over_limit { 1 } else { h2.max_concurrent_streams })
        .max_header_list_size(u32::try_from(limits.max_request_bytes).unwrap_or(u32::MAX))
        .initial_stream_window_size(h2.stream_window)
        .initial_connection_window_size(h2.connection_window)
        .max_pending_accept_reset_streams(h2.max_pending_accept_reset_streams as usize)
        .max_local_error_reset_streams(h2.max_local_error_reset_streams as usize)
        .keep_alive_interval(None);
    builder
}

/// Decides whether a connection has waited too long; returns the HTTPERR reason to close it.
/// An HTTP/2 connection has no half-read head between requests: it is idle or busy.
fn watchdog(
    state: &ConnState,
    http2: bool,
    head_seen: &mut Option<(Instant, u64)>,
    header_wait: Duration,
    idle: Duration,
) -> Option<&'static str> {
    if state.in_flight.load(Ordering::Relaxed) > 0 {
        *head_seen = None;
        return None;
    }
    if http2 {
        let idle_since = state.start + Duration::from_millis(state.idle_since_ms.load(Ordering::Relaxed));
        return (idle_since.elapsed() >= idle).then_some("Timer_ConnectionIdle");
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

/// Whether the client reads the responses slower than `min_rate` bytes a second (zero = off):
/// measured from the first tick that found a write blocked on the client's full socket, over at
/// least `grace`, and forgotten at a tick that finds the writes flowing. Returns the HTTPERR
/// reason to cut the connection (IIS's `MinBytesPerSecond`).
fn slow_reader(
    state: &ConnState,
    blocked: &mut Option<(Instant, u64)>,
    min_rate: u64,
    grace: Duration,
) -> Option<&'static str> {
    if min_rate == 0 || !state.write_blocked.load(Ordering::Relaxed) {
        *blocked = None;
        return None;
    }
    let written = state.bytes_written.load(Ordering::Relaxed);
    let (since, at) = *blocked.get_or_insert((Instant::now(), written));
    let elapsed = since.elapsed();
    let slow = elapsed >= grace && ((written - at) as f64) < min_rate as f64 * elapsed.as_secs_f64();
    slow.then_some("Timer_MinBytesPerSecond")
}

/// The client stream, counting bytes read for the watchdog (and telling it, from the first
/// read, whether the client speaks HTTP/2).
struct CountingIo<S> {
    inner: S,
    state: Arc<ConnState>,
    first_read: bool,
}

impl<S: AsyncRead + Unpin> AsyncRead for CountingIo<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            if self.first_read {
                self.first_read = false;
                let start = &buf.filled()[before..];
                let len = start.len().min(H2_PREFACE_START.len());
                if start[..len] == H2_PREFACE_START[..len] {
                    self.state.http2.store(true, Ordering::Relaxed);
                }
            }
            self.state.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountingIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.state.wrote(&r);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.state.wrote(&r);
        r
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

#[cfg(test)]
mod tests {
    use super::*;

    fn handle_future_size<F, Fut>(_: F) -> usize
    where
        F: FnOnce(&'static ConnInfo, hyper::Request<hyper::body::Incoming>) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    /// The request path's future is large (so the service boxes it; see [`serve`]). Printed
    /// for bench/RESULTS.md's breakdown: `cargo test -p bulkhead-listener request_future -- --nocapture`.
    #[test]
    fn request_future_is_large_enough_to_box() {
        let size = handle_future_size(crate::request::handle);
        eprintln!("request::handle future: {size} bytes");
        assert!(size > 1024, "{size} bytes: boxing it per request may no longer pay");
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn bytes_between_requests_start_the_header_wait_only_on_http1() {
        // A connection that read bytes since its last request ended, none in flight.
        let state = ConnState::new();
        state.bytes_read.store(9, Ordering::Relaxed);
        let mut seen = None;
        assert_eq!(watchdog(&state, false, &mut seen, Duration::ZERO, HOUR), Some("Timer_HeaderWait"));
        // HTTP/2 reads frames of its own (SETTINGS, PING, WINDOW_UPDATE) between requests: those
        // are no request head, and only the idle timer applies.
        let mut seen = None;
        assert_eq!(watchdog(&state, true, &mut seen, Duration::ZERO, HOUR), None);
        assert_eq!(watchdog(&state, true, &mut seen, Duration::ZERO, Duration::ZERO), Some("Timer_ConnectionIdle"));
        // A stream in flight keeps either open.
        state.in_flight.store(1, Ordering::Relaxed);
        for http2 in [false, true] {
            assert_eq!(watchdog(&state, http2, &mut None, Duration::ZERO, Duration::ZERO), None);
        }
    }

    #[test]
    fn a_blocked_writer_is_slow_only_past_the_grace_and_below_the_rate() {
        let state = ConnState::new();
        let mut blocked = None;
        // Writes flowing: never slow, whatever the rate.
        assert_eq!(slow_reader(&state, &mut blocked, 1_000_000, Duration::ZERO), None);
        state.write_blocked.store(true, Ordering::Relaxed);
        // Blocked, within the grace: measured, not cut.
        assert_eq!(slow_reader(&state, &mut blocked, 240, HOUR), None);
        assert!(blocked.is_some());
        // Blocked past a zero grace with no byte written since: cut.
        let mut blocked = Some((Instant::now() - Duration::from_secs(2), 0));
        assert_eq!(slow_reader(&state, &mut blocked, 240, Duration::ZERO), Some("Timer_MinBytesPerSecond"));
        // Enough bytes went out over those two seconds: not slow.
        state.bytes_written.store(10_000, Ordering::Relaxed);
        assert_eq!(slow_reader(&state, &mut blocked, 240, Duration::ZERO), None);
        // Off when the rate is zero; the measure is forgotten once writes flow.
        assert_eq!(slow_reader(&state, &mut blocked, 0, Duration::ZERO), None);
        assert!(blocked.is_none());
    }
}

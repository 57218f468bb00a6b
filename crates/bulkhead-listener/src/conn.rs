//! One client connection: HTTP/1.1 and HTTP/2 on any stream that reads and writes (plain TCP,
//! or the TLS stream [`crate::accept`] wraps it in before [`serve`] is called), the
//! connection's timers, and the in-flight layer on every response.
//!
//! **Protocol.** The first bytes decide ([`sniff`]): the HTTP/2 connection preface
//! (`PRI * HTTP/2.0…`) means HTTP/2 — h2c with prior knowledge on an `http://` binding, or `h2`
//! chosen by ALPN under TLS, which sends the same preface — and anything else is HTTP/1.1. No h2c
//! `Upgrade:` is offered. The sniffed bytes are handed to hyper first ([`ClientIo`]).
//!
//! **Idle HTTP/1.1 connections are parked outside hyper.** hyper keeps a connection's read
//! buffer (8 KiB at least) and write buffer for the connection's whole life, and the service's
//! state with them; with thousands of idle keep-alive clients that is most of the listener's
//! memory. So an HTTP/1.1 connection is served in *sessions*: when a session is at rest — no
//! request in flight, its response flushed, no byte read since — it is told to shut down
//! gracefully (a connection whose client sent its last request within `keepalive_park_after`,
//! 250 ms by default, of the answer before, only once it has rested that long: such a client
//! sends back to back, is at rest only for the round trip between requests, and taking its
//! session apart and making it again each time cost 0.8 µs a request, measured with wrk -c50 on
//! a small file; the first session of every connection is parked at once, so a burst of new
//! connections never holds its buffers), which hyper does at once for an idle connection, and handed back with
//! `poll_without_shutdown`/`into_parts` (the socket, and any bytes hyper had read ahead, which
//! the next session reads first). The parked connection is then only the socket, its counters
//! and a small task ([`park`] waits on the TCP socket's readiness, which needs no buffer); its
//! session's future (boxed) and hyper's buffers are freed. When the client sends again, a new
//! session starts. A TLS connection parks the same way on the TCP socket beneath: a session is at
//! rest only after hyper's read found nothing, so rustls holds no unread plaintext then (rustls's
//! own per-connection state stays). HTTP/2 is not parked (h2 reads frames of its own between
//! requests, and multiplexes): one session for the connection's life.
//!
//! Limits applied here (DESIGN §2.1): `max_request_bytes` bounds hyper's HTTP/1.1 read buffer
//! (hyper's minimum is 8 KiB; too large a head gets 431 from hyper and HTTPERR `RequestLength`)
//! and is HTTP/2's `SETTINGS_MAX_HEADER_LIST_SIZE`; a malformed head gets 400 from hyper and an
//! HTTPERR line with the reason [`crate::conformance::parse_error_reason`] names; HTTP/2's own
//! limits come from `[limits]`'s `http2_*` keys (concurrent streams, flow-control windows, and the
//! reset-stream floods of CVE-2023-44487, beyond which h2 closes the connection with GOAWAY);
//! keep-alive pings are off (idle connections are the watchdog's). A connection accepted past
//! `max_connections` ([`crate::accept`] decides) gets its requests answered 503 `ConnLimit` and is
//! closed after the first (HTTP/1.1 without keep-alive; HTTP/2 with GOAWAY).
//!
//! The timers are kept here rather than with hyper's `header_read_timeout` (which is off): hyper
//! runs that timer while a keep-alive connection is idle too, which would cut idle connections
//! at the header-wait time instead of `connection_timeout`. A connection with no request in
//! flight and no bytes for `connection_timeout` is closed (`Timer_ConnectionIdle`; a parked one by
//! [`park`]'s deadline, a session's by its watchdog tick), and one that began an HTTP/1.1 request
//! head and did not finish it within `header_wait_timeout` (`Timer_HeaderWait`). An HTTP/2
//! connection reads frames of its own between requests (SETTINGS, PING, WINDOW_UPDATE), so it is
//! idle when no stream is in flight, whatever it reads; it is closed with GOAWAY. Request body
//! stalls are timed per request by [`crate::body`]; a client reading responses too slowly by
//! [`slow_reader`]. Shutdown and listener handover (`Phase::Graceful`) shut every connection down
//! gracefully: HTTP/2 sends GOAWAY and finishes its streams; HTTP/1.1 answers its next request
//! with `Connection: close` and closes after it, and a connection that stays idle (parked) for
//! [`DRAIN_IDLE`] is closed (closing an idle keep-alive connection at once races a request the
//! client may be sending on it: the client would see a reset instead of an answer).
//!
//! [`ConnState`] holds only what belongs to the connection (bytes read, requests in flight,
//! when it went idle); each request's — each stream's — own state lives with the request
//! ([`crate::request`]), so one stream's fault touches no other.
//! Layering: called by [`crate::accept`]; uses [`crate::request`], [`crate::response`] (one
//! more layer), [`crate::state`], [`crate::log`] and [`crate::proxy`]. Never runs application
//! code.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bulkhead_config::Limits;
use bytes::{Buf, Bytes, BytesMut};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};

use crate::log::HttpErrRecord;
use crate::request::{Answer, ConnInfo};
use crate::response::{End, Layered, OnEnd};
use crate::routing::Table;
use crate::state::{Phase, Shared};

/// A response body as the connection sends it: the request path's [`Answer`] under the
/// connection's in-flight layer.
pub type ConnBody = Layered<Answer, InFlight>;

/// A client connection's byte stream, with the TCP socket beneath it (the one a parked
/// connection waits on).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    fn tcp(&self) -> &TcpStream;
}

impl Stream for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl<S: Stream> Stream for tokio_rustls::server::TlsStream<S> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0.tcp()
    }
}

/// One client connection's counters, shared by its watchdog, its I/O and its in-flight layers.
pub struct ConnState {
    start: Instant,
    bytes_read: AtomicU64,
    in_flight: AtomicU32,
    /// `bytes_read` when the connection last had no request in flight.
    idle_bytes: AtomicU64,
    /// Milliseconds since `start` when the connection last had no request in flight.
    idle_since_ms: AtomicU64,
    /// The client opened with the HTTP/2 preface (set by [`sniff`]).
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

    /// Notes a write's outcome for [`slow_reader`] and for [`ConnState::at_rest`].
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

    /// Between requests with nothing pending either way: no request in flight, the last write
    /// went out whole, and no byte came since the last response ended. Checked after hyper's
    /// connection returned `Pending`, this means hyper is idle, waiting for the next request,
    /// with empty buffers.
    fn at_rest(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
            && !self.write_blocked.load(Ordering::Relaxed)
            && self.bytes_read.load(Ordering::Relaxed) == self.idle_bytes.load(Ordering::Relaxed)
    }

    /// `n` bytes already counted as read are to be read again (hyper had read them ahead of the
    /// request it finished): they are bytes since the connection went idle.
    fn unread(&self, n: usize) {
        let read = self.bytes_read.load(Ordering::Relaxed);
        let idle = self.idle_bytes.load(Ordering::Relaxed);
        self.idle_bytes.store(idle.min(read.saturating_sub(n as u64)), Ordering::Relaxed);
    }

    fn idle_since(&self) -> Instant {
        self.start + Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed))
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

/// How long closing a connection may wait for its last bytes (TLS's `close_notify`) to go out.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

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

/// The connection's timer settings, from the `[limits]` current at accept.
#[derive(Debug, Clone, Copy)]
struct Timers {
    header_wait: Duration,
    idle: Duration,
    min_rate: u64,
    grace: Duration,
    /// How often a session's watchdog looks.
    tick: Duration,
    /// How long an HTTP/1.1 session rests before it is parked (`keepalive_park_after`).
    park_after: Duration,
}

impl Timers {
    fn new(limits: &Limits) -> Self {
        let (header_wait, idle) = (limits.header_wait_timeout, limits.connection_timeout);
        Timers {
            header_wait,
            idle,
            min_rate: limits.min_bytes_per_sec,
            grace: limits.min_bytes_grace,
            tick: (header_wait.min(idle) / 8).clamp(Duration::from_millis(50), Duration::from_secs(5)),
            park_after: limits.keepalive_park_after,
        }
    }
}

/// What every session of one connection shares.
struct Ctx {
    /// The connection's facts, the listener's shared state among them (`info.shared`).
    info: Arc<ConnInfo>,
    state: Arc<ConnState>,
    timers: Timers,
    /// hyper's HTTP/1.1 read buffer bound, from `max_request_bytes`.
    max_buf: usize,
}

impl Ctx {
    /// The connection is over: it no longer counts against its site's `max_connections`.
    fn closed(&self) {
        if let Some(site) = self.info.site_connections.get() {
            site.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn http_err(&self, reason: &'static str, status: Option<u16>) {
        self.info.shared.log.http_err(HttpErrRecord {
            when: SystemTime::now(),
            client: self.info.peer,
            server: self.info.local,
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

/// The stream as hyper reads it: counted, with bytes already read handed out first.
type Io<S> = TokioIo<ClientIo<S>>;

/// Serves one accepted connection until it closes, a timer cuts it, or the listener aborts.
/// `table` is the configuration current at accept (its limits set up the connection; each
/// request takes the table current when it arrives; HTTP/2's settings are taken from it here).
///
/// Not an `async fn`: the setup is done here and only what the connection keeps goes into the
/// future (an `async fn` keeps its arguments for its whole life, the stream twice over).
pub fn serve<S: Stream>(
    shared: Arc<Shared>,
    table: Arc<Table>,
    stream: S,
    ends: Endpoints,
    over_limit: bool,
) -> impl Future<Output = ()> + Send {
    let Endpoints { socket, local, peer, tls } = ends;
    let state = Arc::new(ConnState::new());
    let peer_ip = crate::proxy::client_ip_value(peer.ip());
    let info =
        Arc::new(ConnInfo { shared, socket, local, peer, peer_ip, over_limit, tls, site_connections: OnceLock::new() });
    let limits = &table.limits;
    let max_buf = (limits.max_request_bytes as usize).max(8192);
    let phase = info.shared.phase();
    let ctx = Ctx { info, state: state.clone(), timers: Timers::new(limits), max_buf };
    let io = ClientIo { inner: stream, state, prefix: Bytes::new() };
    run(ctx, io, phase, table)
}

/// The connection's life: the first bytes, then HTTP/2's one session or HTTP/1.1's sessions
/// with the connection parked between them.
async fn run<S: Stream>(ctx: Ctx, mut io: ClientIo<S>, mut phase: watch::Receiver<Phase>, table: Arc<Table>) {
    if *phase.borrow_and_update() != Phase::Running {
        ctx.state.draining.store(true, Ordering::Relaxed);
    }
    // Boxed, like each session: the task of a parked connection is sized for parking only.
    let sniffed = Box::pin(sniff(&mut io, &ctx.timers)).await;
    let http2 = match sniffed {
        Ok(Some((prefix, http2))) => {
            io.prefix = prefix;
            http2
        }
        Ok(None) => return ctx.closed(),
        Err(reason) => {
            ctx.http_err(reason, None);
            return ctx.closed();
        }
    };
    if http2 {
        ctx.state.http2.store(true, Ordering::Relaxed);
        let h2 = h2_session(&ctx, io, &mut phase, table);
        h2.await;
        return ctx.closed();
    }
    drop(table);
    // The first session is parked as soon as it is at rest: most connections that go quiet
    // after a request stay quiet (a browser's keep-alive), and a burst of new ones must not
    // hold their buffers for `park_after` each.
    let mut park_after = Duration::ZERO;
    loop {
        let h1 = h1_session(&ctx, io, &mut phase, park_after);
        let Some(back) = h1.await else {
            break;
        };
        io = back;
        if io.prefix.is_empty() && !park(io.inner.tcp(), &ctx, &mut phase).await {
            break;
        }
        // Woken within `park_after` of its last answer (or with the next request read ahead):
        // a client sending back to back, whose next session rests that long before it is
        // parked. Otherwise parked at once again.
        let quick = !io.prefix.is_empty() || ctx.state.idle_since().elapsed() < ctx.timers.park_after;
        park_after = if quick { ctx.timers.park_after } else { Duration::ZERO };
    }
    ctx.closed();
}

/// A session's future is made apart from [`run`] and boxed, hyper's connection inside it: a
/// parked connection (and the task sized for it) holds none of a session's state.
type SessionFuture<'a, S> = Pin<Box<dyn Future<Output = Option<ClientIo<S>>> + Send + 'a>>;

/// The next HTTP/1.1 session on `io`.
fn h1_session<'a, S: Stream>(
    ctx: &'a Ctx,
    io: ClientIo<S>,
    phase: &'a mut watch::Receiver<Phase>,
    park_after: Duration,
) -> SessionFuture<'a, S> {
    let conn = http1_builder(ctx.max_buf, ctx.info.over_limit).serve_connection(TokioIo::new(io), Requests::new(ctx));
    Box::pin(session(ctx, Proto::H1(conn), phase, park_after))
}

/// An HTTP/2 connection's one session, with HTTP/2's settings from the `table` of its accept.
fn h2_session<'a, S: Stream>(
    ctx: &'a Ctx,
    io: ClientIo<S>,
    phase: &'a mut watch::Receiver<Phase>,
    table: Arc<Table>,
) -> SessionFuture<'a, S> {
    let conn = http2_builder(&table.limits, ctx.info.over_limit).serve_connection(TokioIo::new(io), Requests::new(ctx));
    let mut conn = Proto::H2(Box::pin(conn));
    if ctx.state.draining.load(Ordering::Relaxed) {
        // Accepted while draining: GOAWAY at once; the streams the client opens finish.
        conn.graceful_shutdown();
    }
    Box::pin(session(ctx, conn, phase, Duration::ZERO))
}

/// Reads the connection's first bytes, as many as tell HTTP/2's preface from anything else (24,
/// or fewer once one differs), within `connection_timeout` for the first byte and
/// `header_wait_timeout` for the rest. Returns them and whether they are the preface; `None` if
/// the client closed or failed before sending anything; `Err` with the HTTPERR reason when a
/// timer ran out.
async fn sniff<S: Stream>(io: &mut ClientIo<S>, t: &Timers) -> Result<Option<(Bytes, bool)>, &'static str> {
    let mut buf = [0u8; H2_PREFACE.len()];
    let n = match tokio::time::timeout(t.idle, io.read(&mut buf)).await {
        Err(_) => return Err("Timer_ConnectionIdle"),
        Ok(Err(_) | Ok(0)) => return Ok(None),
        Ok(Ok(n)) => n,
    };
    let mut n = n;
    let deadline = tokio::time::Instant::now() + t.header_wait;
    while n < buf.len() && buf[..n] == H2_PREFACE[..n] {
        match tokio::time::timeout_at(deadline, io.read(&mut buf[n..])).await {
            Err(_) => return Err("Timer_HeaderWait"),
            Ok(Err(_) | Ok(0)) => break,
            Ok(Ok(more)) => n += more,
        }
    }
    Ok(Some((Bytes::copy_from_slice(&buf[..n]), &buf[..n] == H2_PREFACE)))
}

/// Waits for a parked HTTP/1.1 connection's next bytes, holding no buffer: true when the client
/// sent something (or closed: the next session reads the end), false when the connection is to
/// be closed — `connection_timeout` since it went idle (HTTPERR `Timer_ConnectionIdle`), or
/// [`DRAIN_IDLE`] into a drain, or the listener aborting.
async fn park(tcp: &TcpStream, ctx: &Ctx, phase: &mut watch::Receiver<Phase>) -> bool {
    let idle_deadline = ctx.state.idle_since() + ctx.timers.idle;
    let mut drain_deadline = None;
    let mut now = *phase.borrow_and_update();
    loop {
        match now {
            Phase::Running => {}
            Phase::Graceful => {
                ctx.state.draining.store(true, Ordering::Relaxed);
                drain_deadline.get_or_insert_with(|| Instant::now() + DRAIN_IDLE);
            }
            Phase::Abort => return false,
        }
        let deadline = drain_deadline.map_or(idle_deadline, |d: Instant| d.min(idle_deadline));
        tokio::select! {
            // Polled, not `readable()`: tokio keeps the waker in the socket's own registration,
            // so waiting takes no room in the task.
            ready = std::future::poll_fn(|cx| tcp.poll_read_ready(cx)) => return ready.is_ok(),
            _ = tokio::time::sleep_until(deadline.into()) => {
                if deadline == idle_deadline {
                    ctx.http_err("Timer_ConnectionIdle", None);
                }
                return false;
            }
            changed = phase.changed() => now = if changed.is_ok() { *phase.borrow_and_update() } else { Phase::Abort },
        }
    }
}

/// One session of a connection (all of an HTTP/2 connection; an HTTP/1.1 connection's requests
/// until it is at rest): hyper's connection under the watchdog. Returns the stream when the
/// session ended at rest and the connection is to be parked; `None` when it is over.
async fn session<S: Stream>(
    ctx: &Ctx,
    mut conn: Proto<Io<S>>,
    phase: &mut watch::Receiver<Phase>,
    park_after: Duration,
) -> Option<ClientIo<S>> {
    let state = &ctx.state;
    let t = ctx.timers;
    let http2 = matches!(conn, Proto::H2(_));
    let over_limit = ctx.info.over_limit;
    let tick = tokio::time::sleep(t.tick);
    let mut tick = std::pin::pin!(tick);
    let mut head_seen: Option<(Instant, u64)> = None;
    let mut blocked: Option<(Instant, u64)> = None;
    let mut goaway_sent = false;
    let mut parking = false;
    // When a session at rest is parked (armed at its first rest; see `poll_session`).
    let rest = tokio::time::sleep(park_after);
    let mut rest = std::pin::pin!(rest);
    let ended = loop {
        tokio::select! {
            r = std::future::poll_fn(|cx| conn.poll_session(cx, state, &mut parking, rest.as_mut(), park_after)) => break Some(r),
            _ = tick.as_mut() => {
                tick.as_mut().reset(tokio::time::Instant::now() + t.tick);
                let slow = slow_reader(state, &mut blocked, t.min_rate, t.grace);
                if let Some(reason) = slow.or_else(|| watchdog(state, http2, &mut head_seen, t.header_wait, t.idle)) {
                    if http2 && goaway_sent {
                        // The client had a tick to take the GOAWAY and close.
                        break None;
                    }
                    ctx.http_err(reason, None);
                    if !http2 {
                        break None;
                    }
                    conn.graceful_shutdown();
                    goaway_sent = true;
                }
            }
            _ = state.refused.notified(), if over_limit && !goaway_sent => {
                conn.graceful_shutdown();
                goaway_sent = true;
            }
            changed = phase.changed() => {
                let now = if changed.is_ok() { *phase.borrow_and_update() } else { Phase::Abort };
                match now {
                    Phase::Running => {}
                    // HTTP/2: GOAWAY, and the streams in flight finish. HTTP/1.1: the next
                    // response says `Connection: close`; a connection left idle is parked, and
                    // [`park`] closes it after DRAIN_IDLE.
                    Phase::Graceful if http2 => {
                        conn.graceful_shutdown();
                        goaway_sent = true;
                    }
                    Phase::Graceful => state.draining.store(true, Ordering::Relaxed),
                    Phase::Abort => break None,
                }
            }
        }
    };
    if let Some(Err(e)) = &ended {
        let (reason, status) = if e.is_parse_too_large() {
            ("RequestLength", Some(431))
        } else if e.is_parse() {
            (crate::conformance::parse_error_reason(e), Some(400))
        } else {
            ("", None)
        };
        if reason.is_empty() {
            tracing::debug!("connection from {}: {e}", ctx.info.peer);
        } else {
            ctx.http_err(reason, status);
        }
    }
    let (Some(end), Proto::H1(conn)) = (ended, conn) else {
        // HTTP/2's connection closed itself; a connection a timer cut is dropped.
        return None;
    };
    let parts = conn.into_parts();
    let mut io = parts.io.into_inner();
    if end.is_ok() && parking {
        state.unread(parts.read_buf.len());
        io.unread(parts.read_buf);
        return Some(io);
    }
    // hyper is done with it (the client closed, no keep-alive, or a refused head after hyper's
    // 400): send FIN after the last response, as hyper would, so the client reads the end of the
    // stream and not a reset for the bytes it sent after the refused head.
    let _ = tokio::time::timeout(CLOSE_WAIT, io.shutdown()).await;
    None
}

/// hyper's connection, either protocol.
// HTTP/1.1's inline (it lives in its session's boxed future); HTTP/2's boxed, to be `Unpin`.
#[allow(clippy::large_enum_variant)]
enum Proto<I> {
    H1(http1::Connection<I, Requests>),
    H2(Pin<Box<http2::Connection<I, Requests, TokioExecutor>>>),
}

impl<S: Stream> Proto<Io<S>> {
    /// Polls the connection; an HTTP/1.1 one found at rest for `park_after` is told to shut
    /// down gracefully (hyper closes an idle connection at once) and marked `parking`, so that
    /// it ends with its stream kept. Until then `rest` is armed for the moment it will have
    /// rested long enough: it is reset only when it has fired (or would fire late), so a busy
    /// connection, at rest for a round trip between requests, costs a clock read per request
    /// and one timer reset per `park_after`, where parking it would take hyper's connection
    /// apart and build it again for every request.
    fn poll_session(
        &mut self,
        cx: &mut Context<'_>,
        state: &ConnState,
        parking: &mut bool,
        mut rest: Pin<&mut tokio::time::Sleep>,
        park_after: Duration,
    ) -> Poll<hyper::Result<()>> {
        match self {
            Proto::H2(conn) => conn.as_mut().poll(cx),
            Proto::H1(conn) => loop {
                let r = conn.poll_without_shutdown(cx);
                if r.is_ready() || *parking || !state.at_rest() {
                    return r;
                }
                let due = tokio::time::Instant::from_std(state.idle_since() + park_after);
                if tokio::time::Instant::now() < due {
                    if rest.is_elapsed() || rest.deadline() > due {
                        rest.as_mut().reset(due);
                    }
                    if rest.as_mut().poll(cx).is_pending() {
                        return r;
                    }
                    // It fired: look again (at rest still, and now rested long enough).
                    continue;
                }
                Pin::new(&mut *conn).graceful_shutdown();
                *parking = true;
            },
        }
    }

    fn graceful_shutdown(&mut self) {
        match self {
            Proto::H1(conn) => Pin::new(conn).graceful_shutdown(),
            Proto::H2(conn) => conn.as_mut().graceful_shutdown(),
        }
    }
}

/// The connection's service: each request under the in-flight layer, through the request path.
struct Requests {
    info: Arc<ConnInfo>,
    state: Arc<ConnState>,
}

impl Requests {
    fn new(ctx: &Ctx) -> Self {
        Requests { info: ctx.info.clone(), state: ctx.state.clone() }
    }
}

type Answered = Result<hyper::Response<ConnBody>, Infallible>;

impl hyper::service::Service<hyper::Request<Incoming>> for Requests {
    type Response = hyper::Response<ConnBody>;
    type Error = Infallible;
    // Boxed, so the request path's large future lives only while a request is in flight.
    type Future = Pin<Box<dyn Future<Output = Answered> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::start(&self.state);
        let info = self.info.clone();
        let http1 = req.version() != http::Version::HTTP_2;
        Box::pin(async move {
            let mut resp = crate::request::handle(&info, req).await?;
            if info.over_limit {
                in_flight.0.refused.notify_one();
            }
            if http1 && in_flight.0.draining.load(Ordering::Relaxed) {
                resp.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
            }
            Ok(resp.map(|body| ConnBody::new(body, in_flight)))
        })
    }
}

/// hyper's HTTP/1.1 settings for one connection (each of its sessions).
fn http1_builder(max_buf: usize, over_limit: bool) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder.keep_alive(!over_limit).header_read_timeout(None).max_buf_size(max_buf);
    builder
}

/// hyper's HTTP/2 settings from `[limits]`.
fn http2_builder(limits: &Limits, over_limit: bool) -> http2::Builder<TokioExecutor> {
    let h2 = &limits.http2;
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
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
        return (state.idle_since().elapsed() >= idle).then_some("Timer_ConnectionIdle");
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
    (state.idle_since().elapsed() >= idle).then_some("Timer_ConnectionIdle")
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

/// The client stream as hyper reads it: bytes already read handed out first (the sniffed
/// preface bytes; what hyper had read ahead when its session ended), then the stream, counting
/// bytes read for the watchdog and bytes written (and whether the last write blocked) for
/// [`slow_reader`].
struct ClientIo<S> {
    inner: S,
    state: Arc<ConnState>,
    /// Read already (and counted), to be read again first.
    prefix: Bytes,
}

impl<S> ClientIo<S> {
    /// Puts `bytes`, read from the stream after `self.prefix` was, back in front of the rest.
    fn unread(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        if self.prefix.is_empty() {
            self.prefix = bytes;
        } else {
            // hyper read part of the prefix and more after it: what it read comes first.
            let mut joined = BytesMut::with_capacity(bytes.len() + self.prefix.len());
            joined.extend_from_slice(&bytes);
            joined.extend_from_slice(&self.prefix);
            self.prefix = joined.freeze();
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ClientIo<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            if self.prefix.is_empty() {
                // Let go of the buffer the bytes were in (hyper's read buffer, after a session).
                self.prefix = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.state.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ClientIo<S> {
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

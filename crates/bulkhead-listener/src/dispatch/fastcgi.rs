//! FastCGI to a responder (php-cgi, php-fpm) over a unix socket or TCP port: the
//! [`Transport`] for `kind = "fastcgi"` pools (`Protocol::Fastcgi`).
//!
//! Request id 1, one request at a time on a connection. **Kept connections** (`FCGI_KEEP_CONN`,
//! which php-cgi and php-fpm both honour): a worker whose concurrency is 1 (the default for
//! `fastcgi` pools) keeps its connection open after a response read to its `FCGI_END_REQUEST`,
//! and its next bodiless GET or HEAD goes on it: no `socket`/`connect`/`close` here nor
//! `accept`/`close` in PHP per request (bench/php: 0.89× nginx + php-fpm without, 1.16–1.26×
//! with; bench/RESULTS.md).
//! The rules that make this safe with responders that share one listening socket:
//! - A kept connection holds one responder process in its read of the next request. So each
//!   worker keeps at most one, and only when it takes one request at a time: then a pool never
//!   has more connections open than it has workers, and every fresh connection finds a process
//!   that will accept it. With `concurrency` above 1 (a php-fpm behind `connect`, a php-cgi
//!   with `PHP_FCGI_CHILDREN`) a kept connection could hold the last free process while a fresh
//!   one waits behind it for ever, so nothing is kept there (nginx's default). Nor for a server
//!   Bulkhead does not run (`connect`): `php-cgi -b` retries its read through `SIGTERM`, so a
//!   connection held here would keep it from stopping.
//! - A request that does not ride the kept connection (a body, a method other than GET or
//!   HEAD) closes it first, for the same reason, and goes on a fresh connection that is closed
//!   after it.
//! - A kept connection can be dead (php-cgi exits after `PHP_FCGI_MAX_REQUESTS`, right after its
//!   last answer). It is checked when taken (a read that would block: still open), and when it
//!   still fails before a single record comes back, the request is sent once more on a fresh
//!   connection: a responder that had taken it would have answered or died with it, and only a
//!   GET or HEAD, which may run twice, is ever on a kept connection.
//! - A draining or removed worker closes its kept connection ([`Transport::close_idle`]), and
//!   while it is not dropped yet no worker of the pool keeps one ([`PoolShare`]): the connection
//!   another worker keeps may be the one that holds the retiring process, which php-cgi's
//!   `SIGTERM` would not get out of its read. A response cut short (the client left) closes
//!   its connection instead of keeping it; so does a HEAD, whose body is never read.
//!
//! The request: `FCGI_BEGIN_REQUEST` and the CGI/1.1 variables as `FCGI_PARAMS` in one write
//! ([`params`]), then the body streamed as `FCGI_STDIN` records by a small task, chunk by
//! chunk as it arrives from the client (never collected whole here), while the response is read
//! at the same time (a script may answer before it reads its input). The variables come from the
//! request and its [`CgiFacts`] extension, which the request path attaches (connection
//! addresses, TLS, and the [`CgiScript`] a static route's handler resolved). `HTTP_PROXY` is
//! never set (httpoxy), nor `HTTP_CONTENT_TYPE`/`HTTP_CONTENT_LENGTH` (they are
//! `CONTENT_TYPE`/`CONTENT_LENGTH`). A responder reads only `CONTENT_LENGTH` bytes, so a
//! chunked body sent with `request_buffering = false` reaches it as empty (php-fpm behind nginx
//! has the same rule; with the default buffering the body is spooled and gets a length).
//!
//! The response: `FCGI_STDOUT` is a CGI response (RFC 3875 6): its header block is read with
//! `httparse`'s header parser (the body is never parsed), `Status:` gives the status (default
//! 200), a `Location` without `Status` is a 302 (a local redirect, 6.2.2, is not re-dispatched
//! internally: PHP sets `Status: 302` itself in practice), and the rest streams to the client as
//! records arrive — each STDOUT record's content is a zero-copy slice of the read buffer.
//! `FCGI_STDERR` lines go to the manager (`ListenerToManager::WorkerStderr`), which writes them
//! to the pool's log with the worker id, as it does the workers' own stderr; only if the manager
//! cannot be reached are they written to the listener's error log. `FCGI_END_REQUEST` ends the
//! body. A responder that closes the
//! connection before `FCGI_END_REQUEST`: before any header line it is a [`DispatchError`] (the
//! request path answers 502), after it the body fails, so the client connection is cut — both
//! logged. Uses only [`crate::body`], [`crate::error`] and [`crate::to_manager`]; reached only through
//! [`crate::dispatch::Worker`].

pub mod record;

use std::future::Future as _;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{ready, Context, Poll};

use bulkhead_proto::{ListenerToManager, WorkerAddress, WorkerId};
use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{tcp, unix};
use tokio::task::JoinHandle;

use self::record::{Params, Record, MAX_CONTENT, STDIN};
use super::{Failure, Transport};
use crate::body::{BoxError, RequestBody};
use crate::error::DispatchError;
use crate::to_manager::ControlTx;

/// The request id of the one request on each connection.
const ID: u16 = 1;
/// The longest CGI header block accepted from a responder.
const MAX_HEAD: usize = 64 * 1024;
/// Header lines of a CGI response, at most.
const MAX_HEADERS: usize = 100;
/// Read buffer growth per read.
const READ_CHUNK: usize = 16 * 1024;

/// What the request path knows about a request that CGI variables need; a request extension.
#[derive(Debug, Clone)]
pub struct CgiFacts {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub https: bool,
    /// The script a static route's handler resolved; `None` on a plain pool route (then
    /// `SCRIPT_NAME` is the URL path and there is no `SCRIPT_FILENAME`).
    pub script: Option<CgiScript>,
}

/// A handler's script (see `static_files::Script`).
#[derive(Debug, Clone)]
pub struct CgiScript {
    pub filename: PathBuf,
    pub name: String,
    pub path_info: String,
    pub document_root: PathBuf,
}

/// The FastCGI transport of one worker.
pub struct FastcgiTransport {
    worker: WorkerId,
    share: Arc<PoolShare>,
    address: WorkerAddress,
    /// The kept connection (`FCGI_KEEP_CONN`), when the worker takes one request at a time.
    kept: Option<Arc<KeptConn>>,
    /// Whether this worker counts in its pool's [`PoolShare::retiring`] (it was closed).
    retiring: AtomicBool,
}

/// One connection to a responder, both halves.
struct Conn {
    reader: Reader,
    wr: WriteHalf,
}

/// What the kept connections of one pool's workers share: they all reach the same processes
/// through one listening socket, so a connection one worker keeps may hold another worker's
/// process. Held by the pool's queue.
pub struct PoolShare {
    pool: Arc<str>,
    /// Where `FCGI_STDERR` lines go: to the manager, which writes them to the pool's log.
    control: Option<ControlTx>,
    /// Workers of the pool that are draining or stopped and not dropped yet. While there is one,
    /// nothing is kept: its process must be found in `accept` (or in a request) by the
    /// `SIGTERM` that stops it, not in the read of a kept connection (php-cgi retries that read
    /// through the signal and would wait there for the stop time limit).
    retiring: AtomicU32,
    conns: Mutex<Vec<Weak<KeptConn>>>,
}

impl PoolShare {
    /// `control`: the channel to the manager (`None`: stderr goes to the listener's error log).
    pub fn new(pool: &str, control: Option<ControlTx>) -> Self {
        PoolShare { pool: Arc::from(pool), control, retiring: AtomicU32::new(0), conns: Mutex::new(Vec::new()) }
    }

    /// Sends what a responder wrote to `FCGI_STDERR` to the pool's log, line by line.
    fn stderr(&self, worker: WorkerId, content: &[u8]) {
        let lines: Vec<String> = content
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| String::from_utf8_lossy(l.strip_suffix(b"\r").unwrap_or(l)).into_owned())
            .collect();
        if lines.is_empty() {
            return;
        }
        let pool = self.pool.to_string();
        let unsent = match &self.control {
            Some(control) => match control.send(ListenerToManager::WorkerStderr { pool, worker, lines }) {
                Ok(()) => return,
                Err(e) => match e.0 {
                    ListenerToManager::WorkerStderr { lines, .. } => lines,
                    _ => return,
                },
            },
            None => lines,
        };
        for line in unsent {
            tracing::warn!("pool {:?}: FastCGI worker {worker} stderr: {line}", &*self.pool);
        }
    }

    fn paused(&self) -> bool {
        self.retiring.load(Ordering::SeqCst) > 0
    }

    fn register(&self, kept: &Arc<KeptConn>) {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.retain(|k| k.strong_count() > 0);
        conns.push(Arc::downgrade(kept));
    }

    /// A worker of the pool retires: every idle kept connection of the pool is closed now.
    fn retire(&self) {
        self.retiring.fetch_add(1, Ordering::SeqCst);
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        for kept in conns.iter().filter_map(Weak::upgrade) {
            drop(kept.lock().take());
        }
    }

    fn retired(&self) {
        self.retiring.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A worker's one kept connection, shared with the response body that has it lent.
struct KeptConn {
    idle: Mutex<Option<Conn>>,
    closed: AtomicBool,
    share: Arc<PoolShare>,
}

impl KeptConn {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Conn>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a request may go on a kept connection now.
    fn open(&self) -> bool {
        !self.closed.load(Ordering::Relaxed) && !self.share.paused()
    }

    /// The idle connection, if there is one the responder has not closed.
    fn take(&self) -> Option<Conn> {
        let conn = self.lock().take()?;
        // Nothing may arrive on an idle connection: readable means closed (or garbage).
        let mut byte = [0u8; 1];
        match conn.reader.rd.try_read(&mut byte) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && conn.reader.buf.is_empty() => Some(conn),
            _ => None,
        }
    }

    /// Keeps a connection whose response was read to its `FCGI_END_REQUEST`. The check is made
    /// under the slot's lock, which [`PoolShare::retire`] takes after it counts: either this sees
    /// the pause, or the retire closes what this kept.
    fn give_back(&self, conn: Conn) {
        let mut idle = self.lock();
        if self.open() && conn.reader.buf.is_empty() {
            *idle = Some(conn);
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        drop(self.lock().take());
    }
}

impl FastcgiTransport {
    /// `share`: what the pool's FastCGI workers share. `keep`: keep a connection between
    /// requests (only for a worker the manager runs whose concurrency is 1; see the module doc).
    pub fn new(worker: WorkerId, address: WorkerAddress, share: &Arc<PoolShare>, keep: bool) -> Self {
        let kept = keep.then(|| {
            let kept =
                Arc::new(KeptConn { idle: Mutex::new(None), closed: AtomicBool::new(false), share: share.clone() });
            share.register(&kept);
            kept
        });
        FastcgiTransport { worker, share: share.clone(), address, kept, retiring: AtomicBool::new(false) }
    }

    fn fail(&self, sent: bool, reason: impl std::fmt::Display) -> DispatchError {
        DispatchError::Fastcgi { worker: self.worker, sent, reason: reason.to_string() }
    }

    async fn connect(&self) -> Result<(ReadHalf, WriteHalf), DispatchError> {
        let connect_error = |source| DispatchError::Connect {
            worker: self.worker,
            address: match &self.address {
                WorkerAddress::Unix(p) => p.display().to_string(),
                WorkerAddress::Tcp(a) => a.to_string(),
            },
            source,
        };
        match &self.address {
            WorkerAddress::Unix(path) => {
                let (r, w) = tokio::net::UnixStream::connect(path).await.map_err(connect_error)?.into_split();
                Ok((ReadHalf::Unix(r), WriteHalf::Unix(w)))
            }
            WorkerAddress::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr).await.map_err(connect_error)?;
                let _ = stream.set_nodelay(true);
                let (r, w) = stream.into_split();
                Ok((ReadHalf::Tcp(r), WriteHalf::Tcp(w)))
            }
        }
    }
}

impl Transport for FastcgiTransport {
    type Body = FastcgiBody;

    /// Closes the kept connection, if any, and keeps none from now on; the pool's other workers
    /// keep none either until this one is dropped (see [`PoolShare::retiring`]).
    fn close_idle(&self) {
        if let Some(kept) = &self.kept {
            kept.close();
            if !self.retiring.swap(true, Ordering::SeqCst) {
                kept.share.retire();
            }
        }
    }

    async fn send(&self, request: Request<RequestBody>) -> Result<Response<FastcgiBody>, Failure> {
        let empty = request.body().is_end_stream();
        let kept = self.kept.as_ref();
        let keep = kept.filter(|k| empty && matches!(*request.method(), Method::GET | Method::HEAD) && k.open());
        if keep.is_none() {
            // The idle kept connection pins a responder process in its read; the fresh
            // connection this request needs may need that very process.
            if let Some(k) = kept {
                drop(k.take());
            }
        }
        let (parts, body) = request.into_parts();
        let mut out = BytesMut::with_capacity(2048);
        record::begin_request(&mut out, ID, keep.is_some());
        params(&mut out, &parts);
        if empty {
            out.put_slice(&record::header(STDIN, ID, 0, 0));
        }
        if let Some(kept) = keep {
            return match self.send_kept(kept, &out).await {
                Ok(response) => Ok(response),
                Err(Unsent(error)) => Err(Failure { error, request: Some(Request::from_parts(parts, body)) }),
                Err(Sent(error)) => Err(Failure { error, request: None }),
            };
        }
        let (rd, mut wr) = match self.connect().await {
            Ok(halves) => halves,
            Err(error) => return Err(Failure { error, request: Some(Request::from_parts(parts, body)) }),
        };
        if let Err(e) = wr.write_all(&out).await {
            let error = self.fail(false, format_args!("writing the request: {e}"));
            return Err(Failure { error, request: Some(Request::from_parts(parts, body)) });
        }
        // The writing half is dropped as soon as the input is written (here without a body, by
        // the pump after it), which shuts it down (`SHUT_WR`): PHP's `fcgi_close` reads a
        // connection that is not kept to its end before it closes it and accepts the next, so
        // an early end of input spares its process a wait for this side to close.
        let mut pump = if empty {
            drop(wr);
            None
        } else {
            Some(Pump(tokio::spawn(stdin(wr, body))))
        };
        let mut reader = Reader::new(rd);
        match self.read_head(&mut reader, &mut pump).await {
            Ok((resp, first)) => Ok(resp.map(|()| FastcgiBody::new(reader, first, pump, None, self))),
            Err(e) => Err(self.head_failure(e)),
        }
    }
}

impl Drop for FastcgiTransport {
    fn drop(&mut self) {
        if let (Some(kept), true) = (&self.kept, *self.retiring.get_mut()) {
            kept.share.retired();
        }
    }
}

/// Why [`FastcgiTransport::send_kept`] failed.
enum KeptFailure {
    /// Nothing reached a responder: the request can go elsewhere.
    Unsent(DispatchError),
    /// The responder had it.
    Sent(DispatchError),
}
use KeptFailure::{Sent, Unsent};

/// Why no response head was read.
enum HeadError {
    /// The connection ended or failed before a single record came back.
    Nothing(String),
    /// The responder answered something that is not a response head, or ended inside it.
    Bad(String),
    /// The client's request body failed (too large, stalled, reset).
    ClientBody(BoxError),
}

impl FastcgiTransport {
    fn failure(&self, reason: impl std::fmt::Display) -> Failure {
        tracing::warn!("pool {:?}: FastCGI worker {}: {reason}", &*self.share.pool, self.worker);
        Failure { error: self.fail(true, reason), request: None }
    }

    fn head_failure(&self, e: HeadError) -> Failure {
        match e {
            HeadError::Nothing(why) | HeadError::Bad(why) => self.failure(why),
            HeadError::ClientBody(e) => Failure { error: DispatchError::ClientBody(e.to_string()), request: None },
        }
    }

    /// A bodiless GET or HEAD (`out`, its whole request) on the kept connection, or on a fresh
    /// one that is kept afterwards. A kept connection can be dead without this side knowing yet
    /// (php-cgi exits after `PHP_FCGI_MAX_REQUESTS`, just after its last answer): when writing
    /// fails on it, or it ends before a single record comes back, the responder never began
    /// the request (one that takes a request answers, or dies with it: only a GET or HEAD, which
    /// may be run twice, rides a kept connection), and it is sent once more on a fresh one.
    async fn send_kept(&self, kept: &Arc<KeptConn>, out: &[u8]) -> Result<Response<FastcgiBody>, KeptFailure> {
        let mut idle = kept.take();
        loop {
            let reused = idle.is_some();
            let Conn { mut reader, mut wr } = match idle.take() {
                Some(conn) => conn,
                None => {
                    let (rd, wr) = self.connect().await.map_err(Unsent)?;
                    Conn { reader: Reader::new(rd), wr }
                }
            };
            if let Err(e) = wr.write_all(out).await {
                if reused {
                    continue;
                }
                return Err(Unsent(self.fail(false, format_args!("writing the request: {e}"))));
            }
            match self.read_head(&mut reader, &mut None).await {
                Ok((resp, first)) => {
                    let keep = Some((wr, kept.clone()));
                    return Ok(resp.map(|()| FastcgiBody::new(reader, first, None, keep, self)));
                }
                Err(HeadError::Nothing(why)) if reused => {
                    tracing::debug!(
                        "pool {:?}: kept FastCGI connection was closed ({why}); sending again",
                        &*self.share.pool
                    );
                }
                Err(e) => return Err(Sent(self.head_failure(e).error)),
            }
        }
    }

    /// Reads records up to the end of the CGI header block: the response head and what came
    /// after the block in the same record. STDERR records are logged on the way.
    async fn read_head(
        &self,
        reader: &mut Reader,
        pump: &mut Option<Pump>,
    ) -> Result<(Response<()>, Bytes), HeadError> {
        let mut pumping = pump.is_some();
        let mut head = BytesMut::new();
        let mut records = 0u32;
        loop {
            let next = match pump.as_mut() {
                Some(Pump(task)) if pumping => tokio::select! {
                    next = reader.next() => next,
                    done = task => {
                        pumping = false;
                        if let Ok(Err(BodyFailed(e))) = done {
                            return Err(HeadError::ClientBody(e));
                        }
                        continue;
                    }
                },
                _ => reader.next().await,
            };
            let record = match next {
                Ok(Some(r)) => r,
                Ok(None) if records == 0 => {
                    return Err(HeadError::Nothing("closed the connection before any response header".into()))
                }
                Ok(None) => return Err(HeadError::Bad("closed the connection before any response header".into())),
                Err(e) if records == 0 && reader.buf.is_empty() => return Err(HeadError::Nothing(e.to_string())),
                Err(e) => return Err(HeadError::Bad(e.to_string())),
            };
            records += 1;
            match record.kind {
                record::STDOUT if !record.content.is_empty() => {
                    let whole = if head.is_empty() {
                        record.content
                    } else {
                        head.extend_from_slice(&record.content);
                        head.split().freeze()
                    };
                    match cgi_head(&whole) {
                        Ok(Some((resp, used))) => return Ok((resp, whole.slice(used..))),
                        Ok(None) if whole.len() > MAX_HEAD => {
                            return Err(HeadError::Bad(format!("CGI header block longer than {MAX_HEAD} bytes")))
                        }
                        Ok(None) => head.extend_from_slice(&whole),
                        Err(e) => return Err(HeadError::Bad(e)),
                    }
                }
                record::STDERR => self.share.stderr(self.worker, &record.content),
                record::END_REQUEST => return Err(HeadError::Bad(ended_without_head(&record, head.is_empty()))),
                _ => {}
            }
        }
    }
}

/// Why a response that ended before its header block is not an answer.
fn ended_without_head(record: &Record, nothing: bool) -> String {
    let (app, protocol) = record::end_request(&record.content).unwrap_or((0, 0));
    match (protocol, nothing) {
        (0, true) => format!("ended the request (status {app}) without any output"),
        (0, false) => format!("ended the request (status {app}) inside its CGI header block"),
        (1, _) => "refused the request: it cannot multiplex connections".into(),
        (2, _) => "refused the request: overloaded".into(),
        (_, _) => format!("refused the request (protocol status {protocol})"),
    }
}

/// Parses a CGI header block at the start of `bytes`: the response head and the length of the
/// block, `None` if the block is not whole yet.
fn cgi_head(bytes: &[u8]) -> Result<Option<(Response<()>, usize)>, String> {
    let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (used, lines) = match httparse::parse_headers(bytes, &mut lines) {
        Ok(httparse::Status::Complete(done)) => done,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("bad CGI header block: {e}")),
    };
    let mut resp = Response::new(());
    let mut status = None;
    for line in lines.iter() {
        if line.name.eq_ignore_ascii_case("status") {
            let code = line.value.get(..3).and_then(|c| StatusCode::from_bytes(c).ok());
            let Some(code) = code else {
                return Err(format!("bad CGI Status line {:?}", String::from_utf8_lossy(line.value)));
            };
            status = Some(code);
            continue;
        }
        let name =
            HeaderName::from_bytes(line.name.as_bytes()).map_err(|_| format!("bad header name {:?}", line.name))?;
        let value = HeaderValue::from_bytes(line.value).map_err(|_| format!("bad value of header {:?}", line.name))?;
        resp.headers_mut().append(name, value);
    }
    *resp.status_mut() = match status {
        Some(code) => code,
        None if resp.headers().contains_key(header::LOCATION) => StatusCode::FOUND,
        None => StatusCode::OK,
    };
    Ok(Some((resp, used)))
}

/// The CGI/1.1 variables of a request, as PARAMS records.
fn params(out: &mut BytesMut, parts: &http::request::Parts) {
    let facts = parts.extensions.get::<CgiFacts>();
    let mut p = Params::new(out, ID);
    let uri = &parts.uri;
    p.pair(b"GATEWAY_INTERFACE", b"CGI/1.1");
    p.pair(b"SERVER_SOFTWARE", concat!("bulkhead/", env!("CARGO_PKG_VERSION")).as_bytes());
    let protocol: &[u8] = match parts.version {
        Version::HTTP_10 => b"HTTP/1.0",
        Version::HTTP_2 => b"HTTP/2.0",
        _ => b"HTTP/1.1",
    };
    p.pair(b"SERVER_PROTOCOL", protocol);
    p.pair(b"REQUEST_METHOD", parts.method.as_str().as_bytes());
    p.pair(b"REQUEST_URI", uri.path_and_query().map_or(uri.path(), |pq| pq.as_str()).as_bytes());
    p.pair(b"DOCUMENT_URI", uri.path().as_bytes());
    p.pair(b"QUERY_STRING", uri.query().unwrap_or("").as_bytes());
    p.pair(b"REDIRECT_STATUS", b"200");
    match facts.and_then(|f| f.script.as_ref()) {
        Some(s) => {
            p.pair(b"SCRIPT_FILENAME", s.filename.as_os_str().as_encoded_bytes());
            p.pair(b"SCRIPT_NAME", s.name.as_bytes());
            p.pair(b"DOCUMENT_ROOT", s.document_root.as_os_str().as_encoded_bytes());
            if !s.path_info.is_empty() {
                p.pair(b"PATH_INFO", s.path_info.as_bytes());
                let root = s.document_root.as_os_str().as_encoded_bytes();
                p.pair(b"PATH_TRANSLATED", &[root, s.path_info.as_bytes()].concat());
            }
        }
        None => p.pair(b"SCRIPT_NAME", uri.path().as_bytes()),
    }
    for (name, h) in [(&b"CONTENT_TYPE"[..], header::CONTENT_TYPE), (b"CONTENT_LENGTH", header::CONTENT_LENGTH)] {
        if let Some(v) = parts.headers.get(h) {
            p.pair(name, v.as_bytes());
        }
    }
    let host = parts.headers.get(header::HOST).map(|h| h.as_bytes());
    if let Some(f) = facts {
        let mut text = String::with_capacity(64);
        let mut addr = |p: &mut Params, ip: &[u8], port: &[u8], a: SocketAddr| {
            use std::fmt::Write;
            text.clear();
            let _ = write!(text, "{}", a.ip());
            p.pair(ip, text.as_bytes());
            text.clear();
            let _ = write!(text, "{}", a.port());
            p.pair(port, text.as_bytes());
        };
        addr(&mut p, b"REMOTE_ADDR", b"REMOTE_PORT", f.remote);
        addr(&mut p, b"SERVER_ADDR", b"SERVER_PORT", f.local);
        if host.is_none() {
            p.pair(b"SERVER_NAME", f.local.ip().to_string().as_bytes());
        }
        p.pair(b"REQUEST_SCHEME", if f.https { b"https" } else { b"http" });
        if f.https {
            p.pair(b"HTTPS", b"on");
        }
    }
    if let Some(host) = host {
        p.pair(b"SERVER_NAME", server_name(host));
    }
    http_variables(&mut p, &parts.headers);
    p.finish();
}

/// A `Host` value without its port (`[::1]:80` → `[::1]`).
fn server_name(host: &[u8]) -> &[u8] {
    match host.iter().rposition(|b| *b == b':') {
        Some(i) if !host[i..].contains(&b']') => &host[..i],
        _ => host,
    }
}

/// `HTTP_*` for every request header but `Content-Type`, `Content-Length` and `Proxy`; values
/// of a repeated header joined with `, ` (`; ` for `Cookie`).
fn http_variables(p: &mut Params, headers: &http::HeaderMap) {
    let mut name = Vec::with_capacity(64);
    let mut joined = Vec::new();
    for key in headers.keys() {
        if key == header::CONTENT_TYPE || key == header::CONTENT_LENGTH || key.as_str() == "proxy" {
            continue;
        }
        name.clear();
        name.extend_from_slice(b"HTTP_");
        name.extend(key.as_str().bytes().map(|b| if b == b'-' { b'_' } else { b.to_ascii_uppercase() }));
        let mut values = headers.get_all(key).iter();
        let Some(first) = values.next() else { continue };
        match values.next() {
            None => p.pair(&name, first.as_bytes()),
            Some(second) => {
                let sep: &[u8] = if key == header::COOKIE { b"; " } else { b", " };
                joined.clear();
                joined.extend_from_slice(first.as_bytes());
                for v in std::iter::once(second).chain(values) {
                    joined.extend_from_slice(sep);
                    joined.extend_from_slice(v.as_bytes());
                }
                p.pair(&name, &joined);
            }
        }
    }
}

/// The client's body failed (too large, stalled, reset): the request path decides the status.
struct BodyFailed(BoxError);

/// Streams the request body as STDIN records, then the empty one. A responder that stops reading
/// (it answered without reading its input) ends this quietly: its answer still counts.
async fn stdin(mut wr: WriteHalf, mut body: RequestBody) -> Result<(), BodyFailed> {
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyFailed)?;
        let Ok(data) = frame.into_data() else { continue };
        for chunk in data.chunks(MAX_CONTENT) {
            if write_record(&mut wr, record::header(STDIN, ID, chunk.len(), 0), chunk).await.is_err() {
                return Ok(());
            }
        }
    }
    let _ = wr.write_all(&record::header(STDIN, ID, 0, 0)).await;
    Ok(())
}

/// One record's header and content in as few writes as the socket allows.
async fn write_record(wr: &mut WriteHalf, header: [u8; 8], data: &[u8]) -> io::Result<()> {
    let total = header.len() + data.len();
    let mut done = 0;
    while done < total {
        let n = if done < header.len() {
            wr.write_vectored(&[IoSlice::new(&header[done..]), IoSlice::new(data)]).await?
        } else {
            wr.write(&data[done - header.len()..]).await?
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        done += n;
    }
    Ok(())
}

/// The body-streaming task of a request; aborted when the response ends or is dropped.
struct Pump(JoinHandle<Result<(), BodyFailed>>);

impl Drop for Pump {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Records off a connection.
struct Reader {
    rd: ReadHalf,
    buf: BytesMut,
}

impl Reader {
    fn new(rd: ReadHalf) -> Self {
        Reader { rd, buf: BytesMut::with_capacity(READ_CHUNK) }
    }

    /// The next whole record; `None` at end of stream.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Record>>> {
        loop {
            if let Some(r) = record::decode(&mut self.buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))? {
                return Poll::Ready(Ok(Some(r)));
            }
            self.buf.reserve(READ_CHUNK);
            let read = self.rd.read_buf(&mut self.buf);
            tokio::pin!(read);
            if ready!(read.poll(cx))? == 0 {
                return Poll::Ready(if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed inside a record"))
                });
            }
        }
    }

    async fn next(&mut self) -> io::Result<Option<Record>> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }
}

/// A FastCGI response body: STDOUT records as they arrive, until `FCGI_END_REQUEST`; then the
/// connection goes back to its worker when it is a kept one.
pub struct FastcgiBody {
    /// `None` once the connection went back to be kept.
    reader: Option<Reader>,
    first: Bytes,
    done: bool,
    _pump: Option<Pump>,
    /// The writing half and where to give the connection back, on a kept connection.
    keep: Option<(WriteHalf, Arc<KeptConn>)>,
    share: Arc<PoolShare>,
    worker: WorkerId,
}

impl FastcgiBody {
    fn new(
        reader: Reader,
        first: Bytes,
        pump: Option<Pump>,
        keep: Option<(WriteHalf, Arc<KeptConn>)>,
        t: &FastcgiTransport,
    ) -> Self {
        FastcgiBody {
            reader: Some(reader),
            first,
            done: false,
            _pump: pump,
            keep,
            share: t.share.clone(),
            worker: t.worker,
        }
    }

    /// The request ended as it should: a kept connection can take the next one.
    fn ended(&mut self, end: &Record) {
        self.done = true;
        let complete = matches!(record::end_request(&end.content), Ok((_, 0)));
        if let (true, Some((wr, kept)), Some(reader)) = (complete, self.keep.take(), self.reader.take()) {
            kept.give_back(Conn { reader, wr });
        }
    }
}

impl Body for FastcgiBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if !this.first.is_empty() {
            return Poll::Ready(Some(Ok(Frame::data(std::mem::take(&mut this.first)))));
        }
        while !this.done {
            let Some(reader) = this.reader.as_mut() else { break };
            let record = match ready!(reader.poll_next(cx)) {
                Ok(Some(r)) => r,
                Ok(None) => {
                    this.done = true;
                    let why = "closed the connection in the middle of the response; cutting the client connection";
                    tracing::warn!("pool {:?}: FastCGI worker {}: {why}", &*this.share.pool, this.worker);
                    return Poll::Ready(Some(Err(why.into())));
                }
                Err(e) => {
                    this.done = true;
                    tracing::warn!(
                        "pool {:?}: FastCGI worker {}: response failed: {e}",
                        &*this.share.pool,
                        this.worker
                    );
                    return Poll::Ready(Some(Err(e.into())));
                }
            };
            match record.kind {
                record::STDOUT if !record.content.is_empty() => {
                    return Poll::Ready(Some(Ok(Frame::data(record.content))))
                }
                record::STDERR => this.share.stderr(this.worker, &record.content),
                record::END_REQUEST => this.ended(&record),
                _ => {}
            }
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.first.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// The reading half of a connection to a responder.
enum ReadHalf {
    Unix(unix::OwnedReadHalf),
    Tcp(tcp::OwnedReadHalf),
}

/// The writing half of a connection to a responder.
enum WriteHalf {
    Unix(unix::OwnedWriteHalf),
    Tcp(tcp::OwnedWriteHalf),
}

impl ReadHalf {
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ReadHalf::Unix(r) => r.try_read(buf),
            ReadHalf::Tcp(r) => r.try_read(buf),
        }
    }
}

impl AsyncRead for ReadHalf {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Unix(r) => Pin::new(r).poll_read(cx, buf),
            ReadHalf::Tcp(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Unix(w) => Pin::new(w).poll_write(cx, buf),
            WriteHalf::Tcp(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Unix(w) => Pin::new(w).poll_write_vectored(cx, bufs),
            WriteHalf::Tcp(w) => Pin::new(w).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Unix(w) => Pin::new(w).poll_flush(cx),
            WriteHalf::Tcp(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Unix(w) => Pin::new(w).poll_shutdown(cx),
            WriteHalf::Tcp(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests;

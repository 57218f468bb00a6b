//! FastCGI to a responder (php-cgi, php-fpm) over a unix socket or TCP port: the
//! [`Transport`] for `kind = "fastcgi"` pools (`Protocol::Fastcgi`).
//!
//! One connection per request, request id 1, no `FCGI_KEEP_CONN` (nginx's default): the
//! responders of a pool share one listening socket, so a kept connection would pin one process
//! to one listener slot, and a php-cgi that exits after `PHP_FCGI_MAX_REQUESTS` would leave
//! kept connections dead. A connect on a unix socket costs microseconds.
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
//! `FCGI_STDERR` lines are written to the listener's error log (tracing, warn level) with the
//! pool's name and the worker id. `FCGI_END_REQUEST` ends the body. A responder that closes the
//! connection before `FCGI_END_REQUEST`: before any header line it is a [`DispatchError`] (the
//! request path answers 502), after it the body fails, so the client connection is cut — both
//! logged. Uses only [`crate::body`] and [`crate::error`]; reached only through
//! [`crate::dispatch::Worker`].

pub mod record;

use std::future::Future as _;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bulkhead_proto::{WorkerAddress, WorkerId};
use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{tcp, unix};
use tokio::task::JoinHandle;

use self::record::{Params, Record, MAX_CONTENT, STDIN};
use super::{Failure, Transport};
use crate::body::{BoxError, RequestBody};
use crate::error::DispatchError;

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
    pool: Arc<str>,
    address: WorkerAddress,
}

impl FastcgiTransport {
    pub fn new(worker: WorkerId, pool: &str, address: WorkerAddress) -> Self {
        FastcgiTransport { worker, pool: Arc::from(pool), address }
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

    /// Nothing is kept open between requests.
    fn close_idle(&self) {}

    async fn send(&self, request: Request<RequestBody>) -> Result<Response<FastcgiBody>, Failure> {
        let (rd, mut wr) = match self.connect().await {
            Ok(halves) => halves,
            Err(error) => return Err(Failure { error, request: Some(request) }),
        };
        let (parts, body) = request.into_parts();
        let mut out = BytesMut::with_capacity(2048);
        record::begin_request(&mut out, ID, false);
        params(&mut out, &parts);
        let empty = body.is_end_stream();
        if empty {
            out.put_slice(&record::header(STDIN, ID, 0, 0));
        }
        if let Err(e) = wr.write_all(&out).await {
            let error = self.fail(false, format_args!("writing the request: {e}"));
            return Err(Failure { error, request: Some(Request::from_parts(parts, body)) });
        }
        let mut pump = (!empty).then(|| Pump(tokio::spawn(stdin(wr, body))));
        let mut pumping = pump.is_some();
        let mut reader = Reader { rd, buf: BytesMut::with_capacity(READ_CHUNK) };
        let mut head = BytesMut::new();
        loop {
            let next = match pump.as_mut() {
                Some(Pump(task)) if pumping => tokio::select! {
                    next = reader.next() => next,
                    done = task => {
                        pumping = false;
                        if let Ok(Err(BodyFailed(e))) = done {
                            return Err(Failure { error: DispatchError::ClientBody(e.to_string()), request: None });
                        }
                        continue;
                    }
                },
                _ => reader.next().await,
            };
            let record = match next {
                Ok(Some(r)) => r,
                Ok(None) => return Err(self.failure("closed the connection before any response header")),
                Err(e) => return Err(self.failure(e)),
            };
            match record.kind {
                record::STDOUT if !record.content.is_empty() => {
                    let whole = if head.is_empty() {
                        record.content
                    } else {
                        head.extend_from_slice(&record.content);
                        head.split().freeze()
                    };
                    match cgi_head(&whole) {
                        Ok(Some((resp, used))) => {
                            let body = FastcgiBody::new(reader, whole.slice(used..), pump, self);
                            return Ok(resp.map(|()| body));
                        }
                        Ok(None) if whole.len() > MAX_HEAD => {
                            return Err(self.failure(format_args!("CGI header block longer than {MAX_HEAD} bytes")))
                        }
                        Ok(None) => head.extend_from_slice(&whole),
                        Err(e) => return Err(self.failure(e)),
                    }
                }
                record::STDERR => log_stderr(&self.pool, self.worker, &record.content),
                record::END_REQUEST => return Err(self.failure(ended_without_head(&record, head.is_empty()))),
                _ => {}
            }
        }
    }
}

impl FastcgiTransport {
    fn failure(&self, reason: impl std::fmt::Display) -> Failure {
        tracing::warn!("pool {:?}: FastCGI worker {}: {reason}", &*self.pool, self.worker);
        Failure { error: self.fail(true, reason), request: None }
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

/// Writes one STDERR record's lines to the listener's error log.
fn log_stderr(pool: &str, worker: WorkerId, content: &[u8]) {
    for line in content.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let line = String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line));
        tracing::warn!("pool {pool:?}: FastCGI worker {worker} stderr: {line}");
    }
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

/// A FastCGI response body: STDOUT records as they arrive, until `FCGI_END_REQUEST`.
pub struct FastcgiBody {
    reader: Reader,
    first: Bytes,
    done: bool,
    _pump: Option<Pump>,
    pool: Arc<str>,
    worker: WorkerId,
}

impl FastcgiBody {
    fn new(reader: Reader, first: Bytes, pump: Option<Pump>, t: &FastcgiTransport) -> Self {
        FastcgiBody { reader, first, done: false, _pump: pump, pool: t.pool.clone(), worker: t.worker }
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
            let record = match ready!(this.reader.poll_next(cx)) {
                Ok(Some(r)) => r,
                Ok(None) => {
                    this.done = true;
                    let why = "closed the connection in the middle of the response; cutting the client connection";
                    tracing::warn!("pool {:?}: FastCGI worker {}: {why}", &*this.pool, this.worker);
                    return Poll::Ready(Some(Err(why.into())));
                }
                Err(e) => {
                    this.done = true;
                    tracing::warn!("pool {:?}: FastCGI worker {}: response failed: {e}", &*this.pool, this.worker);
                    return Poll::Ready(Some(Err(e.into())));
                }
            };
            match record.kind {
                record::STDOUT if !record.content.is_empty() => {
                    return Poll::Ready(Some(Ok(Frame::data(record.content))))
                }
                record::STDERR => log_stderr(&this.pool, this.worker, &record.content),
                record::END_REQUEST => this.done = true,
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

//! A small HTTP/1.1 client over `std::net::TcpStream` that puts exactly the bytes a test wrote
//! on the wire — needed for traversal tests (`/..%2f…`) that higher-level clients normalise —
//! and reads responses with Content-Length, chunked or read-to-close bodies.
//!
//! [`curl`] runs the real `curl` instead, for what a byte-exact client does not show (curl's
//! own `Host` from `--resolve`, its query encoding), and reads its answer into the same
//! [`Response`].
//!
//! Used by every test. It never retries, never follows redirects and never normalises a
//! target; each read and write has a timeout so a broken server fails a test instead of
//! hanging it. Bodies can be streamed into a callback so 100 MiB never sits in memory.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

/// Longest a single read or write may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// A response as read from the wire.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the server announced it will close the connection.
    pub fn closes(&self) -> bool {
        self.header("connection").is_some_and(|v| v.to_ascii_lowercase().contains("close"))
    }
}

/// The first header of that name (case-insensitive).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// The bytes of one request: request line, `Host` (unless given), the headers, a
/// `Content-Length` when there is a body (unless given), then the body.
pub fn request_bytes(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        out.push_str("Host: localhost\r\n");
    }
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    let has_len = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
    let chunked = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"));
    if !has_len && !chunked && (!body.is_empty() || method == "POST" || method == "PUT") {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// One client connection; keeps it open across requests (keep-alive).
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Conn { reader: BufReader::with_capacity(64 * 1024, stream) })
    }

    /// Writes raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.reader.get_mut().write_all(bytes)
    }

    /// The underlying socket (e.g. to shut down the write side).
    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    /// Sends one request and reads its response.
    pub fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        self.send_raw(&request_bytes(method, target, headers, body))?;
        self.read_response(method == "HEAD")
    }

    /// Reads one response whole (1xx interim responses skipped).
    pub fn read_response(&mut self, head: bool) -> io::Result<Response> {
        let mut body = Vec::new();
        let (status, headers) = self.read_response_streaming(head, &mut |chunk| body.extend_from_slice(chunk))?;
        Ok(Response { status, headers, body })
    }

    /// Reads one response, handing the body to `sink` piece by piece.
    pub fn read_response_streaming(
        &mut self,
        head: bool,
        sink: &mut dyn FnMut(&[u8]),
    ) -> io::Result<(u16, Vec<(String, String)>)> {
        loop {
            let (status, headers) = self.read_head()?;
            if (100..200).contains(&status) && status != 101 {
                continue;
            }
            if head || status == 204 || status == 304 || (100..200).contains(&status) {
                return Ok((status, headers));
            }
            let te = header(&headers, "transfer-encoding").unwrap_or("").to_ascii_lowercase();
            if te.contains("chunked") {
                self.read_chunked(sink)?;
            } else if let Some(len) = header(&headers, "content-length") {
                let len: u64 = len.trim().parse().map_err(|_| bad(format!("bad Content-Length {len:?}")))?;
                self.read_exact_into(len, sink)?;
            } else {
                self.read_to_close(sink)?;
            }
            return Ok((status, headers));
        }
    }

    fn read_line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        let n = (&mut self.reader).take(64 * 1024).read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before a full response"));
        }
        while line.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
            line.pop();
        }
        String::from_utf8(line).map_err(|_| bad("response line is not UTF-8".into()))
    }

    fn read_head(&mut self) -> io::Result<(u16, Vec<(String, String)>)> {
        let line = self.read_line()?;
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        if !version.starts_with("HTTP/1.") {
            return Err(bad(format!("not an HTTP/1.x status line: {line:?}")));
        }
        let status =
            parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| bad(format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let line = self.read_line()?;
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').ok_or_else(|| bad(format!("bad header line {line:?}")))?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        Ok((status, headers))
    }

    fn read_exact_into(&mut self, mut len: u64, sink: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        while len > 0 {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("body cut short, {len} bytes missing"),
                ));
            }
            let n = buf.len().min(usize::try_from(len).unwrap_or(usize::MAX));
            sink(&buf[..n]);
            self.reader.consume(n);
            len -= n as u64;
        }
        Ok(())
    }

    fn read_chunked(&mut self, sink: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        loop {
            let line = self.read_line()?;
            let size = line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size, 16).map_err(|_| bad(format!("bad chunk size line {line:?}")))?;
            if size == 0 {
                while !self.read_line()?.is_empty() {}
                return Ok(());
            }
            self.read_exact_into(size, sink)?;
            if !self.read_line()?.is_empty() {
                return Err(bad("chunk not followed by CRLF".into()));
            }
        }
    }

    fn read_to_close(&mut self, sink: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Ok(());
            }
            let n = buf.len();
            sink(buf);
            self.reader.consume(n);
        }
    }

    /// Reads until the server closes; returns what came (used to check HEAD sends no body).
    pub fn read_rest(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.read_to_close(&mut |b| out.extend_from_slice(b))?;
        Ok(out)
    }
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// One request on a fresh connection (`Connection: close` added); panics on an I/O error with
/// the request named, since a test cannot go on without an answer.
pub fn send(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    try_send(addr, method, target, headers, body).unwrap_or_else(|e| panic!("{method} {target} to {addr}: {e}"))
}

/// Like [`send`] but returns the I/O error.
pub fn try_send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    if !all.iter().any(|(k, _)| k.eq_ignore_ascii_case("connection")) {
        all.push(("Connection", "close"));
    }
    let mut conn = Conn::connect(addr)?;
    conn.request(method, target, &all, body)
}

/// `GET target` with `Host: localhost`.
pub fn get(addr: SocketAddr, target: &str) -> Response {
    send(addr, "GET", target, &[], b"")
}

/// `GET target` with the given `Host`.
pub fn get_host(addr: SocketAddr, host: &str, target: &str) -> Response {
    send(addr, "GET", target, &[("Host", host)], b"")
}

/// `curl -sS -i ARGS` (10 s at most, no redirects followed): the response, parsed. Panics,
/// naming the arguments, when curl fails or prints no response.
pub fn curl(args: &[&str]) -> Response {
    let out = Command::new("curl").args(["-sS", "-i", "--max-time", "10"]).args(args).output().expect("run curl");
    assert!(out.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let text = &out.stdout;
    let split = text.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("curl {args:?}: no head"));
    let head = String::from_utf8_lossy(&text[..split]);
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    Response { status, headers, body: text[split + 4..].to_vec() }
}

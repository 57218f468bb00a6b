//! HTTP/2 on `http://` bindings (h2c with prior knowledge; issue 9 item 3) with real clients:
//! curl `--http2-prior-knowledge` and `h2load` (nghttp2-client) as operators would use them, and
//! two clients driven from a small tokio runtime where a test must control streams one by one —
//! hyper's HTTP/2 client (a stream over `max_body` and a reset stream beside streams that must
//! complete) and the `h2` crate's (streams opened and reset as fast as possible: rapid reset,
//! CVE-2023-44487). Workers are the tests' Python app, which speaks only HTTP/1.1.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::support::server::{python3_available, python_command};
use crate::support::skip::{skip, Reason};
use crate::support::{poll, wait_for, Server, TestDir};

pub fn installed(program: &str, arg: &str) -> bool {
    Command::new(program).arg(arg).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// A site "h2" with a static route `/static` and everything else to the Python pool "py".
fn site(dir: &TestDir, limits: &str) -> String {
    dir.write("www/index.html", "<p>static over h2</p>\n");
    format!(
        r#"{limits}
[[sites]]
name = "h2"
bindings = ["http://127.0.0.1:0"]
routes = [
  {{ path = "/", pool = "py" }},
  {{ path = "/static", root = "{}" }},
]

[pools.py]
command = {}
"#,
        dir.join("www").display(),
        python_command()
    )
}

/// `curl --http2-prior-knowledge`: (status, HTTP version as curl saw it, body).
fn curl_h2(addr: SocketAddr, target: &str) -> (u16, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--http2-prior-knowledge", "--max-time", "20", "-w", "\n%{http_code} %{http_version}"])
        .arg(format!("http://{addr}{target}"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n').unwrap_or(("", &text));
    let mut tail = tail.split(' ');
    let status = tail.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let version = tail.next().unwrap_or("").to_string();
    assert!(out.status.success(), "curl {target} failed: {}", String::from_utf8_lossy(&out.stderr));
    (status, version, body.to_string())
}

#[test]
fn curl_prior_knowledge_gets_static_and_pool_routes_logged_as_http2() {
    if !installed("curl", "--version") {
        skip!(Reason::Missing("curl is not installed (apt-get install curl)".into()));
    }
    if !python3_available() {
        return;
    }
    let dir = TestDir::new("h2-curl");
    let config = site(&dir, "");
    let server = Server::start(dir, &config);
    let addr = server.addr();

    let (status, version, body) = curl_h2(addr, "/static/index.html");
    assert_eq!((status, version.as_str(), body.as_str()), (200, "2", "<p>static over h2</p>\n"));

    // The worker speaks HTTP/1.1: it got an origin-form target (its router matched /headers)
    // and `:authority` as Host.
    let (status, version, body) = curl_h2(addr, "/headers?from=h2");
    assert_eq!((status, version.as_str()), (200, "2"), "{body}");
    let headers: Vec<(String, String)> = serde_json::from_str(&body).expect("the app's JSON header list");
    let get = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
    assert_eq!(get("host"), Some(addr.to_string().as_str()), "{headers:?}");
    assert_eq!(get("x-forwarded-host"), Some(addr.to_string().as_str()), "{headers:?}");
    assert_eq!(get("x-forwarded-proto"), Some("http"), "{headers:?}");

    let mut text = String::new();
    let logged = poll(Duration::from_secs(15), || {
        text = server.access_logs("h2").into_values().collect();
        text.lines().filter(|l| !l.starts_with('#')).count() >= 2
    });
    assert!(logged, "expected 2 request lines in the access log, have:\n{text}");
    let fields: Vec<&str> =
        text.lines().find_map(|l| l.strip_prefix("#Fields: ")).unwrap_or_default().split(' ').collect();
    let at = |name: &str| fields.iter().position(|f| *f == name).unwrap_or_else(|| panic!("no {name} in {fields:?}"));
    let (stem, version) = (at("cs-uri-stem"), at("cs-version"));
    for want in ["/static/index.html", "/headers"] {
        let line = text
            .lines()
            .map(|l| l.split(' ').collect::<Vec<_>>())
            .find(|v| v.get(stem) == Some(&want))
            .unwrap_or_else(|| panic!("no line for {want} in:\n{text}"));
        assert_eq!(line[version], "HTTP/2", "{want} in:\n{text}");
    }
}

/// `h2load`'s counts over h2c: (succeeded, 2xx, failed + errored + timeout).
fn h2load(addr: SocketAddr, target: &str, n: u32, clients: u32, streams: u32) -> (u64, u64, u64) {
    h2load_url(&format!("http://{addr}{target}"), n, clients, streams)
}

/// `h2load`'s counts for `url` (`https://` negotiates h2 by ALPN, and h2load fails a connection
/// that does not get it): (succeeded, 2xx, failed + errored + timeout).
pub fn h2load_url(url: &str, n: u32, clients: u32, streams: u32) -> (u64, u64, u64) {
    let out = Command::new("h2load")
        .args(["-n", &n.to_string(), "-c", &clients.to_string(), "-m", &streams.to_string(), "-T", "30"])
        .arg(url)
        .output()
        .expect("run h2load");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let number_before = |line: &str, word: &str| -> u64 {
        let words: Vec<&str> = line.split([' ', ',']).filter(|w| !w.is_empty()).collect();
        words.windows(2).find(|w| w[1] == word).and_then(|w| w[0].parse().ok()).unwrap_or(0)
    };
    let requests = text.lines().find(|l| l.starts_with("requests:")).unwrap_or_else(|| panic!("h2load said:\n{text}"));
    let codes = text.lines().find(|l| l.starts_with("status codes:")).unwrap_or_default();
    let bad =
        number_before(requests, "failed") + number_before(requests, "errored") + number_before(requests, "timeout");
    (number_before(requests, "succeeded"), number_before(codes, "2xx"), bad)
}

#[test]
fn h2load_many_concurrent_streams_all_succeed() {
    if !installed("h2load", "--version") {
        skip!(Reason::Missing("h2load is not installed (apt-get install nghttp2-client)".into()));
    }
    if !python3_available() {
        return;
    }
    let dir = TestDir::new("h2-load");
    let config = site(&dir, "");
    let server = Server::start(dir, &config);
    let addr = server.addr();
    // 4 connections with 32 streams each in flight: a static file, then the pool (its queue
    // and its HTTP/1.1 worker connections under many streams of one client connection).
    assert_eq!(h2load(addr, "/static/index.html", 2000, 4, 32), (2000, 2000, 0));
    assert_eq!(h2load(addr, "/pid", 400, 2, 32), (400, 400, 0));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime")
}

type Sender<B> = hyper::client::conn::http2::SendRequest<B>;
type BoxBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// An h2c connection by prior knowledge, with hyper's client.
async fn hyper_h2(addr: SocketAddr) -> Sender<BoxBody> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.expect("h2 handshake");
    tokio::spawn(conn);
    send
}

fn get(addr: SocketAddr, target: &str) -> http::Request<BoxBody> {
    http::Request::get(format!("http://{addr}{target}"))
        .body(Empty::new().map_err(|never| match never {}).boxed())
        .expect("request")
}

async fn text_of(resp: hyper::Response<hyper::body::Incoming>) -> (u16, String) {
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Waits (bounded) until the app has written a mark file: its request is in the worker.
async fn marked(path: &Path) {
    for _ in 0..400 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the app never wrote {}", path.display());
}

#[test]
fn one_stream_over_max_body_or_reset_leaves_the_other_streams_of_its_connection_alone() {
    if !python3_available() {
        return;
    }
    let dir = TestDir::new("h2-fault");
    let config = site(&dir, "[limits]\nmax_body = \"64KiB\"\n");
    let (held, release) = (dir.join("held"), dir.join("release"));
    let (reset_mark, reset_release) = (dir.join("reset-held"), dir.join("reset-release"));
    let server = Server::start(dir, &config);
    let addr = server.addr();
    runtime().block_on(async {
        let mut send = hyper_h2(addr).await;
        // Stream 1 waits in the worker while the others come and go on the same connection.
        let hold = format!("/hold?mark={}&release={}", held.display(), release.display());
        let waiting = tokio::spawn(send.send_request(get(addr, &hold)));
        marked(&held).await;

        // Stream 3: a body without a declared length, 4 × 32 KiB, over max_body while streaming.
        let chunks = (0..4).map(|_| Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![b'x'; 32 << 10]))));
        let body = StreamBody::new(futures_util::stream::iter(chunks)).boxed();
        let upload = http::Request::post(format!("http://{addr}/upload")).body(body).expect("request");
        send.ready().await.expect("connection open");
        let resp = send.send_request(upload).await.expect("a response to the oversized upload");
        assert_eq!(resp.status(), 413);

        // Stream 5: reset by the client while its request is in the worker.
        let held_then_reset = format!("/hold?mark={}&release={}", reset_mark.display(), reset_release.display());
        let doomed = tokio::spawn(send.send_request(get(addr, &held_then_reset)));
        marked(&reset_mark).await;
        doomed.abort();
        let _ = doomed.await;

        // Stream 7, and stream 1 once released: both answered on the same connection.
        send.ready().await.expect("the connection survived the 413 and the reset");
        let (status, pid) = text_of(send.send_request(get(addr, "/pid")).await.expect("a response")).await;
        assert_eq!(status, 200, "{pid}");
        std::fs::write(&release, b"go").expect("release");
        let resp = tokio::time::timeout(Duration::from_secs(30), waiting)
            .await
            .expect("the held stream answered in time")
            .expect("task")
            .expect("the held stream got a response");
        assert_eq!(text_of(resp).await, (200, "released".to_string()));
        std::fs::write(&reset_release, b"go").expect("release the reset request's thread");
    });
    let httperr = server.httperr_log();
    assert!(httperr.contains(" 413 ") && httperr.contains("EntityTooLarge"), "HTTPERR:\n{httperr}");
}

/// One HTTP/2 frame's bytes (RFC 9113 §4.1).
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The GOAWAY frames' error codes among `bytes` (frames a server sent, from its SETTINGS on).
fn goaway_codes(mut bytes: &[u8]) -> Vec<u32> {
    let mut codes = Vec::new();
    while bytes.len() >= 9 {
        let len = (usize::from(bytes[0]) << 16) | (usize::from(bytes[1]) << 8) | usize::from(bytes[2]);
        let Some(payload) = bytes.get(9..9 + len) else { break };
        if bytes[3] == 0x7 && payload.len() >= 8 {
            codes.push(u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]));
        }
        bytes = &bytes[9 + len..];
    }
    codes
}

#[test]
fn rapid_reset_of_many_streams_gets_goaway() {
    use std::io::{Read, Write};
    const ENHANCE_YOUR_CALM: u32 = 0xb;
    let dir = TestDir::new("h2-reset");
    dir.write("www/index.html", "x");
    let config = format!(
        "[[sites]]\nname = \"h2\"\nbindings = [\"http://127.0.0.1:0\"]\nroutes = [{{ path = \"/\", root = \"{}\" }}]\n",
        dir.join("www").display()
    );
    let server = Server::start(dir, &config);
    let addr = server.addr();
    // The preface, SETTINGS, then 50 streams each opened (GET /, HPACK static entries) and at once
    // reset (CVE-2023-44487), in one write: past limits.http2_max_pending_accept_reset_streams
    // (20) the listener must close the connection with GOAWAY ENHANCE_YOUR_CALM. (One small
    // write, so the server has read all of it when it closes and the GOAWAY is not lost to a
    // TCP reset.)
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend(frame(0x4, 0, 0, &[]));
    let head = [0x82, 0x86, 0x84, 0x41, 0x09, b'l', b'o', b'c', b'a', b'l', b'h', b'o', b's', b't'];
    for i in 0..50u32 {
        let stream = 1 + 2 * i;
        bytes.extend(frame(0x1, 0x4 | 0x1, stream, &head));
        bytes.extend(frame(0x3, 0, stream, &0x8u32.to_be_bytes()));
    }
    let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    tcp.write_all(&bytes).expect("write the burst");
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("the listener did not close the connection (read: {e}); it sent {} bytes", got.len()),
        }
    }
    assert_eq!(goaway_codes(&got), [ENHANCE_YOUR_CALM], "GOAWAYs in {got:?}");
    // The listener itself is fine: a new connection is served.
    wait_for("a new connection served after the GOAWAY", Duration::from_secs(10), || {
        crate::support::http::get(addr, "/index.html").status == 200
    });
}

#[test]
fn shutdown_sends_goaway_and_finishes_the_streams_in_flight() {
    if !python3_available() {
        return;
    }
    let dir = TestDir::new("h2-goaway");
    let config = site(&dir, "");
    let (held, release) = (dir.join("held"), dir.join("release"));
    let mut server = Server::start(dir, &config);
    let addr = server.addr();
    let rt = runtime();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.expect("handshake");
        let conn = tokio::spawn(conn);
        let hold = format!("/hold?mark={}&release={}", held.display(), release.display());
        let waiting = tokio::spawn(send.send_request(get(addr, &hold)));
        marked(&held).await;

        server.signal_manager(libc::SIGTERM);
        // GOAWAY: the connection takes no new stream (until it arrives, new ones are served).
        let mut refused = false;
        for _ in 0..400 {
            let ready = send.ready().await.is_ok();
            if !ready || send.send_request(get(addr, "/static/index.html")).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(refused, "the connection still took new streams 10 s after SIGTERM: no GOAWAY");

        // The stream in flight is finished, then the connection closes.
        std::fs::write(&release, b"go").expect("release");
        let resp = tokio::time::timeout(Duration::from_secs(30), waiting)
            .await
            .expect("the held stream answered during the drain")
            .expect("task")
            .expect("the held stream got its response, not a reset");
        assert_eq!(text_of(resp).await, (200, "released".to_string()));
        let closed = tokio::time::timeout(Duration::from_secs(30), conn).await;
        assert!(closed.is_ok(), "the connection stayed open after its last stream");
    });
    let status = server.wait_exit(Duration::from_secs(40)).expect("manager still running 40 s after SIGTERM");
    assert!(status.success(), "{status:?}");
}

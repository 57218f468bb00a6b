//! HTTP.sys's limits enforced by the listener (DESIGN §2 step 1, `[limits]`): a body over
//! `max_body` (declared or chunked) → 413, a URL segment too long or too many segments → 414,
//! a header line or a whole head too large → 431 — each with an HTTPERR line — while requests
//! inside the limits pass.

use std::time::Duration;

use crate::support::http::{self, Conn};
use crate::support::server::{python3_available, python_command};
use crate::support::{poll, Server, TestDir};

fn limits_server() -> Server {
    let dir = TestDir::new("limits");
    dir.write("www/ok.txt", "ok\n");
    let config = format!(
        r#"
[limits]
max_body = "1KiB"
max_url_segment_length = 64
max_url_segments = 20
max_field_length = 4096
max_request_bytes = 8192

[[sites]]
name = "limits"
bindings = ["http://127.0.0.1:0"]
routes = [
  {{ path = "/", root = "{}" }},
  {{ path = "/app", pool = "py" }},
]

[pools.py]
command = {}
"#,
        dir.join("www").display(),
        python_command()
    );
    Server::start(dir, &config)
}

/// The HTTPERR data lines whose `sc-status` is `status`.
fn httperr_lines(server: &Server, status: u16) -> Vec<String> {
    let text = server.httperr_log();
    let fields: Vec<String> = text
        .lines()
        .find_map(|l| l.strip_prefix("#Fields: "))
        .map(|f| f.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let Some(col) = fields.iter().position(|f| f == "sc-status") else { return Vec::new() };
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(' ').nth(col) == Some(status.to_string().as_str()))
        .map(str::to_string)
        .collect()
}

#[test]
fn requests_over_the_limits_get_413_414_431_with_httperr_lines() {
    if !python3_available() {
        return;
    }
    let server = limits_server();
    let addr = server.addr();

    let r = http::send(addr, "POST", "/app/echo", &[], &[b'a'; 1000]);
    assert_eq!((r.status, r.body.len()), (200, 1000), "a body inside max_body passes");
    let r = http::send(addr, "POST", "/app/echo", &[], &[b'a'; 2048]);
    assert_eq!(r.status, 413, "declared body over max_body");

    let mut conn = Conn::connect(addr).unwrap();
    let mut req =
        b"POST /app/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for _ in 0..8 {
        req.extend_from_slice(b"200\r\n");
        req.extend_from_slice(&[b'c'; 0x200]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    // The server may answer and close before reading it all; a failed write is fine.
    let _ = conn.send_raw(&req);
    let r = conn.read_response(false).expect("an answer to a chunked body over max_body");
    assert_eq!(r.status, 413, "chunked body over max_body: {:?}", r.text());

    assert_eq!(http::get(addr, "/ok.txt").status, 200);
    let long_segment = format!("/{}.txt", "s".repeat(100));
    assert_eq!(http::get(addr, &long_segment).status, 414, "URL segment over max_url_segment_length");
    let deep = "/d".repeat(30);
    assert_eq!(http::get(addr, &deep).status, 414, "more segments than max_url_segments");

    let big = "v".repeat(5000);
    let r = http::send(addr, "GET", "/ok.txt", &[("X-Big", &big)], b"");
    assert_eq!(r.status, 431, "one header line over max_field_length");
    let parts: Vec<String> = (0..6).map(|i| format!("{i}{}", "w".repeat(2000))).collect();
    let headers: Vec<(&str, &str)> =
        ["X-A", "X-B", "X-C", "X-D", "X-E", "X-F"].into_iter().zip(parts.iter().map(String::as_str)).collect();
    let r = http::try_send(addr, "GET", "/ok.txt", &headers, b"");
    assert!(matches!(&r, Ok(r) if r.status == 431), "a head over max_request_bytes: {r:?}");

    // Every refusal is in HTTPERR (written in the background: wait, bounded).
    let logged = poll(Duration::from_secs(10), || {
        httperr_lines(&server, 413).len() >= 2
            && httperr_lines(&server, 414).len() >= 2
            && httperr_lines(&server, 431).len() >= 2
    });
    assert!(logged, "HTTPERR misses refusals:\n{}", server.httperr_log());
    let text = server.httperr_log();
    for reason in ["URL", "FieldLength", "RequestLength"] {
        assert!(text.lines().any(|l| l.split(' ').any(|w| w == reason)), "no HTTPERR reason {reason}:\n{text}");
    }
    assert_eq!(http::get(addr, "/ok.txt").status, 200, "the server still serves");
}

#[test]
fn connections_past_max_connections_per_ip_get_503_conn_limit_until_one_closes() {
    let dir = TestDir::new("per-ip");
    dir.write("www/ok.txt", "ok\n");
    let config = format!(
        "[limits]\nmax_connections_per_ip = 2\n\n[[sites]]\nname = \"s\"\nbindings = [\"http://127.0.0.1:0\"]\nroutes = [ {{ path = \"/\", root = \"{}\" }} ]\n",
        dir.join("www").display()
    );
    let server = Server::start(dir, &config);
    let addr = server.addr();
    // Two kept-alive connections from 127.0.0.1 are served and stay open.
    let mut first = Conn::connect(addr).expect("connect");
    let mut second = Conn::connect(addr).expect("connect");
    for c in [&mut first, &mut second] {
        let r = c.request("GET", "/ok.txt", &[], b"").expect("served");
        assert_eq!((r.status, r.closes()), (200, false));
    }
    // A third gets one 503 and is closed.
    let mut third = Conn::connect(addr).expect("connect");
    let r = third.request("GET", "/ok.txt", &[], b"").expect("answered");
    assert_eq!((r.status, r.closes()), (503, true), "{}", r.text());
    // Once one of the two closes, a new connection is served again (its close reaches the
    // listener asynchronously: bounded retries).
    drop(first);
    drop(third);
    let served = poll(Duration::from_secs(10), || {
        let mut c = Conn::connect(addr).expect("connect");
        c.request("GET", "/ok.txt", &[], b"").is_ok_and(|r| r.status == 200)
    });
    assert!(served, "a connection was refused after the address fell under its limit");
    let logged = poll(Duration::from_secs(10), || server.httperr_log().contains("ConnLimit"));
    assert!(logged, "no ConnLimit in HTTPERR:\n{}", server.httperr_log());
    drop(second);
}

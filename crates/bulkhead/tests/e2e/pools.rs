//! Pool routes end to end (issue #2 items 4–5): a worker written in another language (the
//! tests' Python app on fd 3) reached through the listener with the proxy headers added and
//! hop-by-hop headers removed both ways; demand start; and a full queue answered 503 at once
//! with `QueueFull` in the HTTPERR log.

use std::os::unix::fs::PermissionsExt;
use std::sync::mpsc;
use std::time::Duration;

use crate::support::http::{self, Response};
use crate::support::server::{python3_available, python_site};
use crate::support::{procs, wait_for, Server, TestDir};

fn python_server(label: &str, pool_extra: &str) -> Server {
    Server::start(TestDir::new(label), &python_site("", pool_extra))
}

/// The pid in `hello from python pid=N`.
pub fn pid_in(r: &Response) -> u32 {
    let text = r.text();
    text.trim().rsplit('=').next().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no pid in {text:?}"))
}

fn headers_seen_by_app(r: &Response) -> Vec<(String, String)> {
    let v: Vec<(String, String)> = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {:?}", r.text()));
    v
}

fn find<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    http::header(h, name)
}

#[test]
fn python_worker_on_fd3_gets_proxy_headers_and_no_hop_by_hop_headers() {
    if !python3_available() {
        return;
    }
    let server = python_server("python", "");
    let addr = server.addr();

    let r = http::get(addr, "/");
    assert_eq!(r.status, 200, "GET / through the listener: {:?}", r.text());
    assert!(r.text().starts_with("hello from python pid="), "{:?}", r.text());
    let pid = pid_in(&r);
    assert!(server.worker_pids().contains(&pid), "the app's pid {pid} is not a descendant of the manager");
    assert!(procs::cmdline(pid).contains("app.py"), "pid {pid} runs {:?}", procs::cmdline(pid));
    let sockets: Vec<_> = std::fs::read_dir(server.state_dir.join("sockets"))
        .expect("<state_dir>/sockets")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(
        sockets.iter().any(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("py."))),
        "{sockets:?}"
    );
    for s in &sockets {
        let mode = std::fs::metadata(s).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "worker socket {} has mode {mode:o}", s.display());
    }

    let r = http::send(
        addr,
        "GET",
        "/headers",
        &[
            ("Host", "shop.test"),
            ("Connection", "keep-alive, X-Custom"),
            ("X-Custom", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("X-Normal", "yes"),
            ("X-Forwarded-For", "203.0.113.7"),
        ],
        b"",
    );
    assert_eq!(r.status, 200);
    let h = headers_seen_by_app(&r);
    let shown = format!("{h:?}");
    let xff = find(&h, "x-forwarded-for").unwrap_or_else(|| panic!("no X-Forwarded-For: {shown}"));
    assert!(xff.contains("203.0.113.7") && xff.trim_end().ends_with("127.0.0.1"), "X-Forwarded-For {xff:?}");
    assert_eq!(find(&h, "x-forwarded-proto"), Some("http"), "{shown}");
    assert_eq!(find(&h, "x-forwarded-host"), Some("shop.test"), "{shown}");
    let id1 = find(&h, "x-request-id").unwrap_or_else(|| panic!("no X-Request-Id: {shown}")).to_string();
    assert!(!id1.is_empty());
    assert_eq!(find(&h, "x-normal"), Some("yes"), "end-to-end headers pass: {shown}");
    for hop in ["x-custom", "keep-alive", "proxy-connection"] {
        assert!(find(&h, hop).is_none(), "hop-by-hop header {hop} reached the worker: {shown}");
    }
    if let Some(c) = find(&h, "connection") {
        assert!(!c.to_ascii_lowercase().contains("x-custom"), "client's Connection reached the worker: {c:?}");
    }

    let r = http::get(addr, "/headers");
    let h = headers_seen_by_app(&r);
    assert_eq!(find(&h, "x-forwarded-for").map(str::trim), Some("127.0.0.1"), "{h:?}");
    let id2 = find(&h, "x-request-id").unwrap_or("").to_string();
    assert!(!id2.is_empty() && id2 != id1, "request ids {id1:?} and {id2:?} should differ");

    let r = http::send(addr, "POST", "/echo", &[("Content-Type", "text/plain")], b"ping through the listener");
    assert_eq!((r.status, r.text().as_str()), (200, "ping through the listener"));

    let r = http::get(addr, "/hop");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-resp-kept"), Some("1"), "{:?}", r.headers);
    assert!(r.header("x-resp-hop").is_none(), "header named in the worker's Connection reached the client");
    assert_ne!(r.header("keep-alive"), Some("timeout=99"), "the worker's Keep-Alive reached the client");
}

#[test]
fn socket_port_mode_reaches_the_worker_on_a_loopback_port() {
    if !python3_available() {
        return;
    }
    let server = python_server("port", "socket = \"port\"\n");
    let r = http::get(server.addr(), "/");
    assert_eq!(r.status, 200, "GET / through a port-mode worker: {:?}", r.text());
    let pid = pid_in(&r);
    let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let env: Vec<String> = env.split(|b| *b == 0).map(|v| String::from_utf8_lossy(v).into_owned()).collect();
    assert!(env.iter().any(|v| v.starts_with("PORT=")), "no PORT in the worker's environment");
    assert!(!env.iter().any(|v| v.starts_with("LISTEN_FDS=")), "LISTEN_FDS set in port mode");
    let r = http::send(server.addr(), "POST", "/echo", &[], b"via a port");
    assert_eq!((r.status, r.text().as_str()), (200, "via a port"));
}

#[test]
fn demand_start_no_worker_before_the_first_request() {
    if !python3_available() {
        return;
    }
    let server = python_server("demand", "");
    let addr = server.addr();
    // Give an eager manager a moment to show itself: any worker appearing within 1 s fails.
    let eager = crate::support::poll(Duration::from_secs(1), || !server.worker_pids().is_empty());
    assert!(!eager, "workers running before any request: {:?}", server.worker_pids());
    let log = server.pool_log("py");
    assert!(!log.contains("app[") && !log.contains("started"), "a worker started before any request:\n{log}");
    let r = http::get(addr, "/");
    assert_eq!(r.status, 200, "first request: {:?}", r.text());
    let pid = pid_in(&r);
    assert!(server.worker_pids().contains(&pid), "worker {pid} is not the manager's");
    let r = http::get(addr, "/");
    assert_eq!((r.status, pid_in(&r)), (200, pid), "the second request reuses the worker");
}

#[test]
fn full_queue_answers_503_at_once_and_logs_queue_full() {
    if !python3_available() {
        return;
    }
    let server = python_server("queue", "concurrency = 1\nqueue_length = 1\n");
    let addr = server.addr();
    assert_eq!(http::get(addr, "/").status, 200, "warm-up starts the worker");

    let mark = server.dir.join("in-flight");
    let release = server.dir.join("release");
    let hold = format!("/hold?mark={}&release={}", mark.display(), release.display());
    let hold_only = format!("/hold?release={}", release.display());

    let (tx, rx) = mpsc::channel();
    let spawn = |label: &'static str, target: String| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = tx.send((label, http::try_send(addr, "GET", &target, &[], b"")));
        })
    };
    let a = spawn("A", hold);
    wait_for("request A to reach the worker", Duration::from_secs(30), || mark.exists());
    // A holds the only slot; B and C race for the one queue place. Whichever comes second
    // must be refused at once, while A is still held.
    let b = spawn("B", hold_only.clone());
    let c = spawn("C", hold_only);
    let (first, result) = rx.recv_timeout(Duration::from_secs(30)).expect("neither B nor C was answered while A held");
    let r = result.unwrap_or_else(|e| panic!("request {first}: {e}"));
    assert_eq!(r.status, 503, "request {first} finished while A held the only slot: {:?}", r.text());

    std::fs::write(&release, "go").unwrap();
    let mut rest = Vec::new();
    for _ in 0..2 {
        let (label, result) = rx.recv_timeout(Duration::from_secs(60)).expect("a held request never finished");
        let r = result.unwrap_or_else(|e| panic!("request {label}: {e}"));
        rest.push((label, r.status));
    }
    for t in [a, b, c] {
        t.join().unwrap();
    }
    rest.sort();
    assert!(rest.iter().all(|(_, s)| *s == 200), "after release, A and the queued request succeed: {rest:?}");
    assert!(rest.iter().any(|(l, _)| *l == "A"), "{rest:?}");

    wait_for("QueueFull in the HTTPERR log", Duration::from_secs(10), || server.httperr_log().contains("QueueFull"));
}

#[test]
fn web_garden_spreads_requests_over_its_processes() {
    if !python3_available() {
        return;
    }
    let server = python_server("garden", "processes = 2\nconcurrency = 1\n");
    let addr = server.addr();
    assert_eq!(http::get(addr, "/").status, 200, "warm-up");
    wait_for("two workers in the web garden", Duration::from_secs(30), || server.worker_pids().len() >= 2);

    let mark = server.dir.join("in-flight");
    let release = server.dir.join("release");
    let hold = format!("/hold?mark={}&release={}", mark.display(), release.display());
    let held = std::thread::spawn(move || http::try_send(addr, "GET", &hold, &[], b""));
    wait_for("the held request to reach a worker", Duration::from_secs(30), || {
        std::fs::read_to_string(&mark).is_ok_and(|s| !s.is_empty())
    });
    let busy: u32 = std::fs::read_to_string(&mark).unwrap().trim().parse().unwrap();
    // The busy worker is at its concurrency of 1: this must go to the other one, now.
    let r = http::get(addr, "/pid");
    let other: u32 = r.text().trim().parse().unwrap_or(0);
    std::fs::write(&release, "go").unwrap();
    assert_eq!(held.join().unwrap().map(|r| r.status).ok(), Some(200));
    assert_eq!(r.status, 200);
    assert_ne!(other, busy, "the second request waited for the busy worker instead of using the other");
    assert!(server.worker_pids().contains(&other), "{other} is not a worker of this server");
}

#[test]
fn start_always_runs_a_worker_before_any_request() {
    if !python3_available() {
        return;
    }
    let server = python_server("always", "start = \"always\"\n");
    wait_for("a worker started at boot", Duration::from_secs(30), || !server.worker_pids().is_empty());
    let workers = server.worker_pids();
    let r = http::get(server.addr(), "/");
    assert_eq!(r.status, 200);
    assert!(workers.contains(&pid_in(&r)), "the first request went to a new worker, not the one started at boot");
}

#[test]
fn an_idle_pool_stops_its_worker_and_the_next_request_starts_a_new_one() {
    if !python3_available() {
        return;
    }
    let server = python_server("idle", "idle_timeout = \"1s\"\n");
    let addr = server.addr();
    let r = http::get(addr, "/");
    assert_eq!(r.status, 200);
    let first = procs::ProcId::of(pid_in(&r)).expect("worker alive");
    server.remember(first.pid);
    assert!(first.wait_gone(Duration::from_secs(30)), "worker {} still runs 30 s into a 1 s idle timeout", first.pid);
    let r = http::get(addr, "/");
    assert_eq!(r.status, 200, "demand start after an idle stop: {:?}", r.text());
    assert_ne!(pid_in(&r), first.pid);
}

//! The native worker protocol end to end (issue #3): a pool with `protocol = "native"` running
//! the built-in demo app (`bulkhead demo-app`, built on `bulkhead-worker`), reached through the
//! real listener. Many clients multiplex onto one connection per worker; slow clients do not
//! make the listener buffer the responses (credit windows); an upload to a slow-reading worker
//! streams without piling up in the listener; a worker killed under load fails no GET.
//! Bounds on memory and counts, never on time.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::http::{self, Conn};
use crate::support::{procs, wait_for, Server, TestDir};

const MIB: u64 = 1024 * 1024;

fn config(extra_pool_keys: &str) -> String {
    format!(
        r#"
[limits]
max_body = "1GiB"

[[sites]]
name = "app"
bindings = ["http://127.0.0.1:0"]
routes = [ {{ path = "/", pool = "native" }} ]

[pools.native]
command = ["bulkhead", "demo-app"]
protocol = "native"
{extra_pool_keys}
"#
    )
}

/// The worker pid the demo page reports.
fn demo_pid(r: &http::Response) -> u32 {
    let text = r.text();
    let after = text.split("worker pid</th><td>").nth(1).unwrap_or_else(|| panic!("no pid in {text:?}"));
    after.split('<').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no pid in {text:?}"))
}

#[test]
fn native_pool_serves_through_the_listener_with_forwarded_headers() {
    let server = Server::start(TestDir::new("native-basic"), &config(""));
    let addr = server.addr();
    let mut conn = Conn::connect(addr).unwrap();
    for _ in 0..20 {
        let r = conn.request("GET", "/demo", &[("X-Request-Id", "test-id-1")], b"").unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().contains("test-id-1"), "X-Request-Id reached the worker: {}", r.text());
        assert!(r.header("content-length").is_some(), "a known length travels: {:?}", r.headers);
    }
    let r = http::send(addr, "POST", "/demo/echo", &[], &vec![b'a'; 300_000]);
    assert_eq!((r.status, r.text()), (200, "received 300000 bytes\n".to_string()));
    server.remember(demo_pid(&http::get(addr, "/demo")));
}

#[test]
fn slow_readers_do_not_make_the_listener_buffer() {
    let server = Server::start(TestDir::new("native-slow"), &config("concurrency = 100"));
    let addr = server.addr();
    assert_eq!(http::get(addr, "/demo").status, 200);
    let listener = server.listener_pid();

    // 50 clients each ask for 100 MiB, read the head and a little, then stop reading.
    let mut stalled = Vec::new();
    for _ in 0..50 {
        let mut conn = Conn::connect(addr).unwrap();
        conn.send_raw(format!("GET /demo/bytes?n={} HTTP/1.1\r\nHost: x\r\n\r\n", 100 * MIB).as_bytes()).unwrap();
        let mut first = vec![0u8; 64 * 1024];
        conn.stream().try_clone().unwrap().read_exact(&mut first).unwrap();
        stalled.push(conn);
    }
    // Let the worker run ahead as far as the windows allow.
    std::thread::sleep(Duration::from_secs(2));
    // A stalled stream does not stall the others on the same worker connection.
    let r = http::get(addr, "/demo");
    assert_eq!(r.status, 200);
    server.remember(demo_pid(&r));
    let peak = procs::vm_hwm_kib(listener).expect("listener VmHWM");
    eprintln!("listener VmHWM with 50 stalled 100 MiB responses: {peak} KiB");
    assert!(peak < 150 * 1024, "listener peak RSS {peak} KiB: responses are being buffered");
    // The clients go away: their streams are cancelled and the pool keeps serving.
    drop(stalled);
    for _ in 0..20 {
        assert_eq!(http::get(addr, "/demo").status, 200);
    }
}

#[test]
fn an_upload_to_a_slow_reader_streams_without_piling_up() {
    // Streamed, not spooled first: the worker's slow reading is what the credit windows hold back.
    let server = Server::start(TestDir::new("native-upload"), &config("request_buffering = false"));
    let addr = server.addr();
    let listener = server.listener_pid();
    let before = procs::vm_hwm_kib(listener).unwrap_or(0);
    eprintln!("listener VmHWM before the upload: {before} KiB");
    let size = 48 * MIB as usize;
    let r = http::send(addr, "POST", "/demo/echo?slow_ms=1", &[], &vec![b'u'; size]);
    assert_eq!((r.status, r.text()), (200, format!("received {size} bytes\n")));
    let peak = procs::vm_hwm_kib(listener).expect("listener VmHWM");
    eprintln!("listener VmHWM after a 48 MiB upload to a slow reader: {peak} KiB (before: {before} KiB)");
    // A fixed overhead (allocator pages, hyper's buffers) is fine; growth with the body is not:
    // the same run with 96 MiB peaks at the same figure.
    assert!(
        peak - before < 20 * 1024,
        "listener peak RSS grew {} KiB during a 48 MiB upload: it was buffered",
        peak - before
    );
}

#[test]
fn a_native_worker_killed_under_load_fails_no_get() {
    const CLIENTS: u64 = 8;
    const PER_CLIENT: u64 = 300;
    let server = Server::start(TestDir::new("native-kill"), &config(""));
    let addr = server.addr();
    let first = demo_pid(&http::get(addr, "/demo"));
    server.remember(first);
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(40);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (failures, done) = (failures.clone(), done.clone());
            std::thread::spawn(move || {
                let mut conn: Option<Conn> = None;
                for n in 0..PER_CLIENT {
                    if Instant::now() >= deadline {
                        break;
                    }
                    if conn.is_none() {
                        conn = Conn::connect(addr).ok();
                    }
                    match conn.as_mut().map(|c| c.request("GET", "/demo", &[], b"")) {
                        Some(Ok(r)) if r.status == 200 => {}
                        other => {
                            let what = match other {
                                Some(Ok(r)) => format!("{} {}", r.status, r.text()),
                                Some(Err(e)) => e.to_string(),
                                None => "connect failed".into(),
                            };
                            failures.lock().unwrap().push(format!("client {i} request {n}: {what}"));
                            conn = None;
                        }
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    // Kill only once load is flowing: every client has had time to send, and requests complete.
    wait_for("requests to flow before the kill", Duration::from_secs(30), || done.load(Ordering::SeqCst) >= 100);
    let at_kill = done.load(Ordering::SeqCst);
    assert!(procs::signal(first, libc::SIGKILL), "kill -9 {first}");
    for c in clients {
        c.join().unwrap();
    }
    let total = done.load(Ordering::SeqCst);
    eprintln!("{total} requests, kill -9 of {first} after {at_kill}");
    assert!(
        total > at_kill + CLIENTS,
        "the load ended ({total} requests) right at the kill ({at_kill}): not under load"
    );
    let second = demo_pid(&http::get(addr, "/demo"));
    server.remember(second);
    assert_ne!(first, second, "a replacement worker serves");
    let failures = failures.lock().unwrap();
    assert!(failures.is_empty(), "{} failed requests: {:?}", failures.len(), &failures[..failures.len().min(5)]);
}

#[test]
fn a_response_slower_than_response_timeout_is_cancelled_and_answered_504() {
    let server = Server::start(TestDir::new("native-timeout"), &config("response_timeout = \"1s\""));
    let addr = server.addr();
    let r = http::get(addr, "/demo/slow?ms=30000");
    assert_eq!(r.status, 504, "{}", r.text());
    // The worker is slow, not dead: it keeps serving, and the slow request no longer holds it.
    let r = http::get(addr, "/demo");
    assert_eq!(r.status, 200);
    server.remember(demo_pid(&r));
    assert!(server.output().contains("response_timeout"), "the manager-side log explains the 504");
}

/// Confined to one CPU (as under `taskset`), the listener runs a current-thread runtime; the
/// whole request path — static, HTTP/1.1 and native pools, shutdown — must work there too.
#[test]
fn a_server_confined_to_one_cpu_serves_and_stops() {
    // The child inherits this thread's affinity; set it for the spawn only.
    // SAFETY: plain syscalls on a zeroed cpu_set_t owned by this frame.
    let (mut saved, mut one): (libc::cpu_set_t, libc::cpu_set_t) = unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    unsafe {
        assert_eq!(libc::sched_getaffinity(0, size, &mut saved), 0);
        libc::CPU_SET(0, &mut one);
        assert_eq!(libc::sched_setaffinity(0, size, &one), 0);
    }
    let dir = TestDir::new("one-cpu");
    dir.write("www/index.html", "static\n");
    let config = format!(
        r#"
[[sites]]
name = "app"
bindings = ["http://127.0.0.1:0"]
routes = [ {{ path = "/", root = "{www}" }}, {{ path = "/demo", pool = "native" }}, {{ path = "/index.html", pool = "http" }} ]

[pools.native]
command = ["bulkhead", "demo-app"]
protocol = "native"

[pools.http]
command = ["bulkhead", "demo-app"]
"#,
        www = dir.join("www").display()
    );
    let server = Server::start(dir, &config);
    unsafe {
        libc::sched_setaffinity(0, size, &saved);
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.listener_pid())).unwrap_or_default();
    assert!(
        status.lines().any(|l| l.starts_with("Cpus_allowed_list:") && l.trim_end().ends_with("\t0")),
        "the listener runs on CPU 0 only: {status}"
    );
    let addr = server.addr();
    let mut conn = Conn::connect(addr).unwrap();
    for _ in 0..50 {
        assert_eq!(conn.request("GET", "/", &[], b"").unwrap().text(), "static\n");
        let r = conn.request("GET", "/demo", &[], b"").unwrap();
        assert_eq!(r.status, 200);
        server.remember(demo_pid(&r));
        assert_eq!(conn.request("GET", "/index.html", &[], b"").unwrap().status, 200);
    }
    let r = http::send(addr, "POST", "/demo/echo", &[], &vec![b'e'; 2 * MIB as usize]);
    assert_eq!((r.status, r.text()), (200, format!("received {} bytes\n", 2 * MIB)));
}

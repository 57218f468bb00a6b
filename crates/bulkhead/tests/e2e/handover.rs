//! Listener handover on command (issue #10 item 6): `bulkhead listener restart` under load from
//! keep-alive clients on a static route and a native pool. A new listener takes the same
//! sockets and workers; the old one finishes its requests, tells each HTTP/1.1 client
//! `Connection: close` on its next response, and exits. Not one request fails and not one
//! connection is refused; the clients end up on the new listener. Every load loop is bounded in
//! count and time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::admin::cli;
use crate::support::http::Conn;
use crate::support::{poll, procs, Server, TestDir};

const CLIENTS: usize = 8;
/// Each client's bound: requests, and time.
const MAX_REQUESTS: u64 = 200_000;
const MAX_TIME: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    reconnects: AtomicU64,
}

#[test]
fn listener_restart_under_keep_alive_load_fails_no_request() {
    let dir = TestDir::new("handover");
    dir.write("www/index.html", "static\n");
    let config = format!(
        r#"
[[sites]]
name = "s"
bindings = ["http://127.0.0.1:0"]
routes = [ {{ path = "/", root = "{}" }}, {{ path = "/demo", pool = "demo" }} ]

[pools.demo]
command = ["bulkhead", "demo-app"]
protocol = "native"
"#,
        dir.join("www").display()
    );
    let server = Server::start(dir, &config);
    let addr = server.addr();
    let old = server.listener_pid();
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (stop, tally, failures) = (stop.clone(), tally.clone(), failures.clone());
            std::thread::spawn(move || {
                let target = if i % 2 == 0 { "/index.html" } else { "/demo" };
                let started = Instant::now();
                let mut conn: Option<Conn> = None;
                for _ in 0..MAX_REQUESTS {
                    if stop.load(Ordering::Relaxed) || started.elapsed() > MAX_TIME {
                        break;
                    }
                    let c = match conn.as_mut() {
                        Some(c) => c,
                        None => match Conn::connect(addr) {
                            Ok(c) => conn.insert(c),
                            Err(e) => {
                                tally.failed.fetch_add(1, Ordering::Relaxed);
                                failures.lock().expect("lock").push(format!("connect: {e}"));
                                continue;
                            }
                        },
                    };
                    match c.request("GET", target, &[], b"") {
                        Ok(r) if r.status == 200 => {
                            tally.ok.fetch_add(1, Ordering::Relaxed);
                            if r.closes() {
                                tally.reconnects.fetch_add(1, Ordering::Relaxed);
                                conn = None;
                            }
                        }
                        Ok(r) => {
                            tally.failed.fetch_add(1, Ordering::Relaxed);
                            failures.lock().expect("lock").push(format!("{target}: {} {}", r.status, r.text()));
                            conn = None;
                        }
                        Err(e) => {
                            tally.failed.fetch_add(1, Ordering::Relaxed);
                            failures.lock().expect("lock").push(format!("{target}: {e}"));
                            conn = None;
                        }
                    }
                }
            })
        })
        .collect();
    // Load is flowing on both routes before the handover.
    assert!(poll(Duration::from_secs(20), || tally.ok.load(Ordering::Relaxed) > 500), "no load before the handover");
    let out = cli(&[
        "listener",
        "restart",
        "--config",
        server.config_path.as_deref().and_then(|p| p.to_str()).expect("config"),
    ]);
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bulkhead listener restart: {said}");
    assert!(said.contains("listener handover"), "{said}");
    let new = {
        let mut new = old;
        assert!(
            poll(Duration::from_secs(20), || {
                new = server.listener_pid();
                new != old
            }),
            "listener.pid still names the old listener"
        );
        new
    };
    assert!(poll(Duration::from_secs(30), || !procs::alive(old)), "the old listener (pid {old}) did not exit");
    assert!(procs::alive(new), "the new listener (pid {new}) is not running");
    // Load goes on through the new listener.
    let after = tally.ok.load(Ordering::Relaxed);
    assert!(
        poll(Duration::from_secs(20), || tally.ok.load(Ordering::Relaxed) > after + 500),
        "no requests served after the handover"
    );
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client thread");
    }
    let failed = tally.failed.load(Ordering::Relaxed);
    let shown: Vec<String> = failures.lock().expect("lock").iter().take(10).cloned().collect();
    assert_eq!(failed, 0, "failed requests during the handover ({} ok): {shown:#?}", tally.ok.load(Ordering::Relaxed));
    // Every client was told to reconnect by the old listener, and did.
    assert!(tally.reconnects.load(Ordering::Relaxed) >= CLIENTS as u64 / 2, "clients were not moved over");
    // The old listener's exit is seen here (in /proc) before the manager has reaped it and
    // said so: its event comes a moment later.
    let mut events = String::new();
    assert!(
        poll(Duration::from_secs(20), || {
            events = crate::admin::api(&server, "GET", "/events", None).1.to_string();
            events.contains("handover complete")
        }),
        "{events}"
    );
}

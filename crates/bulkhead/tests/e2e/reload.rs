//! Editing the config while the server runs (issue #5 item 2): edits every second for 10 s under
//! load lose no request; a new binding is served by the running listener (never restarted) and
//! a removed one stops accepting; a pool whose command environment changed is recycled while
//! its requests keep succeeding.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::admin::{api, demo_config, ready_pid, write_replacing};
use crate::support::http::{get, try_send, Conn};
use crate::support::{free_port, poll, wait_for, Server, TestDir};

/// Requests one load thread may send at most, and for how long.
const MAX_REQUESTS: u64 = 200_000;
const LOAD_LIMIT: Duration = Duration::from_secs(14);

#[test]
fn edits_every_second_under_load_lose_no_request() {
    let dir = TestDir::new("reload-load");
    let config = demo_config(&dir, "");
    let server = Server::start(dir, &config);
    let addr = server.addr();
    assert_eq!(get(addr, "/demo").status, 200);
    let path = server.config_path.clone().expect("config path");
    let base = std::fs::read_to_string(&path).expect("read config");
    let listener = server.listener_pid();

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let first_failure = Arc::new(std::sync::Mutex::new(None::<String>));
    let mut threads = Vec::new();
    for target in ["/", "/demo"] {
        let (stop, ok, failed, first) = (stop.clone(), ok.clone(), failed.clone(), first_failure.clone());
        threads.push(std::thread::spawn(move || {
            let started = Instant::now();
            let mut conn: Option<Conn> = None;
            for _ in 0..MAX_REQUESTS {
                if stop.load(Ordering::Relaxed) || started.elapsed() > LOAD_LIMIT {
                    break;
                }
                // Keep-alive like a real client; reconnect only when the server said it closes.
                // Every error counts as a failure, none is resent: a listener that drops a
                // kept-alive connection during a reload without `Connection: close` loses
                // the request a client sent on it.
                let result = match conn.as_mut() {
                    Some(c) => c.request("GET", target, &[], b""),
                    None => Conn::connect(addr).and_then(|mut c| {
                        let r = c.request("GET", target, &[], b"");
                        conn = Some(c);
                        r
                    }),
                };
                match result {
                    Ok(r) if r.status == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        if r.closes() {
                            conn = None;
                        }
                    }
                    Ok(r) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        first
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert(format!("{target}: {}", r.status));
                        conn = None;
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        first.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(format!("{target}: {e}"));
                        conn = None;
                    }
                }
            }
        }));
    }

    // Ten edits, one a second: routes come and go, a queue setting changes, and once the demo
    // pool's environment changes (its workers are recycled, overlapped).
    for i in 1..=10 {
        std::thread::sleep(Duration::from_secs(1));
        let mut text = base.replace(
            "{ path = \"/demo\", pool = \"demo\" }",
            &format!("{{ path = \"/demo\", pool = \"demo\" }}, {{ path = \"/extra{i}\", root = \"a\" }}"),
        );
        text.push_str(&format!("queue_length = {}\n", 500 + i));
        if i == 5 {
            text.push_str("env = { EDIT = \"5\" }\n");
        }
        write_replacing(&path, &text);
        wait_for("the edit to be applied", Duration::from_secs(10), || {
            get(addr, &format!("/extra{i}/page.html")).status == 200
        });
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("load thread");
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("edits under load: {ok} requests ok, {failed} failed");
    let first = first_failure.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(failed, 0, "requests lost during config edits; first: {first:?}");
    assert!(ok > 100, "the load loop ran ({ok} requests)");
    assert_eq!(server.listener_pid(), listener, "the listener was never restarted");
    let (_, history) = api(&server, "GET", "/config/history", None);
    assert!(history.as_array().is_some_and(|h| h.len() >= 10), "{history}");
    assert!(server.output().contains("recycling worker"), "the env change recycled the demo pool");
    server.worker_pids();
}

#[test]
fn bindings_are_added_and_removed_without_restarting_the_listener() {
    let dir = TestDir::new("reload-bindings");
    let config = demo_config(&dir, "");
    let server = Server::start(dir, &config);
    let path = server.config_path.clone().expect("config path");
    let base = std::fs::read_to_string(&path).expect("read config");
    let listener = server.listener_pid();
    let port = free_port();
    let extra = format!("http://127.0.0.1:{port}");
    write_replacing(
        &path,
        &base.replace("[\"http://127.0.0.1:0\"]", &format!("[\"http://127.0.0.1:0\", \"{extra}\"]")),
    );
    let new_addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    wait_for("the new binding to serve", Duration::from_secs(10), || {
        try_send(new_addr, "GET", "/", &[], b"").is_ok_and(|r| r.status == 200)
    });
    assert_eq!(get(new_addr, "/").text(), "home v1\n");
    // The listener serves a passed socket at once; the manager rewrites bindings.json just after.
    let mut bindings = String::new();
    let listed = poll(Duration::from_secs(10), || {
        bindings = std::fs::read_to_string(server.state_dir.join("bindings.json")).unwrap_or_default();
        bindings.contains(&extra)
    });
    assert!(listed, "{extra} not in bindings.json: {bindings}");
    assert_eq!(server.listener_pid(), listener, "the listener was not restarted");

    write_replacing(&path, &format!("{base}\n# without the extra binding\n"));
    wait_for("the removed binding to stop accepting", Duration::from_secs(10), || {
        std::net::TcpStream::connect_timeout(&new_addr, Duration::from_secs(1)).is_err()
    });
    assert_eq!(get(server.addr(), "/").status, 200, "the other binding still serves");
    assert_eq!(server.listener_pid(), listener);
}

#[test]
fn pools_are_added_and_removed_live() {
    let dir = TestDir::new("reload-pools");
    let config = demo_config(&dir, "");
    let server = Server::start(dir, &config);
    let addr = server.addr();
    let path = server.config_path.clone().expect("config path");
    let base = std::fs::read_to_string(&path).expect("read config");
    assert_eq!(get(addr, "/demo").status, 200);
    let demo_pid = ready_pid(&server, "demo").expect("demo worker");
    server.remember(demo_pid as u32);

    let with_second = base.replace(
        "{ path = \"/demo\", pool = \"demo\" }",
        "{ path = \"/demo\", pool = \"demo\" }, { path = \"/demo/echo\", pool = \"two\" }",
    ) + "\n[pools.two]\ncommand = [\"bulkhead\", \"demo-app\"]\nprotocol = \"native\"\n";
    write_replacing(&path, &with_second);
    // The demo app strips `/demo`, so the new pool answers `/demo/echo` as the old one would.
    wait_for("the new pool to serve", Duration::from_secs(30), || {
        get(addr, "/demo/echo").status == 200 && ready_pid(&server, "two").is_some()
    });
    assert_eq!(ready_pid(&server, "demo"), Some(demo_pid), "an untouched pool keeps its worker");
    let two_pid = ready_pid(&server, "two").expect("a worker for the new pool");
    server.remember(two_pid as u32);

    write_replacing(&path, &base);
    wait_for("the removed pool's worker to stop", Duration::from_secs(30), || {
        !server.worker_pids().contains(&(two_pid as u32))
    });
    wait_for("the removed pool gone from /status", Duration::from_secs(10), || {
        let (_, pools) = api(&server, "GET", "/pools", None);
        pools.as_array().is_some_and(|p| p.len() == 1)
    });
    assert_eq!(get(addr, "/demo/echo").status, 200, "the route went back to the demo pool");
    assert_eq!(ready_pid(&server, "demo"), Some(demo_pid));
}

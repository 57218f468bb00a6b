//! The server's life as an operator sees it: SIGTERM drains an in-flight request, exits 0 and
//! leaves no worker behind (issue #2 item 3); and `bulkhead serve` with no config serves the
//! embedded default — the welcome page and the demo pool — on 127.0.0.1:8080 (item 2).

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use crate::pools::pid_in;
use crate::support::http;
use crate::support::server::{python3_available, python_command};
use crate::support::{procs, wait_for, Server, TestDir};

#[test]
fn sigterm_lets_an_in_flight_request_finish_then_exits_0_with_no_worker_left() {
    if !python3_available() {
        return;
    }
    let config = format!(
        r#"
[[sites]]
name = "app"
bindings = ["http://127.0.0.1:0"]
routes = [ {{ path = "/", pool = "py" }} ]

[pools.py]
command = {}
shutdown_time_limit = "20s"
"#,
        python_command()
    );
    let mut server = Server::start(TestDir::new("sigterm"), &config);
    let addr = server.addr();
    let r = http::get(addr, "/");
    assert_eq!(r.status, 200);
    let worker = pid_in(&r);
    let listener = server.listener_pid();

    let mark = server.dir.join("in-flight");
    let target = format!("/slow?ms=1500&mark={}", mark.display());
    let slow = std::thread::spawn(move || http::try_send(addr, "GET", &target, &[], b""));
    wait_for("the slow request to reach the worker", Duration::from_secs(30), || mark.exists());
    let workers = server.worker_pids();
    assert!(workers.contains(&worker), "worker {worker} not among {workers:?}");
    let pids = server.remembered();

    server.signal_manager(libc::SIGTERM);
    let r = slow.join().unwrap().expect("the in-flight request was cut off by SIGTERM");
    assert_eq!((r.status, r.text().as_str()), (200, "slept 1500"), "in-flight request during shutdown");

    let status = server.wait_exit(Duration::from_secs(40)).expect("manager still running 40 s after SIGTERM");
    assert_eq!(status.code(), Some(0), "manager exit status {status}");
    let mut survivors = Vec::new();
    for p in pids.iter().filter(|p| p.pid != server.manager_pid) {
        if !p.wait_gone(Duration::from_secs(10)) {
            survivors.push((p.pid, procs::cmdline(p.pid)));
        }
    }
    assert!(survivors.is_empty(), "processes outlived the manager (listener {listener}): {survivors:?}");
    assert!(http::try_send(addr, "GET", "/", &[], b"").is_err(), "the port still answers after shutdown");
}

#[test]
fn embedded_default_serves_welcome_page_and_demo_pool_on_8080() {
    match TcpListener::bind("127.0.0.1:8080") {
        Ok(probe) => drop(probe),
        Err(e) => {
            eprintln!("SKIPPED: 127.0.0.1:8080 is in use ({e}); the embedded default needs it");
            return;
        }
    }
    let server = Server::start_default(TestDir::new("default"));
    let addr: SocketAddr = ([127, 0, 0, 1], 8080).into();
    assert!(server.bindings().iter().any(|(_, a)| a.port() == 8080), "bindings: {:?}", server.bindings());

    let r = http::get(addr, "/");
    assert_eq!(r.status, 200, "welcome page: {:?}", r.text());
    assert!(r.header("content-type").unwrap_or("").starts_with("text/html"), "{:?}", r.headers);
    assert!(r.text().to_ascii_lowercase().contains("bulkhead"), "welcome page does not say Bulkhead: {}", r.text());

    let mut target = "/demo".to_string();
    let mut r = http::get(addr, &target);
    for _ in 0..3 {
        if !(300..400).contains(&r.status) {
            break;
        }
        target = r.header("location").expect("redirect without Location").to_string();
        if let Some(rest) = target.strip_prefix("http://127.0.0.1:8080") {
            target = rest.to_string();
        }
        r = http::get(addr, &target);
    }
    assert_eq!(r.status, 200, "GET {target} (demo pool): {:?}", r.text());
    let workers = server.worker_pids();
    assert!(!workers.is_empty(), "the demo answered but no worker process runs under the manager");
    assert!(
        workers.iter().any(|p| procs::cmdline(*p).contains("demo-app")),
        "no demo-app worker among {:?}",
        workers.iter().map(|p| procs::cmdline(*p)).collect::<Vec<_>>()
    );
}

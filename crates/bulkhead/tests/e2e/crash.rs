//! Crash isolation (issue #2 items 5–6): a worker killed with SIGKILL under concurrent load
//! costs no client a failed request (replayable GETs are retried on the replacement), and a
//! pool that cannot start (exits at once, or its binary went missing after the config was applied) answers 503 with the reason
//! in its pool log and the manager's log, while a healthy pool on the same server answers
//! every request.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::pools::pid_in;
use crate::support::http::{self, Conn};
use crate::support::server::{python3_available, python_command, python_site};
use crate::support::{procs, wait_for, Server, TestDir};

const CLIENTS: usize = 8;
const REQUESTS_PER_CLIENT: u64 = 300;
const LOAD_TIME_LIMIT: Duration = Duration::from_secs(40);

#[test]
fn kill_9_of_a_worker_under_load_fails_no_request() {
    if !python3_available() {
        return;
    }
    let config = python_site("", "");
    let server = Server::start(TestDir::new("kill9"), &config);
    let addr = server.addr();
    let r = http::get(addr, "/");
    assert_eq!(r.status, 200, "warm-up: {:?}", r.text());
    let first_pid = pid_in(&r);

    let done = Arc::new(AtomicU64::new(0));
    let latest_pid = Arc::new(AtomicU32::new(first_pid));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let deadline = Instant::now() + LOAD_TIME_LIMIT;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (done, latest_pid, failures) = (done.clone(), latest_pid.clone(), failures.clone());
            std::thread::spawn(move || {
                let mut conn = None;
                for n in 0..REQUESTS_PER_CLIENT {
                    if Instant::now() >= deadline {
                        break;
                    }
                    if conn.is_none() {
                        conn = Conn::connect(addr).ok();
                    }
                    let result = match conn.as_mut() {
                        Some(c) => c.request("GET", "/", &[], b""),
                        None => Err(std::io::Error::other("connect failed")),
                    };
                    match result {
                        Ok(r) if r.status == 200 => {
                            latest_pid.store(pid_in(&r), Ordering::SeqCst);
                            if r.closes() {
                                conn = None;
                            }
                        }
                        Ok(r) => {
                            failures.lock().unwrap().push(format!(
                                "client {i} request {n}: {} {:?}",
                                r.status,
                                r.text()
                            ));
                            conn = None;
                        }
                        Err(e) => {
                            failures.lock().unwrap().push(format!("client {i} request {n}: {e}"));
                            conn = None;
                        }
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();

    let total = CLIENTS as u64 * REQUESTS_PER_CLIENT;
    let mut killed = Vec::new();
    let mut victim = first_pid;
    for at in [total / 6, total / 2] {
        let progressed = crate::support::poll(deadline.saturating_duration_since(Instant::now()), || {
            done.load(Ordering::SeqCst) >= at && latest_pid.load(Ordering::SeqCst) != 0
        });
        if !progressed {
            break;
        }
        if !killed.is_empty() {
            // Wait for the replacement to answer (a live worker of this server other than the
            // killed one: a client may still store a stale pid), then kill it too.
            let old = victim;
            let found = crate::support::poll(deadline.saturating_duration_since(Instant::now()), || {
                let pid = latest_pid.load(Ordering::SeqCst);
                if pid != old && server.worker_pids().contains(&pid) {
                    victim = pid;
                    return true;
                }
                false
            });
            if !found {
                break;
            }
        }
        assert!(server.worker_pids().contains(&victim), "{victim} is not a worker of this server");
        assert!(procs::signal(victim, libc::SIGKILL), "kill -9 {victim}");
        killed.push((victim, done.load(Ordering::SeqCst)));
    }
    for c in clients {
        c.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    let finished = done.load(Ordering::SeqCst);
    eprintln!("{finished} requests, kill -9 of (pid, after n requests): {killed:?}");
    assert_eq!(killed.len(), 2, "the load ended ({finished} requests) before both kills happened: {killed:?}");
    assert!(
        failures.is_empty(),
        "{} of {finished} requests failed around kills {killed:?}:\n{}",
        failures.len(),
        failures.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    let r = http::get(addr, "/");
    assert_eq!(r.status, 200);
    assert!(!killed.iter().any(|(p, _)| *p == pid_in(&r)), "a killed worker answered");
    let log = server.output();
    for (pid, _) in &killed {
        assert!(
            log.lines().any(|l| l.contains(&pid.to_string()) && l.contains("SIGKILL")),
            "the manager did not log worker {pid}'s SIGKILL:\n{log}"
        );
    }
}

#[test]
fn crash_looping_and_missing_pools_answer_503_while_a_healthy_pool_serves() {
    if !python3_available() {
        return;
    }
    let dir = TestDir::new("crashloop");
    let config = format!(
        r#"
[[sites]]
name = "app"
bindings = ["http://127.0.0.1:0"]
routes = [
  {{ path = "/", pool = "good" }},
  {{ path = "/broken", pool = "broken" }},
  {{ path = "/missing", pool = "missing" }},
]

[pools.good]
command = {}

[pools.broken]
command = ["sh", "-c", "echo broken-app-says-goodbye; exit 3"]

[pools.missing]
command = [{app:?}]
"#,
        python_command(),
        app = dir.join("removed-after-start").display().to_string()
    );
    // A program that is there when the config is applied (a missing one is refused up front,
    // see preflight.rs) and is gone when the pool starts, as during a botched deploy.
    let app = dir.write("removed-after-start", "#!/bin/sh\nexit 0\n");
    std::fs::set_permissions(&app, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let server = Server::start(dir, &config);
    std::fs::remove_file(&app).expect("remove the program");
    let addr = server.addr();
    let mut statuses = Vec::new();
    for round in 0..12 {
        let broken = http::get(addr, "/broken/page");
        let missing = http::get(addr, "/missing/page");
        let good = http::get(addr, "/");
        statuses.push((round, broken.status, missing.status, good.status));
        assert_eq!(good.status, 200, "healthy pool, round {round}: {:?}", good.text());
        assert_eq!(broken.status, 503, "crash-looping pool, round {round}: {:?}", broken.text());
        assert_eq!(missing.status, 503, "pool with a missing binary, round {round}: {:?}", missing.text());
    }

    let broken_log = server.pool_log("broken");
    assert!(
        broken_log.contains("broken-app-says-goodbye"),
        "the worker's stdout is not in its pool log:\n{broken_log}"
    );
    assert!(broken_log.to_ascii_lowercase().contains("exit"), "no exit reason in the pool log:\n{broken_log}");
    let missing_log = server.pool_log("missing");
    assert!(
        missing_log.contains("removed-after-start does not exist"),
        "no exec error in the pool log:\n{missing_log}"
    );
    wait_for("the reasons in the manager's log", Duration::from_secs(10), || {
        let out = server.output();
        out.contains("broken") && out.contains("removed-after-start does not exist")
    });
    let httperr = server.httperr_log();
    assert!(
        ["AppStartFailed", "AppOffline"].iter().any(|w| httperr.contains(w)),
        "no 503 reason in HTTPERR:\n{httperr}"
    );
}

fn python_only(label: &str) -> Server {
    Server::start(TestDir::new(label), &python_site("", ""))
}

/// Lines of the manager's log saying a worker of pool `py` exited.
fn exits_logged(server: &Server) -> usize {
    server.output().lines().filter(|l| l.contains("pool \"py\": worker") && l.contains("exited")).count()
}

#[test]
fn a_get_that_kills_two_workers_is_answered_502_and_not_retried_again() {
    if !python3_available() {
        return;
    }
    let server = python_only("poison");
    let addr = server.addr();
    assert_eq!(http::get(addr, "/").status, 200);
    let r = http::get(addr, "/crash");
    assert_eq!(r.status, 502, "a poison GET: {:?}", r.text());
    wait_for("two worker exits in the manager's log", Duration::from_secs(10), || exits_logged(&server) >= 2);
    let r = http::get(addr, "/");
    assert_eq!(r.status, 200, "the pool serves again after a poison request: {:?}", r.text());
    assert_eq!(exits_logged(&server), 2, "the poison request was retried more than once:\n{}", server.output());
}

#[test]
fn a_post_whose_worker_dies_is_answered_502_without_a_retry() {
    if !python3_available() {
        return;
    }
    let server = python_only("postcrash");
    let addr = server.addr();
    assert_eq!(http::get(addr, "/").status, 200);
    let r = http::send(addr, "POST", "/crash", &[], b"not replayable");
    assert_eq!(r.status, 502, "POST to a dying worker: {:?}", r.text());
    wait_for("the worker exit in the manager's log", Duration::from_secs(10), || exits_logged(&server) >= 1);
    let r = http::get(addr, "/");
    assert_eq!(r.status, 200, "{:?}", r.text());
    assert_eq!(exits_logged(&server), 1, "the POST was replayed on another worker:\n{}", server.output());
}

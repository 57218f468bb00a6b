//! Worker health management (issue #4): pings over the control channel and over HTTP, hung
//! workers killed or orphaned, recycling on every trigger (age, requests, memory, virtual
//! memory, CPU, the worker's own request, overlapped or not, one at a time in a web garden,
//! the schedule), rapid-fail on crashes, and pool identities when run as root.
//!
//! Every test runs the real server with the tests' health app (`tests/apps/health_app.py`),
//! uses short durations ("500ms", "1s") and waits for what an operator would see — pool-log
//! lines, pids changing, `/proc` — with bounded polling; none asserts on timing.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::admin::api;
use crate::support::http::{self, Conn};
use crate::support::server::{self, bulkhead_exe, python3_available};
use crate::support::skip::{skip, Reason};
use crate::support::{poll, procs, wait_for, Server, TestDir};

/// Generous bound for anything a test waits for.
const LIMIT: Duration = Duration::from_secs(40);

fn health_app() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps/health_app.py")
}

/// A server with one site routing `/` to pool `h` (the health app) with `pool_extra` keys.
fn server(label: &str, pool_extra: &str) -> Server {
    let config = format!(
        r#"
[[sites]]
name = "app"
bindings = ["http://127.0.0.1:0"]
routes = [ {{ path = "/", pool = "h" }} ]

[pools.h]
command = ["python3", "-u", {:?}]
shutdown_time_limit = "5s"
{pool_extra}
"#,
        health_app().display().to_string()
    );
    Server::start(TestDir::new(label), &config)
}

/// The pid of the worker that answers `GET /pid`.
fn pid(addr: SocketAddr) -> u32 {
    let r = http::get(addr, "/pid");
    assert_eq!(r.status, 200, "GET /pid: {} {:?}", r.status, r.text());
    r.text().trim().parse().expect("a pid")
}

/// Waits until the pool log contains `needle`; returns the log.
fn wait_log(server: &Server, needle: &str) -> String {
    let mut log = String::new();
    let found = poll(LIMIT, || {
        log = server.pool_log("h");
        log.contains(needle)
    });
    assert!(found, "no {needle:?} in the pool log within {LIMIT:?}:\n{log}");
    log
}

/// Waits until a worker other than `old` answers; returns its pid.
fn wait_new_worker(addr: SocketAddr, old: u32) -> u32 {
    let mut now = old;
    wait_for("a new worker to answer", LIMIT, || {
        now = pid(addr);
        now != old
    });
    now
}

/// The uid a process runs as (`Uid:` real uid in `/proc/<pid>/status`).
fn uid_of(pid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find(|l| l.starts_with("Uid:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// Sends GETs on `conns` keep-alive connections until `stop` says so (bounded by `LIMIT` and
/// 20 000 requests); returns (requests, failures described, distinct pids seen).
fn load_until(
    addr: SocketAddr,
    conns: usize,
    mut stop: impl FnMut(&BTreeSet<u32>) -> bool,
) -> (u64, Vec<String>, BTreeSet<u32>) {
    let deadline = Instant::now() + LIMIT;
    let mut connections: Vec<Option<Conn>> = (0..conns).map(|_| None).collect();
    let (mut done, mut failures, mut pids) = (0u64, Vec::new(), BTreeSet::new());
    while Instant::now() < deadline && done < 20_000 && !stop(&pids) {
        for slot in connections.iter_mut() {
            if slot.is_none() {
                *slot = Conn::connect(addr).ok();
            }
            let result = match slot.as_mut() {
                Some(c) => c.request("GET", "/pid", &[], b""),
                None => Err(std::io::Error::other("connect failed")),
            };
            done += 1;
            match result {
                Ok(r) if r.status == 200 => {
                    if let Ok(p) = r.text().trim().parse() {
                        pids.insert(p);
                    }
                    if r.closes() {
                        *slot = None;
                    }
                }
                Ok(r) => {
                    failures.push(format!("request {done}: {} {:?}", r.status, r.text()));
                    *slot = None;
                }
                Err(e) => {
                    failures.push(format!("request {done}: {e}"));
                    *slot = None;
                }
            }
        }
    }
    (done, failures, pids)
}

#[test]
fn a_sigstopped_worker_fails_its_control_channel_ping_and_is_replaced() {
    if !python3_available() {
        return;
    }
    let s = server(
        "ping-sigstop",
        "env = { HEALTH_APP_CONTROL = \"1\" }\nhealth = { ping_interval = \"300ms\", ping_timeout = \"1s\" }",
    );
    let addr = s.addr();
    let old = pid(addr);
    s.worker_pids();
    let frozen = procs::ProcId::of(old).expect("the worker runs");
    assert!(procs::signal(old, libc::SIGSTOP), "SIGSTOP {old}");
    let log = wait_log(&s, "did not answer a control-channel ping within 1s (health.ping_timeout)");
    assert!(log.contains("(crash 1 of 5 within 5m)"), "a hang counts for rapid-fail:\n{log}");
    assert_ne!(wait_new_worker(addr, old), old);
    assert!(frozen.wait_gone(LIMIT), "the hung worker {old} was not killed");
}

#[test]
fn a_blocking_health_path_gets_the_worker_orphaned_and_the_action_run() {
    if !python3_available() {
        return;
    }
    let dir = TestDir::new("orphan-marks");
    let mark = dir.join("orphan.txt");
    let extra = format!(
        "health = {{ ping_interval = \"300ms\", ping_timeout = \"1s\", path = \"/health\" }}\n\
         orphan = {{ enabled = true, action = [\"sh\", \"-c\", \"echo %pid% %pool% > {}\"] }}",
        mark.display()
    );
    let s = server("orphan", &extra);
    let addr = s.addr();
    let old = pid(addr);
    s.worker_pids();
    let orphan = procs::ProcId::of(old).expect("the worker runs");
    assert_eq!(http::get(addr, "/freeze-health").status, 200);
    let log = wait_log(&s, "did not answer a GET /health within 1s (health.ping_timeout)");
    assert!(log.contains("as an orphan for debugging"), "{log}");
    wait_for("the orphan action's mark", LIMIT, || {
        std::fs::read_to_string(&mark).is_ok_and(|t| t.trim() == format!("{old} h"))
    });
    let new = wait_new_worker(addr, old);
    assert_ne!(new, old);
    assert!(orphan.alive(), "the orphan {old} must be left running");
    // The orphan is never routed again.
    for _ in 0..20 {
        assert_ne!(pid(addr), old);
    }
    // Left alive on purpose, so the manager will not stop it: the test does, by pid.
    assert!(orphan.signal(libc::SIGKILL), "kill the orphan {old}");
    assert!(orphan.wait_gone(LIMIT), "the orphan {old} did not exit on SIGKILL");
}

#[test]
fn overlapped_recycling_every_second_under_load_fails_no_request() {
    if !python3_available() {
        return;
    }
    let s = server("recycle-every", "recycle = { every = \"1s\" }");
    let addr = s.addr();
    pid(addr);
    let (done, failures, pids) = load_until(addr, 4, |pids| pids.len() >= 4);
    assert!(failures.is_empty(), "{} of {done} requests failed:\n{}", failures.len(), failures.join("\n"));
    assert!(pids.len() >= 4, "only {} workers answered in {done} requests: {pids:?}", pids.len());
    let log = s.pool_log("h");
    assert!(log.contains("it is 1s old (recycle.every); starting its replacement first (overlapped)"), "{log}");
    assert!(log.contains("took over from worker"), "{log}");
}

#[test]
fn non_overlapped_recycling_stops_first_and_requests_wait_in_the_queue() {
    if !python3_available() {
        return;
    }
    let s = server("recycle-nonoverlap", "recycle = { every = \"1s\", overlapped = false }");
    let addr = s.addr();
    pid(addr);
    let (done, failures, pids) = load_until(addr, 2, |pids| pids.len() >= 3);
    assert!(failures.is_empty(), "{} of {done} requests failed:\n{}", failures.len(), failures.join("\n"));
    assert!(pids.len() >= 3, "{pids:?}");
    let log = s.pool_log("h");
    assert!(log.contains("stopping it before its replacement starts (overlapped = false"), "{log}");
    assert!(!log.contains("took over from"), "no overlap expected:\n{log}");
}

#[test]
fn a_web_garden_recycles_one_worker_at_a_time() {
    if !python3_available() {
        return;
    }
    let s = server("recycle-garden", "processes = 2\nrecycle = { every = \"2s\" }");
    let addr = s.addr();
    pid(addr);
    let (done, failures, _) = load_until(addr, 4, |_| s.pool_log("h").matches("took over from").count() >= 4);
    assert!(failures.is_empty(), "{} of {done} requests failed:\n{}", failures.len(), failures.join("\n"));
    // Each recycle finishes (its replacement took over) before the next one starts.
    let log = s.pool_log("h");
    let mut open = false;
    let mut count = 0;
    for line in log.lines() {
        if line.contains("recycling worker") {
            assert!(!open, "a recycle started while another was under way:\n{log}");
            open = true;
            count += 1;
        } else if line.contains("took over from") {
            open = false;
        }
    }
    assert!(count >= 4, "{count} recycles:\n{log}");
}

#[test]
fn recycling_on_request_count() {
    if !python3_available() {
        return;
    }
    let s = server("recycle-requests", "recycle = { requests = 5 }");
    let addr = s.addr();
    let old = pid(addr);
    let new = wait_new_worker(addr, old);
    assert_ne!(new, old);
    wait_log(&s, "(recycle.requests = 5); starting its replacement first (overlapped)");
}

#[test]
fn recycling_on_resident_and_virtual_memory() {
    if !python3_available() {
        return;
    }
    let s = server("recycle-memory", "recycle = { memory = \"80MiB\", virtual_memory = \"3GiB\" }");
    let addr = s.addr();
    let old = pid(addr);
    assert_eq!(http::get(addr, "/grow?mb=120").status, 200);
    wait_log(&s, "of resident memory (recycle.memory = 80.0MiB)");
    let second = wait_new_worker(addr, old);
    assert_eq!(http::get(addr, "/reserve?mb=4096").status, 200);
    wait_log(&s, "of virtual memory (recycle.virtual_memory = 3.0GiB)");
    wait_new_worker(addr, second);
}

/// Keeps a worker busy (`GET /burn`, 300 ms of CPU each, one after another) until the pool
/// log holds `needle`; panics after [`LIMIT`]. Burning until seen, rather than once, keeps the
/// test independent of how the manager's sampling windows fall and of how loaded the machine
/// is; it can still only pass if the manager reports the overrun.
fn burn_until(server: &Server, addr: SocketAddr, needle: &str) -> String {
    let deadline = Instant::now() + LIMIT;
    loop {
        let log = server.pool_log("h");
        if log.contains(needle) {
            return log;
        }
        assert!(Instant::now() < deadline, "no {needle:?} in the pool log within {LIMIT:?} of burning CPU:\n{log}");
        let r = http::get(addr, "/burn?ms=300");
        assert_eq!(r.status, 200, "GET /burn: {} {:?}", r.status, r.text());
    }
}

#[test]
fn the_cpu_limit_logs_or_recycles() {
    if !python3_available() {
        return;
    }
    let s = server("cpu-recycle", "cpu = { limit = 10, action = \"recycle\", reset_interval = \"3s\" }");
    let addr = s.addr();
    let old = pid(addr);
    burn_until(&s, addr, "over cpu.limit = 10% of one core per 3s (cpu.reset_interval)");
    wait_new_worker(addr, old);

    let s = server("cpu-log", "cpu = { limit = 10, action = \"log\", reset_interval = \"3s\" }");
    let addr = s.addr();
    let old = pid(addr);
    let log = burn_until(&s, addr, "cpu.action = \"log\": nothing done");
    assert!(log.contains(&format!("worker {old} (w1) used ")), "the overrun names the worker:\n{log}");
    assert_eq!(pid(addr), old, "action log keeps the worker");
}

#[test]
fn a_worker_that_asks_to_be_recycled_is_replaced() {
    if !python3_available() {
        return;
    }
    let s = server("ask-recycle", "env = { HEALTH_APP_CONTROL = \"1\" }");
    let addr = s.addr();
    let old = pid(addr);
    assert_eq!(http::get(addr, "/ask-recycle").status, 200);
    wait_log(&s, "it asked to be recycled (the test asked)");
    wait_new_worker(addr, old);
}

#[test]
fn repeated_crashes_disable_the_pool_with_503_app_offline() {
    if !python3_available() {
        return;
    }
    let s = server("rapid-fail", "rapid_fail = { max_crashes = 2, interval = \"5m\" }");
    let addr = s.addr();
    let first = pid(addr);
    let _ = http::try_send(addr, "POST", "/crash", &[], b"");
    let second = wait_new_worker(addr, first);
    let _ = http::try_send(addr, "POST", "/crash", &[], b"");
    wait_log(&s, "rapid-fail protection disabled the pool");
    let mut r = http::get(addr, "/");
    poll(LIMIT, || {
        r = http::get(addr, "/");
        r.status == 503
    });
    assert_eq!(r.status, 503, "{:?}", r.text());
    wait_for("AppOffline in HTTPERR", LIMIT, || s.httperr_log().contains("AppOffline"));
    wait_for("the crashed pool to have no worker", LIMIT, || !s.worker_pids().contains(&second));

    // While disabled, no worker starts: 50 requests, each of which would demand-start one in an
    // idle pool, all get 503, and between them no process runs under the manager but the
    // listener; afterwards the pool log and the manager's events show no start after the two.
    let starts = |log: &str| log.matches(") started: ").count();
    assert_eq!(starts(&s.pool_log("h")), 2, "two workers started before the pool was disabled");
    let start_events = || {
        let (_, events) = api(&s, "GET", "/events?limit=1000", None);
        let list = events.as_array().cloned().unwrap_or_default();
        list.iter().filter(|e| e["message"].as_str().is_some_and(|m| m.contains("demand start"))).count()
    };
    let demand_starts = start_events();
    for n in 0..50 {
        let r = http::get(addr, "/");
        assert_eq!(r.status, 503, "request {n} to the disabled pool: {:?}", r.text());
        let running = s.worker_pids();
        assert!(running.is_empty(), "a process started under the disabled pool: {running:?}");
    }
    let (_, status) = api(&s, "GET", "/status", None);
    let pool = status["pools"].as_array().and_then(|p| p.iter().find(|p| p["name"] == "h").cloned());
    let pool = pool.unwrap_or_else(|| panic!("no pool h in {status}"));
    assert_eq!(pool["workers"].as_array().map(Vec::len), Some(0), "{pool}");
    let log = s.pool_log("h");
    assert_eq!(starts(&log), 2, "a worker started while the pool was disabled:\n{log}");
    assert_eq!(start_events(), demand_starts, "a demand start while the pool was disabled");
}

#[test]
fn a_scheduled_time_recycles_the_pool() {
    if !python3_available() {
        return;
    }
    // The next two local minutes, as `date` reads the local zone (the server reads the same
    // zone). The manager's first look at the clock only remembers it, so a time that passes
    // before the server is up never fires; the server is up well within a minute, so the
    // second time always passes after that first look.
    let minute = |ahead: u32| {
        let out = Command::new("date").args(["-d", &format!("+{ahead} minute"), "+%H:%M"]).output().expect("run date");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let times = [minute(1), minute(2)];
    let s = server("recycle-schedule", &format!("recycle = {{ schedule = [{:?}, {:?}] }}", times[0], times[1]));
    let addr = s.addr();
    let old = pid(addr);
    let mut log = String::new();
    let seen = poll(Duration::from_secs(190), || {
        log = s.pool_log("h");
        times.iter().any(|t| log.contains(&format!("scheduled recycle at {t} (recycle.schedule)")))
    });
    assert!(seen, "no scheduled recycle at {times:?}:\n{log}");
    wait_new_worker(addr, old);
}

/// Root only: a pool with `user` runs as that user and the listener as `listener_user` (the
/// binary started without BULKHEAD_ALLOW_ROOT_WORKERS; a pool without `user` is refused up
/// front, see preflight.rs).
#[test]
fn as_root_pools_run_as_their_user() {
    if !nix_is_root() {
        skip!(Reason::Machine("not root; pool users and the listener user only apply when started as root".into()));
    }
    let python = Path::new("/usr/bin/python3");
    if !python.exists() {
        skip!(Reason::Missing("/usr/bin/python3 (readable by user nobody) is not installed".into()));
    }
    let dir = TestDir::new("identity");
    // A copy in the test's own directory: the clone itself may sit where `nobody` cannot read
    // (a checkout under /root).
    let app = dir.write("health_app.py", std::fs::read(health_app()).expect("read the health app"));
    let config = format!(
        r#"[server]
state_dir = "state"
listener_user = "nobody"

[[sites]]
name = "app"
bindings = ["http://127.0.0.1:0"]
routes = [ {{ path = "/", pool = "mine" }} ]

[pools.mine]
command = [{python:?}, "-u", {app:?}]
user = "nobody"
"#,
        python = python.display().to_string(),
        app = app.display().to_string()
    );
    let path = dir.write("bulkhead.toml", config);
    let log_path = dir.join("server.log");
    let out = std::fs::File::create(&log_path).expect("server.log");
    let mut child = Command::new(bulkhead_exe())
        .args(["serve", "--config", &path.display().to_string()])
        .current_dir(dir.path())
        .env_remove("BULKHEAD_ALLOW_ROOT_WORKERS")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().expect("clone")))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("spawn bulkhead");
    let manager = child.id();
    let state = dir.join("state");
    let result = std::panic::catch_unwind(|| {
        let mut addr = None;
        wait_for("bindings.json", LIMIT, || {
            addr = std::fs::read_to_string(state.join("bindings.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v[0]["address"].as_str().and_then(|a| a.parse::<SocketAddr>().ok()));
            addr.is_some()
        });
        let addr = addr.expect("an address");
        let listener: u32 = std::fs::read_to_string(state.join("listener.pid")).unwrap().trim().parse().unwrap();
        assert_eq!(uid_of(listener), Some(65534), "the listener runs as nobody");
        let r = http::get(addr, "/whoami");
        assert_eq!((r.status, r.text()), (200, "uid=65534 gid=65534".to_string()));
    });
    let started: Vec<procs::ProcId> =
        procs::descendants_of(manager).into_iter().chain([manager]).filter_map(procs::ProcId::of).collect();
    procs::signal(manager, libc::SIGTERM);
    let stopped = poll(server::STOP_LIMIT, || matches!(child.try_wait(), Ok(Some(_))));
    if !stopped {
        let _ = child.kill();
    }
    let _ = child.wait();
    let survivors = procs::reap_survivors(&started, server::SURVIVOR_LIMIT);
    if let Err(e) = result {
        eprintln!("===== server output =====\n{}", std::fs::read_to_string(&log_path).unwrap_or_default());
        std::panic::resume_unwind(e);
    }
    assert!(stopped, "manager {manager} did not exit within {:?} of SIGTERM", server::STOP_LIMIT);
    procs::fail_on_survivors(&format!("manager {manager}"), &survivors);
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Where the manager looks for cgroup v2 (`bulkhead_manager::cgroup::CGROUP_FS`).
const CGROUP_FS: &str = "/sys/fs/cgroup";

/// Why cgroup v2 limits cannot be exercised on this machine, if they cannot: the manager needs
/// root and a cgroup v2 root at `/sys/fs/cgroup` offering the memory and pids controllers. (A
/// hybrid cgroup v1 host binds those controllers to v1, so a cgroup2 mounted anywhere else
/// would offer them no more.)
fn cgroup_v2_unusable() -> Option<String> {
    if !nix_is_root() {
        return Some("not root: the manager can only create cgroups as root".into());
    }
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !filesystems.lines().any(|l| l.split_whitespace().last() == Some("cgroup2")) {
        return Some("the kernel has no cgroup2 filesystem (/proc/filesystems)".into());
    }
    let Ok(controllers) = std::fs::read_to_string(Path::new(CGROUP_FS).join("cgroup.controllers")) else {
        return Some(format!("{CGROUP_FS} is not a cgroup v2 root (cgroup v1 or hybrid host)"));
    };
    let have = |c: &str| controllers.split_whitespace().any(|x| x == c);
    if !have("memory") || !have("pids") {
        return Some(format!("{CGROUP_FS} offers the controllers {controllers:?}, not memory and pids"));
    }
    None
}

/// cgroup v2 limits bite for real: a pool's worker runs in `<cgroupfs>/bulkhead/<pool>` with
/// `pids.max` and `memory.max` written; forking past `pids.max` fails inside the worker; growing
/// past `memory.max` gets the worker OOM-killed, which the manager reports as a crash and
/// replaces; the pool's cgroup is removed when the server stops.
#[test]
fn cgroup_v2_pids_and_memory_limits_bite_and_the_manager_reports_the_kill() {
    if let Some(why) = cgroup_v2_unusable() {
        skip!(Reason::Machine(format!("cgroup v2 limits cannot be exercised: {why}")));
    }
    if !python3_available() {
        return;
    }
    // A pool name of this run only: concurrent servers share `<cgroupfs>/bulkhead/`.
    let pool = format!("cg{}", std::process::id());
    let config = format!(
        r#"
[[sites]]
name = "app"
bindings = ["http://127.0.0.1:0"]
routes = [ {{ path = "/", pool = "{pool}" }} ]

[pools.{pool}]
command = ["python3", "-u", {app:?}]
shutdown_time_limit = "5s"
limits = {{ pids = 24, memory = "64MiB" }}
"#,
        app = health_app().display().to_string()
    );
    let mut s = Server::start(TestDir::new("cgroup"), &config);
    let addr = s.addr();
    let first = pid(addr);
    s.worker_pids();
    let output = s.output();
    if let Some(line) = output.lines().find(|l| l.contains("cgroups not used:") || l.contains("runs without a cgroup"))
    {
        let line = line.to_string();
        drop(s);
        skip!(Reason::Machine(format!("the manager could not use cgroup v2 here: {line}")));
    }
    let dir = Path::new(CGROUP_FS).join("bulkhead").join(&pool);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default().trim().to_string();
    assert_eq!((read("pids.max"), read("memory.max")), ("24".to_string(), (64u64 << 20).to_string()));
    let own = std::fs::read_to_string(format!("/proc/{first}/cgroup")).unwrap_or_default();
    assert!(own.lines().any(|l| l == format!("0::/bulkhead/{pool}")), "worker {first} is in {own:?}");

    // pids.max: 100 forks at once cannot all succeed.
    let r = http::get(addr, "/spawn?n=100");
    assert_eq!(r.status, 200, "{:?}", r.text());
    let spawned: u32 = r.text().split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(100);
    assert!(spawned < 100, "pids.max = 24 did not stop the forks: {:?}", r.text());
    assert!(read("pids.events").contains("max ") && !read("pids.events").contains("max 0"), "{}", read("pids.events"));

    // memory.max: growing by 200 MiB gets the worker OOM-killed; the manager says so and
    // replaces it (the GET is replayed once onto the replacement, which dies the same way).
    // With swap on, going past memory.max pages out instead of killing (the manager leaves
    // memory.swap.max alone): no swap for this pool, so the limit is a hard one.
    if dir.join("memory.swap.max").exists() {
        std::fs::write(dir.join("memory.swap.max"), "0").expect("write memory.swap.max");
    }
    let _ = http::try_send(addr, "GET", "/grow?mb=200", &[], b"");
    let log = wait_log_of(&s, &pool, &format!("worker {first} (w1) exited with signal SIGKILL"));
    assert!(log.contains("(crash 1 of 5 within 5m)"), "the OOM kill counts as a crash:\n{log}");
    let oom: u64 = read("memory.events")
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill ").and_then(|n| n.trim().parse().ok()))
        .unwrap_or(0);
    assert!(oom >= 1, "memory.events: {}", read("memory.events"));
    wait_new_worker(addr, first);

    // Stopping the server removes the pool's cgroup.
    let status = s.terminate();
    assert!(status.success(), "manager exit status {status}");
    assert!(!dir.exists(), "{} was left behind", dir.display());
}

/// Waits until the log of `pool` contains `needle`; returns the log.
pub fn wait_log_of(server: &Server, pool: &str, needle: &str) -> String {
    let mut log = String::new();
    let found = poll(LIMIT, || {
        log = server.pool_log(pool);
        log.contains(needle)
    });
    assert!(found, "no {needle:?} in the log of pool {pool} within {LIMIT:?}:\n{log}");
    log
}

//! The supervisor end to end, without the real listener: `self_exe` is a small Python stand-in
//! that speaks the listener's control protocol (framed JSON on fd 3), records every message it
//! receives, answers `Configure` with `Ready` + `DemandStart`, and `Shutdown` with `Drained`.
//! The pool's worker is a real Python HTTP server on the inherited fd 3.
//!
//! Checks: bindings.json and pid files, demand start → `WorkerUp`, `kill -9` of the worker →
//! `WorkerGone` and a replacement, graceful shutdown → `Shutdown`, worker stopped, files removed,
//! `run` returns Ok; registered services restarted when they die and stopped at shutdown.
//! Skipped (with a message) when `python3` is not installed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bulkhead_manager::process::ServiceSpec;
use bulkhead_manager::{run, run_with_services, ManagerOptions};

const FAKE_LISTENER: &str = r#"#!/usr/bin/env python3
import json, os, socket, struct
s = socket.socket(fileno=3)
log = open(os.environ["FAKE_LISTENER_LOG"], "a", buffering=1)
def send(m):
    b = json.dumps(m).encode()
    s.sendall(struct.pack(">I", len(b)) + b)
def read(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            return None
        b += c
    return b
while True:
    h = read(4)
    if h is None:
        break
    m = json.loads(read(struct.unpack(">I", h)[0]))
    log.write(json.dumps(m) + "\n")
    if m["type"] == "configure":
        send({"type": "ready"})
        send({"type": "demand_start", "pool": "p"})
    elif m["type"] == "shutdown":
        send({"type": "drained"})
        break
"#;

const WORKER: &str = r#"
import http.server, socket
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", 0), H, bind_and_activate=False)
srv.socket = socket.socket(fileno=3)
srv.serve_forever()
"#;

fn python3() -> bool {
    std::process::Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Polls `f` every 20 ms for at most 30 s.
async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A visible skip, in the line format `.ci/run` lists (and fails on, for `missing`): on stderr
/// and appended to `$BULKHEAD_SKIP_LOG/skips.log` (see the e2e suite's `support/skip.rs`).
fn record_skip(kind: &str, test: &str, reason: &str) {
    use std::io::Write;
    let line = format!("BULKHEAD-SKIP {kind} supervisor::{test}: {reason}\n");
    eprint!("{line}");
    if let Some(dir) = std::env::var_os("BULKHEAD_SKIP_LOG") {
        let path = Path::new(&dir).join("skips.log");
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).expect("open the skip log");
        file.write_all(line.as_bytes()).expect("record the skip");
    }
}

fn messages(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn of_type(log: &Path, t: &str) -> Vec<serde_json::Value> {
    messages(log).into_iter().filter(|m| m["type"] == t).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demand_start_crash_restart_and_graceful_shutdown() {
    if !python3() {
        record_skip("missing", "demand_start_crash_restart_and_graceful_shutdown", "python3 is not installed");
        return;
    }
    let dir: PathBuf = std::env::temp_dir().join(format!("bulkhead-supervisor-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("fake-listener");
    std::fs::write(&fake, FAKE_LISTENER).unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let log = dir.join("listener-messages.jsonl");
    let config = format!(
        "[server]\nstate_dir = \"state\"\nlistener_user = \"root\"\n\n[[sites]]\nname = \"s\"\nbindings = [\"http://127.0.0.1:0\"]\n\
         routes = [ {{ path = \"/\", pool = \"p\" }} ]\n\n[pools.p]\ncommand = [\"python3\", \"-c\", {WORKER:?}]\n\
         shutdown_time_limit = \"5s\"\n"
    );
    let env: Vec<(OsString, OsString)> = vec![
        ("PATH".into(), std::env::var_os("PATH").unwrap_or_default()),
        ("FAKE_LISTENER_LOG".into(), log.clone().into()),
    ];
    let options = ManagerOptions {
        config_path: Some(dir.join("bulkhead.toml")),
        config_text: config,
        base_dir: dir.clone(),
        self_exe: fake,
        env,
        local_offset: None,
        allow_root_workers: true,
        reload: None,
        reopen_logs: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let manager = tokio::spawn(run(options, async {
        let _ = stopped.await;
    }));
    let state = dir.join("state");

    let bindings: serde_json::Value = wait_for("bindings.json", || {
        std::fs::read_to_string(state.join("bindings.json")).ok().and_then(|t| serde_json::from_str(&t).ok())
    })
    .await;
    assert_eq!(bindings[0]["binding"], "http://127.0.0.1:0");
    let addr: std::net::SocketAddr = bindings[0]["address"].as_str().unwrap().parse().unwrap();
    assert_ne!(addr.port(), 0);
    assert_eq!(std::fs::read_to_string(state.join("bulkhead.pid")).unwrap().trim(), std::process::id().to_string());
    assert!(state.join("listener.pid").exists());
    let configure = &of_type(&log, "configure")[0];
    assert_eq!(configure["sockets"][0]["fd"], 4);

    // Demand start → the worker answers HTTP → WorkerUp.
    let up = wait_for("WorkerUp", || of_type(&log, "worker_up").into_iter().next()).await;
    let first_pid = up["pid"].as_i64().unwrap() as i32;
    let socket = up["address"]["unix"].as_str().unwrap().to_string();
    assert!(socket.ends_with("/sockets/p.w1.sock"), "{socket}");

    // kill -9 → WorkerGone, and a replacement comes up.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first_pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    let gone = wait_for("WorkerGone", || of_type(&log, "worker_gone").into_iter().next()).await;
    assert!(gone["reason"].as_str().unwrap().contains("SIGKILL"), "{gone}");
    let second = wait_for("a second WorkerUp", || of_type(&log, "worker_up").into_iter().nth(1)).await;
    let second_pid = second["pid"].as_i64().unwrap() as i32;
    assert_ne!(second_pid, first_pid);
    assert!(!Path::new(&socket).exists(), "the dead worker's socket is removed");
    let pool_log = std::fs::read_to_string(state.join("logs/pools/p.log")).unwrap();
    assert!(pool_log.contains("exited with signal SIGKILL; restarting (crash 1 of 5 within 5m)"), "{pool_log}");

    // Graceful shutdown.
    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(30), manager).await.expect("manager stops in time");
    result.unwrap().unwrap();
    assert_eq!(of_type(&log, "shutdown").len(), 1);
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(second_pid), None).is_err(),
        "the worker is gone after shutdown"
    );
    for f in ["bindings.json", "bulkhead.pid", "listener.pid"] {
        assert!(!state.join(f).exists(), "{f} removed at shutdown");
    }
    assert_eq!(std::fs::read_dir(state.join("sockets")).unwrap().count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Registered services (`run_with_services`): started after the listener; one that keeps
/// dying is restarted again and again (with back-off, by the shared restart policy); one that
/// runs is started once and stopped (SIGTERM) at shutdown, after which `run` returns Ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_services_are_restarted_and_stopped() {
    if !python3() {
        record_skip(
            "missing",
            "registered_services_are_restarted_and_stopped",
            "python3 is not installed (the stand-in listener is a Python script)",
        );
        return;
    }
    let dir: PathBuf = std::env::temp_dir().join(format!("bulkhead-services-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("fake-listener");
    std::fs::write(&fake, FAKE_LISTENER).unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let log = dir.join("listener-messages.jsonl");
    let config = "[server]\nstate_dir = \"state\"\nlistener_user = \"root\"\n\n[[sites]]\nname = \"s\"\n\
                  bindings = [\"http://127.0.0.1:0\"]\nroutes = [ { path = \"/old\", redirect = \"/new\", status = 301 } ]\n";
    let env: Vec<(OsString, OsString)> = vec![
        ("PATH".into(), std::env::var_os("PATH").unwrap_or_default()),
        ("FAKE_LISTENER_LOG".into(), log.clone().into()),
    ];
    let options = ManagerOptions {
        config_path: Some(dir.join("bulkhead.toml")),
        config_text: config.into(),
        base_dir: dir.clone(),
        self_exe: fake,
        env,
        local_offset: None,
        allow_root_workers: true,
        reload: None,
        reopen_logs: None,
    };
    let (flap, steady) = (dir.join("flap.starts"), dir.join("steady.pid"));
    let sh = |name: &str, script: String| ServiceSpec {
        name: name.into(),
        program: "/bin/sh".into(),
        argv: vec!["sh".into(), "-c".into(), script.into()],
        stop_limit: Duration::from_secs(5),
        quick_death: Duration::from_secs(10),
    };
    let services = vec![
        sh("flap", format!("echo started >> {:?}; exit 3", flap)),
        sh("steady", format!("echo $$ > {:?}; exec sleep 60", steady)),
    ];
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let manager = tokio::spawn(run_with_services(options, services, async {
        let _ = stopped.await;
    }));

    let starts = || std::fs::read_to_string(&flap).unwrap_or_default().lines().count();
    wait_for("the dying service restarted twice", || (starts() >= 3).then_some(())).await;
    let pid: i32 = wait_for("the steady service's pid", || {
        std::fs::read_to_string(&steady).ok().and_then(|t| t.trim().parse().ok())
    })
    .await;
    let steady_pid = nix::unistd::Pid::from_raw(pid);
    assert!(nix::sys::signal::kill(steady_pid, None).is_ok(), "the steady service runs");

    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(30), manager).await.expect("manager stops in time");
    result.unwrap().unwrap();
    assert!(nix::sys::signal::kill(steady_pid, None).is_err(), "the steady service is stopped at shutdown");
    assert_eq!(std::fs::read_to_string(&steady).unwrap().trim(), pid.to_string(), "started once, never restarted");
    let after = starts();
    assert!(after >= 3, "{after}");
    std::fs::remove_dir_all(&dir).unwrap();
}

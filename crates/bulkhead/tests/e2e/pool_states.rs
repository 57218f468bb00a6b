//! The pool state machine as an operator sees it (issue 8 item 2): a pool taken offline says
//! why, the same way in the 503's HTTPERR reason, `bulkhead status` and the events.
//!
//! Runs the real server with two pools: one whose worker always exits before it is ready
//! (`sh -c "exit 3"`, so rapid-fail protection trips without Python) and the demo app (native
//! protocol), which an operator stops through the admin API. Waits are bounded polls.

use std::time::Duration;

use serde_json::Value;

use crate::admin::api;
use crate::support::http::get;
use crate::support::{poll, wait_for, Server, TestDir};

const LIMIT: Duration = Duration::from_secs(40);

/// The `s-reason` of each HTTPERR data line for `path`, oldest first.
fn httperr_for(server: &Server, path: &str) -> Vec<String> {
    let text = server.httperr_log();
    let fields: Vec<&str> = text
        .lines()
        .find_map(|l| l.strip_prefix("#Fields: "))
        .map(|f| f.split_whitespace().collect())
        .unwrap_or_default();
    let (Some(uri), Some(reason)) =
        (fields.iter().position(|f| *f == "cs-uri"), fields.iter().position(|f| *f == "s-reason"))
    else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .filter(|f| f.get(uri) == Some(&path))
        .filter_map(|f| f.get(reason).map(|r| r.to_string()))
        .collect()
}

/// Every file in `dir`, concatenated in name order.
fn files_in(dir: &std::path::Path) -> String {
    let mut names: Vec<_> = std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).collect();
    names.sort();
    names.iter().filter_map(|p| std::fs::read_to_string(p).ok()).collect()
}

fn pool_status(server: &Server, name: &str) -> Value {
    let (code, status) = api(server, "GET", "/status", None);
    assert_eq!(code, 200, "{status}");
    status["pools"]
        .as_array()
        .and_then(|pools| pools.iter().find(|p| p["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no pool {name:?} in {status:#}"))
}

fn events(server: &Server, pool: &str) -> String {
    let (_, events) = api(server, "GET", "/events?limit=1000", None);
    let lines = events.as_array().cloned().unwrap_or_default();
    lines.iter().filter(|e| e["pool"] == pool).filter_map(|e| e["message"].as_str()).collect::<Vec<_>>().join("\n")
}

#[test]
fn rapid_fail_answers_app_offline_and_an_operator_stop_answers_disabled_each_named_in_status() {
    let dir = TestDir::new("pool-states");
    let config = r#"
[[sites]]
name = "app"
bindings = ["http://127.0.0.1:0"]
routes = [ { path = "/crashy", pool = "crashy" }, { path = "/demo", pool = "demo" } ]

[pools.crashy]
command = ["sh", "-c", "exit 3"]
rapid_fail = { max_crashes = 2, interval = "5m" }

[pools.demo]
command = ["bulkhead", "demo-app"]
protocol = "native"
"#;
    let server = Server::start(dir, config);
    let addr = server.addr();
    wait_for("the demo pool serving", LIMIT, || get(addr, "/demo").status == 200);
    assert!(pool_status(&server, "demo")["disabled"].is_null());

    // Each request demand-starts a worker that fails; the second failure trips rapid-fail.
    let tripped = poll(LIMIT, || {
        get(addr, "/crashy");
        pool_status(&server, "crashy")["state"] == "Disabled"
    });
    let crashy = pool_status(&server, "crashy");
    assert!(tripped, "rapid-fail did not disable the pool: {crashy:#}");
    assert_eq!(crashy["disabled"]["by"], "rapid-fail", "{crashy:#}");
    assert_eq!(get(addr, "/crashy").status, 503);
    wait_for("AppOffline in HTTPERR for /crashy", LIMIT, || {
        httperr_for(&server, "/crashy").last().is_some_and(|r| r == "AppOffline")
    });
    let said = events(&server, "crashy");
    assert!(said.contains("rapid-fail protection disabled the pool"), "{said}");

    // An operator stop: 503 `Disabled`, shown as Stopped by the operator, not as rapid-fail.
    let (code, answer) = api(&server, "POST", "/pools/demo/stop", None);
    assert_eq!(code, 200, "{answer}");
    wait_for("503 from the stopped pool", LIMIT, || get(addr, "/demo").status == 503);
    wait_for("Disabled in HTTPERR for /demo", LIMIT, || {
        httperr_for(&server, "/demo").last().is_some_and(|r| r == "Disabled")
    });
    assert!(!httperr_for(&server, "/demo").iter().any(|r| r == "AppOffline"));
    let demo = pool_status(&server, "demo");
    assert_eq!((demo["state"].as_str(), demo["disabled"]["by"].as_str()), (Some("Stopped"), Some("operator")));
    let said = events(&server, "demo");
    assert!(said.contains("stopped by an operator") && !said.contains("rapid-fail"), "{said}");
    // The rapid-fail pool still says rapid-fail: one pool's cause is not another's.
    assert_eq!(pool_status(&server, "crashy")["disabled"]["by"], "rapid-fail");

    // Started again, it serves and no longer reports a cause.
    assert_eq!(api(&server, "POST", "/pools/demo/start", None).0, 200);
    wait_for("the demo pool serving again", LIMIT, || get(addr, "/demo").status == 200);
    assert!(pool_status(&server, "demo")["disabled"].is_null());
    server.worker_pids();
}

/// Root only (the suite runs as root in CI): a pool added by a live reload gets the same
/// checks as at start-up, because start-up and reload are one path. Without
/// `BULKHEAD_ALLOW_ROOT_WORKERS`, a pool with no `user` would run as root: it is disabled with
/// that cause — 503 `Disabled`, said in status and events — and no worker is ever launched or
/// counted as a crash (before, only start-up checked, and the live-added pool failed at launch
/// as `AppStartFailed`, counting towards rapid-fail).
#[test]
fn a_pool_added_live_that_would_run_as_root_is_disabled_by_config_not_crashed() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: not root; the no-`user` refusal applies only when started as root");
        return;
    }
    let dir = TestDir::new("pool-states-root");
    let base = "[server]\nstate_dir = \"state\"\nlistener_user = \"nobody\"\n\n[[sites]]\nname = \"app\"\n\
                bindings = [\"http://127.0.0.1:0\"]\nroutes = [ { path = \"/old\", redirect = \"/new\", status = 301 } ]\n";
    let path = dir.write("bulkhead.toml", base);
    let log_path = dir.join("server.log");
    let out = std::fs::File::create(&log_path).expect("server.log");
    let mut child = std::process::Command::new(crate::support::server::bulkhead_exe())
        .args(["serve", "--config", &path.display().to_string()])
        .current_dir(dir.path())
        .env_remove("BULKHEAD_ALLOW_ROOT_WORKERS")
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(out.try_clone().expect("clone")))
        .stderr(std::process::Stdio::from(out))
        .spawn()
        .expect("spawn bulkhead");
    let manager = child.id();
    let state = dir.join("state");
    let result = std::panic::catch_unwind(|| {
        let mut addr = None;
        wait_for("bindings.json", LIMIT, || {
            addr = std::fs::read_to_string(state.join("bindings.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .and_then(|v| v[0]["address"].as_str().and_then(|a| a.parse::<std::net::SocketAddr>().ok()));
            addr.is_some()
        });
        let addr = addr.expect("an address");
        let live = base.replace("routes = [ ", "routes = [ { path = \"/nouser\", pool = \"nouser\" }, ")
            + "\n[pools.nouser]\ncommand = [\"sh\", \"-c\", \"exit 0\"]\n";
        let tmp = dir.join("bulkhead.toml.swp");
        std::fs::write(&tmp, live).expect("write the new config");
        std::fs::rename(&tmp, &path).expect("rename it into place");
        wait_for("503 from the live-added pool", LIMIT, || get(addr, "/nouser").status == 503);
        let httperr = || files_in(&state.join("logs/HTTPERR"));
        wait_for("Disabled in HTTPERR", LIMIT, || httperr().contains(" Disabled nouser"));
        let log = std::fs::read_to_string(state.join("logs/pools/nouser.log")).unwrap_or_default();
        let output = std::fs::read_to_string(&log_path).unwrap_or_default();
        assert!(!httperr().contains("AppStartFailed") && !httperr().contains("AppOffline"), "{}", httperr());
        assert!(output.contains("refusing to run its workers as root"), "{output}");
        assert!(
            !log.contains("started:") && !output.contains("pool \"nouser\": worker"),
            "a worker was launched:\n{output}"
        );
        assert!(!output.contains("failure 1 of") && !output.contains("crash 1 of"), "counted as a crash:\n{output}");
    });
    for p in crate::support::procs::descendants_of(manager) {
        crate::support::procs::signal(p, libc::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        eprintln!("===== server output =====\n{}", std::fs::read_to_string(&log_path).unwrap_or_default());
        std::panic::resume_unwind(e);
    }
}

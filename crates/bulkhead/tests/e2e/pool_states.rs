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
    // Stopping (its worker finishing) comes before Stopped: wait for the end of it.
    wait_for("the demo pool Stopped", LIMIT, || pool_status(&server, "demo")["state"] == "Stopped");
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

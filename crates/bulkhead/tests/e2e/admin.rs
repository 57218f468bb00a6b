//! The admin service end to end (issue #5): the HTTP/JSON API on the admin socket, the CLI's
//! commands and exit codes, a corrupt config file refused while serving goes on, history and
//! rollback restoring the previous routes, `PUT /config` writing the file back.
//!
//! [`api`] is a tiny HTTP/1.1 client on the admin unix socket (also used by `reload` and
//! `dashboard`); [`cli`] runs the real binary's client commands.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::support::http::get;
use crate::support::server::bulkhead_exe;
use crate::support::{poll, wait_for, Server, TestDir};

/// A site with a static root at `/` and the demo app (native protocol) at `/demo`.
pub fn demo_config(dir: &TestDir, extra_routes: &str) -> String {
    dir.write("www/index.html", "home v1\n");
    dir.write("a/page.html", "from a\n");
    dir.write("b/page.html", "from b\n");
    format!(
        r#"
[[sites]]
name = "main"
bindings = ["http://127.0.0.1:0"]
routes = [{{ path = "/", root = "www" }}, {{ path = "/demo", pool = "demo" }}{extra_routes}]

[pools.demo]
command = ["bulkhead", "demo-app"]
protocol = "native"
"#
    )
}

/// Writes `text` to `path` as editors do: a new file, then a rename over the old one.
pub fn write_replacing(path: &Path, text: &str) {
    let tmp = path.with_extension("swp");
    std::fs::write(&tmp, text).expect("write temp config");
    std::fs::rename(&tmp, path).expect("rename config into place");
}

/// One request on the admin socket: status and JSON body (a string for non-JSON bodies).
pub fn api(server: &Server, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let socket = server.state_dir.join("admin.sock");
    let mut s = UnixStream::connect(&socket).unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write admin request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read admin response");
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let value = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string()));
    (status, value)
}

/// Runs `bulkhead ARGS...` (a client command) and returns its output.
pub fn cli(args: &[&str]) -> Output {
    Command::new(bulkhead_exe()).args(args).env("RUST_LOG", "warn").output().expect("run the bulkhead CLI")
}

/// The pid of the pool's first ready worker, from `/status`.
pub fn ready_pid(server: &Server, pool: &str) -> Option<u64> {
    let (_, status) = api(server, "GET", "/status", None);
    let pools = status["pools"].as_array()?.clone();
    let p = pools.into_iter().find(|p| p["name"] == pool)?;
    p["workers"].as_array()?.iter().find(|w| w["state"] == "Ready").and_then(|w| w["pid"].as_u64())
}

#[test]
fn api_endpoints_answer_and_pools_obey() {
    let dir = TestDir::new("admin-api");
    let config = demo_config(&dir, "");
    let server = Server::start(dir, &config);
    let addr = server.addr();
    let socket = server.state_dir.join("admin.sock");
    let mode = std::fs::metadata(&socket).expect("admin socket").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the admin socket is for its owner only");

    assert_eq!(get(addr, "/demo").status, 200);
    let pid = ready_pid(&server, "demo").expect("a ready demo worker");
    server.remember(pid as u32);

    let (code, status) = api(&server, "GET", "/status", None);
    assert_eq!(code, 200);
    assert!(status["config_error"].is_null());
    assert_eq!(status["sites"][0]["name"], "main");
    assert_eq!(status["server"]["config_version"], 1);
    let (code, pools) = api(&server, "GET", "/pools", None);
    assert_eq!((code, pools[0]["name"].as_str()), (200, Some("demo")));

    let (code, config) = api(&server, "GET", "/config", None);
    assert_eq!(code, 200);
    let file = std::fs::read_to_string(server.config_path.as_ref().expect("path")).expect("read config");
    assert_eq!(config["text"], file);

    let (code, events) = api(&server, "GET", "/events?limit=5", None);
    assert_eq!(code, 200);
    assert!(!events.as_array().expect("events").is_empty() && events.as_array().expect("events").len() <= 5);

    // The listener reports once a second; the metrics count the request above.
    wait_for("requests in /metrics", Duration::from_secs(10), || {
        let (_, m) = api(&server, "GET", "/metrics", None);
        m.as_str().is_some_and(|t| t.contains("bulkhead_requests_total{site=\"main\",status=\"200\"}"))
    });
    let (_, m) = api(&server, "GET", "/metrics", None);
    let m = m.as_str().unwrap_or_default().to_string();
    for name in ["bulkhead_request_duration_seconds_bucket", "bulkhead_workers{", "bulkhead_queue_depth{"] {
        assert!(m.contains(name), "no {name} in:\n{m}");
    }

    // Recycle: a new worker replaces the old one (overlapped) and serves.
    let (code, answer) = api(&server, "POST", "/pools/demo/recycle", None);
    assert_eq!(code, 200, "{answer}");
    wait_for("a new demo worker", Duration::from_secs(30), || {
        ready_pid(&server, "demo").is_some_and(|p| p != pid) && !server.worker_pids().contains(&(pid as u32))
    });
    assert_eq!(get(addr, "/demo").status, 200);
    let (_, status) = api(&server, "GET", "/status", None);
    assert!(status["pools"][0]["last_recycle"]["reason"].as_str().is_some_and(|r| r.contains("operator")));

    // Stop: 503 until started again.
    assert_eq!(api(&server, "POST", "/pools/demo/stop", None).0, 200);
    wait_for("503 from a stopped pool", Duration::from_secs(20), || get(addr, "/demo").status == 503);
    assert_eq!(api(&server, "POST", "/pools/demo/start", None).0, 200);
    wait_for("the pool serving again", Duration::from_secs(30), || get(addr, "/demo").status == 200);

    assert_eq!(api(&server, "POST", "/pools/nope/recycle", None).0, 404);
    assert_eq!(api(&server, "POST", "/pools/demo/explode", None).0, 404);
    assert_eq!(api(&server, "GET", "/nothing", None).0, 404);
    assert_eq!(api(&server, "DELETE", "/status", None).0, 405);
    server.worker_pids();
}

#[test]
fn cli_commands_and_exit_codes() {
    let dir = TestDir::new("admin-cli");
    let config = demo_config(&dir, "");
    let server = Server::start(dir, &config);
    let file = server.config_path.clone().expect("config path");
    let file = file.to_str().expect("utf-8 path");
    assert_eq!(get(server.addr(), "/demo").status, 200);
    server.worker_pids();

    let out = cli(&["status", "--config", file]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("SITE") && text.contains("main") && text.contains("demo"), "{text}");

    let out = cli(&["status", "--config", file, "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    assert_eq!(v["pools"][0]["name"], "demo");

    let out = cli(&["pools", "--config", file]);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("demo"));

    let out = cli(&["pool", "recycle", "demo", "--config", file]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cli(&["pool", "recycle", "nope", "--config", file]);
    assert_eq!(out.status.code(), Some(1), "an unknown pool is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no pool \"nope\""));

    let out = cli(&["config", "history", "--config", file, "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("history --json is JSON");
    assert_eq!(v[0]["version"], 1);
    assert_eq!(v[0]["source"], "start");

    // No server there: exit 3 with a message saying so.
    let other = server.dir.join("nowhere.sock");
    let out = cli(&["status", "--socket", other.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no server is running"));
    // Let the recycle above finish before the harness stops everything.
    poll(Duration::from_secs(20), || server.worker_pids().len() == 1);
}

#[test]
fn corrupt_file_is_refused_and_serving_continues() {
    let dir = TestDir::new("admin-corrupt");
    let config = demo_config(&dir, "");
    let server = Server::start(dir, &config);
    let addr = server.addr();
    let path = server.config_path.clone().expect("config path");
    let good = std::fs::read_to_string(&path).expect("read config");
    write_replacing(&path, &format!("{good}\n[pools.demo\ncommand = \n"));
    wait_for("the refusal in /status", Duration::from_secs(10), || {
        !api(&server, "GET", "/status", None).1["config_error"].is_null()
    });
    assert_eq!(get(addr, "/").text(), "home v1\n", "the running config still serves");

    let out = cli(&["status", "--config", path.to_str().expect("utf-8")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "status works with the broken file: {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("CONFIG REFUSED") && text.contains("bulkhead.toml:"), "{text}");
    assert!(server.output().contains("configuration refused (file)"));

    // A semantic error is refused too, with its key.
    write_replacing(&path, &good.replace("pool = \"demo\"", "pool = \"dmeo\""));
    wait_for("the second refusal", Duration::from_secs(10), || {
        api(&server, "GET", "/status", None).1["config_error"]["errors"][0].as_str().is_some_and(|e| e.contains("dmeo"))
    });
    assert_eq!(get(addr, "/demo").status, 200);

    // The good file back: the error is gone.
    write_replacing(&path, &format!("{good}\n# fixed\n"));
    wait_for("the error to clear", Duration::from_secs(10), || {
        api(&server, "GET", "/status", None).1["config_error"].is_null()
    });
    server.worker_pids();
}

#[test]
fn rollback_restores_the_previous_routes() {
    let dir = TestDir::new("admin-rollback");
    let config = demo_config(&dir, r#", { path = "/x", root = "a" }"#);
    let server = Server::start(dir, &config);
    let addr = server.addr();
    let path = server.config_path.clone().expect("config path");
    let file = path.to_str().expect("utf-8").to_string();
    assert_eq!(get(addr, "/x/page.html").text(), "from a\n");
    let v1 = std::fs::read_to_string(&path).expect("read config");

    write_replacing(&path, &v1.replace("root = \"a\"", "root = \"b\""));
    wait_for("version 2", Duration::from_secs(10), || get(addr, "/x/page.html").text() == "from b\n");

    let out = cli(&["config", "history", "--config", &file]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2*") && text.contains("file"), "{text}");
    let out = cli(&["config", "diff", "1", "2", "--config", &file]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("-routes") && text.contains("+routes") && text.contains("site \"main\" changed"), "{text}");

    let out = cli(&["config", "rollback", "1", "--config", &file]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The manager answers once it has applied the config and sent it to the listener, which
    // applies it a moment later (no acknowledgement yet): wait, bounded, for requests to see it.
    wait_for("the rollback to reach the listener", Duration::from_secs(10), || {
        get(addr, "/x/page.html").text() == "from a\n"
    });
    assert_eq!(std::fs::read_to_string(&path).expect("read config"), v1, "the file was written back");
    let (_, history) = api(&server, "GET", "/config/history", None);
    let last = history.as_array().and_then(|h| h.last().cloned()).expect("history");
    assert_eq!((last["version"].as_u64(), last["source"].as_str()), (Some(3), Some("rollback")));
    assert_eq!(last["current"], true);
    assert_eq!(cli(&["config", "rollback", "99", "--config", &file]).status.code(), Some(1));
}

#[test]
fn put_config_validates_writes_back_and_applies() {
    let dir = TestDir::new("admin-put");
    let config = demo_config(&dir, "");
    let server = Server::start(dir, &config);
    let addr = server.addr();
    let path = server.config_path.clone().expect("config path");
    let before = std::fs::read_to_string(&path).expect("read config");

    let (code, answer) = api(&server, "PUT", "/config", Some("[[sites]]\nname = 1\n"));
    assert_eq!(code, 400, "{answer}");
    assert!(answer["errors"].as_array().is_some_and(|e| !e.is_empty()));
    assert_eq!(std::fs::read_to_string(&path).expect("read config"), before, "a refused config is not written");

    let (code, _) = api(&server, "PUT", "/config?dry_run=1", Some(&before));
    assert_eq!(code, 200);

    let new = before.replace("{ path = \"/\", root = \"www\" }", "{ path = \"/\", root = \"b\" }");
    let (code, answer) = api(&server, "PUT", "/config", Some(&new));
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["version"], 2);
    assert_eq!(std::fs::read_to_string(&path).expect("read config"), new);
    // Applied by the manager; the listener gets it a moment later (see the rollback test).
    wait_for("the new config to reach the listener", Duration::from_secs(10), || {
        get(addr, "/page.html").text() == "from b\n"
    });
    // The watcher sees our own write and finds nothing new to apply.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(api(&server, "GET", "/config", None).1["version"], 2);
}

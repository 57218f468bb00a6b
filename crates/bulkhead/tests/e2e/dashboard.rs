//! The dashboard in a real browser (issue #5 item 6): headless Chromium driven by chromedriver
//! with plain WebDriver HTTP calls. The page is served by the loopback TCP admin endpoint
//! (`server.admin_listen`, token via `/?token=`); the test loads it, sees the pool, presses
//! its Recycle button and sees the worker pid change.
//!
//! Skipped, with a message, when `chromium` or `chromedriver` is not installed (`.ci/run`
//! installs both). chromedriver is started on a free loopback port with a fresh user-data-dir,
//! and stopped by pid (after its browser session is deleted) whatever happens.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::admin::{api, demo_config, ready_pid};
use crate::support::http::{get, send, try_send};
use crate::support::server::SURVIVOR_LIMIT;
use crate::support::skip::{skip, Reason};
use crate::support::{free_port, poll, procs, wait_for, Server, TestDir};

const TOKEN: &str = "dashboard-test-token-0123456789";

fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// chromedriver, killed by pid on drop.
struct Driver {
    child: Child,
    addr: SocketAddr,
    session: Option<String>,
}

impl Driver {
    fn start(profile: &std::path::Path) -> Driver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let mut driver = Driver { child, addr, session: None };
        wait_for("chromedriver", Duration::from_secs(20), || {
            try_send(addr, "GET", "/status", &[], b"").is_ok_and(|r| r.status == 200)
        });
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-sync",
        ];
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium_binary(), "args": args }
        }}});
        let v = driver.call("POST", "/session", Some(caps));
        let id = v["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {v}")).to_string();
        driver.session = Some(id);
        driver
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let headers = [("Content-Type", "application/json")];
        let r = send(self.addr, method, path, &headers, body.as_bytes());
        serde_json::from_slice(&r.body).unwrap_or_else(|_| json!({ "raw": r.text(), "status": r.status }))
    }

    fn session(&self, method: &str, rest: &str, body: Option<Value>) -> Value {
        let id = self.session.as_deref().expect("session");
        self.call(method, &format!("/session/{id}{rest}"), body)
    }

    fn find(&self, css: &str) -> Option<String> {
        let v = self.session("POST", "/element", Some(json!({ "using": "css selector", "value": css })));
        v["value"].as_object()?.values().next()?.as_str().map(str::to_string)
    }

    fn text(&self, css: &str) -> Option<String> {
        let el = self.find(css)?;
        self.session("GET", &format!("/element/{el}/text"), None)["value"].as_str().map(str::to_string)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if self.session.is_some() {
            self.session("DELETE", "", None);
        }
        // chromedriver and the browser it started (which deleting the session should end).
        let started: Vec<procs::ProcId> = procs::descendants_of(self.child.id())
            .into_iter()
            .chain([self.child.id()])
            .filter_map(procs::ProcId::of)
            .collect();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let survivors = procs::reap_survivors(&started, SURVIVOR_LIMIT);
        procs::fail_on_survivors("chromedriver", &survivors);
    }
}

fn chromium_binary() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("chromium")
}

#[test]
fn dashboard_shows_pools_and_recycles_from_a_browser() {
    if !installed(chromium_binary()) || !installed("chromedriver") {
        skip!(Reason::Missing(
            "chromium and chromedriver are needed (apt-get install chromium chromium-driver)".into()
        ));
    }
    let dir = TestDir::new("dashboard");
    let config = format!("admin_listen = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\n{}", demo_config(&dir, ""));
    let profile = dir.mkdir("chromium-profile");
    let server = Server::start(dir, &config);
    assert_eq!(get(server.addr(), "/demo").status, 200);
    let first = ready_pid(&server, "demo").expect("a demo worker");
    server.remember(first as u32);
    let (_, status) = api(&server, "GET", "/status", None);
    let admin: SocketAddr =
        status["server"]["admin_listen"].as_str().and_then(|a| a.parse().ok()).expect("admin_listen");

    // Without the token the TCP endpoint refuses the API and offers a login form.
    assert_eq!(get(admin, "/status").status, 401);
    assert!(get(admin, "/").text().contains("name=\"token\""));

    let driver = Driver::start(&profile);
    driver.session("POST", "/url", Some(json!({ "url": format!("http://{admin}/?token={TOKEN}") })));
    wait_for("the pool row in the page", Duration::from_secs(20), || driver.find("tr[data-pool=\"demo\"]").is_some());
    let shown = |d: &Driver| d.text("td.pid[data-pool=\"demo\"]").and_then(|t| t.trim().parse::<u64>().ok());
    wait_for("the worker pid in the page", Duration::from_secs(20), || shown(&driver) == Some(first));

    let button = driver.find("button[data-pool=\"demo\"][data-action=\"recycle\"]").expect("recycle button");
    driver.session("POST", &format!("/element/{button}/click"), Some(json!({})));
    wait_for("a new worker pid in the page", Duration::from_secs(40), || {
        shown(&driver).is_some_and(|p| p != first) && ready_pid(&server, "demo").is_some_and(|p| p != first)
    });
    let second = ready_pid(&server, "demo").expect("the new worker");
    server.remember(second as u32);
    poll(Duration::from_secs(10), || driver.text("#events").is_some_and(|t| t.contains("recycl")));
    drop(driver);
    server.worker_pids();
}

//! The per-site access logs. W3C extended (issue #2 item 7): IIS's header lines, the IIS default
//! fields plus sc-bytes/cs-bytes, and one line per request — a 200, a 404 and a 503 included —
//! in `<log_dir>/sites/<site>/u_exYYMMDD.log` (UTC date). Issue 10 item 5: NCSA combined and
//! JSON lines, size rollover with a tiny `max_size`, SIGUSR1 reopening the access, HTTPERR and
//! pool logs after they were moved away (no line lost), and the dropped-line counter in the
//! status API, `/metrics` and `bulkhead status` — for lines whose file cannot be opened, and
//! for a writer stalled for real (its file is a FIFO nobody reads) while 9000 requests are
//! served regardless.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::net::SocketAddr;

use serde_json::Value;

use crate::admin::api;
use crate::support::http::{self, Conn};
use crate::support::server::{python3_available, python_command};
use crate::support::{free_port, poll, wait_for, Server, TestDir};

const IIS_FIELDS: [&str; 15] = [
    "date",
    "time",
    "s-ip",
    "cs-method",
    "cs-uri-stem",
    "cs-uri-query",
    "s-port",
    "cs-username",
    "c-ip",
    "cs(User-Agent)",
    "cs(Referer)",
    "sc-status",
    "sc-substatus",
    "sc-win32-status",
    "time-taken",
];

/// `u_exYYMMDD.log` for the UTC day `unix_secs` falls in.
fn daily_log_name(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("u_ex{:02}{:02}{:02}.log", y % 100, m, d)
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[test]
fn daily_log_name_is_utc_yymmdd() {
    assert_eq!(daily_log_name(0), "u_ex700101.log");
    assert_eq!(daily_log_name(1_709_208_000), "u_ex240229.log");
}

#[test]
fn w3c_access_log_has_iis_headers_and_a_line_per_request() {
    let dir = TestDir::new("w3c");
    dir.write("www/index.html", "<p>logged</p>\n");
    let config = format!(
        r#"
[[sites]]
name = "logged"
bindings = ["http://127.0.0.1:0"]
routes = [
  {{ path = "/", root = "{}" }},
  {{ path = "/down", pool = "down" }},
]

[pools.down]
command = ["sh", "-c", "exit 3"]
"#,
        dir.join("www").display()
    );
    let day_before = daily_log_name(now_secs());
    let server = Server::start(dir, &config);
    let addr = server.addr();
    let ua = [("User-Agent", "Test Agent/1.0"), ("Referer", "http://ref.test/page")];
    assert_eq!(http::send(addr, "GET", "/index.html?a=1", &ua, b"").status, 200);
    assert_eq!(http::send(addr, "GET", "/missing.html", &ua, b"").status, 404);
    assert_eq!(http::send(addr, "GET", "/down/x?q=1", &ua, b"").status, 503);
    assert_eq!(http::send(addr, "HEAD", "/index.html", &ua, b"").status, 200);
    let day_after = daily_log_name(now_secs());

    let mut files = Default::default();
    let complete = poll(Duration::from_secs(15), || {
        files = server.access_logs("logged");
        let lines = files.values().flat_map(|t: &String| t.lines()).filter(|l| !l.starts_with('#')).count();
        lines >= 4
    });
    assert!(complete, "expected 4 request lines in the access log of site \"logged\", have: {files:#?}");
    assert!(
        files.keys().all(|n| *n == day_before || *n == day_after),
        "log file names {:?}, expected {day_before}",
        files.keys()
    );
    let text: String = files.values().cloned().collect();

    for prefix in ["#Software: ", "#Version: 1.0", "#Date: ", "#Fields: "] {
        assert!(text.lines().any(|l| l.starts_with(prefix)), "no {prefix:?} header line:\n{text}");
    }
    let fields_line = text.lines().find(|l| l.starts_with("#Fields: ")).unwrap_or_default();
    let fields: Vec<&str> = fields_line["#Fields: ".len()..].split_whitespace().collect();
    for f in IIS_FIELDS.iter().chain(&["sc-bytes", "cs-bytes"]) {
        assert!(fields.contains(f), "field {f} missing from {fields_line:?}");
    }

    let mut rows = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let values: Vec<&str> = line.split(' ').collect();
        assert_eq!(values.len(), fields.len(), "line does not match #Fields ({fields:?}): {line:?}");
        rows.push(fields.iter().copied().zip(values).collect::<HashMap<&str, &str>>());
    }
    let find = |stem: &str, method: &str| {
        rows.iter()
            .find(|r| r["cs-uri-stem"] == stem && r["cs-method"] == method)
            .unwrap_or_else(|| panic!("no {method} {stem} line in:\n{text}"))
    };
    let ok = find("/index.html", "GET");
    assert_eq!(ok["sc-status"], "200");
    assert_eq!(ok["cs-uri-query"], "a=1");
    assert_eq!(ok["c-ip"], "127.0.0.1");
    assert_eq!(ok["s-port"], addr.port().to_string());
    assert_eq!(ok["cs(User-Agent)"], "Test+Agent/1.0", "IIS writes spaces in the user agent as +");
    assert_eq!(ok["cs(Referer)"], "http://ref.test/page");
    assert_eq!(ok["cs-username"], "-");
    assert!(ok["date"].len() == 10 && ok["time"].len() == 8, "date/time format: {ok:?}");
    assert!(ok["time-taken"].parse::<u64>().is_ok() && ok["sc-bytes"].parse::<u64>().is_ok(), "{ok:?}");
    assert_eq!(find("/missing.html", "GET")["sc-status"], "404");
    assert_eq!(find("/missing.html", "GET")["cs-uri-query"], "-");
    let down = find("/down/x", "GET");
    assert_eq!((down["sc-status"], down["cs-uri-query"]), ("503", "q=1"));
    assert_eq!(find("/index.html", "HEAD")["sc-status"], "200");
}

#[test]
fn ncsa_and_json_logs_size_rollover_and_the_dropped_line_counter() {
    let dir = TestDir::new("formats");
    dir.write("www/index.html", "<p>logged</p>\n");
    let port = free_port();
    let config = format!(
        r#"
[[sites]]
name = "nc"
bindings = ["http://nc.test:{port}"]
log = {{ format = "ncsa" }}
routes = [ {{ path = "/", root = "www" }} ]

[[sites]]
name = "js"
bindings = ["http://js.test:{port}"]
log = {{ format = "json", rollover = "size", max_size = "1KiB" }}
routes = [ {{ path = "/", root = "www" }} ]
"#
    );
    let server = Server::start(dir, &config);
    let addr = server.addr_of(&format!("http://nc.test:{port}"));
    let headers = |host| [("Host", host), ("User-Agent", "Agent \"quoted\" \\ 1.0"), ("Referer", "http://ref.test/")];
    for i in 0..3 {
        assert_eq!(http::send(addr, "GET", &format!("/index.html?n={i}"), &headers("nc.test"), b"").status, 200);
    }
    const JS_REQUESTS: usize = 12;
    for i in 0..JS_REQUESTS {
        assert_eq!(http::send(addr, "GET", &format!("/index.html?n={i}"), &headers("js.test"), b"").status, 200);
    }
    let lines =
        |files: &std::collections::BTreeMap<String, String>| files.values().map(|t| t.lines().count()).sum::<usize>();
    let mut ncsa = Default::default();
    let mut json = Default::default();
    let complete = poll(Duration::from_secs(15), || {
        ncsa = server.access_logs("nc");
        json = server.access_logs("js");
        lines(&ncsa) >= 3 && lines(&json) >= JS_REQUESTS
    });
    assert!(complete, "NCSA: {ncsa:#?}\nJSON: {json:#?}");

    // NCSA combined: no header, Apache's quoting.
    assert!(ncsa.keys().all(|n| n.starts_with("u_nc") && n.len() == "u_ncYYMMDD.log".len()), "{:?}", ncsa.keys());
    let text: String = ncsa.values().cloned().collect();
    for (i, line) in text.lines().enumerate() {
        assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
        assert!(line.contains(" +0000] \"GET /index.html?n="), "{line}");
        // %b is every byte sent, head included, as IIS's NCSA log counts (not Apache's body only).
        let (head, tail) = line.split_once(&format!("?n={i} HTTP/1.1\" 200 ")).unwrap_or_else(|| panic!("{line}"));
        assert!(head.ends_with("\"GET /index.html"), "{line}");
        let (bytes, rest) = tail.split_once(' ').unwrap_or_default();
        assert!(bytes.parse::<u64>().is_ok_and(|b| b > 14), "{line}");
        // The last field: the response cache's mark (each URL is asked for once: never a hit).
        assert_eq!(rest, "\"http://ref.test/\" \"Agent \\\"quoted\\\" \\\\ 1.0\" -", "{line}");
    }

    // JSON lines, in files of at most max_size: u_jsYYMMDD.log, then _1, _2, ...
    assert!(json.len() >= 3, "1KiB holds three lines, so 12 need four files: {:?}", json.keys());
    let first = json.keys().next().cloned().unwrap_or_default();
    let stem = first.trim_end_matches(".log");
    for (n, (name, text)) in json.iter().enumerate() {
        assert!(text.len() <= 1024, "{name} has {} bytes, over max_size", text.len());
        if n > 0 && json.len() < 10 {
            assert_eq!(name, &format!("{stem}_{n}.log"), "{:?}", json.keys());
        }
    }
    let mut seen = Vec::new();
    for line in json.values().flat_map(|t| t.lines()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(v["site"], "js");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["uri_stem"], "/index.html");
        assert_eq!(v["status"], 200);
        assert_eq!(v["c_ip"], "127.0.0.1");
        assert_eq!(v["s_port"], port);
        assert_eq!(v["version"], "HTTP/1.1");
        assert_eq!(v["user_agent"], "Agent \"quoted\" \\ 1.0");
        assert_eq!(v["referer"], "http://ref.test/");
        assert_eq!(v["sc_bytes"].as_u64().map(|b| b > 14), Some(true), "{line}");
        assert!(v["time"].as_str().is_some_and(|t| t.len() == 20 && t.ends_with('Z')), "{line}");
        assert!(v["time_taken_ms"].is_u64() && v["cs_bytes"].is_u64(), "{line}");
        seen.push(v["uri_query"].as_str().unwrap_or_default().to_string());
    }
    seen.sort();
    let mut want: Vec<String> = (0..JS_REQUESTS).map(|i| format!("n={i}")).collect();
    want.sort();
    assert_eq!(seen, want, "every request once, across the rolled files");

    // Nothing was dropped, and the counter says so in both places.
    let (_, status) = api(&server, "GET", "/status", None);
    assert_eq!(status["server"]["log_lines_dropped"].as_u64(), Some(0), "{status:#}");
    let (_, metrics) = api(&server, "GET", "/metrics", None);
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(metrics.lines().any(|l| l == "bulkhead_log_lines_dropped_total 0"), "{metrics}");
}

/// A request without a Host header: refused 400 with an HTTPERR line (`Hostname`).
fn no_host(addr: SocketAddr) {
    let mut conn = Conn::connect(addr).expect("connect");
    conn.stream().set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    conn.send_raw(b"GET /nohost HTTP/1.1\r\n\r\n").expect("send");
    let answer = conn.read_rest().unwrap_or_default();
    assert!(answer.starts_with(b"HTTP/1.1 400"), "{}", String::from_utf8_lossy(&answer));
}

/// Lines (of all files) containing `needle`.
fn count(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn sigusr1_reopens_access_httperr_and_pool_logs_without_losing_a_line() {
    if !python3_available() {
        return;
    }
    let dir = TestDir::new("reopen");
    dir.write("www/index.html", "x\n");
    let config = format!(
        r#"
[[sites]]
name = "rot"
bindings = ["http://127.0.0.1:0"]
routes = [ {{ path = "/", root = "www" }}, {{ path = "/py", pool = "py" }} ]

[pools.py]
command = {}
"#,
        python_command()
    );
    let server = Server::start(dir, &config);
    let addr = server.addr();
    // One access line for the file, one for the pool (whose worker also writes a line to its
    // pool log), one HTTPERR line.
    let send = |tag: &str| {
        assert_eq!(http::get(addr, &format!("/index.html?{tag}")).status, 200);
        http::get(addr, &format!("/py/{tag}"));
        no_host(addr);
    };
    let access = || server.access_logs("rot").values().cloned().collect::<String>();
    send("t0x");
    wait_for("the first lines in every log", Duration::from_secs(20), || {
        count(&access(), "t0x") == 2
            && count(&server.pool_log("py"), "/py/t0x") == 1
            && count(&server.httperr_log(), "Hostname") == 1
    });

    // logrotate: move every file away, then SIGUSR1.
    let site_dir = server.log_dir.join("sites/rot");
    let httperr_dir = server.log_dir.join("HTTPERR");
    let mut moved = Vec::new();
    for d in [&site_dir, &httperr_dir] {
        for e in std::fs::read_dir(d).expect("log dir").flatten() {
            moved.push(e.path());
        }
    }
    moved.push(server.log_dir.join("pools/py.log"));
    for path in &moved {
        std::fs::rename(path, path.with_extension("log.1")).expect("move log away");
    }
    server.signal_manager(libc::SIGUSR1);
    wait_for("the manager to reopen the logs", Duration::from_secs(10), || {
        server.output().contains("log files reopened")
    });

    // The reopen reaches the listener's writer asynchronously: send until each log has a new
    // file at its old path holding a line sent after the signal (bounded).
    // Only lines sent after the signal can create a file at a moved file's old path (the
    // manager's own pool-log lines aside, hence the request path).
    let reopened = || {
        moved.iter().all(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("/py/t") || t.contains("Hostname")))
    };
    let mut sent = 1;
    let all_new = poll(Duration::from_secs(20), || {
        if sent < 200 {
            send(&format!("t{sent}x"));
            sent += 1;
        }
        reopened()
    });
    assert!(all_new, "after {sent} rounds some log has no new file at its old path: {moved:?}");
    // Every writer has switched now: this round must land in the new files only.
    send(&format!("t{sent}x"));
    sent += 1;

    // No line was lost or doubled: every request is in the old or the new file, once.
    let complete = poll(Duration::from_secs(20), || {
        let (a, p) = (
            access(),
            server.pool_log("py") + &std::fs::read_to_string(server.log_dir.join("pools/py.log.1")).unwrap_or_default(),
        );
        (0..sent).all(|i| count(&a, &format!("t{i}x")) == 2 && count(&p, &format!("/py/t{i}x")) == 1)
            && count(&server.httperr_log(), "Hostname") == sent
    });
    let a = access();
    let missing: Vec<usize> = (0..sent).filter(|i| count(&a, &format!("t{i}x")) != 2).collect();
    assert!(
        complete,
        "after {sent} rounds: access lines missing or doubled for {missing:?}; HTTPERR has {} of {sent}",
        count(&server.httperr_log(), "Hostname")
    );
    // And what came after the signal went to the new files.
    let last = format!("t{}x", sent - 1);
    let new_access = std::fs::read_to_string(&moved[0]).unwrap_or_default();
    assert_eq!(count(&new_access, &last), 2, "{new_access}");
    assert_eq!(count(&server.pool_log("py"), &format!("/py/{last}")), 1);
}

#[test]
fn lines_that_cannot_be_written_are_counted_as_dropped_in_status_metrics_and_the_cli() {
    let dir = TestDir::new("dropped");
    dir.write("www/index.html", "x\n");
    // The site's log directory is a file: no log file can be opened there, even as root.
    dir.write("state/logs/sites/blocked", "not a directory\n");
    let config = r#"
[[sites]]
name = "blocked"
bindings = ["http://127.0.0.1:0"]
routes = [ { path = "/", root = "www" } ]
"#;
    let server = Server::start(dir, config);
    const REQUESTS: u64 = 5;
    for _ in 0..REQUESTS {
        assert_eq!(http::get(server.addr(), "/index.html").status, 200, "requests are served all the same");
    }
    wait_for("5 dropped lines in /status", Duration::from_secs(15), || {
        api(&server, "GET", "/status", None).1["server"]["log_lines_dropped"].as_u64() == Some(REQUESTS)
    });
    let (_, metrics) = api(&server, "GET", "/metrics", None);
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(metrics.lines().any(|l| l == format!("bulkhead_log_lines_dropped_total {REQUESTS}")), "{metrics}");
    let file = server.config_path.clone().expect("config path");
    let out = crate::admin::cli(&["status", "--config", file.to_str().expect("utf-8 path")]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains(&format!("log lines dropped: {REQUESTS}")), "{printed}");
}

#[test]
fn a_stalled_log_writer_never_blocks_a_request_and_its_lost_lines_are_counted() {
    let dir = TestDir::new("stall");
    dir.write("www/index.html", "x\n");
    // The day's access log is a FIFO nobody reads: the writer's open() hangs, as on a dead disk.
    let fifo = dir.join(&format!("state/logs/sites/stall/{}", daily_log_name(now_secs())));
    std::fs::create_dir_all(fifo.parent().expect("parent")).expect("mkdir");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("run mkfifo");
    assert!(made.success(), "mkfifo {}", fifo.display());
    // Writable by the listener's user, whoever that is.
    std::fs::set_permissions(&fifo, std::os::unix::fs::PermissionsExt::from_mode(0o666)).expect("chmod");
    let config = r#"
[[sites]]
name = "stall"
bindings = ["http://127.0.0.1:0"]
routes = [ { path = "/", root = "www" } ]
"#;
    let mut server = Server::start(dir, config);
    // More than the writer's queue holds (8192 lines), on one keep-alive connection; bounded in
    // count and time.
    const REQUESTS: u64 = 9000;
    let mut conn = Conn::connect(server.addr()).expect("connect");
    conn.stream().set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    for i in 0..REQUESTS {
        let r = conn.request("GET", "/index.html", &[], b"").unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(r.status, 200, "request {i}");
        assert!(std::time::Instant::now() < deadline, "only {i} requests in 120 s");
    }
    drop(conn);
    // The writer took one line and hangs in open(); the queue holds 8192; the rest are dropped.
    let expected = REQUESTS - 8192 - 1;
    let mut seen = None;
    let counted = poll(Duration::from_secs(15), || {
        seen = api(&server, "GET", "/status", None).1["server"]["log_lines_dropped"].as_u64();
        seen == Some(expected)
    });
    assert!(counted, "log_lines_dropped = {seen:?}, expected {expected}");
    let (_, metrics) = api(&server, "GET", "/metrics", None);
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(metrics.lines().any(|l| l == format!("bulkhead_log_lines_dropped_total {expected}")), "{metrics}");

    // Unstall: read the FIFO until the listener closes it (at shutdown), so it can exit.
    let reader = std::thread::spawn(move || std::fs::read(&fifo).map(|b| b.len()));
    server.terminate();
    let read = reader.join().expect("reader thread").expect("read the FIFO");
    assert!(read > 0, "the queued lines reached the file once the disk came back");
}

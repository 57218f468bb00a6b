//! The per-site W3C extended access log (issue #2 item 7): IIS's header lines, the IIS default
//! fields plus sc-bytes/cs-bytes, and one line per request — a 200, a 404 and a 503 included —
//! in `<log_dir>/sites/<site>/u_exYYMMDD.log` (UTC date).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::http;
use crate::support::{poll, Server, TestDir};

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

//! What a site sends besides its files and its workers' answers (issue 11 item 2): its own
//! MIME map (`mime_types`: added, overridden and removed types; unknown types stay 404.3), its
//! custom error pages (`error_pages`: for the listener's own 404 and 503, HEAD with headers
//! only, the access log keeping status and substatus, a worker's 404 passed through), and a
//! route's response `headers` (on a static and a pool route, replacing the worker's header of
//! the same name, absent from errors, changed by a live reload).
//!
//! Through the real binary with curl; the pools are the built-in demo app and a command that
//! exits at once.

use std::time::Duration;

use crate::admin::write_replacing;
use crate::static_content::logged_status;
use crate::support::http::{self, curl};
use crate::support::{poll, wait_for, Server, TestDir};

const LIMIT: Duration = Duration::from_secs(40);

const NOT_FOUND_PAGE: &str = "<h1>Nothing here</h1>\n";
const BUSY_PAGE: &str = "<h1>Back soon</h1>\n";

/// A site "content" serving `<dir>/www` at `/`, with `site_extra` keys and `route_extra` keys
/// on that route; `/demo` goes to the demo app with `demo_extra` keys on its route, `/crashy` to
/// a pool whose command exits at once (disabled by rapid-fail at its first crash).
fn config(dir: &TestDir, site_extra: &str, route_extra: &str, demo_extra: &str) -> String {
    format!(
        r#"
[[sites]]
name = "content"
bindings = ["http://127.0.0.1:0"]
{site_extra}
routes = [
  {{ path = "/", root = "{}"{route_extra} }},
  {{ path = "/demo", pool = "demo"{demo_extra} }},
  {{ path = "/crashy", pool = "crashy" }},
]

[pools.demo]
command = ["bulkhead", "demo-app"]
protocol = "native"

[pools.crashy]
command = ["sh", "-c", "exit 3"]
rapid_fail = {{ max_crashes = 1, interval = "5m" }}
"#,
        dir.join("www").display()
    )
}

fn url(server: &Server, path: &str) -> String {
    format!("http://{}{path}", server.addr())
}

#[test]
fn a_sites_mime_map_adds_overrides_and_removes_types() {
    let dir = TestDir::new("site-mime");
    for f in ["app.webmanifest", "trace.log", "data.cfg", "notes.xyz", "pic.png", "style.css"] {
        dir.write(&format!("www/{f}"), "content\n");
    }
    let site = r#"mime_types = { ".cfg" = "text/plain", ".LOG" = "text/x-log", ".png" = "" }"#;
    let text = config(&dir, site, "", "");
    let server = Server::start(dir, &text);
    let typed = |path: &str| {
        let r = curl(&[&url(&server, path)]);
        (r.status, r.header("content-type").unwrap_or_default().to_string())
    };
    assert_eq!(typed("/data.cfg"), (200, "text/plain".into()), "added");
    assert_eq!(typed("/trace.log"), (200, "text/x-log".into()), "overridden");
    assert_eq!(typed("/style.css"), (200, "text/css; charset=utf-8".into()), "built-in kept");
    assert_eq!(typed("/app.webmanifest"), (200, "application/manifest+json".into()), "built-in, 11 letters");
    assert_eq!(typed("/notes.xyz").0, 404, "unmapped");
    assert_eq!(typed("/pic.png").0, 404, "removed");
    for stem in ["/notes.xyz", "/pic.png"] {
        wait_for("the 404.3 in the access log", LIMIT, || {
            logged_status(&server, stem) == Some(("404".into(), "3".into()))
        });
    }
}

#[test]
fn error_pages_replace_the_listeners_own_errors_only() {
    let dir = TestDir::new("site-pages");
    dir.write("www/index.html", "<p>home</p>\n");
    dir.write("www/notes.xyz", "unmapped\n");
    dir.write("errors/404.html", NOT_FOUND_PAGE);
    dir.write("errors/busy.html", BUSY_PAGE);
    let site = r#"error_pages = { 404 = "errors/404.html", 503 = "errors/busy.html" }"#;
    let text = config(&dir, site, "", "");
    let server = Server::start(dir, &text);

    let missing = curl(&[&url(&server, "/missing.html")]);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.text(), NOT_FOUND_PAGE);
    assert_eq!(missing.header("content-type"), Some("text/html; charset=utf-8"));
    let unmapped = curl(&[&url(&server, "/notes.xyz")]);
    assert_eq!((unmapped.status, unmapped.text().as_str()), (404, NOT_FOUND_PAGE));
    wait_for("404.3 kept in the access log", LIMIT, || {
        logged_status(&server, "/notes.xyz") == Some(("404".into(), "3".into()))
    });
    // HEAD: the page's headers, no body (the byte-exact client would see a stray body).
    let head = http::send(server.addr(), "HEAD", "/missing.html", &[], b"");
    assert_eq!(head.status, 404);
    assert_eq!(head.header("content-length"), Some(NOT_FOUND_PAGE.len().to_string().as_str()));
    assert!(head.body.is_empty());
    // A worker's own 404 is passed through as the worker sent it.
    let worker = curl(&[&url(&server, "/demo/no-such-page")]);
    assert_eq!(worker.status, 404);
    assert!(worker.text().contains("No such demo page"), "{}", worker.text());

    // The pool whose command exits is disabled by rapid-fail: its 503 gets the busy page.
    let mut busy = None;
    let disabled = poll(LIMIT, || {
        let r = curl(&[&url(&server, "/crashy")]);
        let done = r.status == 503;
        busy = Some(r);
        done
    });
    let busy = busy.expect("a response");
    assert!(disabled, "no 503 from the failing pool; last: {} {}", busy.status, busy.text());
    assert_eq!(busy.text(), BUSY_PAGE);
    assert_eq!(busy.header("content-length"), Some(BUSY_PAGE.len().to_string().as_str()));
}

#[test]
fn route_headers_on_static_and_pool_routes_follow_a_reload() {
    let dir = TestDir::new("site-headers");
    dir.write("www/index.html", "<p>home</p>\n");
    let static_headers =
        |frame: &str| format!(r#", headers = {{ "X-Frame-Options" = "{frame}", "Cache-Control" = "max-age=60" }}"#);
    let demo_headers = r#", headers = { "X-Served-By" = "pool", "cache-control" = "max-age=5" }"#;
    let text = config(&dir, "", &static_headers("DENY"), demo_headers);
    let path = dir.join("bulkhead.toml");
    let server = Server::start(dir, &text);

    let home = curl(&[&url(&server, "/")]);
    assert_eq!(home.status, 200);
    assert_eq!(home.header("x-frame-options"), Some("DENY"));
    assert_eq!(home.header("cache-control"), Some("max-age=60"));
    let missing = curl(&[&url(&server, "/missing.html")]);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("x-frame-options"), None, "errors do not get a route's headers");
    assert_eq!(missing.header("cache-control"), None);

    let mut demo = curl(&[&url(&server, "/demo")]);
    wait_for("the demo pool serving", LIMIT, || {
        demo = curl(&[&url(&server, "/demo")]);
        demo.status == 200
    });
    assert_eq!(demo.header("x-served-by"), Some("pool"));
    let cache: Vec<&str> =
        demo.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("cache-control")).map(|(_, v)| v.as_str()).collect();
    assert_eq!(cache, ["max-age=5"], "the route's value replaces the worker's no-store");

    // A live edit: the next responses carry the new value.
    let edited = text.replace(&static_headers("DENY"), &static_headers("SAMEORIGIN"));
    assert_ne!(edited, text);
    write_replacing(&path, &format!("[server]\nstate_dir = \"state\"\n\n{edited}"));
    wait_for("the reloaded header", LIMIT, || {
        curl(&[&url(&server, "/")]).header("x-frame-options") == Some("SAMEORIGIN")
    });
}

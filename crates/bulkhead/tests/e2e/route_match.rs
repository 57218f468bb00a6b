//! Routing beyond prefixes (issue 11 item 3), through the binary with curl: among routes with
//! one path the first whose `match` holds answers (source, method, host via `--resolve`, a
//! header and a decoded query argument, negations); when none holds the next shorter prefix
//! does; `return` answers by itself (403 with the status's text, 301 with `Location`, a body);
//! `strip_prefix` sends the Python worker the path after the prefix (it echoes the target it
//! got in `X-Path`), while the access log keeps the client's; and an edit of `match` or
//! `return` applies to the running listener without a restart.

use std::time::Duration;

use crate::admin::write_replacing;
use crate::support::http::{curl, Response};
use crate::support::server::{python3_available, python_site_routes};
use crate::support::{wait_for, Server, TestDir};

/// The routes under test; same paths in the order they are tried.
const ROUTES: &str = r#"
  { path = "/", pool = "py" },
  { path = "/v2", pool = "py", strip_prefix = true },
  { path = "/admin", return = 200, body = "admin: welcome\n", match = { source = ["127.0.0.0/8", "::1"], method = ["GET", "HEAD"] } },
  { path = "/admin", return = 403 },
  { path = "/site", return = 200, body = "shop host\n", match = { host = "*.shop.test" } },
  { path = "/site", return = 200, body = "any host\n" },
  { path = "/flag", return = 200, body = "debug on\n", match = { headers = { "X-Debug" = "on" }, arguments = { mode = ["fast*", "!fast-off"] } } },
  { path = "/flag", return = 200, body = "debug off\n" },
  { path = "/moved", return = 301, location = "https://new.example/landing" },
  { path = "/lan", return = 200, body = "never from loopback\n", match = { source = "!127.0.0.0/8" } },
"#;

fn start(label: &str) -> (Server, String) {
    let server = Server::start(TestDir::new(label), &python_site_routes("", ROUTES, ""));
    let base = format!("http://{}", server.addr());
    (server, base)
}

fn answer(r: &Response) -> (u16, String) {
    (r.status, r.text())
}

#[test]
fn the_first_route_whose_match_holds_answers_else_a_shorter_prefix() {
    if !python3_available() {
        return;
    }
    let (server, base) = start("route-match");
    let port = server.addr().port();
    let get = |path: &str| answer(&curl(&[&format!("{base}{path}")]));

    assert_eq!(get("/admin/users"), (200, "admin: welcome\n".into()), "loopback GET meets source and method");
    let head = curl(&["-I", &format!("{base}/admin")]);
    assert_eq!((head.status, head.header("content-length")), (200, Some("15")), "HEAD is in the list too");
    assert!(head.body.is_empty(), "HEAD gets no body: {:?}", head.text());
    let post = curl(&["-X", "POST", &format!("{base}/admin")]);
    assert_eq!(answer(&post), (403, "403 Forbidden\n".into()), "POST is not in the method list");

    let resolve = format!("a.shop.test:{port}:127.0.0.1");
    let shop = curl(&["--resolve", &resolve, &format!("http://a.shop.test:{port}/site")]);
    assert_eq!(answer(&shop), (200, "shop host\n".into()), "Host a.shop.test:PORT, port cut off");
    let upper = curl(&["-H", &format!("Host: A.SHOP.TEST:{port}"), &format!("{base}/site")]);
    assert_eq!(answer(&upper), (200, "shop host\n".into()), "host patterns are caseless");
    assert_eq!(get("/site"), (200, "any host\n".into()), "Host 127.0.0.1:PORT");

    let flag = |extra: &[&str]| {
        let mut args = vec!["-G", "-H", "X-Debug: on"];
        args.extend_from_slice(extra);
        let url = format!("{base}/flag");
        args.push(&url);
        answer(&curl(&args))
    };
    assert_eq!(flag(&["--data-urlencode", "mode=fast lane"]), (200, "debug on\n".into()), "decoded `fast lane`");
    assert_eq!(flag(&["--data-urlencode", "mode=fast-off"]), (200, "debug off\n".into()), "a negated value");
    assert_eq!(flag(&[]), (200, "debug off\n".into()), "a named argument must be present");
    let no_header = curl(&[&format!("{base}/flag?mode=fast")]);
    assert_eq!(answer(&no_header), (200, "debug off\n".into()), "a named header must be present");

    let lan = curl(&[&format!("{base}/lan/x")]);
    assert_eq!(lan.status, 200);
    assert!(lan.text().starts_with("hello from python"), "falls through to the / pool route: {}", lan.text());
    assert_eq!(lan.header("x-path"), Some("/lan/x"), "routes without strip_prefix pass the path unchanged");
}

#[test]
fn return_answers_itself_and_strip_prefix_sends_the_path_after_the_prefix() {
    if !python3_available() {
        return;
    }
    let (server, base) = start("route-return");
    let moved = curl(&[&format!("{base}/moved/old?x=1")]);
    assert_eq!(moved.status, 301);
    assert_eq!(moved.header("location"), Some("https://new.example/landing"), "the location exactly as written");

    for (target, seen) in [("/v2/a/b?x=1&y", "/a/b?x=1&y"), ("/v2", "/"), ("/v2/", "/"), ("/v2?q=2", "/?q=2")] {
        let r = curl(&[&format!("{base}{target}")]);
        assert_eq!(r.status, 200, "{target}: {}", r.text());
        assert_eq!(r.header("x-path"), Some(seen), "{target}: the worker's target");
    }
    let r = curl(&[&format!("{base}/v2x")]);
    assert_eq!(r.header("x-path"), Some("/v2x"), "/v2x is not under /v2: the / route, unstripped");

    wait_for("the access log to show the client's path", Duration::from_secs(10), || {
        server.access_logs("app").values().any(|log| log.contains("/v2/a/b"))
    });
}

#[test]
fn an_edited_match_or_return_applies_to_the_running_listener() {
    if !python3_available() {
        return;
    }
    let (server, base) = start("route-reload");
    let listener = server.listener_pid();
    assert_eq!(answer(&curl(&[&format!("{base}/admin")])).0, 200);
    let path = server.config_path.clone().expect("config path");
    let text = std::fs::read_to_string(&path).expect("read config");
    let edited = text.replace(r#"source = ["127.0.0.0/8", "::1"]"#, r#"source = ["!127.0.0.0/8"]"#).replace(
        r#"{ path = "/admin", return = 403 }"#,
        r#"{ path = "/admin", return = 404, body = "no admin here\n" }"#,
    );
    assert_ne!(edited, text, "the edit must change the file");
    write_replacing(&path, &edited);
    wait_for("the edited routes to answer", Duration::from_secs(10), || {
        answer(&curl(&[&format!("{base}/admin")])) == (404, "no admin here\n".into())
    });
    assert_eq!(server.listener_pid(), listener, "the listener was not restarted");
}

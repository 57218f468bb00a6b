//! Static routes served by the listener itself (issue #2 item 4): files with their MIME type,
//! default documents, the 301 for a directory without its slash, 404, 405, HEAD — and every
//! way out of the root we know of, each of which must be refused without ever returning the
//! content of a file outside the root.

use crate::support::http::{self, Conn};
use crate::support::{Server, TestDir};

const SECRET: &str = "TOP-SECRET-OUTSIDE-ROOT";
const INDEX: &str = "<!doctype html><h1>home page</h1>\n";

/// A site with one static route over `<dir>/www`, a secret file beside `www`, and symlinks
/// inside `www` pointing out of it and within it.
fn static_server() -> Server {
    let dir = TestDir::new("static");
    dir.write("secret.txt", SECRET);
    dir.write("www/index.html", INDEX);
    dir.write("www/style.css", "body { color: black }\n");
    dir.write("www/data.json", "{\"ok\":true}\n");
    dir.write("www/notes.txt", "plain notes\n");
    dir.write("www/sub/index.html", "<p>sub index</p>\n");
    dir.write("www/sub/page.html", "<p>inner page</p>\n");
    dir.write("www/a/keep.txt", "kept\n");
    dir.write("www/a/..%2f", "literal name with a percent sign\n");
    dir.symlink("../secret.txt", "www/evil.html");
    dir.symlink("..", "www/evil-dir");
    dir.symlink("sub/page.html", "www/good.html");
    let www = dir.join("www");
    let config = format!(
        r#"
[[sites]]
name = "files"
bindings = ["http://127.0.0.1:0"]
routes = [ {{ path = "/", root = "{}" }} ]
"#,
        www.display()
    );
    Server::start(dir, &config)
}

#[test]
fn files_mime_types_default_documents_and_methods() {
    let server = static_server();
    let addr = server.addr();

    let r = http::get(addr, "/index.html");
    assert_eq!(r.status, 200, "GET /index.html");
    assert_eq!(r.text(), INDEX);
    assert!(r.header("content-type").unwrap_or("").starts_with("text/html"), "{:?}", r.headers);
    assert_eq!(r.header("content-length"), Some(INDEX.len().to_string().as_str()));

    for (path, mime) in [("/style.css", "text/css"), ("/data.json", "application/json"), ("/notes.txt", "text/plain")] {
        let r = http::get(addr, path);
        assert_eq!(r.status, 200, "GET {path}");
        let ct = r.header("content-type").unwrap_or("");
        assert!(ct.starts_with(mime), "GET {path}: Content-Type {ct:?}, expected {mime}");
    }

    let r = http::get(addr, "/index.html?x=1&y=2");
    assert_eq!((r.status, r.text().as_str()), (200, INDEX), "a query string does not change the file");

    let r = http::get(addr, "/");
    assert_eq!((r.status, r.text().as_str()), (200, INDEX), "default document for /");
    let r = http::get(addr, "/sub/");
    assert_eq!((r.status, r.text().as_str()), (200, "<p>sub index</p>\n"), "default document for /sub/");

    let r = http::get(addr, "/sub");
    assert_eq!(r.status, 301, "a directory without its slash is redirected");
    let location = r.header("location").unwrap_or("");
    assert!(location.ends_with("/sub/"), "Location {location:?}");

    let r = http::get(addr, "/missing.html");
    assert_eq!(r.status, 404, "missing file");
    let r = http::get(addr, "/sub/missing/deeper.html");
    assert_eq!(r.status, 404, "missing directory");

    let r = http::send(addr, "POST", "/index.html", &[], b"x=1");
    assert_eq!(r.status, 405, "POST to a static file");
    let allow = r.header("allow").unwrap_or("");
    assert!(allow.contains("GET") && allow.contains("HEAD"), "Allow {allow:?}");
    let r = http::send(addr, "DELETE", "/index.html", &[], b"");
    assert_eq!(r.status, 405, "DELETE to a static file");

    // HEAD: same status and length, no body on the wire (read until the server closes).
    let mut conn = Conn::connect(addr).unwrap();
    let r = conn.request("HEAD", "/index.html", &[("Connection", "close")], b"").unwrap();
    assert_eq!(r.status, 200, "HEAD /index.html");
    assert_eq!(r.header("content-length"), Some(INDEX.len().to_string().as_str()));
    let rest = conn.read_rest().unwrap();
    assert!(rest.is_empty(), "HEAD sent a body: {:?}", String::from_utf8_lossy(&rest));

    // Keep-alive: several requests on one connection.
    let mut conn = Conn::connect(addr).unwrap();
    for _ in 0..5 {
        let r = conn.request("GET", "/notes.txt", &[], b"").unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "plain notes\n"));
    }
}

#[test]
fn symlinks_inside_the_root_are_served_and_those_leading_out_are_refused() {
    let server = static_server();
    let addr = server.addr();
    let r = http::get(addr, "/good.html");
    assert_eq!((r.status, r.text().as_str()), (200, "<p>inner page</p>\n"), "symlink to a file inside the root");
    // `/evil-dir/www/index.html` resolves back inside the root, so it may be served; these may not.
    for path in ["/evil.html", "/evil-dir/secret.txt", "/evil-dir/bulkhead.toml"] {
        let r = http::get(addr, path);
        assert_refused(path, &r);
    }
}

/// Every request target here tries to leave the root; each must be answered 4xx and none may
/// carry the content of a file outside it.
#[test]
fn every_traversal_attempt_is_refused() {
    let server = static_server();
    let addr = server.addr();
    let attempts = [
        "/../secret.txt",
        "/../etc/passwd",
        "/../../../../../../../../etc/passwd",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/.%2e/secret.txt",
        "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/..%2fsecret.txt",
        "/..%2fetc/passwd",
        "/..%2f..%2f..%2f..%2f..%2f..%2fetc/passwd",
        "/%2e%2e%2fsecret.txt",
        "/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/a/../../secret.txt",
        "/a/%2e%2e/%2e%2e/secret.txt",
        "/%2fetc/passwd",
        "/%2Fetc%2Fpasswd",
        "//etc/passwd",
        "/a%5c..%5c..%5csecret.txt",
        "/a%5c..%5c..",
        "/a%5C..%5C..%5C..%5C..%5Cetc%5Cpasswd",
        "/a/..%252f..%252fsecret.txt",
        "/a/..%252f",
        "/%252e%252e/secret.txt",
        "/index.html%00.txt",
        "/index.html%00",
        "/%00/../secret.txt",
        "/a/..%00/secret.txt",
        "http://localhost/%2e%2e/secret.txt",
    ];
    let mut failures = Vec::new();
    for target in attempts {
        let r = match http::try_send(addr, "GET", target, &[], b"") {
            Ok(r) => r,
            // A server may drop a request it cannot parse; that is a refusal too.
            Err(e) => {
                eprintln!("{target}: connection error {e} (counted as refused)");
                continue;
            }
        };
        let body = r.text();
        if body.contains(SECRET) || body.contains("root:x:0:0") {
            failures.push(format!("{target}: {} WITH CONTENT OUTSIDE THE ROOT: {:?}", r.status, body));
        } else if target == "/a/..%252f" && r.status == 200 {
            // Decoded once, `..%252f` is the literal name `..%2f`: serving that file is right.
            if body != "literal name with a percent sign\n" {
                failures.push(format!("{target}: 200 with unexpected body {body:?}"));
            }
        } else if !(400..500).contains(&r.status) {
            failures.push(format!("{target}: status {} (expected a 4xx refusal), body {:?}", r.status, body));
        }
    }
    // Raw bytes a client library would never send: a backslash path and a literal NUL.
    let raw_requests: [&[u8]; 3] = [
        b"GET /a\\..\\..\\secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /..\\secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /index.html\0.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ];
    for raw in raw_requests {
        let mut conn = Conn::connect(addr).unwrap();
        conn.send_raw(raw).unwrap();
        if let Ok(r) = conn.read_response(false) {
            if r.text().contains(SECRET) || r.status < 400 {
                failures.push(format!("{:?}: {} {:?}", String::from_utf8_lossy(raw), r.status, r.text()));
            }
        }
    }
    assert!(failures.is_empty(), "traversal not refused:\n{}", failures.join("\n"));
    // The server is still fine afterwards.
    assert_eq!(http::get(addr, "/index.html").status, 200);
}

fn assert_refused(target: &str, r: &http::Response) {
    let body = r.text();
    assert!(!body.contains(SECRET), "{target}: returned the content of a file outside the root");
    assert!((400..500).contains(&r.status), "{target}: status {} (expected 4xx), body {body:?}", r.status);
}
